//! A local restore after pre-flight: the chain export by export, each with up to `workers` files in
//! parallel through the engine, with the checkpoint saved periodically, at each export boundary and on
//! shutdown; and the report of however it ended.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use futures::stream::FuturesUnordered;
use futures::{StreamExt, stream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::{now, rfc3339};
use crate::engine::Engine;
use crate::engine::watermark::FilePosition;
use crate::error::{Error, Result};
use crate::export::chain::Discontinuity;
use crate::export::manifest::{DataFile, Export};
use crate::preflight::file_ref;
use crate::report::{
    ErrorReport, ExportReport, FileReport, FileStatus, LatencyReport, REPORT_FORMAT, Report,
    RunStatus, Totals,
};
use crate::write::stats::WriteStats;

use super::RestoreOptions;
use super::checkpoint::{Checkpoint, CheckpointStore, FileState};
use super::progress::Progress;

/// A file being processed: the position the engine publishes, and the ETag of the object it reads.
pub(super) struct Active {
    position: watch::Receiver<FilePosition>,
    etag: Option<String>,
}

/// The state of a restore after pre-flight; it outlives the work so that the checkpoint and the report
/// can be written whatever way the work ended.
pub(super) struct Run<'a> {
    pub(super) opts: &'a RestoreOptions,
    pub(super) engine: Engine,
    pub(super) exports: Vec<Export>,
    pub(super) gaps: Vec<Discontinuity>,
    pub(super) store: Option<CheckpointStore>,
    pub(super) checkpoint: Mutex<Checkpoint>,
    /// Positions of files being processed, published by the engine, with the ETag of the object read.
    pub(super) active: Mutex<HashMap<(usize, String), Active>>,
    pub(super) files: Mutex<Vec<Vec<FileReport>>>,
    /// Where each file of this run started, to count this run's items.
    pub(super) initial: Mutex<Checkpoint>,
    pub(super) last_saved: Mutex<Option<Checkpoint>>,
    pub(super) saving: tokio::sync::Mutex<()>,
    pub(super) errors: Mutex<Vec<Error>>,
    pub(super) stop: CancellationToken,
    pub(super) progress: Progress,
    pub(super) total_items: u64,
}

impl<'a> Run<'a> {
    pub(super) fn new(
        opts: &'a RestoreOptions,
        engine: Engine,
        exports: Vec<Export>,
        gaps: Vec<Discontinuity>,
        checkpoint: Checkpoint,
        store: Option<CheckpointStore>,
    ) -> Self {
        let files = exports
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.files
                    .iter()
                    .map(|f| {
                        let state = checkpoint.exports[i].files.get(&f.key);
                        let position = state.map(|s| s.position).unwrap_or_default();
                        let already = checkpoint.exports[i].done || state.is_some_and(|s| s.done);
                        FileReport {
                            key: f.key.clone(),
                            status: if already {
                                FileStatus::AlreadyDone
                            } else {
                                FileStatus::Pending
                            },
                            expected_items: f.item_count,
                            items_put: position.puts,
                            items_deleted: position.deletes,
                            decompressed_bytes: position.offset,
                            compressed_bytes: 0,
                            md5_verified: false,
                            resumed_from_offset: position.offset,
                            error: None,
                        }
                    })
                    .collect()
            })
            .collect();
        let total_items = exports.iter().map(Export::item_count).sum();
        let before = lines_done(&checkpoint, &exports);
        Run {
            opts,
            engine,
            gaps,
            store,
            initial: Mutex::new(checkpoint.clone()),
            last_saved: Mutex::new(Some(checkpoint.clone())),
            saving: tokio::sync::Mutex::new(()),
            checkpoint: Mutex::new(checkpoint),
            exports,
            active: Mutex::default(),
            files: Mutex::new(files),
            errors: Mutex::default(),
            stop: CancellationToken::new(),
            progress: Progress::new(total_items, before, opts.progress_bar),
            total_items,
        }
    }

    pub(super) async fn main(
        &self,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> Result<()> {
        let mut work = Box::pin(self.work());
        // Periodic saves run beside the work, not inside it, so a slow PutObject never pauses the writers.
        let mut saving = FuturesUnordered::new();
        let mut save_every = tokio::time::interval(self.opts.checkpoint_interval);
        let mut redraw = tokio::time::interval(Duration::from_millis(250));
        let deadline = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
        tokio::pin!(deadline);
        let mut interrupted = false;
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = shutdown.as_mut(), if !interrupted => {
                    interrupted = true;
                    tracing::warn!(
                        "shutdown requested: reading stopped, waiting up to {} for in-flight batches",
                        humantime::format_duration(self.opts.shutdown_timeout)
                    );
                    self.stop.cancel();
                    deadline.as_mut().reset(tokio::time::Instant::now() + self.opts.shutdown_timeout);
                }
                _ = &mut deadline, if interrupted => {
                    tracing::warn!("in-flight batches did not finish in time; they will be replayed on resume");
                    break Err(Error::Interrupted);
                }
                _ = save_every.tick(), if saving.is_empty() => saving.push(self.save_checkpoint()),
                Some(()) = saving.next() => {}
                _ = redraw.tick() => self.progress.set(self.items_done()),
            }
        };
        // Unfinished work (shutdown deadline) is abandoned here, releasing anything it held; batches it had
        // in flight stay above the checkpoint and are replayed on resume.
        drop(work);
        while saving.next().await.is_some() {}
        self.progress.set(self.items_done());
        self.progress.finish();
        self.save_checkpoint().await;
        match result {
            Ok(()) if interrupted => Err(Error::Interrupted),
            other => other,
        }
    }

    pub(super) async fn work(&self) -> Result<()> {
        for (i, export) in self.exports.iter().enumerate() {
            if self.checkpoint.lock().expect("checkpoint").exports[i].done {
                tracing::info!(
                    export = export.id(),
                    "already restored according to the checkpoint"
                );
                continue;
            }
            tracing::info!(
                export = export.id(),
                files = export.files.len(),
                items = export.item_count(),
                "restoring export {} of {}",
                i + 1,
                self.exports.len()
            );
            stream::iter(export.files.iter().enumerate())
                .for_each_concurrent(self.opts.workers.max(1), |(j, file)| {
                    self.run_file(i, j, file)
                })
                .await;
            if let Some(first) = self.errors.lock().expect("errors").first() {
                return Err(first.clone());
            }
            if self.stop.is_cancelled() {
                return Err(Error::Interrupted);
            }
            self.checkpoint.lock().expect("checkpoint").exports[i].done = true;
            self.save_checkpoint().await;
        }
        Ok(())
    }

    pub(super) async fn run_file(&self, i: usize, j: usize, file: &DataFile) {
        if self.stop.is_cancelled() {
            return;
        }
        let state = self.checkpoint.lock().expect("checkpoint").exports[i]
            .files
            .get(&file.key)
            .cloned();
        if state.as_ref().is_some_and(|s| s.done) {
            return;
        }
        let (start, etag) = state.map_or((FilePosition::default(), None), |s| (s.position, s.etag));
        let f = file_ref(&self.exports[i], file);
        let id = (i, file.key.clone());
        let (result, position) = match self.engine.open(f, start, etag.as_deref()).await {
            Ok(open) => {
                if open.restarted() {
                    self.forget(i, j, &file.key);
                }
                // The channel starts at the position the file starts from, so that a checkpoint taken at
                // any moment pairs a position with the object it belongs to.
                let (tx, rx) = watch::channel(open.start());
                let etag = open.etag().map(str::to_owned);
                self.active
                    .lock()
                    .expect("active")
                    .insert(id.clone(), Active { position: rx, etag });
                let result = self.engine.process_file(f, &open, &tx, &self.stop).await;
                (result, *tx.borrow())
            }
            Err(e) => (Err(e), start),
        };
        let done = matches!(result, Ok(o) if o.complete);
        {
            let mut cp = self.checkpoint.lock().expect("checkpoint");
            let active = self.active.lock().expect("active").remove(&id);
            let files = &mut cp.exports[i].files;
            if matches!(result, Err(Error::FileIntegrity { .. })) {
                // Lines below the position may come from bytes that failed the check: the file starts
                // again from its first line on resume (after the object is replaced).
                files.remove(&file.key);
            } else if done || position != FilePosition::default() {
                let etag = active.and_then(|a| a.etag);
                files.insert(
                    file.key.clone(),
                    FileState {
                        position,
                        done,
                        etag,
                    },
                );
            }
        }
        let mut files = self.files.lock().expect("files");
        let report = &mut files[i][j];
        report.items_put = position.puts;
        report.items_deleted = position.deletes;
        report.decompressed_bytes = position.offset;
        match result {
            Ok(outcome) if outcome.complete => {
                report.status = FileStatus::Done;
                report.md5_verified = true;
                report.compressed_bytes = outcome.compressed_bytes;
            }
            Ok(_) => report.status = FileStatus::Partial,
            Err(e) => {
                tracing::error!("{e}");
                report.status = FileStatus::Failed;
                report.error = Some(e.to_string());
                self.errors.lock().expect("errors").push(e);
                self.stop.cancel();
            }
        }
    }

    /// A file restarts from its first line: its position in the checkpoint (and in what this run counts
    /// from) no longer holds.
    fn forget(&self, i: usize, j: usize, key: &str) {
        self.checkpoint.lock().expect("checkpoint").exports[i]
            .files
            .remove(key);
        self.initial.lock().expect("initial").exports[i]
            .files
            .remove(key);
        let report = &mut self.files.lock().expect("files")[i][j];
        report.resumed_from_offset = 0;
        report.items_put = 0;
        report.items_deleted = 0;
        report.decompressed_bytes = 0;
    }

    /// The current checkpoint: finished files plus the latest position of every file in progress.
    pub(super) fn snapshot(&self) -> Checkpoint {
        // Both locks at once, in run_file's order: a file that ends between the two reads would otherwise
        // keep the position it had before (which an integrity failure must drop).
        let checkpoint = self.checkpoint.lock().expect("checkpoint");
        let active = self.active.lock().expect("active");
        let mut cp = checkpoint.clone();
        for ((i, key), active) in active.iter() {
            let position = *active.position.borrow();
            if position != FilePosition::default() {
                cp.exports[*i].files.insert(
                    key.clone(),
                    FileState {
                        position,
                        done: false,
                        etag: active.etag.clone(),
                    },
                );
            }
        }
        cp
    }

    /// Lines acknowledged so far, by this run and earlier ones, for the progress display.
    pub(super) fn items_done(&self) -> u64 {
        let cp = self.checkpoint.lock().expect("checkpoint");
        let mut total = lines_done(&cp, &self.exports);
        for ((i, key), active) in self.active.lock().expect("active").iter() {
            let state = &cp.exports[*i];
            if !state.done {
                let before = state.files.get(key).map_or(0, |f| f.position.lines);
                total += active.position.borrow().lines.saturating_sub(before);
            }
        }
        total
    }

    /// Saves the checkpoint if it changed. A failed save is logged, not fatal: the previous checkpoint is
    /// still valid (it only claims less), and replaying from it is harmless.
    pub(super) async fn save_checkpoint(&self) {
        let Some(store) = &self.store else { return };
        // One save at a time, each from a snapshot taken after the previous one was stored, so a slow save
        // can never overwrite a newer checkpoint.
        let _one_at_a_time = self.saving.lock().await;
        let mut cp = self.snapshot();
        if self
            .last_saved
            .lock()
            .expect("last saved")
            .as_ref()
            .is_some_and(|last| last.exports == cp.exports && last.capacity == cp.capacity)
            && !store.renewal_due()
        {
            return;
        }
        cp.updated_at = now();
        match store.save(&cp).await {
            Ok(()) => *self.last_saved.lock().expect("last saved") = Some(cp),
            Err(e) => tracing::warn!("checkpoint not saved (the previous one stays valid): {e}"),
        }
    }
}

/// Lines `cp` records as restored: every line of a finished export, the positions of the others' files.
fn lines_done(cp: &Checkpoint, exports: &[Export]) -> u64 {
    cp.exports
        .iter()
        .zip(exports)
        .map(|(state, export)| {
            if state.done {
                export.item_count()
            } else {
                state.files.values().map(|f| f.position.lines).sum()
            }
        })
        .sum()
}

pub(super) fn build_report(
    opts: &RestoreOptions,
    run: Option<&Run<'_>>,
    error: Option<&Error>,
    started_at: SystemTime,
    started: Instant,
    stats: &WriteStats,
) -> Report {
    let duration = started.elapsed().as_secs_f64();
    let status = match error {
        None => RunStatus::Succeeded,
        Some(Error::Interrupted) => RunStatus::Interrupted,
        Some(_) => RunStatus::Failed,
    };
    let mut errors: Vec<ErrorReport> = Vec::new();
    let mut exports = Vec::new();
    let mut totals = Totals::default();
    let mut gaps = Vec::new();
    if let Some(run) = run {
        gaps = run.gaps.clone();
        let snapshot = run.snapshot();
        let initial = run.initial.lock().expect("initial").clone();
        let mut files = run.files.lock().expect("files").clone();
        for (i, export) in run.exports.iter().enumerate() {
            let state = &snapshot.exports[i];
            for report in files[i].iter_mut() {
                if let (FileStatus::Pending | FileStatus::Partial, Some(f)) =
                    (report.status, state.files.get(&report.key))
                {
                    report.status = FileStatus::Partial;
                    report.items_put = f.position.puts;
                    report.items_deleted = f.position.deletes;
                    report.decompressed_bytes = f.position.offset;
                }
                let before = initial.exports[i]
                    .files
                    .get(&report.key)
                    .map(|f| f.position.lines)
                    .unwrap_or(0);
                // What the file acknowledged, also when its checkpoint position was dropped (an integrity
                // failure after writing).
                let now = report.items_put + report.items_deleted;
                if report.status != FileStatus::AlreadyDone {
                    totals.items_this_run += now.saturating_sub(before);
                    totals.decompressed_bytes_this_run += report.decompressed_bytes
                        - report.resumed_from_offset.min(report.decompressed_bytes);
                }
                totals.files += 1;
                totals.files_done +=
                    matches!(report.status, FileStatus::Done | FileStatus::AlreadyDone) as u64;
            }
            let list = std::mem::take(&mut files[i]);
            let items_put = list.iter().map(|f| f.items_put).sum();
            let items_deleted = list.iter().map(|f| f.items_deleted).sum();
            let compressed_bytes = list.iter().map(|f| f.compressed_bytes).sum();
            totals.items_put += items_put;
            totals.items_deleted += items_deleted;
            totals.compressed_bytes += compressed_bytes;
            exports.push(ExportReport {
                export_id: export.id().to_owned(),
                export_arn: export.summary.export_arn.clone(),
                uri: export.uri.to_string(),
                export_type: export.export_type,
                view: export.view,
                summary_checksum: export.summary_checksum,
                expected_items: export.item_count(),
                items_put,
                items_deleted,
                compressed_bytes,
                files: list,
            });
        }
        debug_assert!(run.total_items >= totals.items_this_run);
        errors.extend(
            run.errors
                .lock()
                .expect("errors")
                .iter()
                .map(|e| ErrorReport {
                    error_type: e.error_type().into(),
                    message: e.to_string(),
                }),
        );
    }
    if let Some(e) = error
        && errors.iter().all(|r| r.message != e.to_string())
    {
        errors.push(ErrorReport {
            error_type: e.error_type().into(),
            message: e.to_string(),
        });
    }
    totals.items_per_second = totals.items_this_run as f64 / duration.max(1e-3);
    totals.mib_per_second =
        totals.decompressed_bytes_this_run as f64 / (1024.0 * 1024.0) / duration.max(1e-3);
    let resume_hint = match (status, &opts.resume) {
        (RunStatus::Succeeded, _) => None,
        // Nothing was written: fix the problem and run again.
        _ if opts.dry_run || run.is_none() => None,
        (_, Some(loc)) => Some(format!(
            "run the same command again with --resume {loc} to continue; finished files are skipped and partial files continue after their checkpoint"
        )),
        (_, None) => Some(
            "no --resume location was given, so progress was not saved; running the same command again replays every export from the start, which is safe because puts and deletes are idempotent".into(),
        ),
    };
    Report {
        chain: None,
        report_format: REPORT_FORMAT,
        tool: format!("ddb-pitr {}", env!("CARGO_PKG_VERSION")),
        status,
        dry_run: opts.dry_run,
        table: opts.table.clone(),
        started_at: rfc3339(started_at),
        finished_at: now(),
        duration_seconds: duration,
        checkpoint: opts.resume.as_ref().map(ToString::to_string),
        exports,
        chain_discontinuities: gaps,
        totals,
        writes: stats.snapshot(),
        latency: Some(LatencyReport {
            first_write_seconds: stats
                .first_write
                .get()
                .map(|t| t.saturating_duration_since(started).as_secs_f64()),
            batch_wait: stats.batch_wait.summary(),
        }),
        capacity: None,
        errors,
        resume_hint,
    }
}
