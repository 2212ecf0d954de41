//! AWS SDK errors: how they are worded for someone in the middle of a recovery, and which are worth
//! retrying.
//!
//! AWS contract this relies on: throttling (`ProvisionedThroughputExceededException`,
//! `ThrottlingException`, `RequestLimitExceeded`, `TooManyRequestsException`), HTTP 5xx and 429, timeouts and
//! transport failures are transient; every other service error is not.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::Error;

/// Error codes AWS services use for throttling.
pub const THROTTLING_CODES: [&str; 4] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// [`Error::Aws`] for a failed call of `operation` (e.g. `"PutObject s3://b/k"`).
pub fn sdk_error<E>(operation: impl Into<String>, err: &SdkError<E, Response>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    Error::Aws {
        operation: operation.into(),
        message: describe(err),
        retryable: is_transient(err),
    }
}

/// `Code: message (HTTP status)` for service errors; the error chain for transport failures. The SDK's
/// debug rendering (headers, raw body) is useless to someone in the middle of a recovery.
pub fn describe<E>(err: &SdkError<E, Response>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            match (se.err().code(), se.err().message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg} (HTTP {status})"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                _ => format!("{} (HTTP {status})", se.err()),
            }
        }
        other => DisplayErrorContext(other).to_string(),
    }
}

/// Throttling, 5xx, 429, timeouts and transport failures.
pub fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, Response>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            status >= 500
                || status == 429
                || se
                    .err()
                    .code()
                    .is_some_and(|c| THROTTLING_CODES.contains(&c))
        }
        _ => false,
    }
}
