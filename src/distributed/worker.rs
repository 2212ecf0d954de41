//! The worker of a distributed restore: takes one file message, leases the file in the control table,
//! restores it from its checkpoint with [`Engine::process_file`], and says what to do with the message.
//!
//! The same [`Worker::handle`] serves the worker Lambda (with the invocation's deadline) and
//! `ddb-pitr worker` on a PC or EC2 ([`run_queue`], which long-polls SQS and keeps messages invisible while
//! it works on them). Both kinds can work on one restore at once: the lease, not the message, decides who
//! works on a file.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::aws::Clients;
use crate::aws::env::process_owner;
use crate::aws::error::{describe, sdk_error};
use crate::aws::metrics::{Metric, emf_line};
use crate::engine::watermark::FilePosition;
use crate::engine::{Engine, FileOutcome, FileRef, Settings};
use crate::error::{Error, Result};
use crate::export::source::{ObjectReader, S3Reader};
use crate::item::wire::RawWrite;
use crate::write::dynamo::DynamoWriter;
use crate::write::pace::{Pacing, paced};
use crate::write::retry::RetryPolicy;
use crate::write::stats::{WriteStats, WriteStatsSnapshot};
use crate::write::{AttemptError, AttemptOutcome, BatchWriter};

use super::control::{Acquired, ControlTable, FileProgress, Lease, RecordStatus, RestorePlan};
use super::queue::{FileMessage, send_message_batch};

/// How a worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Written into leases, for people reading the control table (host, process, Lambda request).
    pub owner: String,
    /// Read and write tuning; the batch size comes from the restore's plan.
    pub settings: Settings,
    /// How long a lease lasts without a checkpoint; renewed by every checkpoint.
    pub lease: Duration,
    pub checkpoint_interval: Duration,
    /// Before a deadline, reading stops this long before it, and in-flight batches are abandoned at half
    /// of it, leaving the rest for saving the checkpoint and sending the continuation.
    pub deadline_margin: Duration,
    /// Consecutive deadline-bound leases without progress after which a file is FAILED: it cannot be
    /// finished within the function's timeout.
    pub max_stalls: u32,
    /// Print one CloudWatch embedded-metric-format line on stdout per lease (see [`crate::aws::metrics`]).
    pub emit_metrics: bool,
    /// Cap on the consumed write units per second of this worker (all its files together).
    pub max_wcu: Option<f64>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            owner: default_owner(),
            settings: Settings::default(),
            lease: Duration::from_secs(120),
            checkpoint_interval: Duration::from_secs(10),
            deadline_margin: Duration::from_secs(30),
            max_stalls: 3,
            emit_metrics: false,
            max_wcu: None,
        }
    }
}

/// `host:pid`, or the Lambda function name when running in Lambda.
pub fn default_owner() -> String {
    process_owner("worker")
}

/// What to do with the message after [`Worker::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Delete the message.
    Ack(Ack),
    /// Leave the message on the queue; it should become visible again after `after`.
    Retry { after: Duration, reason: String },
}

/// Why a message was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// This delivery finished the file.
    Done,
    /// The file was already DONE.
    AlreadyDone,
    /// The file is FAILED: by this delivery (`true`) or an earlier one.
    Failed(bool),
    /// Another worker took the lease over; its delivery finishes the file.
    LeaseLost,
    /// The deadline came first; the checkpoint is saved and a continuation message was sent.
    Continued,
}

/// Processes file messages for any restore recorded in one control table.
pub struct Worker {
    control: ControlTable,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    options: WorkerOptions,
    objects: Arc<dyn ObjectReader>,
    writer: Arc<dyn BatchWriter>,
    stats: Arc<WriteStats>,
    plans: Mutex<HashMap<String, Arc<RestorePlan>>>,
}

impl Worker {
    pub fn new(
        clients: &Clients,
        control_table: &str,
        queue_url: &str,
        options: WorkerOptions,
    ) -> Self {
        let writer = paced(
            Arc::new(DynamoWriter::new(&clients.dynamodb)),
            Pacing {
                ceiling: options.max_wcu,
                adaptive: options.settings.adaptive_rate,
            },
        );
        Worker {
            control: ControlTable::new(clients.dynamodb.clone(), control_table),
            sqs: clients.sqs.clone(),
            queue_url: queue_url.to_owned(),
            options,
            objects: Arc::new(S3Reader::new(clients.exports.s3.clone())),
            writer,
            stats: Arc::default(),
            plans: Mutex::default(),
        }
    }

    /// The same worker writing through `writer` instead of DynamoDB (each file's lease still fences it).
    pub fn with_writer(mut self, writer: Arc<dyn BatchWriter>) -> Self {
        self.writer = writer;
        self
    }

    /// Makes a received message of this worker's queue visible again `after` from now: how a `Retry`'s delay
    /// is honoured (SQS takes whole seconds, at most 12 hours). Without it, a message the Lambda event source
    /// mapping gets back as a batch item failure stays invisible for the queue's whole visibility timeout.
    pub async fn retry_after(&self, receipt_handle: &str, after: Duration) -> Result<()> {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs(after))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error(format!("ChangeMessageVisibility {}", self.queue_url), &e))
    }

    /// Write statistics of every file this worker processed.
    pub fn stats(&self) -> &WriteStats {
        &self.stats
    }

    pub fn options(&self) -> &WorkerOptions {
        &self.options
    }

    /// Handles one message body. With a `deadline` (a Lambda invocation), work stops early enough to save
    /// the checkpoint and enqueue a continuation. Cancelling `stop` stops work the same way and hands the
    /// file back for another delivery.
    pub async fn handle(
        &self,
        body: &str,
        deadline: Option<Instant>,
        stop: &CancellationToken,
    ) -> Disposition {
        match self.try_handle(body, deadline, stop).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "message left for redelivery");
                Disposition::Retry {
                    after: Duration::from_secs(5),
                    reason: e.to_string(),
                }
            }
        }
    }

    async fn try_handle(
        &self,
        body: &str,
        deadline: Option<Instant>,
        stop: &CancellationToken,
    ) -> Result<Disposition> {
        let msg = FileMessage::parse(body)?;
        let plan = self.plan(&msg.restore_id).await?;
        let leased_at = Instant::now();
        let acquired = self
            .control
            .acquire(
                &msg.restore_id,
                msg.export_index,
                &msg.key,
                &self.options.owner,
                self.options.lease,
            )
            .await?;
        let lease = match acquired {
            Acquired::Leased(lease) => lease,
            Acquired::Done => return Ok(Disposition::Ack(Ack::AlreadyDone)),
            Acquired::Failed => return Ok(Disposition::Ack(Ack::Failed(false))),
            Acquired::Busy { owner, expires_in } => {
                return Ok(Disposition::Retry {
                    after: expires_in.max(Duration::from_secs(1)),
                    reason: format!("file is leased by {owner}"),
                });
            }
            Acquired::Missing => {
                return Err(Error::Usage(format!(
                    "restore {} has no file {} in export {}",
                    msg.restore_id, msg.key, msg.export_index
                )));
            }
        };
        tracing::info!(
            restore_id = msg.restore_id,
            export = lease.record.export_id,
            file = lease.record.file.key,
            from_offset = lease.record.position.offset,
            delivery = lease.record.deliveries,
            "file leased"
        );
        Ok(self
            .run_file(&msg, &plan, &lease, leased_at, deadline, stop)
            .await)
    }

    /// The plan of a restore, read once per process.
    async fn plan(&self, restore_id: &str) -> Result<Arc<RestorePlan>> {
        if let Some(plan) = self.plans.lock().expect("plans").get(restore_id) {
            return Ok(plan.clone());
        }
        let header = self.control.require_header(restore_id).await?;
        let plan = Arc::new(header.plan);
        self.plans
            .lock()
            .expect("plans")
            .insert(restore_id.to_owned(), plan.clone());
        Ok(plan)
    }

    /// Works on a leased file, then adds the lease's write statistics to the worker's and reports them.
    async fn run_file(
        &self,
        msg: &FileMessage,
        plan: &RestorePlan,
        lease: &Lease,
        leased_at: Instant,
        deadline: Option<Instant>,
        stop: &CancellationToken,
    ) -> Disposition {
        let started = std::time::Instant::now();
        let lease_stats = Arc::new(WriteStats::default());
        let (progress, position) = watch::channel(lease.record.position);
        let disposition = self
            .run_lease(
                msg,
                plan,
                lease,
                leased_at,
                deadline,
                stop,
                &lease_stats,
                progress,
            )
            .await;
        let writes = lease_stats.snapshot();
        self.stats.add(&writes);
        if self.options.emit_metrics {
            let end = *position.borrow();
            let line = lease_metrics(plan, lease, &disposition, end, &writes, started.elapsed());
            println!("{line}");
        }
        disposition
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_lease(
        &self,
        msg: &FileMessage,
        plan: &RestorePlan,
        lease: &Lease,
        leased_at: Instant,
        deadline: Option<Instant>,
        stop: &CancellationToken,
        lease_stats: &Arc<WriteStats>,
        progress: watch::Sender<FilePosition>,
    ) -> Disposition {
        let record = &lease.record;
        let fence = Arc::new(LeaseFence::new(
            self.writer.clone(),
            fence_deadline(leased_at, self.options.lease),
        ));
        let engine = Engine {
            objects: self.objects.clone(),
            writer: Some(fence.clone()),
            table: plan.table.clone(),
            key: plan.key.clone(),
            settings: Settings {
                batch_size: plan.options.batch_size,
                ..self.options.settings.clone()
            },
            stats: lease_stats.clone(),
        };
        let file = FileRef {
            export_id: &record.export_id,
            export_type: record.export_type,
            bucket: &record.bucket,
            file: &record.file,
        };
        // Opened before the loop: one HeadObject, just after the lease was taken.
        let opened = engine
            .open(file, record.position, record.object_etag.as_deref())
            .await;
        let (start, object_etag) = match &opened {
            Ok(open) => (open.start(), open.etag().map(str::to_owned)),
            Err(_) => (record.position, record.object_etag.clone()),
        };
        // Before any checkpoint can read it: a position is always saved with the object it belongs to.
        progress.send_replace(start);
        // What every lease-conditioned write records: the position, the object it was read from, and all
        // leases' write statistics.
        let mark = |position: FilePosition| FileProgress {
            position,
            object_etag: object_etag.clone(),
            writes: record.writes.plus(&lease_stats.snapshot()),
        };
        let position = progress.subscribe();
        let file_stop = stop.child_token();
        // Boxed so that it can be dropped (abandoning in-flight batches) before this function returns.
        let mut work = Box::pin(async {
            match &opened {
                Ok(open) => engine.process_file(file, open, &progress, &file_stop).await,
                Err(e) => Err(e.clone()),
            }
        });

        let margin = self.options.deadline_margin;
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let soft = tokio::time::sleep_until(deadline.map_or(far, |d| d - margin));
        let hard = tokio::time::sleep_until(deadline.map_or(far, |d| d - margin / 2));
        tokio::pin!(soft, hard);
        let mut tick = tokio::time::interval(self.options.checkpoint_interval);
        tick.reset();
        let mut saving = FuturesUnordered::new();
        let (mut deadline_hit, mut lost) = (false, false);
        let result: Option<Result<FileOutcome>> = loop {
            tokio::select! {
                r = &mut work => break Some(r),
                _ = &mut soft, if !deadline_hit => {
                    deadline_hit = true;
                    file_stop.cancel();
                }
                _ = &mut hard => {
                    deadline_hit = true;
                    break None;
                }
                // Every tick saves the position and renews the lease, even when the position has not
                // moved (a resumed file first skips what is already written).
                _ = tick.tick(), if saving.is_empty() && !lost => {
                    let p = *position.borrow();
                    let m = mark(p);
                    let lease_for = self.options.lease;
                    saving.push(async move {
                        let sent = Instant::now();
                        (sent, self.control.checkpoint(lease, &m, lease_for).await)
                    });
                }
                Some((sent, saved)) = saving.next() => match saved {
                    Ok(true) => fence.renew(fence_deadline(sent, self.options.lease)),
                    Ok(false) => {
                        tracing::warn!(file = record.file.key, "lease taken over by another worker; stopping");
                        lost = true;
                        fence.lose();
                        file_stop.cancel();
                    }
                    Err(e) => tracing::warn!(file = record.file.key, "checkpoint not saved (the previous one stays valid): {e}"),
                },
            }
        };
        // Abandoned batches (hard deadline) are above the acknowledged position and are replayed later.
        drop(work);
        while let Some((_, saved)) = saving.next().await {
            lost |= matches!(saved, Ok(false));
        }
        if fence.tripped() && !lost {
            tracing::warn!(
                file = record.file.key,
                "the lease ran out before it was renewed (checkpoints failed); writes stopped"
            );
            lost = true;
        }
        let position = *position.borrow();
        let end = mark(position);
        if lost {
            return self.lease_lost(lease, &end).await;
        }
        let file_name = &record.file.key;
        match result {
            Some(Ok(o)) if o.complete => {
                return match self
                    .control
                    .complete(lease, &mark(o.position), o.compressed_bytes)
                    .await
                {
                    Ok(true) => {
                        tracing::info!(
                            file = file_name,
                            puts = o.position.puts,
                            deletes = o.position.deletes,
                            "file done"
                        );
                        Disposition::Ack(Ack::Done)
                    }
                    Ok(false) => self.lease_lost(lease, &end).await,
                    Err(e) => self.give_back(lease, &end, false, e).await,
                };
            }
            // Refused credentials or permissions: handed back a bounded number of times (the stall
            // budget), a minute apart, then FAILED with what to fix.
            Some(Err(e @ Error::Denied { .. })) => {
                let stalled = position == start;
                if !stall_budget_left(stalled, record.stalls, self.options.max_stalls) {
                    let message = format!(
                        "{e} (refused in {} consecutive deliveries without progress)",
                        record.stalls + 1
                    );
                    tracing::error!(file = file_name, "file failed: {message}");
                    return self.fail_file(lease, &end, &message, false).await;
                }
                tracing::warn!(
                    file = file_name,
                    "credentials refused; handing the file back: {e}"
                );
                return self.give_back(lease, &end, stalled, e).await;
            }
            // Lines below the position may come from bytes that failed the check: the file starts again
            // from its first line whenever it is restored again (after the object is replaced).
            Some(Err(e @ Error::FileIntegrity { .. })) => {
                tracing::error!(file = file_name, "file failed: {e}");
                let from_start = FileProgress {
                    position: FilePosition::default(),
                    object_etag: None,
                    ..end.clone()
                };
                return self
                    .fail_file(lease, &from_start, &e.to_string(), false)
                    .await;
            }
            Some(Err(e)) if !e.is_retryable() => {
                tracing::error!(file = file_name, "file failed: {e}");
                return self.fail_file(lease, &end, &e.to_string(), false).await;
            }
            Some(Err(e)) if !deadline_hit => {
                return self.give_back(lease, &end, false, e).await;
            }
            // Stopped before the end of the file: by the deadline, or by `stop`.
            _ => {}
        }
        if !deadline_hit {
            return self.give_back(lease, &end, false, Error::Interrupted).await;
        }
        let stalled = position == start;
        if !stall_budget_left(stalled, record.stalls, self.options.max_stalls) {
            let message = format!(
                "export {}, file {file_name}: {} consecutive invocations ended at their deadline without \
                 restoring a line past byte offset {}; raise the worker function's timeout or restore this \
                 export with `ddb-pitr worker` on EC2",
                record.export_id,
                record.stalls + 1,
                position.offset
            );
            tracing::error!("{message}");
            return self.fail_file(lease, &end, &message, true).await;
        }
        match self.control.release(lease, &end, stalled).await {
            Ok(true) => {}
            Ok(false) => return self.lease_lost(lease, &end).await,
            Err(e) => {
                return Disposition::Retry {
                    after: Duration::ZERO,
                    reason: format!("checkpoint not saved before the deadline: {e}"),
                };
            }
        }
        match send_message_batch(&self.sqs, &self.queue_url, vec![msg.to_body()]).await {
            Ok(()) => {
                tracing::info!(
                    file = file_name,
                    offset = position.offset,
                    lines = position.lines,
                    "deadline reached; checkpoint saved and continuation enqueued"
                );
                Disposition::Ack(Ack::Continued)
            }
            // The original message comes back after its visibility timeout instead.
            Err(e) => Disposition::Retry {
                after: Duration::ZERO,
                reason: format!("continuation not enqueued: {e}"),
            },
        }
    }

    /// A write conditioned on the lease failed. The message is acknowledged only when the file is finished or
    /// another worker holds a lease on it (that worker's own delivery carries the file on); otherwise it is
    /// left for redelivery, so that no PENDING file is ever left without a message.
    async fn lease_lost(&self, lease: &Lease, end: &FileProgress) -> Disposition {
        let record = &lease.record;
        let current = self
            .control
            .file(&lease.restore_id, record.export_index, &record.file.key)
            .await;
        let retry = |reason: String| Disposition::Retry {
            after: Duration::from_secs(1),
            reason,
        };
        match current {
            Ok(Some(f)) => match f.status {
                RecordStatus::Done => Disposition::Ack(Ack::AlreadyDone),
                RecordStatus::Failed => Disposition::Ack(Ack::Failed(false)),
                RecordStatus::Pending => match f.lease_token {
                    Some(token) if token != lease.token => {
                        tracing::warn!(
                            file = record.file.key,
                            holder = f.lease_owner.unwrap_or_default(),
                            "lease taken over by another worker; its delivery finishes the file"
                        );
                        Disposition::Ack(Ack::LeaseLost)
                    }
                    Some(_) => {
                        let cause = Error::Aws {
                            operation: format!("UpdateItem {}", self.control.name()),
                            message: format!(
                                "a write conditioned on the lease of {} failed although the lease is still \
                                 held",
                                record.file.key
                            ),
                            retryable: true,
                        };
                        self.give_back(lease, end, false, cause).await
                    }
                    None => retry(format!(
                        "the lease of {} was released by another worker; the file is PENDING",
                        record.file.key
                    )),
                },
            },
            Ok(None) => retry(format!("file item {} disappeared", record.file.key)),
            Err(e) => retry(format!("lease lost; file state unknown: {e}")),
        }
    }

    /// Marks the file FAILED with `message`; if that cannot be saved, hands it back (`stalled` as for
    /// [`Worker::give_back`]).
    async fn fail_file(
        &self,
        lease: &Lease,
        end: &FileProgress,
        message: &str,
        stalled: bool,
    ) -> Disposition {
        match self.control.fail(lease, end, message).await {
            Ok(true) => Disposition::Ack(Ack::Failed(true)),
            Ok(false) => self.lease_lost(lease, end).await,
            Err(e) => self.give_back(lease, end, stalled, e).await,
        }
    }

    /// Saves the position, releases the lease and leaves the message for another delivery.
    async fn give_back(
        &self,
        lease: &Lease,
        end: &FileProgress,
        stalled: bool,
        cause: Error,
    ) -> Disposition {
        if let Err(e) = self.control.release(lease, end, stalled).await {
            tracing::warn!(
                "lease not released (it expires on its own; the previous checkpoint stays valid): {e}"
            );
        }
        let after = match cause {
            Error::Interrupted => Duration::ZERO,
            Error::Denied { .. } => DENIED_RETRY,
            _ => RetryPolicy::default().backoff(lease.record.deliveries.min(10) as u32),
        };
        Disposition::Retry {
            after,
            reason: cause.to_string(),
        }
    }
}

/// The local deadline of a lease renewed at `sent` for `lease`: nine tenths of it, so that it passes before
/// the control table's expiry (written a little after `sent`, and judged by other hosts' clocks).
fn fence_deadline(sent: Instant, lease: Duration) -> Instant {
    sent + lease.mul_f64(0.9)
}

/// The writes of one leased file. None starts once the lease is lost or its local deadline has passed
/// without a renewal, and those in flight then are abandoned, so a worker whose lease another worker may
/// have taken over writes nothing more (the file's next holder, and the exports after it, are never
/// overwritten by a stale one).
struct LeaseFence {
    inner: Arc<dyn BatchWriter>,
    deadline: Mutex<Instant>,
    lost: CancellationToken,
}

impl LeaseFence {
    fn new(inner: Arc<dyn BatchWriter>, deadline: Instant) -> Self {
        LeaseFence {
            inner,
            deadline: Mutex::new(deadline),
            lost: CancellationToken::new(),
        }
    }

    fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn renew(&self, deadline: Instant) {
        let mut d = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        *d = (*d).max(deadline);
    }

    fn lose(&self) {
        self.lost.cancel();
    }

    /// True once a write was refused or abandoned, or the lease was lost.
    fn tripped(&self) -> bool {
        self.lost.is_cancelled()
    }

    fn fenced() -> AttemptError {
        AttemptError::Rejected(
            "the file's lease ran out or was taken over: the write was not sent, or was abandoned"
                .into(),
        )
    }
}

impl BatchWriter for LeaseFence {
    fn write_batch<'a>(
        &'a self,
        table: &'a str,
        requests: &'a [RawWrite],
    ) -> BoxFuture<'a, std::result::Result<AttemptOutcome, AttemptError>> {
        Box::pin(async move {
            let mut deadline = self.deadline();
            if self.lost.is_cancelled() || Instant::now() >= deadline {
                self.lost.cancel();
                return Err(Self::fenced());
            }
            let call = self.inner.write_batch(table, requests);
            tokio::pin!(call);
            loop {
                tokio::select! {
                    r = &mut call => return r,
                    _ = self.lost.cancelled() => return Err(Self::fenced()),
                    _ = tokio::time::sleep_until(deadline) => {
                        let renewed = self.deadline();
                        if renewed > deadline {
                            deadline = renewed;
                        } else {
                            self.lost.cancel();
                            return Err(Self::fenced());
                        }
                    }
                }
            }
        })
    }
}

/// How long a file whose calls were refused for credentials or permissions waits before it is tried again:
/// long enough for IAM changes to apply.
pub const DENIED_RETRY: Duration = Duration::from_secs(60);

/// Whether a file whose delivery made no progress (`stalled`: it reached its deadline, or its calls were
/// refused for credentials) after `stalls` such deliveries in a row may be handed back once more; with
/// progress it always may. Otherwise it is FAILED.
fn stall_budget_left(stalled: bool, stalls: u32, max_stalls: u32) -> bool {
    !stalled || stalls + 1 < max_stalls
}

/// How `ddb-pitr worker` polls its queue.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    pub queue_url: String,
    /// Files processed at once.
    pub concurrency: usize,
    /// Long-poll wait of each ReceiveMessage (at most 20 s).
    pub wait_time: Duration,
    /// Visibility timeout of received messages, renewed while a file is processed.
    pub visibility: Duration,
    /// Exit after this long without messages or work.
    pub idle_exit: Option<Duration>,
}

/// What a queue worker did before it exited.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub messages: u64,
    pub files_done: u64,
    pub files_failed: u64,
    pub continued: u64,
    pub skipped: u64,
    pub returned: u64,
    /// ReceiveMessage calls that failed and were retried after a backoff.
    pub receive_errors: u64,
}

/// Backoff between failed ReceiveMessage calls (full jitter, at most the cap).
const RECEIVE_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    base: Duration::from_millis(200),
    cap: Duration::from_secs(20),
};

/// Long-polls the queue and processes messages until `shutdown` resolves (work in progress is stopped,
/// checkpointed and handed back to the queue) or the queue stays idle for `idle_exit`. A failed
/// ReceiveMessage (the network, throttling, credentials being renewed) is logged and retried with backoff
/// while the files in progress go on; time spent failing counts as idle.
pub async fn run_queue(
    worker: &Worker,
    opts: &QueueOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<QueueStats> {
    let stop = CancellationToken::new();
    let mut stats = QueueStats::default();
    let mut inflight = FuturesUnordered::new();
    let mut receive = None;
    let mut idle_since = Instant::now();
    let idle = tokio::time::sleep(opts.idle_exit.unwrap_or(Duration::MAX / 4));
    // After a failed ReceiveMessage: no receive until this sleep ends.
    let mut failures = 0u32;
    let retry = tokio::time::sleep(Duration::ZERO);
    let mut retrying = false;
    tokio::pin!(shutdown, idle, retry);
    loop {
        let want = opts.concurrency.saturating_sub(inflight.len()).min(10);
        if receive.is_none() && want > 0 && !stop.is_cancelled() && !retrying {
            receive = Some(
                worker
                    .sqs
                    .receive_message()
                    .queue_url(&opts.queue_url)
                    .max_number_of_messages(want as i32)
                    .wait_time_seconds(opts.wait_time.as_secs().min(20) as i32)
                    .visibility_timeout(secs(opts.visibility))
                    .send()
                    .boxed(),
            );
        }
        if let Some(limit) = opts.idle_exit {
            idle.as_mut().reset(idle_since + limit);
        }
        tokio::select! {
            _ = &mut shutdown, if !stop.is_cancelled() => {
                tracing::info!(in_flight = inflight.len(), "shutdown requested: checkpointing files in progress");
                stop.cancel();
            }
            Some(d) = inflight.next() => {
                count(&mut stats, &d);
                idle_since = Instant::now();
            }
            _ = &mut retry, if retrying => {
                retrying = false;
            }
            out = async { receive.as_mut().expect("guarded").await }, if receive.is_some() => {
                receive = None;
                match out {
                    Err(e) => {
                        let delay = RECEIVE_RETRY.backoff(failures);
                        failures = failures.saturating_add(1);
                        stats.receive_errors += 1;
                        tracing::warn!(
                            failures,
                            "ReceiveMessage {} failed, retrying in {}: {}",
                            opts.queue_url,
                            humantime::format_duration(Duration::from_millis(delay.as_millis() as u64)),
                            describe(&e)
                        );
                        retry.as_mut().reset(Instant::now() + delay);
                        retrying = true;
                    }
                    Ok(out) => {
                        failures = 0;
                        for m in out.messages.unwrap_or_default() {
                            if stop.is_cancelled() {
                                // Received while shutting down: hand it back at once rather than after
                                // its visibility timeout.
                                hand_back(worker, &m).await;
                                continue;
                            }
                            stats.messages += 1;
                            idle_since = Instant::now();
                            inflight.push(process_message(worker, opts, m, &stop));
                        }
                    }
                }
            }
            _ = &mut idle, if opts.idle_exit.is_some() && inflight.is_empty() => {
                tracing::info!("no messages for {}; exiting", humantime::format_duration(opts.idle_exit.unwrap_or_default()));
                break;
            }
        }
        // A long poll in flight is awaited (at most `wait_time`) so that nothing it returns is lost.
        if stop.is_cancelled() && inflight.is_empty() && receive.is_none() {
            break;
        }
    }
    Ok(stats)
}

/// The EMF line of one lease: items and bytes restored, rates, and the write statistics that show
/// throttling (see [`crate::aws::metrics`]).
fn lease_metrics(
    plan: &RestorePlan,
    lease: &Lease,
    disposition: &Disposition,
    end: FilePosition,
    writes: &WriteStatsSnapshot,
    elapsed: Duration,
) -> String {
    let start = lease.record.position;
    let items = end.lines.saturating_sub(start.lines) as f64;
    let bytes = end.offset.saturating_sub(start.offset) as f64;
    let seconds = elapsed.as_secs_f64();
    let count = |name, value: u64| Metric {
        name,
        value: value as f64,
        unit: "Count",
    };
    let outcome = match disposition {
        Disposition::Ack(a) => format!("{a:?}"),
        Disposition::Retry { .. } => "Retry".to_owned(),
    };
    emf_line(
        std::time::SystemTime::now(),
        &[("Table", &plan.table)],
        &[
            Metric {
                name: "ItemsRestored",
                value: items,
                unit: "Count",
            },
            Metric {
                name: "ItemsPerSecond",
                value: items / seconds,
                unit: "Count/Second",
            },
            Metric {
                name: "DecompressedBytesPerSecond",
                value: bytes / seconds,
                unit: "Bytes/Second",
            },
            count("BatchWriteRequests", writes.batch_write_requests),
            count("Throttles", writes.throttled_requests),
            count("Retries", writes.retries),
            count("UnprocessedItemsRetried", writes.unprocessed_items_retried),
            count("ServerErrors", writes.server_errors),
            Metric {
                name: "ConsumedWCU",
                value: writes.consumed_wcu,
                unit: "Count",
            },
            Metric {
                name: "LeaseSeconds",
                value: seconds,
                unit: "Seconds",
            },
        ],
        &[
            ("RestoreId", plan.restore_id.clone().into()),
            ("ExportId", lease.record.export_id.clone().into()),
            ("File", lease.record.file.key.clone().into()),
            ("Outcome", outcome.into()),
            ("Offset", end.offset.into()),
            ("Owner", lease.owner.clone().into()),
        ],
    )
}

fn count(stats: &mut QueueStats, d: &Disposition) {
    match d {
        Disposition::Ack(Ack::Done) => stats.files_done += 1,
        Disposition::Ack(Ack::Failed(true)) => stats.files_failed += 1,
        Disposition::Ack(Ack::Continued) => stats.continued += 1,
        Disposition::Ack(_) => stats.skipped += 1,
        Disposition::Retry { .. } => stats.returned += 1,
    }
}

/// Processes one received message while keeping it invisible, then deletes it or hands it back.
async fn process_message(
    worker: &Worker,
    opts: &QueueOptions,
    message: aws_sdk_sqs::types::Message,
    stop: &CancellationToken,
) -> Disposition {
    let receipt = message.receipt_handle.clone().unwrap_or_default();
    let body = message.body.unwrap_or_default();
    let handle = worker.handle(&body, None, stop);
    tokio::pin!(handle);
    let mut heartbeat = tokio::time::interval((opts.visibility / 3).max(Duration::from_secs(1)));
    heartbeat.reset();
    let disposition = loop {
        tokio::select! {
            d = &mut handle => break d,
            _ = heartbeat.tick() => {
                if let Err(e) = worker.sqs.change_message_visibility()
                    .queue_url(&opts.queue_url)
                    .receipt_handle(&receipt)
                    .visibility_timeout(secs(opts.visibility))
                    .send()
                    .await
                {
                    tracing::warn!("message visibility not extended: {}", describe(&e));
                }
            }
        }
    };
    let result = match &disposition {
        Disposition::Ack(_) => worker
            .sqs
            .delete_message()
            .queue_url(&opts.queue_url)
            .receipt_handle(&receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| describe(&e)),
        Disposition::Retry { after, reason } => {
            tracing::info!(after = ?after, "message handed back: {reason}");
            worker
                .retry_after(&receipt, *after)
                .await
                .map_err(|e| e.to_string())
        }
    };
    if let Err(e) = result {
        // The message reappears when its visibility timeout ends; the lease makes that harmless.
        tracing::warn!("message not settled: {e}");
    }
    disposition
}

async fn hand_back(worker: &Worker, m: &aws_sdk_sqs::types::Message) {
    if let Err(e) = worker
        .retry_after(m.receipt_handle().unwrap_or_default(), Duration::ZERO)
        .await
    {
        tracing::warn!("message not handed back (it reappears after its visibility timeout): {e}");
    }
}

/// SQS takes whole seconds, at most 12 hours.
fn secs(d: Duration) -> i32 {
    d.as_secs().min(12 * 3600) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that stalls (refused for its credentials, or at its deadline) is handed back while deliveries
    /// without progress stay below the stall budget; a delivery that made progress never uses it up.
    #[test]
    fn refused_files_are_handed_back_a_bounded_number_of_times() {
        let max = WorkerOptions::default().max_stalls;
        assert_eq!(max, 3);
        assert!(stall_budget_left(true, 0, max));
        assert!(stall_budget_left(true, 1, max));
        assert!(!stall_budget_left(true, 2, max));
        assert!(stall_budget_left(false, 2, max));
        assert!(stall_budget_left(false, 100, max));
    }
}
