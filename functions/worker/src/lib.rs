//! The worker Lambda: an SQS event source mapping with `ReportBatchItemFailures` delivers file messages;
//! each is restored with `ddb_pitr::distributed::worker::Worker` until the invocation's deadline, and the messages to
//! deliver again are returned as batch item failures.
//!
//! Configuration: `DDB_PITR_CONTROL_TABLE`, `DDB_PITR_QUEUE_URL` (for continuation messages), and optional
//! `DDB_PITR_DEADLINE_MARGIN` (30s), `DDB_PITR_CHECKPOINT_INTERVAL` (10s), `DDB_PITR_LEASE` (2m),
//! `DDB_PITR_MAX_STALLS` (3), `DDB_PITR_INFLIGHT_BATCHES` (8), `DDB_PITR_READ_AHEAD` (5) and
//! `DDB_PITR_FALLBACK_TIMEOUT` (15m, used only when an emulator sends a deadline in the past).

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ddb_pitr::aws::{ClientOptions, Clients, env};
use ddb_pitr::distributed::worker::{Disposition, Worker, WorkerOptions};
use ddb_pitr::engine::Settings;
use ddb_pitr::write::pace::MIN_RATE;
use lambda_runtime::{Diagnostic, LambdaEvent};
use tokio_util::sync::CancellationToken;

pub struct Handler {
    worker: Worker,
    fallback_timeout: Duration,
}

/// Used when an invocation's deadline is already past (local emulators), like Lambda's maximum timeout.
pub const DEFAULT_FALLBACK_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A deadline further in the past than this did not come from Lambda.
const BOGUS_DEADLINE: Duration = Duration::from_secs(24 * 3600);

impl Handler {
    pub fn new(worker: Worker, fallback_timeout: Duration) -> Self {
        Handler {
            worker,
            fallback_timeout,
        }
    }

    /// Reads the configuration from the environment.
    pub async fn from_env() -> Result<Self, ddb_pitr::Error> {
        let clients = Clients::load(&ClientOptions::from_env()).await;
        let defaults = WorkerOptions::default();
        let options = WorkerOptions {
            deadline_margin: env::duration("DDB_PITR_DEADLINE_MARGIN", defaults.deadline_margin)?,
            checkpoint_interval: env::duration(
                "DDB_PITR_CHECKPOINT_INTERVAL",
                defaults.checkpoint_interval,
            )?,
            lease: env::duration("DDB_PITR_LEASE", defaults.lease)?,
            max_stalls: env::number("DDB_PITR_MAX_STALLS", defaults.max_stalls)?,
            // CloudWatch Logs turns the lines into metrics; on by default in Lambda.
            emit_metrics: env::flag("DDB_PITR_METRICS", true)?,
            // Per execution environment; 0 (the template's default) means no cap.
            max_wcu: Some(env::number("DDB_PITR_MAX_WCU", 0.0_f64)?)
                .filter(|r| r.is_finite() && *r >= MIN_RATE),
            settings: Settings {
                inflight_batches: env::number(
                    "DDB_PITR_INFLIGHT_BATCHES",
                    defaults.settings.inflight_batches,
                )?,
                read_ahead: env::number("DDB_PITR_READ_AHEAD", defaults.settings.read_ahead)?,
                ..defaults.settings.clone()
            },
            ..defaults
        };
        Ok(Handler::new(
            Worker::new(
                &clients,
                &env::required("DDB_PITR_CONTROL_TABLE")?,
                &env::required("DDB_PITR_QUEUE_URL")?,
                options,
            ),
            env::duration("DDB_PITR_FALLBACK_TIMEOUT", DEFAULT_FALLBACK_TIMEOUT)?,
        ))
    }

    /// Processes every record of the batch concurrently, all bound by the invocation's deadline.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, Diagnostic> {
        let remaining =
            time_left(event.context.deadline(), SystemTime::now()).unwrap_or_else(|| {
                tracing::warn!(
                    deadline_ms = event.context.deadline,
                    fallback = %humantime_secs(self.fallback_timeout),
                    "the invocation deadline is long past; using DDB_PITR_FALLBACK_TIMEOUT"
                );
                self.fallback_timeout
            });
        let deadline = tokio::time::Instant::now() + remaining;
        let stop = CancellationToken::new();
        let outcomes = futures::future::join_all(event.payload.records.into_iter().map(|record| {
            let stop = &stop;
            async move {
                let body = record.body.unwrap_or_default();
                let outcome = self.worker.handle(&body, Some(deadline), stop).await;
                // The event source mapping leaves a failed message invisible for the queue's whole
                // visibility timeout; the worker's own delay is set here instead.
                if let (Disposition::Retry { after, .. }, Some(receipt)) =
                    (&outcome, &record.receipt_handle)
                    && let Err(e) = self.worker.retry_after(receipt, *after).await
                {
                    tracing::warn!("retry delay not set (the message reappears after the queue's visibility timeout): {e}");
                }
                (record.message_id, outcome)
            }
        }))
        .await;
        let mut response = SqsBatchResponse::default();
        for (id, outcome) in outcomes {
            tracing::info!(message_id = id.as_deref().unwrap_or("?"), outcome = ?outcome, "message handled");
            if let Disposition::Retry { .. } = outcome {
                match id {
                    Some(id) => response.add_failure(id),
                    // Without an id the whole batch must come back; the leases make that harmless.
                    None => {
                        return Err(Diagnostic {
                            error_type: "Retryable".into(),
                            error_message: "an SQS record without messageId must be retried".into(),
                        });
                    }
                }
            }
        }
        Ok(response)
    }
}

/// The time an invocation may work until its deadline, or `None` when the deadline is far in the past and
/// so did not come from Lambda: local emulators (cargo lambda watch) send a fixed deadline in 1970. A
/// deadline that has only just passed is real, and the worker stops at once, saving its checkpoints.
fn time_left(deadline: SystemTime, now: SystemTime) -> Option<Duration> {
    match deadline.duration_since(now) {
        Ok(remaining) => Some(remaining),
        Err(past) if past.duration() > BOGUS_DEADLINE => None,
        Err(_) => Some(Duration::ZERO),
    }
}

fn humantime_secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings read from the environment, with their defaults as the code has them.
    fn code_defaults() -> Vec<(&'static str, String)> {
        let d = WorkerOptions::default();
        let time = |t: Duration| match t.as_secs() {
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        };
        vec![
            ("DDB_PITR_DEADLINE_MARGIN", time(d.deadline_margin)),
            ("DDB_PITR_CHECKPOINT_INTERVAL", time(d.checkpoint_interval)),
            ("DDB_PITR_LEASE", time(d.lease)),
            ("DDB_PITR_MAX_STALLS", d.max_stalls.to_string()),
            (
                "DDB_PITR_INFLIGHT_BATCHES",
                d.settings.inflight_batches.to_string(),
            ),
            ("DDB_PITR_READ_AHEAD", d.settings.read_ahead.to_string()),
            ("DDB_PITR_FALLBACK_TIMEOUT", time(DEFAULT_FALLBACK_TIMEOUT)),
        ]
    }

    /// "`NAME` (default…" in `text`: the default written after each setting's name, up to `:`, `,` or `)`.
    fn documented_default(text: &str, name: &str) -> Option<String> {
        let at = text.find(&format!("`{name}` ("))? + name.len() + 4;
        Some(
            text[at..]
                .chars()
                .take_while(|c| !matches!(c, ':' | ',' | ')'))
                .collect(),
        )
    }

    /// The defaults this file's docs and the README state are the code's: one source of truth.
    #[test]
    fn documented_defaults_are_the_codes() {
        let module_docs: String = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .collect::<Vec<_>>()
            .join(" ");
        let readme = include_str!("../../../README.md").replace('\n', " ");
        for (name, default) in code_defaults() {
            for (doc, text) in [
                ("functions/worker/src/lib.rs", &module_docs),
                ("README.md", &readme),
            ] {
                match documented_default(text, name) {
                    Some(written) => assert_eq!(written, default, "{doc}: {name}"),
                    None => panic!("{doc} does not give the default of {name} ({default})"),
                }
            }
        }
    }

    #[test]
    fn time_left_follows_real_deadlines_and_rejects_bogus_ones() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let left = |deadline| time_left(deadline, now);
        assert_eq!(
            left(now + Duration::from_secs(42)),
            Some(Duration::from_secs(42))
        );
        assert_eq!(left(now - Duration::from_millis(5)), Some(Duration::ZERO));
        assert_eq!(left(now - Duration::from_secs(3600)), Some(Duration::ZERO));
        // What cargo lambda watch sends: 600 000 ms after the epoch.
        let watch = SystemTime::UNIX_EPOCH + Duration::from_millis(600_000);
        assert_eq!(left(watch), None);
    }
}
