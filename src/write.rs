//! BatchWriteItem: the batch-writer seam, retries with exponential backoff and full jitter, statistics.
//!
//! AWS contract this module relies on:
//! - A BatchWriteItem request holds at most 25 put/delete requests and at most 16 MB; the batcher in
//!   [`crate::engine`] enforces both before a call is made.
//! - A successful call may leave some requests in `UnprocessedItems` (typically under throttling); they
//!   must be sent again, after a delay, or they are lost. No write is ever dropped here: they are retried
//!   until they succeed or the retry budget runs out, which fails the whole restore with the checkpoint below
//!   the unacknowledged lines.
//! - Throttling (`ProvisionedThroughputExceededException`, `ThrottlingException`, `RequestLimitExceeded`),
//!   5xx responses and transport errors are transient; every other error rejects the batch.
//! - Puts and deletes are idempotent, so a batch that was applied but whose response was lost is safe to
//!   send again.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::wire::RawWrite;

/// Error codes DynamoDB uses for throttling.
const THROTTLING_CODES: [&str; 4] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// Why one BatchWriteItem attempt failed as a whole.
#[derive(Debug, Clone)]
pub enum AttemptError {
    /// The table, an index or the account is over its throughput: back off and retry. `resources` are the
    /// throttled table or indexes (`table`, `index/<name>`) when DynamoDB says (`ThrottlingReasons`).
    Throttled {
        message: String,
        resources: Vec<String>,
    },
    /// 5xx, timeout or connection failure: back off and retry.
    Transient(String),
    /// DynamoDB refused the request itself (validation, missing table, access denied): retrying is useless.
    Rejected(String),
}

/// What a successful attempt left to do.
#[derive(Debug, Default)]
pub struct AttemptOutcome {
    pub unprocessed: Vec<RawWrite>,
    pub consumed_wcu: f64,
    /// Consumed write units by resource (`table`, `index/<name>`), when DynamoDB reports them.
    pub consumed_by: Vec<(String, f64)>,
}

/// The write seam: one BatchWriteItem call against one table, no retries.
pub trait BatchWriter: Send + Sync {
    fn write_batch<'a>(
        &'a self,
        table: &'a str,
        requests: &'a [RawWrite],
    ) -> BoxFuture<'a, Result<AttemptOutcome, AttemptError>>;
}

mod dynamo;
pub use dynamo::DynamoWriter;

/// The longest one BatchWriteItem attempt may take when the client sets no attempt timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// `table` or `index/<name>` for a throttled resource's ARN (`…:table/T` or `…:table/T/index/I`).
fn resource_label(arn: &str) -> String {
    match arn.split_once("/index/") {
        Some((_, index)) => format!("index/{index}"),
        None => "table".to_owned(),
    }
}

fn classify(err: &SdkError<BatchWriteItemError, HttpResponse>) -> AttemptError {
    let text = crate::error::describe_sdk_error(err);
    if let SdkError::ServiceError(se) = err {
        let e = se.err();
        if e.is_provisioned_throughput_exceeded_exception()
            || e.is_request_limit_exceeded()
            || e.is_throttling_exception()
            || e.code().is_some_and(|c| THROTTLING_CODES.contains(&c))
        {
            let reasons = match e {
                BatchWriteItemError::ProvisionedThroughputExceededException(p) => {
                    p.throttling_reasons()
                }
                BatchWriteItemError::ThrottlingException(t) => t.throttling_reasons(),
                BatchWriteItemError::RequestLimitExceeded(r) => r.throttling_reasons(),
                _ => &[],
            };
            return AttemptError::Throttled {
                message: text,
                resources: reasons
                    .iter()
                    .filter_map(|r| r.resource())
                    .map(resource_label)
                    .collect(),
            };
        }
        // A conflicting write in another region of a global table: retrying is the documented remedy.
        if e.is_internal_server_error() || e.is_replicated_write_conflict_exception() {
            return AttemptError::Transient(text);
        }
    }
    if is_transient_sdk_error(err) {
        AttemptError::Transient(text)
    } else {
        AttemptError::Rejected(text)
    }
}

/// Throttling, 5xx, 429, timeouts and transport failures.
pub(crate) fn is_transient_sdk_error<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            status >= 500
                || status == 429
                || se
                    .err()
                    .code()
                    .is_some_and(|c| THROTTLING_CODES.contains(&c))
        }
        _ => false,
    }
}

/// Exponential backoff with full jitter: attempt n sleeps a uniform random time in
/// `[0, min(cap, base * 2^n))`, which spreads retries of many workers instead of synchronising them.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Consecutive attempts without progress before giving up.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 12,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.cap);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Consumption and throttling of one resource (`table`, `index/<name>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceUse {
    pub consumed_wcu: f64,
    /// Requests refused with throttling that DynamoDB attributed to this resource.
    pub throttled_requests: u64,
}

/// Counters shared by every writer of a restore; they feed the report and progress display.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// By resource, when DynamoDB says which (ConsumedCapacity INDEXES detail, ThrottlingReasons).
    pub resources: Mutex<BTreeMap<String, ResourceUse>>,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub throttled_requests: AtomicU64,
    pub server_errors: AtomicU64,
    pub unprocessed_items: AtomicU64,
    /// Consumed write capacity, in thousandths of a WCU.
    pub consumed_milli_wcu: AtomicU64,
    pub backoff_millis: AtomicU64,
    /// When DynamoDB first acknowledged a batch.
    pub first_write: std::sync::OnceLock<std::time::Instant>,
    /// From handing a batch to the writer until DynamoDB accepted all of it: pacing, throttling, retries
    /// and backoff included.
    pub batch_wait: LatencyHistogram,
}

/// Durations in logarithmic buckets, four per power of two (within 19% of the true value), from 1 µs to
/// over an hour; lock-free, so every batch can record into one shared histogram.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

const LATENCY_BUCKETS: usize = 4 * 32;

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Percentiles of recorded durations, in milliseconds (each the upper bound of its bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencyHistogram {
    fn bucket(d: Duration) -> usize {
        let micros = d.as_micros().max(1) as f64;
        ((micros.log2() * 4.0) as usize).min(LATENCY_BUCKETS - 1)
    }

    fn upper_ms(bucket: usize) -> f64 {
        2f64.powf((bucket + 1) as f64 / 4.0) / 1000.0
    }

    pub fn record(&self, d: Duration) {
        self.buckets[Self::bucket(d)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let quantile = |q: f64| {
            let rank = ((count as f64 * q).ceil() as u64).max(1);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Self::upper_ms(i);
                }
            }
            0.0
        };
        if count == 0 {
            return LatencySummary::default();
        }
        LatencySummary {
            count,
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            max_ms: quantile(1.0),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct WriteStatsSnapshot {
    pub batch_write_requests: u64,
    pub retries: u64,
    pub throttled_requests: u64,
    pub server_errors: u64,
    pub unprocessed_items_retried: u64,
    pub consumed_wcu: f64,
    pub backoff_seconds: f64,
}

impl WriteStatsSnapshot {
    /// The sum of two snapshots: statistics of work done in several parts (leases, files, workers).
    pub fn plus(&self, other: &WriteStatsSnapshot) -> WriteStatsSnapshot {
        WriteStatsSnapshot {
            batch_write_requests: self.batch_write_requests + other.batch_write_requests,
            retries: self.retries + other.retries,
            throttled_requests: self.throttled_requests + other.throttled_requests,
            server_errors: self.server_errors + other.server_errors,
            unprocessed_items_retried: self.unprocessed_items_retried
                + other.unprocessed_items_retried,
            consumed_wcu: self.consumed_wcu + other.consumed_wcu,
            backoff_seconds: self.backoff_seconds + other.backoff_seconds,
        }
    }
}

impl WriteStats {
    /// Adds another writer's counters to these.
    pub fn add(&self, s: &WriteStatsSnapshot) {
        let add = |c: &AtomicU64, v: u64| c.fetch_add(v, Ordering::Relaxed);
        add(&self.requests, s.batch_write_requests);
        add(&self.retries, s.retries);
        add(&self.throttled_requests, s.throttled_requests);
        add(&self.server_errors, s.server_errors);
        add(&self.unprocessed_items, s.unprocessed_items_retried);
        add(
            &self.consumed_milli_wcu,
            (s.consumed_wcu * 1000.0).round() as u64,
        );
        add(
            &self.backoff_millis,
            (s.backoff_seconds * 1000.0).round() as u64,
        );
    }

    /// Consumption and throttling by table and index.
    pub fn resources(&self) -> BTreeMap<String, ResourceUse> {
        self.resources.lock().expect("resources").clone()
    }

    fn record_resources(&self, consumed: &[(String, f64)], throttled: &[String]) {
        if consumed.is_empty() && throttled.is_empty() {
            return;
        }
        let mut map = self.resources.lock().expect("resources");
        for (name, units) in consumed {
            map.entry(name.clone()).or_default().consumed_wcu += units;
        }
        for name in throttled {
            map.entry(name.clone()).or_default().throttled_requests += 1;
        }
    }

    pub fn snapshot(&self) -> WriteStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WriteStatsSnapshot {
            batch_write_requests: get(&self.requests),
            retries: get(&self.retries),
            throttled_requests: get(&self.throttled_requests),
            server_errors: get(&self.server_errors),
            unprocessed_items_retried: get(&self.unprocessed_items),
            consumed_wcu: get(&self.consumed_milli_wcu) as f64 / 1000.0,
            backoff_seconds: get(&self.backoff_millis) as f64 / 1000.0,
        }
    }
}

/// Why a batch could not be written.
#[derive(Debug, Clone)]
pub enum WriteFailure {
    /// `attempts` consecutive attempts made no progress.
    Exhausted { attempts: u32, last_error: String },
    /// DynamoDB rejected the request; retrying cannot help. `pending` holds the requests of the rejected
    /// attempt; `original` says they are still the whole original batch, in order (no earlier attempt
    /// had any of them processed).
    Rejected {
        message: String,
        pending: Vec<RawWrite>,
        original: bool,
    },
}

/// Writes every request, retrying throttling, transient errors and unprocessed items. The attempt budget
/// counts consecutive attempts that made no progress, so a slowly draining batch under steady throttling is
/// not abandoned while it still advances.
pub async fn write_all(
    writer: &dyn BatchWriter,
    table: &str,
    mut pending: Vec<RawWrite>,
    policy: &RetryPolicy,
    stats: &WriteStats,
) -> Result<(), WriteFailure> {
    let mut stalled = 0u32;
    let mut first = true;
    let mut original = true;
    while !pending.is_empty() {
        if !first {
            stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let sent = pending.len();
        let last_error = match writer.write_batch(table, &pending).await {
            Ok(outcome) => {
                stats
                    .consumed_milli_wcu
                    .fetch_add((outcome.consumed_wcu * 1000.0) as u64, Ordering::Relaxed);
                stats.record_resources(&outcome.consumed_by, &[]);
                let left = outcome.unprocessed.len();
                if left == 0 {
                    return Ok(());
                }
                stats
                    .unprocessed_items
                    .fetch_add(left as u64, Ordering::Relaxed);
                if left < sent {
                    stalled = 0;
                    original = false;
                }
                pending = outcome.unprocessed;
                format!("{left} of {sent} items left unprocessed")
            }
            Err(AttemptError::Throttled { message, resources }) => {
                stats.throttled_requests.fetch_add(1, Ordering::Relaxed);
                stats.record_resources(&[], &resources);
                message
            }
            Err(AttemptError::Transient(e)) => {
                stats.server_errors.fetch_add(1, Ordering::Relaxed);
                e
            }
            Err(AttemptError::Rejected(message)) => {
                return Err(WriteFailure::Rejected {
                    message,
                    original,
                    pending,
                });
            }
        };
        stalled += 1;
        if stalled >= policy.max_attempts {
            return Err(WriteFailure::Exhausted {
                attempts: stalled,
                last_error,
            });
        }
        let delay = policy.backoff(stalled);
        stats
            .backoff_millis
            .fetch_add(delay.as_millis() as u64, Ordering::Relaxed);
        tokio::time::sleep(delay).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Plays back a script of outcomes; each `Some(n)` leaves the last n requests unprocessed.
    struct Scripted {
        script: Mutex<Vec<Result<Option<usize>, AttemptError>>>,
        seen: Mutex<Vec<usize>>,
    }

    impl BatchWriter for Scripted {
        fn write_batch<'a>(
            &'a self,
            _: &'a str,
            requests: &'a [RawWrite],
        ) -> BoxFuture<'a, Result<AttemptOutcome, AttemptError>> {
            Box::pin(async move {
                self.seen.lock().unwrap().push(requests.len());
                let step = self.script.lock().unwrap().remove(0);
                step.map(|left| AttemptOutcome {
                    unprocessed: requests[requests.len() - left.unwrap_or(0)..].to_vec(),
                    consumed_wcu: 1.0,
                    consumed_by: vec![],
                })
            })
        }
    }

    fn requests(n: usize) -> Vec<RawWrite> {
        (0..n)
            .map(|i| RawWrite::new(true, &format!(r#"{{"pk":{{"S":"{i}"}}}}"#)))
            .collect()
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn unprocessed_items_are_resent_until_done() {
        let w = Scripted {
            script: Mutex::new(vec![
                Ok(Some(10)),
                Err(AttemptError::Throttled {
                    message: "t".into(),
                    resources: vec![],
                }),
                Ok(Some(4)),
                Ok(None),
            ]),
            seen: Mutex::new(vec![]),
        };
        let stats = WriteStats::default();
        write_all(&w, "t", requests(25), &fast(), &stats)
            .await
            .unwrap();
        assert_eq!(*w.seen.lock().unwrap(), vec![25, 10, 10, 4]);
        let s = stats.snapshot();
        assert_eq!(
            (
                s.batch_write_requests,
                s.retries,
                s.throttled_requests,
                s.unprocessed_items_retried
            ),
            (4, 3, 1, 14)
        );
    }

    #[tokio::test]
    async fn retries_run_out_without_progress() {
        let w = Scripted {
            script: Mutex::new(vec![
                Ok(Some(5)),
                Err(AttemptError::Transient("503".into())),
                Ok(Some(5)),
            ]),
            seen: Mutex::new(vec![]),
        };
        let err = write_all(&w, "t", requests(5), &fast(), &WriteStats::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, WriteFailure::Exhausted { attempts: 3, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn rejection_is_not_retried() {
        let w = Scripted {
            script: Mutex::new(vec![Err(AttemptError::Rejected(
                "ValidationException".into(),
            ))]),
            seen: Mutex::new(vec![]),
        };
        let err = write_all(&w, "t", requests(2), &fast(), &WriteStats::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, WriteFailure::Rejected { original: true, ref pending, .. } if pending.len() == 2)
        );
        assert_eq!(w.seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn backoff_is_bounded_by_cap() {
        let p = RetryPolicy::default();
        for attempt in 0..40 {
            assert!(p.backoff(attempt) <= p.cap);
        }
    }

    #[test]
    fn latency_percentiles_come_from_the_recorded_durations() {
        let h = LatencyHistogram::default();
        assert_eq!(h.summary(), LatencySummary::default());
        for _ in 0..98 {
            h.record(Duration::from_millis(2));
        }
        h.record(Duration::from_millis(100));
        h.record(Duration::from_secs(5));
        let s = h.summary();
        assert_eq!(s.count, 100);
        // Each value is its bucket's upper bound: at most 19% above the recorded duration.
        assert!((2.0..=2.38).contains(&s.p50_ms), "{s:?}");
        assert!((100.0..=119.0).contains(&s.p99_ms), "{s:?}");
        assert!((5000.0..=5950.0).contains(&s.max_ms), "{s:?}");
    }
}
