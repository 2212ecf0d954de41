//! One line of a data file into one write, pure: no I/O.
//!
//! - [`decode`]: DynamoDB JSON into a put or a delete, checked the way DynamoDB would check it, with a
//!   byte-level fast path for the common case;
//! - [`key`]: the table's key schema, and the key values and hashes the checks and the batcher use;
//! - [`number`]: DynamoDB's number rules;
//! - [`wire`]: the BatchWriteItem request element of a write, built from the line's own JSON;
//! - [`size`]: DynamoDB's item size and write units.

pub mod decode;
pub mod key;
pub mod number;
pub mod size;
pub mod wire;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// One item (or key) as the SDK holds it: attribute name → value.
pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Put(Item),
    Delete(Item),
}

impl WriteOp {
    /// The attributes that identify the item: the whole item for a put, `Keys` for a delete.
    pub fn item(&self) -> &Item {
        match self {
            WriteOp::Put(i) | WriteOp::Delete(i) => i,
        }
    }
}
