//! `--wcu`: a token bucket per table, on a manual clock, so every expectation is in tokens.

use std::time::Duration;

use aws_sdk_dynamodb::types::WriteRequest;
use ddb_bench_endpoint::{Config, ThrottleMode};

use crate::support::*;

fn capped(wcu: u64, burst_seconds: u64, mode: ThrottleMode) -> Config {
    Config {
        wcu: Some(wcu),
        burst_seconds,
        throttle_mode: mode,
        ..Config::with_tables([table("capped:pk:S")])
    }
}

/// `size`-byte items (1 WCU up to 1024 bytes): "pk" + the key + "d" + padding.
fn sized(key: &str, size: usize) -> WriteRequest {
    let pad = "x".repeat(size - 2 - key.len() - 1);
    put(item(&[("pk", s(key)), ("d", s(&pad))]))
}

fn pk_of(w: &WriteRequest) -> String {
    w.put_request().unwrap().item()["pk"]
        .as_s()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn what_does_not_fit_comes_back_unprocessed() {
    let h = start(capped(30, 0, ThrottleMode::Unprocessed)).await;
    let batch_of = |from: usize| {
        (from..from + 25)
            .map(|i| sized(&format!("k{i:03}"), 100))
            .collect::<Vec<_>>()
    };
    let out = batch(&h, "capped", batch_of(0)).await.unwrap();
    assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()));

    // 5 units left: the first 5 are written, the last 20 returned in order.
    let out = batch(&h, "capped", batch_of(25)).await.unwrap();
    let unprocessed = &out.unprocessed_items().unwrap()["capped"];
    let keys: Vec<String> = unprocessed.iter().map(pk_of).collect();
    let expected: Vec<String> = (30..50).map(|i| format!("k{i:03}")).collect();
    assert_eq!(keys, expected);
    // The returned requests are the sent ones, byte for byte: the padding came back whole.
    assert_eq!(
        unprocessed[0].put_request().unwrap().item()["d"]
            .as_s()
            .unwrap()
            .len(),
        100 - 2 - 4 - 1
    );

    // Nothing fits: the whole call is throttled.
    let err = batch(&h, "capped", batch_of(50)).await.unwrap_err();
    let (code, _, status) = service_error(&err);
    assert_eq!(
        (code.as_str(), status),
        ("ProvisionedThroughputExceededException", 400)
    );
    let stats = h.server.endpoint.stats();
    assert_eq!((stats.items_put, stats.wcu_consumed), (30, 30));
    assert_eq!(
        (stats.unprocessed_items_returned, stats.throttled_requests),
        (20, 1)
    );

    // Half a second refills 15 units.
    h.clock.advance(Duration::from_millis(500));
    let out = batch(&h, "capped", batch_of(50)).await.unwrap();
    assert_eq!(out.unprocessed_items().unwrap()["capped"].len(), 10);
}

#[tokio::test]
async fn error_mode_refuses_the_whole_call() {
    let h = start(capped(30, 0, ThrottleMode::Error)).await;
    batch(
        &h,
        "capped",
        (0..25).map(|i| sized(&format!("a{i}"), 10)).collect(),
    )
    .await
    .unwrap();
    let err = batch(
        &h,
        "capped",
        (0..6).map(|i| sized(&format!("b{i}"), 10)).collect(),
    )
    .await
    .unwrap_err();
    let (code, message, _) = service_error(&err);
    assert_eq!(code, "ProvisionedThroughputExceededException");
    assert!(message.contains("UpdateTable"), "{message}");
    // Nothing of the refused call was written or charged: the 5 units left still take 5 items.
    batch(
        &h,
        "capped",
        (0..5).map(|i| sized(&format!("c{i}"), 10)).collect(),
    )
    .await
    .unwrap();
    assert_eq!(h.server.endpoint.stats().items_put, 30);
}

/// Sends `items` until all are accepted or a call is throttled; the number accepted.
async fn drain(h: &Harness, pending: &mut Vec<WriteRequest>) -> u64 {
    let mut accepted = 0;
    while !pending.is_empty() {
        let take = pending.len().min(25);
        let chunk: Vec<_> = pending.drain(..take).collect();
        match batch(h, "capped", chunk.clone()).await {
            Ok(out) => {
                let back: Vec<WriteRequest> = out
                    .unprocessed_items()
                    .and_then(|u| u.get("capped"))
                    .cloned()
                    .unwrap_or_default();
                accepted += (chunk.len() - back.len()) as u64;
                let stop = !back.is_empty();
                pending.splice(0..0, back);
                if stop {
                    break;
                }
            }
            Err(_) => {
                pending.splice(0..0, chunk);
                break;
            }
        }
    }
    accepted
}

#[tokio::test]
async fn the_long_run_rate_is_the_cap() {
    // 2-WCU items (1,500 bytes) against 100 WCU/s: at most 50 items a second.
    let h = start(capped(100, 0, ThrottleMode::Unprocessed)).await;
    let mut pending: Vec<_> = (0..5_000)
        .map(|i| sized(&format!("k{i:05}"), 1_500))
        .collect();
    let mut per_second = Vec::new();
    for _ in 0..40 {
        per_second.push(drain(&h, &mut pending).await);
        h.clock.advance(Duration::from_secs(1));
    }
    // The bucket starts with one second of capacity and gains exactly one second per step.
    assert!(per_second.iter().all(|&n| n == 50), "{per_second:?}");
    let stats = h.server.endpoint.stats();
    assert_eq!(stats.items_put, 40 * 50);
    assert_eq!(stats.wcu_consumed, 40 * 100);

    // Idle time is not saved up with burst 0.
    h.clock.advance(Duration::from_secs(60));
    assert_eq!(drain(&h, &mut pending).await, 50);
}

#[tokio::test]
async fn burst_keeps_unused_capacity() {
    let h = start(capped(10, 5, ThrottleMode::Unprocessed)).await;
    let mut pending: Vec<_> = (0..500).map(|i| sized(&format!("k{i:03}"), 50)).collect();
    // Starts full: five seconds of capacity.
    assert_eq!(drain(&h, &mut pending).await, 50);
    h.clock.advance(Duration::from_secs(2));
    assert_eq!(drain(&h, &mut pending).await, 20);
    // No more than five seconds are kept however long it waits.
    h.clock.advance(Duration::from_secs(300));
    assert_eq!(drain(&h, &mut pending).await, 50);
}
