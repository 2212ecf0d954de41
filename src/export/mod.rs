//! The export on S3, as DynamoDB's ExportTableToPointInTime wrote it:
//!
//! - [`location`]: `s3://` URIs of exports, checkpoints and reports;
//! - [`manifest`]: `manifest-summary.json` and `manifest-files.json`, their checksums and counts;
//! - [`chain`]: a list of exports checked as one contiguous chain of one table;
//! - [`discover`]: the exports under a prefix (or that DynamoDB lists for a table), the points in time they
//!   can restore, and the chain to one;
//! - [`request`]: exports asked of DynamoDB (ExportTableToPointInTime) when no chain ends at a time;
//! - [`resolve`]: the exports a restore reads: given, or found (and requested) for a time;
//! - [`source`]: data files streamed with ranged GETs and read-ahead, hashed on the way.

pub mod chain;
pub mod discover;
pub mod location;
pub mod manifest;
pub mod request;
pub mod resolve;
pub mod source;
