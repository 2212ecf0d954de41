//! Generated real-format exports: every attribute type, numbers at DynamoDB's limits, unicode, items near
//! 400 KB, empty files, prefixes, N and B keys, both views.

use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use ddb_pitr_synth::{self as synth, IncrementalSpec, KeyAttr, KeyType, OutputView, SynthSpec};

use crate::cli;
use crate::support::{TestBucket, TestTable, assert_table_matches};

#[tokio::test(flavor = "multi_thread")]
async fn string_keys_big_items_prefix_s3_checkpoint_and_report() {
    let aws = cli::aws().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        seed: 7,
        prefix: Some("backups/daily".into()),
        full_items: 300,
        full_files: 4,
        big_items: 3,
        empty_files: 1,
        incrementals: vec![
            IncrementalSpec {
                files: 3,
                inserts: 60,
                updates: 50,
                deletes: 40,
                big_inserts: 1,
            },
            IncrementalSpec {
                files: 2,
                inserts: 30,
                updates: 40,
                deletes: 30,
                big_inserts: 0,
            },
        ],
        ..SynthSpec::default()
    };
    let out = synth::generate(dir.path(), &spec).unwrap();
    let bucket = TestBucket::create(&aws.s3, "gen").await;
    bucket.upload_dir(dir.path(), "").await;
    let table = TestTable::create(&aws.ddb, "gen", ("pk", T::S), Some(("sk", T::S))).await;

    let mut args = cli::export_args(&bucket, out.exports.iter().map(|e| e.summary_key.as_str()));
    let checkpoint = format!("s3://{}/state/checkpoint.json", bucket.name);
    let report_key = "reports/restore.json";
    args.extend([
        "--resume".into(),
        checkpoint,
        "--report".into(),
        format!("s3://{}/{report_key}", bucket.name),
        "--part-size".into(),
        "16KiB".into(),
        "--workers".into(),
        "3".into(),
    ]);
    let run = cli::restore(&aws, &table.name, &args).await;
    run.assert_success();
    assert_table_matches(&aws.ddb, &table.name, out.expected.last().unwrap()).await;

    let expected_items: u64 = out.exports.iter().map(|e| e.item_count).sum();
    assert_eq!(run.report["totals"]["items_this_run"], expected_items);
    let uploaded: serde_json::Value =
        serde_json::from_slice(&bucket.get(report_key).await.expect("report uploaded")).unwrap();
    assert_eq!(uploaded["totals"], run.report["totals"]);
    assert_eq!(uploaded["exports"], run.report["exports"]);
    let saved: serde_json::Value = serde_json::from_slice(
        &bucket
            .get("state/checkpoint.json")
            .await
            .expect("checkpoint saved"),
    )
    .unwrap();
    assert!(
        saved["exports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["done"] == true),
        "{saved}"
    );

    // Running again with the same checkpoint skips everything and writes nothing.
    let again = cli::restore(&aws, &table.name, &args).await;
    again.assert_success();
    assert_eq!(again.report["writes"]["batch_write_requests"], 0);
    assert_eq!(again.report["totals"]["items_this_run"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn number_and_binary_keys_new_image_view_small_batches() {
    let aws = cli::aws().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        seed: 11,
        partition_key: KeyAttr::new("id", KeyType::N),
        sort_key: Some(KeyAttr::new("ver", KeyType::B)),
        view: OutputView::NewImage,
        omit_full_export_type: true,
        full_items: 200,
        full_files: 2,
        big_items: 1,
        empty_files: 2,
        incrementals: vec![IncrementalSpec {
            files: 2,
            inserts: 40,
            updates: 40,
            deletes: 40,
            big_inserts: 0,
        }],
        ..SynthSpec::default()
    };
    let out = synth::generate(dir.path(), &spec).unwrap();
    let bucket = TestBucket::create(&aws.s3, "gen-nb").await;
    bucket.upload_dir(dir.path(), "").await;
    let table = TestTable::create(&aws.ddb, "gen-nb", ("id", T::N), Some(("ver", T::B))).await;

    // The FULL export alone, then the incremental on top of it, as two separate restores.
    let run = cli::restore(
        &aws,
        &table.name,
        &[
            cli::export_args(&bucket, [out.exports[0].summary_key.as_str()]),
            vec!["--batch-size".into(), "7".into()],
        ]
        .concat(),
    )
    .await;
    run.assert_success();
    assert_table_matches(&aws.ddb, &table.name, &out.expected[0]).await;
    let requests = run.report["writes"]["batch_write_requests"]
        .as_u64()
        .unwrap();
    assert!(
        requests >= 200 / 7,
        "batches of at most 7 requests: {requests} calls for 200 items"
    );

    let mut args = cli::export_args(&bucket, [out.exports[1].summary_key.as_str()]);
    args.extend([
        "--type".into(),
        "INCREMENTAL".into(),
        "--view".into(),
        "NEW".into(),
    ]);
    let run = cli::restore(&aws, &table.name, &args).await;
    run.assert_success();
    assert_table_matches(&aws.ddb, &table.name, &out.expected[1]).await;
    assert_eq!(run.report["exports"][0]["items_deleted"], 40);
}
