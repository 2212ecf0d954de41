//! `--s3-root`: S3 path-style requests from `aws-sdk-s3`, served from files, next to the DynamoDB API.

use std::path::Path;
use std::process::Stdio;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use ddb_bench_endpoint::Config;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;

const MIB: usize = 1024 * 1024;
const DATA_KEY: &str = "AWSDynamoDB/01700000000000-abcd1234/data/part-0.json.gz";

/// A root with bucket `exports`, an empty bucket `empty`, and a file beside the buckets.
fn root() -> TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("exports")).unwrap();
    std::fs::create_dir(root.path().join("empty")).unwrap();
    std::fs::write(root.path().join("outside"), b"not in any bucket").unwrap();
    root
}

/// Writes `bytes` as `key` of `bucket` under `root`.
fn object(root: &Path, bucket: &str, key: &str, bytes: &[u8]) {
    let path = root.join(bucket).join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Bytes that differ at every offset that matters (a misplaced range cannot match by chance).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// An endpoint serving `root` over S3 and the table `restored` over DynamoDB, with an S3 client.
async fn start_s3(root: &TempDir) -> (Harness, aws_sdk_s3::Client) {
    let h = start(Config {
        s3_root: Some(root.path().to_path_buf()),
        ..Config::with_tables([table("restored:pk:S")])
    })
    .await;
    let s3 = s3_client(&h.server.url()).await;
    (h, s3)
}

async fn get_range(
    s3: &aws_sdk_s3::Client,
    key: &str,
    range: &str,
    if_match: Option<&str>,
) -> Result<(Vec<u8>, Option<String>), String> {
    let out = s3
        .get_object()
        .bucket("exports")
        .key(key)
        .range(range)
        .set_if_match(if_match.map(str::to_owned))
        .send()
        .await
        .map_err(|e| e.code().unwrap_or("no code").to_owned())?;
    let content_range = out.content_range().map(str::to_owned);
    let bytes = out.body.collect().await.unwrap().to_vec();
    Ok((bytes, content_range))
}

#[tokio::test]
async fn ranged_gets_return_the_slices_of_the_file() {
    let root = root();
    let data = noise(3 * MIB + 12_345, 1);
    object(root.path(), "exports", DATA_KEY, &data);
    let (_h, s3) = start_s3(&root).await;

    // 1 MiB parts, as ddb-pitr reads a data file; the last is short.
    let size = data.len();
    for start in (0..size).step_by(MIB) {
        let end = (start + MIB).min(size);
        let (bytes, content_range) =
            get_range(&s3, DATA_KEY, &format!("bytes={start}-{}", end - 1), None)
                .await
                .unwrap();
        assert!(bytes == data[start..end], "bytes {start}..{end} differ");
        assert_eq!(
            content_range.as_deref(),
            Some(format!("bytes {start}-{}/{size}", end - 1).as_str())
        );
    }
    // Open-ended, suffix, and past-the-end ranges are cut at the end.
    let (tail, _) = get_range(&s3, DATA_KEY, "bytes=-100", None).await.unwrap();
    assert!(tail == data[size - 100..]);
    let (from, _) = get_range(&s3, DATA_KEY, &format!("bytes={}-", size - 7), None)
        .await
        .unwrap();
    assert!(from == data[size - 7..]);
    let (over, range) = get_range(
        &s3,
        DATA_KEY,
        &format!("bytes={}-{}", size - 3, size + 50),
        None,
    )
    .await
    .unwrap();
    assert!(over == data[size - 3..]);
    assert_eq!(
        range,
        Some(format!("bytes {}-{}/{size}", size - 3, size - 1))
    );

    let unsatisfiable =
        get_range(&s3, DATA_KEY, &format!("bytes={size}-{}", size + 10), None).await;
    assert_eq!(unsatisfiable, Err("InvalidRange".to_owned()));
}

#[tokio::test]
async fn whole_gets_stream_the_file_and_head_agrees() {
    let root = root();
    let data = noise(2 * MIB + 777, 2);
    object(root.path(), "exports", DATA_KEY, &data);
    object(root.path(), "exports", "empty-object", b"");
    let (_h, s3) = start_s3(&root).await;

    let got = s3
        .get_object()
        .bucket("exports")
        .key(DATA_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_length(), Some(data.len() as i64));
    assert_eq!(got.content_range(), None);
    let etag = got.e_tag().expect("an ETag").to_owned();
    let last_modified = got.last_modified().cloned().expect("a Last-Modified");
    let body = got.body.collect().await.unwrap().to_vec();
    assert!(body == data, "the whole body differs from the file");

    let head = s3
        .head_object()
        .bucket("exports")
        .key(DATA_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.last_modified(), Some(&last_modified));
    // The ETag is not an MD5 (an MD5 ETag is 32 hex digits with no `-`).
    assert!(etag.starts_with('"') && etag.contains('-'), "{etag}");

    let empty = s3
        .get_object()
        .bucket("exports")
        .key("empty-object")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.content_length(), Some(0));
    assert!(empty.body.collect().await.unwrap().to_vec().is_empty());
}

#[tokio::test]
async fn if_match_holds_a_read_to_the_version_it_started_on() {
    let root = root();
    let first = noise(4096, 3);
    object(root.path(), "exports", DATA_KEY, &first);
    let (_h, s3) = start_s3(&root).await;
    let head = |s3: aws_sdk_s3::Client| async move {
        s3.head_object()
            .bucket("exports")
            .key(DATA_KEY)
            .send()
            .await
            .unwrap()
            .e_tag()
            .unwrap()
            .to_owned()
    };
    let etag = head(s3.clone()).await;
    let (bytes, _) = get_range(&s3, DATA_KEY, "bytes=0-99", Some(&etag))
        .await
        .unwrap();
    assert!(bytes == first[..100]);

    // Replaced the way S3 replaces an object (a new file renamed over it): a new ETag, and reads that
    // still carry the old one fail instead of mixing versions.
    let replacement = root.path().join("exports/replacement");
    std::fs::write(&replacement, noise(4096, 4)).unwrap();
    std::fs::rename(&replacement, root.path().join("exports").join(DATA_KEY)).unwrap();
    let new_etag = head(s3.clone()).await;
    assert_ne!(new_etag, etag);
    assert_eq!(
        get_range(&s3, DATA_KEY, "bytes=0-99", Some(&etag)).await,
        Err("PreconditionFailed".to_owned())
    );
    let err = s3
        .head_object()
        .bucket("exports")
        .key(DATA_KEY)
        .if_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(412));
    assert!(
        get_range(&s3, DATA_KEY, "bytes=0-99", Some(&new_etag))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn missing_keys_and_buckets_answer_as_s3_does() {
    let root = root();
    object(root.path(), "exports", "a/b", b"x");
    let (h, s3) = start_s3(&root).await;

    for key in ["nope", "a", "a/b/c", "a/../a/b"] {
        let err = s3
            .get_object()
            .bucket("exports")
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error().is_some_and(|e| e.is_no_such_key()),
            "{key}: {err:?}"
        );
        let err = s3
            .head_object()
            .bucket("exports")
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error().is_some_and(|e| e.is_not_found()),
            "{key}: {err:?}"
        );
    }
    let err = s3
        .get_object()
        .bucket("missing")
        .key("a/b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchBucket"));
    let err = s3
        .list_objects_v2()
        .bucket("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchBucket"));

    // Paths cannot climb out of a bucket, or out of the root.
    let (status, body) = raw(&h, "GET", "/exports/../outside", None, b"").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("<Code>NoSuchKey</Code>"), "{body}");
    let (status, body) = raw(&h, "GET", "/%2E%2E/outside", None, b"").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidBucketName</Code>"), "{body}");
}

#[tokio::test]
async fn listings_filter_by_prefix_and_paginate() {
    let root = root();
    let export = "AWSDynamoDB/01700000000000-abcd1234";
    let mut expected: Vec<String> = (0..7)
        .map(|i| format!("{export}/data/part-{i}.json.gz"))
        .chain([
            format!("{export}/manifest-files.json"),
            format!("{export}/manifest-summary.json"),
        ])
        .collect();
    for (i, key) in expected.iter().enumerate() {
        object(root.path(), "exports", key, &vec![b'x'; i + 1]);
    }
    object(root.path(), "exports", "checkpoints/run-1.json", b"{}");
    object(root.path(), "exports", "checkpoints/run-10.json", b"{}");
    expected.sort();
    let (_h, s3) = start_s3(&root).await;

    // Two keys a page, following the continuation tokens.
    let mut listed = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("exports")
            .prefix(format!("{export}/"))
            .max_keys(2)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(out.key_count().unwrap() <= 2);
        for o in out.contents() {
            let key = o.key().unwrap().to_owned();
            let i = expected.iter().position(|k| *k == key).unwrap();
            let len = root
                .path()
                .join("exports")
                .join(&key)
                .metadata()
                .unwrap()
                .len();
            assert_eq!(o.size(), Some(len as i64), "{key}");
            assert!(o.e_tag().is_some() && o.last_modified().is_some());
            assert!(i == 0 || listed.last() == Some(&expected[i - 1]), "order");
            listed.push(key);
        }
        if out.is_truncated() != Some(true) {
            break;
        }
        token = out.next_continuation_token().map(str::to_owned);
        assert!(token.is_some());
    }
    assert_eq!(listed, expected);
    assert_eq!(pages, 5);

    // The checkpoint lookup: the exact key as the prefix, one key at most.
    let out = s3
        .list_objects_v2()
        .bucket("exports")
        .prefix("checkpoints/run-1")
        .max_keys(1)
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["checkpoints/run-1.json"]);
    assert_eq!(out.is_truncated(), Some(true));

    let none = s3
        .list_objects_v2()
        .bucket("exports")
        .prefix("checkpoints/run-2")
        .send()
        .await
        .unwrap();
    assert!(none.contents().is_empty());
    assert_eq!(none.key_count(), Some(0));
    let empty = s3.list_objects_v2().bucket("empty").send().await.unwrap();
    assert!(empty.contents().is_empty());
}

#[tokio::test]
async fn puts_write_the_file_whether_the_body_is_in_memory_or_streamed() {
    let root = root();
    let (_h, s3) = start_s3(&root).await;

    let report = br#"{"status":"ok"}"#.to_vec();
    let put = s3
        .put_object()
        .bucket("exports")
        .key("reports/2024-01-01T00-00-00Z.json")
        .content_type("application/json")
        .body(report.clone().into())
        .send()
        .await
        .unwrap();
    let on_disk = root
        .path()
        .join("exports/reports/2024-01-01T00-00-00Z.json");
    assert_eq!(std::fs::read(&on_disk).unwrap(), report);

    // A body from a file is sent aws-chunked, with its checksum as a trailer.
    let source = root.path().join("source.bin");
    let big = noise(200_000, 5);
    std::fs::write(&source, &big).unwrap();
    s3.put_object()
        .bucket("exports")
        .key("reports/big.bin")
        .body(ByteStream::from_path(&source).await.unwrap())
        .send()
        .await
        .unwrap();
    assert!(std::fs::read(root.path().join("exports/reports/big.bin")).unwrap() == big);

    let head = s3
        .head_object()
        .bucket("exports")
        .key("reports/2024-01-01T00-00-00Z.json")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), put.e_tag());
    let err = s3
        .put_object()
        .bucket("missing")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchBucket"));
}

#[tokio::test]
async fn dynamodb_and_the_control_routes_still_answer_next_to_s3() {
    let root = root();
    object(root.path(), "exports", "k", b"v");
    let (h, s3) = start_s3(&root).await;

    batch(
        &h,
        "restored",
        (0..25)
            .map(|i| put(item(&[("pk", s(&format!("k{i}")))])))
            .collect(),
    )
    .await
    .unwrap();
    let got = s3
        .get_object()
        .bucket("exports")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"v");
    assert_eq!(h.server.endpoint.stats().tables["restored"].items_put, 25);

    let (status, body) = raw(&h, "GET", "/stats", None, b"").await;
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["items_put"], 25);
    // A bucket cannot take a control route's name.
    let err = s3
        .get_object()
        .bucket("stats")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidBucketName"));
}

#[tokio::test]
async fn the_binary_serves_s3_alone() {
    let root = root();
    object(root.path(), "exports", "a/b.txt", b"hello");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddb-bench-endpoint"))
        .arg("--s3-root")
        .arg(root.path())
        .args(["--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next_line()
        .await
        .unwrap()
        .expect("a first stdout line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    let s3 = s3_client(v["endpoint"].as_str().unwrap()).await;
    let got = s3
        .get_object()
        .bucket("exports")
        .key("a/b.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"hello");
    child.kill().await.unwrap();

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddb-bench-endpoint"))
        .arg("--s3-root")
        .arg(root.path().join("outside"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a directory"), "{stderr}");
}
