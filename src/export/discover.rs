//! Finding the chain for "table T as it was at TIME": every export under the `S3Prefix` that was given to
//! ExportTableToPointInTime (`<prefix>AWSDynamoDB/<export id>/manifest-summary.json`), the points in time
//! each table's exports can restore, and the chain that reaches the one asked for.
//!
//! A point is a FULL export's `exportTime`, or the `exportToTime` of an INCREMENTAL export that continues a
//! chain from a FULL export: it starts exactly where the chain so far ends (or, with `--allow-gaps`, at the
//! nearest start after it). Several chains may reach one point (an older FULL export and more incrementals,
//! or a newer FULL export); the one that writes the fewest bytes is taken.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use aws_sdk_dynamodb::types::{ExportDescription, ExportStatus};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::aws::error::sdk_error;
use crate::clock::{parse_time, rfc3339};
use crate::error::{Error, Result};
use crate::export::location::{ExportUri, S3Uri};
use crate::export::manifest::{ExportType, OutputView, read_summary};
use crate::export::source::ObjectReader;

const EXPORT_DIR: &str = "AWSDynamoDB/";
/// Summaries read at once.
const READ_CONCURRENCY: usize = 32;
/// DescribeExport calls at once (a control-plane call, with a lower rate limit than S3 reads).
const DESCRIBE_CONCURRENCY: usize = 4;

/// A finished export found under the prefix: what its summary says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub export_id: String,
    #[serde(skip)]
    pub uri: ExportUri,
    pub table_arn: String,
    #[serde(rename = "type")]
    pub export_type: ExportType,
    pub view: Option<OutputView>,
    #[serde(serialize_with = "as_rfc3339")]
    pub start: SystemTime,
    #[serde(serialize_with = "as_rfc3339")]
    pub end: SystemTime,
    pub items: u64,
    /// `billedSizeBytes` of the summary, if it has one.
    pub billed_bytes: Option<u64>,
}

impl Found {
    /// What restoring this export writes, to compare chains: its billed size, or, for summaries without
    /// one, a kilobyte per item.
    fn cost(&self) -> u64 {
        self.billed_bytes
            .unwrap_or_else(|| self.items.saturating_mul(1024))
    }
}

/// An export folder that cannot be part of a chain, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub export: String,
    pub reason: String,
}

/// Where the exports were looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Under the S3Prefix given to ExportTableToPointInTime: `s3://bucket/<prefix>`, the folder that holds
    /// `AWSDynamoDB/`.
    Prefix(S3Uri),
    /// Every export DynamoDB's ListExports lists for this table ARN, wherever it landed.
    Table(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Prefix(uri) => write!(f, "{uri}"),
            Origin::Table(arn) => write!(f, "the exports DynamoDB lists for {arn}"),
        }
    }
}

impl Origin {
    /// Where to find the exports: under `export_prefix`, or, with only `source_table` (an ARN), the ones
    /// DynamoDB lists for that table. `None` when neither is given.
    pub fn given(
        export_prefix: Option<&str>,
        source_table: Option<&str>,
    ) -> Result<Option<Origin>> {
        Ok(match (export_prefix, source_table) {
            (Some(prefix), _) => Some(Origin::Prefix(prefix.parse()?)),
            (None, Some(arn)) if arn.starts_with("arn:") => Some(Origin::Table(arn.to_owned())),
            (None, Some(name)) => {
                return Err(Error::Usage(format!(
                    "source table {name} without an export prefix must be the table's ARN \
                     (arn:aws:dynamodb:REGION:ACCOUNT:table/{name}): DynamoDB lists exports by table ARN"
                )));
            }
            (None, None) => None,
        })
    }

    /// The flag that names this origin, for the messages that suggest a command.
    pub fn flag(&self) -> String {
        match self {
            Origin::Prefix(uri) => format!("--export-prefix {uri}"),
            Origin::Table(arn) => format!("--source-table {arn}"),
        }
    }
}

/// Every export found at an [`Origin`].
#[derive(Debug, Clone)]
pub struct Catalog {
    pub origin: Origin,
    /// Sorted by table, then by start and end.
    pub exports: Vec<Found>,
    pub skipped: Vec<Skipped>,
}

/// The folder that holds `AWSDynamoDB/`: the prefix as given to ExportTableToPointInTime, or that prefix
/// with `AWSDynamoDB/` already appended.
pub fn root_of(prefix: &S3Uri) -> String {
    let key = prefix.key.trim_start_matches('/');
    let key = key.strip_suffix(EXPORT_DIR).unwrap_or(key);
    match key {
        "" => String::new(),
        k if k.ends_with('/') => k.to_owned(),
        k => format!("{k}/"),
    }
}

/// Lists the export folders under `prefix` and reads their summaries in parallel. Folders without a summary
/// (exports still running, or failed) and summaries that cannot be read are skipped with a warning.
pub async fn scan(objects: &dyn ObjectReader, prefix: &S3Uri) -> Result<Catalog> {
    let root = root_of(prefix);
    let base = S3Uri {
        bucket: prefix.bucket.clone(),
        key: root.clone(),
    };
    let dir = format!("{root}{EXPORT_DIR}");
    let folders = objects.list_folders(&prefix.bucket, &dir).await?;
    let ids: Vec<String> = folders
        .iter()
        .filter_map(|f| f.strip_prefix(&dir)?.strip_suffix('/'))
        // Incremental exports' data files share `AWSDynamoDB/data/`.
        .filter(|id| *id != "data")
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err(Error::Usage(format!(
            "no export folders under s3://{}/{dir}: give --export-prefix the S3 prefix the exports were written \
             to (the folder that holds AWSDynamoDB/)",
            prefix.bucket
        )));
    }
    let uris = ids
        .into_iter()
        .map(|export_id| ExportUri {
            bucket: prefix.bucket.clone(),
            root: root.clone(),
            export_id,
        })
        .collect();
    let (exports, skipped) = read_all(objects, uris).await?;
    Ok(Catalog {
        origin: Origin::Prefix(base),
        exports,
        skipped,
    })
}

/// Reads the summaries of `uris` in parallel: the finished exports, sorted by table then time, and the
/// folders that are not (with their reason).
pub async fn read_all(
    objects: &dyn ObjectReader,
    uris: Vec<ExportUri>,
) -> Result<(Vec<Found>, Vec<Skipped>)> {
    let reads = futures::stream::iter(uris.into_iter().map(|uri| async move {
        let read = read_summary(objects, &uri).await;
        (uri, read)
    }))
    .buffer_unordered(READ_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    let mut exports = Vec::new();
    let mut skipped = Vec::new();
    for (uri, read) in reads {
        let folder = format!("s3://{}/{}", uri.bucket, uri.key(""));
        match read {
            Ok(Some((info, _))) => exports.push(Found {
                export_id: uri.export_id.clone(),
                table_arn: info.summary.table_arn.clone(),
                export_type: info.export_type,
                view: info.view,
                start: info.start,
                end: info.end,
                items: info.summary.item_count,
                billed_bytes: info.summary.billed_size_bytes,
                uri,
            }),
            Ok(None) => {
                let started = objects.get(&uri.bucket, &uri.key("_started")).await?;
                skipped.push(Skipped {
                    export: folder,
                    reason: if started.is_some() {
                        "no manifest-summary.json: the export is still running, or it failed".into()
                    } else {
                        "no manifest-summary.json and no _started: not an export folder".into()
                    },
                });
            }
            // A transient failure is an error: skipping the export could choose a worse chain silently.
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => skipped.push(Skipped {
                export: folder,
                reason: e.to_string(),
            }),
        }
    }
    for s in &skipped {
        tracing::warn!(export = s.export, "skipped: {}", s.reason);
    }
    sort(&mut exports);
    skipped.sort_by(|a, b| a.export.cmp(&b.export));
    Ok((exports, skipped))
}

/// The exports of `table_arn` that DynamoDB lists (ListExports, DescribeExport for each finished one),
/// wherever they landed, with their summaries read from S3 as under a prefix. Exports that are running
/// or failed are skipped with their status.
pub async fn scan_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    objects: &dyn ObjectReader,
    table_arn: &str,
) -> Result<Catalog> {
    let mut arns = Vec::new();
    let mut skipped = Vec::new();
    let mut token = None;
    loop {
        let out = dynamodb
            .list_exports()
            .table_arn(table_arn)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error(format!("ListExports {table_arn}"), &e))?;
        for e in out.export_summaries() {
            let arn = e.export_arn().unwrap_or_default().to_owned();
            match e.export_status() {
                Some(ExportStatus::Completed) => arns.push(arn),
                status => skipped.push(Skipped {
                    export: arn,
                    reason: format!(
                        "ListExports says {}",
                        status.map_or("no status", |s| s.as_str())
                    ),
                }),
            }
        }
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let described = futures::stream::iter(arns.into_iter().map(|arn| async move {
        let out = dynamodb.describe_export().export_arn(&arn).send().await;
        (arn, out)
    }))
    .buffer_unordered(DESCRIBE_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    let mut uris = Vec::new();
    for (arn, out) in described {
        let out = out.map_err(|e| sdk_error(format!("DescribeExport {arn}"), &e))?;
        match out.export_description().and_then(landed_at) {
            Some(uri) => uris.push(uri),
            None => skipped.push(Skipped {
                export: arn,
                reason: "DescribeExport names no S3 bucket and manifest".into(),
            }),
        }
    }
    if uris.is_empty() && skipped.is_empty() {
        return Err(Error::Chain(format!(
            "DynamoDB lists no export of {table_arn} (ListExports covers the last 90 days); give \
             --export-prefix the S3 prefix older exports were written to"
        )));
    }
    let (exports, more) = read_all(objects, uris).await?;
    skipped.extend(more);
    skipped.sort_by(|a, b| a.export.cmp(&b.export));
    Ok(Catalog {
        origin: Origin::Table(table_arn.to_owned()),
        exports,
        skipped,
    })
}

/// By table, then by start and end.
fn sort(exports: &mut [Found]) {
    exports.sort_by(|a, b| {
        (&a.table_arn, a.start, a.end, &a.export_id).cmp(&(
            &b.table_arn,
            b.start,
            b.end,
            &b.export_id,
        ))
    });
}

impl Catalog {
    /// Adds exports found since (requested ones that landed).
    pub fn add(&mut self, found: Vec<Found>) {
        self.exports.extend(found);
        sort(&mut self.exports);
    }

    /// The exports of one table.
    pub fn of(&self, table_arn: &str) -> Vec<&Found> {
        self.exports
            .iter()
            .filter(|f| f.table_arn == table_arn)
            .collect()
    }
}

/// Where an export described by DynamoDB landed: its bucket and the folder of its `ExportManifest` (the
/// key of its manifest-summary.json).
pub fn landed_at(d: &ExportDescription) -> Option<ExportUri> {
    let bucket = d.s3_bucket()?;
    let manifest = d.export_manifest()?;
    format!("s3://{bucket}/{}", manifest.trim_start_matches('/'))
        .parse()
        .ok()
}

/// A point in time that can be restored, with the cheapest chain that reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Point {
    #[serde(serialize_with = "as_rfc3339")]
    pub time: SystemTime,
    /// Export ids, FULL first.
    pub chain: Vec<String>,
    /// What the chain writes (see [`Found`]'s billed bytes).
    pub bytes: u64,
}

/// Every point that `exports` (of one table) can restore, in time order.
pub fn points(exports: &[&Found], allow_gaps: bool) -> Vec<Point> {
    // Best chain (indexes into `exports`) and its cost, per point.
    let mut best: BTreeMap<SystemTime, (u64, Vec<usize>)> = BTreeMap::new();
    let offer =
        |best: &mut BTreeMap<SystemTime, (u64, Vec<usize>)>, t, cost: u64, chain: Vec<usize>| {
            let better = best
                .get(&t)
                .is_none_or(|(c, ch)| (cost, chain.len()) < (*c, ch.len()));
            if better {
                best.insert(t, (cost, chain));
            }
        };
    for (i, f) in exports.iter().enumerate() {
        if f.export_type == ExportType::Full {
            offer(&mut best, f.end, f.cost(), vec![i]);
        }
    }
    let incrementals: Vec<usize> = (0..exports.len())
        .filter(|&i| {
            exports[i].export_type == ExportType::Incremental && exports[i].end > exports[i].start
        })
        .collect();
    // Points in time order: an incremental only ever leads to a later point, so a point's best chain is
    // final once every earlier point has been extended.
    let mut extended = BTreeSet::new();
    while let Some(t) = best.keys().find(|t| !extended.contains(*t)).copied() {
        extended.insert(t);
        let (cost, chain) = best[&t].clone();
        let next = incrementals
            .iter()
            .map(|&i| exports[i].start)
            .filter(|&s| s == t || (allow_gaps && s > t))
            .min();
        let Some(start) = next else { continue };
        for &i in incrementals.iter().filter(|&&i| exports[i].start == start) {
            let mut longer = chain.clone();
            longer.push(i);
            offer(&mut best, exports[i].end, cost + exports[i].cost(), longer);
        }
    }
    best.into_iter()
        .map(|(time, (bytes, chain))| Point {
            time,
            chain: chain
                .into_iter()
                .map(|i| exports[i].export_id.clone())
                .collect(),
            bytes,
        })
        .collect()
}

/// The point to restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The latest point any chain reaches.
    Latest,
    At(SystemTime),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Latest => f.write_str("latest"),
            Target::At(t) => f.write_str(&rfc3339(*t)),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("latest") {
            return Ok(Target::Latest);
        }
        parse_time(s)
            .map(Target::At)
            .map_err(|e| format!("{e}, or `latest`"))
    }
}

/// What to look for: the exports at `origin` of `source_table` (an ARN or a table name; needed when a
/// prefix holds several tables' exports), restored to `to`.
#[derive(Debug, Clone)]
pub struct Find {
    pub origin: Origin,
    pub source_table: Option<String>,
    pub to: Target,
    pub allow_gaps: bool,
}

/// The chain chosen, and what was left out; the report's `chain` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// Where the exports were looked for: the prefix, or the table whose exports DynamoDB lists.
    pub source: String,
    pub table_arn: String,
    /// The time asked for (RFC 3339), or `latest`.
    pub asked: String,
    /// The point restored to (RFC 3339).
    pub reached: String,
    /// Export ids, FULL first.
    pub exports: Vec<String>,
    #[serde(skip)]
    pub uris: Vec<ExportUri>,
    pub skipped: Vec<Skipped>,
    /// The exports DynamoDB was asked for (`--request-export`), on the chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested: Vec<Requested>,
}

/// An export requested with ExportTableToPointInTime, and what DynamoDB billed for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requested {
    pub export_arn: String,
    #[serde(rename = "type")]
    pub export_type: ExportType,
    /// INCREMENTAL only (RFC 3339).
    pub from: Option<String>,
    pub to: String,
    pub client_token: String,
    pub billed_bytes: Option<u64>,
    pub items: Option<u64>,
}

/// The tables whose exports are in `catalog`, with their export counts, for messages.
fn tables(catalog: &Catalog) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &catalog.exports {
        *counts.entry(&f.table_arn).or_default() += 1;
    }
    counts
        .iter()
        .map(|(t, n)| format!("{t} ({n} export{})", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `table/<name>` at the end of a table ARN.
fn table_name(arn: &str) -> &str {
    arn.rsplit_once(":table/").map_or(arn, |(_, name)| name)
}

/// `--source-table` names a table by ARN or by name.
fn is_table(arn: &str, want: &str) -> bool {
    arn == want || table_name(arn) == want
}

fn no_such_table(catalog: &Catalog, want: &str) -> Error {
    Error::Chain(format!(
        "no finished export of table {want} in {}; the tables found are: {}",
        catalog.origin,
        if catalog.exports.is_empty() {
            "none".into()
        } else {
            tables(catalog)
        }
    ))
}

/// The table whose exports to use: `find`'s source table (by ARN or name), or the only one found.
pub fn pick_table(catalog: &Catalog, find: &Find) -> Result<String> {
    Ok(match &find.source_table {
        Some(want) => catalog
            .exports
            .iter()
            .map(|f| f.table_arn.as_str())
            .find(|arn| is_table(arn, want))
            .ok_or_else(|| no_such_table(catalog, want))?
            .to_owned(),
        None => {
            let arns: BTreeSet<&str> = catalog
                .exports
                .iter()
                .map(|f| f.table_arn.as_str())
                .collect();
            match arns.len() {
                0 => {
                    return Err(Error::Chain(format!(
                        "no finished export in {} ({} skipped; see the warnings above)",
                        catalog.origin,
                        catalog.skipped.len()
                    )));
                }
                1 => arns.into_iter().next().expect("one table").to_owned(),
                _ => {
                    return Err(Error::Usage(format!(
                        "{} holds exports of {} tables: {}; choose one with --source-table (its ARN or name)",
                        catalog.origin,
                        arns.len(),
                        tables(catalog)
                    )));
                }
            }
        }
    })
}

/// Picks the table, then the cheapest chain that ends exactly at the target.
pub fn choose(catalog: &Catalog, find: &Find) -> Result<Choice> {
    let table_arn = pick_table(catalog, find)?;
    let mine = catalog.of(&table_arn);
    let all = points(&mine, find.allow_gaps);
    let name = table_name(&table_arn);
    let point = match find.to {
        Target::Latest => all.last(),
        Target::At(t) => all.iter().find(|p| p.time == t),
    };
    let Some(point) = point else {
        let asked = match find.to {
            Target::At(t) => t,
            Target::Latest => SystemTime::UNIX_EPOCH,
        };
        let before = all.iter().rev().find(|p| p.time < asked);
        let after = all.iter().find(|p| p.time > asked);
        let show = |p: Option<&Point>| p.map_or("none".to_owned(), |p| rfc3339(p.time));
        return Err(Error::Chain(format!(
            "no chain of exports of table {name} ends at {}: the nearest points that can be restored are {} \
             (before) and {} (after). Restore to one of them, or add --request-export to have DynamoDB \
             export what is missing (within the table's PITR window); `ddb-pitr exports {}` lists every \
             point{}",
            rfc3339(asked),
            show(before),
            show(after),
            catalog.origin.flag(),
            if find.allow_gaps {
                ""
            } else {
                " (--allow-gaps also accepts chains with gaps between exports)"
            }
        )));
    };
    let chosen: BTreeSet<&str> = point.chain.iter().map(String::as_str).collect();
    let mut skipped = catalog.skipped.clone();
    for f in &catalog.exports {
        if chosen.contains(f.export_id.as_str()) {
            continue;
        }
        let reason = if f.table_arn != table_arn {
            format!("another table ({})", f.table_arn)
        } else if all.iter().any(|p| p.chain.contains(&f.export_id)) {
            "not on the chosen chain: it leads to other points".into()
        } else if f.export_type == ExportType::Full
            || all
                .iter()
                .any(|p| p.time == f.start || (find.allow_gaps && p.time < f.start))
        {
            format!(
                "a chain that writes fewer bytes reaches the same points (the chosen one writes {})",
                point.bytes
            )
        } else {
            "not contiguous: no chain from a FULL export ends where it starts".into()
        };
        skipped.push(Skipped {
            export: format!("s3://{}/{}", f.uri.bucket, f.uri.key("")),
            reason,
        });
    }
    let by_id: BTreeMap<&str, &Found> = mine.iter().map(|f| (f.export_id.as_str(), *f)).collect();
    let uris = point
        .chain
        .iter()
        .map(|id| by_id[id.as_str()].uri.clone())
        .collect();
    tracing::info!(
        table = table_arn,
        reached = %rfc3339(point.time),
        exports = point.chain.join(", "),
        "chain found"
    );
    Ok(Choice {
        source: catalog.origin.to_string(),
        table_arn,
        asked: find.to.to_string(),
        reached: rfc3339(point.time),
        exports: point.chain.clone(),
        uris,
        skipped,
        requested: Vec::new(),
    })
}

/// One table's exports under a prefix and the points they can restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableListing {
    pub table_arn: String,
    pub exports: Vec<Found>,
    pub points: Vec<Point>,
}

/// What `ddb-pitr exports` prints: every table found, its exports, and every point that can be restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// Where the exports were looked for: the prefix, or the table whose exports DynamoDB lists.
    pub source: String,
    pub tables: Vec<TableListing>,
    /// Folders that are not finished exports (still running, failed, unreadable).
    pub skipped: Vec<Skipped>,
}

/// The tables of `catalog` (only `source_table`, by ARN or name, if given), their exports and points.
pub fn list(catalog: &Catalog, source_table: Option<&str>, allow_gaps: bool) -> Result<Listing> {
    let arns: BTreeSet<&str> = catalog
        .exports
        .iter()
        .map(|f| f.table_arn.as_str())
        .filter(|arn| source_table.is_none_or(|want| is_table(arn, want)))
        .collect();
    if let Some(want) = source_table
        && arns.is_empty()
    {
        return Err(no_such_table(catalog, want));
    }
    let tables = arns
        .into_iter()
        .map(|arn| {
            let mine = catalog.of(arn);
            TableListing {
                table_arn: arn.to_owned(),
                points: points(&mine, allow_gaps),
                exports: mine.into_iter().cloned().collect(),
            }
        })
        .collect();
    Ok(Listing {
        source: catalog.origin.to_string(),
        tables,
        skipped: catalog.skipped.clone(),
    })
}

fn as_rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "arn:aws:dynamodb:r:1:table/orders";

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(&format!("2026-01-14T{s}Z")).unwrap()
    }

    fn found(id: &str, table: &str, ty: ExportType, start: &str, end: &str, bytes: u64) -> Found {
        Found {
            export_id: id.into(),
            uri: format!("s3://b/p/AWSDynamoDB/{id}/").parse().unwrap(),
            table_arn: table.into(),
            export_type: ty,
            view: None,
            start: at(start),
            end: at(end),
            items: 1,
            billed_bytes: Some(bytes),
        }
    }

    /// An older FULL with 3 contiguous incrementals, a newer FULL at 10:15, one incremental that overlaps,
    /// one after a gap, and another table's export.
    fn catalog() -> Catalog {
        use ExportType::{Full, Incremental as Inc};
        Catalog {
            origin: Origin::Prefix("s3://b/p/".parse().unwrap()),
            exports: vec![
                found("full-0900", T, Full, "09:00:00", "09:00:00", 1000),
                found("full-1000", T, Full, "10:00:00", "10:00:00", 1000),
                found("inc-1000", T, Inc, "10:00:00", "10:15:00", 10),
                found("full-1015", T, Full, "10:15:00", "10:15:00", 1005),
                found("inc-1015", T, Inc, "10:15:00", "10:30:00", 10),
                found("inc-1030", T, Inc, "10:30:00", "10:45:00", 10),
                found("inc-1020-overlap", T, Inc, "10:20:00", "10:40:00", 10),
                found("inc-1100-after-gap", T, Inc, "11:00:00", "11:15:00", 10),
                found(
                    "other",
                    "arn:aws:dynamodb:r:1:table/users",
                    Full,
                    "10:00:00",
                    "10:00:00",
                    1,
                ),
            ],
            skipped: vec![Skipped {
                export: "s3://b/p/AWSDynamoDB/running/".into(),
                reason: "no manifest-summary.json: the export is still running, or it failed"
                    .into(),
            }],
        }
    }

    fn find(to: Target, table: Option<&str>, allow_gaps: bool) -> Find {
        Find {
            origin: Origin::Prefix("s3://b/p/".parse().unwrap()),
            source_table: table.map(str::to_owned),
            to,
            allow_gaps,
        }
    }

    #[test]
    fn every_point_has_its_cheapest_chain() {
        let c = catalog();
        let mine: Vec<&Found> = c.exports.iter().filter(|f| f.table_arn == T).collect();
        let found: Vec<(String, Vec<String>)> = points(&mine, false)
            .into_iter()
            .map(|p| (rfc3339(p.time), p.chain))
            .collect();
        let chain = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            found,
            vec![
                ("2026-01-14T09:00:00.000Z".into(), chain(&["full-0900"])),
                ("2026-01-14T10:00:00.000Z".into(), chain(&["full-1000"])),
                // The older FULL and one incremental (1010 bytes) against the newer FULL (1005).
                ("2026-01-14T10:15:00.000Z".into(), chain(&["full-1015"])),
                (
                    "2026-01-14T10:30:00.000Z".into(),
                    chain(&["full-1015", "inc-1015"])
                ),
                (
                    "2026-01-14T10:45:00.000Z".into(),
                    chain(&["full-1015", "inc-1015", "inc-1030"])
                ),
            ],
            "the overlapping and the gapped incrementals reach nothing without --allow-gaps"
        );
        let with_gaps = points(&mine, true);
        let last = with_gaps.last().unwrap();
        assert_eq!(rfc3339(last.time), "2026-01-14T11:15:00.000Z");
        assert_eq!(last.chain.last().unwrap(), "inc-1100-after-gap");
    }

    #[test]
    fn the_chain_to_a_point_is_chosen_and_the_rest_is_said_why() {
        let c = catalog();
        let choice = choose(&c, &find(Target::At(at("10:30:00")), Some("orders"), false)).unwrap();
        assert_eq!(choice.exports, vec!["full-1015", "inc-1015"]);
        assert_eq!(choice.table_arn, T);
        assert_eq!(choice.uris[1].export_id, "inc-1015");
        let reason = |id: &str| {
            choice
                .skipped
                .iter()
                .find(|s| s.export.contains(&format!("/{id}/")))
                .unwrap()
                .reason
                .clone()
        };
        assert!(reason("other").starts_with("another table"));
        assert!(reason("running").contains("still running"));
        assert!(reason("inc-1030").starts_with("not on the chosen chain"));
        assert!(reason("inc-1020-overlap").starts_with("not contiguous"));
        assert!(reason("inc-1000").starts_with("a chain that writes fewer bytes"));
        assert!(reason("full-0900").starts_with("not on the chosen chain"));

        let latest = choose(&c, &find(Target::Latest, Some(T), false)).unwrap();
        assert_eq!(latest.reached, "2026-01-14T10:45:00.000Z");
        assert_eq!(latest.asked, "latest");
    }

    #[test]
    fn a_time_no_chain_ends_at_names_the_nearest_points() {
        let e = choose(
            &catalog(),
            &find(Target::At(at("10:20:00")), Some("orders"), false),
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "no chain of exports of table orders ends at 2026-01-14T10:20:00.000Z",
            "2026-01-14T10:15:00.000Z (before) and 2026-01-14T10:30:00.000Z (after)",
            "--request-export",
            "`ddb-pitr exports --export-prefix s3://b/p/`",
            "--allow-gaps",
        ] {
            assert!(e.contains(needle), "{needle:?} in {e}");
        }
    }

    #[test]
    fn several_tables_need_a_source_table() {
        let e = choose(&catalog(), &find(Target::Latest, None, false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds exports of 2 tables"), "{e}");
        assert!(
            e.contains("arn:aws:dynamodb:r:1:table/orders (8 exports)"),
            "{e}"
        );
        assert!(
            e.contains("arn:aws:dynamodb:r:1:table/users (1 export)"),
            "{e}"
        );
        assert!(e.contains("--source-table"), "{e}");
        let e = choose(&catalog(), &find(Target::Latest, Some("nope"), false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no finished export of table nope"), "{e}");
    }

    #[test]
    fn targets_parse() {
        assert_eq!("latest".parse::<Target>(), Ok(Target::Latest));
        assert_eq!(
            "2026-01-14T11:30:00+01:00".parse::<Target>(),
            Ok(Target::At(at("10:30:00")))
        );
        assert!(
            "10:30"
                .parse::<Target>()
                .unwrap_err()
                .contains("or `latest`")
        );
    }

    #[test]
    fn the_root_is_the_prefix_given_to_the_export() {
        for (uri, root) in [
            ("s3://b/", ""),
            ("s3://b", ""),
            ("s3://b/backups", "backups/"),
            ("s3://b/backups/", "backups/"),
            ("s3://b/backups/AWSDynamoDB/", "backups/"),
        ] {
            assert_eq!(root_of(&uri.parse().unwrap()), root, "{uri}");
        }
    }
}
