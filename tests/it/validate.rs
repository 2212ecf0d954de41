//! `ddb-pitr validate` against moto: a good chain passes, each kind of problem fails its own row, and
//! nothing is ever written. moto has no `iam:SimulatePrincipalPolicy`, so these runs take the read-probe
//! fallback (the simulation itself is covered with `aws-smithy-mocks` in `src/validate/permissions.rs`).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType as T};
use serde_json::Value;

use crate::cli::{self, Aws, REAL_FULL, REAL_INC1, REAL_INC2, Run};
use crate::support::{self, TestBucket, TestTable};

pub(crate) async fn validate(aws: &Aws, table: &str, args: &[String]) -> Run {
    cli::finish(
        cli::command()
            .args([
                "validate",
                "--table",
                table,
                "--endpoint-url",
                &aws.endpoint,
            ])
            .args(args)
            .spawn()
            .expect("spawn ddb-pitr validate"),
    )
    .await
}

/// The rows called `name` (several for per-export checks with a common prefix).
pub(crate) fn rows<'a>(run: &'a Run, name: &str) -> Vec<&'a Value> {
    run.report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {}", run.report))
        .iter()
        .filter(|c| c["check"].as_str().is_some_and(|n| n.starts_with(name)))
        .collect()
}

/// The one row called exactly `name`.
pub(crate) fn row<'a>(run: &'a Run, name: &str) -> &'a Value {
    let found: Vec<&Value> = rows(run, name)
        .into_iter()
        .filter(|c| c["check"] == name)
        .collect();
    assert_eq!(found.len(), 1, "row {name:?} in {:#}", run.report["checks"]);
    found[0]
}

pub(crate) fn status<'a>(run: &'a Run, name: &str) -> &'a str {
    row(run, name)["status"].as_str().unwrap()
}

pub(crate) fn detail<'a>(run: &'a Run, name: &str) -> &'a str {
    row(run, name)["detail"].as_str().unwrap()
}

fn failing(run: &Run) -> Vec<String> {
    run.report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["check"].as_str().unwrap().to_owned())
        .collect()
}

const FULL_ID: &str = "01768385930622-efd1a093";
const INC1_ID: &str = "01768386924000-d339e52d";
const INC2_ID: &str = "01768388186000-4a2fc3ff";

#[tokio::test(flavor = "multi_thread")]
async fn a_good_chain_passes_with_an_estimate() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let mut args = cli::export_args(&bucket, [REAL_FULL, REAL_INC1, REAL_INC2]);
    args.extend(["--allow-gaps".into(), "--max-wcu".into(), "7".into()]);
    let run = validate(&aws, &table.name, &args).await;
    assert_eq!(
        run.code,
        Some(0),
        "failing: {:?}\n{}",
        failing(&run),
        run.stderr
    );
    assert_eq!(run.report["ok"], true);

    assert_eq!(status(&run, "credentials"), "pass");
    for id in [FULL_ID, INC1_ID, INC2_ID] {
        // The fixture's summaries were rewritten after export, on purpose: a warning, not a failure.
        assert_eq!(status(&run, &format!("manifest {id}")), "warn");
        assert_eq!(status(&run, &format!("sample {id}")), "pass");
    }
    assert!(
        detail(&run, &format!("manifest {FULL_ID}")).contains("3 items in 4 data files"),
        "{}",
        detail(&run, &format!("manifest {FULL_ID}"))
    );
    assert_eq!(
        status(&run, "chain"),
        "warn",
        "a gap accepted with --allow-gaps"
    );
    assert!(
        detail(&run, "chain").contains("gap of 1m 9s 378ms"),
        "{}",
        detail(&run, "chain")
    );
    assert_eq!(status(&run, "table"), "pass");
    assert!(
        detail(&run, "table").contains("pk (S, HASH) + sk (S, RANGE)"),
        "{}",
        detail(&run, "table")
    );
    assert!(
        detail(&run, &format!("sample {INC2_ID}")).contains("5 lines"),
        "{}",
        detail(&run, &format!("sample {INC2_ID}"))
    );

    // moto cannot simulate: a warning, then read probes, and skips for what only a write could prove.
    assert_eq!(status(&run, "permissions"), "warn");
    assert!(
        detail(&run, "permissions").contains("iam:SimulatePrincipalPolicy")
            && detail(&run, "permissions").contains("probing with read calls"),
        "{}",
        detail(&run, "permissions")
    );
    assert_eq!(status(&run, "probe dynamodb:DescribeTable"), "pass");
    let probes = rows(&run, "probe s3:GetObject");
    assert_eq!(
        probes.len(),
        3 + 3,
        "each summary, and one data file of each export: {probes:#?}"
    );
    assert!(probes.iter().all(|p| p["status"] == "pass"), "{probes:#?}");
    assert_eq!(status(&run, "permission dynamodb:BatchWriteItem"), "skip");

    // 12 puts of small items and 2 deletes: 14 write units, deletes counted at their minimum.
    let e = &run.report["estimate"];
    assert_eq!(e["items"], 14);
    assert_eq!(e["sampled_lines"], 14);
    assert_eq!(e["estimated_puts"], 12);
    assert_eq!(e["estimated_deletes"], 2);
    assert_eq!(e["write_units"], 14);
    assert_eq!(e["lower_bound"], true);
    assert_eq!(e["at_max_wcu"]["seconds"], 2.0);
    assert_eq!(
        e["at_current_capacity"]["write_units_per_second"], 4000.0,
        "a new on-demand table"
    );
    let cost = e["on_demand_cost_usd"].as_f64().unwrap();
    assert!((cost - 14.0 / 1e6 * 0.625).abs() < 1e-12, "{cost}");
    assert_eq!(status(&run, "estimate"), "pass");

    assert!(
        run.stderr.contains("STATUS") && run.stderr.contains("no check failed"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_table_fails_and_the_other_checks_still_run() {
    let aws = cli::aws().await;
    let (bucket, _table) = cli::real_export_setup(&aws).await;
    let missing = support::unique_name("missing");
    let run = validate(&aws, &missing, &cli::export_args(&bucket, [REAL_FULL])).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.report["ok"], false);
    assert_eq!(failing(&run), ["table"]);
    assert_eq!(status(&run, "table"), "fail");
    assert!(
        detail(&run, "table").contains("does not exist"),
        "{}",
        detail(&run, "table")
    );
    assert_eq!(status(&run, &format!("manifest {FULL_ID}")), "warn");
    assert_eq!(status(&run, &format!("sample {FULL_ID}")), "skip");
    assert_eq!(status(&run, "chain"), "pass");
    assert_eq!(
        status(&run, "permissions"),
        "warn",
        "the permission checks ran"
    );
    // Without the table, every item counts at the 1-unit minimum.
    assert_eq!(run.report["estimate"]["write_units"], 3);
    assert_eq!(run.report["estimate"]["lower_bound"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_with_another_key_schema_fails_the_sample() {
    let aws = cli::aws().await;
    let (bucket, _right) = cli::real_export_setup(&aws).await;
    let wrong = TestTable::create(&aws.ddb, "wrong-key", ("pk", T::N), None).await;
    let run = validate(&aws, &wrong.name, &cli::export_args(&bucket, [REAL_FULL])).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(failing(&run), [format!("sample {FULL_ID}")]);
    let d = detail(&run, &format!("sample {FULL_ID}"));
    assert!(
        d.contains("does not fit table") && d.contains("pk (N, HASH)"),
        "{d}"
    );
    assert_eq!(status(&run, "table"), "pass");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_manifest_checksum_fails_its_manifest_and_skips_the_chain() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    bucket
        .put(
            &format!("AWSDynamoDB/{INC1_ID}/manifest-files.md5"),
            "AAAAAAAAAAAAAAAAAAAAAA==",
        )
        .await;
    let mut args = cli::export_args(&bucket, [REAL_FULL, REAL_INC1, REAL_INC2]);
    args.push("--allow-gaps".into());
    let run = validate(&aws, &table.name, &args).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(failing(&run), [format!("manifest {INC1_ID}")]);
    assert!(
        detail(&run, &format!("manifest {INC1_ID}")).contains("does not match manifest-files.md5"),
        "{}",
        detail(&run, &format!("manifest {INC1_ID}"))
    );
    assert_eq!(status(&run, "chain"), "skip");
    // The readable exports are still sampled and estimated.
    assert_eq!(status(&run, &format!("sample {FULL_ID}")), "pass");
    assert_eq!(status(&run, &format!("sample {INC2_ID}")), "pass");
    assert_eq!(status(&run, "estimate"), "warn");
    assert_eq!(run.report["estimate"]["items"], 3 + 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gap_in_the_chain_fails_without_allow_gaps() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let run = validate(
        &aws,
        &table.name,
        &cli::export_args(&bucket, [REAL_FULL, REAL_INC1, REAL_INC2]),
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(failing(&run), ["chain"]);
    assert!(
        detail(&run, "chain").contains("gap of 1m 9s 378ms")
            && detail(&run, "chain").contains("--allow-gaps"),
        "{}",
        detail(&run, "chain")
    );
    assert!(run.stderr.contains("1 check failed"), "{}", run.stderr);
}

/// Every operation validate may call. Anything else fails the test, so a new call has to be added here
/// on purpose, after checking that it is read-only.
const READ_ONLY: &[(&str, &str)] = &[
    ("sts", "GetCallerIdentity"),
    ("s3", "GetObject"),
    ("s3", "HeadObject"),
    ("s3", "ListObjectsV2"),
    // The report location's bucket (a 404 tells a missing one).
    ("s3", "HeadBucket"),
    ("dynamodb", "DescribeTable"),
    ("iam", "GetRole"),
    ("iam", "GetUser"),
    ("iam", "SimulatePrincipalPolicy"),
    ("applicationautoscaling", "DescribeScalableTargets"),
    ("application auto scaling", "DescribeScalableTargets"),
];

async fn bucket_state(bucket: &TestBucket) -> BTreeMap<String, Vec<u8>> {
    let mut state = BTreeMap::new();
    for key in bucket.keys().await {
        let bytes = bucket.get(&key).await.expect("listed object exists");
        state.insert(key, bytes);
    }
    state
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_makes_no_writes() {
    use ddb_pitr::aws::Clients;
    use ddb_pitr::export::chain::Expectations;
    use ddb_pitr::table::capacity::AutoScaling;
    use ddb_pitr::testing::calls::CallLog;
    use ddb_pitr::validate::{self, DEFAULT_PRICE_PER_MILLION_WRU, Options};

    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    aws.ddb
        .put_item()
        .table_name(&table.name)
        .item("pk", AttributeValue::S("already".into()))
        .item("sk", AttributeValue::S("there".into()))
        .send()
        .await
        .unwrap();
    let items_before = table.scan().await;
    let objects_before = bucket_state(&bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let local_checkpoint = dir.path().join("cp.json");

    let log = CallLog::new();
    let conf = support::sdk_config(&aws.endpoint).await;
    let clients = Clients::from_sdk_config(&conf).with_interceptor(log.clone());
    let exports = [REAL_FULL, REAL_INC1, REAL_INC2]
        .iter()
        .map(|k| format!("s3://{}/{k}", bucket.name).parse().unwrap())
        .collect();
    let mut opts = Options {
        table: table.name.clone(),
        exports,
        find: None,
        request: None,
        expect: Expectations {
            allow_gaps: true,
            ..Expectations::default()
        },
        resume: Some(
            format!("s3://{}/checkpoints/cp.json", bucket.name)
                .parse()
                .unwrap(),
        ),
        report: Some(format!("s3://{}/reports/", bucket.name).parse().unwrap()),
        manage_capacity: true,
        autoscaling: AutoScaling::Adjust,
        max_wcu: Some(100),
        price_per_million_wru: DEFAULT_PRICE_PER_MILLION_WRU,
        sample_lines: 1000,
    };
    let report = validate::run(&opts, &clients).await;
    assert!(!report.failed(), "{}", report.render_table());
    let checkpoint = report
        .checks
        .iter()
        .find(|c| c.check == "checkpoint")
        .unwrap();
    assert!(
        checkpoint.detail.contains("does not exist yet"),
        "{checkpoint:?}"
    );
    // A local checkpoint location too: read if present, never created.
    opts.resume = Some(local_checkpoint.to_str().unwrap().parse().unwrap());
    let report = validate::run(&opts, &clients).await;
    assert!(!report.failed(), "{}", report.render_table());

    let calls = log.calls();
    let written: Vec<_> = calls
        .iter()
        .filter(|(service, op)| {
            !READ_ONLY
                .iter()
                .any(|(s, o)| service.eq_ignore_ascii_case(s) && op == o)
        })
        .collect();
    assert!(
        written.is_empty(),
        "validate called operations outside the read-only list: {written:?} (all calls: {calls:?})"
    );
    for expected in [
        "GetCallerIdentity",
        "GetObject",
        "HeadObject",
        "DescribeTable",
    ] {
        assert!(
            calls.iter().any(|(_, op)| op == expected),
            "the log saw the run: {expected} missing from {calls:?}; records {:?}",
            log.records()
        );
    }

    assert_eq!(table.scan().await, items_before, "the table is unchanged");
    assert_eq!(
        bucket_state(&bucket).await,
        objects_before,
        "no object was created, changed or deleted (no checkpoint, no report)"
    );
    assert!(
        !local_checkpoint.exists(),
        "the local checkpoint was not created"
    );
}

/// What validate prints for a person: each warning once, plurals right, one duration format, costs in
/// dollars and cents, and no passing probe on a checkpoint whose bucket does not exist.
#[tokio::test(flavor = "multi_thread")]
async fn the_table_says_each_thing_once_and_in_one_format() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let mut args = cli::export_args(&bucket, [REAL_FULL, REAL_INC1]);
    args.extend(["--allow-gaps".into(), "--resume".into()]);
    args.push(format!("s3://{}-gone/cp.json", bucket.name));
    let run = validate(&aws, &table.name, &args).await;
    assert_eq!(run.code, Some(1));
    let stderr = &run.stderr;
    assert_eq!(
        stderr
            .matches("WARN manifest-summary.json does not match")
            .count(),
        2,
        "once per export: {stderr}"
    );
    assert!(stderr.contains("validate: 1 check failed, "), "{stderr}");
    assert!(stderr.contains("gap of 1m 9s 378ms"), "{stderr}");
    assert!(!stderr.contains(" ms "), "one duration format: {stderr}");
    assert!(stderr.contains("< $0.01 on demand"), "{stderr}");
    assert!(!stderr.contains("≈ <"), "{stderr}");
    let checkpoint_probe = stderr
        .lines()
        .find(|l| l.contains("probe s3:GetObject") && l.contains("-gone/cp.json"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(!checkpoint_probe.starts_with("pass"), "{checkpoint_probe}");
}
