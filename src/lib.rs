//! Restore Amazon DynamoDB tables from DynamoDB's "export to S3" output.
//!
//! The modules follow the data, from the export on S3 to the target table, and each imports only from the
//! modules listed above it:
//!
//! - [`error`]: the typed errors; every error about data names the export, file, line and byte offset.
//! - [`clock`]: now, and the one RFC 3339 format of checkpoints, reports and the control table.
//! - [`budget`]: byte budgets shared by all files, which bound the memory of reads and batches.
//! - [`aws`]: the SDK clients, SDK error wording and classification, Lambda configuration, EMF metrics.
//! - [`export`]: the export on S3: locations, manifests, the chain, and data files read with ranged GETs.
//! - [`item`]: one line into one write, pure: decode, key, number rules, wire format, item size.
//! - [`write`](mod@write): BatchWriteItem: the writer seam, the DynamoDB writer, retries, pacing, statistics.
//! - [`table`]: the target table's DescribeTable checks, and its capacity during a restore.
//! - [`engine`]: "process this file from this offset", the one function every front door calls.
//! - [`preflight`]: the checks made before the first write, shared by the local runner, the planner and
//!   `validate`.
//! - [`report`]: the JSON report, documented in `docs/report.md`.
//! - [`local`]: `ddb-pitr restore`: the chain export by export, the checkpoint, progress.
//! - [`distributed`]: the control table, the planner, the file worker, the reporter and `cloud`.
//! - [`access`]: which IAM actions each role calls, and the least-privilege policy documents.
//! - [`validate`]: `ddb-pitr validate`: read-only checks and estimates before a restore.
//! - `testing` (tests, and the `test-util` feature): in-memory objects, fake writers, canned HTTP and the
//!   call log, written once for every module's tests.
//!
//! Nothing here depends on the Lambda runtime or on clap; the CLI (`src/main.rs`, `src/commands/`) and the
//! functions (`functions/`) are thin front doors.

pub mod access;
pub mod aws;
pub mod budget;
pub mod clock;
pub mod distributed;
pub mod engine;
pub mod error;
pub mod export;
pub mod item;
pub mod local;
pub mod preflight;
pub mod report;
pub mod table;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod validate;
pub mod write;

pub use error::{Error, Result};
