//! Byte budgets shared by every file of a process: what keeps memory flat however many files run at once
//! and however large their items are.
//!
//! Two are used ([`crate::engine::Settings`]): the read budget, for compressed parts fetched ahead of the
//! decoders, and the batch budget, for batches cut and not yet acknowledged by DynamoDB.
//!
//! Every wait ends because waits go one way only. A batch takes its share once it is cut and holds it until
//! DynamoDB has acknowledged it (see `engine`): a batch that is cut waits for nothing from either budget. A
//! part takes its share before its GET and holds it until it has been read, parts of one file in order; the
//! decoder reading it may wait for batch budget meanwhile. So batch shares never wait on read shares, and
//! read shares wait only on batch shares, which are given back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A number of bytes shared by all clones; a [`Share`] is given back when it is dropped.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    bytes: u64,
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

/// Bytes taken from a [`ByteBudget`], given back when dropped.
pub type Share = OwnedSemaphorePermit;

impl ByteBudget {
    /// A budget of `bytes` (at least one; at most what a semaphore can count).
    pub fn new(bytes: u64) -> Self {
        let permits = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        ByteBudget {
            bytes: permits as u64,
            permits: Arc::new(Semaphore::new(permits)),
            waiting: Arc::default(),
        }
    }

    /// The whole budget.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// What is not taken now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64
    }

    /// What a request for `len` bytes takes: all of the budget for more than all of it, and at least one.
    fn clamp(&self, len: u64) -> u32 {
        u32::try_from(len.clamp(1, self.bytes)).unwrap_or(u32::MAX)
    }

    /// Waits for `len` bytes (all of the budget, for more than the whole budget). Waiters are served in
    /// order.
    pub async fn take(&self, len: u64) -> Share {
        /// Counts a waiter until its `take` returns or is dropped.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        self.permits
            .clone()
            .acquire_many_owned(self.clamp(len))
            .await
            .expect("a budget's semaphore is never closed")
    }

    /// `len` bytes if they are free now (and nobody waits before this caller).
    pub fn try_take(&self, len: u64) -> Option<Share> {
        self.permits
            .clone()
            .try_acquire_many_owned(self.clamp(len))
            .ok()
    }

    /// How many callers wait in [`ByteBudget::take`] now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shares_are_clamped_and_given_back() {
        let budget = ByteBudget::new(1000);
        let a = budget.take(600).await;
        assert_eq!(budget.available(), 400);
        assert!(budget.try_take(500).is_none(), "only 400 are free");
        let b = budget.try_take(400).expect("400 are free");
        assert_eq!(budget.available(), 0);
        drop((a, b));
        // More than the whole budget takes all of it, so that it can be had at all.
        let all = budget.take(5000).await;
        assert_eq!(all.num_permits(), 1000);
        drop(all);
        assert_eq!(budget.take(0).await.num_permits(), 1);
        assert_eq!(ByteBudget::new(0).bytes(), 1);
    }

    #[test]
    fn a_taker_waits_until_a_share_is_given_back() {
        let budget = ByteBudget::new(100);
        let held = budget.try_take(80).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let share = futures::executor::block_on(budget.take(50));
                tx.send(share.num_permits()).unwrap();
            })
        };
        // The waiter cannot have its 50 while 80 are held.
        while budget.waiting() == 0 {
            std::thread::yield_now();
        }
        assert!(rx.try_recv().is_err());
        drop(held);
        assert_eq!(rx.recv().unwrap(), 50);
        waiter.join().unwrap();
        assert_eq!(budget.available(), 100);
        assert_eq!(budget.waiting(), 0);
    }
}
