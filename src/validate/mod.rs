//! `ddb-pitr validate`: read-only checks before a restore, and an estimate of what it will cost.
//!
//! Every check yields a [`Check`] row (`pass`, `warn`, `fail` or `skip`, with a detail that says what to
//! do); one failing check never stops the others that can still run. The checks:
//!
//! 1. credentials: `sts:GetCallerIdentity`;
//! 2. manifests: each export's manifests read and verified ([`crate::export::manifest::load`]), then the chain
//!    ([`crate::export::chain::validate`]);
//! 3. table: exists, ACTIVE, and the first lines of every data file decode and carry the table's key
//!    ([`Engine::sample_ops`](crate::engine::Engine::sample_ops), the restore's own read and decode path, writing nothing);
//! 4. checkpoint: a `--resume` location is readable and, if it exists, belongs to this restore;
//! 5. permissions: `iam:SimulatePrincipalPolicy` of the caller for every action/resource pair
//!    [`access::permissions`] lists for [`Role::Local`]; when the simulation itself is not possible, harmless
//!    read probes instead;
//! 6. estimate: write units, time and on-demand cost, extrapolated from the sampled item sizes.
//!
//! Nothing here calls a write API, not even one expected to fail: the integration tests record every call
//! and check it against a list of read-only operations.

pub mod checks;
pub mod estimates;
pub mod permissions;

use std::sync::Arc;

use serde::Serialize;

use crate::access::{self, Role, SourceScope};
use crate::aws::Clients;
use crate::aws::error::describe;
use crate::error::Result;
use crate::export::chain::Expectations;
use crate::export::discover::Find;
use crate::export::location::{ExportUri, ReportLocation, StateLocation};
use crate::export::manifest::{self, Export};
use crate::export::request::RequestOptions;
use crate::export::resolve::resolve;
use crate::export::source::{ObjectReader, S3Reader};
use crate::table::capacity::AutoScaling;

use self::checks::*;
use self::estimates::*;
use self::permissions::*;

/// The on-demand price of one million write request units: standard table class, us-east-1, in USD.
pub const DEFAULT_PRICE_PER_MILLION_WRU: f64 = 0.625;

/// Data files sampled at once.
pub(super) const SAMPLE_CONCURRENCY: usize = 16;

/// What to check: the restore's own flags.
#[derive(Debug, Clone)]
pub struct Options {
    pub table: String,
    pub exports: Vec<ExportUri>,
    /// Find the chain under a prefix instead (`--export-prefix` and `--to`).
    pub find: Option<Find>,
    /// `--request-export`: ask DynamoDB for the exports missing for `find`'s time, and wait for them.
    pub request: Option<RequestOptions>,
    pub expect: Expectations,
    pub resume: Option<StateLocation>,
    /// The restore's `--report`: where it can be written is checked (read-only).
    pub report: Option<ReportLocation>,
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
pub struct Findings {
    pub tool: String,
    pub table: String,
    /// False when any check failed.
    pub ok: bool,
    pub checks: Vec<Check>,
    pub estimate: Option<Estimate>,
}

impl Findings {
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
        let warnings = plural(warned as u64, "warning", "warnings");
        out.push_str(&if failed == 0 {
            format!("validate: no check failed ({warnings})\n")
        } else {
            format!(
                "validate: {} failed, {warnings}\n",
                plural(failed as u64, "check", "checks")
            )
        });
        out
    }
}

/// The caller of `sts`'s credentials (sts:GetCallerIdentity) as a row named `check`, and its ARN.
async fn identity(sts: &aws_sdk_sts::Client, check: &str) -> (Check, Option<String>) {
    match sts.get_caller_identity().send().await {
        Ok(out) => {
            let arn = out.arn().unwrap_or_default().to_owned();
            let row = Check::new(
                check,
                Status::Pass,
                format!(
                    "caller {arn} (account {})",
                    out.account().unwrap_or("unknown")
                ),
            );
            (row, Some(arn))
        }
        Err(e) => (
            Check::new(
                check,
                Status::Fail,
                format!(
                    "sts:GetCallerIdentity failed: {}; check the AWS profile, SSO login or environment",
                    describe(&e)
                ),
            ),
            None,
        ),
    }
}

/// Runs every check. Never fails as a whole: problems are rows.
pub async fn run(opts: &Options, clients: &Clients) -> Findings {
    let mut checks = Vec::new();

    // 1. Credentials: the table side's, and the export reader's when it is another principal.
    let (row, caller) = identity(&clients.sts, "credentials").await;
    checks.push(row);
    let reader = if clients.exports.other_principal {
        let (row, reader) = identity(&clients.exports.sts, "export reader").await;
        checks.push(row);
        reader
    } else {
        None
    };

    // 2. Manifests and the chain.
    let mut chosen = None;
    let objects: Arc<dyn ObjectReader> = Arc::new(S3Reader::new(clients.exports.s3.clone()));
    let (uris, found) = match resolve(
        clients,
        objects.as_ref(),
        &opts.exports,
        opts.find.as_ref(),
        opts.request
            .map(|r| RequestOptions { dry_run: true, ..r })
            .as_ref(),
    )
    .await
    {
        Ok((uris, choice)) => {
            chosen = choice.clone();
            if let Some(c) = &choice {
                checks.push(Check::new(
                    "chain found",
                    Status::Pass,
                    format!(
                        "{} as of {} (asked: {}): exports {}",
                        c.table_arn,
                        c.reached,
                        c.asked,
                        c.exports.join(", ")
                    ),
                ));
            }
            (uris, true)
        }
        Err(e) => {
            checks.push(Check::new("chain found", Status::Fail, e.to_string()));
            (vec![], false)
        }
    };
    let loaded: Vec<Result<Export>> =
        futures::future::join_all(uris.iter().map(|uri| manifest::load(objects.as_ref(), uri)))
            .await;
    for (uri, result) in uris.iter().zip(&loaded) {
        checks.push(manifest_row(uri, result));
    }
    let exports: Option<Vec<Export>> = loaded.iter().map(|r| r.as_ref().ok().cloned()).collect();
    checks.push(match &exports {
        None => Check::new(
            "chain",
            Status::Skip,
            "not every manifest could be read (see the manifest rows)",
        ),
        Some(_) if !found => Check::new("chain", Status::Skip, "no chain was found (see above)"),
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

    // 4. The checkpoint, the report's place, and what --manage-capacity would do (read-only: DescribeTable,
    // DescribeScalableTargets).
    if let Some(location) = &opts.resume {
        checks.push(checkpoint_row(clients, location, &opts.table, exports.as_deref()).await);
    }
    if let Some(location) = &opts.report {
        checks.push(report_row(clients, location).await);
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
            let mut scope = scope(opts, clients, arn, &readable);
            scope.source = SourceScope::for_chain(
                opts.find.as_ref().map(|f| &f.origin),
                chosen.as_ref().map(|c| c.table_arn.clone()),
                chosen.as_ref().and_then(|c| c.uris.last()),
                opts.request.is_some(),
                clients.exports.other_principal,
            );
            let required = access::permissions(Role::Local, &scope);
            let probes = Probes {
                exports: &readable,
                uris: &uris,
                table: &opts.table,
                checkpoint: scope.checkpoint.as_ref(),
                manage_capacity: opts.manage_capacity,
            };
            checks.extend(check_permissions(clients, arn, &scope.region, &required, &probes).await);
            if let Some(reader) = &reader {
                let required = access::permissions(Role::ExportReader, &scope);
                let rows =
                    check_permissions(clients, reader, &scope.region, &required, &probes).await;
                checks.extend(rows.into_iter().map(|mut c| {
                    c.check = format!("export reader: {}", c.check);
                    c
                }));
            }
        }
    }

    // 6. The estimate.
    let estimate = estimate(opts, &readable, table.as_ref().ok(), samples.as_deref());
    checks.push(estimate_row(&estimate, &readable, &uris));

    Findings {
        tool: format!("ddb-pitr {}", env!("CARGO_PKG_VERSION")),
        table: opts.table.clone(),
        ok: checks.iter().all(|c| c.status != Status::Fail),
        checks,
        estimate: Some(estimate),
    }
}
