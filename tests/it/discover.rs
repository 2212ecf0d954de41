//! "Restore `orders` as it was at TIME": the chain found under the prefix the exports were written to, among
//! an older FULL export of the same table, another table's chain and an export still running.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use ddb_pitr_synth::{self as synth, SynthOutput, SynthSpec};
use serde_json::Value;

use crate::cli::{self, Run};
use crate::library;
use crate::support::{TestBucket, TestTable, assert_table_matches};

const PREFIX: &str = "backups";
/// The FULL export of `orders`, then three incrementals of 15 minutes.
const T0_MS: u64 = 1_768_385_930_622;
const RUNNING: &str = "01768399999000-0000abcd";

fn at(offset_minutes: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(T0_MS);
    let t = if offset_minutes >= 0 {
        t + Duration::from_secs(offset_minutes as u64 * 60)
    } else {
        t - Duration::from_secs(offset_minutes.unsigned_abs() * 60)
    };
    humantime::format_rfc3339_millis(t).to_string()
}

fn spec(seed: u64, table: &str, start: SystemTime, incrementals: usize) -> SynthSpec {
    library::chain_spec(seed, table, PREFIX, start, 60, incrementals)
}

struct Prefix {
    aws: cli::Aws,
    bucket: TestBucket,
    _dirs: Vec<tempfile::TempDir>,
    orders: SynthOutput,
    older: SynthOutput,
}

impl Prefix {
    async fn new() -> Prefix {
        let aws = cli::aws().await;
        let bucket = TestBucket::create(&aws.s3, "prefix").await;
        let t0 = UNIX_EPOCH + Duration::from_millis(T0_MS);
        let mut dirs = Vec::new();
        let mut outputs = Vec::new();
        for s in [
            spec(1, "orders", t0, 3),
            // An older FULL export of the same table, with other data.
            spec(2, "orders", t0 - Duration::from_secs(3600), 0),
            spec(3, "users", t0 + Duration::from_secs(1), 1),
        ] {
            let dir = tempfile::tempdir().unwrap();
            outputs.push(synth::generate(dir.path(), &s).unwrap());
            bucket.upload_dir(dir.path(), "").await;
            dirs.push(dir);
        }
        // An export still running: only `_started`.
        bucket
            .put(&format!("{PREFIX}/AWSDynamoDB/{RUNNING}/_started"), "")
            .await;
        let older = outputs.remove(1);
        let orders = outputs.remove(0);
        Prefix {
            aws,
            bucket,
            _dirs: dirs,
            orders,
            older,
        }
    }

    fn url(&self) -> String {
        self.bucket.url(&format!("{PREFIX}/"))
    }

    async fn table(&self) -> TestTable {
        TestTable::create(&self.aws.ddb, "pit", ("pk", T::S), Some(("sk", T::S))).await
    }

    async fn restore(&self, table: &TestTable, extra: &[&str]) -> Run {
        let mut args = vec!["--export-prefix".to_string(), self.url()];
        args.extend(extra.iter().map(|s| s.to_string()));
        cli::restore(&self.aws, &table.name, &args).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chain_to_each_point_is_found_and_restores_exactly() {
    let p = Prefix::new().await;
    let cases = [
        (at(-60), &p.older.expected[0], vec![&p.older.exports[0]]),
        (
            at(0),
            &p.orders.expected[0],
            p.orders.exports[..1].iter().collect(),
        ),
        (
            at(15),
            &p.orders.expected[1],
            p.orders.exports[..2].iter().collect(),
        ),
        (
            at(30),
            &p.orders.expected[2],
            p.orders.exports[..3].iter().collect(),
        ),
        (
            "latest".into(),
            &p.orders.expected[3],
            p.orders.exports.iter().collect(),
        ),
    ];
    for (to, expected, chain) in cases {
        let table = p.table().await;
        let run = p
            .restore(&table, &["--to", &to, "--source-table", "orders"])
            .await;
        run.assert_success();
        assert_table_matches(&p.aws.ddb, &table.name, expected).await;
        let found = &run.report["chain"];
        let ids: Vec<&str> = chain.iter().map(|e| e.export_id.as_str()).collect();
        assert_eq!(
            found["exports"],
            serde_json::json!(ids),
            "--to {to}: {found}"
        );
        assert_eq!(found["asked"], to.as_str());
        assert!(
            found["table_arn"]
                .as_str()
                .unwrap()
                .ends_with(":table/orders"),
            "{found}"
        );
        let reports: Vec<&str> = run.report["exports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["export_id"].as_str().unwrap())
            .collect();
        assert_eq!(reports, ids);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_reports_what_it_left_out_and_why() {
    let p = Prefix::new().await;
    let table = p.table().await;
    let run = p
        .restore(&table, &["--to", "latest", "--source-table", "orders"])
        .await;
    run.assert_success();
    let found = &run.report["chain"];
    assert_eq!(found["reached"], at(45).as_str());
    let skipped = found["skipped"].as_array().unwrap();
    let reason = |needle: &str| -> String {
        skipped
            .iter()
            .find(|s| s["export"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("{needle} not skipped: {found}"))["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(reason(RUNNING).contains("still running"));
    assert!(reason(&p.older.exports[0].export_id).starts_with("not on the chosen chain"));
    assert_eq!(
        skipped
            .iter()
            .filter(|s| s["reason"].as_str().unwrap().starts_with("another table"))
            .count(),
        2,
        "the users table's FULL and incremental: {found}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_time_between_points_or_an_unnamed_table_is_refused_before_any_write() {
    let p = Prefix::new().await;
    let table = p.table().await;
    let between = p
        .restore(&table, &["--to", &at(20), "--source-table", "orders"])
        .await;
    assert_eq!(between.code, Some(1), "{}", between.stderr);
    let errors = between.errors();
    assert!(
        errors.contains(&format!(
            "the nearest points that can be restored are {} (before) and {} (after)",
            at(15),
            at(30)
        )),
        "{errors}"
    );
    assert!(table.scan().await.is_empty(), "nothing was written");

    let unnamed = p.restore(&table, &["--to", "latest"]).await;
    assert_eq!(unnamed.code, Some(1), "{}", unnamed.stderr);
    let errors = unnamed.errors();
    for needle in [
        "holds exports of 2 tables",
        ":table/orders (5 exports)",
        ":table/users (2 exports)",
        "--source-table",
    ] {
        assert!(errors.contains(needle), "{needle:?} in {errors}");
    }
    assert!(table.scan().await.is_empty(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_lists_every_table_and_every_point() {
    let p = Prefix::new().await;
    let out = cli::command()
        .args([
            "exports",
            "--export-prefix",
            &p.url(),
            "--endpoint-url",
            &p.aws.endpoint,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tables = listing["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 2, "{listing}");
    let orders = tables
        .iter()
        .find(|t| t["table_arn"].as_str().unwrap().ends_with(":table/orders"))
        .unwrap();
    assert_eq!(orders["exports"].as_array().unwrap().len(), 5);
    let points: Vec<&str> = orders["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["time"].as_str().unwrap())
        .collect();
    let want = [at(-60), at(0), at(15), at(30), at(45)];
    assert_eq!(points, want.iter().map(String::as_str).collect::<Vec<_>>());
    let last = &orders["points"][4];
    assert_eq!(last["chain"].as_array().unwrap().len(), 4, "{last}");
    assert_eq!(listing["skipped"].as_array().unwrap().len(), 1, "{listing}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("can be restored to:"), "{stderr}");
    assert!(stderr.contains(&at(45)), "{stderr}");
}

/// The real export's chain has a real gap (the FULL export at 10:18:50.622, the first incremental from
/// 10:20): without --allow-gaps the latest point is the FULL export's; with it, the whole chain's.
#[tokio::test(flavor = "multi_thread")]
async fn the_real_exports_chain_is_found_across_its_gap_only_with_allow_gaps() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let args = |extra: &[&str]| {
        let mut args = vec![
            "--export-prefix".to_string(),
            bucket.url(""),
            "--to".into(),
            "latest".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let run = cli::restore(&aws, &table.name, &args(&["--dry-run"])).await;
    run.assert_success();
    assert_eq!(run.report["chain"]["reached"], "2026-01-14T10:18:50.622Z");
    assert_eq!(
        run.report["chain"]["exports"],
        serde_json::json!(["01768385930622-efd1a093"])
    );

    let run = cli::restore(&aws, &table.name, &args(&["--allow-gaps"])).await;
    run.assert_success();
    assert_eq!(run.report["chain"]["reached"], "2026-01-14T10:50:00.000Z");
    assert_eq!(
        run.report["chain_discontinuities"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_table_matches(
        &aws.ddb,
        &table.name,
        cli::real_export().join("expected-after-chain.jsonl"),
    )
    .await;
}
