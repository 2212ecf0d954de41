//! Crash safety: `kill -9` at several points and SIGINT, each followed by a resume that must end with exactly
//! the expected table. Kill points are chosen by watching the checkpoint file, not by sleeping.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use ddb_pitr_synth::{self as synth, IncrementalSpec, SynthOutput, SynthSpec};
use serde_json::Value;

use crate::cli::{self, Aws};
use crate::support::{TestBucket, TestTable, assert_table_matches};

struct Chain {
    _dir: tempfile::TempDir,
    out: SynthOutput,
    bucket: TestBucket,
    table: TestTable,
}

/// A chain big enough that a restore into moto takes a few seconds.
async fn chain(aws: &Aws, seed: u64) -> Chain {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        seed,
        full_items: 1500,
        full_files: 4,
        big_items: 0,
        incrementals: vec![
            IncrementalSpec {
                files: 3,
                inserts: 300,
                updates: 300,
                deletes: 200,
                big_inserts: 0,
            },
            IncrementalSpec {
                files: 3,
                inserts: 200,
                updates: 300,
                deletes: 200,
                big_inserts: 0,
            },
        ],
        ..SynthSpec::default()
    };
    let out = synth::generate(dir.path(), &spec).unwrap();
    let bucket = TestBucket::create(&aws.s3, "crash").await;
    bucket.upload_dir(dir.path(), "").await;
    let table = TestTable::create(&aws.ddb, "crash", ("pk", T::S), Some(("sk", T::S))).await;
    Chain {
        _dir: dir,
        out,
        bucket,
        table,
    }
}

impl Chain {
    fn args(&self, checkpoint: &Path) -> Vec<String> {
        let mut args = cli::export_args(
            &self.bucket,
            self.out.exports.iter().map(|e| e.summary_key.as_str()),
        );
        args.extend(
            [
                "--resume",
                checkpoint.to_str().unwrap(),
                "--checkpoint-interval",
                "50ms",
                "--workers",
                "2",
                "--inflight-batches",
                "2",
                "--part-size",
                "8KiB",
            ]
            .map(String::from),
        );
        args
    }
}

/// Lines the checkpoint claims per export (an export marked done counts as complete).
fn claimed(checkpoint: &Path, chain: &Chain) -> Option<Vec<u64>> {
    let cp: Value = serde_json::from_slice(&std::fs::read(checkpoint).ok()?).ok()?;
    Some(
        cp["exports"]
            .as_array()?
            .iter()
            .zip(&chain.out.exports)
            .map(|(e, spec)| {
                if e["done"] == true {
                    spec.item_count
                } else {
                    e["files"]
                        .as_object()
                        .map(|f| f.values().map(|f| f["lines"].as_u64().unwrap_or(0)).sum())
                        .unwrap_or(0)
                }
            })
            .collect(),
    )
}

/// Polls the checkpoint until `ready` holds, then returns; panics if the process ends first or it takes
/// too long, because then the test would not exercise what it claims to.
async fn wait_for(
    child: &mut tokio::process::Child,
    checkpoint: &Path,
    chain: &Chain,
    what: &str,
    ready: impl Fn(&[u64]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(claims) = claimed(checkpoint, chain)
            && ready(&claims)
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "ddb-pitr exited ({status}) before {what}; checkpoint: {:?}",
                claimed(checkpoint, chain)
            );
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// When to kill, given the lines the checkpoint claims per export.
type KillPoint = dyn Fn(&[u64]) -> bool;

fn kill9(child: &tokio::process::Child) {
    let pid = child.id().expect("running") as i32;
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_several_points_then_resume_loses_nothing() {
    let aws = cli::aws().await;
    let chain = chain(&aws, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint.json");
    let args = chain.args(&checkpoint);
    let full = chain.out.exports[0].item_count;

    // 1. Early in the FULL export. 2. Late in the FULL export. 3. In the middle of the first incremental.
    // 4. In the second incremental.
    let points: [(&str, Box<KillPoint>); 4] = [
        (
            "the FULL export is under way",
            Box::new(|c: &[u64]| c[0] >= 100),
        ),
        (
            "the FULL export is mostly done",
            Box::new(move |c: &[u64]| c[0] >= full * 3 / 4),
        ),
        (
            "the first incremental is under way",
            Box::new(|c: &[u64]| c[1] >= 50),
        ),
        (
            "the second incremental is under way",
            Box::new(|c: &[u64]| c[2] >= 50),
        ),
    ];
    for (what, ready) in points {
        let mut child = cli::spawn_restore(&aws, &chain.table.name, &args);
        wait_for(&mut child, &checkpoint, &chain, what, ready).await;
        kill9(&child);
        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), None, "killed by a signal");
    }
    let run = cli::restore(&aws, &chain.table.name, &args).await;
    run.assert_success();
    assert_table_matches(
        &aws.ddb,
        &chain.table.name,
        chain.out.expected.last().unwrap(),
    )
    .await;
    let files = run.report["exports"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["files"].as_array().unwrap().clone());
    assert!(
        files.clone().any(|f| f["status"] == "already_done"),
        "finished files are skipped on resume"
    );
    assert!(
        files
            .clone()
            .all(|f| f["status"] == "already_done" || f["status"] == "done")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_saves_the_checkpoint_and_says_how_to_resume() {
    interrupt_then_resume("-INT", 22).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_is_handled_like_sigint() {
    interrupt_then_resume("-TERM", 23).await;
}

async fn interrupt_then_resume(signal: &str, seed: u64) {
    let aws = cli::aws().await;
    let chain = chain(&aws, seed).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint.json");
    let args = chain.args(&checkpoint);

    let mut child = cli::spawn_restore(&aws, &chain.table.name, &args);
    wait_for(
        &mut child,
        &checkpoint,
        &chain,
        "the FULL export is under way",
        |c| c[0] >= 200,
    )
    .await;
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
    let run = cli::finish(child).await;
    assert_eq!(run.code, Some(130), "stderr:\n{}", run.stderr);
    assert_eq!(run.report["status"], "interrupted");
    let hint = format!("--resume {}", checkpoint.display());
    assert!(
        run.stderr.contains(&hint),
        "stderr says how to resume:\n{}",
        run.stderr
    );
    let claims = claimed(&checkpoint, &chain).unwrap();
    let total: u64 = chain.out.exports.iter().map(|e| e.item_count).sum();
    assert!(
        claims.iter().sum::<u64>() < total,
        "interrupted before the end: {claims:?}"
    );
    assert_eq!(
        run.report["totals"]["items_this_run"].as_u64().unwrap(),
        claims.iter().sum::<u64>(),
        "the report and the saved checkpoint agree on what was written"
    );

    let run = cli::restore(&aws, &chain.table.name, &args).await;
    run.assert_success();
    assert_table_matches(
        &aws.ddb,
        &chain.table.name,
        chain.out.expected.last().unwrap(),
    )
    .await;
    assert_eq!(
        run.report["totals"]["items_this_run"].as_u64().unwrap() + claims.iter().sum::<u64>(),
        total
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_of_another_restore_is_refused() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint.json");
    let mut args = cli::export_args(&bucket, [cli::REAL_FULL, cli::REAL_INC1]);
    args.extend([
        "--allow-gaps".into(),
        "--resume".into(),
        checkpoint.display().to_string(),
    ]);
    cli::restore(&aws, &table.name, &args)
        .await
        .assert_success();

    let other = TestTable::create(&aws.ddb, "other", ("pk", T::S), Some(("sk", T::S))).await;
    let run = cli::restore(&aws, &other.name, &args).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.errors()
            .contains(&format!("belongs to a restore of table {}", table.name)),
        "{}",
        run.errors()
    );

    // Not an extension of the checkpoint's chain: INC2 where it has INC1.
    let mut chain_args = cli::export_args(&bucket, [cli::REAL_FULL, cli::REAL_INC2]);
    chain_args.extend([
        "--allow-gaps".into(),
        "--resume".into(),
        checkpoint.display().to_string(),
    ]);
    let run = cli::restore(&aws, &table.name, &chain_args).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.errors().contains("use another --resume location"),
        "{}",
        run.errors()
    );
    assert!(other.scan().await.is_empty());
}

/// Runs sharing an S3 checkpoint: while one holds it, another is refused before it writes anything, with
/// the holder named, also when both found no checkpoint and create it at once (`If-None-Match`); once the
/// holder releases it the next run holds it, and the old holder can no longer save over it (`If-Match`).
#[tokio::test(flavor = "multi_thread")]
async fn an_s3_checkpoint_is_held_by_one_run_at_a_time() {
    use ddb_pitr::export::location::StateLocation;
    use ddb_pitr::local::checkpoint::{Checkpoint, CheckpointStore};
    let aws = cli::aws().await;
    let bucket = TestBucket::create(&aws.s3, "hold").await;
    let at: StateLocation = format!("s3://{}/restores/t.json", bucket.name)
        .parse()
        .unwrap();
    let store = |owner: &str| CheckpointStore::new(at.clone(), aws.s3.clone()).with_owner(owner);
    let (first, second) = (store("ec2-a:1"), store("laptop:2"));
    assert!(first.load().await.unwrap().is_none());
    assert!(second.load().await.unwrap().is_none());
    let cp = Checkpoint::new("t", &[]);
    first.claim(&cp).await.unwrap();
    let e = second.claim(&cp).await.unwrap_err().to_string();
    assert!(e.contains("is held by another run, ec2-a:1"), "{e}");

    let third = store("ci:3");
    let loaded = third.load().await.unwrap().unwrap();
    assert_eq!(loaded.holder.as_ref().unwrap().owner, "ec2-a:1");
    let e = third.claim(&loaded).await.unwrap_err().to_string();
    assert!(
        e.contains("is held by another run, ec2-a:1") && e.contains("its hold ends at"),
        "{e}"
    );

    first.save(&cp).await.unwrap();
    first.release(&cp).await.unwrap();
    let loaded = third.load().await.unwrap().unwrap();
    assert_eq!(loaded.holder, None);
    third.claim(&loaded).await.unwrap();
    let e = first.save(&cp).await.unwrap_err().to_string();
    assert!(e.contains("is held by another run, ci:3"), "{e}");
}
