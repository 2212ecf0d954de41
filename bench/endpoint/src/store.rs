//! What the endpoint remembers of the writes it accepted: counters, a per-table key digest, and with
//! `--store` the items themselves.
//!
//! The key digest is the wrapping sum, over every key ever written to the table, of
//! [`term`](crate::items::term)(key, last operation). It does not depend on the order of writes, and
//! writing a key again with the same operation (a retry) leaves it unchanged, so a test can compare it with
//! the digest of the key set it expected. Keeping it needs the last operation of every key: 16 bytes of
//! fingerprint and a byte per key, in sharded maps.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::config::TableSpec;
use crate::items::{Key, WriteKind, term};

const SHARDS: usize = 64;

/// The keys are MD5 values already: use their low bits as the hash.
#[derive(Default)]
struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type FingerprintMap = HashMap<u128, WriteKind, BuildHasherDefault<Passthrough>>;

#[derive(Default)]
struct Shard {
    last_op: FingerprintMap,
    digest: u128,
}

/// The stored items of one table (`--store`): canonical key bytes → (item JSON as sent, DynamoDB size).
pub type ItemMap = HashMap<Vec<u8>, (Box<str>, u64)>;

/// One table's state.
pub struct TableState {
    pub spec: TableSpec,
    pub arn: String,
    pub puts: AtomicU64,
    pub deletes: AtomicU64,
    pub wcu: AtomicU64,
    /// Keys whose last write was a put (with `--count-only`: puts − deletes).
    pub item_count: AtomicI64,
    keys: Option<Vec<Mutex<Shard>>>,
    pub items: Option<Mutex<ItemMap>>,
}

impl TableState {
    pub fn new(spec: TableSpec, track_keys: bool, store: bool) -> Self {
        TableState {
            arn: format!(
                "arn:aws:dynamodb:us-east-1:000000000000:table/{}",
                spec.name
            ),
            spec,
            puts: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            wcu: AtomicU64::new(0),
            item_count: AtomicI64::new(0),
            keys: track_keys.then(|| (0..SHARDS).map(|_| Mutex::default()).collect()),
            items: store.then(Mutex::default),
        }
    }

    /// Records one accepted write (the key's MD5 only when the key digest is kept).
    pub fn record(&self, kind: WriteKind, key: &Key) {
        let Some(shards) = &self.keys else {
            self.item_count.fetch_add(
                if kind == WriteKind::Put { 1 } else { -1 },
                Ordering::Relaxed,
            );
            return;
        };
        let key_hasher = &key.hasher();
        let fingerprint = term(key_hasher, WriteKind::Put);
        let mut shard = shards[(fingerprint >> 64) as usize % SHARDS]
            .lock()
            .expect("shard lock");
        let previous = shard.last_op.insert(fingerprint, kind);
        if previous == Some(kind) {
            return;
        }
        let new_term = if kind == WriteKind::Put {
            fingerprint
        } else {
            term(key_hasher, WriteKind::Delete)
        };
        let mut delta = new_term;
        if let Some(prev) = previous {
            let old_term = if prev == WriteKind::Put {
                fingerprint
            } else {
                term(key_hasher, WriteKind::Delete)
            };
            delta = delta.wrapping_sub(old_term);
        }
        shard.digest = shard.digest.wrapping_add(delta);
        drop(shard);
        match (previous, kind) {
            (None | Some(WriteKind::Delete), WriteKind::Put) => {
                self.item_count.fetch_add(1, Ordering::Relaxed);
            }
            (Some(WriteKind::Put), WriteKind::Delete) => {
                self.item_count.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// The key digest as 32 hex digits; `None` with `--count-only`.
    pub fn digest(&self) -> Option<String> {
        let shards = self.keys.as_ref()?;
        let sum = shards.iter().fold(0u128, |acc, s| {
            acc.wrapping_add(s.lock().expect("shard lock").digest)
        });
        Some(format!("{sum:032x}"))
    }

    pub fn item_count(&self) -> u64 {
        self.item_count.load(Ordering::Relaxed).max(0) as u64
    }

    /// Σ DynamoDB size of the stored items (`--store`), else 0.
    pub fn size_bytes(&self) -> u64 {
        self.items.as_ref().map_or(0, |m| {
            m.lock().expect("items lock").values().map(|(_, s)| s).sum()
        })
    }

    pub fn reset(&self) {
        for c in [&self.puts, &self.deletes, &self.wcu] {
            c.store(0, Ordering::Relaxed);
        }
        self.item_count.store(0, Ordering::Relaxed);
        for shard in self.keys.iter().flatten() {
            *shard.lock().expect("shard lock") = Shard::default();
        }
        if let Some(items) = &self.items {
            items.lock().expect("items lock").clear();
        }
    }
}

/// Adds `term` for each key to a digest, as the endpoint does: for tests and scripts that compute the digest
/// they expect.
pub fn expected_digest<'k>(keys: impl IntoIterator<Item = (&'k Key<'k>, WriteKind)>) -> String {
    let sum = keys.into_iter().fold(0u128, |acc, (key, kind)| {
        acc.wrapping_add(term(&key.hasher(), kind))
    });
    format!("{sum:032x}")
}
