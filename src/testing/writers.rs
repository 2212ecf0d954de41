//! [`FakeTable`]: the one in-memory [`BatchWriter`] of the unit tests. It answers BatchWriteItem calls the
//! way a test asks (in time, throttled, partly processed, held until released, scripted) and records what
//! reached it: every call, the writes acknowledged in order, and the table they leave (last write wins).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::item::wire::RawWrite;
use crate::item::{Item, WriteOp};
use crate::write::{AttemptError, AttemptOutcome, BatchWriter};

/// Which calls a rule applies to: the call's number (from 0) and its requests.
pub type CallRule = Box<dyn Fn(usize, &[RawWrite]) -> bool + Send + Sync>;

/// How long a call takes before it is answered.
#[derive(Debug, Clone, Default)]
pub enum Latency {
    /// Answered at once.
    #[default]
    None,
    /// A fixed time (virtual time under `start_paused`).
    Fixed(Duration),
    /// A uniform random time in the range: calls complete in a shuffled order.
    Random(Range<Duration>),
    /// Yields to the runtime a random number of times in the range, so other calls start meanwhile.
    Yields(Range<usize>),
}

/// One call as the table saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// When it was answered (after its latency).
    pub at: Instant,
    pub requests: usize,
    /// Bytes of its request elements (what the engine's batch budget counts).
    pub bytes: usize,
    /// Requests it processed (the rest came back unprocessed, or the call failed).
    pub accepted: usize,
}

/// An answer from a script: a failure, or success with the last `n` requests left unprocessed.
pub type Scripted = Result<usize, AttemptError>;

/// See the module docs. Build with [`FakeTable::new`] and the `with_*` methods; share as an `Arc`.
pub struct FakeTable {
    key: Vec<String>,
    latency: Latency,
    throttle: Option<CallRule>,
    hold: Option<CallRule>,
    release: Semaphore,
    held: AtomicBool,
    slow_once: Option<(CallRule, Duration)>,
    slowed: AtomicBool,
    stop_at: Option<(usize, CancellationToken)>,
    script: Mutex<VecDeque<Scripted>>,
    wcu_per_item: f64,
    bucket: Option<(f64, Mutex<(f64, Instant)>)>,
    calls: AtomicUsize,
    in_progress: AtomicUsize,
    max_in_progress: AtomicUsize,
    log: Mutex<Vec<CallRecord>>,
    written: Mutex<Vec<WriteOp>>,
    items: Mutex<BTreeMap<String, Item>>,
}

impl FakeTable {
    /// A table keyed by the attributes `key` (partition key first), which accepts every write at once.
    pub fn new(key: &[&str]) -> Self {
        FakeTable {
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            latency: Latency::None,
            throttle: None,
            hold: None,
            release: Semaphore::new(0),
            held: AtomicBool::new(false),
            slow_once: None,
            slowed: AtomicBool::new(false),
            stop_at: None,
            script: Mutex::default(),
            wcu_per_item: 1.0,
            bucket: None,
            calls: AtomicUsize::new(0),
            in_progress: AtomicUsize::new(0),
            max_in_progress: AtomicUsize::new(0),
            log: Mutex::default(),
            written: Mutex::default(),
            items: Mutex::default(),
        }
    }

    pub fn with_latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// Calls for which `rule` holds fail with throttling; nothing of them is written.
    pub fn with_throttle(
        mut self,
        rule: impl Fn(usize, &[RawWrite]) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.throttle = Some(Box::new(rule));
        self
    }

    /// Calls for which `rule` holds wait for a permit from [`FakeTable::release`].
    pub fn with_hold(
        mut self,
        rule: impl Fn(usize, &[RawWrite]) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.hold = Some(Box::new(rule));
        self
    }

    /// The first call for which `rule` holds takes `delay` longer, so later calls overtake it.
    pub fn with_slow_once(
        mut self,
        rule: impl Fn(usize, &[RawWrite]) -> bool + Send + Sync + 'static,
        delay: Duration,
    ) -> Self {
        self.slow_once = Some((Box::new(rule), delay));
        self
    }

    /// Call number `call` cancels `stop` when it arrives.
    pub fn with_stop_at(mut self, call: usize, stop: CancellationToken) -> Self {
        self.stop_at = Some((call, stop));
        self
    }

    /// Calls take their answers from `script`, in order, until it runs out.
    pub fn with_script(self, script: impl IntoIterator<Item = Scripted>) -> Self {
        *self.script.lock().expect("script") = script.into_iter().collect();
        self
    }

    /// Each processed request consumes this many write units (1 by default).
    pub fn with_wcu_per_item(mut self, wcu: f64) -> Self {
        self.wcu_per_item = wcu;
        self
    }

    /// A token bucket of `capacity` write units per second, with one second of burst, full at the start:
    /// like DynamoDB, what does not fit comes back in `UnprocessedItems`.
    pub fn with_capacity(mut self, capacity: f64) -> Self {
        self.bucket = Some((capacity, Mutex::new((capacity, Instant::now()))));
        self
    }

    /// Lets `n` held calls through.
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }

    /// True once a held call has arrived.
    pub fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The most request bytes that were in calls at one time.
    pub fn max_bytes_in_progress(&self) -> usize {
        self.max_in_progress.load(Ordering::SeqCst)
    }

    pub fn log(&self) -> Vec<CallRecord> {
        self.log.lock().expect("log").clone()
    }

    /// Every write processed, in the order the table applied them.
    pub fn written(&self) -> Vec<WriteOp> {
        self.written.lock().expect("written").clone()
    }

    /// The string value of attribute `name` of each write processed, in order (e.g. the partition keys).
    pub fn written_strings(&self, name: &str) -> Vec<String> {
        self.written()
            .iter()
            .map(|op| string(op.item(), name))
            .collect()
    }

    /// The item at a key, given as the string values of the key attributes.
    pub fn item(&self, key: &[&str]) -> Option<Item> {
        self.items
            .lock()
            .expect("items")
            .get(&key.join("\u{0}"))
            .cloned()
    }

    /// Every item in the table, by key.
    pub fn items(&self) -> BTreeMap<String, Item> {
        self.items.lock().expect("items").clone()
    }

    fn key_of(&self, item: &Item) -> String {
        self.key
            .iter()
            .map(|k| string(item, k))
            .collect::<Vec<_>>()
            .join("\u{0}")
    }

    async fn answer(
        &self,
        call: usize,
        requests: &[RawWrite],
    ) -> Result<AttemptOutcome, AttemptError> {
        if let Some((at, stop)) = &self.stop_at
            && call == *at
        {
            stop.cancel();
        }
        if let Some(rule) = &self.hold
            && rule(call, requests)
        {
            self.held.store(true, Ordering::SeqCst);
            drop(self.release.acquire().await.expect("never closed"));
        }
        match &self.latency {
            Latency::None => {}
            Latency::Fixed(d) => tokio::time::sleep(*d).await,
            Latency::Random(r) => {
                let micros = fastrand::u64(r.start.as_micros() as u64..r.end.as_micros() as u64);
                tokio::time::sleep(Duration::from_micros(micros)).await;
            }
            Latency::Yields(r) => {
                for _ in 0..fastrand::usize(r.clone()) {
                    tokio::task::yield_now().await;
                }
            }
        }
        if let Some((rule, delay)) = &self.slow_once
            && rule(call, requests)
            && !self.slowed.swap(true, Ordering::SeqCst)
        {
            tokio::time::sleep(*delay).await;
        }
        if let Some(rule) = &self.throttle
            && rule(call, requests)
        {
            return Err(AttemptError::Throttled {
                message: "ProvisionedThroughputExceededException".into(),
                resources: vec![],
            });
        }
        let left = match self.script.lock().expect("script").pop_front() {
            Some(Err(e)) => return Err(e),
            Some(Ok(left)) => left.min(requests.len()),
            None => 0,
        };
        let mut taken = requests.len() - left;
        if let Some((capacity, state)) = &self.bucket {
            let now = Instant::now();
            let mut s = state.lock().expect("bucket");
            let refill = (now - s.1).as_secs_f64() * capacity;
            s.0 = (s.0 + refill).min(*capacity);
            s.1 = now;
            taken = taken.min((s.0 / self.wcu_per_item).floor() as usize);
            s.0 -= taken as f64 * self.wcu_per_item;
        }
        self.apply(&requests[..taken]);
        Ok(AttemptOutcome {
            unprocessed: requests[taken..].to_vec(),
            consumed_wcu: taken as f64 * self.wcu_per_item,
            consumed_by: vec![],
        })
    }

    fn apply(&self, requests: &[RawWrite]) {
        let mut written = self.written.lock().expect("written");
        let mut items = self.items.lock().expect("items");
        for r in requests {
            let op = r.to_op();
            let key = self.key_of(op.item());
            match &op {
                WriteOp::Put(item) => {
                    items.insert(key, item.clone());
                }
                WriteOp::Delete(_) => {
                    items.remove(&key);
                }
            }
            written.push(op);
        }
    }
}

impl BatchWriter for FakeTable {
    fn write_batch<'a>(
        &'a self,
        _table: &'a str,
        requests: &'a [RawWrite],
    ) -> BoxFuture<'a, Result<AttemptOutcome, AttemptError>> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            let bytes: usize = requests.iter().map(|r| r.as_bytes().len()).sum();
            let now = self.in_progress.fetch_add(bytes, Ordering::SeqCst) + bytes;
            self.max_in_progress.fetch_max(now, Ordering::SeqCst);
            let answer = self.answer(call, requests).await;
            let at = Instant::now();
            self.in_progress.fetch_sub(bytes, Ordering::SeqCst);
            let accepted = match &answer {
                Ok(outcome) => requests.len() - outcome.unprocessed.len(),
                Err(_) => 0,
            };
            self.log.lock().expect("log").push(CallRecord {
                at,
                requests: requests.len(),
                bytes,
                accepted,
            });
            answer
        })
    }
}

/// The text of attribute `name`: an S or N value as it is, anything else as the SDK prints it.
fn string(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(v) => v
            .as_s()
            .or_else(|_| v.as_n())
            .cloned()
            .unwrap_or_else(|_| format!("{v:?}")),
        None => String::new(),
    }
}

/// `n` deletes of the keys `{"pk": {"S": "0"}}`, `{"pk": {"S": "1"}}`, …
pub fn deletes(n: usize) -> Vec<RawWrite> {
    (0..n)
        .map(|i| RawWrite::new(true, &format!(r#"{{"pk":{{"S":"{i}"}}}}"#)))
        .collect()
}
