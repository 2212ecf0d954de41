//! The final report of a distributed restore, built from the control table. It has the schema of
//! `ddb-pitr restore`'s report (`docs/report.md`), so one set of tools reads both. The reporter function
//! writes it to the restore's report URI and returns a [`ReportSummary`] small enough for Step Functions.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::error::Result;
use crate::export::location::{S3Uri, report_object};
use crate::report::{
    ErrorReport, ExportReport, FileReport, FileStatus, REPORT_FORMAT, Report, RunStatus, Totals,
    put_report,
};
use crate::write::stats::WriteStatsSnapshot;

use super::control::{ControlTable, FileRecord, Header, RecordStatus, RestorePlan};

/// Longest `cause` in a summary: the report has the rest.
const CAUSE_LIMIT: usize = 1000;

/// What the reporter returns to the state machine: counts and where the report is, never file lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub restore_id: String,
    pub table: String,
    pub status: RunStatus,
    pub report_uri: Option<String>,
    pub files: u64,
    pub files_done: u64,
    pub files_failed: u64,
    pub items_put: u64,
    pub items_deleted: u64,
    /// For a Fail state: names the number of failed files (`FilesFailed.3`), or says the restore is not
    /// finished. Absent on success.
    pub error: Option<String>,
    /// For a Fail state: the first failed file's error and where the report is. Absent on success.
    pub cause: Option<String>,
}

/// Builds the report of `restore_id` from its header and file items.
pub async fn build(control: &ControlTable, restore_id: &str) -> Result<Report> {
    let header = control.require_header(restore_id).await?;
    from_header(control, &header).await
}

async fn from_header(control: &ControlTable, header: &Header) -> Result<Report> {
    let mut files = Vec::with_capacity(header.plan.exports.len());
    for k in 0..header.plan.exports.len() {
        files.push(control.files(&header.plan.restore_id, k).await?);
    }
    Ok(assemble(header, &files, control.name(), SystemTime::now()))
}

/// The report of a restore from its header and the file items of every export (in export order).
pub fn assemble(
    header: &Header,
    files: &[Vec<FileRecord>],
    control_table: &str,
    now: SystemTime,
) -> Report {
    let plan = &header.plan;
    let started = humantime::parse_rfc3339_weak(&plan.created_at).unwrap_or(now);
    let duration = now.duration_since(started).unwrap_or(Duration::ZERO);
    let seconds = duration.as_secs_f64().max(1e-3);
    let mut totals = Totals::default();
    let mut writes = WriteStatsSnapshot::default();
    let mut errors = Vec::new();
    let mut exports = Vec::new();
    let (mut failed, mut unfinished) = (0u64, 0u64);
    for (k, export) in plan.exports.iter().enumerate() {
        let records = files.get(k).map_or(&[][..], Vec::as_slice);
        let reports: Vec<FileReport> = records
            .iter()
            .map(|f| {
                writes = writes.plus(&f.writes);
                let status = match f.status {
                    RecordStatus::Done => FileStatus::Done,
                    RecordStatus::Failed => FileStatus::Failed,
                    RecordStatus::Pending if f.position.offset > 0 => FileStatus::Partial,
                    RecordStatus::Pending => FileStatus::Pending,
                };
                match status {
                    FileStatus::Failed => {
                        failed += 1;
                        errors.push(ErrorReport {
                            error_type: "Fatal".into(),
                            message: f.error.clone().unwrap_or_else(|| {
                                format!("export {}, file {}: FAILED", f.export_id, f.file.key)
                            }),
                        });
                    }
                    FileStatus::Done => totals.files_done += 1,
                    _ => unfinished += 1,
                }
                totals.files += 1;
                totals.items_this_run += f.position.lines;
                totals.decompressed_bytes_this_run += f.position.offset;
                FileReport {
                    key: f.file.key.clone(),
                    status,
                    expected_items: f.file.item_count,
                    items_put: f.position.puts,
                    items_deleted: f.position.deletes,
                    decompressed_bytes: f.position.offset,
                    compressed_bytes: f.compressed_bytes,
                    md5_verified: f.md5_verified,
                    resumed_from_offset: 0,
                    error: f.error.clone(),
                }
            })
            .collect();
        let items_put = reports.iter().map(|f| f.items_put).sum();
        let items_deleted = reports.iter().map(|f| f.items_deleted).sum();
        let compressed_bytes = reports.iter().map(|f| f.compressed_bytes).sum();
        totals.items_put += items_put;
        totals.items_deleted += items_deleted;
        totals.compressed_bytes += compressed_bytes;
        exports.push(ExportReport {
            export_id: export.export_id.clone(),
            export_arn: export.export_arn.clone(),
            uri: export.uri.clone(),
            export_type: export.export_type,
            view: export.view,
            summary_checksum: export.summary_checksum,
            expected_items: export.items,
            items_put,
            items_deleted,
            compressed_bytes,
            files: reports,
        });
    }
    totals.items_per_second = totals.items_this_run as f64 / seconds;
    totals.mib_per_second = totals.decompressed_bytes_this_run as f64 / (1024.0 * 1024.0) / seconds;
    let status = if failed > 0 {
        RunStatus::Failed
    } else if unfinished > 0 {
        RunStatus::Interrupted
    } else {
        RunStatus::Succeeded
    };
    let resume_hint = match status {
        RunStatus::Succeeded => None,
        RunStatus::Failed => Some(format!(
            "{failed} data file(s) FAILED (see errors) and later exports were not applied. Fix the cause, \
             then restore the chain again under a new restore_id: replaying it is safe because puts and \
             deletes are idempotent"
        )),
        RunStatus::Interrupted => {
            errors.push(ErrorReport {
                error_type: "Retryable".into(),
                message: format!(
                    "restore {} is not finished: {unfinished} data file(s) are not DONE",
                    plan.restore_id
                ),
            });
            Some(format!(
                "start the state machine again with restore_id {}: DONE files are skipped and PENDING files \
                 continue from their checkpoints (redrive the dead-letter queue first if messages reached it)",
                plan.restore_id
            ))
        }
    };
    Report {
        chain: plan.chain.clone(),
        report_format: REPORT_FORMAT,
        tool: format!("ddb-pitr {}", env!("CARGO_PKG_VERSION")),
        status,
        dry_run: false,
        table: plan.table.clone(),
        started_at: plan.created_at.clone(),
        finished_at: rfc3339(now),
        duration_seconds: duration.as_secs_f64(),
        checkpoint: Some(format!(
            "control table {control_table}, restore {}",
            plan.restore_id
        )),
        exports,
        chain_discontinuities: plan.gaps.clone(),
        totals,
        writes,
        capacity: None,
        latency: None,
        errors,
        resume_hint,
    }
}

/// The summary of a report for the state machine.
pub fn summarize(plan: &RestorePlan, report: &Report, report_uri: Option<&S3Uri>) -> ReportSummary {
    let failed: Vec<&FileReport> = report
        .exports
        .iter()
        .flat_map(|e| &e.files)
        .filter(|f| f.status == FileStatus::Failed)
        .collect();
    let at = report_uri.map_or_else(
        || "no report_uri was given; the control table has every file's state".to_owned(),
        |u| format!("the report is at {u}"),
    );
    let (error, cause) = match report.status {
        RunStatus::Succeeded => (None, None),
        RunStatus::Failed => {
            let first = failed
                .first()
                .and_then(|f| f.error.clone())
                .unwrap_or_default();
            let mut cause = format!(
                "{} of {} data files FAILED; {at}. First: {first}",
                failed.len(),
                report.totals.files
            );
            truncate_in_place(&mut cause, CAUSE_LIMIT);
            (Some(format!("FilesFailed.{}", failed.len())), Some(cause))
        }
        RunStatus::Interrupted => (
            Some("RestoreUnfinished".to_owned()),
            Some(format!(
                "{} of {} data files are DONE; {at}",
                report.totals.files_done, report.totals.files
            )),
        ),
    };
    ReportSummary {
        restore_id: plan.restore_id.clone(),
        table: plan.table.clone(),
        status: report.status,
        report_uri: report_uri.map(ToString::to_string),
        files: report.totals.files,
        files_done: report.totals.files_done,
        files_failed: failed.len() as u64,
        items_put: report.totals.items_put,
        items_deleted: report.totals.items_deleted,
        error,
        cause,
    }
}

fn truncate_in_place(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

/// Builds the report of `restore_id`, uploads it to the plan's report URI (if any) and summarizes it.
pub async fn report(
    control: &ControlTable,
    s3: &aws_sdk_s3::Client,
    restore_id: &str,
) -> Result<(Report, ReportSummary)> {
    let header = control.require_header(restore_id).await?;
    let report = from_header(control, &header).await?;
    let target = match &header.plan.options.report_uri {
        Some(uri) => Some(report_object(&uri.parse::<S3Uri>()?, restore_id)),
        None => None,
    };
    if let Some(target) = &target {
        put_report(s3, target, &report).await?;
    }
    let summary = summarize(&header.plan, &report, target.as_ref());
    tracing::info!(
        restore_id,
        status = ?summary.status,
        files_failed = summary.files_failed,
        report = summary.report_uri.as_deref().unwrap_or("-"),
        "report written"
    );
    Ok((report, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::control::{
        Dispatch, ExportPlan, ExportProgress, HeaderStatus, PlanOptions,
    };
    use crate::engine::watermark::FilePosition;
    use crate::export::manifest::{DataFile, ExportType, SummaryChecksum};
    use crate::item::key::KeySchema;
    use crate::write::BatchSize;

    fn header(exports: usize) -> Header {
        let export = |i: usize| ExportPlan {
            export_id: format!("e{i}"),
            export_arn: format!("arn:aws:dynamodb:us-east-1:1:table/t/export/e{i}"),
            uri: format!("s3://b/exports/e{i}/"),
            bucket: "b".into(),
            export_type: if i == 0 {
                ExportType::Full
            } else {
                ExportType::Incremental
            },
            view: None,
            summary_checksum: SummaryChecksum::Verified,
            files: 2,
            items: 10,
        };
        Header {
            plan: RestorePlan {
                restore_id: "r1".into(),
                table: "t".into(),
                key: KeySchema { attrs: vec![] },
                exports: (0..exports).map(export).collect(),
                gaps: vec![],
                options: PlanOptions {
                    batch_size: BatchSize::MAX,
                    allow_gaps: false,
                    report_uri: None,
                },
                created_at: "2026-11-24T10:00:00.000Z".into(),
                chain: None,
            },
            status: HeaderStatus::Ready,
            exports: vec![ExportProgress::default(); exports],
            dispatch: vec![Dispatch::default(); exports],
        }
    }

    fn file(k: usize, name: &str, status: RecordStatus, lines: u64) -> FileRecord {
        FileRecord {
            export_index: k,
            export_id: format!("e{k}"),
            export_type: ExportType::Full,
            bucket: "b".into(),
            file: DataFile {
                key: format!("exports/e{k}/data/{name}.json.gz"),
                item_count: 5,
                md5: "x".into(),
                etag: None,
            },
            object_etag: None,
            updated_at: None,
            status,
            position: FilePosition {
                offset: lines * 100,
                lines,
                puts: lines,
                deletes: 0,
            },
            compressed_bytes: if status == RecordStatus::Done { 40 } else { 0 },
            md5_verified: status == RecordStatus::Done,
            lease_owner: None,
            lease_token: None,
            lease_expires_ms: 0,
            deliveries: 1,
            stalls: 0,
            error: (status == RecordStatus::Failed)
                .then(|| format!("export e{k}, file {name}, line 3, byte offset 200: bad JSON")),
            finished_by: None,
            writes: WriteStatsSnapshot {
                batch_write_requests: 2,
                throttled_requests: 1,
                ..Default::default()
            },
        }
    }

    fn at(secs: u64) -> SystemTime {
        humantime::parse_rfc3339("2026-11-24T10:00:00Z").unwrap() + Duration::from_secs(secs)
    }

    #[test]
    fn a_finished_restore_succeeds_with_summed_counts() {
        let h = header(2);
        let files = vec![
            vec![
                file(0, "a", RecordStatus::Done, 5),
                file(0, "b", RecordStatus::Done, 5),
            ],
            vec![
                file(1, "c", RecordStatus::Done, 4),
                file(1, "d", RecordStatus::Done, 0),
            ],
        ];
        let r = assemble(&h, &files, "ctl", at(10));
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(r.duration_seconds, 10.0);
        assert_eq!(r.totals.files, 4);
        assert_eq!(r.totals.files_done, 4);
        assert_eq!(r.totals.items_put, 14);
        assert_eq!(r.exports[1].items_put, 4);
        assert_eq!(r.exports[0].files[1].status, FileStatus::Done);
        assert_eq!(r.writes.batch_write_requests, 8);
        assert_eq!(r.writes.throttled_requests, 4);
        assert!(r.errors.is_empty() && r.resume_hint.is_none());
        let s = summarize(&h.plan, &r, None);
        assert_eq!((s.error, s.cause, s.files_failed), (None, None, 0));
    }

    #[test]
    fn failed_files_name_their_count_and_the_report() {
        let h = header(2);
        let files = vec![
            vec![
                file(0, "a", RecordStatus::Done, 5),
                file(0, "b", RecordStatus::Failed, 2),
            ],
            vec![
                file(1, "c", RecordStatus::Pending, 0),
                file(1, "d", RecordStatus::Pending, 0),
            ],
        ];
        let r = assemble(&h, &files, "ctl", at(3));
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.exports[0].files[1].status, FileStatus::Failed);
        assert_eq!(r.exports[1].files[0].status, FileStatus::Pending);
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0].message.contains("byte offset 200"));
        let uri: S3Uri = "s3://reports/r1.json".parse().unwrap();
        let s = summarize(&h.plan, &r, Some(&uri));
        assert_eq!(s.error.as_deref(), Some("FilesFailed.1"));
        let cause = s.cause.unwrap();
        assert!(cause.contains("1 of 4 data files FAILED"), "{cause}");
        assert!(cause.contains("s3://reports/r1.json"), "{cause}");
        assert!(
            cause.contains("exports/e0/data/b.json.gz") || cause.contains("file b"),
            "{cause}"
        );
    }

    #[test]
    fn an_unfinished_restore_is_interrupted_with_a_resume_hint() {
        let h = header(1);
        let files = vec![vec![
            file(0, "a", RecordStatus::Done, 5),
            file(0, "b", RecordStatus::Pending, 2),
        ]];
        let r = assemble(&h, &files, "ctl", at(1));
        assert_eq!(r.status, RunStatus::Interrupted);
        assert_eq!(r.exports[0].files[1].status, FileStatus::Partial);
        assert!(r.resume_hint.as_deref().unwrap().contains("restore_id r1"));
        assert_eq!(
            summarize(&h.plan, &r, None).error.as_deref(),
            Some("RestoreUnfinished")
        );
    }

    #[test]
    fn the_summary_stays_small_for_100_000_failed_files() {
        let h = header(1);
        let mut files: Vec<FileRecord> = (0..100_000)
            .map(|i| file(0, &format!("f{i:06}"), RecordStatus::Failed, 1))
            .collect();
        files[0].error = Some("x".repeat(50_000));
        let r = assemble(&h, &[files], "ctl", at(60));
        let uri: S3Uri = "s3://reports/r1.json".parse().unwrap();
        let s = summarize(&h.plan, &r, Some(&uri));
        assert_eq!(s.files_failed, 100_000);
        assert_eq!(s.error.as_deref(), Some("FilesFailed.100000"));
        let bytes = serde_json::to_vec(&s).unwrap().len();
        // Step Functions' payload limit is 256 KiB; the summary carries counts and one truncated cause.
        assert!(bytes < 2048, "{bytes} bytes");
    }

    #[test]
    fn a_prefix_gets_one_object_per_restore() {
        let prefix: S3Uri = "s3://b/reports/".parse().unwrap();
        assert_eq!(
            report_object(&prefix, "r1").to_string(),
            "s3://b/reports/ddb-pitr-report-r1.json"
        );
        let exact: S3Uri = "s3://b/x.json".parse().unwrap();
        assert_eq!(report_object(&exact, "r1"), exact);
    }
}
