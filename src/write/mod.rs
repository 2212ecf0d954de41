//! BatchWriteItem: the batch-writer seam ([`BatchWriter`]) and its size limit ([`BatchSize`]); the writer over
//! DynamoDB ([`dynamo`]), retries with exponential backoff and full jitter ([`retry`]), pacing under a
//! table's capacity ([`pace`]) and statistics ([`stats`]).
//!
//! AWS contract this module relies on:
//! - A BatchWriteItem request holds at most 25 put/delete requests ([`BatchSize`]) and at most 16 MB; the
//!   engine's batcher enforces both before a call is made.
//! - A successful call may leave some requests in `UnprocessedItems` (typically under throttling); they
//!   must be sent again, after a delay, or they are lost. No write is ever dropped here: they are retried
//!   until they succeed or the retry budget runs out, which fails the whole restore with the checkpoint below
//!   the unacknowledged lines.
//! - Throttling (`ProvisionedThroughputExceededException`, `ThrottlingException`, `RequestLimitExceeded`),
//!   5xx responses and transport errors are transient; every other error rejects the batch.
//! - Puts and deletes are idempotent, so a batch that was applied but whose response was lost is safe to
//!   send again.

pub mod dynamo;
pub mod pace;
pub mod retry;
pub mod stats;

use std::fmt;
use std::str::FromStr;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::item::wire::RawWrite;

/// Requests per BatchWriteItem call: 1 to 25, DynamoDB's limit ("The BatchWriteItem operation puts or
/// deletes multiple items in one or more tables. A single call to BatchWriteItem can transmit up to 16MB of
/// data over the network, consisting of up to 25 item put or delete operations"). Validated once, here: the
/// CLI parses it, the planner stores it and the engine takes it as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "usize", into = "usize")]
pub struct BatchSize(usize);

impl BatchSize {
    /// DynamoDB's limit, and the default.
    pub const MAX: BatchSize = BatchSize(25);

    pub fn new(n: usize) -> Result<Self, String> {
        if (1..=Self::MAX.0).contains(&n) {
            Ok(BatchSize(n))
        } else {
            Err(format!("{n} is not in 1..={}", Self::MAX.0))
        }
    }

    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for BatchSize {
    fn default() -> Self {
        BatchSize::MAX
    }
}

impl TryFrom<usize> for BatchSize {
    type Error = String;

    /// The planner request's `batch_size` (JSON), in the planner's wording.
    fn try_from(n: usize) -> Result<Self, String> {
        BatchSize::new(n).map_err(|_| {
            format!(
                "batch_size {n} is out of range: BatchWriteItem takes 1 to {} requests",
                Self::MAX.0
            )
        })
    }
}

impl From<BatchSize> for usize {
    fn from(b: BatchSize) -> usize {
        b.0
    }
}

impl FromStr for BatchSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let n: i64 = s
            .parse()
            .map_err(|e: std::num::ParseIntError| e.to_string())?;
        usize::try_from(n)
            .ok()
            .and_then(|n| BatchSize::new(n).ok())
            .ok_or_else(|| format!("{n} is not in 1..={}", Self::MAX.0))
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_size_holds_only_1_to_25() {
        assert_eq!("7".parse::<BatchSize>().map(BatchSize::get), Ok(7));
        assert_eq!("25".parse(), Ok(BatchSize::MAX));
        assert_eq!("0".parse::<BatchSize>(), Err("0 is not in 1..=25".into()));
        assert_eq!("26".parse::<BatchSize>(), Err("26 is not in 1..=25".into()));
        assert_eq!("-1".parse::<BatchSize>(), Err("-1 is not in 1..=25".into()));
        assert_eq!(
            "x".parse::<BatchSize>(),
            Err("invalid digit found in string".into())
        );
        assert_eq!(
            serde_json::from_str::<BatchSize>("5").map(usize::from).ok(),
            Some(5)
        );
        assert_eq!(serde_json::to_string(&BatchSize::MAX).unwrap(), "25");
        let err = serde_json::from_str::<BatchSize>("30")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("batch_size 30 is out of range: BatchWriteItem takes 1 to 25 requests"),
            "{err}"
        );
    }
}
