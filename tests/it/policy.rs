//! `ddb-pitr policy` and the access model behind it, against moto: every AWS call a real restore makes
//! (recorded by `CallLog` on the clients) is allowed by the policy of the role that made it, on the ARN it
//! named; and the binary prints the policies for both modes.

use std::time::Duration;

use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use ddb_pitr::access::policy::{actions_for, allows};
use ddb_pitr::access::{self, Role, Scope, permissions};
use ddb_pitr::aws::Clients;
use ddb_pitr::distributed::planner::Planner;
use ddb_pitr::distributed::worker::{QueueOptions, Worker, run_queue};
use ddb_pitr::export::chain::Expectations;
use ddb_pitr::export::location::{ExportUri, ReportLocation, S3Uri, StateLocation};
use ddb_pitr::export::source::S3Reader;
use ddb_pitr::local::{self, RestoreOptions};
use ddb_pitr::report::RunStatus;
use ddb_pitr::table::capacity::{AutoScaling, ManageOptions};
use ddb_pitr::testing::calls::{CallLog, Target};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

use crate::cli::{self, REAL_FULL, REAL_INC1, REAL_INC2};
use crate::cloud::{context, sqs_event, test_worker_options};
use crate::library;
use crate::support::{self, TestBucket, TestQueue, TestTable, unique_name};

/// moto's account and the tests' region.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn s3(bucket: &TestBucket, key: &str) -> S3Uri {
    S3Uri {
        bucket: bucket.name.clone(),
        key: key.into(),
    }
}

fn real_exports(bucket: &TestBucket) -> Vec<ExportUri> {
    [REAL_FULL, REAL_INC1, REAL_INC2]
        .iter()
        .map(|k| bucket.url(k).parse().unwrap())
        .collect()
}

/// The scope `ddb-pitr policy --export …` would build for these exports.
async fn scope(
    s3_client: &aws_sdk_s3::Client,
    table: &str,
    exports: &[ExportUri],
    checkpoint: Option<S3Uri>,
    report: Option<S3Uri>,
) -> Scope {
    let found = access::exports::export_access(&S3Reader::new(s3_client.clone()), exports)
        .await
        .expect("export manifests");
    Scope {
        partition: "aws".into(),
        region: REGION.into(),
        account: ACCOUNT.into(),
        table: table.into(),
        export_objects: found.objects,
        checkpoint,
        report,
        kms_keys: found.kms_keys,
        manage_capacity: false,
        autoscaling: AutoScaling::Refuse,
        control_table: String::new(),
        queue: String::new(),
        source: Default::default(),
    }
}

/// Calls of `log` that `role`'s permissions for `scope` do not allow: each IAM action of each operation,
/// on the ARN of every resource the call named.
fn uncovered(role: Role, log: &CallLog, scope: &Scope) -> Vec<String> {
    let perms = permissions(role, scope);
    let mut problems = Vec::new();
    for call in log.records() {
        let Some(actions) = actions_for(&call.service, &call.operation) else {
            problems.push(format!(
                "{} {} has no IAM mapping",
                call.service, call.operation
            ));
            continue;
        };
        for action in actions {
            let ok = match &call.target {
                None => perms.iter().any(|p| p.action == *action),
                Some(target) => allows(&perms, action, &target.arn(scope)),
            };
            if !ok {
                problems.push(format!(
                    "{} {} needs {action} on {}",
                    call.service,
                    call.operation,
                    call.target
                        .as_ref()
                        .map_or("any resource".into(), |t| t.arn(scope))
                ));
            }
        }
    }
    problems
}

fn assert_covered(role: Role, log: &CallLog, scope: &Scope) {
    let problems = uncovered(role, log, scope);
    assert!(
        problems.is_empty(),
        "{role:?} policy misses calls the code made:\n{}\npolicy: {:#}",
        problems.join("\n"),
        access::policy::policy_document(&permissions(role, scope))
    );
}

fn assert_called(log: &CallLog, expected: &[(&str, &str)]) {
    let calls = log.calls();
    for (service, op) in expected {
        assert!(
            calls.contains(&(service.to_string(), op.to_string())),
            "{service} {op} was not recorded; recorded: {calls:?}"
        );
    }
}

fn restore_options(table: &str, exports: Vec<ExportUri>) -> RestoreOptions {
    RestoreOptions {
        exports,
        expect: Expectations {
            allow_gaps: true,
            ..Expectations::default()
        },
        ..library::restore_options(table)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_restore_calls_only_what_the_local_policy_allows() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let log = CallLog::new();
    let clients = Clients::from_sdk_config(&support::sdk_config(&aws.endpoint).await)
        .with_interceptor(log.clone());
    let checkpoint = s3(&bucket, "state/restore.json");
    let report = s3(&bucket, "reports/");
    let opts = RestoreOptions {
        resume: Some(StateLocation::S3(checkpoint.clone())),
        report: Some(ReportLocation::S3(report.clone())),
        ..restore_options(&table.name, real_exports(&bucket))
    };
    // The first run finds no checkpoint (a 404) and writes one; the second resumes from it.
    for run in 0..2 {
        let outcome = local::run(&opts, &clients, std::future::pending()).await;
        assert!(
            outcome.error.is_none(),
            "run {run}: {:?}",
            outcome.report.errors
        );
        assert_eq!(outcome.report.status, RunStatus::Succeeded);
    }
    assert_called(
        &log,
        &[
            ("S3", "GetObject"),
            ("S3", "HeadObject"),
            ("S3", "PutObject"),
            ("DynamoDB", "DescribeTable"),
            // Made by the retry-less client rebuilt from the logged one: the interceptor is kept.
            ("DynamoDB", "BatchWriteItem"),
        ],
    );
    // `DynamoWriter` sends BatchWriteItem itself, with the request it takes from an SDK call stopped before
    // signing: that call is recorded, with the table it names.
    let batch_write_table = Target::Table(table.name.clone());
    assert!(
        log.records()
            .iter()
            .any(|c| c.operation == "BatchWriteItem"
                && c.target.as_ref() == Some(&batch_write_table)),
        "{:?}",
        log.records()
    );
    let scope = scope(
        &aws.s3,
        &table.name,
        &opts.exports,
        Some(checkpoint),
        Some(report),
    )
    .await;
    assert_covered(Role::Local, &log, &scope);

    // The check can fail: without the checkpoint in scope, its reads and writes are not allowed.
    let narrower = Scope {
        checkpoint: None,
        ..scope.clone()
    };
    let missing = uncovered(Role::Local, &log, &narrower);
    assert!(
        missing.iter().any(|m| m.contains("state/restore.json")),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn local_restore_with_manage_capacity_calls_only_what_its_policy_allows() {
    use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, KeySchemaElement, KeyType, ProvisionedThroughput,
    };
    let aws = cli::aws().await;
    let (bucket, _on_demand) = cli::real_export_setup(&aws).await;
    // A provisioned table under Application Auto Scaling, so --autoscaling adjust has work to do.
    let table = unique_name("policy-prov");
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(T::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    aws.ddb
        .create_table()
        .table_name(&table)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(5)
                .write_capacity_units(5)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateTable");
    let base = Clients::from_sdk_config(&support::sdk_config(&aws.endpoint).await);
    base.autoscaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Dynamodb)
        .resource_id(format!("table/{table}"))
        .scalable_dimension(ScalableDimension::DynamoDbTableWriteCapacityUnits)
        .min_capacity(5)
        .max_capacity(50)
        .send()
        .await
        .expect("RegisterScalableTarget");

    let log = CallLog::new();
    let clients = base.with_interceptor(log.clone());
    let checkpoint = s3(&bucket, "state/capacity.json");
    let opts = RestoreOptions {
        resume: Some(StateLocation::S3(checkpoint.clone())),
        manage_capacity: Some(ManageOptions {
            target_wcu: Some(20),
            autoscaling: AutoScaling::Adjust,
            poll: Duration::from_millis(20),
            timeout: Duration::from_secs(60),
        }),
        ..restore_options(&table, real_exports(&bucket))
    };
    let outcome = local::run(&opts, &clients, std::future::pending()).await;
    assert!(outcome.error.is_none(), "{:?}", outcome.report.errors);
    assert_called(
        &log,
        &[
            ("DynamoDB", "UpdateTable"),
            ("Application Auto Scaling", "DescribeScalableTargets"),
            ("Application Auto Scaling", "RegisterScalableTarget"),
        ],
    );
    let mut scope = scope(&aws.s3, &table, &opts.exports, Some(checkpoint), None).await;
    scope.manage_capacity = true;
    scope.autoscaling = AutoScaling::Adjust;
    assert_covered(Role::Local, &log, &scope);
    // The same calls are not covered by the policy printed without --manage-capacity.
    let without = Scope {
        manage_capacity: false,
        autoscaling: AutoScaling::Refuse,
        ..scope
    };
    let missing = uncovered(Role::Local, &log, &without);
    assert!(
        missing.iter().any(|m| m.contains("dynamodb:UpdateTable"))
            && missing.iter().any(|m| m.contains("RegisterScalableTarget")),
        "{missing:?}"
    );
    aws.ddb
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("DeleteTable");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_lambda_role_calls_only_what_its_policy_allows() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let base = Clients::from_sdk_config(&support::sdk_config(&aws.endpoint).await);
    let queue = TestQueue::create(&base.sqs, "policy", Duration::from_secs(3), 50).await;
    let control = TestTable::create(&aws.ddb, "control", ("pk", T::S), Some(("sk", T::S))).await;
    let (planner_log, worker_log, reporter_log) = (CallLog::new(), CallLog::new(), CallLog::new());
    let planner = planner::Handler::new(Planner::new(
        base.with_interceptor(planner_log.clone()),
        &control.name,
        &queue.url,
    ));
    let worker_clients = base.with_interceptor(worker_log.clone());
    let lambda_worker = worker::Handler::new(
        Worker::new(
            &worker_clients,
            &control.name,
            &queue.url,
            test_worker_options(),
        ),
        Duration::from_secs(60),
    );
    let queue_worker = Worker::new(
        &worker_clients,
        &control.name,
        &queue.url,
        test_worker_options(),
    );
    let reporter =
        reporter::Handler::new(&base.with_interceptor(reporter_log.clone()), &control.name);
    let call_planner = |request: Value| {
        let planner = &planner;
        async move {
            planner
                .handle(LambdaEvent::new(request, context(Duration::from_secs(900))))
                .await
                .unwrap_or_else(|d| panic!("planner: {}: {}", d.error_type, d.error_message))
        }
    };

    let id = unique_name("policy");
    let report = s3(&bucket, "reports/");
    let exports = real_exports(&bucket);
    let uris: Vec<String> = exports.iter().map(ToString::to_string).collect();
    call_planner(json!({
        "action": "plan", "restore_id": id, "table": table.name, "exports": uris,
        "allow_gaps": true, "report_uri": report.to_string(),
    }))
    .await;
    for k in 0..exports.len() {
        call_planner(json!({"action": "plan_export", "restore_id": id, "export_index": k})).await;
        // Export 0 through the Lambda handler, the others through `ddb-pitr worker`'s queue loop, so both
        // front doors of the worker role are recorded.
        let mut finished = false;
        for _ in 0..60 {
            if k == 0 {
                let messages = base
                    .sqs
                    .receive_message()
                    .queue_url(&queue.url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .expect("ReceiveMessage")
                    .messages
                    .unwrap_or_default();
                if !messages.is_empty() {
                    let response = lambda_worker
                        .handle(LambdaEvent::new(
                            sqs_event(&messages, &queue.arn),
                            context(Duration::from_secs(60)),
                        ))
                        .await
                        .unwrap_or_else(|d| panic!("worker: {}", d.error_message));
                    let failed: Vec<&str> = response
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.as_str())
                        .collect();
                    queue.delete_all_but(&messages, &failed).await;
                }
            } else {
                run_queue(
                    &queue_worker,
                    &QueueOptions {
                        queue_url: queue.url.clone(),
                        concurrency: 4,
                        wait_time: Duration::from_secs(1),
                        visibility: Duration::from_secs(30),
                        idle_exit: Some(Duration::from_secs(2)),
                    },
                    std::future::pending(),
                )
                .await
                .expect("queue worker");
            }
            let progress =
                call_planner(json!({"action": "progress", "restore_id": id, "export_index": k}))
                    .await;
            assert_eq!(progress["files_failed"], 0, "{progress}");
            if progress["export_finished"] == true {
                finished = true;
                break;
            }
        }
        assert!(finished, "export {k} did not finish");
    }
    let summary = reporter
        .handle(LambdaEvent::new(
            json!({"restore_id": id}),
            context(Duration::from_secs(300)),
        ))
        .await
        .unwrap_or_else(|d| panic!("reporter: {}", d.error_message));
    assert_eq!(summary.status, RunStatus::Succeeded);

    let mut scope = scope(&aws.s3, &table.name, &exports, None, Some(report)).await;
    scope.control_table = control.name.clone();
    scope.queue = queue.url.rsplit('/').next().unwrap().to_owned();

    assert_called(
        &planner_log,
        &[
            ("S3", "GetObject"),
            ("DynamoDB", "DescribeTable"),
            ("DynamoDB", "PutItem"),
            ("DynamoDB", "Query"),
            ("SQS", "SendMessageBatch"),
        ],
    );
    assert_called(
        &worker_log,
        &[
            ("S3", "HeadObject"),
            ("DynamoDB", "BatchWriteItem"),
            ("DynamoDB", "UpdateItem"),
            ("DynamoDB", "TransactWriteItems"),
            ("SQS", "ReceiveMessage"),
            ("SQS", "DeleteMessage"),
        ],
    );
    assert_called(
        &reporter_log,
        &[
            ("DynamoDB", "GetItem"),
            ("DynamoDB", "Query"),
            ("S3", "PutObject"),
        ],
    );
    assert_covered(Role::Planner, &planner_log, &scope);
    assert_covered(Role::Worker, &worker_log, &scope);
    assert_covered(Role::Reporter, &reporter_log, &scope);
    // The roles are apart: the worker's policy does not allow what the reporter and planner did.
    assert!(!uncovered(Role::Worker, &reporter_log, &scope).is_empty());
    assert!(!uncovered(Role::Worker, &planner_log, &scope).is_empty());
}

/// `ddb-pitr policy <args>`: exit code, stdout as JSON (if it is), stderr.
async fn policy(args: &[&str]) -> (Option<i32>, Option<Value>, String) {
    let out = cli::command()
        .arg("policy")
        .args(args)
        .output()
        .await
        .expect("ddb-pitr runs");
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).ok(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn statement<'a>(doc: &'a Value, sid: &str) -> &'a Value {
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid} in {doc:#}"))
}

fn resources(doc: &Value, sid: &str) -> Vec<String> {
    statement(doc, sid)["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

fn all_resources(doc: &Value) -> Vec<String> {
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Resource"].as_array().unwrap().clone())
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/11112222-3333-4444-5555-666677778888";

#[tokio::test(flavor = "multi_thread")]
async fn policy_local_reads_exports_and_their_kms_key_from_moto() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    // An SSE-KMS export: its summary names the key (a changed summary is only a checksum warning).
    let summary_key = format!("{REAL_INC1}manifest-summary.json");
    let mut summary: Value =
        serde_json::from_slice(&bucket.get(&summary_key).await.unwrap()).unwrap();
    summary["s3SseKmsKeyId"] = json!(KEY);
    bucket
        .put(&summary_key, serde_json::to_vec(&summary).unwrap())
        .await;

    let b = &bucket.name;
    let (code, doc, stderr) = policy(&[
        "--table",
        &table.name,
        "--export",
        &bucket.url(REAL_FULL),
        "--export",
        &bucket.url(REAL_INC1),
        "--resume",
        &format!("s3://{b}/state/cp.json"),
        "--report",
        &format!("s3://{b}/reports/"),
        "--endpoint-url",
        &aws.endpoint,
    ])
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let doc = doc.expect("stdout is a JSON policy");
    assert_eq!(doc["Version"], "2012-10-17");
    assert_eq!(
        resources(&doc, "WriteTargetTable"),
        [format!(
            "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}",
            table.name
        )],
        "region from AWS_REGION, account from sts:GetCallerIdentity"
    );
    assert_eq!(
        resources(&doc, "ReadExportObjects"),
        [
            format!("arn:aws:s3:::{b}/AWSDynamoDB/01768385930622-efd1a093/*"),
            format!("arn:aws:s3:::{b}/AWSDynamoDB/01768386924000-d339e52d/*"),
            // The INCREMENTAL export's data files, found through its manifest.
            format!("arn:aws:s3:::{b}/AWSDynamoDB/data/*"),
        ]
    );
    assert_eq!(resources(&doc, "DecryptExportObjects"), [KEY]);
    assert_eq!(
        resources(&doc, "ReadWriteCheckpoint"),
        [format!("arn:aws:s3:::{b}/state/cp.json")]
    );
    assert_eq!(
        statement(&doc, "ListCheckpointKeySoMissingIs404")["Condition"],
        json!({"StringEquals": {"s3:prefix": "state/cp.json"}})
    );
    assert_eq!(
        resources(&doc, "WriteReport"),
        [format!("arn:aws:s3:::{b}/reports/ddb-pitr-report-*.json")]
    );
    assert!(!all_resources(&doc).contains(&"*".to_owned()));
    assert!(
        !doc.to_string().contains("UpdateTable") && !doc.to_string().contains("autoscaling"),
        "no capacity permissions without --manage-capacity"
    );
    // Fits a customer-managed policy (6,144 characters without whitespace).
    assert!(doc.to_string().len() < 6144);
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_lambda_prints_one_policy_per_role() {
    let aws = cli::aws().await;
    let (bucket, _table) = cli::real_export_setup(&aws).await;
    let b = &bucket.name;
    let (code, doc, stderr) = policy(&[
        "--mode",
        "lambda",
        "--table",
        "arn:aws:dynamodb:eu-west-1:111122223333:table/orders",
        "--export",
        &bucket.url(REAL_FULL),
        "--report",
        &format!("s3://{b}/reports/"),
        "--control-table",
        "ddb-pitr-ControlTable-ABC",
        "--queue",
        "https://sqs.eu-west-1.amazonaws.com/111122223333/ddb-pitr-RestoreQueue-XYZ",
        "--kms-key",
        "0000aaaa-1111-2222-3333-444455556666",
        "--endpoint-url",
        &aws.endpoint,
    ])
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let doc = doc.expect("stdout is JSON");
    let roles: std::collections::BTreeSet<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(roles, ["planner", "reporter", "worker"].into());
    let control = "arn:aws:dynamodb:eu-west-1:111122223333:table/ddb-pitr-ControlTable-ABC";
    let queue = "arn:aws:sqs:eu-west-1:111122223333:ddb-pitr-RestoreQueue-XYZ";
    let kms = "arn:aws:kms:eu-west-1:111122223333:key/0000aaaa-1111-2222-3333-444455556666";
    let export = format!("arn:aws:s3:::{b}/AWSDynamoDB/01768385930622-efd1a093/*");

    let planner = &doc["planner"];
    assert_eq!(resources(planner, "ControlTable"), [control]);
    assert_eq!(resources(planner, "FileQueue"), [queue]);
    assert_eq!(resources(planner, "ReadExportObjects"), [export.as_str()]);
    assert_eq!(resources(planner, "DecryptExportObjects"), [kms]);
    assert_eq!(
        resources(planner, "DescribeTargetTable"),
        ["arn:aws:dynamodb:eu-west-1:111122223333:table/orders"]
    );

    let worker = &doc["worker"];
    let queue_actions = &statement(worker, "FileQueue")["Action"];
    assert_eq!(
        queue_actions,
        &json!([
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
            "sqs:SendMessage"
        ])
    );
    assert_eq!(
        statement(worker, "ControlTable")["Action"],
        json!(["dynamodb:GetItem", "dynamodb:UpdateItem"])
    );
    assert_eq!(resources(worker, "ReadExportObjects"), [export.as_str()]);

    let reporter = &doc["reporter"];
    assert_eq!(
        resources(reporter, "WriteReport"),
        [format!("arn:aws:s3:::{b}/reports/ddb-pitr-report-*.json")]
    );
    assert_eq!(reporter["Statement"].as_array().unwrap().len(), 2);
    for role in ["planner", "worker", "reporter"] {
        assert!(
            !all_resources(&doc[role]).contains(&"*".to_owned()),
            "{role}"
        );
    }
}

#[tokio::test]
async fn policy_manage_capacity_adds_update_table_and_scoped_autoscaling() {
    let (code, doc, stderr) = policy(&[
        "--table",
        "orders",
        "--bucket",
        "exports",
        "--prefix",
        "ddb/",
        "--region",
        "eu-north-1",
        "--account",
        "111122223333",
        "--manage-capacity",
        "--autoscaling",
        "adjust",
    ])
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let doc = doc.unwrap();
    assert_eq!(
        statement(&doc, "WriteTargetTable")["Action"],
        json!([
            "dynamodb:BatchWriteItem",
            "dynamodb:DescribeTable",
            "dynamodb:UpdateTable"
        ])
    );
    assert_eq!(
        resources(&doc, "ReadExportObjects"),
        ["arn:aws:s3:::exports/ddb/*"]
    );
    let describe = statement(
        &doc,
        "AutoScalingDescribeHasNoResourceLevelPermissionsSoStarInOneRegion",
    );
    assert_eq!(describe["Resource"], json!(["*"]));
    assert_eq!(
        describe["Condition"],
        json!({"StringEquals": {"aws:RequestedRegion": "eu-north-1"}})
    );
    assert_eq!(
        resources(&doc, "AutoScalingRegisterTargetArnEndsInARandomId"),
        ["arn:aws:application-autoscaling:eu-north-1:111122223333:scalable-target/*"]
    );
}

#[tokio::test]
async fn policy_rejects_bad_input_with_a_reason() {
    let base = [
        "--bucket",
        "b",
        "--region",
        "eu-north-1",
        "--account",
        "111122223333",
    ];
    let cases: &[(&[&str], i32, &str)] = &[
        // Usage errors clap finds: exit 2.
        (
            &["--table", "t1x", "--mode", "lambda"],
            2,
            "--control-table",
        ),
        (
            &["--table", "t1x", "--resume", "s3://b/dir/"],
            2,
            "must name an object",
        ),
        (
            &["--table", "t1x", "--report", "b/r.json"],
            2,
            "not an s3:// URI",
        ),
        (
            &["--table", "t1x", "--export", "s3://b/x/"],
            2,
            "not an export location",
        ),
        // Values that parse but make no policy: exit 1, with what to do.
        (
            &["--table", "arn:aws:s3:::b"],
            1,
            "not a DynamoDB table ARN",
        ),
        (
            &[
                "--table",
                "arn:aws:dynamodb:eu-north-1:111122223333:table/t/index/i",
            ],
            1,
            "not a DynamoDB table ARN",
        ),
        (
            &["--table", "t1x", "--kms-key", "alias/exports"],
            1,
            "is an alias",
        ),
        (&["--table", "t"], 1, "not a DynamoDB table name"),
    ];
    for (args, want, message) in cases {
        let all: Vec<&str> = base.iter().chain(args.iter()).copied().collect();
        let (code, doc, stderr) = policy(&all).await;
        assert_eq!(code, Some(*want), "{args:?}: {stderr}");
        assert!(doc.is_none(), "{args:?} printed a policy");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // A table ARN that contradicts --region.
    let (code, _, stderr) = policy(&[
        "--table",
        "arn:aws:dynamodb:eu-west-1:111122223333:table/orders",
        "--bucket",
        "b",
        "--region",
        "eu-north-1",
    ])
    .await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("contradicts"), "{stderr}");
}

/// `--source-table ARN` finds the chain with ListExports whether or not `--bucket` names where the exports
/// are: the policy allows it either way (it was left out when `--bucket` was given).
#[tokio::test]
async fn policy_for_a_source_table_allows_list_exports_with_or_without_a_bucket() {
    let (code, doc, stderr) = policy(&[
        "--table",
        "orders",
        "--bucket",
        "backups",
        "--region",
        "eu-north-1",
        "--account",
        "111122223333",
        "--source-table",
        "arn:aws:dynamodb:eu-north-1:111122223333:table/orders-prod",
    ])
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let doc = doc.expect("a policy");
    let granted = |action: &str| {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
            .flat_map(|s| s["Resource"].as_array().unwrap().clone())
            .map(|r| r.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(granted("dynamodb:ListExports"), ["*"], "{doc:#}");
    assert_eq!(
        granted("dynamodb:DescribeExport"),
        ["arn:aws:dynamodb:eu-north-1:111122223333:table/orders-prod/export/*"],
        "{doc:#}"
    );
}
