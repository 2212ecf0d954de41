//! Retries of one batch: exponential backoff with full jitter, unprocessed items sent again, and a budget of
//! attempts without progress.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::item::wire::RawWrite;

use super::stats::WriteStats;
use super::{AttemptError, BatchWriter};

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
    use crate::testing::writers::{FakeTable, deletes as requests};

    /// Plays back a script of outcomes; each `Ok(n)` leaves the last n requests unprocessed.
    fn scripted(script: Vec<Result<usize, AttemptError>>) -> FakeTable {
        FakeTable::new(&["pk"]).with_script(script)
    }

    /// The requests of each call.
    fn seen(w: &FakeTable) -> Vec<usize> {
        w.log().iter().map(|c| c.requests).collect()
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
        let w = scripted(vec![
            Ok(10),
            Err(AttemptError::Throttled {
                message: "t".into(),
                resources: vec![],
            }),
            Ok(4),
            Ok(0),
        ]);
        let stats = WriteStats::default();
        write_all(&w, "t", requests(25), &fast(), &stats)
            .await
            .unwrap();
        assert_eq!(seen(&w), vec![25, 10, 10, 4]);
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
        let w = scripted(vec![
            Ok(5),
            Err(AttemptError::Transient("503".into())),
            Ok(5),
        ]);
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
        let w = scripted(vec![Err(AttemptError::Rejected(
            "ValidationException".into(),
        ))]);
        let err = write_all(&w, "t", requests(2), &fast(), &WriteStats::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, WriteFailure::Rejected { original: true, ref pending, .. } if pending.len() == 2)
        );
        assert_eq!(seen(&w).len(), 1);
    }

    #[test]
    fn backoff_is_bounded_by_cap() {
        let p = RetryPolicy::default();
        for attempt in 0..40 {
            assert!(p.backoff(attempt) <= p.cap);
        }
    }
}
