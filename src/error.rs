//! Typed errors. Every error that concerns input data names the export, the file, the line and the byte
//! offset, and says what to do about it.
//!
//! A leaf: it imports no other module of the crate. AWS SDK errors become [`Error::Aws`] in
//! [`crate::aws::error`].

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

    /// A distributed restore made no progress for its idle timeout.
    #[error("{0}")]
    Stalled(String),

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

    /// An AWS call was refused for its credentials or permissions (AccessDenied, ExpiredToken,
    /// UnrecognizedClient, …). Often passing: IAM changes take a few minutes to apply everywhere (just
    /// after `sam deploy`), and credentials are renewed before they expire. Retried a bounded number of
    /// times, so it is [`Error::is_retryable`].
    #[error(
        "{operation}: {message}. The credentials were refused: a role or policy created or changed in the \
         last minutes may not be in effect yet; otherwise give the role the permission this call needs \
         (`ddb-pitr policy` prints each role's) or renew the credentials"
    )]
    Denied { operation: String, message: String },

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
                | Error::Denied { .. }
        )
    }

    /// Stable error name for orchestration (`Retry`/`Catch` in Step Functions).
    pub fn error_type(&self) -> &'static str {
        if matches!(self, Error::Stalled(_)) {
            "Stalled"
        } else if self.is_retryable() {
            "Retryable"
        } else {
            "Fatal"
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// At most `max` characters of `s`, for quoting input in a message without quoting all of it.
pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("ab", 10), "ab");
    }
}
