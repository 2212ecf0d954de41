//! A response body that streams a byte range of an open file.

use std::fs::File;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

/// The largest read, and so the largest chunk held per response. A 1 MiB ranged GET (what ddb-pitr asks
/// for) is one read.
const CHUNK_BYTES: u64 = 1024 * 1024;

/// Bytes `range` of a file, read with positional reads on the blocking pool.
///
/// One read runs ahead of the consumer: the first starts when the body is made, and each chunk handed to
/// hyper starts the next, so reading the file overlaps writing the socket. Memory stays at about two chunks
/// whatever the range, so whole multi-GB objects stream. A file that shrinks under the read ends the body
/// with an error, and hyper closes the connection short of `Content-Length`, so the client cannot take a
/// truncated body for a whole one.
pub struct FileBody {
    file: Arc<File>,
    /// Offset of the next read to start.
    next: u64,
    end: u64,
    /// Bytes not yet handed out.
    remaining: u64,
    reading: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileBody {
    /// Starts reading `range` of `file`. Must be called within a tokio runtime.
    pub fn new(file: Arc<File>, range: Range<u64>) -> Self {
        let mut body = FileBody {
            file,
            next: range.start,
            end: range.end,
            remaining: range.end - range.start,
            reading: None,
        };
        body.read_ahead();
        body
    }

    fn read_ahead(&mut self) {
        if self.next >= self.end {
            return;
        }
        let len = (self.end - self.next).min(CHUNK_BYTES);
        let (file, offset) = (self.file.clone(), self.next);
        self.next += len;
        self.reading = Some(tokio::task::spawn_blocking(move || {
            read_chunk(&file, offset, len)
        }));
    }
}

fn read_chunk(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    let mut buf = vec![0; usize::try_from(len).expect("a chunk fits in memory")];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let Some(reading) = this.reading.as_mut() else {
            return Poll::Ready(None);
        };
        let read = ready!(Pin::new(reading).poll(cx));
        this.reading = None;
        let chunk = match read {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
            Err(join) => return Poll::Ready(Some(Err(io::Error::other(join)))),
        };
        this.remaining -= chunk.len() as u64;
        this.read_ahead();
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.reading.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http_body_util::BodyExt;

    use super::*;

    fn file_of(bytes: &[u8]) -> Arc<File> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        Arc::new(f)
    }

    #[tokio::test]
    async fn streams_exactly_the_range_in_chunks() {
        let data: Vec<u8> = (0..(2 * CHUNK_BYTES + 5))
            .map(|i| (i % 251) as u8)
            .collect();
        let file = file_of(&data);
        let start = 3;
        let body = FileBody::new(file.clone(), start..data.len() as u64);
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64 - start));
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], &data[start as usize..]);

        let empty = FileBody::new(file, 7..7);
        assert!(empty.is_end_stream());
        assert!(empty.collect().await.unwrap().to_bytes().is_empty());
    }

    #[tokio::test]
    async fn a_file_shorter_than_the_range_fails_the_body() {
        let body = FileBody::new(file_of(b"short"), 0..10);
        let err = body.collect().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
