//! `--manage-capacity` and `--max-wcu` against moto: the raise/put-back cycle of a provisioned table and its
//! GSI (also across `kill -9` and SIGINT), tables under Application Auto Scaling, on-demand warm throughput.
//! Kill points are found by watching the checkpoint file, not by sleeping.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ProvisionedThroughput, ScalarAttributeType,
};
use ddb_pitr_synth::{self as synth, SynthOutput, SynthSpec};
use serde_json::{Value, json};

use crate::cli::{self, Aws};
use crate::support::{self, TestBucket, TestTable, assert_table_matches};

const INDEX: &str = "by_sk";

struct Setup {
    _dir: tempfile::TempDir,
    out: SynthOutput,
    bucket: TestBucket,
    table: TestTable,
    checkpoint: std::path::PathBuf,
}

/// A generated FULL export of `items` items and a table (pk S, sk S) with a GSI on `sk`; provisioned at
/// 5 RCU / 5 WCU for the table and the index, or on-demand.
async fn setup(aws: &Aws, items: usize, provisioned: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        seed: 40 + items as u64,
        full_items: items,
        full_files: 2,
        big_items: 0,
        incrementals: vec![],
        ..SynthSpec::default()
    };
    let out = synth::generate(&dir.path().join("export"), &spec).unwrap();
    let bucket = TestBucket::create(&aws.s3, "cap").await;
    bucket.upload_dir(&dir.path().join("export"), "").await;
    let throughput = || {
        ProvisionedThroughput::builder()
            .read_capacity_units(5)
            .write_capacity_units(5)
            .build()
            .unwrap()
    };
    let table = TestTable::create_with(&aws.ddb, "cap", |mut req| {
        for attr in ["pk", "sk"] {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attr)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            );
        }
        let key = |attr: &str, ty| {
            KeySchemaElement::builder()
                .attribute_name(attr)
                .key_type(ty)
                .build()
                .unwrap()
        };
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(INDEX)
            .key_schema(key("sk", KeyType::Hash))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            );
        req = req
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range));
        if provisioned {
            gsi = gsi.provisioned_throughput(throughput());
            req = req
                .billing_mode(BillingMode::Provisioned)
                .provisioned_throughput(throughput());
        } else {
            req = req.billing_mode(BillingMode::PayPerRequest);
        }
        req.global_secondary_indexes(gsi.build().unwrap())
    })
    .await;
    let checkpoint = dir.path().join("checkpoint.json");
    Setup {
        _dir: dir,
        out,
        bucket,
        table,
        checkpoint,
    }
}

impl Setup {
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = cli::export_args(
            &self.bucket,
            self.out.exports.iter().map(|e| e.summary_key.as_str()),
        );
        args.extend(
            ["--resume", self.checkpoint.to_str().unwrap()]
                .iter()
                .chain(extra)
                .map(|s| s.to_string()),
        );
        args
    }

    /// `ddb-pitr restore` of the chain into the table, with the checkpoint and `extra` flags.
    async fn restore(&self, aws: &Aws, extra: &[&str]) -> cli::Run {
        cli::restore(aws, &self.table.name, &self.args(extra)).await
    }

    async fn assert_restored(&self, aws: &Aws) {
        assert_table_matches(
            &aws.ddb,
            &self.table.name,
            self.out.expected.last().unwrap(),
        )
        .await;
    }
}

/// (table WCU, index WCU, table RCU, index RCU) as DescribeTable reports them.
async fn write_capacity(aws: &Aws, table: &str) -> (i64, i64, i64, i64) {
    let t = aws
        .ddb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let p = t.provisioned_throughput().unwrap();
    let g = t.global_secondary_indexes()[0]
        .provisioned_throughput()
        .unwrap();
    (
        p.write_capacity_units().unwrap(),
        g.write_capacity_units().unwrap(),
        p.read_capacity_units().unwrap(),
        g.read_capacity_units().unwrap(),
    )
}

fn checkpoint_capacity_state(path: &Path) -> Option<String> {
    let cp: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    cp["capacity"]["state"].as_str().map(str::to_owned)
}

/// Polls the checkpoint until its capacity record is in `state`; panics if the process ends first, since
/// the test would then not exercise what it claims to.
async fn wait_for_capacity_state(
    child: &mut tokio::process::Child,
    checkpoint: &Path,
    state: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if checkpoint_capacity_state(checkpoint).as_deref() == Some(state) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ddb-pitr exited ({status}) before the capacity record was {state}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {state}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `ddb-pitr validate` on the setup's chain and checkpoint: exit code and the checks by name.
async fn validate(aws: &Aws, s: &Setup, extra: &[&str]) -> (Option<i32>, Value) {
    let out = cli::command()
        .args([
            "validate",
            "--table",
            &s.table.name,
            "--endpoint-url",
            &aws.endpoint,
        ])
        .args(s.args(extra))
        .output()
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "validate printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap().to_owned(), c.clone()))
        .collect::<serde_json::Map<_, _>>();
    (out.status.code(), Value::Object(checks))
}

fn changes(report: &Value, which: &str) -> Vec<(String, String, i64, i64)> {
    report["capacity"][which]
        .as_array()
        .unwrap_or_else(|| panic!("capacity.{which} in {report:#}"))
        .iter()
        .map(|c| {
            (
                c["resource"].as_str().unwrap().to_owned(),
                c["setting"].as_str().unwrap().to_owned(),
                c["from"].as_i64().unwrap(),
                c["to"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn wcu(resource: &str, from: i64, to: i64) -> (String, String, i64, i64) {
    (
        resource.to_owned(),
        "write_capacity_units".to_owned(),
        from,
        to,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioned_capacity_is_raised_for_the_restore_and_put_back() {
    let aws = cli::aws().await;
    let s = setup(&aws, 200, true).await;
    let run = s
        .restore(&aws, &["--manage-capacity", "--target-wcu", "100"])
        .await;
    run.assert_success();
    s.assert_restored(&aws).await;
    let index = format!("index/{INDEX}");
    assert_eq!(
        changes(&run.report, "raised"),
        vec![wcu("table", 5, 100), wcu(&index, 5, 100)]
    );
    assert_eq!(
        changes(&run.report, "restored"),
        vec![wcu("table", 100, 5), wcu(&index, 100, 5)]
    );
    assert_eq!(run.report["capacity"]["original_restored"], true);
    assert_eq!(run.report["capacity"]["target_wcu"], 100);
    assert_eq!(
        write_capacity(&aws, &s.table.name).await,
        (5, 5, 5, 5),
        "write capacity back, read capacity never touched"
    );
    assert_eq!(
        checkpoint_capacity_state(&s.checkpoint).as_deref(),
        Some("restored")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_raise_is_put_right_by_the_next_run() {
    let aws = cli::aws().await;
    let s = setup(&aws, 4000, true).await;
    let slow = [
        "--manage-capacity",
        "--target-wcu",
        "80",
        "--workers",
        "1",
        "--inflight-batches",
        "1",
        "--checkpoint-interval",
        "50ms",
    ];
    let mut child = cli::spawn_restore(&aws, &s.table.name, &s.args(&slow));
    wait_for_capacity_state(&mut child, &s.checkpoint, "raised").await;
    signal(&child, "-9");
    assert_eq!(child.wait().await.unwrap().code(), None, "killed");

    // What a crash leaves behind: raised capacity, and the originals in the checkpoint.
    assert_eq!(write_capacity(&aws, &s.table.name).await, (80, 80, 5, 5));
    let cp = cli::read_json(&s.checkpoint);
    assert_eq!(cp["capacity"]["table"], json!({"read": 5, "write": 5}));
    assert_eq!(
        cp["capacity"]["indexes"][INDEX],
        json!({"read": 5, "write": 5})
    );
    assert!(
        cp["exports"][0]["done"] != true,
        "the kill came before the export finished: {cp:#}"
    );

    // validate says the capacity is still raised.
    let (code, checks) = validate(&aws, &s, &[]).await;
    assert_eq!(code, Some(0));
    assert_eq!(checks["checkpoint"]["status"], "warn", "{checks:#}");
    assert!(
        checks["checkpoint"]["detail"]
            .as_str()
            .unwrap()
            .contains("not put back yet")
    );

    // The next run fails its pre-flight (a manifest went missing) and still puts the originals back.
    let summary = &s.out.exports[0].summary_key;
    let bytes = s.bucket.get(summary).await.unwrap();
    s.bucket.delete(summary).await;
    let run = s.restore(&aws, &[]).await;
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    let index = format!("index/{INDEX}");
    assert_eq!(
        changes(&run.report, "restored"),
        vec![wcu("table", 80, 5), wcu(&index, 80, 5)]
    );
    assert_eq!(run.report["capacity"]["original_restored"], true);
    assert_eq!(write_capacity(&aws, &s.table.name).await, (5, 5, 5, 5));
    assert_eq!(
        checkpoint_capacity_state(&s.checkpoint).as_deref(),
        Some("restored")
    );

    // With the manifest back, the next run finishes the data; the capacity stays as it was.
    s.bucket.put(summary, bytes).await;
    let run = s.restore(&aws, &[]).await;
    run.assert_success();
    s.assert_restored(&aws).await;
    assert_eq!(write_capacity(&aws, &s.table.name).await, (5, 5, 5, 5));
    assert!(run.report["capacity"].get("original_restored").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_restore_puts_the_capacity_back_before_it_exits() {
    let aws = cli::aws().await;
    let s = setup(&aws, 4000, true).await;
    let slow = [
        "--manage-capacity",
        "--target-wcu",
        "60",
        "--workers",
        "1",
        "--inflight-batches",
        "1",
    ];
    let mut child = cli::spawn_restore(&aws, &s.table.name, &s.args(&slow));
    wait_for_capacity_state(&mut child, &s.checkpoint, "raised").await;
    signal(&child, "-INT");
    let run = cli::finish(child).await;
    assert_eq!(run.code, Some(130), "stderr:\n{}", run.stderr);
    assert_eq!(run.report["status"], "interrupted");
    assert_eq!(run.report["capacity"]["original_restored"], true);
    assert_eq!(write_capacity(&aws, &s.table.name).await, (5, 5, 5, 5));

    // Resuming with --manage-capacity raises again (a new record) and finishes.
    let run = s.restore(&aws, &slow[..3]).await;
    run.assert_success();
    s.assert_restored(&aws).await;
    assert_eq!(write_capacity(&aws, &s.table.name).await, (5, 5, 5, 5));
}

async fn autoscaling_client(aws: &Aws) -> aws_sdk_applicationautoscaling::Client {
    aws_sdk_applicationautoscaling::Client::new(&support::sdk_config(&aws.endpoint).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_scaled_tables_are_refused_or_have_their_minimum_adjusted() {
    use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
    let aws = cli::aws().await;
    let s = setup(&aws, 100, true).await;
    let scaling = autoscaling_client(&aws).await;
    let resource = format!("table/{}", s.table.name);
    scaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Dynamodb)
        .resource_id(&resource)
        .scalable_dimension(ScalableDimension::DynamoDbTableWriteCapacityUnits)
        .min_capacity(5)
        .max_capacity(50)
        .send()
        .await
        .unwrap();
    let bounds = || async {
        let out = scaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Dynamodb)
            .resource_ids(&resource)
            .send()
            .await
            .unwrap();
        let t = &out.scalable_targets()[0];
        (t.min_capacity(), t.max_capacity())
    };

    // validate sees it first, read-only.
    let (code, checks) = validate(&aws, &s, &["--manage-capacity"]).await;
    assert_eq!(code, Some(1));
    assert_eq!(checks["capacity"]["status"], "fail", "{checks:#}");
    let refused = s
        .restore(&aws, &["--manage-capacity", "--target-wcu", "100"])
        .await;
    assert_eq!(refused.code, Some(1));
    let errors = refused.errors();
    assert!(
        errors.contains("Application Auto Scaling") && errors.contains("--autoscaling adjust"),
        "{errors}"
    );
    assert!(s.table.scan().await.is_empty(), "nothing was written");
    assert_eq!(write_capacity(&aws, &s.table.name).await, (5, 5, 5, 5));
    assert_eq!(bounds().await, (5, 50));

    let run = s
        .restore(
            &aws,
            &[
                "--manage-capacity",
                "--target-wcu",
                "100",
                "--autoscaling",
                "adjust",
            ],
        )
        .await;
    run.assert_success();
    s.assert_restored(&aws).await;
    let raised = changes(&run.report, "raised");
    assert!(
        raised.contains(&(resource.clone(), "autoscaling_min".into(), 5, 100))
            && raised.contains(&(resource.clone(), "autoscaling_max".into(), 50, 100)),
        "{raised:?}"
    );
    assert_eq!(
        bounds().await,
        (5, 50),
        "the scalable target's bounds are back"
    );
    let restored = changes(&run.report, "restored");
    assert!(
        restored.contains(&(resource.clone(), "autoscaling_min".into(), 100, 5)),
        "{restored:?}"
    );
    // Put back within the scaler's bounds, so a scaler without a policy cannot leave it raised.
    assert!(restored.contains(&wcu("table", 100, 5)), "{restored:?}");
    assert_eq!(write_capacity(&aws, &s.table.name).await, (5, 5, 5, 5));
}

#[tokio::test(flavor = "multi_thread")]
async fn on_demand_tables_are_pre_warmed() {
    let aws = cli::aws().await;
    let s = setup(&aws, 100, false).await;
    let run = s
        .restore(&aws, &["--manage-capacity", "--target-wcu", "12000"])
        .await;
    run.assert_success();
    s.assert_restored(&aws).await;
    let t = aws
        .ddb
        .describe_table()
        .table_name(&s.table.name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(
        t.warm_throughput().unwrap().write_units_per_second(),
        Some(12000)
    );
    assert_eq!(
        t.global_secondary_indexes()[0]
            .warm_throughput()
            .unwrap()
            .write_units_per_second(),
        Some(12000)
    );
    let raised = changes(&run.report, "raised");
    assert_eq!(raised.len(), 2, "{raised:?}");
    assert!(
        raised
            .iter()
            .all(|c| c.1 == "warm_write_units_per_second" && c.3 == 12000)
    );
    assert_eq!(
        changes(&run.report, "restored"),
        vec![],
        "warm throughput is never lowered"
    );
    assert!(run.report["capacity"].get("original_restored").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn manage_capacity_needs_a_checkpoint_and_max_wcu_a_positive_rate() {
    let aws = cli::aws().await;
    let out = cli::command()
        .args([
            "restore",
            "--table",
            "t",
            "--export",
            "s3://b/x/",
            "--manage-capacity",
            "--endpoint-url",
            &aws.endpoint,
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    let out = cli::command()
        .args([
            "restore",
            "--table",
            "t",
            "--export",
            "s3://b/x/",
            "--max-wcu",
            "0",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a positive number"));
}

#[tokio::test(flavor = "multi_thread")]
async fn max_wcu_is_reported_and_nothing_is_lost_under_it() {
    let aws = cli::aws().await;
    let s = setup(&aws, 300, true).await;
    let run = s.restore(&aws, &["--max-wcu", "5000"]).await;
    run.assert_success();
    s.assert_restored(&aws).await;
    assert_eq!(run.report["capacity"]["max_wcu"], 5000.0);
    assert_eq!(run.report["capacity"]["managed"], false);
    assert_eq!(write_capacity(&aws, &s.table.name).await, (5, 5, 5, 5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_restore_still_puts_the_capacity_back() {
    let aws = cli::aws().await;
    let s = setup(&aws, 200, true).await;
    let broken = &s.out.exports[0].files.last().unwrap().key;
    s.bucket.put(broken, b"not a gzip stream".to_vec()).await;
    let run = s
        .restore(&aws, &["--manage-capacity", "--target-wcu", "100"])
        .await;
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    assert_eq!(run.report["status"], "failed");
    assert!(run.errors().contains(broken.as_str()), "{}", run.errors());
    assert_eq!(changes(&run.report, "raised").len(), 2);
    assert_eq!(changes(&run.report, "restored").len(), 2);
    assert_eq!(run.report["capacity"]["original_restored"], true);
    assert_eq!(write_capacity(&aws, &s.table.name).await, (5, 5, 5, 5));
    assert_eq!(
        checkpoint_capacity_state(&s.checkpoint).as_deref(),
        Some("restored")
    );
}
