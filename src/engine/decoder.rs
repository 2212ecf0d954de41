//! The blocking half of a file: gunzip, split, decode, batch, verify.

use std::io::{BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::budget::ByteBudget;
use crate::error::{DataLocation, Error, Result};
use crate::export::manifest::{DataFile, ExportType};
use crate::export::source::HashingReader;
use crate::item::decode::scan_line;
use crate::item::key::KeySchema;

use super::MAX_LINE_BYTES;
use super::batcher::{Batch, Batcher};
use super::watermark::FilePosition;

pub(super) enum DecodeEnd {
    /// Every line was read and cut into batches, and the file's MD5 and item count matched.
    Finished,
    Stopped,
}

/// The blocking half of a file: gunzip, split, decode, batch.
pub(super) struct Decoder {
    pub(super) export_id: String,
    pub(super) file: DataFile,
    pub(super) export_type: ExportType,
    pub(super) key: KeySchema,
    pub(super) batch_size: usize,
    pub(super) recent_batches: usize,
    pub(super) start: FilePosition,
    pub(super) stop: CancellationToken,
    /// Stop (as if asked to) after this many lines: used to sample a file.
    pub(super) line_limit: Option<u64>,
    pub(super) budget: ByteBudget,
}

impl Decoder {
    fn location(&self, line: u64, offset: u64) -> DataLocation {
        DataLocation {
            export_id: self.export_id.clone(),
            file: self.file.key.clone(),
            line,
            offset,
        }
    }

    fn data_error(&self, line: u64, offset: u64, message: String) -> Error {
        Error::Data {
            location: self.location(line, offset),
            message,
        }
    }

    fn integrity_error(&self, message: String) -> Error {
        Error::FileIntegrity {
            export: self.export_id.clone(),
            file: self.file.key.clone(),
            message,
        }
    }

    /// Hands `batch` on with its share of the batch budget, waited for if need be; false once the file's
    /// writer has gone (stopped or failed), also while waiting: a stopped file does not wait for other
    /// files' writes to give budget back.
    ///
    /// Only batches that are cut hold the budget, never the batch being cut: a decoder holding budget for
    /// half a batch while it waits for its next part (held up by the read budget, which decoders waiting
    /// for batch budget hold) could wait forever. A batch that is cut needs nothing more to be written and
    /// give its share back, so this wait always ends.
    fn hand_on(&self, mut batch: Batch, tx: &mpsc::Sender<Batch>) -> bool {
        let bytes = batch.bytes() as u64;
        let share = match self.budget.try_take(bytes) {
            Some(share) => share,
            None => {
                let wait = async {
                    tokio::select! {
                        biased;
                        () = tx.closed() => None,
                        share = self.budget.take(bytes) => Some(share),
                    }
                };
                match futures::executor::block_on(wait) {
                    Some(share) => share,
                    None => return false,
                }
            }
        };
        batch.share = Some(share);
        tx.blocking_send(batch).is_ok()
    }

    pub(super) fn run(self, reader: HashingReader, tx: mpsc::Sender<Batch>) -> Result<DecodeEnd> {
        let source_failure = reader.failure();
        let mut lines_in = BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(reader));
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut batcher = Batcher::new(self.batch_size, self.recent_batches);
        let mut position = self.start;
        let (mut offset, mut line_no) = (0u64, 0u64);
        loop {
            if self.stop.is_cancelled() || self.line_limit.is_some_and(|limit| line_no >= limit) {
                return Ok(DecodeEnd::Stopped);
            }
            buf.clear();
            let n = match Read::take(&mut lines_in, MAX_LINE_BYTES + 1).read_until(b'\n', &mut buf)
            {
                Ok(n) => n,
                Err(e) => {
                    if let Some(source) = source_failure.lock().expect("failure slot").take() {
                        return Err(source);
                    }
                    let compressed = lines_in.get_ref().get_ref().bytes_read();
                    return Err(self.data_error(
                        line_no + 1,
                        offset,
                        format!(
                            "the gzip stream is corrupt or truncated (after {compressed} compressed bytes): {e}; \
                             the object is damaged or was not fully copied"
                        ),
                    ));
                }
            };
            if n == 0 {
                break;
            }
            if n as u64 > MAX_LINE_BYTES {
                return Err(self.data_error(
                    line_no + 1,
                    offset,
                    format!(
                        "line longer than {MAX_LINE_BYTES} bytes; this is not DynamoDB export data"
                    ),
                ));
            }
            let line_start = offset;
            offset += n as u64;
            line_no += 1;
            if line_start < self.start.offset {
                if offset > self.start.offset {
                    return Err(self.integrity_error(format!(
                        "the checkpoint offset {} is inside line {line_no}, not at a line boundary: the checkpoint \
                         does not belong to this file's content",
                        self.start.offset
                    )));
                }
                continue;
            }
            if line_start == self.start.offset && line_no - 1 != self.start.lines {
                return Err(self.integrity_error(format!(
                    "the checkpoint says {} lines precede offset {} but the file has {}: the checkpoint does \
                     not belong to this file's content",
                    self.start.lines,
                    self.start.offset,
                    line_no - 1
                )));
            }
            let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.iter().all(u8::is_ascii_whitespace) {
                return Err(self.data_error(
                    line_no,
                    line_start,
                    "empty line; export data files have one record per line".into(),
                ));
            }
            let write = scan_line(text, self.export_type, &self.key)
                .map_err(|m| self.data_error(line_no, line_start, m))?;
            if write.delete {
                position.deletes += 1;
            } else {
                position.puts += 1;
            }
            position.offset = offset;
            position.lines = line_no;
            if let Some(full) = batcher.add(
                write.delete,
                write.image,
                write.key_hash,
                (line_no, line_start),
                n,
                position,
            ) && !self.hand_on(full, &tx)
            {
                return Ok(DecodeEnd::Stopped);
            }
        }
        if offset == self.start.offset && line_no != self.start.lines {
            return Err(self.integrity_error(format!(
                "the checkpoint says {} lines precede offset {} but the file has {line_no}: the checkpoint does \
                 not belong to this file's content",
                self.start.lines, self.start.offset
            )));
        }
        if offset < self.start.offset {
            return Err(self.integrity_error(format!(
                "the checkpoint offset {} is past the end of the data ({offset} bytes): the checkpoint does not \
                 belong to this file's content",
                self.start.offset
            )));
        }

        let reader = lines_in.into_inner().into_inner();
        let (md5, _) = match reader.finish() {
            Ok(done) => done,
            Err(e) => {
                return Err(source_failure
                    .lock()
                    .expect("failure slot")
                    .take()
                    .unwrap_or_else(|| {
                        self.integrity_error(format!("reading the object failed: {e}"))
                    }));
            }
        };
        if md5 != self.file.md5 {
            return Err(self.integrity_error(format!(
                "MD5 mismatch: manifest-files.json says {} but the object has {md5}; the object changed after \
                 the export or belongs to another export",
                self.file.md5
            )));
        }
        if line_no != self.file.item_count {
            return Err(self.integrity_error(format!(
                "the file has {line_no} items but manifest-files.json says itemCount {}",
                self.file.item_count
            )));
        }
        if let Some(last) = batcher.cut()
            && !self.hand_on(last, &tx)
        {
            return Ok(DecodeEnd::Stopped);
        }
        Ok(DecodeEnd::Finished)
    }
}
