//! Typed errors. Every error that concerns input data names the export, the file, the line and the byte
//! offset, and says what to do about it.

use std::fmt;

/// Where in an export a problem was found. `line` is 1-based; `offset` is the byte offset of the start of
/// that line in the *decompressed* data file, the same unit checkpoints use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLocation {
    pub export_id: String,
    pub file: String,
    pub line: u64,
    pub offset: u64,
}

impl fmt::Display for DataLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "export {}, file {}, line {} (byte offset {})",
            self.export_id, self.file, self.line, self.offset
        )
    }
}

/// Every variant holds plain data, so errors can be copied into the report and returned at once.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Bad command-line or event input.
    #[error("{0}")]
    Usage(String),

    /// A manifest is missing, unreadable or inconsistent.
    #[error("export {export}: {message}")]
    Manifest { export: String, message: String },

    /// A data line cannot be restored: malformed JSON, a bad attribute value, a key that does not fit the
    /// table, or a gzip stream that ends early.
    #[error("{location}: {message}")]
    Data {
        location: DataLocation,
        message: String,
    },

    /// A whole data file fails verification: missing object, MD5 or item-count mismatch.
    #[error("export {export}, file {file}: {message}")]
    FileIntegrity {
        export: String,
        file: String,
        message: String,
    },

    /// The exports given do not form one contiguous chain for one table.
    #[error("export chain: {0}")]
    Chain(String),

    /// The target table is missing, not ACTIVE, or its key schema does not match the export.
    #[error("table {table}: {message}")]
    Table { table: String, message: String },

    /// The table's capacity could not be changed, or put back, as `--manage-capacity` asked.
    #[error("table {table}: capacity: {message}")]
    Capacity { table: String, message: String },

    /// A checkpoint cannot be read, written, or belongs to another restore.
    #[error("checkpoint {location}: {message}")]
    Checkpoint { location: String, message: String },

    /// An AWS call failed. `retryable` is true for throttling, 5xx and transport errors.
    #[error("{operation}: {message}")]
    Aws {
        operation: String,
        message: String,
        retryable: bool,
    },

    /// BatchWriteItem kept failing or leaving items unprocessed after every retry.
    #[error(
        "{location}: writes to table {table} still failing after {attempts} attempts without progress: {last_error}. \
         Nothing past the checkpoint was recorded as written; reduce --workers or raise the table's write \
         capacity, then resume"
    )]
    WritesExhausted {
        table: String,
        location: DataLocation,
        attempts: u32,
        last_error: String,
    },

    /// The restore was asked to stop (signal or shutdown request) before it finished.
    #[error("interrupted before the restore finished")]
    Interrupted,
}

impl Error {
    /// True when the same operation may succeed if tried again later (throttling, 5xx, network).
    /// Distributed workers map this to the `Retryable` / `Fatal` error names the state machine matches on.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Aws {
                retryable: true,
                ..
            } | Error::WritesExhausted { .. }
                | Error::Interrupted
        )
    }

    /// Stable error name for orchestration (`Retry`/`Catch` in Step Functions).
    pub fn error_type(&self) -> &'static str {
        if self.is_retryable() {
            "Retryable"
        } else {
            "Fatal"
        }
    }

    pub(crate) fn aws<E>(
        operation: impl Into<String>,
        err: &aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::http::Response,
        >,
    ) -> Self
    where
        E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + 'static,
    {
        Error::Aws {
            operation: operation.into(),
            message: describe_sdk_error(err),
            retryable: crate::write::is_transient_sdk_error(err),
        }
    }
}

/// `Code: message (HTTP status)` for service errors; the error chain for transport failures. The SDK's
/// debug rendering (headers, raw body) is useless to someone in the middle of a recovery.
pub(crate) fn describe_sdk_error<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> String
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            match (se.err().code(), se.err().message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg} (HTTP {status})"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                _ => format!("{} (HTTP {status})", se.err()),
            }
        }
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
