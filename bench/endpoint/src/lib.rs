//! A fast local DynamoDB-protocol endpoint for benchmarks and fault tests of `ddb-pitr`.
//!
//! It answers `BatchWriteItem` and `DescribeTable` over the AWS JSON 1.0 protocol, validates batches as
//! DynamoDB does, counts what it accepted, and can cap the write rate (WCU/s) and inject faults. With an
//! S3 root, the same port also serves export files as S3 objects ([`s3`]).
//!
//! Modules in data-flow order:
//! - [`config`]: the tables and limits one process serves.
//! - [`server`]: hyper HTTP/1.1, routes, fault injection, the accept loop.
//! - [`protocol`]: the AWS JSON 1.0 framing, DynamoDB's error shapes, and the response body and request ids
//!   both services share.
//! - [`items`]: parsing and validating write requests; DynamoDB's item size rule.
//! - [`engine`]: BatchWriteItem (validate → throttle → record → answer) and DescribeTable.
//! - [`throttle`]: the write-capacity token bucket and its clock.
//! - [`store`]: counters, the key digest, and stored items.
//! - [`s3`]: S3 path-style GetObject, HeadObject, ListObjectsV2 and PutObject over a local directory.

pub mod config;
pub mod engine;
pub mod items;
pub mod protocol;
pub mod s3;
pub mod server;
pub mod store;
pub mod throttle;

use std::sync::Arc;

pub use config::{Config, ConfigError, ScalarType, TableSpec, ThrottleMode};
pub use engine::{Stats, TableStats};
pub use server::{Endpoint, Running};
pub use throttle::{Clock, ManualClock, SystemClock};

/// An endpoint on the wall clock.
pub fn endpoint(config: Config) -> Result<Endpoint, ConfigError> {
    endpoint_with_clock(config, SystemClock::shared())
}

/// An endpoint whose write-capacity bucket follows `clock`.
pub fn endpoint_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Endpoint, ConfigError> {
    let s3 = config.s3_root.as_deref().map(s3::S3::open).transpose()?;
    Ok(Endpoint::new(engine::State::new(config, clock)?, s3))
}
