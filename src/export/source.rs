//! Reading export objects from S3.
//!
//! A data file streams as a sequence of ranged GETs with `read_ahead` parts in flight, so memory per file
//! is bounded by `read_ahead × part_size` whatever the object size. Every ranged GET carries `If-Match`
//! with the ETag seen at the start, so an object replaced mid-read fails loudly instead of mixing versions.
//! The MD5 of the compressed bytes is computed as they are consumed ([`HashingReader`]).

use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt, stream};
use md5::{Digest, Md5};

use crate::aws::error::sdk_error;
use crate::budget::{ByteBudget, Share};
use crate::error::{Error, Result};

/// Extra attempts for a ranged GET whose body fails mid-stream.
const BODY_ATTEMPTS: u32 = 3;

/// Size and version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// As S3 returns it (quoted); see [`bare_etag`].
    pub etag: Option<String>,
}

/// An ETag without the quotes S3 puts around it, so that ETags from S3's headers, from manifests and
/// from checkpoints compare equal.
pub fn bare_etag(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// The read seam over S3. Production code uses [`S3Reader`].
pub trait ObjectReader: Send + Sync {
    /// A whole small object (a manifest), or `None` if it does not exist.
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>>;
    /// HeadObject, or `None` if it does not exist.
    fn head<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObjectInfo>>>;
    /// Bytes `range` of a version of an object (`if_match` is its ETag).
    fn get_range<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        range: Range<u64>,
        if_match: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Bytes>>;
    /// The folders directly under `prefix` (which ends with `/` or is empty), as full prefixes ending with
    /// `/`, sorted: ListObjectsV2 with the delimiter `/`.
    fn list_folders<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>>>;
}

#[derive(Clone)]
pub struct S3Reader {
    client: aws_sdk_s3::Client,
}

impl S3Reader {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Reader { client }
    }
}

impl ObjectReader for S3Reader {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Box::pin(async move {
            let out = match self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    return Ok(None);
                }
                Err(e) => return Err(sdk_error(format!("GetObject s3://{bucket}/{key}"), &e)),
            };
            let body = out.body.collect().await.map_err(|e| Error::Aws {
                operation: format!("GetObject s3://{bucket}/{key}"),
                message: format!("reading the body failed: {e}"),
                retryable: true,
            })?;
            Ok(Some(body.into_bytes()))
        })
    }

    fn head<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObjectInfo>>> {
        Box::pin(async move {
            match self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
            {
                Ok(out) => Ok(Some(ObjectInfo {
                    size: out.content_length().unwrap_or(0).max(0) as u64,
                    etag: out.e_tag().map(str::to_owned),
                })),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
                Err(e) => Err(sdk_error(format!("HeadObject s3://{bucket}/{key}"), &e)),
            }
        })
    }

    fn get_range<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        range: Range<u64>,
        if_match: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            let operation = || {
                format!(
                    "GetObject s3://{bucket}/{key} bytes {}-{}",
                    range.start,
                    range.end - 1
                )
            };
            // The SDK retries a request that fails; a body that breaks mid-stream (connection reset after
            // the headers) is retried here. If-Match keeps every attempt on the same object version.
            let mut attempt = 0;
            let bytes = loop {
                let out = self
                    .client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .range(format!("bytes={}-{}", range.start, range.end - 1))
                    .set_if_match(if_match.map(str::to_owned))
                    .send()
                    .await
                    .map_err(|e| sdk_error(operation(), &e))?;
                match out.body.collect().await {
                    Ok(body) => break body.into_bytes(),
                    Err(e) if attempt < BODY_ATTEMPTS => {
                        attempt += 1;
                        tracing::debug!("{}: body read failed ({e}), retrying", operation());
                        tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                    }
                    Err(e) => {
                        return Err(Error::Aws {
                            operation: operation(),
                            message: format!("reading the body failed {} times: {e}", attempt + 1),
                            retryable: true,
                        });
                    }
                }
            };
            if bytes.len() as u64 != range.end - range.start {
                return Err(Error::Aws {
                    operation: operation(),
                    message: format!(
                        "returned {} bytes instead of {}; the object changed during the restore",
                        bytes.len(),
                        range.end - range.start
                    ),
                    retryable: false,
                });
            }
            Ok(bytes)
        })
    }

    fn list_folders<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(self.folders(bucket, prefix))
    }
}

impl S3Reader {
    async fn folders(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut folders = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| sdk_error(format!("ListObjectsV2 s3://{bucket}/{prefix}"), &e))?;
            folders.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
        }
        folders.sort();
        Ok(folders)
    }
}

/// One ranged GET's bytes, with its share of the read budget, given back when the part is dropped.
pub struct Part {
    pub bytes: Bytes,
    budget: Share,
}

/// The object's bytes in order, fetched as `part_size` ranges with up to `read_ahead` requests in flight,
/// within `budget`. Parts take their share of the budget in order, so a later part never holds budget
/// that an earlier one of the same file waits for.
pub fn ranged_parts(
    reader: Arc<dyn ObjectReader>,
    bucket: String,
    key: String,
    info: ObjectInfo,
    part_size: u64,
    read_ahead: usize,
    budget: ByteBudget,
) -> impl Stream<Item = Result<Part>> + Send + 'static {
    let part_size = part_size.max(1);
    let ranges = (0..info.size.div_ceil(part_size))
        .map(move |i| i * part_size..((i + 1) * part_size).min(info.size));
    let shared = Arc::new((bucket, key, info.etag));
    stream::iter(ranges)
        .map(move |range| {
            let reader = reader.clone();
            let shared = shared.clone();
            let budget = budget.clone();
            async move {
                let share = budget.take(range.end - range.start).await;
                let (bucket, key, etag) = &*shared;
                let bytes = reader
                    .get_range(bucket, key, range, etag.as_deref())
                    .await?;
                Ok(Part {
                    bytes,
                    budget: share,
                })
            }
        })
        .buffered(read_ahead.max(1))
}

/// A blocking [`Read`] over chunks arriving on a channel, hashing and counting the bytes it hands out.
/// A source failure is kept in `failure` and surfaces as an I/O error of kind `Other`.
pub struct HashingReader {
    rx: tokio::sync::mpsc::Receiver<Result<Part>>,
    /// What is left of the part being read, which keeps its share of the budget until it is all read.
    current: Bytes,
    share: Option<Share>,
    md5: Md5,
    bytes: u64,
    failure: Arc<Mutex<Option<Error>>>,
}

impl HashingReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Result<Part>>) -> Self {
        HashingReader {
            rx,
            current: Bytes::new(),
            share: None,
            md5: Md5::new(),
            bytes: 0,
            failure: Arc::default(),
        }
    }

    /// Where a source error is kept when `read` fails because of it.
    pub fn failure(&self) -> Arc<Mutex<Option<Error>>> {
        self.failure.clone()
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Reads whatever is left (bytes after the gzip stream still count towards the object's MD5) and
    /// returns the base64 MD5 of everything read.
    pub fn finish(mut self) -> std::io::Result<(String, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((BASE64.encode(self.md5.finalize()), self.bytes))
    }
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            self.share = None;
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(part)) => {
                    self.md5.update(&part.bytes);
                    self.bytes += part.bytes.len() as u64;
                    self.current = part.bytes;
                    self.share = Some(part.budget);
                }
                Some(Err(e)) => {
                    let text = e.to_string();
                    *self.failure.lock().expect("failure slot") = Some(e);
                    return Err(std::io::Error::other(text));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        if self.current.is_empty() {
            // Read whole: its share of the budget goes back now, not at the next read.
            self.share = None;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::objects::MemoryObjects;

    #[tokio::test]
    async fn parts_reassemble_in_order_and_hash() {
        let data: Bytes = (0..10_007u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let reader: Arc<dyn ObjectReader> =
            Arc::new(MemoryObjects([("k".to_string(), data.clone())].into()));
        let info = reader.head("b", "k").await.unwrap().unwrap();
        let budget = ByteBudget::new(2500);
        let parts: Vec<Part> = ranged_parts(
            reader.clone(),
            "b".into(),
            "k".into(),
            info.clone(),
            1000,
            3,
            budget.clone(),
        )
        .map(|p| p.unwrap())
        .take(2)
        .collect()
        .await;
        // Two parts held: the third would not fit in what is left of the budget.
        assert_eq!(budget.available(), 500);
        drop(parts);
        assert_eq!(budget.available(), 2500);
        let parts: Vec<Part> = ranged_parts(
            reader,
            "b".into(),
            "k".into(),
            info,
            1000,
            3,
            ByteBudget::new(1_000_000),
        )
        .map(|p| p.unwrap())
        .collect()
        .await;
        assert_eq!(parts.len(), 11);
        assert_eq!(
            parts
                .iter()
                .map(|p| &p.bytes[..])
                .collect::<Vec<_>>()
                .concat(),
            data.to_vec()
        );

        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for p in parts {
            tx.send(Ok(p)).await.unwrap();
        }
        drop(tx);
        let (md5, n) =
            tokio::task::spawn_blocking(move || HashingReader::new(rx).finish().unwrap())
                .await
                .unwrap();
        assert_eq!(n, 10_007);
        assert_eq!(md5, BASE64.encode(Md5::digest(&data)));
    }
}
