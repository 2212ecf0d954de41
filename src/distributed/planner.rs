//! The planner of a distributed restore: validates the chain with the same checks as the local runner,
//! records the plan in the control table, enqueues one SQS message per data file of one export at a time,
//! and answers progress queries. Its requests and answers are small JSON documents, so the planner Lambda
//! and a Step Functions state machine can drive it directly.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::aws::Clients;
use crate::clock::{epoch_ms, now};
use crate::engine::Settings;
use crate::error::{Error, Result};
use crate::export::chain::Expectations;
use crate::export::discover::{Choice, Find, Origin, Target};
use crate::export::location::{ExportUri, S3Uri};
use crate::export::manifest::{ExportType, OutputView};
use crate::export::resolve;
use crate::export::source::{ObjectReader, S3Reader};
use crate::preflight::prepare;
use crate::write::BatchSize;

use super::control::{
    ControlTable, Created, ExportPlan, FileRecord, Header, HeaderStatus, PlanOptions, RecordStatus,
    RestorePlan,
};
use super::queue::{FileMessage, queue_state, send_message_batch};

/// Default lifetime of control items after a restore is planned.
pub const DEFAULT_TTL_DAYS: u32 = 30;
/// SendMessageBatch calls in flight while enqueueing an export.
const ENQUEUE_CONCURRENCY: usize = 16;

/// A request to the planner. `action` selects the operation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PlannerRequest {
    /// Validate the chain and record the restore in the control table. Idempotent per `restore_id`.
    Plan(PlanRequest),
    /// Enqueue one message per unfinished data file of export `export_index`; every earlier export must be
    /// finished without failed files. Idempotent.
    PlanExport {
        restore_id: String,
        export_index: usize,
        /// The Step Functions execution asking (`$$.Execution.Name`). An export enqueued by another
        /// execution is enqueued again: a restore continued by a new execution re-sends its unfinished
        /// files and retries its FAILED ones.
        #[serde(default)]
        execution: Option<String>,
    },
    /// Counters of the restore and of one export (the latest enqueued one if `export_index` is absent).
    Progress {
        restore_id: String,
        #[serde(default)]
        export_index: Option<usize>,
    },
}

/// The `plan` request.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Generated (a time-ordered id) when absent.
    #[serde(default)]
    pub restore_id: Option<String>,
    pub table: String,
    /// Export URIs, FULL first, then INCREMENTAL exports in order. Empty when the chain is found instead
    /// (`export_prefix` or `source_table`, and `to`).
    #[serde(default)]
    pub exports: Vec<String>,
    /// Find the chain under this prefix (the S3Prefix given to ExportTableToPointInTime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_prefix: Option<String>,
    /// The exported table (ARN or name): picks one table's exports under `export_prefix`; alone, an ARN
    /// whose exports DynamoDB lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_table: Option<String>,
    /// With `export_prefix` or `source_table`: an RFC 3339 time a chain ends at, or `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Requests per BatchWriteItem call, 1 to 25 (default 25).
    #[serde(default)]
    pub batch_size: Option<BatchSize>,
    #[serde(default)]
    pub allow_gaps: bool,
    /// Where the final report goes (`s3://bucket/key` or a prefix ending in `/`).
    #[serde(default)]
    pub report_uri: Option<String>,
    /// Assert the export types: once for all exports or once per export.
    #[serde(default)]
    pub types: Vec<ExportType>,
    /// Assert the INCREMENTAL exports' output view.
    #[serde(default)]
    pub view: Option<OutputView>,
    /// Days the control items are kept (DynamoDB TTL). Default 30.
    #[serde(default)]
    pub ttl_days: Option<u32>,
}

/// The planner's answer: counts only, whatever the number of files, so it stays far below Step Functions'
/// 256 KiB payload limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub restore_id: String,
    pub table: String,
    /// `true` when this request created the restore, `false` when it found it already planned.
    pub created: bool,
    pub exports: usize,
    pub files: u64,
    pub items: u64,
    pub chain_discontinuities: usize,
    pub report_uri: Option<String>,
}

/// Answer to `plan_export`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnqueueSummary {
    pub restore_id: String,
    pub export_index: usize,
    pub export_id: String,
    pub files: u64,
    /// Messages sent by this request (0 when the export was already enqueued by this execution).
    pub messages_sent: u64,
    pub already_enqueued: bool,
    /// FAILED files made PENDING again because another execution continues the restore.
    pub files_retried: u64,
}

/// Answer to `progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressSummary {
    pub restore_id: String,
    pub exports: usize,
    pub export_index: usize,
    pub files: u64,
    pub files_done: u64,
    pub files_failed: u64,
    pub items_put: u64,
    pub items_deleted: u64,
    /// Every file of `export_index` is DONE or FAILED.
    pub export_finished: bool,
    /// The export to plan next, when `export_index` finished without failures and another follows.
    pub next_export: Option<usize>,
    /// Every export is finished (check `failed_files_total`).
    pub all_finished: bool,
    pub failed_files_total: u64,
    /// Messages sent again by this request for PENDING files that no message could still reach.
    pub messages_resent: u64,
    /// How long the state machine should wait before asking again: a fiftieth of the restore's age,
    /// between the planner's minimum and 5 minutes, so a restore of days stays far below Step Functions'
    /// 25,000-event history limit while a short one is followed closely.
    pub poll_seconds: u64,
}

/// The longest wait [`ProgressSummary::poll_seconds`] suggests.
pub const MAX_POLL: Duration = Duration::from_secs(300);

/// Runs planner requests against one control table and one queue.
#[derive(Clone)]
pub struct Planner {
    pub clients: Clients,
    pub control: ControlTable,
    pub queue_url: String,
    pub settings: Settings,
    pub sample_lines: u64,
    /// The shortest wait suggested between progress queries.
    pub min_poll: Duration,
    /// How long after its last message a PENDING file may go unleased while the queue holds no message,
    /// before `progress` sends it another (SQS's counts lag; a second message is harmless).
    pub resend_after: Duration,
    /// How long an export may make no progress (no file finished, no line acknowledged) before `progress`
    /// fails the restore with [`Error::Stalled`].
    pub idle_timeout: Duration,
}

/// Default of [`Planner::resend_after`].
pub const DEFAULT_RESEND_AFTER: Duration = Duration::from_secs(120);
/// Default of [`Planner::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

impl Planner {
    pub fn new(clients: Clients, control_table: &str, queue_url: &str) -> Self {
        Planner {
            control: ControlTable::new(clients.dynamodb.clone(), control_table),
            clients,
            queue_url: queue_url.to_owned(),
            settings: Settings::default(),
            sample_lines: 20,
            min_poll: Duration::from_secs(10),
            resend_after: DEFAULT_RESEND_AFTER,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Runs one request and returns its JSON answer.
    pub async fn handle(&self, request: PlannerRequest) -> Result<serde_json::Value> {
        let value = match request {
            PlannerRequest::Plan(req) => serde_json::to_value(self.plan(req).await?),
            PlannerRequest::PlanExport {
                restore_id,
                export_index,
                execution,
            } => serde_json::to_value(
                self.plan_export(&restore_id, export_index, execution.as_deref())
                    .await?,
            ),
            PlannerRequest::Progress {
                restore_id,
                export_index,
            } => serde_json::to_value(self.progress(&restore_id, export_index).await?),
        };
        Ok(value.expect("summaries serialise"))
    }

    /// Validates the chain and records the restore. Re-running it for the same restore id finds the
    /// existing plan and writes nothing twice; a different restore under the same id is refused.
    pub async fn plan(&self, req: PlanRequest) -> Result<PlanSummary> {
        let restore_id = match req.restore_id.clone() {
            Some(id) => {
                check_restore_id(&id)?;
                id
            }
            None => new_restore_id(),
        };
        let batch_size = req.batch_size.unwrap_or_default();
        if let Some(uri) = &req.report_uri {
            uri.parse::<S3Uri>()?;
        }
        let objects: Arc<dyn ObjectReader> =
            Arc::new(S3Reader::new(self.clients.exports.s3.clone()));
        let (uris, found) = self.chain(&req, &restore_id, objects.as_ref()).await?;
        let expect = Expectations {
            types: req.types.clone(),
            view: req.view,
            allow_gaps: req.allow_gaps,
        };
        let settings = Settings {
            batch_size,
            ..self.settings.clone()
        };
        let chain = prepare(
            objects,
            &self.clients.dynamodb,
            &req.table,
            &uris,
            &expect,
            &settings,
            self.sample_lines,
        )
        .await?;
        let plan = RestorePlan {
            restore_id: restore_id.clone(),
            table: req.table.clone(),
            key: chain.key.clone(),
            exports: chain.exports.iter().map(ExportPlan::from_export).collect(),
            gaps: chain.gaps.clone(),
            options: PlanOptions {
                batch_size,
                allow_gaps: req.allow_gaps,
                report_uri: req.report_uri.clone(),
            },
            created_at: now(),
            chain: found,
        };
        let ttl = Duration::from_secs(
            u64::from(req.ttl_days.unwrap_or(DEFAULT_TTL_DAYS)).max(1) * 24 * 3600,
        );
        let created = self.control.create_header(&plan, ttl).await?;
        let header = self
            .control
            .header(&restore_id)
            .await?
            .expect("header exists after create_header");
        if header.status == HeaderStatus::Planning {
            // New, or another planner of this restore is writing file items (a retry while the first
            // still runs) or stopped while writing them: only the missing items are written.
            self.control.put_files(&plan, &chain.exports, ttl).await?;
        }
        tracing::info!(
            restore_id,
            table = req.table,
            exports = plan.exports.len(),
            created = (created == Created::New),
            "restore planned"
        );
        Ok(PlanSummary {
            restore_id,
            table: req.table,
            created: created == Created::New,
            exports: plan.exports.len(),
            files: plan.exports.iter().map(|e| e.files).sum(),
            items: plan.exports.iter().map(|e| e.items).sum(),
            chain_discontinuities: plan.gaps.len(),
            report_uri: req.report_uri,
        })
    }

    /// The exports of the request: as given, or the chain found for `to` (under `export_prefix`, or among
    /// the ones DynamoDB lists for `source_table`). A restore already planned keeps the chain it recorded,
    /// so a continuation restores the same exports even if newer ones have landed since.
    async fn chain(
        &self,
        req: &PlanRequest,
        restore_id: &str,
        objects: &dyn ObjectReader,
    ) -> Result<(Vec<ExportUri>, Option<Choice>)> {
        let origin = Origin::given(req.export_prefix.as_deref(), req.source_table.as_deref())?;
        let Some(origin) = origin else {
            if req.exports.is_empty() {
                return Err(Error::Usage(
                    "the request names no exports: give exports, or export_prefix (or source_table) and to"
                        .into(),
                ));
            }
            let uris = req
                .exports
                .iter()
                .map(|e| e.parse::<ExportUri>())
                .collect::<Result<Vec<_>>>()?;
            return Ok((uris, None));
        };
        if !req.exports.is_empty() {
            return Err(Error::Usage(
                "give either exports or export_prefix/source_table, not both".into(),
            ));
        }
        let to: Target = req
            .to
            .as_deref()
            .ok_or_else(|| {
                Error::Usage("export_prefix and source_table need to (a time or latest)".into())
            })?
            .parse()
            .map_err(|e: String| Error::Usage(format!("to: {e}")))?;
        if let Some(header) = self.control.header(restore_id).await? {
            let uris = header
                .plan
                .exports
                .iter()
                .map(|e| e.uri.parse::<ExportUri>())
                .collect::<Result<Vec<_>>>()?;
            return Ok((uris, header.plan.chain.clone()));
        }
        let find = Find {
            origin,
            source_table: req.source_table.clone(),
            to,
            allow_gaps: req.allow_gaps,
        };
        let choice = resolve::find(&self.clients, objects, &find, None).await?;
        Ok((choice.uris.clone(), Some(choice)))
    }

    /// Enqueues every unfinished file of export `k`, once per execution: asked again by the execution that
    /// enqueued it, it sends nothing; asked by another one (a restore continued by `cloud start
    /// --restore-id`), it makes the export's FAILED files PENDING again and sends a message for every
    /// PENDING file.
    pub async fn plan_export(
        &self,
        restore_id: &str,
        k: usize,
        execution: Option<&str>,
    ) -> Result<EnqueueSummary> {
        let header = self.control.require_header(restore_id).await?;
        if header.status != HeaderStatus::Ready {
            return Err(Error::Usage(format!(
                "restore {restore_id} is still being planned; run the plan action again to finish it"
            )));
        }
        let Some(export) = header.plan.exports.get(k) else {
            return Err(Error::Usage(format!(
                "restore {restore_id} has {} export(s); there is no export index {k}",
                header.plan.exports.len()
            )));
        };
        for (j, earlier) in header.exports.iter().enumerate().take(k) {
            if earlier.failed > 0 {
                return Err(Error::Chain(format!(
                    "export {j} of restore {restore_id} has {} failed file(s); later exports are not applied \
                     on top of an incomplete restore",
                    earlier.failed
                )));
            }
            if !earlier.finished() {
                return Err(Error::Chain(format!(
                    "export {j} of restore {restore_id} is not finished ({} of {} files done); exports are \
                     applied strictly in order",
                    earlier.done, earlier.files
                )));
            }
        }
        let progress = header.exports[k];
        // Another execution's (also one that stopped before it recorded the export as enqueued): FAILED
        // files are retried. The first execution has none.
        let continued =
            execution.is_some() && header.dispatch[k].enqueued_by.as_deref() != execution;
        let mut summary = EnqueueSummary {
            restore_id: restore_id.to_owned(),
            export_index: k,
            export_id: export.export_id.clone(),
            files: export.files,
            messages_sent: 0,
            already_enqueued: progress.enqueued && !continued,
            files_retried: 0,
        };
        if summary.already_enqueued {
            return Ok(summary);
        }
        let mut files = self.control.files(restore_id, k).await?;
        if continued {
            for f in files
                .iter_mut()
                .filter(|f| f.status == RecordStatus::Failed)
            {
                if self
                    .control
                    .retry_failed(restore_id, k, &f.file.key)
                    .await?
                {
                    tracing::info!(
                        restore_id,
                        file = f.file.key,
                        error = f.error.as_deref().unwrap_or_default(),
                        "FAILED file retried by the continuing execution"
                    );
                    f.status = RecordStatus::Pending;
                    summary.files_retried += 1;
                }
            }
        }
        let pending: Vec<&str> = files
            .iter()
            .filter(|f| f.status == RecordStatus::Pending)
            .map(|f| f.file.key.as_str())
            .collect();
        summary.messages_sent = self.send_files(restore_id, k, &pending).await?;
        self.control.mark_enqueued(restore_id, k, execution).await?;
        tracing::info!(
            restore_id,
            export_index = k,
            messages = summary.messages_sent,
            retried = summary.files_retried,
            continued,
            "export enqueued"
        );
        Ok(summary)
    }

    /// Sends one message per file of export `k`; returns how many.
    async fn send_files(&self, restore_id: &str, k: usize, keys: &[&str]) -> Result<u64> {
        let bodies: Vec<String> = keys
            .iter()
            .map(|key| FileMessage::new(restore_id, k, key).to_body())
            .collect();
        let chunks: Vec<Vec<String>> = bodies.chunks(10).map(<[_]>::to_vec).collect();
        let mut sends = futures::stream::iter(chunks.into_iter().map(|c| self.send_batch(c)))
            .buffer_unordered(ENQUEUE_CONCURRENCY);
        while let Some(r) = sends.next().await {
            r?;
        }
        Ok(bodies.len() as u64)
    }

    /// Sends up to 10 bodies with SendMessageBatch, resending the entries that failed on the server side.
    async fn send_batch(&self, bodies: Vec<String>) -> Result<()> {
        send_message_batch(&self.clients.sqs, &self.queue_url, bodies).await
    }

    pub async fn progress(&self, restore_id: &str, k: Option<usize>) -> Result<ProgressSummary> {
        let header = self.control.require_header(restore_id).await?;
        let exports = &header.exports;
        let k = k.unwrap_or_else(|| exports.iter().rposition(|e| e.enqueued).unwrap_or(0));
        let Some(e) = exports.get(k) else {
            return Err(Error::Usage(format!(
                "restore {restore_id} has {} export(s); there is no export index {k}",
                exports.len()
            )));
        };
        let failed_files_total = exports.iter().map(|e| e.failed).sum();
        let finished = e.finished();
        let age = humantime::parse_rfc3339_weak(&header.plan.created_at)
            .ok()
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        let poll = (age / 50).clamp(self.min_poll.min(MAX_POLL), MAX_POLL);
        let messages_resent = if finished || !e.enqueued {
            0
        } else {
            self.watch(&header, k).await?
        };
        Ok(ProgressSummary {
            restore_id: restore_id.to_owned(),
            exports: exports.len(),
            export_index: k,
            files: e.files,
            files_done: e.done,
            files_failed: e.failed,
            items_put: e.puts,
            items_deleted: e.deletes,
            export_finished: finished,
            next_export: (finished && e.failed == 0 && k + 1 < exports.len()).then_some(k + 1),
            all_finished: exports.iter().all(|e| e.finished()),
            failed_files_total,
            messages_resent,
            poll_seconds: poll.as_secs().max(1),
        })
    }

    /// For an unfinished export: re-sends PENDING files that no message can still reach, and fails the
    /// restore once it has made no progress for the idle timeout. Returns the messages re-sent.
    ///
    /// A file can lose its message: after `maxReceiveCount` deliveries that handed it back (busy, throttled)
    /// the message goes to the dead-letter queue while the file stays PENDING. When the queue holds no
    /// message at all and the export's last messages were sent long enough ago for SQS's counts to have
    /// caught up, every PENDING file without a live lease is unreachable and is sent again. When the queue
    /// is busy with other restores' messages, files untouched for the dead-letter time (visibility timeout
    /// × `maxReceiveCount`) since the last send are sent again. A duplicate is harmless.
    async fn watch(&self, header: &Header, k: usize) -> Result<u64> {
        let restore_id = &header.plan.restore_id;
        let e = header.exports[k];
        let d = &header.dispatch[k];
        let now = epoch_ms(SystemTime::now());
        let since = |at: u64| Duration::from_millis(now.saturating_sub(at));
        let finished = e.done + e.failed;
        let mut files = None;
        // An export enqueued before the planner recorded activity counts as active now.
        if finished != d.seen_finished || d.active_at_ms == 0 {
            self.control
                .mark_active(restore_id, k, finished, d.seen_lines)
                .await?;
        } else if since(d.active_at_ms) >= self.idle_timeout / 2 {
            // No file finished for a while: a long file may still be moving; look at the lines.
            let all = self.control.files(restore_id, k).await?;
            let lines = all
                .iter()
                .filter(|f| f.status == RecordStatus::Pending)
                .map(|f| f.position.lines)
                .sum::<u64>();
            if lines != d.seen_lines {
                self.control
                    .mark_active(restore_id, k, finished, lines)
                    .await?;
            } else if since(d.active_at_ms) >= self.idle_timeout {
                let pending = all
                    .iter()
                    .filter(|f| f.status == RecordStatus::Pending)
                    .count();
                let leased = all
                    .iter()
                    .filter(|f| f.status == RecordStatus::Pending && f.lease_expires_ms > now)
                    .count();
                return Err(Error::Stalled(format!(
                    "restore {restore_id}, export {k} ({}): no file finished and no line was acknowledged for \
                     {} (the idle timeout, DDB_PITR_IDLE_TIMEOUT); {pending} of {} files are PENDING, {leased} \
                     of them leased. Look at the worker function's logs and the dead-letter queue, fix the \
                     cause, then continue with `ddb-pitr cloud start --restore-id {restore_id}` and the same \
                     table and exports",
                    header.plan.exports[k].export_id,
                    humantime::format_duration(Duration::from_secs(
                        since(d.active_at_ms).as_secs()
                    )),
                    e.files
                )));
            }
            files = Some(all);
        }
        if since(d.sent_at_ms) < self.resend_after {
            return Ok(0);
        }
        // With the queue empty, every PENDING file without a live lease has lost its message. With other
        // messages in it (a stack shared by several restores), only files no worker touched for as long as
        // a message can live before the dead-letter queue takes it.
        let queue = queue_state(&self.clients.sqs, &self.queue_url).await?;
        let idle_for = match (queue.held, queue.dead_letter_after) {
            (0, _) => Duration::ZERO,
            (_, Some(after)) if since(d.sent_at_ms) >= after => after,
            _ => return Ok(0),
        };
        let files = match files {
            Some(files) => files,
            None => self.control.files(restore_id, k).await?,
        };
        let untouched =
            |f: &FileRecord| f.updated_at.is_none_or(|t| since(epoch_ms(t)) >= idle_for);
        let lost: Vec<&str> = files
            .iter()
            .filter(|f| {
                f.status == RecordStatus::Pending && f.lease_expires_ms <= now && untouched(f)
            })
            .map(|f| f.file.key.as_str())
            .collect();
        if lost.is_empty() {
            return Ok(0);
        }
        let sent = self.send_files(restore_id, k, &lost).await?;
        self.control.mark_sent(restore_id, k).await?;
        tracing::warn!(
            restore_id,
            export_index = k,
            files = sent,
            "PENDING files had no message left in the queue (dead-lettered or lost): sent again"
        );
        Ok(sent)
    }
}

/// Restore ids become part of control-table keys and S3 report names.
fn check_restore_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "restore id {id:?} must be 1 to 128 characters of A-Z, a-z, 0-9, '-', '_' or '.'"
        )))
    }
}

/// A new restore id: UTC time then random hex, so ids sort by creation time.
pub fn new_restore_id() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = now.chars().filter(|c| c.is_ascii_digit()).collect();
    format!("r{compact}-{:08x}", fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_event_json() {
        let r: PlannerRequest = serde_json::from_str(
            r#"{"action":"plan","table":"t","exports":["s3://b/AWSDynamoDB/x/"],"allow_gaps":true}"#,
        )
        .unwrap();
        let PlannerRequest::Plan(p) = r else {
            panic!("not a plan request")
        };
        assert!(p.allow_gaps && p.restore_id.is_none() && p.exports.len() == 1);
        let r: PlannerRequest =
            serde_json::from_str(r#"{"action":"plan_export","restore_id":"r","export_index":2}"#)
                .unwrap();
        assert!(matches!(
            r,
            PlannerRequest::PlanExport {
                export_index: 2,
                ..
            }
        ));
        let e = serde_json::from_str::<PlannerRequest>(
            r#"{"action":"plan","table":"t","exports":[],"batch":3}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `batch`"), "{e}");
    }

    #[test]
    fn answers_are_counts_whatever_the_number_of_files() {
        let id = "r".repeat(128);
        let table = "t".repeat(255);
        let answers = [
            serde_json::to_vec(&PlanSummary {
                restore_id: id.clone(),
                table,
                created: true,
                exports: 1000,
                files: 100_000,
                items: u64::MAX,
                chain_discontinuities: 999,
                report_uri: Some(format!("s3://{}/{}", "b".repeat(63), "k".repeat(1024))),
            }),
            serde_json::to_vec(&EnqueueSummary {
                restore_id: id.clone(),
                export_index: 999,
                export_id: "e".repeat(64),
                files: 100_000,
                messages_sent: 100_000,
                already_enqueued: false,
                files_retried: 100_000,
            }),
            serde_json::to_vec(&ProgressSummary {
                restore_id: id,
                exports: 1000,
                export_index: 999,
                files: 100_000,
                files_done: 99_999,
                files_failed: 1,
                items_put: u64::MAX,
                items_deleted: u64::MAX,
                export_finished: false,
                next_export: None,
                all_finished: false,
                failed_files_total: 1,
                messages_resent: 100_000,
                poll_seconds: 300,
            }),
        ];
        for answer in answers {
            let bytes = answer.unwrap().len();
            // Step Functions' payload limit is 256 KiB.
            assert!(bytes < 2048, "{bytes} bytes");
        }
    }

    /// moto's SQS never fails part of a batch; these are the answers of real SQS.
    mod send {
        use aws_sdk_sqs::Client;
        use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
        use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        use super::super::send_message_batch;

        fn ok(id: &str) -> SendMessageBatchResultEntry {
            SendMessageBatchResultEntry::builder()
                .id(id)
                .message_id(format!("m-{id}"))
                .md5_of_message_body("x")
                .build()
                .unwrap()
        }

        fn failed(id: &str, sender_fault: bool) -> BatchResultErrorEntry {
            BatchResultErrorEntry::builder()
                .id(id)
                .sender_fault(sender_fault)
                .code(if sender_fault {
                    "InvalidParameterValue"
                } else {
                    "InternalError"
                })
                .message("no")
                .build()
                .unwrap()
        }

        #[tokio::test]
        async fn only_the_entries_that_failed_are_sent_again() {
            let partial = mock!(Client::send_message_batch)
                .match_requests(|r| r.entries().len() == 3)
                .then_output(|| {
                    SendMessageBatchOutput::builder()
                        .successful(ok("0"))
                        .successful(ok("2"))
                        .failed(failed("1", false))
                        .build()
                        .unwrap()
                });
            let again = mock!(Client::send_message_batch)
                .match_requests(|r| r.entries().len() == 1 && r.entries()[0].message_body() == "b")
                .then_output(|| {
                    SendMessageBatchOutput::builder()
                        .successful(ok("1"))
                        .set_failed(Some(vec![]))
                        .build()
                        .unwrap()
                });
            let client = mock_client!(aws_sdk_sqs, RuleMode::Sequential, &[&partial, &again]);
            send_message_batch(&client, "q", vec!["a".into(), "b".into(), "c".into()])
                .await
                .unwrap();
            assert_eq!((partial.num_calls(), again.num_calls()), (1, 1));
        }

        #[tokio::test]
        async fn an_entry_refused_as_the_senders_fault_is_an_error() {
            let refused = mock!(Client::send_message_batch).then_output(|| {
                SendMessageBatchOutput::builder()
                    .successful(ok("0"))
                    .failed(failed("1", true))
                    .build()
                    .unwrap()
            });
            let client = mock_client!(aws_sdk_sqs, RuleMode::Sequential, &[&refused]);
            let e = send_message_batch(&client, "q", vec!["a".into(), "b".into()])
                .await
                .unwrap_err();
            assert!(!e.is_retryable(), "{e}");
            assert!(e.to_string().contains("InvalidParameterValue"), "{e}");
            assert_eq!(refused.num_calls(), 1);
        }
    }

    #[test]
    fn restore_ids() {
        let id = new_restore_id();
        assert!(check_restore_id(&id).is_ok(), "{id}");
        assert_ne!(id, new_restore_id());
        assert!(check_restore_id("a/b").is_err());
        assert!(check_restore_id("").is_err());
    }
}
