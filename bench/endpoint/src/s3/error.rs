//! S3's error answers: a code, an HTTP status and an XML body `<Error><Code>…</Code>…</Error>`, which the
//! SDK turns into its typed errors (`NoSuchKey`, `NoSuchBucket`) or a generic one carrying the code.

use hyper::StatusCode;

use super::xml_escape;

/// The most a PutObject body may hold: the endpoint collects it in memory before writing the file.
pub const MAX_PUT_BYTES: usize = 64 * 1024 * 1024;

/// An S3 error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    #[error("The specified bucket does not exist")]
    NoSuchBucket { bucket: String },
    #[error("The specified key does not exist.")]
    NoSuchKey { key: String },
    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    #[error("The requested range is not satisfiable")]
    InvalidRange { size: u64 },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidBucketName(String),
    #[error("{0}")]
    IncompleteBody(String),
    #[error(
        "Your proposed upload exceeds the maximum allowed size ({MAX_PUT_BYTES} bytes on ddb-bench-endpoint)"
    )]
    EntityTooLarge,
    #[error("{0}")]
    NotImplemented(String),
    #[error("We encountered an internal error: {0}")]
    Internal(String),
}

impl S3Error {
    /// An I/O failure that is the server's problem, not the request's.
    pub fn internal(context: &str, e: std::io::Error) -> Self {
        S3Error::Internal(format!("{context}: {e}"))
    }

    pub fn code(&self) -> &'static str {
        match self {
            S3Error::NoSuchBucket { .. } => "NoSuchBucket",
            S3Error::NoSuchKey { .. } => "NoSuchKey",
            S3Error::PreconditionFailed => "PreconditionFailed",
            S3Error::InvalidRange { .. } => "InvalidRange",
            S3Error::InvalidArgument(_) => "InvalidArgument",
            S3Error::InvalidBucketName(_) => "InvalidBucketName",
            S3Error::IncompleteBody(_) => "IncompleteBody",
            S3Error::EntityTooLarge => "EntityTooLarge",
            S3Error::NotImplemented(_) => "NotImplemented",
            S3Error::Internal(_) => "InternalError",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            S3Error::NoSuchBucket { .. } | S3Error::NoSuchKey { .. } => StatusCode::NOT_FOUND,
            S3Error::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            S3Error::InvalidRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            S3Error::InvalidArgument(_)
            | S3Error::InvalidBucketName(_)
            | S3Error::IncompleteBody(_)
            | S3Error::EntityTooLarge => StatusCode::BAD_REQUEST,
            S3Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            S3Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The XML body, with the resource S3 names for this error.
    pub fn body(&self, request_id: &str) -> String {
        let resource = match self {
            S3Error::NoSuchBucket { bucket } => {
                format!("<BucketName>{}</BucketName>", xml_escape(bucket))
            }
            S3Error::NoSuchKey { key } => format!("<Key>{}</Key>", xml_escape(key)),
            S3Error::InvalidRange { size } => {
                format!("<ActualObjectSize>{size}</ActualObjectSize>")
            }
            _ => String::new(),
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>{resource}\
             <RequestId>{request_id}</RequestId></Error>",
            self.code(),
            xml_escape(&self.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_the_code_and_the_resource() {
        let body = S3Error::NoSuchKey {
            key: "a&b<c".into(),
        }
        .body("R1");
        assert!(
            body.contains("<Code>NoSuchKey</Code>")
                && body.contains("<Key>a&amp;b&lt;c</Key>")
                && body.contains("<RequestId>R1</RequestId>"),
            "{body}"
        );
        assert_eq!(S3Error::InvalidRange { size: 3 }.status().as_u16(), 416);
    }
}
