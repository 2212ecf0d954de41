//! Progress on stderr: a bar with rate and ETA on a terminal, a log line every few seconds otherwise.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_log: std::sync::Mutex<Instant>,
    log_every: Duration,
}

impl Progress {
    /// `total` is the number of items (lines) of every export in the chain.
    pub fn new(total: u64, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} items {rate} ETA {eta}",
                )
                .expect("valid template")
                .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} items/s", state.per_sec());
                }),
            );
            bar
        });
        Progress {
            bar,
            total,
            started: Instant::now(),
            last_log: std::sync::Mutex::new(Instant::now()),
            log_every: Duration::from_secs(10),
        }
    }

    /// Reports the number of items done so far (including items done by earlier runs).
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let mut last = self.last_log.lock().expect("progress lock");
        if last.elapsed() < self.log_every {
            return;
        }
        *last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            done,
            total = self.total,
            percent = format!("{:.1}", 100.0 * done as f64 / self.total.max(1) as f64),
            "restored {done} of {} items ({:.0} items/s since start)",
            self.total,
            done as f64 / secs
        );
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
