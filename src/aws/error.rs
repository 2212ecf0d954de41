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

/// Error codes AWS services use when they refuse a call's credentials or permissions.
pub const AUTHORIZATION_CODES: [&str; 7] = [
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
];

/// Whether `code` (e.g. `AccessDeniedException`) refuses credentials or permissions.
pub fn is_authorization_code(code: &str) -> bool {
    AUTHORIZATION_CODES.contains(&code)
}

/// [`Error::Denied`] for refused credentials or permissions, [`Error::Aws`] otherwise, for a failed call
/// of `operation` (e.g. `"PutObject s3://b/k"`).
pub fn sdk_error<E>(operation: impl Into<String>, err: &SdkError<E, Response>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let denied = match err {
        SdkError::ServiceError(se) => se.err().code().is_some_and(is_authorization_code),
        _ => false,
    };
    if denied {
        return Error::Denied {
            operation: operation.into(),
            message: describe(err),
        };
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::http::{Canned, dynamodb};

    /// Refused credentials or permissions become `Denied`: retryable (with a bound), and saying what to
    /// fix; other client errors stay final, throttling and 5xx transient.
    #[tokio::test]
    async fn refused_credentials_are_denied_and_retryable() {
        let http = Canned::answering(&[
            (
                400,
                r#"{"__type":"com.amazon.coral.service#AccessDeniedException","message":"User: arn:aws:sts::1:assumed-role/w/x is not authorized to perform: dynamodb:GetItem"}"#,
            ),
            (
                400,
                r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
            ),
            (
                400,
                r#"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in the request is expired"}"#,
            ),
            (
                400,
                r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"bad key"}"#,
            ),
            (
                400,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}"#,
            ),
        ]);
        let client = dynamodb(&http);
        let mut errors = Vec::new();
        for _ in 0..5 {
            let e = client
                .get_item()
                .table_name("control")
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
                .send()
                .await
                .unwrap_err();
            errors.push(sdk_error("GetItem control", &e));
        }
        for e in &errors[..3] {
            assert!(matches!(e, Error::Denied { .. }), "{e:?}");
            assert!(e.is_retryable() && e.error_type() == "Retryable", "{e}");
            assert!(
                e.to_string().starts_with("GetItem control: ")
                    && e.to_string().contains("`ddb-pitr policy`"),
                "{e}"
            );
        }
        assert!(
            errors[0]
                .to_string()
                .contains("not authorized to perform: dynamodb:GetItem"),
            "{}",
            errors[0]
        );
        assert!(
            matches!(
                &errors[3],
                Error::Aws {
                    retryable: false,
                    ..
                }
            ),
            "{:?}",
            errors[3]
        );
        assert!(errors[4].is_retryable() && !matches!(errors[4], Error::Denied { .. }));
    }
}
