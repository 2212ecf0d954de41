//! Requests DynamoDB refuses are refused with DynamoDB's error code and message, and change nothing.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use ddb_bench_endpoint::Config;

use crate::support::*;

const VALIDATION: &str = "com.amazonaws.dynamodb.v20120810#ValidationException";

async fn harness() -> Harness {
    start(Config::with_tables([
        table("val:pk:S:sk:N"),
        table("other:id:B"),
    ]))
    .await
}

async fn refused(
    h: &Harness,
    table: &str,
    requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
) -> (String, String, u16) {
    let err = batch(h, table, requests).await.expect_err("refused");
    service_error(&err)
}

fn row(pk: &str, sk: &str) -> Item {
    item(&[("pk", s(pk)), ("sk", n(sk))])
}

#[tokio::test]
async fn batch_sizes_outside_one_to_twenty_five() {
    let h = harness().await;
    let too_many: Vec<_> = (0..26).map(|i| put(row("a", &i.to_string()))).collect();
    let (code, message, status) = refused(&h, "val", too_many).await;
    assert_eq!((code.as_str(), status), ("ValidationException", 400));
    assert!(
        message.contains("Member must have length less than or equal to 25"),
        "{message}"
    );

    // 25 in all is the limit across tables too.
    let err = h
        .client
        .batch_write_item()
        .request_items(
            "val",
            (0..20).map(|i| put(row("a", &i.to_string()))).collect(),
        )
        .request_items(
            "other",
            (0..6u8)
                .map(|i| put(item(&[("id", AttributeValue::B(Blob::new(vec![i])))])))
                .collect(),
        )
        .send()
        .await
        .unwrap_err();
    let (code, message, _) = service_error(&err);
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "Too many items requested for the BatchWriteItem call"
    );

    let (code, message, _) = refused(&h, "val", vec![]).await;
    assert_eq!(code, "ValidationException");
    assert!(
        message.contains("Member must have length greater than or equal to 1"),
        "{message}"
    );

    let (kind, message, _) = raw_batch(&h, r#"{"RequestItems":{}}"#).await;
    assert_eq!(kind, VALIDATION);
    assert!(message.contains("'requestItems'"), "{message}");
    assert_eq!(h.server.endpoint.stats().items_put, 0);
}

#[tokio::test]
async fn duplicate_keys_in_one_batch() {
    let h = harness().await;
    for requests in [
        vec![put(row("a", "1")), put(row("a", "1"))],
        vec![put(row("a", "1")), delete(row("a", "1"))],
        // 1.5 and 1.50 are the same number, so the same key.
        vec![put(row("a", "1.5")), put(row("a", "1.50"))],
    ] {
        let (code, message, _) = refused(&h, "val", requests).await;
        assert_eq!(code, "ValidationException");
        assert_eq!(message, "Provided list of item keys contains duplicates");
    }
    // Same partition key, different sort keys: fine.
    batch(&h, "val", vec![put(row("a", "1")), put(row("a", "2"))])
        .await
        .unwrap();
    assert_eq!(h.server.endpoint.stats().items_put, 2);
}

#[tokio::test]
async fn key_attributes_missing_mistyped_or_empty() {
    let h = harness().await;
    let (code, message, _) = refused(&h, "val", vec![put(item(&[("pk", s("a"))]))]).await;
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "One or more parameter values were invalid: Missing the key sk in the item"
    );

    let (_, message, _) = refused(
        &h,
        "val",
        vec![put(item(&[("pk", n("1")), ("sk", n("1"))]))],
    )
    .await;
    assert_eq!(
        message,
        "One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N"
    );

    let (_, message, _) = refused(&h, "val", vec![put(row("", "1"))]).await;
    assert!(
        message.contains(
            "The AttributeValue for a key attribute cannot contain an empty string value. Key: pk"
        ),
        "{message}"
    );

    // A delete's key holds exactly the key attributes.
    let mut extra = row("a", "1");
    extra.insert("note".into(), s("x"));
    for key in [
        extra,
        item(&[("pk", s("a"))]),
        item(&[("pk", s("a")), ("sk", s("1"))]),
    ] {
        let (code, message, _) = refused(&h, "val", vec![delete(key)]).await;
        assert_eq!(code, "ValidationException");
        assert_eq!(
            message,
            "The provided key element does not match the schema"
        );
    }
    // Empty strings are fine outside keys.
    batch(
        &h,
        "val",
        vec![put(item(&[("pk", s("a")), ("sk", n("1")), ("e", s(""))]))],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn unknown_table_is_resource_not_found() {
    let h = harness().await;
    let (code, message, status) = refused(&h, "missing", vec![put(row("a", "1"))]).await;
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 400));
    assert!(
        message.starts_with("Requested resource not found"),
        "{message}"
    );
}

#[tokio::test]
async fn items_up_to_400_kb() {
    let h = harness().await;
    // pk(2) + "a"(1) + sk(2) + 1(2: one digit + 1) + d(1) + value = 409,600 bytes exactly.
    let at_limit = |extra: usize| {
        let value = "x".repeat(409_600 - 8 + extra);
        item(&[("pk", s("a")), ("sk", n("1")), ("d", s(&value))])
    };
    let out = h
        .client
        .batch_write_item()
        .request_items("val", vec![put(at_limit(0))])
        .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    assert_eq!(out.consumed_capacity()[0].capacity_units(), Some(400.0));
    let (code, message, _) = refused(&h, "val", vec![put(at_limit(1))]).await;
    assert_eq!(code, "ValidationException");
    assert_eq!(message, "Item size has exceeded the maximum allowed size");
}

#[tokio::test]
async fn attribute_values_dynamodb_refuses() {
    let h = harness().await;
    let (_, message, _) = refused(
        &h,
        "val",
        vec![put(item(&[
            ("pk", s("a")),
            ("sk", n("1")),
            ("ss", AttributeValue::Ss(vec![])),
        ]))],
    )
    .await;
    assert!(
        message.contains("An string set  may not be empty"),
        "{message}"
    );
    for (number, expected) in [
        (
            "abc",
            "The parameter cannot be converted to a numeric value: abc",
        ),
        (
            "1E126",
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        ),
        (
            "123456789012345678901234567890123456789",
            "Attempting to store more than 38 significant digits in a Number",
        ),
    ] {
        let (code, message, _) = refused(
            &h,
            "val",
            vec![put(item(&[
                ("pk", s("a")),
                ("sk", n("1")),
                ("x", n(number)),
            ]))],
        )
        .await;
        assert_eq!(code, "ValidationException");
        assert_eq!(message, expected);
    }
    let (_, message, _) = refused(
        &h,
        "val",
        vec![put(item(&[
            ("pk", s("a")),
            ("sk", n("1")),
            ("x", AttributeValue::Null(false)),
        ]))],
    )
    .await;
    assert!(
        message.contains("Null attribute value types must have the value of true"),
        "{message}"
    );
    assert_eq!(h.server.endpoint.stats().items_put, 0);
}

#[tokio::test]
async fn malformed_requests_over_raw_http() {
    let h = harness().await;
    let wrap = |attr: &str| {
        format!(
            r#"{{"RequestItems":{{"val":[{{"PutRequest":{{"Item":{{"pk":{{"S":"a"}},"sk":{{"N":"1"}},"x":{attr}}}}}}}]}}}}"#
        )
    };
    let cases = [
        (wrap("{}"), VALIDATION, "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"),
        (wrap(r#"{"S":"a","N":"1"}"#), VALIDATION, "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"),
        (wrap(r#"{"B":"abc"}"#), "com.amazon.coral.service#SerializationException", "Base64 encoded length is expected a multiple of 4 bytes but found: 3"),
        (wrap(r#"{"S":1}"#), "com.amazon.coral.service#SerializationException", ""),
        (wrap(r#"{"L":[{"S":"a"},{"Q":"b"}]}"#), VALIDATION, "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"),
        (r#"{"RequestItems":{"val":[{}]}}"#.to_owned(), VALIDATION, "Supplied WriteRequest is empty, must contain exactly one of PutRequest or DeleteRequest"),
        ("{not json".to_owned(), "com.amazon.coral.service#SerializationException", ""),
        (r#"{"RequestItems":{"val":[{"PutRequest":{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}}}}]},"ReturnConsumedCapacity":"ALL"}"#.to_owned(), VALIDATION, "1 validation error detected: Value 'ALL' at 'returnConsumedCapacity' failed to satisfy constraint: Member must satisfy enum value set: [INDEXES, TOTAL, NONE]"),
    ];
    for (body, kind, message) in cases {
        let (got_kind, got_message, status) = raw_batch(&h, &body).await;
        assert_eq!(
            (got_kind.as_str(), status),
            (kind, 400),
            "{body}: {got_message}"
        );
        if !message.is_empty() {
            assert_eq!(got_message, message, "{body}");
        }
    }
    // Nesting deeper than 32 levels.
    let deep = format!(
        "{}{{\"S\":\"x\"}}{}",
        "{\"L\":[".repeat(33),
        "]}".repeat(33)
    );
    let (_, message, _) = raw_batch(&h, &wrap(&deep)).await;
    assert_eq!(message, "Nesting Levels have exceeded supported limits");

    // Over 16 MB.
    let huge = format!(
        r#"{{"RequestItems":{{"val":[]}},"pad":"{}"}}"#,
        "x".repeat(16 * 1024 * 1024)
    );
    let (kind, message, _) = raw_batch(&h, &huge).await;
    assert_eq!(kind, VALIDATION);
    assert!(message.contains("16 MB"), "{message}");

    // Operations this endpoint does not implement.
    let (status, body) = raw(&h, "POST", "/", Some("PutItem"), b"{}").await;
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"), "{body}");
    assert_eq!(h.server.endpoint.stats().items_put, 0);
    assert_eq!(h.server.endpoint.stats().error_responses, 11);
}
