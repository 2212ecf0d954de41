//! "Process this file from this offset": the one function that the local runner, the worker Lambda and the
//! queue worker all call.
//!
//! Per file, three stages run concurrently and are connected by bounded channels:
//!
//! 1. ranged GETs with `read_ahead` parts in flight ([`crate::export::source::ranged_parts`]);
//! 2. a blocking thread that hashes the compressed bytes, gunzips them, splits lines with their offsets,
//!    decodes each line, checks its key and cuts batches (at most `batch_size` requests and
//!    [`MAX_BATCH_BYTES`] of lines, or one longer line alone);
//! 3. this task, which keeps up to `inflight_batches` BatchWriteItem calls in flight and advances the
//!    file's low-watermark as they are acknowledged.
//!
//! Memory is bounded by two budgets shared by all files ([`ByteBudget`]), whatever the file sizes and the
//! number of files: the read budget for compressed parts fetched ahead, and the batch budget for the
//! batches cut and not yet acknowledged (a call in flight also holds its batch as the request body). Per
//! file there is besides the batch being cut (at most [`MAX_BATCH_BYTES`] of lines, or one longer line), one
//! line of at most [`MAX_LINE_BYTES`], and the gzip and line buffers. Budgets count request bytes; a
//! batch's buffer of small requests can be up to twice that as it grows.

pub mod batcher;
mod decoder;
pub mod watermark;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, pin_mut};
use md5::{Digest, Md5};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::aws::error::is_authorization_code;
use crate::budget::ByteBudget;
use crate::error::{DataLocation, Error, Result};
use crate::export::manifest::{DataFile, ExportType};
use crate::export::source::{
    HashingReader, ObjectInfo, ObjectReader, Part, bare_etag, ranged_parts,
};
use crate::item::WriteOp;
use crate::item::key::KeySchema;
use crate::item::wire::RawWrite;
use crate::write::retry::{RetryPolicy, WriteFailure, write_all};
use crate::write::stats::WriteStats;
use crate::write::{AttemptError, AttemptOutcome, BatchSize, BatchWriter};

use self::batcher::Batch;
use self::decoder::{DecodeEnd, Decoder};
use self::watermark::{FilePosition, Watermark};

/// BatchWriteItem's request-size limit is 16 MB. Batches are cut at 4 MiB of lines, well under it: a file's
/// batch being cut is outside the batch budget (see [`Settings::batch_budget`]), and 4 MiB still takes ten
/// items near 400 KB per call, where each call's cost is its payload, not the call.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Longest line accepted. An item is at most 400 KB; its JSON (base64 binaries, escaped strings) with both
/// images of an incremental record stays far below this. Anything longer is not export data, and reading it
/// whole would make memory depend on the input.
pub const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// BatchWriteItem calls in flight per data file by default. One large file needs 8 to keep up with its
/// decoder (BENCHMARKS.md: 4 left a 2 GB file at 2.1× `gzip -dc`'s wall time).
pub const DEFAULT_INFLIGHT_BATCHES: usize = 8;

/// Compressed bytes read ahead across all files by default: sixteen parts of the default size.
pub const DEFAULT_READ_BUDGET: u64 = 16 * 1024 * 1024;

/// Bytes of batches cut and not yet acknowledged, across all files, by default. Small items never reach it
/// (10 files × 17 batches of 25 items of 1 KB are 4 MB); items near DynamoDB's 400 KB limit make batches
/// of about 4 MiB (ten items), and without it 17 of them per file (BENCHMARKS.md: 8 such files peaked at
/// 1.2 GB when batches were cut at 16 MB and there was no budget).
pub const DEFAULT_BATCH_BUDGET: u64 = 24 * 1024 * 1024;

/// What to do with a data file whose object no longer has the ETag DynamoDB wrote (an export copied with
/// `aws s3 cp`, or an object replaced since): its bytes are not known to be the exported ones until their
/// MD5 is checked (docs/integrity.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CopiedObjects {
    /// Read the whole object and check its MD5 before the first write: nothing is written from bytes that
    /// fail it, for one more read of the compressed object.
    #[default]
    VerifyFirst,
    /// Write while reading, and check the MD5 at the end: no extra read, but an object that fails it has
    /// had its lines written, and keys that the right object never writes again stay wrong.
    VerifyWhileWriting,
}

/// Tuning knobs shared by every file of a restore.
#[derive(Debug, Clone)]
pub struct Settings {
    pub batch_size: BatchSize,
    pub read_ahead: usize,
    pub part_size: u64,
    pub inflight_batches: usize,
    pub retry: RetryPolicy,
    /// Learn the table's write capacity from throttling and pace writes just under it
    /// ([`crate::write::pace`]).
    pub adaptive_rate: bool,
    /// Compressed bytes read ahead, shared by every file processed with these settings (clones share it).
    pub read_budget: ByteBudget,
    /// Bytes of batches cut and not yet acknowledged, shared like `read_budget`: a decoder waits for it
    /// before it hands on a batch.
    pub batch_budget: ByteBudget,
    pub copied_objects: CopiedObjects,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch_size: BatchSize::MAX,
            read_ahead: 5,
            part_size: 1024 * 1024,
            inflight_batches: DEFAULT_INFLIGHT_BATCHES,
            retry: RetryPolicy::default(),
            adaptive_rate: true,
            read_budget: ByteBudget::new(DEFAULT_READ_BUDGET),
            batch_budget: ByteBudget::new(DEFAULT_BATCH_BUDGET),
            copied_objects: CopiedObjects::default(),
        }
    }
}

/// Everything a file needs that does not change from file to file.
#[derive(Clone)]
pub struct Engine {
    pub objects: Arc<dyn ObjectReader>,
    /// `None` for a dry run: every line is read, verified and decoded, and nothing is sent.
    pub writer: Option<Arc<dyn BatchWriter>>,
    pub table: String,
    pub key: KeySchema,
    pub settings: Settings,
    pub stats: Arc<WriteStats>,
}

/// The file to process and the export it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct FileRef<'a> {
    pub export_id: &'a str,
    pub export_type: ExportType,
    pub bucket: &'a str,
    pub file: &'a DataFile,
}

/// A data file's object as [`Engine::open`] found it, and where its restore starts.
#[derive(Debug, Clone)]
pub struct OpenFile {
    info: ObjectInfo,
    start: FilePosition,
    restarted: bool,
}

impl OpenFile {
    /// The object's ETag without quotes: what a checkpoint records with the file's position.
    pub fn etag(&self) -> Option<&str> {
        self.info.etag.as_deref().map(bare_etag)
    }

    /// Where the file starts: the position it was opened at, or zero if it was restarted.
    pub fn start(&self) -> FilePosition {
        self.start
    }

    /// The position it was opened at was recorded for another version of the object (or for an unknown
    /// one), so the file starts again from its first line.
    pub fn restarted(&self) -> bool {
        self.restarted
    }

    /// The object still has the ETag DynamoDB wrote, so its bytes are the exported ones.
    fn as_exported(&self, file: &DataFile) -> bool {
        file.etag.is_some() && file.etag.as_deref() == self.etag()
    }
}

/// How a call to [`Engine::process_file`] ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOutcome {
    /// The acknowledged position; equal to the end of the file when `complete`.
    pub position: FilePosition,
    /// The whole file was written and its MD5 and item count verified.
    pub complete: bool,
    pub compressed_bytes: u64,
}

impl Engine {
    /// Finds a data file's object and decides where its restore starts: at `position` (published earlier
    /// for this file, or zero) if `etag` (recorded with it) is the object's ETag, else from the first line,
    /// since lines below `position` were written from other bytes.
    pub async fn open(
        &self,
        f: FileRef<'_>,
        position: FilePosition,
        etag: Option<&str>,
    ) -> Result<OpenFile> {
        let info = self.objects.head(f.bucket, &f.file.key).await?.ok_or_else(|| {
            Error::FileIntegrity {
                export: f.export_id.to_owned(),
                file: f.file.key.clone(),
                message: format!(
                    "data file s3://{}/{} is listed in manifest-files.json but does not exist: the export \
                     is incomplete or was copied partially",
                    f.bucket, f.file.key
                ),
            }
        })?;
        let mut open = OpenFile {
            info,
            start: position,
            restarted: false,
        };
        if position != FilePosition::default() && etag.map(bare_etag) != open.etag() {
            tracing::warn!(
                export = f.export_id,
                file = f.file.key,
                "the checkpoint's position (byte {}) was recorded for object version {}, but the object is now \
                 {}: restarting the file from its first line",
                position.offset,
                etag.unwrap_or("(not recorded)"),
                open.etag().unwrap_or("(no ETag)"),
            );
            open.start = FilePosition::default();
            open.restarted = true;
        }
        Ok(open)
    }

    /// Restores one data file from where `open` starts it.
    ///
    /// The start and then the acknowledged position are published on `progress` every time it moves;
    /// callers persist it when they like, with the object's ETag. An object that no longer has the ETag
    /// DynamoDB wrote is read and MD5-checked whole before the first write (unless the settings say
    /// [`CopiedObjects::VerifyWhileWriting`]). When `stop` is cancelled, reading stops at the next line,
    /// batches already sent are awaited, and the call returns with `complete == false`. Dropping the
    /// future instead abandons in-flight batches, which is also safe: they are above the published
    /// position.
    pub async fn process_file(
        &self,
        f: FileRef<'_>,
        open: &OpenFile,
        progress: &watch::Sender<FilePosition>,
        stop: &CancellationToken,
    ) -> Result<FileOutcome> {
        progress.send_replace(open.start);
        if self.writer.is_some()
            && self.settings.copied_objects == CopiedObjects::VerifyFirst
            && !open.as_exported(f.file)
        {
            self.verify_first(f, open, stop).await?;
        }
        self.process(f, open, progress, stop, None).await
    }

    /// The object's bytes at the version `info` names, as ranged GETs within the settings' read budget.
    fn parts(
        &self,
        f: FileRef<'_>,
        info: ObjectInfo,
    ) -> impl futures::Stream<Item = Result<Part>> + Send + 'static {
        ranged_parts(
            self.objects.clone(),
            f.bucket.to_owned(),
            f.file.key.clone(),
            info,
            self.settings.part_size,
            self.settings.read_ahead,
            self.settings.read_budget.clone(),
        )
    }

    /// Reads the whole object, at the version `open` found, and checks its MD5 against the manifest's.
    async fn verify_first(
        &self,
        f: FileRef<'_>,
        open: &OpenFile,
        stop: &CancellationToken,
    ) -> Result<()> {
        tracing::info!(
            export = f.export_id,
            file = f.file.key,
            "object ETag {} is not the {} DynamoDB wrote: checking its MD5 before writing",
            open.etag().unwrap_or("(none)"),
            f.file.etag.as_deref().unwrap_or("(not in the manifest)"),
        );
        let parts = self.parts(f, open.info.clone());
        pin_mut!(parts);
        let mut md5 = Md5::new();
        while let Some(part) = parts.next().await {
            if stop.is_cancelled() {
                return Ok(());
            }
            md5.update(&part?.bytes);
        }
        let md5 = BASE64.encode(md5.finalize());
        if md5 != f.file.md5 {
            return Err(Error::FileIntegrity {
                export: f.export_id.to_owned(),
                file: f.file.key.clone(),
                message: format!(
                    "MD5 mismatch, found before any write: manifest-files.json says {} but the object has \
                     {md5} (ETag {}, not the {} DynamoDB wrote); the object changed after the export or \
                     belongs to another export",
                    f.file.md5,
                    open.etag().unwrap_or("(none)"),
                    f.file.etag.as_deref().unwrap_or("(not in the manifest)"),
                ),
            });
        }
        Ok(())
    }

    /// Reads, decodes and key-checks the first `lines` lines of a file without writing anything: the
    /// pre-flight check that an export fits the table before the first write.
    pub async fn check_sample(&self, f: FileRef<'_>, lines: u64) -> Result<()> {
        let dry = Engine {
            writer: None,
            ..self.clone()
        };
        let (progress, _) = watch::channel(FilePosition::default());
        let open = dry.open(f, FilePosition::default(), None).await?;
        dry.process(f, &open, &progress, &CancellationToken::new(), Some(lines))
            .await
            .map(|_| ())
    }

    /// [`Engine::check_sample`] that also returns the writes of the first `lines` lines (fewer if the file
    /// is shorter), for `ddb-pitr validate`'s size estimates. The same read, decode and key-check path runs;
    /// batches of one request go to an in-memory collector instead of a table, so nothing is sent.
    pub async fn sample_ops(&self, f: FileRef<'_>, lines: u64) -> Result<Vec<WriteOp>> {
        #[derive(Default)]
        struct Collect(Mutex<Vec<RawWrite>>);
        impl BatchWriter for Collect {
            fn write_batch<'a>(
                &'a self,
                _table: &'a str,
                requests: &'a [RawWrite],
            ) -> BoxFuture<'a, std::result::Result<AttemptOutcome, AttemptError>> {
                self.0.lock().expect("sample").extend_from_slice(requests);
                Box::pin(async { Ok(AttemptOutcome::default()) })
            }
        }

        let collect = Arc::new(Collect::default());
        let sampler = Engine {
            writer: Some(collect.clone()),
            stats: Arc::default(),
            settings: Settings {
                batch_size: BatchSize::new(1).expect("1 is a batch size"),
                ..self.settings.clone()
            },
            ..self.clone()
        };
        let (progress, _) = watch::channel(FilePosition::default());
        // The decoder stops *before* reading line `limit + 1` and drops the request it has not cut yet, which
        // with batches of one is the last line read: read one line more than wanted.
        let open = sampler.open(f, FilePosition::default(), None).await?;
        sampler
            .process(
                f,
                &open,
                &progress,
                &CancellationToken::new(),
                Some(lines.saturating_add(1)),
            )
            .await?;
        let requests = std::mem::take(&mut *collect.0.lock().expect("sample"));
        Ok(requests
            .into_iter()
            .take(usize::try_from(lines).unwrap_or(usize::MAX))
            .map(|r| r.to_op())
            .collect())
    }

    async fn process(
        &self,
        f: FileRef<'_>,
        open: &OpenFile,
        progress: &watch::Sender<FilePosition>,
        stop: &CancellationToken,
        line_limit: Option<u64>,
    ) -> Result<FileOutcome> {
        let (info, start) = (open.info.clone(), open.start);
        let info_size = info.size;
        let (chunk_tx, chunk_rx) = mpsc::channel(1);
        let parts = self.parts(f, info);
        let fetcher = AbortOnDrop(tokio::spawn(async move {
            pin_mut!(parts);
            while let Some(part) = parts.next().await {
                let failed = part.is_err();
                if chunk_tx.send(part).await.is_err() || failed {
                    break;
                }
            }
        }));

        let inflight_limit = self.settings.inflight_batches.max(1);
        // A batch is sent only while fewer than `span_limit` batches separate it from the oldest
        // unacknowledged one, and the decoder remembers the keys of the last `span_limit` batches it cut, so
        // a key written again is always seen while its earlier write may still be pending (see `Batcher`).
        let span_limit = 2 * inflight_limit + 1;
        let (batch_tx, mut batch_rx) = mpsc::channel::<Batch>(inflight_limit);
        let decoder = Decoder {
            export_id: f.export_id.to_owned(),
            file: f.file.clone(),
            export_type: f.export_type,
            key: self.key.clone(),
            batch_size: self.settings.batch_size.get(),
            recent_batches: span_limit,
            budget: self.settings.batch_budget.clone(),
            start,
            stop: stop.clone(),
            line_limit,
        };
        let decoding = tokio::task::spawn_blocking(move || {
            decoder.run(HashingReader::new(chunk_rx), batch_tx)
        });

        let mut watermark = Watermark::new(start);
        let mut inflight = FuturesUnordered::new();
        let mut failure: Option<Error> = None;
        // True once every batch the decoder cut has been sent: only then can the file be complete.
        let mut drained = false;
        loop {
            tokio::select! {
                biased;
                Some((seq, result)) = inflight.next(), if !inflight.is_empty() => {
                    if let Err(e) = self.acknowledge(&mut watermark, seq, result, progress, &f) {
                        failure = Some(e);
                        break;
                    }
                }
                // Asked to stop: send nothing more; batches already sent are awaited below.
                _ = stop.cancelled() => break,
                next = batch_rx.recv(), if inflight.len() < inflight_limit && watermark.span() < span_limit => {
                    let Some(batch) = next else {
                        drained = true;
                        break;
                    };
                    if batch.barrier {
                        while let Some((seq, result)) = inflight.next().await {
                            if let Err(e) = self.acknowledge(&mut watermark, seq, result, progress, &f) {
                                failure.get_or_insert(e);
                            }
                        }
                        if failure.is_some() || stop.is_cancelled() {
                            break;
                        }
                    }
                    let seq = watermark.push(batch.end);
                    inflight.push(async move { (seq, self.write(batch).await) });
                }
            }
        }
        // Stop the decoder (if it is still running) and let the batches already sent finish, so the
        // published position covers everything DynamoDB acknowledged. Cancelling the fetch unblocks a decoder
        // waiting for a slow GET; what it then reports is moot, the file is not complete.
        drop(batch_rx);
        if !drained {
            drop(fetcher);
        }
        while let Some((seq, result)) = inflight.next().await {
            if let Err(e) = self.acknowledge(&mut watermark, seq, result, progress, &f) {
                failure.get_or_insert(e);
            }
        }
        let decoded = decoding.await.expect("decoder thread panicked");
        if let Some(e) = failure {
            return Err(e);
        }
        let complete = match decoded {
            Ok(end) => matches!(end, DecodeEnd::Finished) && drained,
            Err(Error::FileIntegrity {
                export,
                file,
                message,
            }) if watermark.position().lines > start.lines && (drained || !stop.is_cancelled()) => {
                let written = watermark.position().lines - start.lines;
                return Err(Error::FileIntegrity {
                    export,
                    file,
                    message: format!(
                        "{message}; {written} lines of this object were written before the check failed: \
                         restoring the right object rewrites every key it holds, but keys only the wrong \
                         one held stay in the table (docs/integrity.md)"
                    ),
                });
            }
            Err(e) if drained || !stop.is_cancelled() => return Err(e),
            Err(_) => false,
        };
        Ok(FileOutcome {
            position: watermark.position(),
            complete,
            compressed_bytes: if complete { info_size } else { 0 },
        })
    }

    fn acknowledge(
        &self,
        watermark: &mut Watermark,
        seq: u64,
        result: std::result::Result<(), BatchError>,
        progress: &watch::Sender<FilePosition>,
        f: &FileRef<'_>,
    ) -> Result<()> {
        match result {
            Ok(()) => {
                if let Some(position) = watermark.complete(seq) {
                    progress.send_replace(position);
                }
                Ok(())
            }
            Err(e) => Err(e.into_error(self, f)),
        }
    }

    async fn write(&self, batch: Batch) -> std::result::Result<(), BatchError> {
        // The batch's share of the budget goes back when this call ends, with the batch.
        let _share = batch.share;
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        let first_line = batch.lines[0];
        let handed = Instant::now();
        let failure = match write_all(
            writer.as_ref(),
            &self.table,
            batch.requests,
            &self.settings.retry,
            &self.stats,
        )
        .await
        {
            Ok(()) => {
                let done = Instant::now();
                self.stats.first_write.get_or_init(|| done);
                self.stats.batch_wait.record(done - handed);
                return Ok(());
            }
            Err(failure) => failure,
        };
        match failure {
            WriteFailure::Exhausted {
                attempts,
                last_error,
            } => Err(BatchError::Exhausted {
                line: first_line,
                attempts,
                last_error,
            }),
            WriteFailure::Rejected {
                message,
                pending,
                original,
            } => {
                if !message.contains("ValidationException") {
                    return Err(BatchError::Rejected {
                        line: None,
                        message,
                    });
                }
                if !original || pending.len() == 1 {
                    let line = (pending.len() == 1 && original).then_some(first_line);
                    return Err(BatchError::Rejected { line, message });
                }
                // Find the request DynamoDB refuses by sending each alone; writes are idempotent.
                for (request, line) in pending.into_iter().zip(batch.lines) {
                    match write_all(
                        writer.as_ref(),
                        &self.table,
                        vec![request],
                        &self.settings.retry,
                        &self.stats,
                    )
                    .await
                    {
                        Ok(()) => {}
                        Err(WriteFailure::Rejected { message, .. }) => {
                            return Err(BatchError::Rejected {
                                line: Some(line),
                                message,
                            });
                        }
                        Err(WriteFailure::Exhausted {
                            attempts,
                            last_error,
                        }) => {
                            return Err(BatchError::Exhausted {
                                line,
                                attempts,
                                last_error,
                            });
                        }
                    }
                }
                Err(BatchError::Rejected {
                    line: None,
                    message,
                })
            }
        }
    }
}

enum BatchError {
    Exhausted {
        line: (u64, u64),
        attempts: u32,
        last_error: String,
    },
    Rejected {
        line: Option<(u64, u64)>,
        message: String,
    },
}

impl BatchError {
    fn into_error(self, engine: &Engine, f: &FileRef<'_>) -> Error {
        let location = |(line, offset): (u64, u64)| DataLocation {
            export_id: f.export_id.to_owned(),
            file: f.file.key.clone(),
            line,
            offset,
        };
        match self {
            BatchError::Exhausted {
                line,
                attempts,
                last_error,
            } => Error::WritesExhausted {
                table: engine.table.clone(),
                location: location(line),
                attempts,
                last_error,
            },
            BatchError::Rejected {
                line: Some(line),
                message,
            } => Error::Data {
                location: location(line),
                message: format!("DynamoDB rejected the write: {message}"),
            },
            BatchError::Rejected {
                line: None,
                message,
            } if message.split(':').next().is_some_and(is_authorization_code) => Error::Denied {
                operation: format!("BatchWriteItem on {} for file {}", engine.table, f.file.key),
                message,
            },
            BatchError::Rejected {
                line: None,
                message,
            } => Error::Aws {
                operation: format!("BatchWriteItem on {} for file {}", engine.table, f.file.key),
                message,
                retryable: false,
            },
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::item::Item;
    use crate::item::key::{KeyAttr, KeyType};
    use crate::testing::objects::MemoryObjects;
    use crate::testing::writers::{FakeTable, Latency};

    /// The item a put writes.
    fn put_item(r: &RawWrite) -> Item {
        match r.to_op() {
            WriteOp::Put(item) => item,
            WriteOp::Delete(_) => panic!("puts only"),
        }
    }

    /// The partition keys (strings) of a batch of puts.
    fn pks(requests: &[RawWrite]) -> Vec<String> {
        requests
            .iter()
            .map(|r| put_item(r)["pk"].as_s().unwrap().clone())
            .collect()
    }

    /// Records what it writes; completes calls in a shuffled order (random delays); from call `fail_from` on
    /// it throttles forever, and so does any batch holding line `poison`, while later batches still
    /// succeed; at call `stop_at` it cancels the token.
    fn recorder(
        fail_from: usize,
        poison: Option<usize>,
        stop_at: Option<(usize, CancellationToken)>,
    ) -> FakeTable {
        let poison = poison.map(|l| format!("k{l}"));
        let table = FakeTable::new(&["pk"])
            .with_latency(Latency::Random(Duration::ZERO..Duration::from_millis(3)))
            .with_throttle(move |call, requests| {
                call >= fail_from || pks(requests).iter().any(|k| Some(k) == poison.as_ref())
            });
        match stop_at {
            Some((call, stop)) => table.with_stop_at(call, stop),
            None => table,
        }
    }

    const LINES: usize = 300;

    fn line(i: usize) -> String {
        format!(
            r#"{{"Item":{{"pk":{{"S":"k{i}"}},"pad":{{"S":"{}"}}}}}}"#,
            "x".repeat(i % 17)
        )
    }

    /// The lines of file `f` of several: keys `f<f>k<i>`.
    fn file_lines(f: usize) -> Vec<String> {
        (1..=LINES)
            .map(|i| line(i).replace(&format!("\"k{i}\""), &format!("\"f{f}k{i}\"")))
            .collect()
    }

    /// Decompressed offset of the start of line `n` (1-based).
    fn offset_of(n: usize) -> u64 {
        (1..n).map(|i| line(i).len() as u64 + 1).sum()
    }

    fn setup(writer: Arc<dyn BatchWriter>) -> (Engine, DataFile) {
        setup_lines((1..=LINES).map(line).collect(), writer)
    }

    fn setup_lines(lines: Vec<String>, writer: Arc<dyn BatchWriter>) -> (Engine, DataFile) {
        let (engine, mut files) = setup_files(vec![lines], writer);
        (engine, files.remove(0))
    }

    /// An engine over one data file per element of `files` (`data/f.json.gz`, then `data/f1.json.gz`, …).
    fn setup_files(
        files: Vec<Vec<String>>,
        writer: Arc<dyn BatchWriter>,
    ) -> (Engine, Vec<DataFile>) {
        let mut objects = MemoryObjects::default();
        let files = files
            .iter()
            .enumerate()
            .map(|(i, lines)| {
                let suffix = if i == 0 { String::new() } else { i.to_string() };
                objects.add_lines(&format!("data/f{suffix}.json.gz"), lines)
            })
            .collect();
        let engine = Engine {
            objects: Arc::new(objects),
            writer: Some(writer),
            table: "t".into(),
            key: KeySchema {
                attrs: vec![KeyAttr {
                    name: "pk".into(),
                    ty: KeyType::S,
                }],
            },
            settings: Settings {
                batch_size: BatchSize::new(5).unwrap(),
                part_size: 97,
                read_ahead: 3,
                inflight_batches: 4,
                retry: RetryPolicy {
                    max_attempts: 2,
                    base: Duration::from_millis(1),
                    cap: Duration::from_millis(2),
                },
                adaptive_rate: false,
                copied_objects: CopiedObjects::VerifyFirst,
                // Less than the file: parts wait for earlier ones to be read.
                read_budget: ByteBudget::new(300),
                batch_budget: ByteBudget::new(DEFAULT_BATCH_BUDGET),
            },
            stats: Arc::default(),
        };
        (engine, files)
    }

    fn file_ref(file: &DataFile) -> FileRef<'_> {
        FileRef {
            export_id: "01-ab",
            export_type: ExportType::Full,
            bucket: "b",
            file,
        }
    }

    /// Runs `process_file` from `start`; returns its result and the last position it published.
    async fn run(
        engine: &Engine,
        file: &DataFile,
        start: FilePosition,
        stop: &CancellationToken,
    ) -> (Result<FileOutcome>, FilePosition) {
        let (tx, rx) = watch::channel(start);
        // Resumed positions were recorded for the object as it is (which has the manifest's ETag).
        let result = match engine
            .open(file_ref(file), start, file.etag.as_deref())
            .await
        {
            Ok(open) => engine.process_file(file_ref(file), &open, &tx, stop).await,
            Err(e) => Err(e),
        };
        let published = *rx.borrow();
        (result, published)
    }

    fn written_lines(table: &FakeTable) -> Vec<usize> {
        let mut lines: Vec<usize> = table
            .written_strings("pk")
            .iter()
            .map(|k| k[1..].parse().unwrap())
            .collect();
        lines.sort();
        lines
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn whole_file_is_written_once_and_verified() {
        let recorder = Arc::new(recorder(usize::MAX, None, None));
        let (engine, file) = setup(recorder.clone());
        let (out, published) = run(
            &engine,
            &file,
            FilePosition::default(),
            &CancellationToken::new(),
        )
        .await;
        let out = out.unwrap();
        assert!(out.complete);
        assert_eq!(
            out.position,
            FilePosition {
                offset: offset_of(LINES + 1),
                lines: LINES as u64,
                puts: LINES as u64,
                deletes: 0
            }
        );
        assert_eq!(published, out.position);
        assert_eq!(written_lines(&recorder), (1..=LINES).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exhausted_retries_leave_a_checkpoint_that_claims_only_written_lines() {
        let cases = [
            (0, None),
            (7, None),
            (41, None),
            (usize::MAX, Some(3)),
            (usize::MAX, Some(58)),
            (usize::MAX, Some(151)),
        ];
        for (fail_from, poison) in cases {
            let recorder = Arc::new(recorder(fail_from, poison, None));
            let (engine, file) = setup(recorder.clone());
            let (result, claimed) = run(
                &engine,
                &file,
                FilePosition::default(),
                &CancellationToken::new(),
            )
            .await;
            let err = result.unwrap_err();
            assert!(matches!(err, Error::WritesExhausted { .. }), "{err}");
            assert!(
                err.to_string()
                    .contains("export 01-ab, file data/f.json.gz, line "),
                "{err}"
            );
            let written = written_lines(&recorder);
            assert!(claimed.lines as usize <= written.len());
            assert!(
                (1..=claimed.lines as usize).all(|l| written.binary_search(&l).is_ok()),
                "claimed {claimed:?} but wrote {written:?}"
            );
            assert_eq!(claimed.offset, offset_of(claimed.lines as usize + 1));
            assert_eq!(claimed.puts, claimed.lines);
            if let Some(poison) = poison {
                assert!(
                    (claimed.lines as usize) < poison,
                    "the watermark passed the unwritten line {poison}: {claimed:?}"
                );
                assert!(
                    written.iter().any(|&l| l > poison),
                    "later batches were written, out of order"
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resuming_writes_only_what_follows_the_watermark() {
        let recorder = Arc::new(recorder(usize::MAX, None, None));
        let (engine, file) = setup(recorder.clone());
        let start = FilePosition {
            offset: offset_of(101),
            lines: 100,
            puts: 100,
            deletes: 0,
        };
        let out = run(&engine, &file, start, &CancellationToken::new())
            .await
            .0
            .unwrap();
        assert!(out.complete);
        assert_eq!(
            out.position.puts, LINES as u64,
            "counts continue from the checkpoint"
        );
        assert_eq!(written_lines(&recorder), (101..=LINES).collect::<Vec<_>>());

        for bad in [
            FilePosition {
                offset: offset_of(101) + 1,
                lines: 100,
                puts: 100,
                deletes: 0,
            },
            FilePosition {
                offset: offset_of(101),
                lines: 99,
                puts: 99,
                deletes: 0,
            },
            FilePosition {
                offset: offset_of(LINES + 1) + 10,
                lines: 400,
                puts: 400,
                deletes: 0,
            },
        ] {
            let err = run(&engine, &file, bad, &CancellationToken::new())
                .await
                .0
                .unwrap_err();
            assert!(
                err.to_string().contains("does not belong to this file"),
                "{err}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopping_waits_for_in_flight_batches_and_reports_partial() {
        let stop = CancellationToken::new();
        let recorder = Arc::new(recorder(usize::MAX, None, Some((10, stop.clone()))));
        let (engine, file) = setup(recorder.clone());
        let out = run(&engine, &file, FilePosition::default(), &stop)
            .await
            .0
            .unwrap();
        assert!(!out.complete);
        let written = written_lines(&recorder);
        assert!(written.len() < LINES, "stopped early");
        assert_eq!(
            out.position.lines as usize,
            written.len(),
            "every batch sent was awaited and acknowledged"
        );
        assert_eq!(written, (1..=written.len()).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_written_twice_far_apart_ends_with_the_later_image() {
        let mut lines: Vec<String> = (1..=LINES).map(line).collect();
        lines[0] = r#"{"Item":{"pk":{"S":"k1"},"pad":{"S":"old"}}}"#.into();
        lines[LINES - 1] = r#"{"Item":{"pk":{"S":"k1"},"pad":{"S":"new"}}}"#.into();
        // The first call holding k1 takes long, so later batches overtake it.
        let writer = Arc::new(FakeTable::new(&["pk"]).with_slow_once(
            |_, requests| pks(requests).iter().any(|k| k == "k1"),
            Duration::from_millis(300),
        ));
        let (engine, file) = setup_lines(lines, writer.clone());
        let out = run(
            &engine,
            &file,
            FilePosition::default(),
            &CancellationToken::new(),
        )
        .await
        .0
        .unwrap();
        assert!(out.complete);
        assert_eq!(
            writer.item(&["k1"]).unwrap()["pad"].as_s().unwrap(),
            "new",
            "the older image overwrote the newer one"
        );
    }

    /// BatchWriteItem refused for the credentials ends the file with `Denied` (retryable, with a bound, by
    /// the worker), never with a final rejection of the data; nothing unwritten is claimed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_credentials_end_the_file_as_denied() {
        let table = Arc::new(FakeTable::new(&["pk"]).with_script([Err(AttemptError::Rejected(
            "AccessDeniedException: User is not authorized to perform: dynamodb:BatchWriteItem (HTTP 400)"
                .into(),
        ))]));
        let (engine, file) = setup(table.clone());
        let (result, claimed) = run(
            &engine,
            &file,
            FilePosition::default(),
            &CancellationToken::new(),
        )
        .await;
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Denied { .. }), "{err:?}");
        assert!(err.is_retryable());
        assert!(
            err.to_string()
                .starts_with("BatchWriteItem on t for file data/f.json.gz: AccessDeniedException"),
            "{err}"
        );
        let written = written_lines(&table);
        assert!((1..=claimed.lines as usize).all(|l| written.binary_search(&l).is_ok()));
    }

    /// The manifest's file as it would be for another object: same ETag DynamoDB wrote, another MD5, so
    /// the object served (with that ETag) fails the check at its end.
    fn with_md5_of_another_object(mut file: DataFile) -> DataFile {
        file.md5 = ddb_pitr_synth::md5_base64(b"another object");
        file
    }

    /// An object that no longer has the ETag DynamoDB wrote is MD5-checked before the first write: a wrong
    /// one is refused with nothing written; a right one is written whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copied_object_is_verified_before_its_first_write() {
        let table = Arc::new(recorder(usize::MAX, None, None));
        let (engine, file) = setup(table.clone());
        let copied = DataFile {
            etag: Some("an-etag-of-another-upload-1".into()),
            ..with_md5_of_another_object(file.clone())
        };
        let start = FilePosition::default();
        let (result, claimed) = run(&engine, &copied, start, &CancellationToken::new()).await;
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::FileIntegrity { message, .. } if message.contains("found before any write")),
            "{err}"
        );
        assert_eq!(table.calls(), 0, "nothing written from the wrong object");
        assert_eq!(claimed, start);

        let copied = DataFile { etag: None, ..file };
        let (result, _) = run(&engine, &copied, start, &CancellationToken::new()).await;
        assert!(result.unwrap().complete);
        assert_eq!(written_lines(&table), (1..=LINES).collect::<Vec<_>>());
    }

    /// An object with the ETag DynamoDB wrote is not read twice; nor is a copied one with
    /// `VerifyWhileWriting`, whose failure then says how many of its lines were written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_first_pass_a_failed_check_says_what_was_written() {
        for (copied, mode) in [
            (false, CopiedObjects::VerifyFirst),
            (true, CopiedObjects::VerifyWhileWriting),
        ] {
            let table = Arc::new(recorder(usize::MAX, None, None));
            let (mut engine, file) = setup(table.clone());
            engine.settings.copied_objects = mode;
            let mut file = with_md5_of_another_object(file);
            if copied {
                file.etag = None;
            }
            let (result, claimed) = run(
                &engine,
                &file,
                FilePosition::default(),
                &CancellationToken::new(),
            )
            .await;
            let err = result.unwrap_err().to_string();
            assert!(err.contains("MD5 mismatch: "), "{err}");
            // Every batch of five but the last (which waits for the check) was written.
            assert_eq!(claimed.lines as usize, LINES - 5);
            assert!(
                err.contains(&format!(
                    "{} lines of this object were written",
                    claimed.lines
                )),
                "{err}"
            );
        }
    }

    /// A position recorded for another version of the object (or for an unknown one) is not trusted.
    #[tokio::test]
    async fn a_position_recorded_for_another_object_restarts_the_file() {
        let (engine, file) = setup(Arc::new(recorder(usize::MAX, None, None)));
        let at = FilePosition {
            offset: offset_of(11),
            lines: 10,
            puts: 10,
            deletes: 0,
        };
        let f = file_ref(&file);
        let same = engine.open(f, at, file.etag.as_deref()).await.unwrap();
        assert_eq!((same.start(), same.restarted()), (at, false));
        let quoted = format!("\"{}\"", file.etag.as_deref().unwrap());
        let same = engine.open(f, at, Some(&quoted)).await.unwrap();
        assert_eq!((same.start(), same.restarted()), (at, false));
        for other in [Some("another-1"), None] {
            let open = engine.open(f, at, other).await.unwrap();
            assert_eq!(
                (open.start(), open.restarted()),
                (FilePosition::default(), true)
            );
            assert_eq!(open.etag(), file.etag.as_deref());
        }
        let fresh = engine.open(f, FilePosition::default(), None).await.unwrap();
        assert!(!fresh.restarted());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_endless_line_is_refused_without_reading_it_whole() {
        let recorder = Arc::new(recorder(usize::MAX, None, None));
        let long = format!(
            r#"{{"Item":{{"pk":{{"S":"k"}},"pad":{{"S":"{}"}}}}}}"#,
            "x".repeat(MAX_LINE_BYTES as usize + 10)
        );
        let (engine, file) = setup_lines(vec![line(1), long], recorder);
        let err = run(
            &engine,
            &file,
            FilePosition::default(),
            &CancellationToken::new(),
        )
        .await
        .0
        .unwrap_err();
        let want = format!("line 2 (byte offset {})", offset_of(2));
        assert!(
            err.to_string().contains(&want) && err.to_string().contains("line longer than"),
            "{err}"
        );
    }

    /// Three files restored at once through one engine whose batch budget is `budget` bytes; every line of
    /// each is written once.
    async fn restore_three_files(budget: u64) -> Arc<FakeTable> {
        // Each call lets other files' calls start while it is in progress.
        let gauge = Arc::new(FakeTable::new(&["pk"]).with_latency(Latency::Yields(1..8)));
        let (mut engine, files) = setup_files((0..3).map(file_lines).collect(), gauge.clone());
        engine.settings.batch_budget = ByteBudget::new(budget);
        let stop = CancellationToken::new();
        let outcomes = futures::future::join_all(
            files
                .iter()
                .map(|file| run(&engine, file, FilePosition::default(), &stop)),
        )
        .await;
        for (outcome, _) in outcomes {
            assert!(outcome.unwrap().complete);
        }
        let mut written = gauge.written_strings("pk");
        written.sort();
        let mut expected: Vec<String> = (0..3)
            .flat_map(|f| (1..=LINES).map(move |i| format!("f{f}k{i}")))
            .collect();
        expected.sort();
        assert_eq!(written, expected, "every line written exactly once");
        assert_eq!(
            engine.settings.batch_budget.available(),
            budget,
            "every share given back"
        );
        gauge
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_of_all_files_stay_within_the_batch_budget() {
        // Batches of 5 of these lines are 300 to 370 bytes; 3 files with 4 calls in flight and 4 batches
        // queued each could hold 8 KB. The read budget (300 bytes, `setup_files`) is short too: decoders wait
        // for batch budget holding parts that other files' reads wait for.
        for budget in [800, DEFAULT_BATCH_BUDGET] {
            let gauge = restore_three_files(budget).await;
            assert!(gauge.max_bytes_in_progress() as u64 <= budget);
            // Batches stay whole: the budget makes them wait, not shrink.
            let calls = gauge.log();
            assert_eq!(calls.len(), 3 * LINES / 5, "{calls:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_larger_than_the_whole_batch_budget_go_one_at_a_time() {
        // Every batch takes all of a 10-byte budget: one call at a time across the three files, and no
        // file waits forever for another.
        let gauge = restore_three_files(10).await;
        let largest = gauge.log().iter().map(|c| c.bytes).max().unwrap();
        assert_eq!(gauge.max_bytes_in_progress(), largest);
    }

    /// Yields until `done`, failing the test after 10 s.
    async fn until(what: &str, done: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !done() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("still waiting for {what}"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_file_does_not_wait_for_budget_held_by_another_files_writes() {
        // Holds every call writing a key that starts with `f1` until released.
        let hold = Arc::new(
            FakeTable::new(&["pk"]).with_hold(|_, requests| pks(requests)[0].starts_with("f1")),
        );
        let (mut engine, files) = setup_files(vec![file_lines(0), file_lines(1)], hold.clone());
        // Every batch takes the whole budget.
        engine.settings.batch_budget = ByteBudget::new(10);
        let budget = engine.settings.batch_budget.clone();
        let spawn = |file: &DataFile, stop: &CancellationToken| {
            let (engine, file, stop) = (engine.clone(), file.clone(), stop.clone());
            tokio::spawn(async move { run(&engine, &file, FilePosition::default(), &stop).await })
        };
        let other = spawn(&files[1], &CancellationToken::new());
        until("file 1's first write", || hold.held()).await;
        let stop = CancellationToken::new();
        let stopped = spawn(&files[0], &stop);
        // Both decoders wait for budget that file 1's held write has.
        until("two decoders waiting", || budget.waiting() == 2).await;
        stop.cancel();
        let (outcome, published) = tokio::time::timeout(Duration::from_secs(10), stopped)
            .await
            .expect("the stopped file returns while another file's write holds the budget")
            .unwrap();
        assert!(!outcome.unwrap().complete);
        assert_eq!(published, FilePosition::default());
        assert!(!other.is_finished());

        hold.release(LINES);
        let (outcome, _) = other.await.unwrap();
        assert!(outcome.unwrap().complete);
        let written = hold.written_strings("pk");
        assert_eq!(written.len(), LINES);
        assert!(written.iter().all(|k| k.starts_with("f1")));
        assert_eq!(budget.available(), 10);
    }
}
