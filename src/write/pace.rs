//! Pacing of BatchWriteItem calls by the write units they consume.
//!
//! One [`WcuLimiter`] is shared by every file of a restore (or of a worker). It is a generic cell rate
//! algorithm (GCRA) over consumed write units whose rate comes from two sources:
//!
//! - a fixed ceiling, `--max-wcu`, that the restore never exceeds, so it can run beside production traffic;
//! - an adaptive rate, learned from the table itself. Until DynamoDB first pushes back, nothing is paced
//!   beyond the ceiling (if any). Each time a batch comes back throttled or with `UnprocessedItems`, the
//!   limiter measures the write units the table actually accepted since its previous cut, takes that as
//!   the table's current capacity `w_max`, and cuts its rate to `β × w_max` (multiplicative decrease). The
//!   rate then grows back along a cubic curve (as TCP CUBIC does for its window): fast at first, flat
//!   around `w_max`, where the table pushed back last time, and faster again beyond it, to find capacity
//!   that was added (auto scaling, `--manage-capacity`, on-demand growth).
//!
//! Why a rate and not a number of calls in flight: against a nearby endpoint one call in flight already
//! writes tens of thousands of items per second, so a window of calls cannot go below the capacity of
//! a small table; a rate can. The number of calls in flight stays bounded by the engine's settings.
//!
//! Only signals from batches sent *after* the last cut count: calls already in flight when the rate was
//! cut were sent at the old rate, and counting their throttling again would cut the rate to nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::item::wire::RawWrite;
use crate::write::{AttemptError, AttemptOutcome, BatchWriter};

/// The part of a second that may be sent at once under a fixed rate.
const BURST: Duration = Duration::from_secs(1);
/// Once the rate is adaptive, batches go out one by one at the rate: right after a cut the table has no
/// burst left, and batches sent back to back would be partly pushed back. This much early absorbs timer
/// granularity.
const ADAPTIVE_SLACK: Duration = Duration::from_millis(2);
/// The longest time one batch's cost may account for.
const MAX_SPAN: Duration = Duration::from_secs(3600);
/// The lowest accepted cap: below this, one item would wait minutes.
pub const MIN_RATE: f64 = 0.01;
/// The adaptive rate never goes below this many write units per second: a table that accepted nothing
/// for a moment (an index backfilling, a partition split) must not stall the restore for minutes.
const ADAPTIVE_FLOOR: f64 = 10.0;
/// Multiplicative decrease: the rate after a cut, as a fraction of the measured capacity.
const BETA: f64 = 0.9;
/// Cubic growth: `rate(t) = w_max × (1 + C × (t − K)³)` with t in seconds since the cut, which returns to
/// `w_max` after `K = ∛((1 − β) / C)` (about 1.3 s) and doubles it about 3.5 s later.
const CUBIC_C: f64 = 0.01;
/// How far back accepted write units are remembered, and the longest window a capacity is measured over.
const WINDOW: Duration = Duration::from_secs(1);
/// After a cut, pushback is ignored for this long. The table's bucket was overdrawn when it pushed back,
/// and batches sent at the new rate are still refused until it refills; cutting again for each of them
/// would cut the rate to nothing. What the table accepts during this time is its real capacity, measured
/// at the next cut.
const HOLDOFF: Duration = Duration::from_millis(50);
/// Pushback is judged against what the table accepted over this much time, or since the last cut.
const RECENT: Duration = Duration::from_millis(250);
/// A rate within this factor of what the table recently accepted is not over its capacity: the difference
/// is measurement noise, and the pushback is the tail of an overdraft.
const TOLERANCE: f64 = 1.05;
/// A capacity measured over less than this is too noisy; the current rate is cut instead.
const MIN_WINDOW: Duration = Duration::from_millis(10);
/// Within [`HOLDOFF`], a rate this many times what the table accepted since the cut is cut again at once:
/// at the start, before anything is known, the first cut is from an unpaced rate that may be many times
/// the table's capacity.
const GROSS_OVERSHOOT: f64 = 2.0;
/// The rate the curve levels off at, as a fraction of the measured capacity: sitting exactly at capacity
/// keeps the table's bucket empty, and then most batches come back partly unprocessed.
const HEADROOM: f64 = 0.98;

/// How the limiter chooses its rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// Never exceed this many consumed write units per second (`--max-wcu`).
    pub ceiling: Option<f64>,
    /// Learn the table's capacity from throttling and `UnprocessedItems` and keep just under it.
    pub adaptive: bool,
}

impl Pacing {
    /// Nothing to pace: no ceiling and no adaptation.
    pub fn is_off(&self) -> bool {
        self.ceiling.is_none() && !self.adaptive
    }
}

/// A client-side limit on consumed write units per second (see the module documentation).
///
/// Each batch reserves its estimated cost before it is sent; the estimate is the mean consumed capacity per
/// item seen so far times the batch's items. When the response says what the batch really consumed
/// (`ConsumedCapacity`), the difference is settled, so the long-run rate is the measured one. Up to one
/// second of the rate may go out as a burst.
#[derive(Debug)]
pub struct WcuLimiter {
    pacing: Pacing,
    state: Mutex<LimiterState>,
}

#[derive(Debug)]
struct LimiterState {
    /// Theoretical arrival time: when everything reserved so far has been paid for at the rate.
    tat: Instant,
    /// Mean consumed write units per item written.
    per_item: f64,
    /// The adaptive rate's state once DynamoDB has pushed back.
    cut: Option<Cut>,
    cuts: u64,
    /// Write units DynamoDB accepted and refused (estimated), by when the answer came, over the last
    /// [`WINDOW`].
    answers: VecDeque<(Instant, Flow)>,
    created: Instant,
}

/// Write units accepted and refused (a sum, or a rate).
#[derive(Debug, Clone, Copy)]
struct Flow {
    accepted: f64,
    refused: f64,
}

/// The last multiplicative decrease.
#[derive(Debug, Clone, Copy)]
struct Cut {
    at: Instant,
    /// The capacity measured when the table last pushed back.
    w_max: f64,
    /// The table pushed back on a batch sent during the holdoff.
    pushed_back: bool,
    /// The holdoff is over and was looked at ([`WcuLimiter::review`]).
    reviewed: bool,
}

impl Cut {
    /// A cut after the table accepted `capacity` write units per second.
    fn new(at: Instant, capacity: f64) -> Self {
        let w_max = (capacity * HEADROOM).max(ADAPTIVE_FLOOR);
        Cut {
            at,
            w_max,
            pushed_back: false,
            reviewed: false,
        }
    }

    fn rate(&self, now: Instant) -> f64 {
        let t = now.saturating_duration_since(self.at).as_secs_f64();
        // Seconds from the cut until the curve is back at `w_max`.
        let k = ((1.0 - BETA) / CUBIC_C).cbrt();
        // Past a minute the curve is far above any table; stop there rather than overflow.
        let x = (t - k).min(60.0);
        (self.w_max * (1.0 + CUBIC_C * x * x * x)).max(ADAPTIVE_FLOOR)
    }
}

impl WcuLimiter {
    /// A limiter with a fixed rate and no adaptation.
    pub fn new(rate: f64) -> Self {
        Self::with_pacing(Pacing {
            ceiling: Some(rate),
            adaptive: false,
        })
    }

    pub fn with_pacing(pacing: Pacing) -> Self {
        if let Some(rate) = pacing.ceiling {
            assert!(rate >= MIN_RATE, "the rate must be at least {MIN_RATE}");
        }
        let now = Instant::now();
        WcuLimiter {
            pacing,
            state: Mutex::new(LimiterState {
                tat: now,
                per_item: 1.0,
                cut: None,
                cuts: 0,
                answers: VecDeque::new(),
                created: now,
            }),
        }
    }

    pub fn pacing(&self) -> Pacing {
        self.pacing
    }

    /// The rate in force now; `None` when nothing limits it yet.
    pub fn rate(&self) -> Option<f64> {
        let s = self.state.lock().expect("limiter");
        self.rate_at(&s, Instant::now())
    }

    /// How many times the adaptive rate was cut.
    pub fn cuts(&self) -> u64 {
        self.state.lock().expect("limiter").cuts
    }

    fn rate_at(&self, s: &LimiterState, now: Instant) -> Option<f64> {
        let adaptive = s.cut.map(|c| c.rate(now));
        match (self.pacing.ceiling, adaptive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time `units` take at `rate`; a non-finite or absurd value (a bogus ConsumedCapacity) counts as
    /// at most an hour, so one answer can never stall the restore for longer.
    fn span(units: f64, rate: f64) -> Duration {
        Duration::try_from_secs_f64(units / rate)
            .unwrap_or(MAX_SPAN)
            .min(MAX_SPAN)
    }

    /// Reserves the estimated cost of `items` writes and waits until it fits under the rate. Returns the
    /// reservation, to settle with [`WcuLimiter::settle`].
    pub async fn acquire(&self, items: usize) -> f64 {
        loop {
            let (cost, wait_until, cuts) = {
                let mut s = self.state.lock().expect("limiter");
                let cost = s.per_item * items as f64;
                let now = Instant::now();
                let Some(rate) = self.rate_at(&s, now) else {
                    return cost;
                };
                let span = Self::span(cost, rate);
                let burst = if s.cut.is_some() {
                    span + ADAPTIVE_SLACK
                } else {
                    BURST
                };
                let tat = s.tat.max(now);
                s.tat = tat + span;
                (cost, s.tat.checked_sub(burst).unwrap_or(now), s.cuts)
            };
            tokio::time::sleep_until(wait_until).await;
            // A reservation made at the rate before a cut was forgiven by the cut: take a place at the new
            // rate instead of sending into a table that just pushed back.
            if self.state.lock().expect("limiter").cuts == cuts {
                return cost;
            }
        }
    }

    /// Replaces a reservation by what the batch really consumed (`processed` items); `refused` is the
    /// estimated cost of the writes DynamoDB pushed back.
    pub fn settle(&self, reserved: f64, consumed: f64, processed: usize, refused: f64) {
        let mut s = self.state.lock().expect("limiter");
        let now = Instant::now();
        if processed > 0 && consumed > 0.0 {
            // A moving mean that follows changes in item size within a few dozen batches.
            let sample = consumed / processed as f64;
            s.per_item += (sample - s.per_item) * 0.2;
        }
        if self.pacing.adaptive {
            if consumed > 0.0 || refused > 0.0 {
                let flow = Flow {
                    accepted: consumed,
                    refused,
                };
                s.answers.push_back((now, flow));
            }
            while s.answers.front().is_some_and(|(t, _)| now - *t > WINDOW) {
                s.answers.pop_front();
            }
            Self::review(&mut s, now);
        }
        let Some(rate) = self.rate_at(&s, now) else {
            return;
        };
        let delta = consumed - reserved;
        let step = Self::span(delta.abs(), rate);
        if delta >= 0.0 {
            s.tat += step;
        } else {
            // Credit for an overestimate; a theoretical arrival time in the past counts as now.
            s.tat = s.tat.checked_sub(step).unwrap_or(now);
        }
    }

    /// DynamoDB pushed back on a batch sent at `sent_at` (throttling or `UnprocessedItems`): cut the
    /// adaptive rate to just under what the table accepted, unless the pushback is explained by an
    /// earlier cut (see `HOLDOFF`) or the rate is already below what the table accepted.
    pub fn congested(&self, sent_at: Instant) {
        if !self.pacing.adaptive {
            return;
        }
        let mut s = self.state.lock().expect("limiter");
        let now = Instant::now();
        Self::review(&mut s, now);
        let current = self.rate_at(&s, now);
        let since = s.cut.map_or(s.created, |c| c.at);
        let recent = since.max(now.checked_sub(RECENT).unwrap_or(now));
        let measured = Self::flow_since(&s, recent, now).map(|f| f.accepted);
        if let Some(cut) = &mut s.cut {
            if sent_at < cut.at {
                return;
            }
            if now - cut.at < HOLDOFF {
                cut.pushed_back = true;
                // Grossly over (the first cut starts from no pacing at all): no need to wait.
                let gross =
                    matches!((measured, current), (Some(m), Some(c)) if c > GROSS_OVERSHOOT * m);
                if !gross {
                    return;
                }
            }
        }
        // What the table took, but never more than the rate allowed: a burst early in the window is not
        // capacity. Without a usable measurement, the rate in force is taken as the capacity.
        let capacity = match (measured, current) {
            (Some(m), Some(c)) if c <= m * TOLERANCE => return,
            (Some(m), Some(c)) => m.min(c),
            (Some(m), None) => m,
            (None, Some(c)) => c,
            (None, None) => return,
        };
        Self::cut(&mut s, now, capacity);
    }

    fn cut(s: &mut LimiterState, now: Instant, capacity: f64) {
        s.cut = Some(Cut::new(now, capacity));
        s.cuts += 1;
        // Whatever was reserved at the old rate is forgiven; sending resumes at the new one.
        s.tat = now;
    }

    /// Write units per second accepted and refused since `since` (at most [`WINDOW`] back), if that is
    /// long enough to mean something.
    fn flow_since(s: &LimiterState, since: Instant, now: Instant) -> Option<Flow> {
        let since = since.max(now.checked_sub(WINDOW).unwrap_or(now));
        let window = now.saturating_duration_since(since);
        (window >= MIN_WINDOW).then(|| {
            let secs = window.as_secs_f64();
            let (accepted, refused) = s
                .answers
                .iter()
                .filter(|(t, _)| *t > since)
                .fold((0.0, 0.0), |(a, r), (_, f)| (a + f.accepted, r + f.refused));
            Flow {
                accepted: accepted / secs,
                refused: refused / secs,
            }
        })
    }

    /// At the end of a cut's holdoff: if the table kept refusing a real part of what was sent, the new rate
    /// is still above its capacity, and what it accepted meanwhile, with its bucket empty, *is* its
    /// capacity. (If little was refused, or little was sent, what it accepted says nothing.)
    fn review(s: &mut LimiterState, now: Instant) {
        let Some(cut) = &mut s.cut else {
            return;
        };
        if cut.reviewed || now - cut.at < HOLDOFF {
            return;
        }
        cut.reviewed = true;
        let (at, rate, pushed_back) = (cut.at, cut.rate(cut.at), cut.pushed_back);
        if !pushed_back {
            return;
        }
        // Only when at least the rate was offered: writers backing off after the pushback may have sent
        // far less, and then what was accepted is not the table's capacity.
        let over = Self::flow_since(s, at, now).filter(|f| {
            f.refused > f.accepted * (TOLERANCE - 1.0)
                && f.accepted < rate
                && f.accepted + f.refused >= rate
        });
        if let Some(Flow { accepted: m, .. }) = over {
            Self::cut(s, now, m);
        }
    }
}

/// `inner` under the pacing asked for, or `inner` itself when there is nothing to pace.
pub fn paced(inner: Arc<dyn BatchWriter>, pacing: Pacing) -> Arc<dyn BatchWriter> {
    if pacing.is_off() {
        return inner;
    }
    Arc::new(LimitedWriter {
        inner,
        limiter: Arc::new(WcuLimiter::with_pacing(pacing)),
    })
}

/// A [`BatchWriter`] under a [`WcuLimiter`].
pub struct LimitedWriter {
    pub inner: Arc<dyn BatchWriter>,
    pub limiter: Arc<WcuLimiter>,
}

impl BatchWriter for LimitedWriter {
    fn write_batch<'a>(
        &'a self,
        table: &'a str,
        requests: &'a [RawWrite],
    ) -> BoxFuture<'a, std::result::Result<AttemptOutcome, AttemptError>> {
        Box::pin(async move {
            let sent = requests.len();
            let reserved = self.limiter.acquire(sent).await;
            let sent_at = Instant::now();
            let result = self.inner.write_batch(table, requests).await;
            match &result {
                Ok(outcome) => {
                    let processed = sent.saturating_sub(outcome.unprocessed.len());
                    // Without ConsumedCapacity in the answer, the estimate for what was processed stands.
                    let consumed = if outcome.consumed_wcu > 0.0 {
                        outcome.consumed_wcu
                    } else {
                        reserved * processed as f64 / sent.max(1) as f64
                    };
                    let refused = reserved * outcome.unprocessed.len() as f64 / sent.max(1) as f64;
                    self.limiter.settle(reserved, consumed, processed, refused);
                    if !outcome.unprocessed.is_empty() {
                        self.limiter.congested(sent_at);
                    }
                }
                // A throttled or rejected request consumed nothing. A transient failure (timeout, 5xx) may
                // have been applied, so its reservation stands.
                Err(AttemptError::Throttled { .. }) => {
                    self.limiter.settle(reserved, 0.0, 0, reserved);
                    self.limiter.congested(sent_at);
                }
                Err(AttemptError::Rejected(_)) => self.limiter.settle(reserved, 0.0, 0, 0.0),
                Err(AttemptError::Transient(_)) => {}
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::writers::{FakeTable, Latency, deletes as requests};
    use crate::write::retry::{RetryPolicy, write_all};
    use crate::write::stats::WriteStats;

    /// Writes batches of 25 through `writer` from `tasks` concurrent tasks, each for as long as `more`
    /// (given the batches that task has written) says.
    async fn write_concurrently(
        writer: Arc<LimitedWriter>,
        stats: &Arc<WriteStats>,
        tasks: usize,
        more: impl Fn(usize) -> bool + Clone + Send + 'static,
    ) {
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (writer, stats, more) = (writer.clone(), stats.clone(), more.clone());
            handles.push(tokio::spawn(async move {
                let mut written = 0;
                while more(written) {
                    write_all(
                        writer.as_ref(),
                        "t",
                        requests(25),
                        &RetryPolicy::default(),
                        &stats,
                    )
                    .await
                    .unwrap();
                    written += 1;
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    }

    /// Writes `batches` batches of 25 from `tasks` concurrent tasks under a cap of `rate`, and returns the
    /// virtual time it took and the consumed units.
    async fn drive(rate: f64, per_item: f64, tasks: usize, batches: usize) -> (Duration, f64) {
        // Consumes `per_item` write units per item; records when each batch was sent (virtual time).
        let started = Instant::now();
        let metered = Arc::new(FakeTable::new(&["pk"]).with_wcu_per_item(per_item));
        let writer = Arc::new(LimitedWriter {
            inner: metered.clone(),
            limiter: Arc::new(WcuLimiter::new(rate)),
        });
        let stats = Arc::new(WriteStats::default());
        let per_task = batches / tasks;
        write_concurrently(writer, &stats, tasks, move |written| written < per_task).await;
        let elapsed = metered.log().last().unwrap().at - started;
        (elapsed, stats.snapshot().consumed_wcu)
    }

    #[tokio::test(start_paused = true)]
    async fn the_cap_holds_the_measured_rate_after_a_one_second_burst() {
        // 200 batches × 25 items × 1 WCU = 5,000 WCU at 500 WCU/s: 10 s, of which 1 s may go as a burst.
        let (elapsed, consumed) = drive(500.0, 1.0, 8, 200).await;
        assert_eq!(consumed, 5000.0);
        let secs = elapsed.as_secs_f64();
        assert!((8.9..=9.2).contains(&secs), "{secs} s");
    }

    #[tokio::test(start_paused = true)]
    async fn the_cap_follows_measured_consumption_not_the_first_estimate() {
        // Items of 3 WCU: the limiter starts at 1 WCU per item and must settle to the measured 3.
        let (elapsed, consumed) = drive(1000.0, 3.0, 4, 400).await;
        assert_eq!(consumed, 30_000.0);
        let secs = elapsed.as_secs_f64();
        // 30,000 WCU at 1,000 WCU/s = 30 s less the 1 s burst; the first estimates are low, so allow a little.
        assert!((28.5..=29.5).contains(&secs), "{secs} s");
    }

    #[tokio::test(start_paused = true)]
    async fn refused_requests_give_their_reservation_back() {
        let limiter = WcuLimiter::new(100.0);
        let started = Instant::now();
        for _ in 0..50 {
            let r = limiter.acquire(25).await;
            limiter.settle(r, 0.0, 0, 0.0);
        }
        assert!(
            started.elapsed() < Duration::from_millis(1),
            "nothing consumed, no wait"
        );
    }

    /// A table with a token bucket of `cap` WCU/s (one second of burst, full at the start) that answers
    /// after 4 ms and, like DynamoDB, leaves what does not fit in `UnprocessedItems`.
    fn bucket(cap: f64) -> Arc<FakeTable> {
        Arc::new(
            FakeTable::new(&["pk"])
                .with_latency(Latency::Fixed(Duration::from_millis(4)))
                .with_capacity(cap),
        )
    }

    /// Writes batches of 25 one-WCU items from `tasks` writers into a [`bucket`] for `run` of virtual time
    /// under adaptive pacing. Returns the items accepted after the first `settle` (the start-up burst and
    /// the search for the capacity), per second, and BatchWriteItem calls per 25 items written over the
    /// whole run.
    async fn adaptive(cap: f64, tasks: usize, run: Duration, settle: Duration) -> (f64, f64) {
        let bucket = bucket(cap);
        let writer = Arc::new(LimitedWriter {
            inner: bucket.clone(),
            limiter: Arc::new(WcuLimiter::with_pacing(Pacing {
                ceiling: None,
                adaptive: true,
            })),
        });
        let stats = Arc::new(WriteStats::default());
        let started = Instant::now();
        write_concurrently(writer, &stats, tasks, move |_| started.elapsed() < run).await;
        let accepted = bucket.log();
        let total: usize = accepted.iter().map(|c| c.accepted).sum();
        let late: usize = accepted
            .iter()
            .filter(|c| c.at - started >= settle && c.at - started < run)
            .map(|c| c.accepted)
            .sum();
        let rate = late as f64 / (run - settle).as_secs_f64();
        let calls_per_25 = stats.snapshot().batch_write_requests as f64 / (total as f64 / 25.0);
        (rate, calls_per_25)
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_pacing_holds_a_throttled_table_at_its_capacity_with_few_retries() {
        // The retry jitter is the only randomness; all tasks run on this thread.
        fastrand::seed(7);
        for cap in [5_000.0, 20_000.0] {
            let (rate, calls) =
                adaptive(cap, 16, Duration::from_secs(60), Duration::from_secs(10)).await;
            eprintln!(
                "cap {cap}: {rate:.0}/s = {:.3} of cap, {calls:.4} calls per 25",
                rate / cap
            );
            assert!(rate >= 0.97 * cap, "cap {cap}: sustained {rate}");
            assert!(calls <= 1.05, "cap {cap}: {calls} calls per 25 items");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_ceiling_below_the_table_capacity_is_the_rate_and_nothing_is_cut() {
        let bucket = bucket(10_000.0);
        let limiter = Arc::new(WcuLimiter::with_pacing(Pacing {
            ceiling: Some(2_000.0),
            adaptive: true,
        }));
        let writer = LimitedWriter {
            inner: bucket.clone(),
            limiter: limiter.clone(),
        };
        let stats = WriteStats::default();
        // 20,000 WCU at 2,000 WCU/s: 10 s, less the one-second burst.
        for _ in 0..800 {
            write_all(&writer, "t", requests(25), &RetryPolicy::default(), &stats)
                .await
                .unwrap();
        }
        let accepted = bucket.log();
        let secs = (accepted.last().unwrap().at - accepted[0].at).as_secs_f64();
        assert!((8.9..=9.1).contains(&secs), "{secs} s");
        assert_eq!(limiter.cuts(), 0);
        assert_eq!(stats.snapshot().unprocessed_items_retried, 0);
    }
}
