//! Cutting a file's writes into BatchWriteItem calls.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use bytes::BytesMut;

use crate::budget::Share;
use crate::item::wire::{self, RawWrite};

use super::MAX_BATCH_BYTES;
use super::watermark::FilePosition;

/// One BatchWriteItem call's worth of requests, cut by [`Batcher`].
#[doc(hidden)]
pub struct Batch {
    pub(super) requests: Vec<RawWrite>,
    /// (line number, offset) of each request, for error messages.
    pub(super) lines: Vec<(u64, u64)>,
    pub(super) end: FilePosition,
    /// Wait for every earlier batch of this file before sending: it writes a key one of them also writes.
    pub(super) barrier: bool,
    /// Its share of the batch budget, held until the batch is acknowledged or dropped.
    pub(super) share: Option<Share>,
}

impl Batch {
    /// Bytes of the requests, as the batch budget counts them.
    pub(super) fn bytes(&self) -> usize {
        self.requests.iter().map(|r| r.as_bytes().len()).sum()
    }
}

/// Cuts batches of at most `max` requests and [`MAX_BATCH_BYTES`], never with two writes to one key
/// (BatchWriteItem rejects that), and marks a batch as a barrier when it writes a key that a batch possibly
/// still in flight also writes, so the two writes reach DynamoDB in file order.
///
/// Public, but hidden from the docs, only so that `benches/hot_path.rs` can measure it; it is not part of
/// the library's interface.
#[doc(hidden)]
pub struct Batcher {
    max: usize,
    /// The request elements of the batch being cut, one after the other ([`wire::encode`]).
    buf: BytesMut,
    /// Where each element ends in `buf`, and whether it is a delete.
    ends: Vec<(usize, bool)>,
    /// The elements of at least [`OWN_ALLOCATION`] bytes, which are not in `buf`, by their place in the
    /// batch.
    own: Vec<(usize, RawWrite)>,
    lines: Vec<(u64, u64)>,
    bytes: usize,
    end: FilePosition,
    barrier: bool,
    keys: KeySet,
    recent: VecDeque<KeySet>,
    recent_cap: usize,
}

/// The most a batch's buffer reserves up front; it grows past that for large items.
const BATCH_RESERVE: usize = 256 * 1024;

/// Requests of this many bytes or more get an allocation of their own rather than a place in the batch's
/// buffer: a buffer that grows by doubling to take ten items near 400 KB would copy itself at each step and
/// end up to 8 MiB large for 4 MiB of requests.
const OWN_ALLOCATION: usize = 64 * 1024;

/// Key hashes ([`KeySchema::key_hash`]) are already well mixed: the set uses them as they are.
type KeySet = HashSet<u64, BuildHasherDefault<KeyHashHasher>>;

#[derive(Default)]
struct KeyHashHasher(u64);

impl Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Batcher {
    pub fn new(max: usize, recent_cap: usize) -> Self {
        Batcher {
            max,
            buf: BytesMut::new(),
            ends: Vec::with_capacity(max),
            own: Vec::new(),
            lines: Vec::with_capacity(max),
            bytes: 0,
            end: FilePosition::default(),
            barrier: false,
            keys: KeySet::with_capacity_and_hasher(max, Default::default()),
            recent: VecDeque::with_capacity(recent_cap),
            recent_cap,
        }
    }

    /// Adds the write `image` (an item, or with `delete` a key) from a line of `len` bytes; returns a batch
    /// that had to be cut first, if any.
    pub fn add(
        &mut self,
        delete: bool,
        image: &str,
        key: u64,
        line: (u64, u64),
        len: usize,
        end: FilePosition,
    ) -> Option<Batch> {
        let cut = if self.keys.contains(&key)
            || self.ends.len() == self.max
            || self.bytes + len > MAX_BATCH_BYTES
        {
            self.cut()
        } else {
            None
        };
        if self.recent.iter().any(|keys| keys.contains(&key)) {
            self.barrier = true;
        }
        let encoded = wire::encoded_len(image);
        if encoded >= OWN_ALLOCATION {
            self.own
                .push((self.ends.len(), RawWrite::new(delete, image)));
        } else {
            if self.ends.is_empty() {
                // Room for a batch of lines like this one, so that one batch is usually one allocation; not
                // more than BATCH_RESERVE, so that one huge first line does not size every batch after it.
                self.buf.reserve((encoded * self.max).min(BATCH_RESERVE));
            }
            wire::encode(&mut self.buf, delete, image);
        }
        self.ends.push((self.buf.len(), delete));
        self.lines.push(line);
        self.keys.insert(key);
        self.bytes += len;
        self.end = end;
        cut
    }

    pub fn cut(&mut self) -> Option<Batch> {
        if self.ends.is_empty() {
            return None;
        }
        if self.recent.len() == self.recent_cap {
            self.recent.pop_back();
        }
        self.recent.push_front(std::mem::replace(
            &mut self.keys,
            KeySet::with_capacity_and_hasher(self.max, Default::default()),
        ));
        self.bytes = 0;
        let buf = self.buf.split().freeze();
        let mut start = 0;
        let mut own = self.own.drain(..).peekable();
        let requests = self
            .ends
            .drain(..)
            .enumerate()
            .map(|(i, (end, delete))| {
                if let Some((_, write)) = own.next_if(|(at, _)| *at == i) {
                    return write;
                }
                let write = RawWrite::from_encoded(buf.slice(start..end), delete);
                start = end;
                write
            })
            .collect();
        Some(Batch {
            requests,
            lines: std::mem::replace(&mut self.lines, Vec::with_capacity(self.max)),
            end: self.end,
            barrier: std::mem::take(&mut self.barrier),
            share: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_json(k: &str) -> String {
        format!(r#"{{"pk":{{"S":"{k}"}}}}"#)
    }

    fn pos(lines: u64) -> FilePosition {
        FilePosition {
            offset: lines * 10,
            lines,
            ..Default::default()
        }
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let mut b = Batcher::new(3, 4);
        let mut cut = vec![];
        for i in 1..=7u64 {
            cut.extend(b.add(true, &key_json("k"), i, (i, i * 10), 10, pos(i)));
        }
        cut.extend(b.cut());
        assert_eq!(
            cut.iter().map(|b| b.requests.len()).collect::<Vec<_>>(),
            vec![3, 3, 1]
        );
        assert_eq!(
            cut.iter().map(|b| b.end.lines).collect::<Vec<_>>(),
            vec![3, 6, 7]
        );
        assert!(cut.iter().all(|b| !b.barrier));

        let mut b = Batcher::new(25, 4);
        assert!(
            b.add(
                true,
                &key_json("a"),
                1,
                (1, 0),
                MAX_BATCH_BYTES - 10,
                pos(1)
            )
            .is_none()
        );
        let first = b
            .add(true, &key_json("b"), 2, (2, 1), 11, pos(2))
            .expect("16 MB limit cuts the batch");
        assert_eq!(first.requests.len(), 1);
    }

    #[test]
    fn large_requests_keep_their_place_in_the_batch() {
        // Large items are allocated on their own, small ones share the batch's buffer; the batch is the
        // same either way.
        let items: Vec<String> = [10, 70_000, 20, 0, 300_000, 5]
            .iter()
            .enumerate()
            .map(|(i, &pad)| {
                format!(
                    r#"{{"pk":{{"S":"k{i}"}},"pad":{{"S":"{}"}}}}"#,
                    "x".repeat(pad)
                )
            })
            .collect();
        let mut b = Batcher::new(25, 4);
        for (i, item) in items.iter().enumerate() {
            let n = i as u64 + 1;
            assert!(b.add(i == 3, item, n, (n, 0), item.len(), pos(n)).is_none());
        }
        let batch = b.cut().unwrap();
        let sent: Vec<(bool, &str)> = batch
            .requests
            .iter()
            .map(|r| (r.is_delete(), r.item_json()))
            .collect();
        let expected: Vec<(bool, &str)> = items
            .iter()
            .enumerate()
            .map(|(i, item)| (i == 3, item.as_str()))
            .collect();
        assert_eq!(sent, expected);
        // Requests in the shared buffer and on their own count alike.
        let alone: usize = items
            .iter()
            .enumerate()
            .map(|(i, item)| RawWrite::new(i == 3, item).as_bytes().len())
            .sum();
        assert_eq!(batch.bytes(), alone);
        assert!(b.own.is_empty() && b.buf.is_empty() && b.ends.is_empty());
    }

    #[test]
    fn repeated_keys_split_batches_and_order_them() {
        let mut b = Batcher::new(25, 2);
        assert!(b.add(true, &key_json("a"), 1, (1, 0), 10, pos(1)).is_none());
        let first = b
            .add(true, &key_json("a"), 1, (2, 10), 10, pos(2))
            .expect("a key twice in one batch cuts it");
        assert_eq!(first.requests.len(), 1);
        let second = b.cut().unwrap();
        assert!(
            second.barrier,
            "the second write of a key waits for the first"
        );
        // Far enough apart, no barrier is needed.
        for i in 10..13 {
            b.add(true, &key_json("x"), i, (i, 0), 10, pos(i));
            b.cut();
        }
        b.add(true, &key_json("a"), 1, (20, 0), 10, pos(20));
        assert!(!b.cut().unwrap().barrier);
    }
}
