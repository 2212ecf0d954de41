//! `--manage-capacity` around a local restore: the table's capacity recorded in the checkpoint, raised
//! before the first write and put back afterwards, however the run ended.

use crate::aws::Clients;
use crate::error::{Error, Result};
use crate::export::manifest::Export;
use crate::report::CapacityReport;
use crate::table::capacity::{CapacityRecord, Change, Manager, RecordState};

use super::checkpoint::CheckpointStore;
use super::run::Run;
use super::{Preflight, RestoreOptions};

/// `--manage-capacity`, before the first write: records the table's capacity in the checkpoint, then raises
/// it (provisioned) or pre-warms it (on-demand). A record left by an earlier run (a crash, an interruption,
/// a refused decrease) is used as it is: it holds the real originals, while the table may now show the
/// raised values.
pub(super) async fn raise_capacity(
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
    let manager = Manager {
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
            let proposal = manager.propose(items, opts.max_wcu).await?;
            report.target_wcu = Some(proposal.target);
            for w in &proposal.warnings {
                tracing::warn!("{w}");
            }
            report.warnings.extend(proposal.warnings);
            match proposal.change {
                Change::Nothing => return Ok(()),
                Change::Warm(target) => {
                    report.raised = manager.warm(target).await?;
                    return Ok(());
                }
                Change::Raise(record) => {
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
pub(super) async fn restore_capacity(
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
pub(super) async fn restore_capacity_after_failed_preflight(
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
    // Another run holding the checkpoint owns the capacity it records.
    if let Err(e) = store.claim(&cp).await {
        tracing::warn!("capacity left as it is: {e}");
        return Ok(());
    }
    put_back(opts, clients, &record, report).await?;
    if let Some(r) = cp.capacity.as_mut() {
        r.state = RecordState::Restored;
    }
    if let Err(e) = store.release(&cp).await {
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
    let manager = Manager {
        dynamodb: &clients.dynamodb,
        autoscaling: &clients.autoscaling,
        table: &opts.table,
        opts: &manage,
    };
    report.restored = manager.restore(record).await?;
    report.original_restored = Some(true);
    Ok(())
}
