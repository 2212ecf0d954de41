//! `--request-export`: when no chain ends at the time asked for, ask DynamoDB for what is missing
//! (ExportTableToPointInTime) into the same bucket and prefix, wait for it, and add it to the catalog.
//!
//! What is asked for:
//! - INCREMENTAL exports (NEW_AND_OLD_IMAGES) from the latest point a chain reaches before the time, split
//!   into windows DynamoDB accepts (at least 15 minutes, at most 24 hours each);
//! - or one FULL export at the time, when no point fits (none within the PITR window, or less than 15
//!   minutes before the time) or when it is estimated to cost less.
//!
//! The estimate compares billed bytes: a FULL export is billed on the table's size (DescribeTable's
//! TableSizeBytes); an INCREMENTAL export on the changes it processes, at least 10 MB each, which is
//! estimated from the rate of change of the table's earlier incremental exports (none known: the minimum).
//!
//! Each request carries a ClientToken derived from the request itself, so a re-run within DynamoDB's
//! 8-hour idempotency window gets the same export instead of starting a second one.

use std::time::{Duration, SystemTime};

use md5::{Digest, Md5};

use crate::aws::error::sdk_error;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::export::discover::{Found, Origin, Requested, landed_at, points, root_of};
use crate::export::location::{ExportUri, S3Uri};
use crate::export::manifest::ExportType;

/// DynamoDB's limits on an incremental export's window.
pub const MIN_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The least an incremental export is billed for.
pub const MIN_INCREMENTAL_BILLED: u64 = 10 * 1_000_000;

/// How requested exports are waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestOptions {
    /// Between two DescribeExport calls of one export.
    pub poll: Duration,
    /// Give up waiting after this long (the exports keep running; a re-run waits for the same ones).
    pub timeout: Duration,
    /// Only say what would be requested (`--dry-run`, `validate`).
    pub dry_run: bool,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            poll: Duration::from_secs(30),
            timeout: Duration::from_secs(12 * 3600),
            dry_run: false,
        }
    }
}

/// One export to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub export_type: ExportType,
    /// INCREMENTAL only.
    pub from: Option<SystemTime>,
    pub to: SystemTime,
    /// The bucket, and the S3Prefix given to ExportTableToPointInTime (no trailing `/`; empty for none).
    pub bucket: String,
    pub prefix: String,
    /// The estimate of what DynamoDB bills for it.
    pub estimated_bytes: u64,
    pub client_token: String,
}

impl std::fmt::Display for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.from {
            Some(from) => write!(f, "INCREMENTAL {} → {}", rfc3339(from), rfc3339(self.to))?,
            None => write!(f, "FULL at {}", rfc3339(self.to))?,
        }
        write!(
            f,
            " into s3://{}/{} (about {} billed bytes)",
            self.bucket, self.prefix, self.estimated_bytes
        )
    }
}

/// What the request depends on, read from DynamoDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceState {
    /// The PITR window: exports can be asked for between these times.
    pub earliest: SystemTime,
    pub latest: SystemTime,
    /// DescribeTable's TableSizeBytes, what a FULL export is billed on.
    pub table_bytes: u64,
}

/// The S3Prefix to ask DynamoDB for, from the folder that holds `AWSDynamoDB/`.
fn s3_prefix(root: &str) -> String {
    root.trim_end_matches('/').to_owned()
}

/// The ClientToken of a request: an MD5 of everything that defines it, so the same request gets the same
/// token, and any other request another one.
fn client_token(
    table_arn: &str,
    ty: ExportType,
    from: Option<SystemTime>,
    to: SystemTime,
    bucket: &str,
    prefix: &str,
) -> String {
    let text = format!(
        "ddb-pitr|{table_arn}|{ty:?}|{}|{}|{bucket}|{prefix}|DYNAMODB_JSON|NEW_AND_OLD_IMAGES",
        from.map(rfc3339).unwrap_or_default(),
        rfc3339(to)
    );
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Windows of at most [`MAX_WINDOW`] from `from` to `to`, of equal length, cut at whole seconds.
fn windows(from: SystemTime, to: SystemTime) -> Vec<(SystemTime, SystemTime)> {
    let span = to.duration_since(from).unwrap_or_default();
    let n = span.as_secs().div_ceil(MAX_WINDOW.as_secs()).max(1) as u32;
    let mut cuts = vec![from];
    for k in 1..n {
        let at = from + span * k / n;
        let whole = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()))
            .unwrap_or(at);
        cuts.push(whole);
    }
    cuts.push(to);
    cuts.windows(2).map(|w| (w[0], w[1])).collect()
}

/// The exports to ask for so that a chain of `mine` (one table's exports) ends at `at`, into `into` (the
/// bucket and the folder that holds `AWSDynamoDB/`).
pub fn plan(
    table_arn: &str,
    mine: &[&Found],
    at: SystemTime,
    allow_gaps: bool,
    into: &S3Uri,
    state: &SourceState,
) -> Result<Vec<Ask>> {
    if at < state.earliest || at > state.latest {
        return Err(Error::Chain(format!(
            "{} is outside the PITR window of {table_arn} ({} to {}): DynamoDB can export only within it",
            rfc3339(at),
            rfc3339(state.earliest),
            rfc3339(state.latest)
        )));
    }
    let prefix = s3_prefix(&into.key);
    let ask = |ty, from: Option<SystemTime>, to, estimated_bytes| Ask {
        export_type: ty,
        from,
        to,
        bucket: into.bucket.clone(),
        prefix: prefix.clone(),
        estimated_bytes,
        client_token: client_token(table_arn, ty, from, to, &into.bucket, &prefix),
    };
    let full = vec![ask(ExportType::Full, None, at, state.table_bytes)];
    // The latest point a chain reaches that an incremental export can start from.
    let start = points(mine, allow_gaps)
        .into_iter()
        .filter(|p| p.time >= state.earliest && p.time < at)
        .filter(|p| at.duration_since(p.time).unwrap_or_default() >= MIN_WINDOW)
        .map(|p| p.time)
        .max();
    let Some(start) = start else {
        return Ok(full);
    };
    // Bytes per second of change, from the table's incremental exports that report a billed size.
    let (bytes, secs) = mine
        .iter()
        .filter(|f| f.export_type == ExportType::Incremental)
        .filter_map(|f| {
            let secs = f.end.duration_since(f.start).ok()?.as_secs_f64();
            Some((f.billed_bytes? as f64, secs))
        })
        .fold((0.0, 0.0), |(b, s), (fb, fs)| (b + fb, s + fs));
    let rate = if secs > 0.0 { bytes / secs } else { 0.0 };
    let incrementals: Vec<Ask> = windows(start, at)
        .into_iter()
        .map(|(from, to)| {
            let secs = to.duration_since(from).unwrap_or_default().as_secs_f64();
            let estimate = ((rate * secs) as u64).max(MIN_INCREMENTAL_BILLED);
            ask(ExportType::Incremental, Some(from), to, estimate)
        })
        .collect();
    let incremental_cost: u64 = incrementals.iter().map(|a| a.estimated_bytes).sum();
    Ok(if state.table_bytes < incremental_cost {
        full
    } else {
        incrementals
    })
}

/// Where requested exports go: the prefix searched, or the folder of the table's latest export `latest`.
pub fn destination(origin: &Origin, latest: Option<&ExportUri>) -> Result<S3Uri> {
    match origin {
        Origin::Prefix(prefix) => Ok(S3Uri {
            bucket: prefix.bucket.clone(),
            key: root_of(prefix),
        }),
        Origin::Table(arn) => latest
            .map(|u| S3Uri {
                bucket: u.bucket.clone(),
                key: u.root.clone(),
            })
            .ok_or_else(|| {
                Error::Chain(format!(
                    "{arn} has no export to say where to request one; give --export-prefix the bucket and \
                     prefix to export into"
                ))
            }),
    }
}

/// The latest export of `mine` (one table's), whose folder [`destination`] takes for a table's exports.
pub fn latest<'a>(mine: &[&'a Found]) -> Option<&'a ExportUri> {
    mine.iter().max_by_key(|f| f.end).map(|f| &f.uri)
}

/// The PITR window (DescribeContinuousBackups) and size (DescribeTable) of the source table.
pub async fn source_state(
    dynamodb: &aws_sdk_dynamodb::Client,
    table_arn: &str,
) -> Result<SourceState> {
    let out = dynamodb
        .describe_continuous_backups()
        .table_name(table_arn)
        .send()
        .await
        .map_err(|e| sdk_error(format!("DescribeContinuousBackups {table_arn}"), &e))?;
    let pitr = out
        .continuous_backups_description()
        .and_then(|c| c.point_in_time_recovery_description());
    let enabled = pitr
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str())
        == Some("ENABLED");
    let time =
        |t: Option<&aws_smithy_types::DateTime>| t.and_then(|t| SystemTime::try_from(*t).ok());
    let (Some(earliest), Some(latest)) = (
        time(pitr.and_then(|p| p.earliest_restorable_date_time())),
        time(pitr.and_then(|p| p.latest_restorable_date_time())),
    ) else {
        return Err(Error::Chain(format!(
            "point-in-time recovery is {} on {table_arn}: DynamoDB exports only from a table's PITR window",
            if enabled {
                "without a restorable window"
            } else {
                "not enabled"
            }
        )));
    };
    let table = dynamodb
        .describe_table()
        .table_name(table_arn)
        .send()
        .await
        .map_err(|e| sdk_error(format!("DescribeTable {table_arn}"), &e))?;
    let table_bytes = table
        .table()
        .and_then(|t| t.table_size_bytes())
        .unwrap_or_default()
        .max(0) as u64;
    Ok(SourceState {
        earliest,
        latest,
        table_bytes,
    })
}

/// Asks DynamoDB for each export of `asks` (ExportTableToPointInTime with its ClientToken) and waits for
/// them all (DescribeExport every `opts.poll`), saying how they are doing on stderr. Returns what was
/// requested and where each landed.
pub async fn request(
    dynamodb: &aws_sdk_dynamodb::Client,
    table_arn: &str,
    asks: &[Ask],
    opts: &RequestOptions,
) -> Result<Vec<(Requested, ExportUri)>> {
    use aws_sdk_dynamodb::types::{
        ExportFormat, ExportStatus, ExportType as SdkType, ExportViewType,
        IncrementalExportSpecification,
    };
    let mut started = Vec::new();
    for ask in asks {
        let mut call = dynamodb
            .export_table_to_point_in_time()
            .table_arn(table_arn)
            .s3_bucket(&ask.bucket)
            .export_format(ExportFormat::DynamodbJson)
            .client_token(&ask.client_token);
        if !ask.prefix.is_empty() {
            call = call.s3_prefix(&ask.prefix);
        }
        call = match ask.from {
            None => call
                .export_type(SdkType::FullExport)
                .export_time(ask.to.into()),
            Some(from) => call
                .export_type(SdkType::IncrementalExport)
                .incremental_export_specification(
                    IncrementalExportSpecification::builder()
                        .export_from_time(from.into())
                        .export_to_time(ask.to.into())
                        .export_view_type(ExportViewType::NewAndOldImages)
                        .build(),
                ),
        };
        let out = call
            .send()
            .await
            .map_err(|e| sdk_error(format!("ExportTableToPointInTime {table_arn} ({ask})"), &e))?;
        let arn = out
            .export_description()
            .and_then(|d| d.export_arn())
            .ok_or_else(|| {
                Error::Chain(format!(
                    "ExportTableToPointInTime ({ask}) returned no export ARN"
                ))
            })?
            .to_owned();
        tracing::info!(export = arn, "requested {ask}");
        started.push((ask, arn));
    }
    let began = tokio::time::Instant::now();
    let mut done = Vec::new();
    for (ask, arn) in started {
        loop {
            let out = dynamodb
                .describe_export()
                .export_arn(&arn)
                .send()
                .await
                .map_err(|e| sdk_error(format!("DescribeExport {arn}"), &e))?;
            let d = out.export_description().ok_or_else(|| {
                Error::Chain(format!("DescribeExport {arn} returned no description"))
            })?;
            match d.export_status() {
                Some(ExportStatus::Completed) => {
                    let uri = landed_at(d).ok_or_else(|| {
                        Error::Chain(format!(
                            "DescribeExport {arn} names no S3 bucket and manifest"
                        ))
                    })?;
                    tracing::info!(export = arn, "completed after {:?}: {ask}", began.elapsed());
                    done.push((
                        Requested {
                            export_arn: arn.clone(),
                            export_type: ask.export_type,
                            from: ask.from.map(rfc3339),
                            to: rfc3339(ask.to),
                            client_token: ask.client_token.clone(),
                            billed_bytes: d.billed_size_bytes().map(|b| b.max(0) as u64),
                            items: d.item_count().map(|n| n.max(0) as u64),
                        },
                        uri,
                    ));
                    break;
                }
                Some(ExportStatus::Failed) => {
                    return Err(Error::Chain(format!(
                        "the export DynamoDB was asked for failed: {arn} ({ask}): {} {}",
                        d.failure_code().unwrap_or("no failure code"),
                        d.failure_message().unwrap_or_default()
                    )));
                }
                _ => {}
            }
            if began.elapsed() >= opts.timeout {
                return Err(Error::Chain(format!(
                    "export {arn} ({ask}) is still running after {}; it keeps running, and the same command \
                     run again waits for it (the ClientToken is the same for 8 hours)",
                    humantime::format_duration(opts.timeout)
                )));
            }
            tracing::info!(
                export = arn,
                "waiting for {ask}: {} for {}s",
                d.export_status().map_or("no status", |s| s.as_str()),
                began.elapsed().as_secs()
            );
            tokio::time::sleep(opts.poll).await;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:dynamodb:r:123456789012:table/orders";

    fn at(hours: f64) -> SystemTime {
        humantime::parse_rfc3339("2026-01-14T00:00:00Z").unwrap()
            + Duration::from_secs_f64(hours * 3600.0)
    }

    fn found(id: &str, ty: ExportType, start: f64, end: f64, billed: u64) -> Found {
        Found {
            export_id: id.into(),
            uri: format!("s3://b/p/AWSDynamoDB/{id}/").parse().unwrap(),
            table_arn: ARN.into(),
            export_type: ty,
            view: None,
            start: at(start),
            end: at(end),
            items: 1,
            billed_bytes: Some(billed),
        }
    }

    fn state(earliest: f64, table_bytes: u64) -> SourceState {
        SourceState {
            earliest: at(earliest),
            latest: at(100.0),
            table_bytes,
        }
    }

    /// The requests for `to` after `exports`, into `s3://b/p/`, for a table whose PITR window opens at
    /// hour `earliest` and that holds `table_bytes`.
    fn ask(exports: &[&Found], to: f64, earliest: f64, table_bytes: u64) -> Result<Vec<Ask>> {
        plan(
            ARN,
            exports,
            at(to),
            false,
            &"s3://b/p/".parse().unwrap(),
            &state(earliest, table_bytes),
        )
    }

    #[test]
    fn incrementals_continue_the_latest_point_in_windows_of_at_most_a_day() {
        let full = found("full", ExportType::Full, 0.0, 0.0, 1);
        let inc = found("inc", ExportType::Incremental, 0.0, 1.0, 3600);
        let asks = ask(&[&full, &inc], 51.0, 0.0, u64::MAX).unwrap();
        assert_eq!(asks.len(), 3, "50 hours from the 01:00 point: {asks:?}");
        assert_eq!(asks[0].from, Some(at(1.0)));
        assert_eq!(asks.last().unwrap().to, at(51.0));
        for w in asks.windows(2) {
            assert_eq!(w[0].to, w[1].from.unwrap(), "contiguous");
        }
        for a in &asks {
            let span = a.to.duration_since(a.from.unwrap()).unwrap();
            assert!((MIN_WINDOW..=MAX_WINDOW).contains(&span), "{a}");
            assert_eq!(a.export_type, ExportType::Incremental);
            assert_eq!((a.bucket.as_str(), a.prefix.as_str()), ("b", "p"));
        }
        // 1 byte a second of change, from the earlier incremental.
        assert_eq!(
            asks.iter().map(|a| a.estimated_bytes).sum::<u64>(),
            3 * MIN_INCREMENTAL_BILLED.max(50 * 3600 / 3)
        );
        let tokens: std::collections::BTreeSet<&str> =
            asks.iter().map(|a| a.client_token.as_str()).collect();
        assert_eq!(tokens.len(), 3, "each request its own token");
        let again = ask(&[&full, &inc], 51.0, 0.0, u64::MAX).unwrap();
        assert_eq!(asks, again, "the same request, the same tokens");
    }

    #[test]
    fn a_full_export_when_no_point_fits_or_when_it_is_cheaper() {
        let full = found("full", ExportType::Full, 0.0, 0.0, 1);
        // The only point is before the PITR window.
        let asks = ask(&[&full], 5.0, 1.0, u64::MAX).unwrap();
        assert_eq!(asks.len(), 1);
        assert_eq!(
            (asks[0].export_type, asks[0].from, asks[0].to),
            (ExportType::Full, None, at(5.0))
        );
        // Less than 15 minutes after the only point.
        let asks = ask(&[&full], 0.2, 0.0, u64::MAX).unwrap();
        assert_eq!(asks[0].export_type, ExportType::Full);
        // A small table: its FULL export costs less than an incremental's minimum.
        let asks = ask(&[&full], 5.0, 0.0, 1_000_000).unwrap();
        assert_eq!(asks[0].export_type, ExportType::Full);
        assert_eq!(asks[0].estimated_bytes, 1_000_000);
        // A big one: the incremental.
        let asks = ask(&[&full], 5.0, 0.0, 1 << 40).unwrap();
        assert_eq!(asks[0].export_type, ExportType::Incremental);
    }

    #[test]
    fn a_time_outside_the_pitr_window_is_refused() {
        let e = ask(&[], 200.0, 0.0, 1).unwrap_err().to_string();
        assert!(e.contains("outside the PITR window"), "{e}");
        assert!(
            e.contains("2026-01-18T04:00:00.000Z"),
            "names the window: {e}"
        );
    }

    #[test]
    fn the_prefix_asked_for_is_the_one_given_to_dynamodb() {
        assert_eq!(s3_prefix("backups/"), "backups");
        assert_eq!(s3_prefix(""), "");
        assert_eq!(s3_prefix("a/b/"), "a/b");
    }
}
