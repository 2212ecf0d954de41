//! Throughput self-check: pushes items through `aws-sdk-dynamodb` BatchWriteItem calls into the endpoint
//! and prints items/s as one JSON line. What it measures is the SDK client and the endpoint together, on
//! the same machine (in the same process unless `--endpoint` is given).
//!
//! ```sh
//! cargo run --release -p ddb-bench-endpoint --example throughput -- --items 1000000
//! # against a separately started endpoint (its own process and cores):
//! cargo run --release --example throughput -- --endpoint http://127.0.0.1:PORT --table bench
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use ddb_bench_endpoint::Config;

struct Args {
    items: u64,
    concurrency: usize,
    endpoint: Option<String>,
    table: String,
}

fn args() -> Args {
    let mut a = Args {
        items: 1_000_000,
        concurrency: 32,
        endpoint: None,
        table: "bench".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--items" => a.items = value().parse().expect("--items N"),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency N"),
            "--endpoint" => a.endpoint = Some(value()),
            "--table" => a.table = value(),
            other => panic!(
                "unknown argument {other}: use --items N, --concurrency N, --endpoint URL, --table NAME"
            ),
        }
    }
    a
}

/// A typical restored item, about 200 bytes: key, numbers, a string set, a nested map.
fn item(i: u64) -> HashMap<String, AttributeValue> {
    let mut m = HashMap::with_capacity(8);
    m.insert(
        "pk".into(),
        AttributeValue::S(format!("user#{:010}", i / 4)),
    );
    m.insert(
        "sk".into(),
        AttributeValue::S(format!("order#{:04}", i % 4)),
    );
    m.insert(
        "amount".into(),
        AttributeValue::N(format!("{}.{:02}", i % 10_000, i % 100)),
    );
    m.insert("status".into(), AttributeValue::S("SHIPPED".into()));
    m.insert(
        "note".into(),
        AttributeValue::S("x".repeat(64 + (i % 64) as usize)),
    );
    m.insert(
        "tags".into(),
        AttributeValue::Ss(vec!["a".into(), "b".into(), "c".into()]),
    );
    m.insert(
        "address".into(),
        AttributeValue::M(HashMap::from([
            ("city".into(), AttributeValue::S("Lyon".into())),
            ("zip".into(), AttributeValue::N("69001".into())),
        ])),
    );
    m
}

#[tokio::main]
async fn main() {
    let args = args();
    let (url, running) = match &args.endpoint {
        Some(url) => (url.clone(), None),
        None => {
            let endpoint = ddb_bench_endpoint::endpoint(Config::with_tables([format!(
                "{}:pk:S:sk:S",
                args.table
            )
            .parse()
            .expect("table spec")]))
            .expect("config");
            let running = endpoint
                .start("127.0.0.1:0".parse().unwrap())
                .await
                .expect("bind");
            (running.url(), Some(running))
        }
    };
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .endpoint_url(&url)
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let client = Client::new(&conf);
    let batches = args.items.div_ceil(25);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, table, items) =
            (client.clone(), next.clone(), args.table.clone(), args.items);
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    break;
                }
                let mut requests: Vec<WriteRequest> = (b * 25..((b + 1) * 25).min(items))
                    .map(|i| {
                        let put = PutRequest::builder()
                            .set_item(Some(item(i)))
                            .build()
                            .unwrap();
                        WriteRequest::builder().put_request(put).build()
                    })
                    .collect();
                // No cap is configured, so nothing should come back; resend if it does.
                while !requests.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, requests)
                        .send()
                        .await
                        .expect("BatchWriteItem");
                    requests = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&table))
                        .unwrap_or_default();
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let seconds = started.elapsed().as_secs_f64();
    let stats = running.as_ref().map(|r| r.endpoint.stats());
    println!(
        "{}",
        serde_json::json!({
            "items": args.items,
            "concurrency": args.concurrency,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "items_per_s": (args.items as f64 / seconds).round(),
            "endpoint": url,
            "in_process": running.is_some(),
            "endpoint_items_put": stats.map(|s| s.items_put),
        })
    );
}
