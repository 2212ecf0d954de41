//! The cloud path end to end on one machine. moto runs `statemachine/restore.asl.json` for real, with
//! `infra/template.yaml`'s substitutions applied. Its Lambda tasks reach the real planner and reporter
//! binaries under `cargo lambda watch` through the router in `scripts/moto_guard.py`, an event-source
//! poller delivers SQS messages to the real worker binary, and executions are started and followed with
//! `ddb-pitr cloud start` and `ddb-pitr cloud status`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use ddb_pitr::report::{FileStatus, Report, RunStatus};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cli::{self, REAL_FULL, REAL_INC1, REAL_INC2};
use crate::cloud::{Cloud, sqs_event, test_worker_options};
use crate::distributed::{chain_spec, generated};
use crate::lambda_watch::{Watch, free_port, http_post};
use crate::support::{self, TestBucket, assert_table_matches, unique_name};

fn template() -> serde_yaml::Value {
    let path = support::repo_root().join("infra/template.yaml");
    serde_yaml::from_slice(&std::fs::read(&path).unwrap()).expect("infra/template.yaml is YAML")
}

fn asl() -> String {
    std::fs::read_to_string(support::repo_root().join("statemachine/restore.asl.json")).unwrap()
}

/// Every `${Name}` in a definition.
fn placeholders(definition: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = definition;
    while let Some(i) = rest.find("${") {
        let tail = &rest[i + 2..];
        let end = tail.find('}').expect("a closed ${…}");
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The state machine's DefinitionSubstitutions keys, and its DefinitionUri.
fn template_substitutions() -> (BTreeSet<String>, String) {
    let t = template();
    let props = &t["Resources"]["RestoreStateMachine"]["Properties"];
    let keys = props["DefinitionSubstitutions"]
        .as_mapping()
        .expect("DefinitionSubstitutions")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    (keys, props["DefinitionUri"].as_str().unwrap().to_owned())
}

#[test]
fn every_asl_placeholder_is_substituted_by_the_template_and_nothing_else_is() {
    let (keys, uri) = template_substitutions();
    assert_eq!(
        support::repo_root()
            .join("infra")
            .join(&uri)
            .canonicalize()
            .unwrap(),
        support::repo_root()
            .join("statemachine/restore.asl.json")
            .canonicalize()
            .unwrap(),
        "DefinitionUri"
    );
    let used = placeholders(&asl());
    assert!(!used.is_empty());
    assert_eq!(used, keys, "ASL placeholders vs DefinitionSubstitutions");
}

/// The local stand-in of each substitution: `<Name>FunctionArn` is the ARN of the function binary
/// `functions/<name>`, which the router hands to cargo lambda watch under its bare name.
fn local_definition() -> String {
    let (keys, _) = template_substitutions();
    let mut values = BTreeMap::new();
    for key in keys {
        let function = key
            .strip_suffix("FunctionArn")
            .unwrap_or_else(|| panic!("no local value for substitution {key}: add one here"))
            .to_ascii_lowercase();
        assert!(
            support::repo_root()
                .join("functions")
                .join(&function)
                .join("Cargo.toml")
                .exists(),
            "{key}: no function crate functions/{function}"
        );
        values.insert(
            key,
            format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
        );
    }
    let mut definition = asl();
    for (key, value) in &values {
        definition = definition.replace(&format!("${{{key}}}"), value);
    }
    assert!(placeholders(&definition).is_empty(), "{definition}");
    definition
}

/// What Lambda's SQS event source mapping does: receive a batch, invoke the worker function with it,
/// delete what did not come back as a batch item failure.
async fn event_source(cloud: Arc<Cloud>, watch: Arc<Watch>, stop: CancellationToken) {
    loop {
        let messages = tokio::select! {
            m = cloud.receive() => m,
            _ = stop.cancelled() => return,
        };
        if messages.is_empty() {
            continue;
        }
        let event = serde_json::to_value(sqs_event(&messages, &cloud.queue.arn)).unwrap();
        let response = watch.call("worker", &event).await;
        let response: SqsBatchResponse =
            serde_json::from_value(response).expect("an SQS batch response");
        cloud.delete_succeeded(&messages, &response).await;
    }
}

struct Execution {
    arn: String,
    restore_id: String,
    /// Exit status and stdout (the report, or the status when there is none) of
    /// `ddb-pitr cloud status --wait`.
    code: Option<i32>,
    stdout: Value,
    stderr: String,
}

impl Execution {
    fn report(&self) -> Report {
        serde_json::from_value(self.stdout.clone()).unwrap_or_else(|e| {
            panic!(
                "cloud status printed no report ({e}): {}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

async fn run_execution(
    endpoint: &str,
    state_machine: &str,
    control_table: &str,
    table: &str,
    exports: &[String],
    report_uri: &str,
    restore_id: Option<&str>,
) -> Execution {
    let mut start = cli::command();
    start.args(["cloud", "start", "--endpoint-url", endpoint]);
    start.args(["--state-machine-arn", state_machine, "--table", table]);
    start.args(["--allow-gaps", "--report-uri", report_uri]);
    if let Some(id) = restore_id {
        start.args(["--restore-id", id]);
    }
    for e in exports {
        start.args(["--export", e]);
    }
    let out = start.output().await.unwrap();
    assert!(
        out.status.success(),
        "cloud start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let arn = started["execution_arn"].as_str().unwrap().to_owned();
    let restore_id = started["restore_id"].as_str().unwrap().to_owned();

    let mut status = cli::command();
    status.args(["cloud", "status", &arn, "--wait", "--interval", "1s"]);
    status.args(["--control-table", control_table, "--endpoint-url", endpoint]);
    let out = tokio::time::timeout(Duration::from_secs(300), status.output())
        .await
        .unwrap_or_else(|_| panic!("execution {arn} still running after 300 s"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cloud status printed no JSON ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    Execution {
        arn,
        restore_id,
        code: out.status.code(),
        stdout,
        stderr,
    }
}

async fn report_object(s3: &aws_sdk_s3::Client, bucket: &str, restore_id: &str) -> Report {
    let key = format!("reports/ddb-pitr-report-{restore_id}.json");
    let body = s3
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("report s3://{bucket}/{key}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_machine_restores_two_chains_and_fails_on_a_corrupt_file_and_a_missing_table() {
    let watch_port = free_port();
    let moto = support::start_moto(&["--lambda-url", &format!("http://127.0.0.1:{watch_port}")]);
    let (status, body) = http_post(
        moto.port,
        "/moto-api/config",
        &json!({"stepfunctions": {"execute_state_machine": true}}),
    )
    .await;
    // moto answers 201 and does not echo the stepfunctions key, though the setting takes effect.
    assert!((200..300).contains(&status), "{status} {body}");
    let cloud = Cloud::at(cli::aws_at(&moto.endpoint).await, test_worker_options()).await;
    let watch = Arc::new(
        Watch::start_on(
            watch_port,
            &[
                ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
                ("DDB_PITR_CONTROL_TABLE", cloud.control_table.name.clone()),
                ("DDB_PITR_QUEUE_URL", cloud.queue.url.clone()),
                ("DDB_PITR_CHECKPOINT_INTERVAL", "200ms".into()),
                ("DDB_PITR_FALLBACK_TIMEOUT", "60s".into()),
                ("DDB_PITR_MIN_POLL", "1s".into()),
            ],
        )
        .await,
    );
    let sfn = aws_sdk_sfn::Client::new(&support::sdk_config(&moto.endpoint).await);
    let state_machine = sfn
        .create_state_machine()
        .name(unique_name("restore"))
        .definition(local_definition())
        .role_arn("arn:aws:iam::123456789012:role/ddb-pitr-states")
        .send()
        .await
        .expect("CreateStateMachine")
        .state_machine_arn;
    let stop = CancellationToken::new();
    let poller = tokio::spawn(event_source(cloud.clone(), watch.clone(), stop.clone()));

    let reports = TestBucket::create(&cloud.aws.s3, "reports").await;
    let report_uri = reports.url("reports/");
    // The shared real chain.
    let (real_bucket, real_table) = cli::real_export_setup(&cloud.aws).await;
    let real_exports: Vec<String> = [REAL_FULL, REAL_INC1, REAL_INC2]
        .map(|k| real_bucket.url(k))
        .to_vec();
    // A generated multi-file chain.
    let (_dir, gen_out, _gen_bucket, gen_table, gen_exports) =
        generated(&cloud, chain_spec(41, 4, 300)).await;
    // The real chain with one data file of the FULL export replaced: its MD5 no longer matches.
    let (bad_bucket, bad_table) = cli::real_export_setup(&cloud.aws).await;
    let manifest = std::fs::read_to_string(
        cli::real_export().join("AWSDynamoDB/01768385930622-efd1a093/manifest-files.json"),
    )
    .unwrap();
    let first: Value = serde_json::from_str(manifest.lines().next().unwrap()).unwrap();
    let bad_key = first["dataFileS3Key"].as_str().unwrap().to_owned();
    let garbage = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"{\"Item\":{\"pk\":{\"S\":\"x\"},\"sk\":{\"S\":\"not-in-this-export\"}}}\n")
            .unwrap();
        gz.finish().unwrap()
    };
    bad_bucket.put(&bad_key, garbage).await;
    let bad_exports: Vec<String> = [REAL_FULL, REAL_INC1, REAL_INC2]
        .map(|k| bad_bucket.url(k))
        .to_vec();

    let control = &cloud.control_table.name;
    let missing_table = unique_name("missing");
    let (real, gen_run, bad, unplanned) = tokio::join!(
        run_execution(
            &moto.endpoint,
            &state_machine,
            control,
            &real_table.name,
            &real_exports,
            &report_uri,
            None
        ),
        run_execution(
            &moto.endpoint,
            &state_machine,
            control,
            &gen_table.name,
            &gen_exports,
            &report_uri,
            None
        ),
        run_execution(
            &moto.endpoint,
            &state_machine,
            control,
            &bad_table.name,
            &bad_exports,
            &report_uri,
            None
        ),
        // A target table that does not exist: the planner fails with the stable errorType Fatal, which
        // the state machine does not retry but catches into PlanningFailed.
        run_execution(
            &moto.endpoint,
            &state_machine,
            control,
            &missing_table,
            &real_exports,
            &report_uri,
            None
        ),
    );
    stop.cancel();
    poller.await.unwrap();
    let logs = watch.log_tail();

    // The worker function printed one CloudWatch EMF document per file lease.
    let emf: Vec<Value> = watch
        .log()
        .lines()
        .filter(|l| l.contains("\"_aws\""))
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let real_leases: Vec<&Value> = emf
        .iter()
        .filter(|d| d["Table"] == real_table.name.as_str())
        .collect();
    assert!(
        !real_leases.is_empty(),
        "no EMF lines for {}\n{logs}",
        real_table.name
    );
    let restored: f64 = real_leases
        .iter()
        .map(|d| d["ItemsRestored"].as_f64().unwrap())
        .sum();
    assert_eq!(restored, 14.0, "3 + 6 + 5 lines of the real chain");
    for d in &real_leases {
        let metrics = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], "ddb-pitr");
        for name in ["Throttles", "Retries", "ItemsPerSecond"] {
            assert!(d[name].is_number(), "{name} in {d}");
        }
    }

    // Both chains: SUCCEEDED, the table equals the expected state, and the report in S3 (which
    // `cloud status` printed) matches it.
    for (run, exports) in [(&real, 3), (&gen_run, 3)] {
        assert_eq!(run.code, Some(0), "{}: {}\n{logs}", run.arn, run.stderr);
        assert!(run.stderr.contains("execution SUCCEEDED"), "{}", run.stderr);
        let report = run.report();
        assert_eq!(report.status, RunStatus::Succeeded);
        assert_eq!(report.exports.len(), exports);
        let stored = report_object(&cloud.aws.s3, &reports.name, &run.restore_id).await;
        assert_eq!(
            serde_json::to_value(&stored).unwrap(),
            serde_json::to_value(&report).unwrap()
        );
        for f in report.exports.iter().flat_map(|e| &e.files) {
            assert_eq!(f.status, FileStatus::Done, "{}", f.key);
            assert!(f.md5_verified, "{}", f.key);
            assert_eq!(f.items_put + f.items_deleted, f.expected_items, "{}", f.key);
        }
    }
    assert_table_matches(
        &cloud.aws.ddb,
        &real_table.name,
        cli::real_export().join("expected-after-chain.jsonl"),
    )
    .await;
    let per_export: Vec<_> = real
        .report()
        .exports
        .iter()
        .map(|e| (e.items_put, e.items_deleted))
        .collect();
    assert_eq!(per_export, vec![(3, 0), (6, 0), (3, 2)]);
    assert_table_matches(
        &cloud.aws.ddb,
        &gen_table.name,
        gen_out.expected.last().unwrap(),
    )
    .await;

    // The corrupt chain: the Fail state names the failed files' count, its cause points at the report,
    // and the report names the file.
    assert_eq!(bad.code, Some(1), "{}", bad.stderr);
    let bad_report = bad.report();
    assert_eq!(bad_report.status, RunStatus::Failed);
    let execution = sfn
        .describe_execution()
        .execution_arn(&bad.arn)
        .send()
        .await
        .unwrap();
    assert_eq!(execution.status().as_str(), "FAILED");
    assert_eq!(execution.error(), Some("FilesFailed.1"));
    let cause = execution.cause().unwrap();
    let bad_report_uri = format!(
        "s3://{}/reports/ddb-pitr-report-{}.json",
        reports.name, bad.restore_id
    );
    assert!(cause.contains(&bad_report_uri), "{cause}");
    assert!(cause.contains(&bad_key), "{cause}");
    let failed: Vec<_> = bad_report
        .exports
        .iter()
        .flat_map(|e| &e.files)
        .filter(|f| f.status == FileStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].key, bad_key);
    assert!(
        failed[0].error.as_deref().unwrap().contains(&bad_key),
        "{failed:?}"
    );
    // Later exports were never applied.
    assert!(
        bad_report.exports[1..]
            .iter()
            .flat_map(|e| &e.files)
            .all(|f| f.status == FileStatus::Pending)
    );
    assert_eq!(
        serde_json::to_value(report_object(&cloud.aws.s3, &reports.name, &bad.restore_id).await)
            .unwrap(),
        serde_json::to_value(&bad_report).unwrap()
    );

    assert_eq!(unplanned.code, Some(1), "{}", unplanned.stderr);
    assert_eq!(
        unplanned.stdout["execution_status"], "FAILED",
        "{}",
        unplanned.stdout
    );
    assert_eq!(unplanned.stdout["error"], "Fatal", "{}", unplanned.stdout);
    let cause = unplanned.stdout["cause"].as_str().unwrap();
    assert!(cause.contains(&missing_table), "{cause}");
    assert!(unplanned.stdout["table"].is_null(), "never planned");
    let history = sfn
        .get_execution_history()
        .execution_arn(&unplanned.arn)
        .send()
        .await
        .unwrap();
    let scheduled = history
        .events()
        .iter()
        .filter(|e| e.r#type().as_str() == "TaskScheduled")
        .count();
    assert_eq!(scheduled, 1, "Fatal is not retried");
    assert!(
        history
            .events()
            .iter()
            .any(|e| e.r#type().as_str() == "FailStateEntered"
                && e.state_entered_event_details()
                    .is_some_and(|d| d.name() == "PlanningFailed")),
        "{history:?}"
    );

    // The way forward from the corrupt chain: put the right object back and start the same restore id
    // again. It runs as a new execution (Step Functions keeps the first one's name), which retries the FAILED
    // file, applies the exports after it, and succeeds with the table exact.
    bad_bucket
        .put(
            &bad_key,
            std::fs::read(cli::real_export().join(&bad_key)).unwrap(),
        )
        .await;
    let stop = CancellationToken::new();
    let poller = tokio::spawn(event_source(cloud.clone(), watch.clone(), stop.clone()));
    let continued = run_execution(
        &moto.endpoint,
        &state_machine,
        control,
        &bad_table.name,
        &bad_exports,
        &report_uri,
        Some(&bad.restore_id),
    )
    .await;
    stop.cancel();
    poller.await.unwrap();
    assert_eq!(continued.restore_id, bad.restore_id);
    assert!(
        continued.arn.ends_with(&format!(":{}-2", bad.restore_id)),
        "{} continues {}",
        continued.arn,
        bad.arn
    );
    assert_eq!(
        continued.code,
        Some(0),
        "{}\n{}",
        continued.stderr,
        watch.log_tail()
    );
    let report = continued.report();
    assert_eq!(report.status, RunStatus::Succeeded);
    assert!(
        report
            .exports
            .iter()
            .flat_map(|e| &e.files)
            .all(|f| f.status == FileStatus::Done)
    );
    assert_table_matches(
        &cloud.aws.ddb,
        &bad_table.name,
        cli::real_export().join("expected-after-chain.jsonl"),
    )
    .await;

    Arc::try_unwrap(watch)
        .ok()
        .expect("the poller is done with the watch")
        .stop()
        .await;
}
