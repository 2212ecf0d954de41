//! Accepted writes: counted, stored, digested, described.

use std::borrow::Cow;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, ScalarAttributeType, TableStatus,
};
use ddb_bench_endpoint::items::{Key, Scalar, WriteKind};
use ddb_bench_endpoint::store::expected_digest;
use ddb_bench_endpoint::{Config, ScalarType, Stats};

use crate::support::*;

fn keyed(pk: &str, sk: &str) -> Item {
    item(&[("pk", s(pk)), ("sk", n(sk))])
}

#[tokio::test]
async fn puts_and_deletes_are_counted_and_stored() {
    let h = start(Config {
        store: true,
        ..Config::with_tables([table("orders:pk:S:sk:N")])
    })
    .await;
    let full = |i: usize| {
        let mut it = keyed(&format!("user#{i}"), &i.to_string());
        it.insert("bin".into(), AttributeValue::B(Blob::new(vec![0u8, 1, 2])));
        it.insert(
            "tags".into(),
            AttributeValue::Ss(vec!["a".into(), "b".into()]),
        );
        it.insert(
            "nested".into(),
            AttributeValue::M(item(&[(
                "l",
                AttributeValue::L(vec![s("x"), AttributeValue::Null(true)]),
            )])),
        );
        it
    };
    let first: Vec<_> = (0..25).map(|i| put(full(i))).collect();
    let out = batch(&h, "orders", first).await.unwrap();
    assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()));
    batch(&h, "orders", (25..30).map(|i| put(full(i))).collect())
        .await
        .unwrap();
    // Delete five, one of them never written; overwrite one.
    let deletes: Vec<_> = [0, 1, 2, 3]
        .iter()
        .map(|i| delete(keyed(&format!("user#{i}"), &i.to_string())))
        .chain([delete(keyed("ghost", "1"))])
        .collect();
    batch(&h, "orders", deletes).await.unwrap();
    let mut changed = full(29);
    changed.insert("extra".into(), s("new"));
    batch(&h, "orders", vec![put(changed.clone())])
        .await
        .unwrap();

    let stats = h.server.endpoint.stats();
    let t = &stats.tables["orders"];
    assert_eq!((t.items_put, t.items_deleted, t.item_count), (31, 5, 26));
    assert_eq!(
        (
            stats.items_put,
            stats.items_deleted,
            stats.batch_write_item_requests
        ),
        (31, 5, 4)
    );

    // GET /items: the 26 live items, each exactly as the SDK sent it.
    let (status, body) = raw(&h, "GET", "/items?table=orders", None, b"").await;
    assert_eq!(status, 200);
    let stored: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stored.len(), 26);
    let mut pks: Vec<&str> = stored
        .iter()
        .map(|v| v["pk"]["S"].as_str().unwrap())
        .collect();
    pks.sort();
    let mut expected: Vec<String> = (4..30).map(|i| format!("user#{i}")).collect();
    expected.sort();
    assert_eq!(pks, expected);
    let last = stored.iter().find(|v| v["pk"]["S"] == "user#29").unwrap();
    assert_eq!(last["extra"]["S"], "new");
    assert_eq!(last["bin"]["B"], "AAEC");
    assert_eq!(last["sk"]["N"], "29");
    assert_eq!(last["nested"]["M"]["l"]["L"][1]["NULL"], true);

    let described = h
        .client
        .describe_table()
        .table_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(described.table().unwrap().item_count(), Some(26));
}

#[tokio::test]
async fn key_digest_names_the_keys_written_and_ignores_retries() {
    let h = start(Config::with_tables([table("t_digest:pk:S:sk:N")])).await;
    let written: Vec<_> = (0..20)
        .map(|i| put(keyed(&format!("k{i}"), &format!("{i}.0"))))
        .collect();
    batch(&h, "t_digest", written.clone()).await.unwrap();
    // A retry of the same batch, a put-then-delete and a delete of a key never written.
    batch(&h, "t_digest", written).await.unwrap();
    batch(
        &h,
        "t_digest",
        vec![delete(keyed("k0", "0")), delete(keyed("never", "5"))],
    )
    .await
    .unwrap();

    let key = |pk: String, sk: String| Key {
        hash: Scalar {
            ty: ScalarType::S,
            text: Cow::Owned(pk),
        },
        range: Some(Scalar {
            ty: ScalarType::N,
            text: Cow::Owned(sk),
        }),
    };
    // "1.0" was sent; "1" is the same DynamoDB number, so the same key.
    let keys: Vec<(Key, WriteKind)> = (1..20)
        .map(|i| (key(format!("k{i}"), i.to_string()), WriteKind::Put))
        .chain([
            (key("k0".into(), "0".into()), WriteKind::Delete),
            (key("never".into(), "5".into()), WriteKind::Delete),
        ])
        .collect();
    let expected = expected_digest(keys.iter().map(|(k, op)| (k, *op)));
    let stats = h.server.endpoint.stats();
    let t = &stats.tables["t_digest"];
    assert_eq!(t.key_digest.as_deref(), Some(expected.as_str()));
    assert_eq!(t.item_count, 19);
    assert_eq!(t.items_put, 40);

    // One key fewer is a different digest.
    let fewer = expected_digest(keys[1..].iter().map(|(k, op)| (k, *op)));
    assert_ne!(fewer, expected);
}

#[tokio::test]
async fn describe_table_reports_schema_and_capacity() {
    let on_demand = start(Config::with_tables([table("plain:id:B")])).await;
    let t = on_demand
        .client
        .describe_table()
        .table_name("plain")
        .send()
        .await
        .unwrap();
    let t = t.table().unwrap();
    assert_eq!(t.table_status(), Some(&TableStatus::Active));
    assert_eq!(t.key_schema().len(), 1);
    assert_eq!(t.key_schema()[0].attribute_name(), "id");
    assert_eq!(t.key_schema()[0].key_type(), &KeyType::Hash);
    assert_eq!(
        t.attribute_definitions()[0].attribute_type(),
        &ScalarAttributeType::B
    );
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    assert_eq!(t.item_count(), Some(0));
    assert!(t.table_arn().unwrap().ends_with(":table/plain"));

    let provisioned = start(Config {
        wcu: Some(1234),
        ..Config::with_tables([table("capped:pk:S:sk:S")])
    })
    .await;
    let t = provisioned
        .client
        .describe_table()
        .table_name("capped")
        .send()
        .await
        .unwrap();
    let t = t.table().unwrap();
    assert_eq!(
        t.provisioned_throughput().unwrap().write_capacity_units(),
        Some(1234)
    );
    assert_eq!(t.key_schema()[1].attribute_name(), "sk");
    assert_eq!(t.key_schema()[1].key_type(), &KeyType::Range);
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::Provisioned)
    );

    let err = provisioned
        .client
        .describe_table()
        .table_name("absent")
        .send()
        .await
        .unwrap_err();
    let (code, message, status) = service_error(&err);
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 400));
    assert!(message.contains("absent"), "{message}");
}

#[tokio::test]
async fn stats_and_reset_over_http() {
    let h = start(Config::with_tables([table("counted:pk:S")])).await;
    batch(
        &h,
        "counted",
        (0..7)
            .map(|i| put(item(&[("pk", s(&i.to_string()))])))
            .collect(),
    )
    .await
    .unwrap();
    let (status, body) = raw(&h, "GET", "/stats", None, b"").await;
    assert_eq!(status, 200);
    let stats: Stats = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (stats.requests, stats.items_put, stats.wcu_consumed),
        (1, 7, 7)
    );
    assert!(stats.tables["counted"].key_digest.is_some());

    let (status, _) = raw(&h, "POST", "/reset", None, b"").await;
    assert_eq!(status, 200);
    let after = h.server.endpoint.stats();
    assert_eq!(
        (
            after.requests,
            after.items_put,
            after.tables["counted"].item_count
        ),
        (0, 0, 0)
    );
    assert_eq!(
        after.tables["counted"].key_digest.as_deref(),
        Some("0".repeat(32).as_str())
    );

    // Items are kept only with --store.
    let (status, body) = raw(&h, "GET", "/items?table=counted", None, b"").await;
    assert_eq!(status, 404);
    assert!(body.contains("--store"), "{body}");
}

#[tokio::test]
async fn keep_alive_serves_many_calls_on_one_connection() {
    let h = start(Config::with_tables([table("kept:pk:S")])).await;
    for i in 0..50 {
        batch(&h, "kept", vec![put(item(&[("pk", s(&i.to_string()))]))])
            .await
            .unwrap();
    }
    let stats = h.server.endpoint.stats();
    assert_eq!(stats.items_put, 50);
    assert_eq!(
        stats.connections, 1,
        "the SDK's connection was not kept alive"
    );
}
