//! Progress on stderr: a bar with rate and ETA on a terminal, a log line every few seconds otherwise. The
//! rate and the ETA count only this run's items: after a resume, the items restored before are shown apart.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The bar on screen, if any, for [`AroundBar`].
static DRAWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// stderr for log lines: a drawn progress bar steps aside for each one (its line cleared, the log line
/// written, the bar drawn again below it), so that no log line is glued onto the bar's line. Errors are
/// dropped, like [`std::io::sink`]'s, never raised: a log line must not end a run.
pub struct AroundBar;

impl Write for AroundBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let write = || {
            let _ = std::io::stderr().write_all(buf);
        };
        match DRAWN.lock().ok().and_then(|d| d.clone()) {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    /// Items restored by earlier runs (the checkpoint's), at the start of this one.
    before: u64,
    started: Instant,
    last_log: std::sync::Mutex<Instant>,
    log_every: Duration,
}

/// Items per second of this run: what was done since the start, over the time since the start.
fn rate(done: u64, before: u64, elapsed: Duration) -> f64 {
    done.saturating_sub(before) as f64 / elapsed.as_secs_f64().max(0.001)
}

/// `1h 2m`, `3m 4s`, `5s`: the time left at this run's rate, or `?` before there is one.
fn eta(done: u64, before: u64, total: u64, elapsed: Duration) -> String {
    let r = rate(done, before, elapsed);
    if r <= 0.0 || done <= before {
        return "?".into();
    }
    let secs = (total.saturating_sub(done) as f64 / r).round() as u64;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

impl Progress {
    /// `total` is the number of items (lines) of every export in the chain; `before`, how many of them
    /// earlier runs restored.
    pub fn new(total: u64, before: u64, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = if before > 0 {
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} items ({before} before this \
                 run) {rate} ETA {left}"
            } else {
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} items {rate} ETA {left}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .with_key("before", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{}", indicatif::HumanCount(before));
                    })
                    .with_key("rate", move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} items/s", rate(s.pos(), before, s.elapsed()));
                    })
                    .with_key("left", move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{}", eta(s.pos(), before, total, s.elapsed()));
                    }),
            );
            bar.set_position(before);
            if let Ok(mut drawn) = DRAWN.lock() {
                *drawn = Some(bar.clone());
            }
            bar
        });
        Progress {
            bar,
            total,
            before,
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
        let elapsed = self.started.elapsed();
        tracing::info!(
            done,
            total = self.total,
            before = self.before,
            percent = format!("{:.1}", 100.0 * done as f64 / self.total.max(1) as f64),
            "restored {done} of {} items: {} this run at {:.0} items/s{}, ETA {}",
            self.total,
            done.saturating_sub(self.before),
            rate(done, self.before, elapsed),
            if self.before > 0 {
                format!(", {} before it", self.before)
            } else {
                String::new()
            },
            eta(done, self.before, self.total, elapsed)
        );
    }

    /// Clears the bar, so that nothing stale stays on the screen and the next line starts on its own.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            if let Ok(mut drawn) = DRAWN.lock() {
                *drawn = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_and_eta_count_only_this_runs_items() {
        let ten = Duration::from_secs(10);
        // 28,000 restored before, 17,000 in this run's 10 s: 1,700 items/s, not 4,500.
        assert_eq!(rate(45_000, 28_000, ten), 1_700.0);
        assert_eq!(eta(45_000, 28_000, 45_000 + 1_700 * 130, ten), "2m 10s");
        assert_eq!(eta(28_000, 28_000, 50_000, ten), "?");
        assert_eq!(eta(0, 0, 36_000_000, Duration::from_secs(1)), "?");
        assert_eq!(eta(1_000, 0, 7_201_000, Duration::from_secs(1)), "2h 0m");
    }
}
