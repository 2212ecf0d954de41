//! The local restore: pre-flight checks, then every export of the chain in order, each with up to
//! `workers` files in parallel through [`Engine::process_file`], with a checkpoint saved periodically, at
//! each export boundary and on shutdown.
//!
//! Nothing is written before every manifest is verified, the chain is validated, the table is ACTIVE with a
//! matching key schema (a sample of each export is decoded and checked), and the checkpoint location has
//! been written once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::stream::FuturesUnordered;
use futures::{StreamExt, stream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::capacity::{self, CapacityRecord, ManageOptions, RecordState};
use crate::chain::{self, Discontinuity, Expectations};
use crate::checkpoint::{Checkpoint, CheckpointStore, FilePosition, FileState};
use crate::engine::{Engine, FileRef, Settings};
use crate::error::{Error, Result};
use crate::location::{ExportUri, S3Uri, StateLocation};
use crate::manifest::{self, Export};
use crate::pace::{self, Pacing};
use crate::progress::Progress;
use crate::report::{
    CapacityReport, ErrorReport, ExportReport, FileReport, FileStatus, LatencyReport,
    REPORT_FORMAT, Report, RunStatus, Totals,
};
use crate::source::{ObjectReader, S3Reader};
use crate::table;
use crate::write::{BatchWriter, DynamoWriter, WriteStats};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub table: String,
    pub exports: Vec<ExportUri>,
    pub expect: Expectations,
    pub workers: usize,
    pub settings: Settings,
    pub dry_run: bool,
    pub resume: Option<StateLocation>,
    pub report: Option<S3Uri>,
    pub shutdown_timeout: Duration,
    pub checkpoint_interval: Duration,
    /// Lines of each export decoded and key-checked before the first write.
    pub sample_lines: u64,
    pub progress_bar: bool,
    /// `--max-wcu`: consumed write units per second, at most.
    pub max_wcu: Option<f64>,
    /// `--manage-capacity`: raise (or pre-warm) the table's capacity before writing, put it back after.
    pub manage_capacity: Option<ManageOptions>,
}

#[derive(Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub sts: aws_sdk_sts::Client,
    pub iam: aws_sdk_iam::Client,
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
}

impl Clients {
    /// Clients from the standard AWS configuration chain, with the retry and timeout settings every
    /// ddb-pitr front door uses (the CLI, the Lambda functions): 5 attempts for control-plane calls, a
    /// 5 s connect timeout and 60 s per attempt, so a stalled connection is retried instead of hanging.
    /// BatchWriteItem retries are paced by [`crate::write`] instead.
    pub async fn load(region: Option<String>, endpoint_url: Option<String>) -> Self {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(5))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Clients::from_sdk_config(&loader.load().await)
    }

    /// Clients for every service ddb-pitr calls, from one SDK configuration.
    ///
    /// Emulators are reached by address, so bucket names cannot go in the host name: S3 uses path-style
    /// addressing whenever an endpoint is configured. `endpoint_url()` covers a code-set endpoint,
    /// `AWS_ENDPOINT_URL` and a profile's `endpoint_url`; the S3-specific variable is checked apart.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        let custom_endpoint =
            sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(custom_endpoint)
            .build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            iam: aws_sdk_iam::Client::new(sdk),
            autoscaling: aws_sdk_applicationautoscaling::Client::new(sdk),
        }
    }
}

/// A finished run: the report is always there; `error` says why the run did not succeed.
pub struct Outcome {
    pub report: Report,
    pub error: Option<Error>,
}

/// Runs a restore until it finishes, fails, or `shutdown` resolves (then in-flight batches get
/// `shutdown_timeout` to finish before the checkpoint is saved).
pub async fn run(
    opts: &RestoreOptions,
    clients: &Clients,
    shutdown: impl Future<Output = ()>,
) -> Outcome {
    let objects: Arc<dyn ObjectReader> = Arc::new(S3Reader::new(clients.s3.clone()));
    let writer: Option<Arc<dyn BatchWriter>> = (!opts.dry_run).then(|| {
        pace::paced(
            Arc::new(DynamoWriter::new(&clients.dynamodb)),
            Pacing {
                ceiling: opts.max_wcu,
                adaptive: opts.settings.adaptive_rate,
            },
        )
    });
    let started_at = SystemTime::now();
    let started = Instant::now();
    let stats = Arc::new(WriteStats::default());
    let store = opts
        .resume
        .clone()
        .filter(|_| !opts.dry_run)
        .map(|loc| CheckpointStore::new(loc, clients.s3.clone()));

    let mut capacity = CapacityReport {
        max_wcu: opts.max_wcu,
        managed: opts.manage_capacity.is_some(),
        ..CapacityReport::default()
    };
    tokio::pin!(shutdown);
    let preflight = tokio::select! {
        p = preflight(opts, clients, objects.clone(), store.as_ref()) => p,
        _ = &mut shutdown => Err(Error::Interrupted),
    };
    let (run, mut error) = match preflight {
        Ok(mut p) => {
            // Capacity is raised before the first write; the originals are in the checkpoint before that.
            let raised = tokio::select! {
                r = raise_capacity(opts, clients, store.as_ref(), &mut p, &mut capacity) => r,
                _ = &mut shutdown => Err(Error::Interrupted),
            };
            let engine = Engine {
                objects,
                writer,
                table: opts.table.clone(),
                key: p.key,
                settings: opts.settings.clone(),
                stats: stats.clone(),
            };
            let run = Run::new(opts, engine, p.exports, p.gaps, p.checkpoint, store.clone());
            let error = match raised {
                Ok(()) => run.main(&mut shutdown).await.err(),
                Err(e) => Some(e),
            };
            (Some(run), error)
        }
        Err(e) => (None, Some(e)),
    };
    let mut capacity_error = None;
    if let Some(run) = &run
        && let Err(e) = restore_capacity(opts, clients, run, &mut capacity).await
    {
        run.errors.lock().expect("errors").push(e.clone());
        capacity_error = Some(e);
    }
    if run.is_none()
        && !opts.dry_run
        && let Some(store) = &store
        && let Err(e) =
            restore_capacity_after_failed_preflight(opts, clients, store, &mut capacity).await
    {
        capacity_error = Some(e);
    }
    if let Some(e) = capacity_error {
        tracing::error!("{e}");
        capacity.original_restored = Some(false);
        if let Some(first) = &error {
            tracing::error!("{first}");
        }
        error.get_or_insert(e.clone());
        capacity.warnings.push(e.to_string());
    }
    capacity.resources = stats.resources();
    let mut report = build_report(
        opts,
        run.as_ref(),
        error.as_ref(),
        started_at,
        started,
        &stats,
    );
    if !opts.dry_run {
        report.capacity = Some(capacity);
    }
    let mut outcome = Outcome { report, error };
    if let Some(uri) = &opts.report
        && let Err(e) = upload_report(&clients.s3, uri, &outcome.report).await
    {
        // A report the user asked to keep in S3 is part of the job: without it the run did not succeed.
        if outcome.report.status == RunStatus::Succeeded {
            outcome.report.status = RunStatus::Failed;
        }
        outcome.report.errors.push(ErrorReport {
            error_type: e.error_type().into(),
            message: format!("the report could not be uploaded: {e}"),
        });
        outcome.error.get_or_insert(e);
    }
    outcome
}

struct Preflight {
    exports: Vec<Export>,
    gaps: Vec<Discontinuity>,
    key: table::KeySchema,
    checkpoint: Checkpoint,
}

async fn preflight(
    opts: &RestoreOptions,
    clients: &Clients,
    objects: Arc<dyn ObjectReader>,
    store: Option<&CheckpointStore>,
) -> Result<Preflight> {
    let chain = prepare(
        objects,
        &clients.dynamodb,
        &opts.table,
        &opts.exports,
        &opts.expect,
        &opts.settings,
        opts.sample_lines,
    )
    .await?;
    let checkpoint = match store {
        None => Checkpoint::new(&opts.table, &chain.exports),
        Some(store) => match store.load().await? {
            Some(cp) => {
                cp.check_identity(store.location(), &opts.table, &chain.exports)?;
                tracing::info!(checkpoint = %store.location(), "resuming from checkpoint");
                cp
            }
            None => {
                let cp = Checkpoint::new(&opts.table, &chain.exports);
                // Proves the checkpoint location is writable before the first write to the table.
                store.save(&cp).await?;
                cp
            }
        },
    };
    Ok(Preflight {
        exports: chain.exports,
        gaps: chain.gaps,
        key: chain.key,
        checkpoint,
    })
}

/// `--manage-capacity`, before the first write: records the table's capacity in the checkpoint, then raises
/// it (provisioned) or pre-warms it (on-demand). A record left by an earlier run (a crash, an interruption,
/// a refused decrease) is used as it is: it holds the real originals, while the table may now show the
/// raised values.
async fn raise_capacity(
    opts: &RestoreOptions,
    clients: &Clients,
    store: Option<&CheckpointStore>,
    p: &mut Preflight,
    report: &mut CapacityReport,
) -> Result<()> {
    let Some(manage) = &opts.manage_capacity else {
        return Ok(());
    };
    // Nothing left to write (e.g. a run after a refused decrease): only the put-back is due.
    if opts.dry_run || p.checkpoint.exports.iter().all(|e| e.done) {
        return Ok(());
    }
    let store = store.ok_or_else(|| {
        Error::Usage(
            "--manage-capacity needs --resume: the table's original capacity is recorded in the checkpoint \
             before it is raised, so that it can be put back even after a crash"
                .into(),
        )
    })?;
    let manager = capacity::Manager {
        dynamodb: &clients.dynamodb,
        autoscaling: &clients.autoscaling,
        table: &opts.table,
        opts: manage,
    };
    let earlier = p
        .checkpoint
        .capacity
        .clone()
        .filter(|r| r.state != RecordState::Restored);
    let record = match earlier {
        Some(record) => {
            tracing::info!(
                target_wcu = record.target_wcu,
                "capacity was raised by an earlier run of this restore; its recorded originals will be put back"
            );
            record
        }
        None => {
            let items = p.exports.iter().map(Export::item_count).sum();
            let planned = manager.plan(items, opts.max_wcu).await?;
            report.target_wcu = Some(planned.target);
            for w in &planned.warnings {
                tracing::warn!("{w}");
            }
            report.warnings.extend(planned.warnings);
            match planned.plan {
                capacity::Plan::Nothing => return Ok(()),
                capacity::Plan::Warm(target) => {
                    report.raised = manager.warm(target).await?;
                    return Ok(());
                }
                capacity::Plan::Raise(record) => {
                    p.checkpoint.capacity = Some(record.clone());
                    store.save(&p.checkpoint).await?;
                    record
                }
            }
        }
    };
    report.target_wcu = Some(record.target_wcu);
    report.raised = manager.raise(&record).await?;
    if let Some(r) = p.checkpoint.capacity.as_mut() {
        r.state = RecordState::Raised;
    }
    store.save(&p.checkpoint).await
}

/// After the work, however it ended: puts back the capacity recorded in the checkpoint, if any.
async fn restore_capacity(
    opts: &RestoreOptions,
    clients: &Clients,
    run: &Run<'_>,
    report: &mut CapacityReport,
) -> Result<()> {
    let record: Option<CapacityRecord> = run
        .checkpoint
        .lock()
        .expect("checkpoint")
        .capacity
        .clone()
        .filter(|r| r.state != RecordState::Restored);
    let Some(record) = record else {
        return Ok(());
    };
    put_back(opts, clients, &record, report).await?;
    if let Some(r) = run.checkpoint.lock().expect("checkpoint").capacity.as_mut() {
        r.state = RecordState::Restored;
    }
    // A failed save only means the next run puts back values that are already back: harmless.
    run.save_checkpoint().await;
    Ok(())
}

/// When pre-flight failed (an export gone, a changed chain, a transient error), the capacity an earlier
/// run raised is still put back: the checkpoint of the same table holds the only copy of the originals,
/// and a later run with another checkpoint would take the raised values for originals.
async fn restore_capacity_after_failed_preflight(
    opts: &RestoreOptions,
    clients: &Clients,
    store: &CheckpointStore,
    report: &mut CapacityReport,
) -> Result<()> {
    let Ok(Some(mut cp)) = store.load().await else {
        return Ok(());
    };
    let pending = cp
        .capacity
        .clone()
        .filter(|r| r.state != RecordState::Restored);
    let Some(record) = pending.filter(|_| cp.table == opts.table) else {
        return Ok(());
    };
    put_back(opts, clients, &record, report).await?;
    if let Some(r) = cp.capacity.as_mut() {
        r.state = RecordState::Restored;
    }
    cp.updated_at = crate::checkpoint::now();
    if let Err(e) = store.save(&cp).await {
        tracing::warn!("checkpoint not saved after putting the capacity back (harmless): {e}");
    }
    Ok(())
}

/// Puts back the capacity `record` holds, and says so in the report.
async fn put_back(
    opts: &RestoreOptions,
    clients: &Clients,
    record: &CapacityRecord,
    report: &mut CapacityReport,
) -> Result<()> {
    report.managed = true;
    report.target_wcu.get_or_insert(record.target_wcu);
    let manage = opts.manage_capacity.clone().unwrap_or_default();
    let manager = capacity::Manager {
        dynamodb: &clients.dynamodb,
        autoscaling: &clients.autoscaling,
        table: &opts.table,
        opts: &manage,
    };
    report.restored = manager.restore(record).await?;
    report.original_restored = Some(true);
    Ok(())
}

/// A chain that passed every check that can be made before the first write.
#[derive(Debug, Clone)]
pub struct PreparedChain {
    pub exports: Vec<Export>,
    pub gaps: Vec<Discontinuity>,
    pub key: table::KeySchema,
    pub table: table::TableInfo,
}

/// The checks shared by the local runner and the distributed planner, made before anything is written:
/// every manifest loaded and verified, the chain validated, the table ACTIVE, and the first
/// `sample_lines` lines of each export decoded and checked against the table's key schema.
pub async fn prepare(
    objects: Arc<dyn ObjectReader>,
    dynamodb: &aws_sdk_dynamodb::Client,
    table_name: &str,
    uris: &[ExportUri],
    expect: &Expectations,
    settings: &Settings,
    sample_lines: u64,
) -> Result<PreparedChain> {
    if uris.is_empty() {
        return Err(Error::Usage("at least one --export is required".into()));
    }
    let exports =
        futures::future::try_join_all(uris.iter().map(|uri| manifest::load(objects.as_ref(), uri)))
            .await?;
    let gaps = chain::validate(&exports, expect)?;
    let table = table::describe(dynamodb, table_name).await?;

    let sampler = Engine {
        objects,
        writer: None,
        table: table_name.to_owned(),
        key: table.key.clone(),
        settings: settings.clone(),
        stats: Arc::default(),
    };
    for export in &exports {
        if let Some(file) = export.files.iter().find(|f| f.item_count > 0) {
            sampler
                .check_sample(file_ref(export, file), sample_lines)
                .await
                .map_err(|e| match e {
                    Error::Data { location, message } if message.contains("key schema") => {
                        Error::Table {
                            table: table_name.to_owned(),
                            message: format!(
                                "export {} does not fit this table: {location}: {message}",
                                export.id()
                            ),
                        }
                    }
                    other => other,
                })?;
        }
    }
    Ok(PreparedChain {
        exports,
        gaps,
        key: table.key.clone(),
        table,
    })
}

/// The [`FileRef`] of one data file of a loaded export.
pub fn file_ref<'a>(export: &'a Export, file: &'a manifest::DataFile) -> FileRef<'a> {
    FileRef {
        export_id: export.id(),
        export_type: export.export_type,
        bucket: &export.uri.bucket,
        file,
    }
}

/// The state of a restore after pre-flight; it outlives the work so that the checkpoint and the report
/// can be written whatever way the work ended.
struct Run<'a> {
    opts: &'a RestoreOptions,
    engine: Engine,
    exports: Vec<Export>,
    gaps: Vec<Discontinuity>,
    store: Option<CheckpointStore>,
    checkpoint: Mutex<Checkpoint>,
    /// Positions of files being processed, published by the engine.
    active: Mutex<HashMap<(usize, String), watch::Receiver<FilePosition>>>,
    files: Mutex<Vec<Vec<FileReport>>>,
    /// Where each file of this run started, to count this run's items.
    initial: Checkpoint,
    last_saved: Mutex<Option<Checkpoint>>,
    saving: tokio::sync::Mutex<()>,
    errors: Mutex<Vec<Error>>,
    stop: CancellationToken,
    progress: Progress,
    total_items: u64,
}

impl<'a> Run<'a> {
    fn new(
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
        Run {
            opts,
            engine,
            gaps,
            store,
            initial: checkpoint.clone(),
            last_saved: Mutex::new(Some(checkpoint.clone())),
            saving: tokio::sync::Mutex::new(()),
            checkpoint: Mutex::new(checkpoint),
            exports,
            active: Mutex::default(),
            files: Mutex::new(files),
            errors: Mutex::default(),
            stop: CancellationToken::new(),
            progress: Progress::new(total_items, opts.progress_bar),
            total_items,
        }
    }

    async fn main(
        &self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
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

    async fn work(&self) -> Result<()> {
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

    async fn run_file(&self, i: usize, j: usize, file: &manifest::DataFile) {
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
        let start = state.map(|s| s.position).unwrap_or_default();
        let (tx, rx) = watch::channel(start);
        let id = (i, file.key.clone());
        self.active.lock().expect("active").insert(id.clone(), rx);
        let result = self
            .engine
            .process_file(file_ref(&self.exports[i], file), start, &tx, &self.stop)
            .await;
        let position = *tx.borrow();
        let done = matches!(result, Ok(o) if o.complete);
        {
            let mut cp = self.checkpoint.lock().expect("checkpoint");
            if done || position != FilePosition::default() {
                cp.exports[i]
                    .files
                    .insert(file.key.clone(), FileState { position, done });
            }
            self.active.lock().expect("active").remove(&id);
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

    /// The current checkpoint: finished files plus the latest position of every file in progress.
    fn snapshot(&self) -> Checkpoint {
        let mut cp = self.checkpoint.lock().expect("checkpoint").clone();
        for ((i, key), rx) in self.active.lock().expect("active").iter() {
            let position = *rx.borrow();
            if position != FilePosition::default() {
                cp.exports[*i].files.insert(
                    key.clone(),
                    FileState {
                        position,
                        done: false,
                    },
                );
            }
        }
        cp
    }

    /// Lines acknowledged so far, by this run and earlier ones, for the progress display.
    fn items_done(&self) -> u64 {
        let cp = self.checkpoint.lock().expect("checkpoint");
        let mut total = 0;
        for (state, export) in cp.exports.iter().zip(&self.exports) {
            total += if state.done {
                export.item_count()
            } else {
                state.files.values().map(|f| f.position.lines).sum()
            };
        }
        for ((i, key), rx) in self.active.lock().expect("active").iter() {
            let state = &cp.exports[*i];
            if !state.done {
                let before = state.files.get(key).map_or(0, |f| f.position.lines);
                total += rx.borrow().lines.saturating_sub(before);
            }
        }
        total
    }

    /// Saves the checkpoint if it changed. A failed save is logged, not fatal: the previous checkpoint is
    /// still valid (it only claims less), and replaying from it is harmless.
    async fn save_checkpoint(&self) {
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
        {
            return;
        }
        cp.updated_at = crate::checkpoint::now();
        match store.save(&cp).await {
            Ok(()) => *self.last_saved.lock().expect("last saved") = Some(cp),
            Err(e) => tracing::warn!("checkpoint not saved (the previous one stays valid): {e}"),
        }
    }
}

fn build_report(
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
                let before = run.initial.exports[i]
                    .files
                    .get(&report.key)
                    .map(|f| f.position.lines)
                    .unwrap_or(0);
                let now = state
                    .files
                    .get(&report.key)
                    .map(|f| f.position.lines)
                    .unwrap_or(0);
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
        report_format: REPORT_FORMAT,
        tool: format!("ddb-pitr {}", env!("CARGO_PKG_VERSION")),
        status,
        dry_run: opts.dry_run,
        table: opts.table.clone(),
        started_at: humantime::format_rfc3339_millis(started_at).to_string(),
        finished_at: crate::checkpoint::now(),
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

async fn upload_report(s3: &aws_sdk_s3::Client, uri: &S3Uri, report: &Report) -> Result<()> {
    let target = crate::report::report_object(uri, &report.started_at.replace(':', "-"));
    put_report(s3, &target, report).await
}

/// Writes a report as pretty JSON to exactly `target`.
pub async fn put_report(s3: &aws_sdk_s3::Client, target: &S3Uri, report: &Report) -> Result<()> {
    s3.put_object()
        .bucket(&target.bucket)
        .key(&target.key)
        .content_type("application/json")
        .body(
            serde_json::to_vec_pretty(report)
                .expect("report serialises")
                .into(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Error::aws(format!("PutObject {target}"), &e))
}
