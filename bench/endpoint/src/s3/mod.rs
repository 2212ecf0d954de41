//! A read-mostly S3 over local files, for benchmarks that read DynamoDB exports faster than moto serves
//! them (moto's S3 manages about 20 MB/s).
//!
//! With `--s3-root DIR`, path-style requests `/{bucket}/{key}` map to the file `DIR/{bucket}/{key}`: a
//! bucket is a subdirectory of DIR, and each `/` in a key a directory level. Implemented:
//! - GetObject, whole (streamed) or one `Range` (206; 416 when unsatisfiable), with `If-Match` (412);
//! - HeadObject (the same checks, no body);
//! - ListObjectsV2 with `prefix`, `max-keys`, `start-after` and continuation tokens;
//! - PutObject of up to [`MAX_PUT_BYTES`](error::MAX_PUT_BYTES), written atomically (temporary file and
//!   rename), `aws-chunked` bodies included.
//!
//! Anything else answers `NotImplemented`. Signatures, credentials and checksums are not checked, and
//! ETags are not MD5s ([`files::etag`]).
//!
//! Submodules: [`files`] (keys to paths, ETags, listing and writing), [`conditions`] (`Range`,
//! `If-Match`), [`body`] (streaming a file range), [`list`] (ListObjectsV2), [`chunked`] (aws-chunked
//! uploads), [`error`] (S3's error answers).

pub mod body;
pub mod chunked;
pub mod conditions;
pub mod error;
pub mod files;
pub mod list;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderMap,
    HeaderValue, IF_MATCH, LAST_MODIFIED, RANGE,
};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;

pub use body::FileBody;
pub use error::S3Error;

use crate::config::ConfigError;
use crate::protocol::{Body, CONTROL_ROUTES, next_request_id};
use conditions::ByteRange;
use error::MAX_PUT_BYTES;
use files::{Bucket, Version, is_plain_segment};
use list::ListRequest;

/// The S3 side of an endpoint: a root directory whose subdirectories are buckets.
#[derive(Debug, Clone)]
pub struct S3 {
    root: PathBuf,
}

impl S3 {
    /// Serves the buckets under `root`, which must be a directory.
    pub fn open(root: &Path) -> Result<S3, ConfigError> {
        if !root.is_dir() {
            return Err(ConfigError::Spec(format!(
                "--s3-root {}: not a directory (each bucket is a subdirectory of it)",
                root.display()
            )));
        }
        Ok(S3 {
            root: root.to_path_buf(),
        })
    }

    /// Answers one S3 request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        // Both are cheap clones (the URI shares its buffer), kept for the error answer and its log line.
        let (method, uri) = (req.method().clone(), req.uri().clone());
        match self.dispatch(req).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(%method, %uri, code = e.code(), error = %e, "S3 error");
                error_response(&e, method == Method::HEAD)
            }
        }
    }

    async fn dispatch(&self, req: Request<Incoming>) -> Result<Response<Body>, S3Error> {
        let (bucket, key) = self.target(req.uri().path())?;
        match (req.method(), key) {
            (&Method::GET, None) => {
                let params = query_params(req.uri().query().unwrap_or(""))?;
                if !params.iter().any(|(k, v)| k == "list-type" && v == "2") {
                    return Err(not_implemented("GET on a bucket without list-type=2"));
                }
                list(bucket, ListRequest::from_query(&params)?).await
            }
            (&Method::GET | &Method::HEAD, Some(key)) => {
                let head = req.method() == Method::HEAD;
                get(bucket, key, req.headers(), head).await
            }
            (&Method::PUT, Some(_)) if req.headers().contains_key("x-amz-copy-source") => {
                Err(not_implemented("CopyObject"))
            }
            (&Method::PUT, Some(key)) => put(bucket, key, req).await,
            (method, key) => Err(not_implemented(&format!(
                "{method} on {}",
                if key.is_some() {
                    "an object"
                } else {
                    "a bucket"
                }
            ))),
        }
    }

    /// The bucket and, for an object request, the key that a request path names: `/bucket` or `/bucket/`
    /// names the bucket, `/bucket/k/e/y` the key `k/e/y`. Both are percent-decoded.
    fn target(&self, path: &str) -> Result<(Bucket, Option<String>), S3Error> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let (bucket, key) = match path.split_once('/') {
            Some((bucket, key)) => (bucket, (!key.is_empty()).then_some(key)),
            None => (path, None),
        };
        let bucket = decode(bucket)?;
        // `GET /stats` is the control route, so a bucket `stats` could not be listed: refuse it whole.
        if CONTROL_ROUTES.contains(&bucket.as_str()) {
            return Err(S3Error::InvalidBucketName(format!(
                "bucket name `{bucket}` is reserved: GET /{bucket} is a ddb-bench-endpoint control route"
            )));
        }
        if !is_plain_segment(&bucket) {
            return Err(S3Error::InvalidBucketName(format!(
                "bucket name `{bucket}` is not a directory name"
            )));
        }
        Ok((
            Bucket {
                dir: self.root.join(&bucket),
                name: bucket,
            },
            key.map(decode).transpose()?,
        ))
    }
}

/// GetObject or, with `head`, HeadObject.
async fn get(
    bucket: Bucket,
    key: String,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, S3Error> {
    let object = blocking(move || bucket.open(&key)).await?;
    let version = &object.version;
    if let Some(expected) = headers.get(IF_MATCH)
        && !expected
            .to_str()
            .is_ok_and(|v| conditions::if_match(v, &version.etag))
    {
        return Err(S3Error::PreconditionFailed);
    }
    let requested = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(ByteRange::parse);
    let (status, range) = match requested {
        None => (StatusCode::OK, 0..version.size),
        Some(r) => (
            StatusCode::PARTIAL_CONTENT,
            r.resolve(version.size)
                .ok_or(S3Error::InvalidRange { size: version.size })?,
        ),
    };
    let mut response = Response::new(if head {
        Either::Left(Full::new(Bytes::new()))
    } else {
        Either::Right(FileBody::new(object.file, range.clone()))
    });
    *response.status_mut() = status;
    let headers = response.headers_mut();
    version_headers(headers, version);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("binary/octet-stream"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(
            CONTENT_RANGE,
            header_value(&format!(
                "bytes {}-{}/{}",
                range.start,
                range.end - 1,
                version.size
            )),
        );
    }
    Ok(with_request_id(response))
}

async fn list(bucket: Bucket, request: ListRequest) -> Result<Response<Body>, S3Error> {
    let name = bucket.name.clone();
    let (request, page) = blocking(move || {
        let page = request.page(&bucket)?;
        Ok((request, page))
    })
    .await?;
    Ok(xml_response(StatusCode::OK, request.xml(&name, &page)))
}

/// PutObject: the body is collected (at most [`MAX_PUT_BYTES`]), decoded if aws-chunked, then written.
async fn put(
    bucket: Bucket,
    key: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, S3Error> {
    let chunked = req
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(chunked::is_aws_chunked);
    let decoded_length = req
        .headers()
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let raw = match Limited::new(req.into_body(), MAX_PUT_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(S3Error::EntityTooLarge);
        }
        Err(e) => return Err(S3Error::IncompleteBody(format!("reading the body: {e}"))),
    };
    let bytes = if chunked {
        let payload = chunked::decode(&raw).map_err(S3Error::IncompleteBody)?;
        if decoded_length.is_some_and(|n| n != payload.len()) {
            return Err(S3Error::IncompleteBody(format!(
                "x-amz-decoded-content-length is {decoded_length:?} but the chunks hold {} bytes",
                payload.len()
            )));
        }
        Bytes::from(payload)
    } else {
        raw
    };
    let version = blocking(move || bucket.put(&key, &bytes)).await?;
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    response
        .headers_mut()
        .insert(ETAG, header_value(&version.etag));
    Ok(with_request_id(response))
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, S3Error> + Send + 'static,
) -> Result<T, S3Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| S3Error::Internal(format!("a file task failed: {e}")))?
}

fn version_headers(headers: &mut HeaderMap, version: &Version) {
    headers.insert(ETAG, header_value(&version.etag));
    headers.insert(
        LAST_MODIFIED,
        header_value(&httpdate::fmt_http_date(version.modified)),
    );
}

/// An error as S3 answers it. HEAD answers carry no body, so there only the status tells.
fn error_response(e: &S3Error, head: bool) -> Response<Body> {
    let id = next_request_id();
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(e.body(&id))
    };
    let mut response = Response::new(Either::Left(Full::new(body)));
    *response.status_mut() = e.status();
    let headers = response.headers_mut();
    headers.insert("x-amz-request-id", header_value(&id));
    if !head {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    }
    if let S3Error::InvalidRange { size } = e {
        headers.insert(CONTENT_RANGE, header_value(&format!("bytes */{size}")));
    }
    response
}

fn xml_response(status: StatusCode, xml: String) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(xml))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    with_request_id(response)
}

fn with_request_id(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert("x-amz-request-id", header_value(&next_request_id()));
    response
}

/// A header value from text this module built (digits, hex, quotes, dates), which is always valid.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("a visible-ASCII header value")
}

fn not_implemented(what: &str) -> S3Error {
    S3Error::NotImplemented(format!(
        "{what}: ddb-bench-endpoint implements GetObject, HeadObject, ListObjectsV2 and PutObject only"
    ))
}

fn decode(text: &str) -> Result<String, S3Error> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| S3Error::InvalidArgument(format!("`{text}` is not percent-encoded UTF-8")))
}

/// The query's `name=value` pairs, percent-decoded (a name without `=` has an empty value).
fn query_params(query: &str) -> Result<Vec<(String, String)>, S3Error> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Text escaped for an XML element.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_bucket_and_maybe_a_key() {
        let s3 = S3 {
            root: PathBuf::from("/r"),
        };
        let (bucket, key) = s3.target("/exports/AWSDynamoDB/a%20b%2Bc.json.gz").unwrap();
        assert_eq!(bucket.dir, PathBuf::from("/r/exports"));
        assert_eq!(key.as_deref(), Some("AWSDynamoDB/a b+c.json.gz"));
        for bucket_only in ["/exports", "/exports/"] {
            assert_eq!(s3.target(bucket_only).unwrap().1, None);
        }
        for bad in ["/stats/x", "/../x", "/%2E%2E/x", "/a%2Fb/x"] {
            assert!(
                matches!(s3.target(bad), Err(S3Error::InvalidBucketName(_))),
                "{bad}"
            );
        }
        assert_eq!(
            query_params("list-type=2&prefix=a%2Fb&fetch-owner").unwrap(),
            [
                ("list-type".to_owned(), "2".to_owned()),
                ("prefix".to_owned(), "a/b".to_owned()),
                ("fetch-owner".to_owned(), String::new()),
            ]
        );
    }
}
