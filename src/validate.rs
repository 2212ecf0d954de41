//! `ddb-pitr validate`: read-only checks before a restore, and an estimate of what it will cost.
//!
//! Every check yields a [`Check`] row (`pass`, `warn`, `fail` or `skip`, with a detail that says what to
//! do); one failing check never stops the others that can still run. The checks:
//!
//! 1. credentials: `sts:GetCallerIdentity`;
//! 2. manifests: each export's manifests read and verified ([`crate::manifest::load`]), then the chain
//!    ([`crate::chain::validate`]);
//! 3. table: exists, ACTIVE, and the first lines of every data file decode and carry the table's key
//!    ([`Engine::sample_ops`], the restore's own read and decode path, writing nothing);
//! 4. checkpoint: a `--resume` location is readable and, if it exists, belongs to this restore;
//! 5. permissions: `iam:SimulatePrincipalPolicy` of the caller for every action/resource pair
//!    [`access::permissions`] lists for [`Role::Local`]; when the simulation itself is not possible, harmless
//!    read probes instead;
//! 6. estimate: write units, time and on-demand cost, extrapolated from the sampled item sizes.
//!
//! Nothing here calls a write API, not even one expected to fail: the integration tests record every call
//! and check it against a list of read-only operations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_dynamodb::types::{KeyType as DdbKeyType, ProjectionType, TableDescription};
use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType};
use aws_smithy_runtime_api::client::result::SdkError;
use futures::StreamExt;
use serde::Serialize;

use crate::access::{self, Arn, AutoScaling, Permission, Role, Scope};
use crate::capacity::TableCapacity;
use crate::chain::{self, Expectations};
use crate::checkpoint::CheckpointStore;
use crate::decode::{Item, WriteOp};
use crate::engine::{Engine, Settings};
use crate::error::{Error, describe_sdk_error};
use crate::location::{ExportUri, S3Uri, StateLocation};
use crate::manifest::{self, Export, ExportType, OutputView, SummaryChecksum};
use crate::restore::{Clients, file_ref};
use crate::size;
use crate::source::{ObjectReader, S3Reader};
use crate::table::{self, KeySchema};

/// The on-demand price of one million write request units: standard table class, us-east-1, in USD.
pub const DEFAULT_PRICE_PER_MILLION_WRU: f64 = 0.625;
/// The write request units per second a new on-demand table can serve at once (its initial warm
/// throughput, per the DynamoDB documentation).
pub const NEW_ON_DEMAND_WRITE_UNITS: f64 = 4000.0;
/// Data files sampled at once.
const SAMPLE_CONCURRENCY: usize = 16;

/// What to check: the restore's own flags.
#[derive(Debug, Clone)]
pub struct Options {
    pub table: String,
    pub exports: Vec<ExportUri>,
    pub expect: Expectations,
    pub resume: Option<StateLocation>,
    pub report: Option<S3Uri>,
    pub manage_capacity: bool,
    pub autoscaling: AutoScaling,
    /// The write units per second the restore is limited to, for the time estimate.
    pub max_wcu: Option<u64>,
    pub price_per_million_wru: f64,
    /// Lines read from the start of each data file for the key check and the size estimate.
    pub sample_lines: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One row of the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
}

impl Check {
    pub fn new(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Check {
            check: check.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// Everything `validate` found; printed as JSON on stdout.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub table: String,
    /// False when any check failed.
    pub ok: bool,
    pub checks: Vec<Check>,
    pub estimate: Option<Estimate>,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.ok
    }

    /// The rows as aligned columns, for people (stderr).
    pub fn render_table(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.check.chars().count())
            .max()
            .unwrap_or(0)
            .max("CHECK".len());
        let mut out = format!("{:<6}  {:<width$}  DETAIL\n", "STATUS", "CHECK");
        for c in &self.checks {
            out.push_str(&format!(
                "{:<6}  {:<width$}  {}\n",
                c.status.as_str(),
                c.check,
                c.detail
            ));
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        let warned = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Warn)
            .count();
        out.push_str(&if failed == 0 {
            format!("validate: no check failed ({warned} warnings)\n")
        } else {
            format!("validate: {failed} checks failed, {warned} warnings\n")
        });
        out
    }
}

/// The write units a restore will consume, and what that means in time and money. Extrapolated from the
/// first lines of each data file: an estimate, not a measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// How the numbers were made, in words.
    pub basis: String,
    pub sampled_files: u64,
    pub sampled_lines: u64,
    /// Lines in the exports (from the manifests).
    pub items: u64,
    pub estimated_puts: u64,
    pub estimated_deletes: u64,
    /// Table and index write units together: what an on-demand table bills.
    pub write_units: u64,
    /// Write units of the table itself (local secondary indexes included: they share its capacity).
    pub table_write_units: u64,
    /// Write units per global secondary index.
    pub index_write_units: BTreeMap<String, u64>,
    /// True when deletes are counted at their minimum (1 unit on the table and on each index): the size of
    /// a deleted item is not in the export.
    pub lower_bound: bool,
    pub mean_put_item_bytes: Option<f64>,
    /// Time at the table's current write capacity; `None` when the table could not be described.
    pub at_current_capacity: Option<Timing>,
    /// Time at `--max-wcu`.
    pub at_max_wcu: Option<Timing>,
    pub price_per_million_wru: f64,
    pub on_demand_cost_usd: f64,
    pub exports: Vec<ExportEstimate>,
}

/// A duration at a write rate.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub write_units_per_second: f64,
    /// Where the rate comes from, and which resource limits it.
    pub source: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportEstimate {
    pub export_id: String,
    pub items: u64,
    pub sampled_files: u64,
    pub sampled_lines: u64,
    pub sampled_puts: u64,
    pub sampled_deletes: u64,
    pub mean_put_item_bytes: Option<f64>,
    pub estimated_write_units: u64,
}

/// Runs every check. Never fails as a whole: problems are rows.
pub async fn run(opts: &Options, clients: &Clients) -> Report {
    let mut checks = Vec::new();

    // 1. Credentials.
    let caller = match clients.sts.get_caller_identity().send().await {
        Ok(out) => {
            let arn = out.arn().unwrap_or_default().to_owned();
            checks.push(Check::new(
                "credentials",
                Status::Pass,
                format!(
                    "caller {arn} (account {})",
                    out.account().unwrap_or("unknown")
                ),
            ));
            Some(arn)
        }
        Err(e) => {
            checks.push(Check::new(
                "credentials",
                Status::Fail,
                format!(
                    "sts:GetCallerIdentity failed: {}; check the AWS profile, SSO login or environment",
                    describe_sdk_error(&e)
                ),
            ));
            None
        }
    };

    // 2. Manifests and the chain.
    let objects: Arc<dyn ObjectReader> = Arc::new(S3Reader::new(clients.s3.clone()));
    let loaded: Vec<crate::Result<Export>> = futures::future::join_all(
        opts.exports
            .iter()
            .map(|uri| manifest::load(objects.as_ref(), uri)),
    )
    .await;
    for (uri, result) in opts.exports.iter().zip(&loaded) {
        checks.push(manifest_row(uri, result));
    }
    let exports: Option<Vec<Export>> = loaded.iter().map(|r| r.as_ref().ok().cloned()).collect();
    checks.push(match &exports {
        None => Check::new(
            "chain",
            Status::Skip,
            "not every manifest could be read (see the manifest rows)",
        ),
        Some(list) if list.is_empty() => Check::new("chain", Status::Fail, "no --export was given"),
        Some(list) => chain_row(list, &opts.expect),
    });
    let readable: Vec<&Export> = loaded.iter().filter_map(|r| r.as_ref().ok()).collect();

    // 3. The table, and samples of every export checked against its key.
    let table = describe_table(clients, &opts.table).await;
    checks.push(match &table {
        Ok(t) => Check::new("table", Status::Pass, t.summary()),
        Err(e) => Check::new("table", Status::Fail, e.to_string()),
    });
    let samples = match &table {
        Ok(t) => {
            let samples = sample(objects.clone(), t, &readable, opts.sample_lines).await;
            for (export, s) in readable.iter().zip(&samples) {
                checks.push(sample_row(export, s, &t.info.key, &opts.table));
            }
            Some(samples)
        }
        Err(_) => {
            for export in &readable {
                checks.push(Check::new(
                    format!("sample {}", export.id()),
                    Status::Skip,
                    "the table could not be described, so its key schema is unknown",
                ));
            }
            None
        }
    };

    // 4. The checkpoint, and what --manage-capacity would do (read-only: DescribeTable, DescribeScalableTargets).
    if let Some(location) = &opts.resume {
        checks.push(checkpoint_row(clients, location, &opts.table, exports.as_deref()).await);
    }
    if opts.manage_capacity && table.is_ok() {
        checks.push(capacity_row(opts, clients, &readable).await);
    }

    // 5. Permissions.
    match &caller {
        None => checks.push(Check::new(
            "permissions",
            Status::Skip,
            "no caller identity, so there is nothing to simulate",
        )),
        Some(arn) => {
            let scope = scope(opts, clients, objects.as_ref(), arn, &readable).await;
            let required = access::permissions(Role::Local, &scope);
            let probes = Probes {
                exports: &readable,
                uris: &opts.exports,
                table: &opts.table,
                checkpoint: scope.checkpoint.as_ref(),
                manage_capacity: opts.manage_capacity,
            };
            checks.extend(check_permissions(clients, arn, &scope.region, &required, &probes).await);
        }
    }

    // 6. The estimate.
    let estimate = estimate(opts, &readable, table.as_ref().ok(), samples.as_deref());
    checks.push(estimate_row(&estimate, &readable, &opts.exports));

    Report {
        tool: format!("ddb-pitr {}", env!("CARGO_PKG_VERSION")),
        table: opts.table.clone(),
        ok: checks.iter().all(|c| c.status != Status::Fail),
        checks,
        estimate: Some(estimate),
    }
}

fn manifest_row(uri: &ExportUri, result: &crate::Result<Export>) -> Check {
    let name = format!("manifest {}", uri.export_id);
    match result {
        Err(e) => Check::new(name, Status::Fail, e.to_string()),
        Ok(e) => {
            let what = format!(
                "{} export{}, {} items in {} data files, manifest-files.json checksum verified",
                match e.export_type {
                    ExportType::Full => "FULL",
                    ExportType::Incremental => "INCREMENTAL",
                },
                match e.view {
                    Some(OutputView::NewImage) => " (NEW_IMAGE)",
                    Some(OutputView::NewAndOldImages) => " (NEW_AND_OLD_IMAGES)",
                    None => "",
                },
                e.item_count(),
                e.files.len()
            );
            match e.summary_checksum {
                SummaryChecksum::Verified => Check::new(
                    name,
                    Status::Pass,
                    format!("{what}, summary checksum verified"),
                ),
                SummaryChecksum::Mismatch => Check::new(
                    name,
                    Status::Warn,
                    format!(
                        "{what}; manifest-summary.json does not match its .md5 (usually rewritten when the export \
                         was copied; every field the restore uses is cross-checked)"
                    ),
                ),
                SummaryChecksum::Missing => Check::new(
                    name,
                    Status::Warn,
                    format!("{what}; manifest-summary.json has no checksum file"),
                ),
            }
        }
    }
}

fn chain_row(exports: &[Export], expect: &Expectations) -> Check {
    match chain::validate(exports, expect) {
        Err(e) => Check::new("chain", Status::Fail, e.to_string()),
        Ok(gaps) if gaps.is_empty() => Check::new(
            "chain",
            Status::Pass,
            if exports.len() == 1 {
                "one export".to_owned()
            } else {
                format!("{} exports, contiguous, one table", exports.len())
            },
        ),
        Ok(gaps) => Check::new(
            "chain",
            Status::Warn,
            format!(
                "{} accepted with --allow-gaps ({}); changes inside a gap are in no export",
                plural(gaps.len() as u64, "discontinuity", "discontinuities"),
                gaps.iter()
                    .map(|g| format!(
                        "{} ms between {} and {}",
                        g.millis, g.before_export, g.after_export
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    }
}

/// The target table's description: what [`table::describe`] checks, plus capacity and indexes.
#[derive(Debug, Clone)]
pub struct TableFacts {
    pub info: table::TableInfo,
    pub on_demand: bool,
    /// Table write rate and where it comes from.
    pub rate: (f64, String),
    pub indexes: Vec<Index>,
}

/// A secondary index, as far as write costs go.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    pub global: bool,
    /// The index's own key attributes.
    pub keys: Vec<String>,
    pub projection: Projection,
    /// A global index's own write rate (provisioned WCU or warm throughput).
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

impl Index {
    /// The write units of an item's entry in this index, or `None` when the index does not hold the item
    /// (a sparse index: the item lacks one of the index's key attributes).
    pub fn write_units(&self, table_key: &KeySchema, item: &Item) -> Option<u64> {
        if !self.keys.iter().all(|k| item.contains_key(k)) {
            return None;
        }
        let projected = match &self.projection {
            Projection::All => size::item_size(item),
            Projection::KeysOnly | Projection::Include(_) => {
                let mut names: BTreeSet<&str> = self.keys.iter().map(String::as_str).collect();
                names.extend(table_key.attrs.iter().map(|a| a.name.as_str()));
                if let Projection::Include(extra) = &self.projection {
                    names.extend(extra.iter().map(String::as_str));
                }
                names
                    .into_iter()
                    .filter_map(|n| item.get(n).map(|v| size::attribute_size(n, v)))
                    .sum()
            }
        };
        Some(size::wcu(projected))
    }
}

impl TableFacts {
    pub fn from_description(info: table::TableInfo, desc: &TableDescription) -> Self {
        let capacity = TableCapacity::from_description(desc);
        let on_demand = capacity.on_demand;
        let rate = if on_demand {
            let warm = capacity.warm_write.filter(|&w| w > 0);
            let max = desc
                .on_demand_throughput()
                .and_then(|o| o.max_write_request_units())
                .filter(|&m| m > 0);
            match (warm, max) {
                (Some(w), Some(m)) if m < w => (m as f64, format!("on-demand maximum {m} WRU/s")),
                (Some(w), _) => (w as f64, format!("on-demand warm throughput {w} WRU/s")),
                (None, Some(m)) => (m as f64, format!("on-demand maximum {m} WRU/s")),
                (None, None) => (
                    NEW_ON_DEMAND_WRITE_UNITS,
                    "a new on-demand table's initial 4,000 WRU/s (no warm throughput reported)"
                        .into(),
                ),
            }
        } else {
            let wcu = capacity.table.write;
            (wcu as f64, format!("provisioned {wcu} WCU"))
        };
        let keys_of = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
            let mut keys: Vec<(bool, String)> = schema
                .iter()
                .map(|k| {
                    (
                        *k.key_type() == DdbKeyType::Range,
                        k.attribute_name().to_owned(),
                    )
                })
                .collect();
            keys.sort();
            keys.into_iter().map(|(_, n)| n).collect::<Vec<_>>()
        };
        let projection_of = |p: Option<&aws_sdk_dynamodb::types::Projection>| match p
            .and_then(|p| p.projection_type())
        {
            Some(ProjectionType::KeysOnly) => Projection::KeysOnly,
            Some(ProjectionType::Include) => Projection::Include(
                p.map(|p| p.non_key_attributes().to_vec())
                    .unwrap_or_default(),
            ),
            _ => Projection::All,
        };
        let mut indexes: Vec<Index> = desc
            .global_secondary_indexes()
            .iter()
            .map(|g| Index {
                name: g.index_name().unwrap_or_default().to_owned(),
                global: true,
                keys: keys_of(g.key_schema()),
                projection: projection_of(g.projection()),
                rate: capacity
                    .indexes
                    .get(g.index_name().unwrap_or_default())
                    .and_then(|i| {
                        if on_demand {
                            i.warm_write.filter(|&w| w > 0).map(|w| w as f64)
                        } else {
                            g.provisioned_throughput()
                                .and_then(|p| p.write_capacity_units())
                                .map(|_| i.throughput.write as f64)
                        }
                    }),
            })
            .collect();
        indexes.extend(desc.local_secondary_indexes().iter().map(|l| Index {
            name: l.index_name().unwrap_or_default().to_owned(),
            global: false,
            keys: keys_of(l.key_schema()),
            projection: projection_of(l.projection()),
            rate: None,
        }));
        TableFacts {
            info,
            on_demand,
            rate,
            indexes,
        }
    }

    fn summary(&self) -> String {
        let indexes = if self.indexes.is_empty() {
            "no secondary indexes".to_owned()
        } else {
            self.indexes
                .iter()
                .map(|i| {
                    format!(
                        "{} {} ({})",
                        if i.global { "GSI" } else { "LSI" },
                        i.name,
                        match &i.projection {
                            Projection::All => "ALL".to_owned(),
                            Projection::KeysOnly => "KEYS_ONLY".to_owned(),
                            Projection::Include(a) => format!("INCLUDE {}", a.join(",")),
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "ACTIVE, key {}, {}, {}",
            self.info.key,
            if self.on_demand {
                "on-demand"
            } else {
                "provisioned"
            },
            indexes
        )
    }
}

/// One DescribeTable: the restore's own checks ([`table::info`]) and the capacity and indexes.
async fn describe_table(clients: &Clients, name: &str) -> crate::Result<TableFacts> {
    let desc = table::fetch(&clients.dynamodb, name).await?;
    Ok(TableFacts::from_description(
        table::info(name, &desc)?,
        &desc,
    ))
}

/// What the sampled lines of one export cost.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub files: u64,
    pub lines: u64,
    pub puts: u64,
    pub deletes: u64,
    pub put_bytes: u64,
    /// Table write units of the sampled puts (local indexes included).
    pub table_units: u64,
    /// Write units of the sampled puts per global index, in [`TableFacts::indexes`] order (local ones 0).
    pub index_units: Vec<u64>,
}

impl Tally {
    fn new(indexes: usize) -> Self {
        Tally {
            index_units: vec![0; indexes],
            ..Tally::default()
        }
    }

    /// Adds one write.
    pub fn add(&mut self, op: &WriteOp, key: &KeySchema, indexes: &[Index]) {
        self.lines += 1;
        match op {
            WriteOp::Delete(_) => self.deletes += 1,
            WriteOp::Put(item) => {
                self.puts += 1;
                let bytes = size::item_size(item);
                self.put_bytes += bytes;
                self.table_units += size::wcu(bytes);
                for (i, index) in indexes.iter().enumerate() {
                    if let Some(units) = index.write_units(key, item) {
                        if index.global {
                            self.index_units[i] += units;
                        } else {
                            self.table_units += units;
                        }
                    }
                }
            }
        }
    }
}

/// Samples the first `lines` lines of every data file of every export; one result per export (its first
/// error, if any).
async fn sample(
    objects: Arc<dyn ObjectReader>,
    table: &TableFacts,
    exports: &[&Export],
    lines: u64,
) -> Vec<crate::Result<Tally>> {
    let sampler = Engine {
        objects,
        writer: None,
        table: table.info.name.clone(),
        key: table.info.key.clone(),
        // Small reads: only the start of each file is wanted.
        settings: Settings {
            read_ahead: 1,
            part_size: 256 * 1024,
            ..Settings::default()
        },
        stats: Arc::default(),
    };
    let files: Vec<(usize, &manifest::DataFile)> = exports
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            e.files
                .iter()
                .filter(|f| f.item_count > 0)
                .map(move |f| (i, f))
        })
        .collect();
    let results: Vec<(usize, crate::Result<Vec<WriteOp>>)> = futures::stream::iter(files)
        .map(|(i, f)| {
            let sampler = &sampler;
            async move {
                let want = lines.min(f.item_count).max(1);
                (i, sampler.sample_ops(file_ref(exports[i], f), want).await)
            }
        })
        .buffer_unordered(SAMPLE_CONCURRENCY)
        .collect()
        .await;
    let mut tallies: Vec<crate::Result<Tally>> = exports
        .iter()
        .map(|_| Ok(Tally::new(table.indexes.len())))
        .collect();
    for (i, result) in results {
        match (result, &mut tallies[i]) {
            (Ok(ops), Ok(tally)) => {
                tally.files += 1;
                for op in &ops {
                    tally.add(op, &table.info.key, &table.indexes);
                }
            }
            (Err(e), slot @ Ok(_)) => *slot = Err(e),
            (_, Err(_)) => {}
        }
    }
    tallies
}

fn sample_row(
    export: &Export,
    tally: &crate::Result<Tally>,
    key: &KeySchema,
    table: &str,
) -> Check {
    let name = format!("sample {}", export.id());
    match tally {
        Ok(t) if t.lines == 0 => Check::new(name, Status::Pass, "no data lines to check"),
        Ok(t) => Check::new(
            name,
            Status::Pass,
            format!(
                "{} from the start of {} decoded; every key fits {key}",
                plural(t.lines, "line", "lines"),
                plural(t.files, "data file", "data files")
            ),
        ),
        Err(Error::Data { location, message }) if message.contains("key schema") => Check::new(
            name,
            Status::Fail,
            format!(
                "export {} does not fit table {table}: {location}: {message}",
                export.id()
            ),
        ),
        Err(e) => Check::new(name, Status::Fail, e.to_string()),
    }
}

/// What `--manage-capacity` would change: refused (auto scaling under `--autoscaling refuse`), a raise, a
/// pre-warm, or nothing.
async fn capacity_row(opts: &Options, clients: &Clients, exports: &[&Export]) -> Check {
    use crate::capacity::{ManageOptions, Manager, Plan};
    let items = exports.iter().map(|e| e.item_count()).sum();
    let manage = ManageOptions {
        autoscaling: opts.autoscaling,
        ..ManageOptions::default()
    };
    let manager = Manager {
        dynamodb: &clients.dynamodb,
        autoscaling: &clients.autoscaling,
        table: &opts.table,
        opts: &manage,
    };
    match manager.plan(items, opts.max_wcu.map(|m| m as f64)).await {
        Err(e) => Check::new("capacity", Status::Fail, e.to_string()),
        Ok(planned) => {
            let (target, warnings) = (planned.target, planned.warnings);
            let mut detail = match planned.plan {
                Plan::Raise(r) => format!(
                    "--manage-capacity would raise the write capacity from {} (table) to {} for the table and \
                     its {} GSI(s), and put it back afterwards",
                    r.table.write,
                    r.target_wcu,
                    r.indexes.len()
                ),
                Plan::Warm(t) => format!(
                    "--manage-capacity would pre-warm the on-demand table and its GSIs to {t} writes/s"
                ),
                Plan::Nothing => format!("the table already has at least {target} write units/s"),
            };
            for w in &warnings {
                detail.push_str("; ");
                detail.push_str(w);
            }
            let status = if warnings.is_empty() {
                Status::Pass
            } else {
                Status::Warn
            };
            Check::new("capacity", status, detail)
        }
    }
}

async fn checkpoint_row(
    clients: &Clients,
    location: &StateLocation,
    table: &str,
    exports: Option<&[Export]>,
) -> Check {
    let store = CheckpointStore::new(location.clone(), clients.s3.clone());
    let loaded = store.load().await;
    // Capacity an earlier run raised and has not put back yet.
    let pending = match &loaded {
        Ok(Some(cp)) => cp
            .capacity
            .as_ref()
            .filter(|r| r.state != crate::capacity::RecordState::Restored)
            .map(|r| {
                format!(
                    "; capacity raised to {} by an earlier run is not put back yet (originals: table {} WCU{}); \
                     the restore puts it back when it ends",
                    r.target_wcu,
                    r.table.write,
                    r.indexes
                        .iter()
                        .map(|(n, t)| format!(", index {n} {} WCU", t.write))
                        .collect::<String>()
                )
            }),
        _ => None,
    };
    let mut row = checkpoint_identity_row(loaded, location, table, exports);
    if let Some(p) = pending {
        row.detail.push_str(&p);
        if row.status == Status::Pass {
            row.status = Status::Warn;
        }
    }
    row
}

fn checkpoint_identity_row(
    loaded: crate::Result<Option<crate::checkpoint::Checkpoint>>,
    location: &StateLocation,
    table: &str,
    exports: Option<&[Export]>,
) -> Check {
    match loaded {
        Err(e) => Check::new("checkpoint", Status::Fail, e.to_string()),
        Ok(None) => Check::new(
            "checkpoint",
            Status::Pass,
            format!("{location} does not exist yet; the restore creates it before its first write"),
        ),
        Ok(Some(cp)) => match exports {
            None => Check::new(
                "checkpoint",
                Status::Warn,
                format!(
                    "{location} exists, but not every manifest could be read to check that it belongs to this restore"
                ),
            ),
            Some(exports) => match cp.check_identity(location, table, exports) {
                Ok(()) => Check::new(
                    "checkpoint",
                    Status::Pass,
                    format!(
                        "{location} exists and belongs to this restore: the restore resumes from it ({} of {} exports done)",
                        cp.exports.iter().filter(|e| e.done).count(),
                        cp.exports.len()
                    ),
                ),
                Err(e) => Check::new("checkpoint", Status::Fail, e.to_string()),
            },
        },
    }
}

/// The scope of the local restore's permissions, from the flags, the caller and the manifests.
async fn scope(
    opts: &Options,
    clients: &Clients,
    objects: &dyn ObjectReader,
    caller: &str,
    exports: &[&Export],
) -> Scope {
    let parts = Arn::parse(caller);
    let region = clients
        .sts
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_default();
    // The folders the exports' objects are in (INCREMENTAL data files sit outside their export's folder)
    // and their KMS keys, as `ddb-pitr policy` computes them; exports whose manifests could not be read
    // count with their own folder.
    let readable: Vec<ExportUri> = exports.iter().map(|e| e.uri.clone()).collect();
    let found = access::export_access(objects, &readable)
        .await
        .unwrap_or_default();
    let mut export_objects = found.objects;
    for uri in &opts.exports {
        let dir = S3Uri {
            bucket: uri.bucket.clone(),
            key: uri.key(""),
        };
        if !export_objects.contains(&dir) {
            export_objects.push(dir);
        }
    }
    Scope {
        partition: parts
            .as_ref()
            .map_or_else(|| "aws".to_owned(), |p| p.partition.to_owned()),
        region,
        account: parts.map(|p| p.account.to_owned()).unwrap_or_default(),
        table: opts.table.clone(),
        export_objects,
        checkpoint: match &opts.resume {
            Some(StateLocation::S3(uri)) => Some(uri.clone()),
            _ => None,
        },
        report: opts.report.clone(),
        kms_keys: found.kms_keys,
        manage_capacity: opts.manage_capacity,
        autoscaling: opts.autoscaling,
        control_table: String::new(),
        queue: String::new(),
    }
}

/// Who the caller is, as far as `SimulatePrincipalPolicy` is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An IAM user: simulated as itself.
    User { arn: String },
    /// An assumed-role session: simulated as its role. `arn` has no path (the session ARN does not carry
    /// it); `iam:GetRole` on `name` gives the real one.
    Role { name: String, arn: String },
    /// The account's root user, which is allowed everything and cannot be simulated.
    Root { arn: String },
    /// A federated user (GetFederationToken), which cannot be simulated.
    Federated { arn: String },
    /// Anything else.
    Other { arn: String },
}

/// Maps the caller's ARN (from GetCallerIdentity) to the principal to simulate:
/// `arn:aws:sts::ACCT:assumed-role/NAME/SESSION` → role `NAME` (`arn:aws:iam::ACCT:role/NAME`).
pub fn principal(caller: &str) -> Principal {
    let other = || Principal::Other {
        arn: caller.to_owned(),
    };
    let Some(p) = Arn::parse(caller) else {
        return other();
    };
    match (p.service, p.resource.split_once('/')) {
        ("iam", None) if p.resource == "root" => Principal::Root {
            arn: caller.to_owned(),
        },
        ("iam", Some(("user", _))) => Principal::User {
            arn: caller.to_owned(),
        },
        ("sts", Some(("assumed-role", rest))) => match rest.split_once('/') {
            Some((name, _session)) if !name.is_empty() => Principal::Role {
                name: name.to_owned(),
                arn: format!("arn:{}:iam::{}:role/{name}", p.partition, p.account),
            },
            _ => other(),
        },
        ("sts", Some(("federated-user", _))) => Principal::Federated {
            arn: caller.to_owned(),
        },
        _ => other(),
    }
}

/// What the read probes may touch.
pub struct Probes<'a> {
    pub exports: &'a [&'a Export],
    /// Every export given, also those whose manifests could not be read.
    pub uris: &'a [ExportUri],
    pub table: &'a str,
    pub checkpoint: Option<&'a S3Uri>,
    pub manage_capacity: bool,
}

/// Checks that the caller may do everything in `required`: by simulation, or, when the simulation is not
/// possible, by read probes (and `skip` rows for what only a write could prove).
pub async fn check_permissions(
    clients: &Clients,
    caller: &str,
    region: &str,
    required: &[Permission],
    probes: &Probes<'_>,
) -> Vec<Check> {
    let mut rows = Vec::new();
    let source = match principal(caller) {
        Principal::Root { arn } => {
            rows.push(Check::new(
                "permissions",
                Status::Warn,
                format!(
                    "{arn} is the account's root user, which IAM allows everything (SCPs aside) and cannot be \
                     simulated; use an IAM role with the policy from `ddb-pitr policy` instead"
                ),
            ));
            return rows;
        }
        Principal::Federated { arn } | Principal::Other { arn } => {
            rows.push(Check::new(
                "permissions",
                Status::Warn,
                format!(
                    "{arn} cannot be simulated with iam:SimulatePrincipalPolicy (only IAM users and roles can); \
                     probing with read calls instead"
                ),
            ));
            rows.extend(probe(clients, required, probes).await);
            return rows;
        }
        Principal::User { arn } => arn,
        Principal::Role { name, arn } => match clients.iam.get_role().role_name(&name).send().await
        {
            Ok(out) => out.role().map_or(arn, |r| r.arn().to_owned()),
            Err(e) => {
                rows.push(Check::new(
                    "role",
                    Status::Warn,
                    format!(
                        "iam:GetRole {name} failed ({}), so the role's path is unknown: simulating {arn}; if the \
                         role has a path the simulation fails and read probes are used instead",
                        describe_sdk_error(&e)
                    ),
                ));
                arn
            }
        },
    };

    match simulate(&clients.iam, &source, region, required).await {
        Ok(results) => {
            let denied: Vec<&Simulated> = results.iter().filter(|r| !r.allowed()).collect();
            let kms = required.iter().any(|p| p.action.starts_with("kms:"));
            let note = "the simulation covers identity policies, permissions boundaries and (partly) SCPs, \
                        not resource policies such as bucket or key policies";
            rows.push(if denied.is_empty() {
                Check::new(
                    "permissions",
                    Status::Pass,
                    format!(
                        "{source} is allowed all {} action/resource pairs the restore needs ({note})",
                        results.len()
                    ),
                )
            } else {
                Check::new(
                    "permissions",
                    Status::Fail,
                    format!(
                        "{source} is denied {} of {} action/resource pairs the restore needs (rows below); \
                         `ddb-pitr policy` prints a policy that allows them",
                        denied.len(),
                        results.len()
                    ),
                )
            });
            for d in denied {
                rows.push(Check::new(
                    format!("permission {}", d.action),
                    Status::Fail,
                    format!("{} on {}{}", d.decision_text(), d.resource, d.detail),
                ));
            }
            if kms {
                rows.push(Check::new(
                    "key policy",
                    Status::Warn,
                    "the exports are encrypted with KMS keys, whose key policies the simulation does not see: \
                     each key policy must allow this principal kms:Decrypt (or delegate to IAM)",
                ));
            }
        }
        Err(e) => {
            let denied = e.contains("AccessDenied");
            rows.push(Check::new(
                "permissions",
                Status::Warn,
                if denied {
                    format!(
                        "the caller may not call iam:SimulatePrincipalPolicy ({e}); probing with read calls instead"
                    )
                } else {
                    format!("iam:SimulatePrincipalPolicy failed ({e}); probing with read calls instead")
                },
            ));
            rows.extend(probe(clients, required, probes).await);
        }
    }
    rows
}

/// The simulated decision on one action/resource pair.
#[derive(Debug, Clone)]
struct Simulated {
    action: String,
    resource: String,
    decision: PolicyEvaluationDecisionType,
    detail: String,
}

impl Simulated {
    fn allowed(&self) -> bool {
        self.decision == PolicyEvaluationDecisionType::Allowed
    }

    fn decision_text(&self) -> &'static str {
        match self.decision {
            PolicyEvaluationDecisionType::ExplicitDeny => "explicitly denied",
            PolicyEvaluationDecisionType::ImplicitDeny => "not allowed (implicit deny)",
            _ => "not allowed",
        }
    }
}

/// One `SimulatePrincipalPolicy` call (with its pages) per resource and condition: many actions on one
/// resource, with the context its conditions need (`s3:prefix`, `aws:RequestedRegion`, …).
async fn simulate(
    iam: &aws_sdk_iam::Client,
    source: &str,
    region: &str,
    required: &[Permission],
) -> Result<Vec<Simulated>, String> {
    // (resource, condition) -> (actions, context entries).
    type Groups = BTreeMap<(String, String), (Vec<&'static str>, Vec<ContextEntry>)>;
    let mut groups = Groups::new();
    for p in required {
        let condition = p
            .condition
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let entry = groups
            .entry((p.resource.clone(), condition))
            .or_insert_with(|| (Vec::new(), context_entries(p.condition.as_ref(), region)));
        if !entry.0.contains(&p.action) {
            entry.0.push(p.action);
        }
    }
    let mut results = Vec::new();
    for ((resource, _), (actions, context)) in groups {
        let mut marker: Option<String> = None;
        loop {
            let out = iam
                .simulate_principal_policy()
                .policy_source_arn(source)
                .set_action_names(Some(actions.iter().map(|a| a.to_string()).collect()))
                .resource_arns(&resource)
                .set_context_entries(Some(context.clone()))
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| describe_sdk_error(&e))?;
            for r in out.evaluation_results() {
                let mut detail = String::new();
                if let Some(org) = r.organizations_decision_detail()
                    && !org.allowed_by_organizations()
                {
                    detail.push_str("; denied by an SCP");
                }
                if let Some(b) = r.permissions_boundary_decision_detail()
                    && !b.allowed_by_permissions_boundary()
                {
                    detail.push_str("; denied by the permissions boundary");
                }
                if !r.missing_context_values().is_empty() {
                    detail.push_str(&format!(
                        "; context keys not given to the simulation: {}",
                        r.missing_context_values().join(", ")
                    ));
                }
                let matched: Vec<&str> = r
                    .matched_statements()
                    .iter()
                    .filter_map(|s| s.source_policy_id())
                    .collect();
                if r.eval_decision() == &PolicyEvaluationDecisionType::ExplicitDeny
                    && !matched.is_empty()
                {
                    detail.push_str(&format!("; deny in {}", matched.join(", ")));
                }
                results.push(Simulated {
                    action: r.eval_action_name().to_owned(),
                    resource: r.eval_resource_name().unwrap_or(&resource).to_owned(),
                    decision: r.eval_decision().clone(),
                    detail,
                });
            }
            match out.marker() {
                Some(m) if out.is_truncated() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
    }
    Ok(results)
}

/// Context values that satisfy a permission's own condition (the first value of each key, wildcards made
/// concrete: `StringLike "prefix/*"` → `"prefix/"`), plus `aws:RequestedRegion`.
fn context_entries(condition: Option<&serde_json::Value>, region: &str) -> Vec<ContextEntry> {
    let mut entries: BTreeMap<String, (ContextKeyTypeEnum, String)> = BTreeMap::new();
    if let Some(serde_json::Value::Object(operators)) = condition {
        for (operator, keys) in operators {
            let ty = match operator
                .trim_start_matches("ForAnyValue:")
                .trim_start_matches("ForAllValues:")
            {
                o if o.starts_with("Bool") => ContextKeyTypeEnum::Boolean,
                o if o.starts_with("Numeric") => ContextKeyTypeEnum::Numeric,
                o if o.starts_with("Date") => ContextKeyTypeEnum::Date,
                o if o.starts_with("IpAddress") => ContextKeyTypeEnum::Ip,
                _ => ContextKeyTypeEnum::String,
            };
            let serde_json::Value::Object(keys) = keys else {
                continue;
            };
            for (key, values) in keys {
                let first = match values {
                    serde_json::Value::Array(v) => v.first().cloned(),
                    other => Some(other.clone()),
                };
                let value = match first {
                    Some(serde_json::Value::String(s)) => s.replace('*', "").replace('?', "x"),
                    Some(other) => other.to_string(),
                    None => continue,
                };
                entries.insert(key.clone(), (ty.clone(), value));
            }
        }
    }
    if !region.is_empty() {
        entries
            .entry("aws:RequestedRegion".into())
            .or_insert((ContextKeyTypeEnum::String, region.to_owned()));
    }
    entries
        .into_iter()
        .map(|(key, (ty, value))| {
            ContextEntry::builder()
                .context_key_name(key)
                .context_key_type(ty)
                .context_key_values(value)
                .build()
        })
        .collect()
}

/// Read calls that prove a permission without changing anything, one row each; `skip` rows for the
/// required actions no read call can prove.
async fn probe(clients: &Clients, required: &[Permission], p: &Probes<'_>) -> Vec<Check> {
    let mut rows = Vec::new();
    let mut proven: BTreeSet<&str> = BTreeSet::new();
    proven.insert("sts:GetCallerIdentity");

    // s3:GetObject (HeadObject is authorised by it) on each export's summary.
    for uri in p.uris {
        let key = uri.key("manifest-summary.json");
        let result = clients
            .s3
            .head_object()
            .bucket(&uri.bucket)
            .key(&key)
            .send()
            .await;
        rows.push(probe_row(
            "s3:GetObject",
            &format!("HeadObject s3://{}/{key}", uri.bucket),
            result.map(|_| ()).map_err(|e| probe_error(&e)),
            "not found (see the manifest row)",
        ));
        proven.insert("s3:GetObject");
    }
    // s3:ListBucket on each export folder (ListObjectsV2 of one key).
    for uri in p.uris {
        let prefix = uri.key("");
        let result = clients
            .s3
            .list_objects_v2()
            .bucket(&uri.bucket)
            .prefix(&prefix)
            .max_keys(1)
            .send()
            .await;
        rows.push(probe_row(
            "s3:ListBucket",
            &format!("ListObjectsV2 s3://{}/{prefix}", uri.bucket),
            result.map(|_| ()).map_err(|e| probe_error(&e)),
            "bucket not found",
        ));
        proven.insert("s3:ListBucket");
    }
    // The first byte of one data file per export: s3:GetObject, and kms:Decrypt for SSE-KMS objects.
    for export in p.exports {
        if let Some(file) = export.files.iter().find(|f| f.item_count > 0) {
            let result = clients
                .s3
                .get_object()
                .bucket(&export.uri.bucket)
                .key(&file.key)
                .range("bytes=0-0")
                .send()
                .await;
            let action = if export.summary.s3_sse_kms_key_id.is_some() {
                proven.insert("kms:Decrypt");
                "s3:GetObject+kms:Decrypt"
            } else {
                "s3:GetObject"
            };
            rows.push(probe_row(
                action,
                &format!("GetObject (1 byte) s3://{}/{}", export.uri.bucket, file.key),
                result.map(|_| ()).map_err(|e| probe_error(&e)),
                "data file not found",
            ));
        }
    }
    // dynamodb:DescribeTable.
    let result = clients
        .dynamodb
        .describe_table()
        .table_name(p.table)
        .send()
        .await;
    rows.push(probe_row(
        "dynamodb:DescribeTable",
        &format!("DescribeTable {}", p.table),
        result.map(|_| ()).map_err(|e| probe_error(&e)),
        "table not found (see the table row)",
    ));
    proven.insert("dynamodb:DescribeTable");
    // The checkpoint: 200 or 404 both prove access; 403 means s3:GetObject (or s3:ListBucket) is missing.
    if let Some(cp) = p.checkpoint {
        let result = clients
            .s3
            .head_object()
            .bucket(&cp.bucket)
            .key(&cp.key)
            .send()
            .await;
        let outcome = match result {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(()),
            Err(e) => Err(probe_error(&e)),
        };
        rows.push(probe_row(
            "s3:GetObject",
            &format!("HeadObject {cp} (checkpoint; 404 is fine)"),
            outcome,
            "",
        ));
    }
    if p.manage_capacity {
        let result = clients
            .autoscaling
            .describe_scalable_targets()
            .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Dynamodb)
            .resource_ids(format!("table/{}", p.table))
            .send()
            .await;
        rows.push(probe_row(
            "application-autoscaling:DescribeScalableTargets",
            &format!("DescribeScalableTargets table/{}", p.table),
            result.map(|_| ()).map_err(|e| probe_error(&e)),
            "",
        ));
        proven.insert("application-autoscaling:DescribeScalableTargets");
    }

    // What no read call can prove.
    let mut unproven: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for perm in required {
        if !proven.contains(perm.action) {
            unproven
                .entry(perm.action)
                .or_default()
                .push(&perm.resource);
        }
    }
    for (action, resources) in unproven {
        rows.push(Check::new(
            format!("permission {action}"),
            Status::Skip,
            format!(
                "not probed on {}: only a write call could prove it, and validate makes none",
                resources.join(", ")
            ),
        ));
    }
    rows
}

enum ProbeError {
    Denied(String),
    NotFound,
    Other(String),
}

fn probe_error<E>(e: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> ProbeError
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + 'static,
{
    let text = describe_sdk_error(e);
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = match e {
        SdkError::ServiceError(se) => se.err().code().map(str::to_owned),
        _ => None,
    };
    let not_found = status == Some(404)
        || code.as_deref().is_some_and(|c| {
            c == "ResourceNotFoundException"
                || c == "NoSuchKey"
                || c == "NoSuchBucket"
                || c == "NotFound"
        });
    if not_found {
        ProbeError::NotFound
    } else if status == Some(403) || code.as_deref().is_some_and(|c| c.contains("AccessDenied")) {
        ProbeError::Denied(text)
    } else {
        ProbeError::Other(text)
    }
}

fn probe_row(action: &str, call: &str, outcome: Result<(), ProbeError>, not_found: &str) -> Check {
    let name = format!("probe {action}");
    match outcome {
        Ok(()) => Check::new(name, Status::Pass, format!("{call}: allowed")),
        Err(ProbeError::NotFound) => Check::new(
            name,
            Status::Skip,
            format!("{call}: {not_found}; the permission is not proven"),
        ),
        Err(ProbeError::Denied(e)) => Check::new(
            name,
            Status::Fail,
            format!("{call}: denied ({e}); grant {action} (see `ddb-pitr policy`)"),
        ),
        Err(ProbeError::Other(e)) => {
            Check::new(name, Status::Warn, format!("{call}: could not probe ({e})"))
        }
    }
}

fn estimate(
    opts: &Options,
    exports: &[&Export],
    table: Option<&TableFacts>,
    samples: Option<&[crate::Result<Tally>]>,
) -> Estimate {
    let gsis: Vec<&Index> = table
        .map(|t| t.indexes.iter().filter(|i| i.global).collect())
        .unwrap_or_default();
    let mut per_export = Vec::new();
    let (mut table_units, mut puts_total, mut deletes_total) = (0f64, 0f64, 0f64);
    let mut index_units: BTreeMap<String, f64> =
        gsis.iter().map(|i| (i.name.clone(), 0.0)).collect();
    let (mut sampled_files, mut sampled_lines, mut put_bytes, mut puts_sampled) = (0, 0, 0, 0);
    for (i, export) in exports.iter().enumerate() {
        let items = export.item_count() as f64;
        let tally = samples.and_then(|s| s.get(i)).and_then(|t| t.as_ref().ok());
        let mut units = 0f64;
        match tally {
            Some(t) if t.lines > 0 => {
                let put_share = t.puts as f64 / t.lines as f64;
                let puts = items * put_share;
                let deletes = items - puts;
                puts_total += puts;
                deletes_total += deletes;
                let per_put = |u: u64| {
                    if t.puts == 0 {
                        0.0
                    } else {
                        u as f64 / t.puts as f64
                    }
                };
                let table_part = puts * per_put(t.table_units) + deletes;
                table_units += table_part;
                units += table_part;
                let indexes = table.map(|t| t.indexes.as_slice()).unwrap_or_default();
                for (j, index) in indexes.iter().enumerate() {
                    if index.global {
                        let part = puts * per_put(t.index_units[j]) + deletes;
                        *index_units.entry(index.name.clone()).or_default() += part;
                        units += part;
                    }
                }
                sampled_files += t.files;
                sampled_lines += t.lines;
                put_bytes += t.put_bytes;
                puts_sampled += t.puts;
            }
            // Not sampled: one unit per line, the least any write costs.
            _ => {
                puts_total += items;
                table_units += items;
                units += items;
            }
        }
        per_export.push(ExportEstimate {
            export_id: export.id().to_owned(),
            items: export.item_count(),
            sampled_files: tally.map_or(0, |t| t.files),
            sampled_lines: tally.map_or(0, |t| t.lines),
            sampled_puts: tally.map_or(0, |t| t.puts),
            sampled_deletes: tally.map_or(0, |t| t.deletes),
            mean_put_item_bytes: tally
                .filter(|t| t.puts > 0)
                .map(|t| t.put_bytes as f64 / t.puts as f64),
            estimated_write_units: units.ceil() as u64,
        });
    }
    let items: u64 = exports.iter().map(|e| e.item_count()).sum();
    let all_sampled = per_export
        .iter()
        .zip(exports)
        .all(|(e, x)| e.sampled_lines > 0 || x.item_count() == 0);
    let lower_bound = deletes_total > 0.0 || !all_sampled;
    let write_units = (table_units + index_units.values().sum::<f64>()).ceil();

    let at_current_capacity = table.map(|t| {
        let (rate, source) = &t.rate;
        let mut worst = (
            table_units / rate.max(f64::MIN_POSITIVE),
            *rate,
            format!("table: {source}"),
        );
        for index in &gsis {
            let units = index_units.get(&index.name).copied().unwrap_or_default();
            let (index_rate, what) = match index.rate {
                Some(r) if r > 0.0 => (r, format!("index {}: {r} write units/s", index.name)),
                _ => (*rate, format!("index {}: the table's rate", index.name)),
            };
            let seconds = units / index_rate.max(f64::MIN_POSITIVE);
            if seconds > worst.0 {
                worst = (seconds, index_rate, what);
            }
        }
        Timing {
            write_units_per_second: worst.1,
            source: format!(
                "limited by {}{}",
                worst.2,
                if t.on_demand {
                    ""
                } else {
                    "; auto scaling may raise it during the restore"
                }
            ),
            seconds: worst.0,
        }
    });
    let at_max_wcu = opts.max_wcu.filter(|&m| m > 0).map(|m| Timing {
        write_units_per_second: m as f64,
        source:
            "--max-wcu, the table's write units per second (indexes are written at the same pace)"
                .into(),
        seconds: table_units / m as f64,
    });
    let basis = if sampled_lines == 0 {
        "no lines were sampled: every item is counted at 1 write unit, the minimum".to_owned()
    } else {
        format!(
            "estimate from the first {} lines of each data file ({sampled_lines} lines of {sampled_files} files), \
             assuming an empty table: puts cost 1 unit per started KB of the item plus the same for each global \
             index that holds it; deletes are counted at 1 unit on the table and 1 per global index (a lower \
             bound: the deleted item's size is not in the export)",
            opts.sample_lines
        )
    };
    Estimate {
        basis,
        sampled_files,
        sampled_lines,
        items,
        estimated_puts: puts_total.round() as u64,
        estimated_deletes: deletes_total.round() as u64,
        write_units: write_units as u64,
        table_write_units: table_units.ceil() as u64,
        index_write_units: index_units
            .into_iter()
            .map(|(k, v)| (k, v.ceil() as u64))
            .collect(),
        lower_bound,
        mean_put_item_bytes: (puts_sampled > 0).then(|| put_bytes as f64 / puts_sampled as f64),
        at_current_capacity,
        at_max_wcu,
        price_per_million_wru: opts.price_per_million_wru,
        on_demand_cost_usd: write_units / 1e6 * opts.price_per_million_wru,
        exports: per_export,
    }
}

fn estimate_row(e: &Estimate, exports: &[&Export], uris: &[ExportUri]) -> Check {
    let mut parts = vec![format!(
        "≈ {} write units{} for {} items",
        e.write_units,
        if e.lower_bound { " (at least)" } else { "" },
        e.items
    )];
    if let Some(d) = &e.at_current_capacity {
        parts.push(format!(
            "≈ {} at current capacity ({})",
            format_seconds(d.seconds),
            d.source
        ));
    }
    if let Some(d) = &e.at_max_wcu {
        parts.push(format!(
            "≈ {} at --max-wcu {}",
            format_seconds(d.seconds),
            d.write_units_per_second
        ));
    }
    parts.push(format!(
        "≈ {} on demand at ${}/million WRU",
        format_usd(e.on_demand_cost_usd),
        e.price_per_million_wru
    ));
    parts.push(format!(
        "sampled {} lines of {} files",
        e.sampled_lines, e.sampled_files
    ));
    let status = if exports.len() < uris.len() {
        parts.push("exports whose manifests could not be read are not counted".into());
        Status::Warn
    } else {
        Status::Pass
    };
    Check::new("estimate", status, parts.join("; "))
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Cents for real amounts; enough digits to be non-zero for the tiny amounts of small tests.
fn format_usd(usd: f64) -> String {
    if usd >= 0.01 || usd == 0.0 {
        format!("${usd:.2}")
    } else {
        format!("${usd:.2e}")
    }
}

fn format_seconds(seconds: f64) -> String {
    let s = seconds.ceil().max(0.0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(s.max(1))).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::BillingMode;

    #[test]
    fn caller_arns_map_to_principals() {
        assert_eq!(
            principal("arn:aws:sts::123456789012:assumed-role/Restorer/alice@example.com"),
            Principal::Role {
                name: "Restorer".into(),
                arn: "arn:aws:iam::123456789012:role/Restorer".into()
            }
        );
        assert_eq!(
            principal("arn:aws-cn:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123/bob"),
            Principal::Role {
                name: "AWSReservedSSO_Admin_0123".into(),
                arn: "arn:aws-cn:iam::123456789012:role/AWSReservedSSO_Admin_0123".into()
            },
            "the partition is kept; the path is learnt from iam:GetRole"
        );
        assert_eq!(
            principal("arn:aws:iam::123456789012:user/ops/carol"),
            Principal::User {
                arn: "arn:aws:iam::123456789012:user/ops/carol".into()
            }
        );
        assert!(matches!(
            principal("arn:aws:iam::123456789012:root"),
            Principal::Root { .. }
        ));
        assert!(matches!(
            principal("arn:aws:sts::123456789012:federated-user/dave"),
            Principal::Federated { .. }
        ));
        assert!(matches!(principal("not an arn"), Principal::Other { .. }));
        assert!(matches!(
            principal("arn:aws:sts::123456789012:assumed-role/"),
            Principal::Other { .. }
        ));
    }

    #[test]
    fn conditions_become_context_values_that_satisfy_them() {
        let condition = serde_json::json!({
            "StringLike": {"s3:prefix": ["exports/AWSDynamoDB/01-ab/*", "other/*"]},
            "Bool": {"aws:SecureTransport": true}
        });
        let entries = context_entries(Some(&condition), "eu-west-1");
        let find = |k: &str| {
            entries
                .iter()
                .find(|e| e.context_key_name() == Some(k))
                .unwrap_or_else(|| panic!("{k} missing from {entries:?}"))
        };
        assert_eq!(
            find("s3:prefix").context_key_values(),
            ["exports/AWSDynamoDB/01-ab/"]
        );
        assert_eq!(
            find("aws:SecureTransport").context_key_type(),
            Some(&ContextKeyTypeEnum::Boolean)
        );
        assert_eq!(
            find("aws:RequestedRegion").context_key_values(),
            ["eu-west-1"]
        );
        assert_eq!(context_entries(None, "").len(), 0);
    }

    #[test]
    fn index_write_units_follow_the_projection() {
        use crate::table::{KeyAttr, KeyType};
        use aws_sdk_dynamodb::types::AttributeValue as V;
        let key = KeySchema {
            attrs: vec![KeyAttr {
                name: "pk".into(),
                ty: KeyType::S,
            }],
        };
        let item: Item = [
            ("pk".to_owned(), V::S("a".into())),
            ("gk".to_owned(), V::S("g".into())),
            ("small".to_owned(), V::S("s".into())),
            ("big".to_owned(), V::S("x".repeat(3000))),
        ]
        .into_iter()
        .collect();
        let index = |projection| Index {
            name: "i".into(),
            global: true,
            keys: vec!["gk".into()],
            projection,
            rate: None,
        };
        assert_eq!(index(Projection::All).write_units(&key, &item), Some(3));
        assert_eq!(
            index(Projection::KeysOnly).write_units(&key, &item),
            Some(1)
        );
        assert_eq!(
            index(Projection::Include(vec!["small".into()])).write_units(&key, &item),
            Some(1)
        );
        assert_eq!(
            index(Projection::Include(vec!["big".into()])).write_units(&key, &item),
            Some(3)
        );
        let mut sparse = item.clone();
        sparse.remove("gk");
        assert_eq!(
            index(Projection::All).write_units(&key, &sparse),
            None,
            "an item without the index key is not in the index"
        );

        let mut tally = Tally::new(1);
        let indexes = [index(Projection::All)];
        tally.add(&WriteOp::Put(item.clone()), &key, &indexes);
        tally.add(&WriteOp::Put(sparse), &key, &indexes);
        tally.add(&WriteOp::Delete(Item::new()), &key, &indexes);
        assert_eq!((tally.lines, tally.puts, tally.deletes), (3, 2, 1));
        assert_eq!(tally.table_units, 3 + 3);
        assert_eq!(tally.index_units, vec![3]);
    }

    fn export(id: &str, items: u64) -> Export {
        use crate::manifest::Summary;
        Export {
            uri: format!("s3://b/AWSDynamoDB/{id}/").parse().unwrap(),
            summary: Summary {
                version: None,
                export_arn: format!("arn:aws:dynamodb:r:1:table/t/export/{id}"),
                table_arn: "arn:aws:dynamodb:r:1:table/t".into(),
                export_time: None,
                export_from_time: None,
                export_to_time: None,
                s3_bucket: None,
                s3_prefix: None,
                s3_sse_kms_key_id: None,
                manifest_files_s3_key: String::new(),
                item_count: items,
                output_format: None,
                output_view: None,
                export_type: None,
            },
            export_type: ExportType::Full,
            view: None,
            start: std::time::SystemTime::UNIX_EPOCH,
            end: std::time::SystemTime::UNIX_EPOCH,
            summary_checksum: SummaryChecksum::Verified,
            files: vec![],
        }
    }

    #[test]
    fn estimate_extrapolates_and_finds_the_tightest_resource() {
        use crate::table::{KeyAttr, KeyType, TableInfo};
        use aws_sdk_dynamodb::types::{
            AttributeValue as V, BillingModeSummary, GlobalSecondaryIndexDescription,
            KeySchemaElement, ProvisionedThroughputDescription,
        };
        let key = KeySchema {
            attrs: vec![KeyAttr {
                name: "pk".into(),
                ty: KeyType::S,
            }],
        };
        let desc = TableDescription::builder()
            .billing_mode_summary(
                BillingModeSummary::builder()
                    .billing_mode(BillingMode::Provisioned)
                    .build(),
            )
            .provisioned_throughput(
                ProvisionedThroughputDescription::builder()
                    .write_capacity_units(100)
                    .build(),
            )
            .global_secondary_indexes(
                GlobalSecondaryIndexDescription::builder()
                    .index_name("by-g")
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("gk")
                            .key_type(DdbKeyType::Hash)
                            .build()
                            .unwrap(),
                    )
                    .projection(
                        aws_sdk_dynamodb::types::Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .provisioned_throughput(
                        ProvisionedThroughputDescription::builder()
                            .write_capacity_units(1)
                            .build(),
                    )
                    .build(),
            )
            .build();
        let info = TableInfo {
            name: "t".into(),
            arn: None,
            key: key.clone(),
        };
        let facts = TableFacts::from_description(info, &desc);
        assert!(!facts.on_demand);
        assert_eq!(facts.rate.0, 100.0);
        assert_eq!(facts.indexes.len(), 1);
        assert_eq!(facts.indexes[0].rate, Some(1.0));

        // 3 puts of 1.5 KB items (2 units, and 1 in the KEYS_ONLY index) and 1 delete, from 1,000 items.
        let item: Item = [
            ("pk".to_owned(), V::S("a".into())),
            ("gk".to_owned(), V::S("g".into())),
            ("data".to_owned(), V::S("x".repeat(1500))),
        ]
        .into_iter()
        .collect();
        let mut tally = Tally::new(1);
        tally.files = 1;
        for _ in 0..3 {
            tally.add(&WriteOp::Put(item.clone()), &key, &facts.indexes);
        }
        tally.add(&WriteOp::Delete(Item::new()), &key, &facts.indexes);
        let exports = [export("e1", 1000)];
        let readable: Vec<&Export> = exports.iter().collect();
        let opts = Options {
            table: "t".into(),
            exports: vec![],
            expect: Expectations::default(),
            resume: None,
            report: None,
            manage_capacity: false,
            autoscaling: AutoScaling::Refuse,
            max_wcu: Some(50),
            price_per_million_wru: 1.25,
            sample_lines: 4,
        };
        let e = estimate(&opts, &readable, Some(&facts), Some(&[Ok(tally)]));
        assert_eq!((e.estimated_puts, e.estimated_deletes), (750, 250));
        assert_eq!(e.table_write_units, 750 * 2 + 250);
        assert_eq!(e.index_write_units["by-g"], 750 + 250);
        assert_eq!(e.write_units, 2750);
        assert!(e.lower_bound, "deletes are counted at their minimum");
        assert!((e.on_demand_cost_usd - 2750.0 / 1e6 * 1.25).abs() < 1e-12);
        let current = e.at_current_capacity.unwrap();
        assert_eq!(current.seconds, 1000.0, "the 1-WCU index is the bottleneck");
        assert!(current.source.contains("index by-g"), "{}", current.source);
        assert_eq!(e.at_max_wcu.unwrap().seconds, 1750.0 / 50.0);

        // Unsampled (no table): every item at the 1-unit minimum.
        let e = estimate(&opts, &readable, None, None);
        assert_eq!((e.write_units, e.sampled_lines), (1000, 0));
        assert!(e.lower_bound && e.at_current_capacity.is_none());
    }

    #[test]
    fn on_demand_rates() {
        use aws_sdk_dynamodb::types::{
            BillingModeSummary, OnDemandThroughput, TableWarmThroughputDescription,
        };
        let info = || table::TableInfo {
            name: "t".into(),
            arn: None,
            key: KeySchema { attrs: vec![] },
        };
        let on_demand = || {
            TableDescription::builder().billing_mode_summary(
                BillingModeSummary::builder()
                    .billing_mode(BillingMode::PayPerRequest)
                    .build(),
            )
        };
        let new = TableFacts::from_description(info(), &on_demand().build());
        assert_eq!(new.rate.0, NEW_ON_DEMAND_WRITE_UNITS);
        assert!(new.rate.1.contains("initial 4,000"), "{}", new.rate.1);
        let warm = on_demand().warm_throughput(
            TableWarmThroughputDescription::builder()
                .write_units_per_second(12000)
                .build(),
        );
        assert_eq!(
            TableFacts::from_description(info(), &warm.clone().build())
                .rate
                .0,
            12000.0
        );
        let capped = warm.on_demand_throughput(
            OnDemandThroughput::builder()
                .max_write_request_units(500)
                .build(),
        );
        let capped = TableFacts::from_description(info(), &capped.build());
        assert_eq!(capped.rate.0, 500.0);
        assert!(capped.rate.1.contains("maximum"), "{}", capped.rate.1);
    }

    #[tokio::test]
    async fn samples_are_the_first_lines_of_each_file_and_keys_are_checked() {
        use crate::source::memory::MemoryObjects;
        use crate::table::{KeyAttr, KeyType, TableInfo};
        let lines: Vec<String> = (0..10)
            .map(|i| format!(r#"{{"Item":{{"pk":{{"S":"k{i}"}},"v":{{"N":"{i}"}}}}}}"#))
            .collect();
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let gz = ddb_pitr_synth::gzip(text.as_bytes());
        let file = manifest::DataFile {
            key: "AWSDynamoDB/e1/data/f.json.gz".into(),
            item_count: 10,
            md5: ddb_pitr_synth::md5_base64(&gz),
        };
        let objects: Arc<dyn ObjectReader> = Arc::new(MemoryObjects(
            [(file.key.clone(), bytes::Bytes::from(gz))].into(),
        ));
        let mut e1 = export("e1", 10);
        e1.files = vec![file];
        let facts = |ty| TableFacts {
            info: TableInfo {
                name: "t".into(),
                arn: None,
                key: KeySchema {
                    attrs: vec![KeyAttr {
                        name: "pk".into(),
                        ty,
                    }],
                },
            },
            on_demand: true,
            rate: (1.0, String::new()),
            indexes: vec![],
        };
        for (want, got) in [(3, 3), (9, 9), (10, 10), (1000, 10)] {
            let tallies = sample(objects.clone(), &facts(KeyType::S), &[&e1], want).await;
            let t = tallies[0].as_ref().unwrap();
            assert_eq!(
                (t.files, t.lines, t.puts),
                (1, got, got),
                "asked for {want}"
            );
        }
        let tallies = sample(objects.clone(), &facts(KeyType::N), &[&e1], 3).await;
        let row = sample_row(&e1, &tallies[0], &facts(KeyType::N).info.key, "t");
        assert_eq!(row.status, Status::Fail);
        assert!(row.detail.contains("does not fit table t"), "{row:?}");
    }

    mod sdk {
        use super::*;
        use aws_sdk_iam::operation::get_role::GetRoleOutput;
        use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
        use aws_sdk_iam::types::EvaluationResult;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;

        const CALLER: &str = "arn:aws:sts::123456789012:assumed-role/Restorer/alice";
        const ROLE_WITH_PATH: &str = "arn:aws:iam::123456789012:role/ops/Restorer";
        const TABLE_ARN: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/target";

        fn scope() -> Scope {
            Scope {
                partition: "aws".into(),
                region: "eu-west-1".into(),
                account: "123456789012".into(),
                table: "target".into(),
                export_objects: vec!["s3://exports/AWSDynamoDB/01-ab/".parse().unwrap()],
                checkpoint: None,
                report: None,
                kms_keys: vec![],
                manage_capacity: false,
                autoscaling: AutoScaling::Refuse,
                control_table: String::new(),
                queue: String::new(),
            }
        }

        fn clients(iam: aws_sdk_iam::Client, dynamodb: aws_sdk_dynamodb::Client) -> Clients {
            let conf = aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("eu-west-1"))
                .build();
            Clients {
                iam,
                dynamodb,
                ..Clients::from_sdk_config(&conf)
            }
        }

        fn get_role() -> aws_smithy_mocks::Rule {
            mock!(aws_sdk_iam::Client::get_role)
                .match_requests(|r| r.role_name() == Some("Restorer"))
                .then_output(|| {
                    GetRoleOutput::builder()
                        .role(
                            aws_sdk_iam::types::Role::builder()
                                .path("/ops/")
                                .role_name("Restorer")
                                .role_id("AROAEXAMPLE")
                                .arn(ROLE_WITH_PATH)
                                .create_date(aws_smithy_types::DateTime::from_secs(0))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
        }

        /// Answers each simulated action: denied if it is in `deny`, allowed otherwise. Only for the role
        /// with its real (path) ARN, so a wrong mapping fails the test.
        fn simulate(deny: &'static [&'static str]) -> aws_smithy_mocks::Rule {
            mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .match_requests(|r| r.policy_source_arn() == Some(ROLE_WITH_PATH))
                .then_compute_output(move |r| {
                    let resource = r.resource_arns()[0].clone();
                    let results = r
                        .action_names()
                        .iter()
                        .map(|a| {
                            EvaluationResult::builder()
                                .eval_action_name(a)
                                .eval_resource_name(&resource)
                                .eval_decision(if deny.contains(&a.as_str()) {
                                    PolicyEvaluationDecisionType::ImplicitDeny
                                } else {
                                    PolicyEvaluationDecisionType::Allowed
                                })
                                .build()
                                .unwrap()
                        })
                        .collect();
                    SimulatePrincipalPolicyOutput::builder()
                        .set_evaluation_results(Some(results))
                        .is_truncated(false)
                        .build()
                })
        }

        fn no_dynamodb() -> aws_sdk_dynamodb::Client {
            let describe =
                mock!(aws_sdk_dynamodb::Client::describe_table).then_http_response(|| {
                    panic!("DynamoDB must not be called when the simulation works")
                });
            mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&describe])
        }

        fn probes<'a>(uris: &'a [ExportUri]) -> Probes<'a> {
            Probes {
                exports: &[],
                uris,
                table: "target",
                checkpoint: None,
                manage_capacity: false,
            }
        }

        #[tokio::test]
        async fn simulation_allowed_passes() {
            let get_role = get_role();
            let simulate = simulate(&[]);
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[&get_role, &simulate]);
            let clients = clients(iam, no_dynamodb());
            let required = access::permissions(Role::Local, &scope());
            assert!(required.len() >= 4, "{required:?}");
            let rows =
                check_permissions(&clients, CALLER, "eu-west-1", &required, &probes(&[])).await;
            assert_eq!(rows.len(), 1, "{rows:?}");
            assert_eq!(rows[0].status, Status::Pass, "{rows:?}");
            assert!(rows[0].detail.contains(ROLE_WITH_PATH), "{rows:?}");
            assert!(
                rows[0]
                    .detail
                    .contains(&format!("all {} action/resource pairs", required.len())),
                "{rows:?}"
            );
            assert_eq!(get_role.num_calls(), 1);
            // One call per resource (and condition), each with every action on it.
            let resources: BTreeSet<(&str, String)> = required
                .iter()
                .map(|p| (p.resource.as_str(), format!("{:?}", p.condition)))
                .collect();
            assert_eq!(simulate.num_calls(), resources.len());
        }

        #[tokio::test]
        async fn simulation_denied_names_the_action_and_resource() {
            let get_role = get_role();
            let simulate = simulate(&["dynamodb:BatchWriteItem"]);
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[&get_role, &simulate]);
            let clients = clients(iam, no_dynamodb());
            let required = access::permissions(Role::Local, &scope());
            let rows =
                check_permissions(&clients, CALLER, "eu-west-1", &required, &probes(&[])).await;
            assert_eq!(rows[0].status, Status::Fail, "{rows:?}");
            assert!(rows[0].detail.contains("denied 1 of"), "{rows:?}");
            let denied: Vec<&Check> = rows
                .iter()
                .filter(|r| r.check.starts_with("permission "))
                .collect();
            assert_eq!(denied.len(), 1, "{rows:?}");
            assert_eq!(denied[0].check, "permission dynamodb:BatchWriteItem");
            assert_eq!(denied[0].status, Status::Fail);
            assert!(
                denied[0].detail.contains("implicit deny") && denied[0].detail.contains(TABLE_ARN),
                "{denied:?}"
            );
        }

        #[tokio::test]
        async fn simulation_paginates() {
            let get_role = get_role();
            let first = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .match_requests(|r| r.marker().is_none())
                .then_output(|| {
                    SimulatePrincipalPolicyOutput::builder()
                        .evaluation_results(
                            EvaluationResult::builder()
                                .eval_action_name("dynamodb:DescribeTable")
                                .eval_resource_name(TABLE_ARN)
                                .eval_decision(PolicyEvaluationDecisionType::Allowed)
                                .build()
                                .unwrap(),
                        )
                        .is_truncated(true)
                        .marker("page-2")
                        .build()
                });
            let second = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .match_requests(|r| r.marker() == Some("page-2"))
                .then_output(|| {
                    SimulatePrincipalPolicyOutput::builder()
                        .evaluation_results(
                            EvaluationResult::builder()
                                .eval_action_name("dynamodb:BatchWriteItem")
                                .eval_resource_name(TABLE_ARN)
                                .eval_decision(PolicyEvaluationDecisionType::ExplicitDeny)
                                .build()
                                .unwrap(),
                        )
                        .is_truncated(false)
                        .build()
                });
            let iam = mock_client!(
                aws_sdk_iam,
                RuleMode::MatchAny,
                &[&get_role, &first, &second]
            );
            let clients = clients(iam, no_dynamodb());
            let required: Vec<Permission> = access::permissions(Role::Local, &scope())
                .into_iter()
                .filter(|p| p.action.starts_with("dynamodb:"))
                .collect();
            let rows =
                check_permissions(&clients, CALLER, "eu-west-1", &required, &probes(&[])).await;
            assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
            assert!(rows[0].detail.contains("denied 1 of 2"), "{rows:?}");
            assert!(
                rows.iter()
                    .any(|r| r.check == "permission dynamodb:BatchWriteItem"
                        && r.detail.contains("explicitly denied")),
                "{rows:?}"
            );
        }

        #[tokio::test]
        async fn simulation_not_permitted_falls_back_to_read_probes() {
            // GetRole denied too: the path-less role ARN is used, and said so.
            let get_role = mock!(aws_sdk_iam::Client::get_role).then_http_response(access_denied);
            let simulate = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .then_http_response(access_denied);
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[&get_role, &simulate]);
            let describe = mock!(aws_sdk_dynamodb::Client::describe_table)
                .match_requests(|r| r.table_name() == Some("target"))
                .then_output(|| {
                    aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput::builder()
                        .build()
                });
            let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&describe]);
            let clients = clients(iam, dynamodb);
            let mut scope = scope();
            scope.export_objects.clear();
            let required = access::permissions(Role::Local, &scope);
            let rows =
                check_permissions(&clients, CALLER, "eu-west-1", &required, &probes(&[])).await;

            let find = |name: &str| {
                rows.iter()
                    .find(|r| r.check == name)
                    .unwrap_or_else(|| panic!("no {name} row in {rows:?}"))
            };
            let role = find("role");
            assert_eq!(role.status, Status::Warn);
            assert!(
                role.detail
                    .contains("arn:aws:iam::123456789012:role/Restorer"),
                "{role:?}"
            );
            let permissions = find("permissions");
            assert_eq!(permissions.status, Status::Warn);
            assert!(
                permissions
                    .detail
                    .contains("may not call iam:SimulatePrincipalPolicy")
                    && permissions.detail.contains("probing"),
                "{permissions:?}"
            );
            assert_eq!(simulate.num_calls(), 1, "AccessDenied is not retried");
            let probe = find("probe dynamodb:DescribeTable");
            assert_eq!(probe.status, Status::Pass, "{probe:?}");
            assert_eq!(describe.num_calls(), 1);
            let write = find("permission dynamodb:BatchWriteItem");
            assert_eq!(write.status, Status::Skip);
            assert!(write.detail.contains("validate makes none"), "{write:?}");
            assert!(rows.iter().all(|r| r.status != Status::Fail), "{rows:?}");
        }

        #[tokio::test]
        async fn denied_probe_fails() {
            let simulate = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .then_http_response(access_denied);
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[&simulate]);
            let describe = mock!(aws_sdk_dynamodb::Client::describe_table).then_http_response(|| {
                response(
                    400,
                    r#"{"__type":"com.amazon.coral.service#AccessDeniedException","message":"not authorized to perform: dynamodb:DescribeTable"}"#,
                )
            });
            let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&describe]);
            let clients = clients(iam, dynamodb);
            let required = vec![Permission {
                action: "dynamodb:DescribeTable",
                resource: TABLE_ARN.into(),
                condition: None,
            }];
            let user = "arn:aws:iam::123456789012:user/carol";
            let rows =
                check_permissions(&clients, user, "eu-west-1", &required, &probes(&[])).await;
            let probe = rows
                .iter()
                .find(|r| r.check == "probe dynamodb:DescribeTable")
                .unwrap();
            assert_eq!(probe.status, Status::Fail, "{rows:?}");
            assert!(probe.detail.contains("AccessDeniedException"), "{probe:?}");
        }

        #[tokio::test]
        async fn root_is_not_simulated() {
            let simulate = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .then_http_response(|| panic!("root must not be simulated"));
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[&simulate]);
            let clients = clients(iam, no_dynamodb());
            let rows = check_permissions(
                &clients,
                "arn:aws:iam::123456789012:root",
                "eu-west-1",
                &access::permissions(Role::Local, &scope()),
                &probes(&[]),
            )
            .await;
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].status, Status::Warn);
            assert!(rows[0].detail.contains("root user"), "{rows:?}");
        }

        fn response(status: u16, body: &'static str) -> aws_smithy_runtime_api::http::Response {
            aws_smithy_runtime_api::http::Response::new(
                StatusCode::try_from(status).unwrap(),
                SdkBody::from(body),
            )
        }

        fn access_denied() -> aws_smithy_runtime_api::http::Response {
            response(
                403,
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: \
                 arn:aws:sts::123456789012:assumed-role/Restorer/alice is not authorized to perform: \
                 iam:SimulatePrincipalPolicy</Message></Error><RequestId>r</RequestId></ErrorResponse>",
            )
        }
    }
}
