//! Provisioned write capacity as a token bucket, on a clock that tests can drive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Time since some fixed start. The seam that lets tests count token refills instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Duration;
}

/// Wall-clock time since the endpoint started.
pub struct SystemClock(Instant);

impl SystemClock {
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(SystemClock(Instant::now()))
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that moves only when told to.
#[derive(Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock::default())
    }

    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// `rate` write units per second, holding at most `capacity`; starts full.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// DynamoDB keeps up to 300 seconds of unused capacity as burst; `burst_seconds` 0 keeps only the
    /// current second's, so the long-run rate and the largest burst are both `wcu`.
    pub fn new(wcu: u64, burst_seconds: u64, now: Duration) -> Self {
        let capacity = wcu as f64 * burst_seconds.max(1) as f64;
        TokenBucket {
            rate: wcu as f64,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    pub fn refill(&mut self, now: Duration) {
        if now > self.last {
            let added = (now - self.last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + added).min(self.capacity);
            self.last = now;
        }
    }

    /// Whether `units` are available (after [`refill`](Self::refill)).
    pub fn fits(&self, units: u64) -> bool {
        self.tokens + 1e-9 >= units as f64
    }

    pub fn take(&mut self, units: u64) {
        self.tokens -= units as f64;
    }

    pub fn tokens(&self) -> f64 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_the_rate_up_to_the_capacity() {
        let mut b = TokenBucket::new(100, 0, Duration::ZERO);
        assert!(b.fits(100));
        b.take(100);
        assert!(!b.fits(1));
        b.refill(Duration::from_millis(500));
        assert!(b.fits(50) && !b.fits(51));
        b.refill(Duration::from_secs(10));
        assert_eq!(b.tokens(), 100.0);
        let mut burst = TokenBucket::new(100, 300, Duration::ZERO);
        burst.take(30_000);
        burst.refill(Duration::from_secs(1000));
        assert_eq!(burst.tokens(), 30_000.0);
    }
}
