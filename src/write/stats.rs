//! Write statistics shared by every writer of a restore: calls, retries, throttling, consumed capacity by
//! table and index, and how long batches wait.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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
    pub first_write: OnceLock<Instant>,
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

    pub(super) fn record_resources(&self, consumed: &[(String, f64)], throttled: &[String]) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
