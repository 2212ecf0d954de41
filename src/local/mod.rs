//! The local restore: pre-flight checks, then every export of the chain in order, each with up to
//! `workers` files in parallel through [`Engine::process_file`], with a checkpoint saved periodically, at
//! each export boundary and on shutdown.
//!
//! Nothing is written before every manifest is verified, the chain is validated, the table is ACTIVE with a
//! matching key schema (a sample of each export is decoded and checked), and the checkpoint location has
//! been written once.

mod capacity;
pub mod checkpoint;
pub mod progress;
mod run;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::aws::Clients;
use crate::clock::rfc3339;
use crate::engine::{Engine, Settings};
use crate::error::{Error, Result};
use crate::export::chain::{Discontinuity, Expectations};
use crate::export::discover::Find;
use crate::export::location::{ExportUri, ReportLocation, StateLocation};
use crate::export::manifest::Export;
use crate::export::request::RequestOptions;
use crate::export::resolve::resolve;
use crate::export::source::{ObjectReader, S3Reader};
use crate::item::key::KeySchema;
use crate::preflight::prepare;
use crate::report::{
    CapacityReport, ErrorReport, Report, RunStatus, hold_report_place, write_report,
};
use crate::table;
use crate::table::capacity::ManageOptions;
use crate::write::BatchWriter;
use crate::write::dynamo::DynamoWriter;
use crate::write::pace::{self, Pacing};
use crate::write::stats::WriteStats;

use self::capacity::{raise_capacity, restore_capacity, restore_capacity_after_failed_preflight};
use self::checkpoint::{Checkpoint, CheckpointStore};
use self::run::{Run, build_report};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub table: String,
    pub exports: Vec<ExportUri>,
    /// Find the chain under a prefix instead (`--export-prefix` and `--to`); `exports` is then empty.
    pub find: Option<Find>,
    /// `--request-export`: ask DynamoDB for the exports missing for `find`'s time, and wait for them.
    pub request: Option<RequestOptions>,
    pub expect: Expectations,
    pub workers: usize,
    pub settings: Settings,
    pub dry_run: bool,
    pub resume: Option<StateLocation>,
    pub report: Option<ReportLocation>,
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
    let objects: Arc<dyn ObjectReader> = Arc::new(S3Reader::new(clients.exports.s3.clone()));
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
    let mut choice = None;
    let preflight = tokio::select! {
        p = async {
            let (exports, chosen) = resolve(
                clients,
                objects.as_ref(),
                &opts.exports,
                opts.find.as_ref(),
                opts.request
                    .map(|r| RequestOptions {
                        dry_run: r.dry_run || opts.dry_run,
                        ..r
                    })
                    .as_ref(),
            )
            .await?;
            choice = chosen;
            if let Some(location) = opts.report.as_ref().filter(|_| !opts.dry_run) {
                hold_report_place(&clients.s3, location, &rfc3339(started_at)).await?;
            }
            match preflight(opts, &exports, clients, objects.clone(), store.as_ref()).await {
                Err(e) => Err(table::name_the_account(e, &clients.sts).await),
                ok => ok,
            }
        } => p,
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
    if let (Some(run), Some(store)) = (&run, &store)
        && let Err(e) = store.release(&run.snapshot()).await
    {
        tracing::warn!("checkpoint not released (its hold ends on its own): {e}");
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
    report.chain = choice;
    let mut outcome = Outcome { report, error };
    if let Some(location) = opts.report.as_ref().filter(|_| !opts.dry_run)
        && let Err(e) = write_report(&clients.s3, location, &outcome.report).await
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
    key: KeySchema,
    checkpoint: Checkpoint,
}

async fn preflight(
    opts: &RestoreOptions,
    exports: &[ExportUri],
    clients: &Clients,
    objects: Arc<dyn ObjectReader>,
    store: Option<&CheckpointStore>,
) -> Result<Preflight> {
    let chain = prepare(
        objects,
        &clients.dynamodb,
        &opts.table,
        exports,
        &opts.expect,
        &opts.settings,
        opts.sample_lines,
    )
    .await?;
    let checkpoint = match store {
        None => Checkpoint::new(&opts.table, &chain.exports),
        Some(store) => {
            let cp = match store.load().await? {
                Some(mut cp) => {
                    let added = cp.check_identity(store.location(), &opts.table, &chain.exports)?;
                    if added > 0 {
                        tracing::info!(
                            checkpoint = %store.location(),
                            "the chain continues the checkpoint's: {} finished or started exports, {added} added",
                            cp.exports.len()
                        );
                        cp.extend(&chain.exports);
                    } else {
                        tracing::info!(checkpoint = %store.location(), "resuming from checkpoint");
                    }
                    cp
                }
                None => Checkpoint::new(&opts.table, &chain.exports),
            };
            // Holds it for this run (refused while another run holds it), which also proves the location
            // is writable, before the first write to the table.
            store.claim(&cp).await?;
            cp
        }
    };
    Ok(Preflight {
        exports: chain.exports,
        gaps: chain.gaps,
        key: chain.key,
        checkpoint,
    })
}
