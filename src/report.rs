//! The JSON report. Its schema is documented in `docs/report.md`; `report_format` changes when a field's
//! meaning changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aws::error::sdk_error;
use crate::error::{Error, Result};
use crate::export::chain::Discontinuity;
use crate::export::discover::Choice;
use crate::export::location::{ReportLocation, S3Uri};
use crate::export::manifest::{ExportType, OutputView, SummaryChecksum};
use crate::table::capacity::CapacityChange;
use crate::write::stats::{LatencySummary, ResourceUse, WriteStatsSnapshot};

pub const REPORT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Restored and verified in this run.
    Done,
    /// Already done according to the checkpoint; not read again.
    AlreadyDone,
    /// Started but not finished; the checkpoint holds its position.
    Partial,
    Failed,
    Pending,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileReport {
    pub key: String,
    pub status: FileStatus,
    pub expected_items: u64,
    pub items_put: u64,
    pub items_deleted: u64,
    /// Decompressed bytes below the file's checkpoint.
    pub decompressed_bytes: u64,
    /// Compressed bytes read in this run (0 if the file was not read to the end).
    pub compressed_bytes: u64,
    /// MD5 of the whole object matched `md5Checksum` in this run.
    pub md5_verified: bool,
    /// Decompressed offset this run resumed from (0 for a fresh start).
    pub resumed_from_offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportReport {
    pub export_id: String,
    pub export_arn: String,
    pub uri: String,
    #[serde(rename = "type")]
    pub export_type: ExportType,
    pub view: Option<OutputView>,
    pub summary_checksum: SummaryChecksum,
    pub expected_items: u64,
    pub items_put: u64,
    pub items_deleted: u64,
    pub compressed_bytes: u64,
    pub files: Vec<FileReport>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub files: u64,
    pub files_done: u64,
    pub items_put: u64,
    pub items_deleted: u64,
    /// Items written (or, in a dry run, decoded) by this run, excluding earlier runs.
    pub items_this_run: u64,
    pub compressed_bytes: u64,
    pub decompressed_bytes_this_run: u64,
    pub items_per_second: f64,
    pub mib_per_second: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CapacityReport {
    /// `--max-wcu`: the cap on consumed write units per second.
    pub max_wcu: Option<f64>,
    /// `--manage-capacity` was given (or an earlier run's raise was still to be put back).
    pub managed: bool,
    pub target_wcu: Option<i64>,
    /// Settings raised before the first write.
    pub raised: Vec<CapacityChange>,
    /// Settings put back after the restore.
    pub restored: Vec<CapacityChange>,
    /// `true` once every raised setting is back; `false` if putting it back failed (see `errors`); absent
    /// when there was nothing to put back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_restored: Option<bool>,
    /// Consumed write units and throttled requests by `table` and `index/<name>`, as DynamoDB reported them.
    pub resources: BTreeMap<String, ResourceUse>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Seconds from the start of the run until DynamoDB acknowledged the first batch.
    pub first_write_seconds: Option<f64>,
    /// From handing a batch to the writer until all of it was accepted: pacing, throttling, retries and
    /// backoff included.
    pub batch_wait: LatencySummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorReport {
    pub error_type: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub report_format: u32,
    pub tool: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub table: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    pub checkpoint: Option<String>,
    /// How the chain was found from `--export-prefix` and `--to`: the point asked for and reached, the
    /// exports chosen and the candidates left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Choice>,
    pub exports: Vec<ExportReport>,
    pub chain_discontinuities: Vec<Discontinuity>,
    pub totals: Totals,
    pub writes: WriteStatsSnapshot,
    /// The table's capacity: the write cap, what `--manage-capacity` changed and put back, and consumption and
    /// throttling by table and index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityReport>,
    /// How long writes waited (local runner only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyReport>,
    pub errors: Vec<ErrorReport>,
    /// What to run to continue, when the run did not succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_hint: Option<String>,
}

/// Writes a report as pretty JSON to exactly `target`.
pub async fn put_report(s3: &aws_sdk_s3::Client, target: &S3Uri, report: &Report) -> Result<()> {
    put_json(
        s3,
        target,
        serde_json::to_vec_pretty(report).expect("report serialises"),
    )
    .await
}

/// One PutObject of a JSON document.
async fn put_json(s3: &aws_sdk_s3::Client, target: &S3Uri, bytes: Vec<u8>) -> Result<()> {
    s3.put_object()
        .bucket(&target.bucket)
        .key(&target.key)
        .content_type("application/json")
        .body(bytes.into())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk_error(format!("PutObject {target}"), &e))
}

/// The object or file the report of a run that started at `started_at` (RFC 3339) goes to.
pub fn report_target(location: &ReportLocation, started_at: &str) -> ReportLocation {
    location.target(&started_at.replace(':', "-"))
}

/// Writes `bytes` to exactly `target` (an object or a file).
async fn write_to(s3: &aws_sdk_s3::Client, target: &ReportLocation, bytes: Vec<u8>) -> Result<()> {
    match target {
        ReportLocation::S3(uri) => put_json(s3, uri, bytes).await,
        ReportLocation::Local(path) => tokio::fs::write(path, bytes)
            .await
            .map_err(|e| Error::Usage(format!("writing the report to {}: {e}", path.display()))),
    }
}

/// Writes a report where `location` says, named by its start time under a prefix or folder.
pub async fn write_report(
    s3: &aws_sdk_s3::Client,
    location: &ReportLocation,
    report: &Report,
) -> Result<()> {
    let target = report_target(location, &report.started_at);
    write_to(
        s3,
        &target,
        serde_json::to_vec_pretty(report).expect("report serialises"),
    )
    .await
}

/// Before the first write, holds the report's place with a small note that the restore is running, which
/// the report replaces when the run ends: a location that cannot be written fails the run before anything
/// is restored, not after (the same PutObject on the same key, so it needs no other permission).
pub async fn hold_report_place(
    s3: &aws_sdk_s3::Client,
    location: &ReportLocation,
    started_at: &str,
) -> Result<()> {
    let target = report_target(location, started_at);
    let note = serde_json::json!({
        "status": "running",
        "started_at": started_at,
        "note": "ddb-pitr is restoring; the report replaces this object when the run ends",
    });
    write_to(s3, &target, serde_json::to_vec_pretty(&note).expect("a note serialises"))
        .await
        .map_err(|e| {
            Error::Usage(format!(
                "--report {location}: {target} cannot be written ({e}); nothing was restored. Give a \
                 location this identity may write, or leave --report out (the report is on stdout anyway)"
            ))
        })
}
