//! `--fault-5xx-rate` and `--fault-drop-rate`, with a fixed seed.

use aws_sdk_dynamodb::error::SdkError;
use ddb_bench_endpoint::Config;

use crate::support::*;

#[derive(Debug, Default, PartialEq)]
struct Outcomes {
    ok: u64,
    internal: u64,
    unavailable: u64,
    dropped: u64,
    /// Which calls failed, in order: the seed makes this sequence repeatable.
    pattern: Vec<u8>,
}

async fn run(h: &Harness, calls: usize) -> Outcomes {
    let mut o = Outcomes::default();
    for i in 0..calls {
        let r = batch(h, "faulty", vec![put(item(&[("pk", s(&format!("k{i}")))]))]).await;
        let kind = match &r {
            Ok(_) => {
                o.ok += 1;
                b'.'
            }
            Err(e @ SdkError::ServiceError(_)) => {
                let (code, _, status) = service_error(e);
                match (code.as_str(), status) {
                    ("InternalServerError", 500) => {
                        o.internal += 1;
                        b'5'
                    }
                    ("ServiceUnavailableException", 503) => {
                        o.unavailable += 1;
                        b'3'
                    }
                    other => panic!("unexpected answer {other:?}"),
                }
            }
            // No response at all: the connection was closed.
            Err(SdkError::DispatchFailure(_) | SdkError::ResponseError(_)) => {
                o.dropped += 1;
                b'x'
            }
            Err(other) => panic!("unexpected error {other:?}"),
        };
        o.pattern.push(kind);
    }
    o
}

#[tokio::test]
async fn faults_come_at_the_configured_rate_and_repeat_with_the_seed() {
    let h = start(Config {
        fault_5xx_rate: 0.10,
        fault_drop_rate: 0.05,
        seed: 42,
        ..Config::with_tables([table("faulty:pk:S")])
    })
    .await;
    let calls = 1_000;
    let first = run(&h, calls).await;
    // Binomial(1000, 0.10) and (1000, 0.05): ±5 standard deviations.
    let five_xx = first.internal + first.unavailable;
    assert!((52..=148).contains(&five_xx), "{five_xx} 5xx");
    assert!(
        (16..=84).contains(&first.dropped),
        "{} drops",
        first.dropped
    );
    assert!(first.internal > 0 && first.unavailable > 0);

    let stats = h.server.endpoint.stats();
    assert_eq!(stats.faults_5xx, five_xx);
    assert_eq!(stats.faults_dropped, first.dropped);
    assert_eq!(stats.faults_injected, five_xx + first.dropped);
    assert_eq!(stats.requests, calls as u64);
    // A dropped call was applied before the connection closed; a 5xx call was not.
    assert_eq!(stats.items_put, first.ok + first.dropped);

    // After a reset the same seed gives the same sequence.
    h.server.endpoint.reset();
    let second = run(&h, calls).await;
    assert_eq!(first, second);
}

#[tokio::test]
async fn no_faults_by_default() {
    let h = start(Config::with_tables([table("faulty:pk:S")])).await;
    let o = run(&h, 200).await;
    assert_eq!(o.ok, 200);
    assert_eq!(h.server.endpoint.stats().faults_injected, 0);
}
