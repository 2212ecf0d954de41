//! Tests of the harness itself (tests/it/support), and of the moto behaviours the restore tests
//! rely on, so a moto upgrade that changes them fails here first, with a clear name.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, PutRequest, ScalarAttributeType, WriteRequest,
};
use aws_smithy_types::Blob;
use futures::FutureExt;

use crate::support::{self, RecordingProxy, TestBucket, TestTable};

async fn clients() -> (aws_sdk_s3::Client, aws_sdk_dynamodb::Client) {
    let conf = support::sdk_config(&support::moto().endpoint).await;
    (support::s3_client(&conf), support::ddb_client(&conf))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.to_owned())
}

fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

async fn table_pk_sk(ddb: &aws_sdk_dynamodb::Client, prefix: &str) -> TestTable {
    TestTable::create(
        ddb,
        prefix,
        ("pk", ScalarAttributeType::S),
        Some(("sk", ScalarAttributeType::S)),
    )
    .await
}

/// The message of a panic raised by `fut`, or a failure if it did not panic.
async fn panic_message(fut: impl std::future::Future<Output = ()>) -> String {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(()) => panic!("expected a panic"),
        Err(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default(),
    }
}

// ---- moto and names ----

#[test]
fn moto_is_started_once_and_answers() {
    let a = support::moto();
    let b = support::moto();
    assert!(std::ptr::eq(a, b));
    assert_eq!(a.endpoint, format!("http://127.0.0.1:{}", a.port));
    std::net::TcpStream::connect(("127.0.0.1", a.port)).expect("moto accepts connections");
}

#[test]
fn unique_names_are_unique_and_valid_bucket_and_table_names() {
    let names: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                sc.spawn(|| {
                    (0..250)
                        .map(|_| support::unique_name("Restore_IT"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let set: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(set.len(), names.len());
    let long = "x".repeat(200);
    for name in names.iter().map(String::as_str).chain([
        support::unique_name(&long).as_str(),
        support::unique_name("").as_str(),
        support::unique_name("--A.b--").as_str(),
    ]) {
        assert!((3..=63).contains(&name.len()), "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name}"
        );
        assert!(name.as_bytes()[0].is_ascii_alphanumeric(), "{name}");
        assert!(
            name.as_bytes()[name.len() - 1].is_ascii_alphanumeric(),
            "{name}"
        );
    }
    assert!(support::unique_name("Restore_IT").starts_with("restore-it-"));
}

// ---- canonical comparison ----

#[test]
fn numbers_that_are_equal_compare_equal() {
    let c = |x: &str| support::canonical_number(x).unwrap();
    for same in [
        &[
            "12",
            "12.0",
            "1.2E1",
            "0012",
            "+12",
            "120e-1",
            "0.12E+2",
            "12.000000",
        ][..],
        &["0", "-0", "0.000", "0E10", "-0.0e-5", "000"],
        &["-1.5", "-1.50", "-15E-1", "-0.15e1"],
        &[
            "1E+125",
            "10E124",
            "0.1E126",
            "100000000000000000000000000000000000000E87",
        ],
        &["1E-130", "0.1E-129", "10E-131"],
        &[
            "99999999999999999999999999999999999999",
            "9.9999999999999999999999999999999999999E37",
        ],
        &["0.5", ".5", "5E-1", "5.E-1"],
    ] {
        let first = c(same[0]);
        for x in same {
            assert_eq!(c(x), first, "{x} vs {}", same[0]);
        }
    }
    assert_eq!(c("12.0"), "12");
    assert_eq!(c("-0.0012"), "-0.0012");
    assert_eq!(c("1E+125"), "1E+125");
    assert_eq!(c("1.5E-130"), "1.5E-130");
    // 38 significant digits are kept, not rounded.
    assert_ne!(
        c("12345678901234567890123456789012345678"),
        c("12345678901234567890123456789012345679")
    );
    assert_ne!(c("1E-130"), c("1E-129"));
    assert_ne!(c("-1"), c("1"));
    for bad in ["", "-", "abc", "1e", "1.2.3", "1e+", "0x10", "1 2", "."] {
        assert!(support::canonical_number(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn canonical_forms_of_sdk_item_and_json_line_agree() {
    let line = r#"{"pk":{"S":"1"},"b":{"B":"MDAwMA=="},"n":{"N":"1.20E1"},
        "ss":{"SS":["b","a"]},"ns":{"NS":["10","2","1e1"]},"bs":{"BS":["AQ==","AA=="]},
        "l":{"L":[{"N":"2"},{"S":"x"}]},"m":{"M":{"z":{"NULL":true},"a":{"BOOL":false}}}}"#
        .replace(['\n', ' '], "");
    let sdk = item(&[
        (
            "m",
            AttributeValue::M(item(&[
                ("a", AttributeValue::Bool(false)),
                ("z", AttributeValue::Null(true)),
            ])),
        ),
        ("l", AttributeValue::L(vec![n("2.0"), s("x")])),
        (
            "bs",
            AttributeValue::Bs(vec![Blob::new(vec![0u8]), Blob::new(vec![1u8])]),
        ),
        ("ns", AttributeValue::Ns(vec!["2".into(), "10".into()])),
        ("ss", AttributeValue::Ss(vec!["a".into(), "b".into()])),
        ("n", n("12")),
        ("b", AttributeValue::B(Blob::new(b"0000".to_vec()))),
        ("pk", s("1")),
    ]);
    let from_line = support::canonical_json_line(&line);
    assert_eq!(support::canonical_item_json(&sdk), from_line);
    assert_eq!(
        from_line,
        r#"{"b":{"B":"MDAwMA=="},"bs":{"BS":["AA==","AQ=="]},"l":{"L":[{"N":"2"},{"S":"x"}]},"m":{"M":{"a":{"BOOL":false},"z":{"NULL":true}}},"n":{"N":"12"},"ns":{"NS":["10","2"]},"pk":{"S":"1"},"ss":{"SS":["a","b"]}}"#
    );
    // The parser used to seed tables round-trips to the same canonical text.
    assert_eq!(
        support::canonical_item_json(&support::item_from_json_line(&line)),
        from_line
    );
    // Lists are ordered.
    assert_ne!(
        support::canonical_json_line(r#"{"l":{"L":[{"S":"a"},{"S":"b"}]}}"#),
        support::canonical_json_line(r#"{"l":{"L":[{"S":"b"},{"S":"a"}]}}"#)
    );
    let expected = support::expected_from_jsonl(support::fixture_path(
        "sample-export/expected-after-chain.jsonl",
    ));
    assert_eq!(expected.len(), 8);
    assert!(expected.windows(2).all(|w| w[0] <= w[1]));
}

// ---- buckets ----

#[tokio::test]
async fn bucket_put_get_upload_dir_and_cleanup() {
    let (s3, _) = clients().await;
    let bucket = TestBucket::create(&s3, "smoke-bucket").await;
    bucket.put("a/b.txt", b"hello".to_vec()).await;
    assert_eq!(bucket.get("a/b.txt").await.as_deref(), Some(&b"hello"[..]));
    assert_eq!(bucket.get("nope").await, None);

    let root = support::fixture_path("sample-export");
    let keys = bucket.upload_dir(&root, "exports/").await;
    assert!(
        keys.contains(
            &"exports/AWSDynamoDB/01768385930622-efd1a093/manifest-summary.json".to_owned()
        )
    );
    let local =
        std::fs::read(root.join("AWSDynamoDB/data/cs7ahitfvy7cvcukoarpvv6fu4.json.gz")).unwrap();
    assert_eq!(
        bucket
            .get("exports/AWSDynamoDB/data/cs7ahitfvy7cvcukoarpvv6fu4.json.gz")
            .await,
        Some(local)
    );
    let mut all = keys.clone();
    all.push("a/b.txt".into());
    all.sort();
    assert_eq!(bucket.keys().await, all);

    let root_keys = TestBucket::create(&s3, "smoke-bucket-root").await;
    let k = root_keys.upload_dir(&root, "").await;
    assert!(k.contains(&"README.md".to_owned()), "{k:?}");

    let name = bucket.name.clone();
    drop(bucket); // inside a current-thread runtime
    let err = s3.head_bucket().bucket(&name).send().await.unwrap_err();
    assert!(
        err.as_service_error().is_some_and(|e| e.is_not_found()),
        "{err:?}"
    );
}

#[test]
fn cleanup_works_outside_a_runtime_and_after_it_is_gone() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (bucket, table) = rt.block_on(async {
        let (s3, ddb) = clients().await;
        let bucket = TestBucket::create(&s3, "smoke-outside").await;
        bucket.put("k", b"v".to_vec()).await;
        (bucket, table_pk_sk(&ddb, "smoke-outside").await)
    });
    drop(rt);
    let (bname, tname) = (bucket.name.clone(), table.name.clone());
    drop(bucket);
    drop(table);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (s3, ddb) = clients().await;
        assert!(s3.head_bucket().bucket(&bname).send().await.is_err());
        assert!(
            ddb.describe_table()
                .table_name(&tname)
                .send()
                .await
                .is_err()
        );
    });
}

// ---- tables ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_seed_scan_compare_and_cleanup() {
    let (_, ddb) = clients().await;
    let table = table_pk_sk(&ddb, "smoke-table").await;
    let expected = support::fixture_path("sample-export/expected-after-chain.jsonl");
    let lines = std::fs::read_to_string(&expected).unwrap();
    for line in lines.lines() {
        ddb.put_item()
            .table_name(&table.name)
            .set_item(Some(support::item_from_json_line(line)))
            .send()
            .await
            .unwrap();
    }
    support::assert_table_matches(&ddb, &table.name, &expected).await;

    // One missing, one extra, one different: the report names each.
    ddb.delete_item()
        .table_name(&table.name)
        .key("pk", s("1"))
        .key("sk", s("2"))
        .send()
        .await
        .unwrap();
    ddb.put_item()
        .table_name(&table.name)
        .set_item(Some(item(&[
            ("pk", s("9")),
            ("sk", s("9")),
            ("big", s(&"z".repeat(5000))),
        ])))
        .send()
        .await
        .unwrap();
    ddb.update_item()
        .table_name(&table.name)
        .key("pk", s("3"))
        .key("sk", s("1"))
        .update_expression("SET #n = :n")
        .expression_attribute_names("#n", "number")
        .expression_attribute_values(":n", n("13"))
        .send()
        .await
        .unwrap();
    let msg = panic_message(support::assert_table_matches(&ddb, &table.name, &expected)).await;
    assert!(msg.contains("1 missing, 1 extra, 1 different"), "{msg}");
    assert!(msg.contains(r#"{"pk":{"S":"1"},"sk":{"S":"2"}"#), "{msg}");
    assert!(
        msg.contains(r#""number": expected {"N":"12"}, table has {"N":"13"}"#),
        "{msg}"
    );
    assert!(
        msg.contains("bytes in all"),
        "long values are truncated: {msg}"
    );
    assert!(msg.len() < 4000, "{msg}");

    let name = table.name.clone();
    drop(table); // inside a multi-thread runtime
    let err = ddb
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
}

#[tokio::test]
async fn scan_all_follows_pages() {
    let (_, ddb) = clients().await;
    let table = TestTable::create(&ddb, "smoke-scan", ("id", ScalarAttributeType::N), None).await;
    // ~300 KB items: a Scan page holds at most 1 MB, so 12 items need several pages.
    let filler = "f".repeat(300_000);
    for i in 0..12 {
        ddb.put_item()
            .table_name(&table.name)
            .item("id", n(&i.to_string()))
            .item("filler", s(&filler))
            .send()
            .await
            .unwrap();
    }
    let first_page = ddb.scan().table_name(&table.name).send().await.unwrap();
    assert!(
        first_page.last_evaluated_key.is_some(),
        "moto paginates Scan at 1 MB"
    );
    let all = table.scan().await;
    let mut ids: Vec<i64> = all
        .iter()
        .map(|it| it["id"].as_n().unwrap().parse().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (0..12).collect::<Vec<_>>());
}

// ---- recording proxy ----

#[tokio::test]
async fn proxy_forwards_sdk_traffic_and_records_it() {
    let (s3_direct, ddb_direct) = clients().await;
    let table = table_pk_sk(&ddb_direct, "smoke-proxy").await;
    let bucket = TestBucket::create(&s3_direct, "smoke-proxy").await;

    let proxy = RecordingProxy::start(&support::moto().endpoint).await;
    let conf = support::sdk_config(&proxy.endpoint).await;
    let (s3, ddb) = (support::s3_client(&conf), support::ddb_client(&conf));

    let desc = ddb
        .describe_table()
        .table_name(&table.name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        desc.table().unwrap().table_name(),
        Some(table.name.as_str())
    );
    ddb.put_item()
        .table_name(&table.name)
        .item("pk", s("p"))
        .item("sk", s("s"))
        .item("big", s(&"x".repeat(350_000)))
        .send()
        .await
        .unwrap();
    let big = vec![7u8; 3 * 1024 * 1024 + 17];
    s3.put_object()
        .bucket(&bucket.name)
        .key("dir/obj.bin")
        .body(big.clone().into())
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket(&bucket.name)
        .key("dir/obj.bin")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(got.len(), big.len());
    assert!(got == big);
    // A ranged GET and an error response also pass through intact.
    let part = s3
        .get_object()
        .bucket(&bucket.name)
        .key("dir/obj.bin")
        .range("bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.body.collect().await.unwrap().into_bytes().len(), 10);
    let missing = s3
        .get_object()
        .bucket(&bucket.name)
        .key("none")
        .send()
        .await
        .unwrap_err();
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_no_such_key()),
        "{missing:?}"
    );

    let b = &bucket.name;
    assert_eq!(
        proxy.requests(),
        vec![
            "DynamoDB_20120810.DescribeTable".to_owned(),
            "DynamoDB_20120810.PutItem".to_owned(),
            format!("PUT /{b}/dir/obj.bin"),
            format!("GET /{b}/dir/obj.bin"),
            format!("GET /{b}/dir/obj.bin"),
            format!("GET /{b}/none"),
        ]
    );
    proxy.clear();
    assert!(proxy.requests().is_empty());

    // The item written through the proxy is really there.
    let out = ddb_direct
        .get_item()
        .table_name(&table.name)
        .key("pk", s("p"))
        .key("sk", s("s"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.item.unwrap()["big"].as_s().unwrap().len(), 350_000);
}

#[test]
fn proxy_keeps_serving_while_the_test_thread_blocks() {
    // Tests run the CLI with std::process::Command::output(), which blocks the test's thread;
    // the proxy lives on its own runtime, so it still answers then. Here the blocking call is a
    // raw HTTP request made with std on the thread that created the proxy.
    use std::io::{Read, Write};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let proxy = rt.block_on(RecordingProxy::start(&support::moto().endpoint));
    let addr = proxy.endpoint.trim_start_matches("http://").to_owned();
    for _ in 0..2 {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(
            b"GET /moto-api/?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
        )
        .unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).unwrap(); // ends because the proxy closes after one response
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp:.200}");
        assert!(resp.contains("Connection: close\r\n"), "{resp:.400}");
    }
    assert_eq!(proxy.requests(), vec!["GET /moto-api/", "GET /moto-api/"]);
}

// ---- moto behaviours a restore tool's tests depend on ----
//
// moto is more lenient than DynamoDB in ways that hide bugs in a restore tool. These tests pin
// what moto 5.2.5 does, so tests elsewhere know what moto can NOT catch (and check it through
// RecordingProxy or unit tests instead), and a moto upgrade that changes it fails here first.

fn validation_message(err: impl ProvideErrorMetadata) -> String {
    format!(
        "{}: {}",
        err.code().unwrap_or("?"),
        err.message().unwrap_or("?")
    )
}

fn put_req(pairs: &[(&str, AttributeValue)]) -> WriteRequest {
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item(pairs)))
                .build()
                .unwrap(),
        )
        .build()
}

fn delete_req(pk: &str, sk: &str) -> WriteRequest {
    WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .key("pk", s(pk))
                .key("sk", s(sk))
                .build()
                .unwrap(),
        )
        .build()
}

#[tokio::test]
async fn moto_batch_write_item_is_more_lenient_than_dynamodb() {
    let (_, ddb) = clients().await;
    let table = table_pk_sk(&ddb, "smoke-bwi").await;
    let bwi = |reqs: Vec<WriteRequest>| {
        ddb.batch_write_item()
            .request_items(&table.name, reqs)
            .send()
    };

    // DynamoDB allows at most 25 writes per batch; moto takes any number and never returns
    // UnprocessedItems (no throttling either), so retry paths need aws-smithy-mocks tests.
    let out = bwi((0..30)
        .map(|i| put_req(&[("pk", s("a")), ("sk", s(&i.to_string()))]))
        .collect())
    .await
    .unwrap();
    assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()));

    // DynamoDB rejects a batch with two writes to one key. moto only rejects two puts whose
    // request JSON is textually identical (attribute order included, and the SDK's HashMap order
    // is random), so it cannot be relied on to catch that bug: two puts to one key with
    // different attributes always pass, and the later one wins.
    bwi(vec![
        put_req(&[("pk", s("b")), ("sk", s("1")), ("v", n("1"))]),
        put_req(&[("pk", s("b")), ("sk", s("1")), ("v", n("2"))]),
    ])
    .await
    .unwrap();
    // A put and a delete of one key also pass, and moto applies all puts before all deletes,
    // whatever their order in the request: the item ends up deleted.
    bwi(vec![
        delete_req("b", "1"),
        put_req(&[("pk", s("b")), ("sk", s("1"))]),
    ])
    .await
    .unwrap();
    let got = ddb
        .get_item()
        .table_name(&table.name)
        .key("pk", s("b"))
        .key("sk", s("1"))
        .send()
        .await
        .unwrap();
    assert!(got.item.is_none());
    assert_eq!(support::scan_all(&ddb, &table.name).await.len(), 30);
}

/// The control table counts finished files with `SET n = n + :one` from many workers at once, inside
/// transactions that are sometimes cancelled. DynamoDB makes both atomic; moto alone does not (lost
/// increments, and a cancelled transaction restores a stale copy of the table), so
/// scripts/moto_guard.py serves DynamoDB requests one at a time. Without that this test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn moto_dynamodb_updates_and_transactions_are_atomic() {
    use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
    let (_, ddb) = clients().await;
    let table = table_pk_sk(&ddb, "smoke-atomic").await;
    let key = |sk: &str| item(&[("pk", s("counter")), ("sk", s(sk))]);
    ddb.put_item()
        .table_name(&table.name)
        .set_item(Some(item(&[
            ("pk", s("counter")),
            ("sk", s("total")),
            ("c", n("0")),
        ])))
        .send()
        .await
        .unwrap();
    const TASKS: usize = 24;
    const ROUNDS: usize = 8;
    let increment = |sk: &str, condition_holds: bool| {
        let own = Update::builder()
            .table_name(&table.name)
            .set_key(Some(key(sk)))
            .update_expression("SET v = :one")
            .condition_expression(if condition_holds {
                "attribute_not_exists(v)"
            } else {
                "attribute_exists(v)"
            })
            .expression_attribute_values(":one", n("1"))
            .build()
            .unwrap();
        let total = Update::builder()
            .table_name(&table.name)
            .set_key(Some(key("total")))
            .update_expression("SET c = c + :one")
            .expression_attribute_values(":one", n("1"))
            .build()
            .unwrap();
        ddb.transact_write_items()
            .transact_items(TransactWriteItem::builder().update(own).build())
            .transact_items(TransactWriteItem::builder().update(total).build())
            .send()
    };
    let tasks = (0..TASKS).map(|t| {
        let table = &table.name;
        let ddb = &ddb;
        let key = &key;
        let increment = &increment;
        async move {
            for r in 0..ROUNDS {
                // A plain update, a transaction that commits and one that is cancelled.
                ddb.update_item()
                    .table_name(table)
                    .set_key(Some(key("total")))
                    .update_expression("SET c = c + :one")
                    .expression_attribute_values(":one", n("1"))
                    .send()
                    .await
                    .unwrap();
                increment(&format!("{t}-{r}"), true).await.unwrap();
                let cancelled = increment(&format!("missing-{t}-{r}"), false).await;
                assert!(cancelled.is_err(), "the condition cannot hold");
            }
        }
    });
    futures::future::join_all(tasks).await;
    let got = ddb
        .get_item()
        .table_name(&table.name)
        .set_key(Some(key("total")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.item.unwrap()["c"],
        n(&(2 * TASKS * ROUNDS).to_string()),
        "every committed increment counts once"
    );
}

#[tokio::test]
async fn moto_stores_numbers_and_sets_verbatim() {
    let (_, ddb) = clients().await;
    let table = table_pk_sk(&ddb, "smoke-verbatim").await;
    // DynamoDB normalizes numbers ("12.0" reads back as "12") and returns set elements in an
    // order of its own; moto returns exactly what was written, including duplicate set elements
    // that DynamoDB would reject. Compare with the canonical helpers, never with raw text.
    ddb.put_item()
        .table_name(&table.name)
        .item("pk", s("1"))
        .item("sk", s("1"))
        .item("n", n("0012.50"))
        .item("z", n("-0"))
        .item(
            "ns",
            AttributeValue::Ns(vec!["3".into(), "1.0".into(), "1".into()]),
        )
        .item(
            "ss",
            AttributeValue::Ss(vec!["z".into(), "a".into(), "a".into()]),
        )
        .send()
        .await
        .unwrap();
    let it = ddb
        .get_item()
        .table_name(&table.name)
        .key("pk", s("1"))
        .key("sk", s("1"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(it["n"], n("0012.50"));
    assert_eq!(it["z"], n("-0"));
    assert_eq!(
        it["ns"],
        AttributeValue::Ns(vec!["3".into(), "1.0".into(), "1".into()])
    );
    assert_eq!(
        it["ss"],
        AttributeValue::Ss(vec!["z".into(), "a".into(), "a".into()])
    );
    assert!(
        support::canonical_item_json(&it).contains(r#""n":{"N":"12.5"},"ns":{"NS":["1","3"]}"#)
    );
}

#[tokio::test]
async fn moto_item_size_limit_is_405000_bytes() {
    let (_, ddb) = clients().await;
    let table = table_pk_sk(&ddb, "smoke-size").await;
    let put = |sk: &str, len: usize| {
        ddb.put_item()
            .table_name(&table.name)
            .item("pk", s("p"))
            .item("sk", s(sk))
            .item("v", s(&"x".repeat(len)))
            .send()
    };
    // DynamoDB's limit is 400 KB = 409,600 bytes (names + values); moto rejects anything over
    // 405,000, so fixtures with items between the two fail on moto only.
    put("1", 404_000).await.unwrap();
    let err = put("2", 405_000).await.unwrap_err();
    assert!(
        validation_message(err).contains("Item size has exceeded the maximum allowed size"),
        "moto's item size error changed"
    );
}
