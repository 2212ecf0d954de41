//! DynamoDB's export APIs, which moto cannot serve as DynamoDB does (it makes no incremental exports and
//! writes no manifests): `--request-export` (ExportTableToPointInTime, DescribeExport,
//! DescribeContinuousBackups, DescribeTable) and `--source-table ARN` without a prefix (ListExports,
//! DescribeExport) are answered by `aws-smithy-mocks`. Everything else is real: the exports are generated
//! and placed in moto's S3 where the mocked DescribeExport says they landed, and restored into a moto
//! table.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::operation::describe_continuous_backups::DescribeContinuousBackupsOutput;
use aws_sdk_dynamodb::operation::describe_export::DescribeExportOutput;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
use aws_sdk_dynamodb::operation::export_table_to_point_in_time::{
    ExportTableToPointInTimeInput, ExportTableToPointInTimeOutput,
};
use aws_sdk_dynamodb::operation::list_exports::ListExportsOutput;
use aws_sdk_dynamodb::types::{
    ContinuousBackupsDescription, ContinuousBackupsStatus, ExportDescription, ExportStatus,
    ExportSummary, ExportType, ExportViewType, PointInTimeRecoveryDescription,
    PointInTimeRecoveryStatus, ScalarAttributeType as T, TableDescription,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use ddb_pitr::aws::Clients;
use ddb_pitr::export::discover::{self, Find, Origin, Target};
use ddb_pitr::export::request::RequestOptions;
use ddb_pitr::export::resolve;
use ddb_pitr::export::source::S3Reader;
use ddb_pitr::local::{self, RestoreOptions};
use ddb_pitr_synth::{self as synth, SynthOutput, SynthSpec};
use serde_json::Value;

use crate::cli;
use crate::library;
use crate::support::{self, TestBucket, TestTable, assert_table_matches};

const T0_MS: u64 = 1_768_385_930_622;
const PREFIX: &str = "backups";
/// What the mocked DescribeExport says DynamoDB billed for the requested export.
const BILLED: i64 = 12_345_678;

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(T0_MS)
}

fn spec(seed: u64, start: SystemTime, incrementals: usize, prefix: &str) -> SynthSpec {
    library::chain_spec(seed, "orders", prefix, start, 50, incrementals)
}

fn options(table: &str, find: Find, request: Option<RequestOptions>) -> RestoreOptions {
    RestoreOptions {
        find: Some(find),
        request,
        ..library::restore_options(table)
    }
}

fn export_arn(table_arn: &str, export_id: &str) -> String {
    format!("{table_arn}/export/{export_id}")
}

fn described(arn: &str, status: ExportStatus, bucket: &str, manifest: &str) -> ExportDescription {
    ExportDescription::builder()
        .export_arn(arn)
        .export_status(status)
        .s3_bucket(bucket)
        .export_manifest(manifest)
        .billed_size_bytes(BILLED)
        .item_count(22)
        .build()
}

/// Moves `<root>/<prefix>/AWSDynamoDB/<id>/` out of `root` into a new folder, keeping its relative path:
/// the export DynamoDB has not finished yet.
fn hold_back(root: &Path, export_id: &str) -> tempfile::TempDir {
    let held = tempfile::tempdir().unwrap();
    let rel = format!("{PREFIX}/AWSDynamoDB/{export_id}");
    std::fs::create_dir_all(held.path().join(&rel).parent().unwrap()).unwrap();
    std::fs::rename(root.join(&rel), held.path().join(&rel)).unwrap();
    held
}

/// The source table's export APIs: a PITR window around the exports, a table too big for a FULL export
/// to be the cheaper one, and one requested export that stays IN_PROGRESS until `placed`.
struct RequestMock {
    calls: Arc<Mutex<Vec<&'static str>>>,
    requests: tokio::sync::mpsc::UnboundedReceiver<ExportTableToPointInTimeInput>,
    placed: Arc<AtomicBool>,
    client: aws_sdk_dynamodb::Client,
}

impl RequestMock {
    fn new(bucket: &str, export_arn: &str, manifest: &str) -> RequestMock {
        let calls: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        let placed = Arc::new(AtomicBool::new(false));
        let (tx, requests) = tokio::sync::mpsc::unbounded_channel();
        let log = |name: &'static str| {
            let calls = calls.clone();
            move || calls.lock().unwrap().push(name)
        };
        let backups = {
            let log = log("DescribeContinuousBackups");
            mock!(aws_sdk_dynamodb::Client::describe_continuous_backups).then_output(move || {
                log();
                let window = PointInTimeRecoveryDescription::builder()
                    .point_in_time_recovery_status(PointInTimeRecoveryStatus::Enabled)
                    .earliest_restorable_date_time((t0() - Duration::from_secs(3600)).into())
                    .latest_restorable_date_time((t0() + Duration::from_secs(7200)).into())
                    .build();
                DescribeContinuousBackupsOutput::builder()
                    .continuous_backups_description(
                        ContinuousBackupsDescription::builder()
                            .continuous_backups_status(ContinuousBackupsStatus::Enabled)
                            .point_in_time_recovery_description(window)
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
        };
        let describe_table = {
            let log = log("DescribeTable");
            mock!(aws_sdk_dynamodb::Client::describe_table).then_output(move || {
                log();
                DescribeTableOutput::builder()
                    .table(
                        TableDescription::builder()
                            .table_size_bytes(50_000_000_000)
                            .build(),
                    )
                    .build()
            })
        };
        let export = {
            let log = log("ExportTableToPointInTime");
            let arn = export_arn.to_owned();
            mock!(aws_sdk_dynamodb::Client::export_table_to_point_in_time).then_compute_output(
                move |input| {
                    log();
                    tx.send(input.clone()).unwrap();
                    ExportTableToPointInTimeOutput::builder()
                        .export_description(
                            ExportDescription::builder()
                                .export_arn(&arn)
                                .export_status(ExportStatus::InProgress)
                                .build(),
                        )
                        .build()
                },
            )
        };
        let describe_export = {
            let log = log("DescribeExport");
            let (arn, bucket, manifest, placed) = (
                export_arn.to_owned(),
                bucket.to_owned(),
                manifest.to_owned(),
                placed.clone(),
            );
            mock!(aws_sdk_dynamodb::Client::describe_export)
                .match_requests({
                    let arn = arn.clone();
                    move |r| r.export_arn() == Some(arn.as_str())
                })
                .then_output(move || {
                    log();
                    let status = if placed.load(Ordering::SeqCst) {
                        ExportStatus::Completed
                    } else {
                        ExportStatus::InProgress
                    };
                    DescribeExportOutput::builder()
                        .export_description(described(&arn, status, &bucket, &manifest))
                        .build()
                })
        };
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            &[&backups, &describe_table, &export, &describe_export]
        );
        RequestMock {
            calls,
            requests,
            placed,
            client,
        }
    }
}

/// `--to` a time no chain ends at, with `--request-export`: one INCREMENTAL export from the FULL export
/// to the time is asked for. The first run gives up waiting (no write); the re-run asks again with the
/// same ClientToken, the export lands, and the restore is exact, with the request and its billed bytes in
/// the report.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_export_is_requested_once_waited_for_and_restored() {
    let aws = cli::aws().await;
    let bucket = Arc::new(TestBucket::create(&aws.s3, "request").await);
    let dir = tempfile::tempdir().unwrap();
    let out: SynthOutput = synth::generate(dir.path(), &spec(7, t0(), 1, PREFIX)).unwrap();
    let table_arn = spec(7, t0(), 1, PREFIX).table_arn();
    let incremental = &out.exports[1];
    let held = hold_back(dir.path(), &incremental.export_id);
    bucket.upload_dir(dir.path(), "").await;
    let arn = export_arn(&table_arn, &incremental.export_id);
    let mut mock = RequestMock::new(&bucket.name, &arn, &incremental.summary_key);

    let base = Clients::from_sdk_config(&support::sdk_config(&aws.endpoint).await);
    let clients = Clients {
        source: mock.client.clone(),
        ..base
    };
    let table = TestTable::create(&aws.ddb, "requested", ("pk", T::S), Some(("sk", T::S))).await;
    let to = t0() + Duration::from_secs(15 * 60);
    let find = Find {
        origin: Origin::Prefix(bucket.url(&format!("{PREFIX}/")).parse().unwrap()),
        source_table: None,
        to: Target::At(to),
        allow_gaps: false,
    };
    let wait = |timeout| RequestOptions {
        poll: Duration::from_millis(20),
        timeout,
        dry_run: false,
    };

    // Run 1: the export is still running when the wait ends. Nothing is written.
    let first = local::run(
        &options(
            &table.name,
            find.clone(),
            Some(wait(Duration::from_millis(200))),
        ),
        &clients,
        std::future::pending(),
    )
    .await;
    let e = first
        .error
        .expect("the wait ends before the export")
        .to_string();
    assert!(e.contains("still running"), "{e}");
    assert!(e.contains("run again waits for it"), "{e}");
    assert!(table.scan().await.is_empty(), "no write before the chain");
    let asked = mock.requests.recv().await.unwrap();

    // Run 2: DynamoDB is asked again; the export lands once it has been.
    let placer = {
        let (bucket, placed) = (bucket.clone(), mock.placed.clone());
        let held = held.path().to_owned();
        let mut requests =
            std::mem::replace(&mut mock.requests, tokio::sync::mpsc::unbounded_channel().1);
        tokio::spawn(async move {
            let again = requests.recv().await.unwrap();
            bucket.upload_dir(&held, "").await;
            placed.store(true, Ordering::SeqCst);
            again
        })
    };
    let second = local::run(
        &options(&table.name, find, Some(wait(Duration::from_secs(60)))),
        &clients,
        std::future::pending(),
    )
    .await;
    assert!(second.error.is_none(), "{:?}", second.error);
    let again = placer.await.unwrap();
    assert_table_matches(&aws.ddb, &table.name, &out.expected[1]).await;

    // What was asked: an incremental export of the window, into the prefix, the same both times.
    assert_eq!(asked, again, "a re-run asks for the same export");
    assert_eq!(asked.table_arn(), Some(table_arn.as_str()));
    assert_eq!(asked.export_type(), Some(&ExportType::IncrementalExport));
    let spec = asked.incremental_export_specification().unwrap();
    assert_eq!(
        SystemTime::try_from(*spec.export_from_time().unwrap()).unwrap(),
        t0()
    );
    assert_eq!(
        SystemTime::try_from(*spec.export_to_time().unwrap()).unwrap(),
        to
    );
    assert_eq!(
        spec.export_view_type(),
        Some(&ExportViewType::NewAndOldImages)
    );
    assert_eq!(asked.s3_bucket(), Some(bucket.name.as_str()));
    assert_eq!(asked.s3_prefix(), Some(PREFIX));
    let token = asked.client_token().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{token}");

    let calls = mock.calls.lock().unwrap().clone();
    let count = |name| calls.iter().filter(|c| **c == name).count();
    assert_eq!(count("ExportTableToPointInTime"), 2, "{calls:?}");
    assert!(
        count("DescribeExport") >= 3,
        "waited with DescribeExport: {calls:?}"
    );
    assert_eq!(
        calls.first(),
        Some(&"DescribeContinuousBackups"),
        "the PITR window is read before anything is asked: {calls:?}"
    );

    let report = serde_json::to_value(&second.report).unwrap();
    let chain = &report["chain"];
    assert_eq!(
        chain["exports"],
        serde_json::json!([out.exports[0].export_id, incremental.export_id])
    );
    let requested = &chain["requested"][0];
    assert_eq!(requested["export_arn"], arn.as_str());
    assert_eq!(requested["type"], "INCREMENTAL");
    assert_eq!(requested["client_token"], token.as_str());
    assert_eq!(requested["billed_bytes"], BILLED);
    assert_eq!(
        chain["reached"],
        humantime::format_rfc3339_millis(to).to_string()
    );
}

/// `--source-table ARN` without a prefix: the exports are the ones ListExports lists (two pages here),
/// wherever DescribeExport says they landed (two buckets), and running ones are skipped.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_prefix_the_exports_dynamodb_lists_are_found_wherever_they_landed() {
    let aws = cli::aws().await;
    let main = TestBucket::create(&aws.s3, "listed").await;
    let old = TestBucket::create(&aws.s3, "listed-old").await;
    let mut dirs = Vec::new();
    let mut outs = Vec::new();
    for (s, bucket) in [
        (spec(11, t0(), 3, PREFIX), &main),
        (spec(12, t0() - Duration::from_secs(3600), 0, "old"), &old),
    ] {
        let dir = tempfile::tempdir().unwrap();
        outs.push(synth::generate(dir.path(), &s).unwrap());
        bucket.upload_dir(dir.path(), "").await;
        dirs.push(dir);
    }
    let table_arn = spec(11, t0(), 3, PREFIX).table_arn();
    let mut landed: HashMap<String, (String, String)> = HashMap::new();
    for (out, bucket) in [(&outs[0], &main), (&outs[1], &old)] {
        for e in &out.exports {
            landed.insert(
                export_arn(&table_arn, &e.export_id),
                (bucket.name.clone(), e.summary_key.clone()),
            );
        }
    }
    let running = export_arn(&table_arn, "01768399999000-0000abcd");
    let mut arns: Vec<String> = landed.keys().cloned().collect();
    arns.sort();
    let summaries: Vec<ExportSummary> = arns
        .iter()
        .map(|a| {
            ExportSummary::builder()
                .export_arn(a)
                .export_status(ExportStatus::Completed)
                .build()
        })
        .chain([ExportSummary::builder()
            .export_arn(&running)
            .export_status(ExportStatus::InProgress)
            .build()])
        .collect();
    let (page1, page2) = summaries.split_at(3);
    let (page1, page2) = (page1.to_vec(), page2.to_vec());
    let list = {
        let arn = table_arn.clone();
        mock!(aws_sdk_dynamodb::Client::list_exports).then_compute_output(move |r| {
            assert_eq!(r.table_arn(), Some(arn.as_str()));
            match r.next_token() {
                None => ListExportsOutput::builder()
                    .set_export_summaries(Some(page1.clone()))
                    .next_token("page-2")
                    .build(),
                Some("page-2") => ListExportsOutput::builder()
                    .set_export_summaries(Some(page2.clone()))
                    .build(),
                Some(other) => panic!("unknown NextToken {other}"),
            }
        })
    };
    let describe = mock!(aws_sdk_dynamodb::Client::describe_export).then_compute_output(move |r| {
        let arn = r.export_arn().unwrap();
        let (bucket, manifest) = &landed[arn];
        DescribeExportOutput::builder()
            .export_description(described(arn, ExportStatus::Completed, bucket, manifest))
            .build()
    });
    let source = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&list, &describe]);
    let base = Clients::from_sdk_config(&support::sdk_config(&aws.endpoint).await);
    let clients = Clients { source, ..base };

    // `exports --source-table ARN`: both buckets' exports, every point, the running one skipped.
    let objects = S3Reader::new(clients.exports.s3.clone());
    let origin = Origin::Table(table_arn.clone());
    let catalog = resolve::catalog(&clients, &objects, &origin).await.unwrap();
    let listing = discover::list(&catalog, None, false).unwrap();
    let listing = serde_json::to_value(&listing).unwrap();
    let points: Vec<&str> = listing["tables"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["time"].as_str().unwrap())
        .collect();
    assert_eq!(
        points.len(),
        5,
        "the older FULL, the FULL and 3 incrementals: {points:?}"
    );
    assert_eq!(listing["tables"][0]["exports"].as_array().unwrap().len(), 5);
    let skipped: Vec<&Value> = listing["skipped"].as_array().unwrap().iter().collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["export"], running.as_str());
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("IN_PROGRESS")
    );

    for (to, expected, bucket) in [
        (
            t0() + Duration::from_secs(30 * 60),
            &outs[0].expected[2],
            &main,
        ),
        (t0() - Duration::from_secs(3600), &outs[1].expected[0], &old),
    ] {
        let table = TestTable::create(&aws.ddb, "listed", ("pk", T::S), Some(("sk", T::S))).await;
        let find = Find {
            origin: origin.clone(),
            source_table: Some(table_arn.clone()),
            to: Target::At(to),
            allow_gaps: false,
        };
        let run = local::run(
            &options(&table.name, find, None),
            &clients,
            std::future::pending(),
        )
        .await;
        assert!(run.error.is_none(), "{:?}", run.error);
        assert_table_matches(&aws.ddb, &table.name, expected).await;
        let chain = run.report.chain.as_ref().unwrap();
        assert!(chain.source.contains(&table_arn), "{}", chain.source);
        assert!(
            chain.uris.iter().all(|u| u.bucket == bucket.name),
            "read from the bucket DescribeExport named"
        );
    }
}
