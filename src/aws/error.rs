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
        other => {
            tracing::debug!("SDK error detail: {}", DisplayErrorContext(other));
            let text = causes(other);
            if no_credentials(&text) {
                NO_CREDENTIALS_HELP.replace(
                    "{profile}",
                    &std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into()),
                )
            } else {
                text
            }
        }
    }
}

/// What to do when the credential chain found nothing, in one line.
const NO_CREDENTIALS_HELP: &str = "no AWS credentials were found: looked in the environment \
    (AWS_ACCESS_KEY_ID), profile `{profile}` of ~/.aws/config and ~/.aws/credentials (SSO included), web \
    identity, and container and instance metadata. Run `aws sso login --profile NAME` and set AWS_PROFILE=NAME \
    (--s3-profile NAME for the export bucket), or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
    (the SDK's detail is logged with -v)";

/// Whether an error's text says the credential chain found no credentials.
fn no_credentials(text: &str) -> bool {
    text.contains("no credentials found in chain")
        || text.contains("credential provider was not enabled")
}

/// The error and its sources, each once, as one line: `dispatch failure: io error: connection refused`.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default().trim().to_owned();
        if !first.is_empty() && !parts.iter().any(|p| p.contains(&first)) {
            parts.push(first);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Throttling, 5xx, 429, timeouts and transport failures.
pub fn is_transient<E>(err: &SdkError<E, Response>) -> bool
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match err {
        // No credentials: retrying finds none again.
        SdkError::DispatchFailure(_) if no_credentials(&causes(err)) => false,
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
