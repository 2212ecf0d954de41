//! Restore Amazon DynamoDB tables from DynamoDB's "export to S3" output.
//!
//! The modules follow the data, from the export on S3 to the target table:
//!
//! 1. [`location`]: `s3://` URIs of exports, checkpoints and reports.
//! 2. [`manifest`]: reads `manifest-summary.json` and `manifest-files.json`, verifies their checksums and
//!    counts, and resolves data-file keys.
//! 3. [`chain`]: checks that a list of exports forms one contiguous chain for one table.
//! 4. [`source`]: streams a data file with ranged GETs and read-ahead, verifying its MD5 on the way.
//! 5. [`decode`]: turns one line of DynamoDB JSON into a put or a delete, with exact error locations.
//! 6. [`table`]: DescribeTable checks and the key schema every written item must carry.
//! 7. [`write`]: BatchWriteItem batching, retries with backoff and full jitter, write statistics.
//! 8. [`checkpoint`]: byte-offset low-watermarks per file and their durable store (local file or S3).
//! 9. [`engine`]: "process this file from this offset", and the local restore that drives it; its memory is
//!    bounded by the byte budgets of [`budget`], shared by all files.
//! 10. [`report`]: the JSON report, documented in `docs/report.md`.
//!
//! Distributed restores add three modules over the same engine: [`control`] (the DynamoDB control table:
//! plan, leases, checkpoints, counters), [`plan`] (the planner) and [`worker`] (the file worker, for the
//! worker Lambda and for `ddb-pitr worker` on EC2).
//!
//! [`synth`] writes real-format exports for tests and benchmarks. Nothing here depends on the Lambda runtime;
//! the local CLI and the distributed workers are thin front doors over [`engine::process_file`].

pub mod access;
pub mod budget;
pub mod capacity;
pub mod chain;
pub mod checkpoint;
pub mod cloud;
pub mod control;
pub mod decode;
pub mod engine;
pub mod env;
pub mod error;
pub mod location;
pub mod manifest;
pub mod metrics;
pub mod pace;
pub mod plan;
pub mod progress;
pub mod report;
pub mod reporter;
pub mod restore;
pub mod size;
pub mod source;
pub mod table;
pub mod validate;
pub mod wire;
pub mod worker;
pub mod write;

pub use error::{Error, Result};
