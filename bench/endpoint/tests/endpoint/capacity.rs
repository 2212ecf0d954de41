//! `ReturnConsumedCapacity`: CapacityUnits = Σ ceil(item size / 1 KB), 1 per delete, sizes by the
//! Developer Guide's rules ("Item sizes and formats").

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, WriteRequest};
use ddb_bench_endpoint::Config;

use crate::support::*;

async fn consumed(
    h: &Harness,
    mode: ReturnConsumedCapacity,
    requests: Vec<WriteRequest>,
) -> Option<(f64, Option<f64>)> {
    let out = h
        .client
        .batch_write_item()
        .request_items("cap", requests)
        .return_consumed_capacity(mode)
        .send()
        .await
        .unwrap();
    let c = out.consumed_capacity().first()?;
    assert_eq!(c.table_name(), Some("cap"));
    Some((
        c.capacity_units()?,
        c.table().and_then(|t| t.capacity_units()),
    ))
}

/// "pk" (2 bytes) + a 1-byte key + "d" (1) + `pad` bytes.
fn padded(key: &str, pad: usize) -> Item {
    item(&[("pk", s(key)), ("d", s(&"x".repeat(pad)))])
}

#[tokio::test]
async fn units_follow_the_item_size_rule() {
    let h = start(Config::with_tables([table("cap:pk:S")])).await;
    // Exactly 1,024 bytes is 1 unit; 1,025 is 2; 3.5 KB is 4.
    let one = padded("a", 1024 - 4);
    let two = padded("b", 1025 - 4);
    let four = padded("c", 3584 - 4);
    assert_eq!(
        consumed(&h, ReturnConsumedCapacity::Total, vec![put(one.clone())]).await,
        Some((1.0, None))
    );
    assert_eq!(
        consumed(&h, ReturnConsumedCapacity::Total, vec![put(two)]).await,
        Some((2.0, None))
    );
    assert_eq!(
        consumed(&h, ReturnConsumedCapacity::Total, vec![put(four)]).await,
        Some((4.0, None))
    );

    // Every type, each sized by the guide: names + values, lists and maps 3 bytes + 1 per element.
    let mixed = item(&[
        ("pk", s("m")),                                             // 2 + 1
        ("num", AttributeValue::N("-00123.4500".into())),           // 3 + ceil(5/2)+1 = 7
        ("bin", AttributeValue::B(Blob::new(vec![7u8; 10]))),       // 3 + 10
        ("ok", AttributeValue::Bool(true)),                         // 2 + 1
        ("nil", AttributeValue::Null(true)),                        // 3 + 1
        ("list", AttributeValue::L(vec![s("ab"), n("1")])),         // 4 + 3 + (2+1) + (2+1)
        ("map", AttributeValue::M(item(&[("k", s("v"))]))),         // 3 + 3 + (1+1+1)
        ("ss", AttributeValue::Ss(vec!["a".into(), "bcd".into()])), // 2 + 4
        ("empty", AttributeValue::L(vec![])),                       // 5 + 3
    ]);
    let mixed_size: usize = 3 + 3 + 4 + 3 + 10 + 2 + 1 + 3 + 1 + 4 + 9 + 3 + 6 + 2 + 4 + 5 + 3;
    assert_eq!(mixed_size, 66);
    // Pad it to exactly 2,048 bytes (2 units), then one byte more (3 units).
    let pad_to = |target: usize| {
        let mut it = mixed.clone();
        it.insert("p".into(), s(&"y".repeat(target - mixed_size - 1)));
        it
    };
    assert_eq!(
        consumed(&h, ReturnConsumedCapacity::Total, vec![put(pad_to(2048))]).await,
        Some((2.0, None))
    );
    assert_eq!(
        consumed(&h, ReturnConsumedCapacity::Total, vec![put(pad_to(2049))]).await,
        Some((3.0, None))
    );

    // A batch sums its requests; deletes cost 1; INDEXES adds the table's share.
    let requests = vec![
        put(padded("e", 1024 - 4)),
        put(padded("f", 5000)),
        delete(item(&[("pk", s("a"))])),
    ];
    assert_eq!(
        consumed(&h, ReturnConsumedCapacity::Indexes, requests).await,
        Some((1.0 + 5.0 + 1.0, Some(7.0)))
    );

    // NONE (and no parameter): no ConsumedCapacity.
    assert_eq!(
        consumed(&h, ReturnConsumedCapacity::None, vec![put(one)]).await,
        None
    );
    assert_eq!(
        h.server.endpoint.stats().wcu_consumed,
        1 + 2 + 4 + 2 + 3 + 7 + 1
    );
}
