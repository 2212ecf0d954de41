//! The AWS JSON 1.0 wire format as DynamoDB speaks it: `POST /` with
//! `X-Amz-Target: DynamoDB_20120810.<Operation>`, bodies of type `application/x-amz-json-1.0`, and errors
//! as `{"__type":"<namespace>#<Code>","message":"…"}`; and what the DynamoDB and S3 sides of the server share:
//! the response body type, the control routes and request ids.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{Either, Full};

use crate::s3::body::FileBody;

/// A response body: bytes in memory, or an S3 object streamed from its file.
pub type Body = Either<Full<Bytes>, FileBody>;

/// The control routes' path names (`/stats` is `stats`). S3 requests never reach them, so no bucket may
/// take these names.
pub const CONTROL_ROUTES: [&str; 3] = ["stats", "items", "reset"];

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// A fresh request id, for the `x-amzn-requestid` (DynamoDB) or `x-amz-request-id` (S3) header.
pub(crate) fn next_request_id() -> String {
    format!("BENCH{:020}", REQUEST_IDS.fetch_add(1, Ordering::Relaxed))
}

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
pub const TARGET_PREFIX: &str = "DynamoDB_20120810.";
/// BatchWriteItem: "The total request size exceeds 16 MB".
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

const DYNAMODB_NS: &str = "com.amazonaws.dynamodb.v20120810#";
const CORAL_NS: &str = "com.amazon.coral.service#";

/// The operations this endpoint implements; anything else is answered with `UnknownOperationException`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    BatchWriteItem,
    DescribeTable,
    Unsupported(String),
}

impl Operation {
    /// From the `X-Amz-Target` header value.
    pub fn from_target(target: &str) -> Operation {
        match target.strip_prefix(TARGET_PREFIX) {
            Some("BatchWriteItem") => Operation::BatchWriteItem,
            Some("DescribeTable") => Operation::DescribeTable,
            _ => Operation::Unsupported(target.to_owned()),
        }
    }
}

/// DynamoDB error codes this endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Validation,
    Serialization,
    ResourceNotFound,
    ProvisionedThroughputExceeded,
    InternalServerError,
    ServiceUnavailable,
    UnknownOperation,
}

impl ErrorCode {
    /// The `__type` value, with the namespace DynamoDB uses for it.
    pub fn type_name(self) -> String {
        let (ns, code) = match self {
            ErrorCode::Validation => (DYNAMODB_NS, "ValidationException"),
            ErrorCode::Serialization => (CORAL_NS, "SerializationException"),
            ErrorCode::ResourceNotFound => (DYNAMODB_NS, "ResourceNotFoundException"),
            ErrorCode::ProvisionedThroughputExceeded => {
                (DYNAMODB_NS, "ProvisionedThroughputExceededException")
            }
            ErrorCode::InternalServerError => (DYNAMODB_NS, "InternalServerError"),
            ErrorCode::ServiceUnavailable => (CORAL_NS, "ServiceUnavailableException"),
            ErrorCode::UnknownOperation => (CORAL_NS, "UnknownOperationException"),
        };
        format!("{ns}{code}")
    }

    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InternalServerError => 500,
            ErrorCode::ServiceUnavailable => 503,
            _ => 400,
        }
    }
}

/// An error answer: code, message and, for throttling, the throttled table's ARN.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// `ThrottlingReasons[].resource` of a `ProvisionedThroughputExceededException`.
    pub throttled_resource: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            throttled_resource: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Validation, message)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Serialization, message)
    }

    /// What DynamoDB answers when a table's provisioned write capacity is used up.
    pub fn throttled(table_arn: String) -> Self {
        ApiError {
            code: ErrorCode::ProvisionedThroughputExceeded,
            message: "The level of configured provisioned throughput for the table was exceeded. \
                      Consider increasing your provisioning level with the UpdateTable API."
                .into(),
            throttled_resource: Some(table_arn),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let mut body = serde_json::json!({
            "__type": self.code.type_name(),
            "message": self.message,
        });
        if let Some(resource) = &self.throttled_resource {
            body["ThrottlingReasons"] = serde_json::json!([{
                "reason": "TableWriteProvisionedThroughputExceeded",
                "resource": resource,
            }]);
        }
        serde_json::to_vec(&body).expect("a JSON value serialises")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
