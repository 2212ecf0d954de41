//! Test doubles, written once for the tests of every module, the integration tests and the benchmarks
//! (which see this module through the `test-util` feature). Only what no emulator covers is faked here;
//! everything else is tested against moto (`tests/it`).
//!
//! - [`calls`]: an SDK interceptor that records every call a command makes;
//! - [`exports`]: loaded exports built in memory;
//! - [`http`]: an SDK HTTP client that answers in process;
//! - [`objects`]: export objects served from memory;
//! - [`writers`]: the in-memory table that every engine, retry and pacing test writes to;
//! - [`item`]: an item from name-value pairs.

pub mod calls;
pub mod exports;
pub mod http;
pub mod objects;
pub mod writers;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::item::Item;

/// An item from `(name, value)` pairs.
pub fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}
