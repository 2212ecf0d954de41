//! A file's byte-offset low-watermark: how far it has been restored.
//!
//! A file's position is the offset in its *decompressed* data below which every line has been written and
//! acknowledged by DynamoDB, with the counts of lines, puts and deletes below it. Gzip cannot be entered
//! mid-stream, so a resumed file is downloaded and decompressed from its start again (which also re-verifies
//! its MD5), and lines below the watermark are skipped without being decoded or written.
//!
//! Batches of one file complete out of order; [`Watermark`] advances only over a contiguous prefix of
//! completed batches, so a crash at any moment leaves a checkpoint that never claims an unwritten line.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// How far a file has been restored. Every field counts only acknowledged writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Decompressed byte offset of the first line not yet acknowledged.
    pub offset: u64,
    /// Lines below `offset`.
    pub lines: u64,
    pub puts: u64,
    pub deletes: u64,
}

/// Tracks batches of one file in the order they were cut, and the watermark below the oldest one that is
/// still in flight.
#[derive(Debug)]
pub struct Watermark {
    position: FilePosition,
    first_seq: u64,
    /// (end position of the batch, acknowledged?) for batches `first_seq..`.
    batches: VecDeque<(FilePosition, bool)>,
}

impl Watermark {
    pub fn new(start: FilePosition) -> Self {
        Watermark {
            position: start,
            first_seq: 0,
            batches: VecDeque::new(),
        }
    }

    /// Registers the next batch, whose last line ends at `end`; returns its sequence number.
    pub fn push(&mut self, end: FilePosition) -> u64 {
        self.batches.push_back((end, false));
        self.first_seq + self.batches.len() as u64 - 1
    }

    /// Marks a batch acknowledged. Returns the new watermark if it moved.
    pub fn complete(&mut self, seq: u64) -> Option<FilePosition> {
        let idx = seq
            .checked_sub(self.first_seq)
            .expect("batch completed twice") as usize;
        self.batches[idx].1 = true;
        let mut moved = false;
        while let Some(&(end, true)) = self.batches.front() {
            self.position = end;
            self.batches.pop_front();
            self.first_seq += 1;
            moved = true;
        }
        moved.then_some(self.position)
    }

    pub fn position(&self) -> FilePosition {
        self.position
    }

    /// Batches from the oldest unacknowledged one to the newest registered: the span a repeated key must
    /// be looked for in.
    pub fn span(&self) -> usize {
        self.batches.len()
    }

    pub fn in_flight(&self) -> usize {
        self.batches.iter().filter(|(_, done)| !done).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(offset: u64) -> FilePosition {
        FilePosition {
            offset,
            lines: offset / 10,
            puts: offset / 10,
            deletes: 0,
        }
    }

    #[test]
    fn watermark_only_covers_a_completed_prefix() {
        let mut w = Watermark::new(pos(0));
        let a = w.push(pos(100));
        let b = w.push(pos(200));
        let c = w.push(pos(300));
        assert_eq!(
            w.complete(b),
            None,
            "b finished before a: nothing below b is safe yet"
        );
        assert_eq!(w.position(), pos(0));
        assert_eq!(w.complete(a), Some(pos(200)), "a and b form a prefix");
        assert_eq!(w.in_flight(), 1);
        let d = w.push(pos(400));
        assert_eq!(w.complete(d), None);
        assert_eq!(w.complete(c), Some(pos(400)));
        assert_eq!(w.in_flight(), 0);
    }
}
