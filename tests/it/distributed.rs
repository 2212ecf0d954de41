//! Distributed restores: planner and worker handlers in-process, `ddb-pitr worker` processes, against
//! moto's S3, DynamoDB and SQS.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use ddb_pitr::distributed::control::{Acquired, FileProgress, RecordStatus};
use ddb_pitr::distributed::queue::FileMessage;
use ddb_pitr::engine::CopiedObjects;
use ddb_pitr::engine::watermark::FilePosition;
use ddb_pitr_synth::{self as synth, IncrementalSpec, SynthOutput, SynthSpec};
use serde_json::Value;

use crate::cli::{self, REAL_FULL, REAL_INC1, REAL_INC2};
use crate::cloud::{Cloud, LAMBDA_OWNER, VISIBILITY, test_worker_options};
use crate::support::{TestBucket, TestTable, assert_table_matches, unique_name};

const MINUTE: Duration = Duration::from_secs(60);

fn uris(bucket: &TestBucket, keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| bucket.url(k)).collect()
}

pub async fn generated(
    cloud: &Cloud,
    spec: SynthSpec,
) -> (
    tempfile::TempDir,
    SynthOutput,
    TestBucket,
    TestTable,
    Vec<String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let out = synth::generate(dir.path(), &spec).unwrap();
    let bucket = TestBucket::create(&cloud.aws.s3, "dist").await;
    bucket.upload_dir(dir.path(), "").await;
    let table = TestTable::create(&cloud.aws.ddb, "dist", ("pk", T::S), Some(("sk", T::S))).await;
    let keys: Vec<&str> = out.exports.iter().map(|e| e.summary_key.as_str()).collect();
    let exports = uris(&bucket, &keys);
    (dir, out, bucket, table, exports)
}

/// A FULL export alone: `files` data files sharing `items` items, no empty file.
fn full_only(seed: u64, files: usize, items: usize) -> SynthSpec {
    SynthSpec {
        seed,
        full_items: items,
        full_files: files,
        big_items: 0,
        empty_files: 0,
        incrementals: vec![],
        ..SynthSpec::default()
    }
}

pub fn chain_spec(seed: u64, full_files: usize, full_items: usize) -> SynthSpec {
    SynthSpec {
        seed,
        full_items,
        full_files,
        big_items: 1,
        empty_files: 1,
        incrementals: vec![
            IncrementalSpec {
                files: 3,
                inserts: 40,
                updates: 30,
                deletes: 25,
                big_inserts: 0,
            },
            IncrementalSpec {
                files: 2,
                inserts: 20,
                updates: 20,
                deletes: 20,
                big_inserts: 0,
            },
        ],
        ..SynthSpec::default()
    }
}

/// Header counters per export as (done, failed, puts, deletes).
async fn counters(cloud: &Cloud, restore_id: &str) -> Vec<(u64, u64, u64, u64)> {
    let header = cloud.control.header(restore_id).await.unwrap().unwrap();
    header
        .exports
        .iter()
        .map(|e| (e.done, e.failed, e.puts, e.deletes))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn real_export_chain_through_lambda_handlers_and_idempotent_planning() {
    let cloud = Cloud::new(test_worker_options()).await;
    let (bucket, table) = cli::real_export_setup(&cloud.aws).await;
    let exports = uris(&bucket, &[REAL_FULL, REAL_INC1, REAL_INC2]);
    let id = unique_name("real");

    // The real chain has a 69 s gap: refused without allow_gaps, before anything is recorded.
    let refused = cloud
        .planner_call(
            "planner-plan.json",
            serde_json::json!({"restore_id": id, "table": table.name, "exports": exports, "report_uri": null}),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.error_type, "Fatal");
    assert!(
        refused.error_message.contains("gap of 1m 9s 378ms"),
        "{}",
        refused.error_message
    );
    assert_eq!(cloud.control_items().await, 0);

    let summary = cloud.plan(&id, &table.name, &exports, true).await;
    assert_eq!(summary["created"], true);
    assert_eq!(summary["exports"], 3);
    assert_eq!(summary["chain_discontinuities"], 1);
    let files = summary["files"].as_u64().unwrap();
    assert_eq!(cloud.control_items().await as u64, files + 1);

    // Planning again finds the same restore and writes nothing new; a different restore under the same id
    // is refused.
    let again = cloud.plan(&id, &table.name, &exports, true).await;
    assert_eq!(again["created"], false);
    assert_eq!(again["files"], files);
    assert_eq!(cloud.control_items().await as u64, files + 1);
    let other = cloud
        .planner_call(
            "planner-plan.json",
            serde_json::json!({"restore_id": id, "table": table.name, "exports": &exports[..1], "report_uri": null}),
        )
        .await
        .unwrap_err();
    assert!(
        other.error_message.contains("already used"),
        "{}",
        other.error_message
    );

    // Export 1 cannot be enqueued before export 0 is finished.
    let early = cloud.plan_export(&id, 1).await.unwrap_err();
    assert!(
        early.error_message.contains("not finished"),
        "{}",
        early.error_message
    );

    let last = cloud.drive(&id, 0..3, 2, MINUTE).await;
    assert_eq!(last["all_finished"], true, "{last}");
    assert_eq!(last["failed_files_total"], 0);
    assert_table_matches(
        &cloud.aws.ddb,
        &table.name,
        cli::real_export().join("expected-after-chain.jsonl"),
    )
    .await;
    let c = counters(&cloud, &id).await;
    assert_eq!(
        c.iter().map(|&(_, _, p, d)| (p, d)).collect::<Vec<_>>(),
        vec![(3, 0), (6, 0), (3, 2)]
    );
    for (k, &(done, failed, _, _)) in c.iter().enumerate() {
        let files = cloud.files(&id, k).await;
        assert_eq!(done, files.len() as u64);
        assert_eq!(failed, 0);
        assert!(
            files
                .iter()
                .all(|f| f.status == RecordStatus::Done && f.md5_verified)
        );
    }

    // Enqueueing a finished export again sends nothing.
    let replay = cloud.plan_export(&id, 0).await.unwrap();
    assert_eq!(replay["already_enqueued"], true);
    assert_eq!(replay["messages_sent"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_chain_through_lambda_handlers() {
    let cloud = Cloud::new(test_worker_options()).await;
    let (_dir, out, _bucket, table, exports) = generated(&cloud, chain_spec(21, 5, 400)).await;
    let id = unique_name("gen");
    let summary = cloud.plan(&id, &table.name, &exports, false).await;
    assert_eq!(summary["exports"], 3);
    let last = cloud.drive(&id, 0..3, 3, MINUTE).await;
    assert_eq!(last["all_finished"], true, "{last}");
    assert_table_matches(&cloud.aws.ddb, &table.name, out.expected.last().unwrap()).await;
    for (k, export) in out.exports.iter().enumerate() {
        let header = counters(&cloud, &id).await[k];
        assert_eq!(header.0, export.files.len() as u64);
        assert_eq!(
            header.2 + header.3,
            export.item_count,
            "export {k}: puts + deletes"
        );
        for f in cloud.files(&id, k).await {
            assert_eq!(f.position.lines, f.file.item_count, "{}", f.file.key);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_message_delivered_twice_at_once_writes_and_counts_once() {
    let cloud = Cloud::new(test_worker_options()).await;
    let spec = full_only(5, 2, 600);
    let (_dir, out, _bucket, table, exports) = generated(&cloud, spec).await;
    let id = unique_name("dup");
    cloud.plan(&id, &table.name, &exports, false).await;
    cloud.plan_export(&id, 0).await.unwrap();
    let mut messages = Vec::new();
    while messages.len() < 2 {
        messages.extend(cloud.receive().await);
    }
    // Both messages, each delivered to two concurrent invocations.
    let (a, b) = tokio::join!(
        cloud.invoke_worker(&messages, Duration::from_secs(60)),
        cloud.invoke_worker(&messages, Duration::from_secs(60))
    );
    // Per file, exactly one invocation held the lease: the other reported a failure (lease busy) or, if it
    // came after the first finished, found the file DONE.
    let failures = a.batch_item_failures.len() + b.batch_item_failures.len();
    assert!(failures <= 2, "{a:?} {b:?}");
    cloud.delete_succeeded(&messages, &a).await;
    cloud.delete_succeeded(&messages, &b).await;
    let last = cloud
        .with_pollers(1, MINUTE, cloud.wait_finished(&id, 0))
        .await;
    assert_eq!(last["files_done"], 2, "{last}");
    assert_table_matches(&cloud.aws.ddb, &table.name, &out.expected[0]).await;
    assert_eq!(counters(&cloud, &id).await[0], (2, 0, 600, 0));
    for f in cloud.files(&id, 0).await {
        assert_eq!(f.position.puts, f.file.item_count);
        assert_eq!(f.finished_by.as_deref(), Some(LAMBDA_OWNER));
    }
}

/// Two planners of one restore at once (a Step Functions retry while the first still runs) agree on one
/// plan, and a planner that read the header while it was still PLANNING and writes file items only after
/// the files were restored puts none of them back to PENDING.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_planner_never_resets_a_finished_file() {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    let cloud = Cloud::new(test_worker_options()).await;
    let (_dir, out, _bucket, table, exports) = generated(&cloud, full_only(29, 2, 200)).await;
    let id = unique_name("replan");
    let (a, b) = tokio::join!(
        cloud.plan(&id, &table.name, &exports, false),
        cloud.plan(&id, &table.name, &exports, false)
    );
    assert_eq!(
        (a["files"].clone(), b["files"].clone()),
        (2.into(), 2.into())
    );
    assert_ne!(a["created"], b["created"], "one created it: {a} {b}");
    let last = cloud.drive(&id, 0..1, 1, MINUTE).await;
    assert_eq!(last["files_done"], 2, "{last}");
    let finished = cloud.files(&id, 0).await;
    assert!(finished.iter().all(|f| f.status == RecordStatus::Done));

    // The slow planner: the header was PLANNING when it read it; it writes the file items now.
    cloud
        .aws
        .ddb
        .update_item()
        .table_name(&cloud.control_table.name)
        .key("pk", V::S(format!("restore#{id}")))
        .key("sk", V::S("header".into()))
        .update_expression("SET #st = :planning")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":planning", V::S("PLANNING".into()))
        .send()
        .await
        .unwrap();
    cloud.plan(&id, &table.name, &exports, false).await;
    assert_eq!(
        cloud.files(&id, 0).await,
        finished,
        "finished files are kept as they are"
    );
    assert_eq!(counters(&cloud, &id).await[0], (2, 0, 200, 0));
    assert_table_matches(&cloud.aws.ddb, &table.name, &out.expected[0]).await;
}

/// A worker whose write hangs while its lease runs out (its checkpoints do not renew it) abandons that write
/// at the lease's local deadline and hands the file back instead of failing it; another worker restores the
/// file and the next exports, and the stale write, released after all that, reaches nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_worker_never_writes_after_its_lease() {
    use ddb_pitr::aws::Clients;
    use ddb_pitr::distributed::queue::FileMessage;
    use ddb_pitr::distributed::worker::{Ack, Disposition, Worker, WorkerOptions};
    use ddb_pitr::testing::writers::FakeTable;
    use tokio_util::sync::CancellationToken;

    let cloud = Cloud::new(test_worker_options()).await;
    let (_dir, out, _bucket, table, exports) = generated(&cloud, chain_spec(51, 1, 100)).await;
    let id = unique_name("stale");
    cloud.plan(&id, &table.name, &exports, false).await;
    let files = cloud.files(&id, 0).await;
    let key = files
        .iter()
        .max_by_key(|f| f.file.item_count)
        .unwrap()
        .file
        .key
        .clone();

    // Every write of the stale worker hangs until released; it renews its 2 s lease only after an hour.
    let stuck = Arc::new(FakeTable::new(&["pk", "sk"]).with_hold(|_, _| true));
    let clients = Clients::from_sdk_config(&crate::support::sdk_config(&cloud.aws.endpoint).await);
    let stale = Arc::new(
        Worker::new(
            &clients,
            &cloud.control_table.name,
            &cloud.queue.url,
            WorkerOptions {
                owner: "stale-worker".into(),
                lease: Duration::from_secs(2),
                checkpoint_interval: Duration::from_secs(3600),
                ..test_worker_options()
            },
        )
        .with_writer(stuck.clone()),
    );
    let body = FileMessage::new(&id, 0, &key).to_body();
    let handled = tokio::spawn({
        let stale = stale.clone();
        async move { stale.handle(&body, None, &CancellationToken::new()).await }
    });
    let disposition = tokio::time::timeout(Duration::from_secs(30), handled)
        .await
        .expect("the stale worker gives up its hanging write at its lease's deadline")
        .unwrap();
    assert!(stuck.held(), "a write was in flight when the lease ran out");
    assert!(
        !matches!(disposition, Disposition::Ack(Ack::Failed(_))),
        "{disposition:?}"
    );

    let last = cloud.drive(&id, 0..3, 2, MINUTE).await;
    assert_eq!(last["files_failed"], 0, "{last}");
    stuck.release(1000);
    tokio::task::yield_now().await;
    assert!(stuck.written().is_empty(), "{:?}", stuck.written());
    assert_eq!(
        stuck.log(),
        vec![],
        "no call of the stale worker was ever answered"
    );
    assert_table_matches(&cloud.aws.ddb, &table.name, out.expected.last().unwrap()).await;
}

/// A message the worker Lambda hands back (its file is leased by another worker for 20 s more) stays away
/// for the worker's retry delay, not for the queue's visibility timeout (3 s here): the worker sets the delay
/// with ChangeMessageVisibility before it reports the batch item failure.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_lambda_honours_its_retry_delay() {
    let cloud = Cloud::new(test_worker_options()).await;
    let (_dir, _out, _bucket, table, exports) = generated(&cloud, full_only(31, 1, 50)).await;
    let id = unique_name("delay");
    cloud.plan(&id, &table.name, &exports, false).await;
    let key = cloud.files(&id, 0).await[0].file.key.clone();
    let held = cloud
        .control
        .acquire(&id, 0, &key, "other-worker", Duration::from_secs(20))
        .await
        .unwrap();
    assert!(matches!(held, Acquired::Leased(_)), "{held:?}");
    cloud.plan_export(&id, 0).await.unwrap();
    let messages = cloud.receive().await;
    assert_eq!(messages.len(), 1);
    let response = cloud.invoke_worker(&messages, MINUTE).await;
    assert_eq!(response.batch_item_failures.len(), 1, "handed back");
    let until = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < until {
        assert!(
            cloud.receive().await.is_empty(),
            "the message came back after the queue's visibility timeout, before its retry delay"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_is_taken_over_and_its_old_holder_can_no_longer_write() {
    let cloud = Cloud::new(test_worker_options()).await;
    let (_dir, out, _bucket, table, exports) = generated(&cloud, full_only(17, 1, 300)).await;
    let id = unique_name("takeover");
    cloud.plan(&id, &table.name, &exports, false).await;
    let key = cloud.files(&id, 0).await[0].file.key.clone();
    // A worker that crashed right after leasing the file: its lease has no time left.
    let stale = match cloud
        .control
        .acquire(&id, 0, &key, "crashed-worker", Duration::ZERO)
        .await
        .unwrap()
    {
        Acquired::Leased(lease) => lease,
        other => panic!("a PENDING file with a free lease must be leased: {other:?}"),
    };
    let last = cloud.drive(&id, 0..1, 1, MINUTE).await;
    assert_eq!(last["files_done"], 1, "{last}");
    let file = &cloud.files(&id, 0).await[0];
    assert_eq!(file.finished_by.as_deref(), Some(LAMBDA_OWNER));
    assert_eq!(file.deliveries, 2, "the crashed lease, then the takeover");

    // The old holder wakes up: none of its lease-conditioned writes lands.
    let mut behind = FileProgress {
        position: file.position,
        object_etag: file.object_etag.clone(),
        writes: file.writes,
    };
    behind.position.offset = 1;
    let ten = Duration::from_secs(10);
    assert!(
        !cloud
            .control
            .checkpoint(&stale, &behind, ten)
            .await
            .unwrap()
    );
    assert!(!cloud.control.release(&stale, &behind, false).await.unwrap());
    assert!(!cloud.control.complete(&stale, &behind, 1).await.unwrap());
    assert!(!cloud.control.fail(&stale, &behind, "late").await.unwrap());
    assert_eq!(
        &cloud.files(&id, 0).await[0],
        file,
        "the file item is unchanged"
    );
    assert_eq!(counters(&cloud, &id).await[0], (1, 0, 300, 0));
    assert_table_matches(&cloud.aws.ddb, &table.name, &out.expected[0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tiny_deadline_needs_many_continuations_and_still_finishes_exactly() {
    let mut options = test_worker_options();
    options.deadline_margin = Duration::from_millis(200);
    options.checkpoint_interval = Duration::from_millis(50);
    options.settings.inflight_batches = 1;
    // On a loaded machine a 500 ms window can pass without one batch acknowledged; that is a stall, and
    // three in a row fail the file (tested below). Here only continuations are under test.
    options.max_stalls = u32::MAX;
    let cloud = Cloud::new(options).await;
    // About 1,300 items a second go into moto here, 650 per invocation: 3,000 need about five, and at least
    // three even if moto were twice as fast.
    let spec = full_only(9, 1, 3000);
    let (_dir, out, _bucket, table, exports) = generated(&cloud, spec).await;
    let id = unique_name("deadline");
    cloud
        .planner_call(
            "planner-plan.json",
            serde_json::json!({"restore_id": id, "table": table.name, "exports": exports, "batch_size": 5, "report_uri": null}),
        )
        .await
        .unwrap();
    // 700 ms per invocation, reading stops 200 ms before the deadline.
    let last = cloud.drive(&id, 0..1, 1, Duration::from_millis(700)).await;
    assert_eq!(last["files_done"], 1, "{last}");
    assert_table_matches(&cloud.aws.ddb, &table.name, &out.expected[0]).await;
    let file = &cloud.files(&id, 0).await[0];
    assert!(
        file.deliveries >= 3,
        "the file should need several continuations, took {} deliveries",
        file.deliveries
    );
    assert_eq!(file.position.puts, 3000);
    assert_eq!(counters(&cloud, &id).await[0], (1, 0, 3000, 0));
    // Write statistics add up across leases: at least one BatchWriteItem per 5 items.
    assert!(
        file.writes.batch_write_requests >= 600,
        "{:?} over {} deliveries",
        file.writes,
        file.deliveries
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invocations_that_never_move_the_checkpoint_fail_the_file_after_max_stalls() {
    let options = test_worker_options();
    // Each invocation gets 100 ms: less than half the 400 ms margin, so both the soft and the hard stop
    // are already due when the file is leased and no batch can be acknowledged.
    let invocation = options.deadline_margin / 4;
    let max_stalls = options.max_stalls;
    let cloud = Cloud::new(options).await;
    let (_dir, _out, _bucket, table, exports) = generated(&cloud, full_only(13, 1, 200)).await;
    let id = unique_name("stall");
    cloud.plan(&id, &table.name, &exports, false).await;
    let last = cloud.drive(&id, 0..1, 1, invocation).await;
    assert_eq!(last["files_failed"], 1, "{last}");
    assert_eq!(last["failed_files_total"], 1, "{last}");
    let file = &cloud.files(&id, 0).await[0];
    assert_eq!(file.status, RecordStatus::Failed);
    assert_eq!(
        file.deliveries,
        u64::from(max_stalls),
        "one delivery per stall"
    );
    assert_eq!(file.position.offset, 0);
    let error = file.error.as_deref().unwrap();
    for needle in [
        file.export_id.as_str(),
        file.file.key.as_str(),
        &format!("{max_stalls} consecutive invocations"),
        "byte offset 0",
        "ddb-pitr worker",
    ] {
        assert!(error.contains(needle), "{needle:?} missing from {error}");
    }
    // A FAILED export is finished, and the next one is not planned.
    assert_eq!(counters(&cloud, &id).await[0], (0, 1, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_is_returned_until_the_dead_letter_queue_takes_it() {
    let cloud = Cloud::new(test_worker_options()).await;
    // A queue like the template's, with a short visibility timeout and maxReceiveCount 2.
    let queue =
        crate::support::TestQueue::create(&cloud.sqs, "poison", Duration::from_secs(1), 2).await;
    cloud
        .sqs
        .send_message()
        .queue_url(&queue.url)
        .message_body("{\"not\": \"a file message\"}")
        .send()
        .await
        .unwrap();
    let give_up = std::time::Instant::now() + MINUTE;
    let mut deliveries = 0;
    while queue.depth(&queue.dlq_url).await == 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "not in the DLQ after {deliveries} deliveries"
        );
        let messages = cloud
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        deliveries += 1;
        // The event source mapping: the worker reports the message as a batch item failure, so it is
        // not deleted and comes back after the visibility timeout.
        let response = cloud.invoke_worker(&messages, MINUTE).await;
        assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
        assert_eq!(
            response.batch_item_failures[0].item_identifier,
            messages[0].message_id().unwrap()
        );
    }
    assert_eq!(deliveries, 2, "maxReceiveCount deliveries, then the DLQ");
    assert_eq!(queue.depth(&queue.url).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_file_ends_failed_with_its_error_and_the_others_finish() {
    // Written while verified, so that the bad file's first batches are written before its MD5 fails.
    let mut options = test_worker_options();
    options.settings.copied_objects = CopiedObjects::VerifyWhileWriting;
    let cloud = Cloud::new(options).await;
    let (dir, out, bucket, table, exports) = generated(&cloud, chain_spec(33, 3, 150)).await;
    // Replace the second data file of the FULL export with other gzip data: its MD5 no longer matches.
    let full_files = {
        let summary: Value =
            serde_json::from_slice(&bucket.get(&out.exports[0].summary_key).await.unwrap())
                .unwrap();
        assert!(summary["itemCount"].as_u64().unwrap() > 0);
        out.exports[0].files.clone()
    };
    let victim = full_files
        .iter()
        .find(|f| f.item_count > 0)
        .unwrap()
        .key
        .clone();
    let good = std::fs::read(dir.path().join(&victim)).unwrap();
    let mut lines = String::from_utf8(gunzip(&good)).unwrap();
    lines.push_str("{\"Item\":{\"pk\":{\"S\":\"extra\"},\"sk\":{\"S\":\"line\"}}}\n");
    bucket.put(&victim, synth::gzip(lines.as_bytes())).await;

    let id = unique_name("bad");
    cloud.plan(&id, &table.name, &exports, false).await;
    let last = cloud.drive(&id, 0..3, 2, MINUTE).await;
    assert_eq!(last["export_index"], 0);
    assert_eq!(last["export_finished"], true);
    assert_eq!(last["files_failed"], 1, "{last}");
    assert_eq!(last["next_export"], Value::Null);
    let files = cloud.files(&id, 0).await;
    let failed: Vec<_> = files
        .iter()
        .filter(|f| f.status == RecordStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].file.key, victim);
    let error = failed[0].error.as_deref().unwrap();
    assert!(error.contains(&victim) && error.contains("MD5"), "{error}");
    assert!(
        error.contains("lines of this object were written before the check failed"),
        "{error}"
    );
    // Its lines came from bytes that failed the check: it starts again from line 1 if restored again.
    assert_eq!(failed[0].position, FilePosition::default());
    assert_eq!(failed[0].object_etag, None);
    assert_eq!(
        files
            .iter()
            .filter(|f| f.status == RecordStatus::Done)
            .count(),
        files.len() - 1
    );
    // The incremental exports are never applied on top of an incomplete FULL export.
    let refused = cloud.plan_export(&id, 1).await.unwrap_err();
    assert!(
        refused.error_message.contains("failed file"),
        "{}",
        refused.error_message
    );

    // The way forward: put the right object back and continue the restore with a new execution, whose
    // plan_export retries the FAILED file; the same execution asking again sends nothing more.
    bucket.put(&victim, good).await;
    let continued = cloud.plan_export_as(&id, 0, "continued").await.unwrap();
    assert_eq!(continued["files_retried"], 1, "{continued}");
    assert_eq!(continued["messages_sent"], 1, "{continued}");
    let again = cloud.plan_export_as(&id, 0, "continued").await.unwrap();
    assert_eq!(again["already_enqueued"], true, "{again}");
    assert_eq!(again["messages_sent"], 0, "{again}");
    let last = cloud.drive(&id, 0..3, 2, MINUTE).await;
    assert_eq!(last["all_finished"], true, "{last}");
    assert_eq!(last["failed_files_total"], 0, "{last}");
    assert_table_matches(&cloud.aws.ddb, &table.name, out.expected.last().unwrap()).await;
}

/// A file whose message went to the dead-letter queue (here: delivered to workers that never answered,
/// until maxReceiveCount) stays PENDING with nothing left to reach it; `progress` sends it again, and the
/// restore finishes. It used to wait forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_file_is_sent_again_and_the_restore_finishes() {
    dead_lettered_then_finished(false).await;
}

/// The same while the queue holds other restores' messages (one stack serves many): the file is sent
/// again once no worker touched it for as long as a message can live before the dead-letter queue takes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_file_is_sent_again_on_a_queue_shared_with_other_restores() {
    dead_lettered_then_finished(true).await;
}

async fn dead_lettered_then_finished(busy_queue: bool) {
    // Visibility 1 s and maxReceiveCount 2: a message lives at most 2 s before the DLQ takes it.
    let cloud = Cloud::build(
        cli::aws().await,
        test_worker_options(),
        Duration::from_secs(1),
        2,
        |planner| planner.resend_after = Duration::ZERO,
    )
    .await;
    let (bucket, table) = cli::real_export_setup(&cloud.aws).await;
    let id = unique_name("dlq");
    cloud
        .plan(&id, &table.name, &[bucket.url(REAL_FULL)], false)
        .await;
    cloud.plan_export(&id, 0).await.unwrap();
    let files = cloud.files(&id, 0).await;
    let victim = files.iter().find(|f| f.file.item_count > 0).unwrap();
    let victim = FileMessage::new(&id, 0, &victim.file.key).to_body();

    let give_up = std::time::Instant::now() + MINUTE;
    while cloud.queue.depth(&cloud.queue.dlq_url).await == 0 {
        assert!(std::time::Instant::now() < give_up, "nothing dead-lettered");
        let messages = cloud.receive().await;
        // The other files' messages reach a worker; the victim's is received and never answered.
        let others: Vec<_> = messages
            .into_iter()
            .filter(|m| m.body() != Some(victim.as_str()))
            .collect();
        if !others.is_empty() {
            let response = cloud.invoke_worker(&others, MINUTE).await;
            cloud.delete_succeeded(&others, &response).await;
        }
    }
    if busy_queue {
        cloud
            .sqs
            .send_message()
            .queue_url(&cloud.queue.url)
            .message_body(
                FileMessage::new("another-restore", 0, "AWSDynamoDB/x/data/y.json.gz").to_body(),
            )
            .send()
            .await
            .unwrap();
    }
    let stuck = cloud.progress(&id, 0).await;
    assert_eq!(stuck["files_done"], 3, "{stuck}");
    assert_eq!(stuck["messages_resent"], 1, "{stuck}");
    let last = cloud.drive(&id, 0..1, 1, MINUTE).await;
    assert_eq!(last["files_done"], 4, "{last}");
    assert_table_matches(
        &cloud.aws.ddb,
        &table.name,
        cli::real_export().join("expected-after-full.jsonl"),
    )
    .await;
}

/// An export that makes no progress for the planner's idle timeout fails `progress` with the errorType
/// `Stalled`, which the state machine turns into its RestoreStalled state, and the error says how to go on.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_without_progress_for_the_idle_timeout_stalls_with_a_way_forward() {
    let cloud = Cloud::build(
        cli::aws().await,
        test_worker_options(),
        VISIBILITY,
        50,
        |planner| planner.idle_timeout = Duration::ZERO,
    )
    .await;
    let (bucket, table) = cli::real_export_setup(&cloud.aws).await;
    let id = unique_name("idle");
    cloud
        .plan(&id, &table.name, &[bucket.url(REAL_FULL)], false)
        .await;
    cloud.plan_export(&id, 0).await.unwrap();
    // No worker runs.
    let stalled = cloud.try_progress(&id, 0).await.unwrap_err();
    assert_eq!(stalled.error_type, "Stalled");
    for needle in [
        "no file finished and no line was acknowledged",
        "4 of 4 files are PENDING",
        &format!("cloud start --restore-id {id}"),
    ] {
        assert!(
            stalled.error_message.contains(needle),
            "{needle:?} in {}",
            stalled.error_message
        );
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A `ddb-pitr worker` process on the cloud's queue and control table.
fn spawn_cli_worker(cloud: &Cloud, name: &str, extra: &[&str]) -> tokio::process::Child {
    let mut cmd = cli::command();
    cmd.env("HOSTNAME", name).args([
        "worker",
        "--queue-url",
        &cloud.queue.url,
        "--control-table",
        &cloud.control_table.name,
        "--endpoint-url",
        &cloud.aws.endpoint,
        "--wait-time",
        "1s",
        "--visibility-timeout",
        "30s",
        "--lease",
        "10s",
        "--checkpoint-interval",
        "100ms",
        "--workers",
        "2",
    ]);
    cmd.args(extra);
    cmd.spawn().expect("spawn ddb-pitr worker")
}

async fn sigterm_and_wait(child: tokio::process::Child) -> (Option<i32>, String, String) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ddb-pitr worker` survives a failing ReceiveMessage (here: its queue is gone for a while): it logs,
/// backs off and polls again, receives what arrives once the queue is back, and exits on its signal.
#[tokio::test(flavor = "multi_thread")]
async fn a_cli_worker_retries_a_failing_receive_until_its_signal() {
    use tokio::io::AsyncBufReadExt;
    let cloud = Cloud::new(test_worker_options()).await;
    let name = unique_name("flaky");
    let create = || async {
        cloud
            .sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("a queue URL")
    };
    let url = create().await;
    cloud
        .sqs
        .delete_queue()
        .queue_url(&url)
        .send()
        .await
        .expect("DeleteQueue");

    let mut cmd = cli::command();
    cmd.args([
        "worker",
        "--queue-url",
        &url,
        "--control-table",
        &cloud.control_table.name,
        "--endpoint-url",
        &cloud.aws.endpoint,
        "--wait-time",
        "1s",
    ]);
    let mut child = cmd.spawn().expect("spawn ddb-pitr worker");
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut wait_for = async |what: &str| {
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = stderr.next_line().await.unwrap() {
                let found = line.contains(what);
                seen.push(line);
                if found {
                    return;
                }
            }
            panic!(
                "ddb-pitr worker ended before {what:?}:\n{}",
                seen.join("\n")
            );
        })
        .await
        .unwrap_or_else(|_| panic!("no {what:?} within a minute"))
    };
    wait_for("retrying in").await;

    assert_eq!(create().await, url, "the queue is back under its URL");
    cloud
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body("not a file message")
        .send()
        .await
        .expect("SendMessage");
    // The message is received and, as it is no file message, handed back.
    wait_for("message left for redelivery").await;
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let (code, stdout, _) = sigterm_and_wait(child).await;
    drain.await.unwrap();
    assert_eq!(code, Some(0), "{}", seen.join("\n"));
    let stats: Value = serde_json::from_str(&stdout).unwrap();
    assert!(stats["receive_errors"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        stats["messages"].as_u64().unwrap() >= 1,
        "received after the failures: {stats}"
    );
    cloud
        .sqs
        .delete_queue()
        .queue_url(&url)
        .send()
        .await
        .expect("DeleteQueue");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_workers_and_lambda_handlers_restore_one_chain_together() {
    let cloud = Cloud::new(test_worker_options()).await;
    let (_dir, out, _bucket, table, exports) = generated(&cloud, chain_spec(44, 4, 300)).await;
    let id = unique_name("mixed");
    cloud.plan(&id, &table.name, &exports, false).await;

    // Export 0 by a CLI worker alone, export 1 by Lambda handlers alone, export 2 by both at once.
    let cli_worker = spawn_cli_worker(&cloud, "ec2-a", &[]);
    let p = cloud.drive_exports(&id, 0..1).await;
    assert_eq!(p["files_failed"], 0, "{p}");
    let (code, stdout, stderr) = sigterm_and_wait(cli_worker).await;
    assert_eq!(code, Some(0), "{stderr}");
    let stats: Value = serde_json::from_str(&stdout).expect("worker prints its stats");
    assert_eq!(stats["files_done"], out.exports[0].files.len(), "{stats}");

    let p = cloud.drive(&id, 1..2, 2, MINUTE).await;
    assert_eq!(p["files_failed"], 0, "{p}");

    let cli_worker = spawn_cli_worker(&cloud, "ec2-b", &[]);
    let p = cloud.drive(&id, 2..3, 1, MINUTE).await;
    assert_eq!(p["all_finished"], true, "{p}");
    let (code, _, stderr) = sigterm_and_wait(cli_worker).await;
    assert_eq!(code, Some(0), "{stderr}");

    assert_table_matches(&cloud.aws.ddb, &table.name, out.expected.last().unwrap()).await;
    let owners = |files: Vec<ddb_pitr::distributed::control::FileRecord>| -> Vec<String> {
        files
            .into_iter()
            .map(|f| f.finished_by.unwrap_or_default())
            .collect()
    };
    assert!(
        owners(cloud.files(&id, 0).await)
            .iter()
            .all(|o| o.starts_with("ec2-a:"))
    );
    assert!(
        owners(cloud.files(&id, 1).await)
            .iter()
            .all(|o| o == LAMBDA_OWNER)
    );
    let last = owners(cloud.files(&id, 2).await);
    assert!(
        last.iter()
            .all(|o| o.starts_with("ec2-b:") || o == LAMBDA_OWNER),
        "{last:?}"
    );
    for (k, export) in out.exports.iter().enumerate() {
        let (done, failed, puts, deletes) = counters(&cloud, &id).await[k];
        assert_eq!((done, failed), (export.files.len() as u64, 0));
        assert_eq!(puts + deletes, export.item_count);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_worker_stopped_mid_file_saves_its_checkpoint_and_another_worker_finishes() {
    let cloud = Cloud::new(test_worker_options()).await;
    let spec = full_only(12, 1, 4000);
    let (_dir, out, _bucket, table, exports) = generated(&cloud, spec).await;
    let id = unique_name("sigterm");
    cloud
        .planner_call(
            "planner-plan.json",
            serde_json::json!({"restore_id": id, "table": table.name, "exports": exports, "batch_size": 5, "report_uri": null}),
        )
        .await
        .unwrap();
    cloud.plan_export(&id, 0).await.unwrap();
    let worker = spawn_cli_worker(&cloud, "ec2-stop", &["--inflight-batches", "1"]);
    // Watch the control table, not the clock: stop once a checkpoint is saved mid-file.
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    let saved = loop {
        let f = cloud.files(&id, 0).await.remove(0);
        if f.position.lines > 0 {
            break f.position;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "no checkpoint after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (code, stdout, stderr) = sigterm_and_wait(worker).await;
    assert_eq!(code, Some(0), "{stderr}");
    let stats: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stats["files_done"], 0, "stopped mid-file: {stats}");
    assert_eq!(stats["returned"], 1, "{stats}");
    let f = cloud.files(&id, 0).await.remove(0);
    assert_eq!(f.status, RecordStatus::Pending);
    assert!(
        f.position.lines >= saved.lines && f.position.lines < 4000,
        "{:?}",
        f.position
    );
    assert_eq!(f.lease_expires_ms, 0, "the lease was released");
    assert!(f.lease_owner.is_none());

    // The message was handed back at once; an in-process Lambda worker finishes the file from there.
    let p = cloud
        .with_pollers(1, MINUTE, cloud.wait_finished(&id, 0))
        .await;
    assert_eq!(p["files_done"], 1, "{p}");
    assert_table_matches(&cloud.aws.ddb, &table.name, &out.expected[0]).await;
    let f = cloud.files(&id, 0).await.remove(0);
    assert_eq!(f.position.puts, 4000);
    assert_eq!(f.deliveries, 2);
    assert_eq!(counters(&cloud, &id).await[0], (1, 0, 4000, 0));
}

/// `export_prefix` and `to` instead of `exports`: the planner finds the chain, records the choice in the
/// control table, and a second plan of the same restore keeps it even when asked for another time.
#[tokio::test(flavor = "multi_thread")]
async fn the_planner_finds_the_chain_for_a_time_and_records_it() {
    let cloud = Cloud::new(test_worker_options()).await;
    let spec = SynthSpec {
        prefix: Some("backups".into()),
        write_expected: true,
        ..chain_spec(31, 3, 300)
    };
    let (_dir, out, bucket, table, _) = generated(&cloud, spec.clone()).await;
    let id = unique_name("found");
    // The planner's input for this restore, to the time `to`.
    let plan_to = |to: String| {
        serde_json::json!({
            "restore_id": id,
            "table": table.name,
            "exports": [],
            "export_prefix": bucket.url("backups/"),
            "to": to,
            "report_uri": null,
        })
    };
    let first_point = cloud
        .planner_call(
            "planner-plan.json",
            plan_to(
                humantime::format_rfc3339_millis(spec.start_time + spec.incremental_window)
                    .to_string(),
            ),
        )
        .await
        .unwrap_or_else(|d| panic!("{}: {}", d.error_type, d.error_message));
    assert_eq!(
        first_point["exports"], 2,
        "the FULL and the first incremental"
    );
    let header = cloud.control.header(&id).await.unwrap().unwrap();
    let chain = header.plan.chain.expect("the choice is recorded");
    assert_eq!(
        chain.exports,
        [
            out.exports[0].export_id.clone(),
            out.exports[1].export_id.clone()
        ]
    );
    assert_eq!(
        chain.reached,
        humantime::format_rfc3339_millis(spec.start_time + spec.incremental_window).to_string()
    );

    // The same restore asked again, for `latest`: the recorded chain stands.
    let again = cloud
        .planner_call("planner-plan.json", plan_to("latest".into()))
        .await
        .unwrap_or_else(|d| panic!("{}: {}", d.error_type, d.error_message));
    assert_eq!(again["created"], false);
    assert_eq!(again["exports"], 2);

    let last = cloud.drive(&id, 0..2, 2, MINUTE).await;
    assert_eq!(last["all_finished"], true, "{last}");
    assert_table_matches(&cloud.aws.ddb, &table.name, &out.expected[1]).await;
}
