//! `ddb-pitr validate`: read-only pre-flight checks. The checks are in [`ddb_pitr::validate`]; this file only
//! turns flags into its options and prints the result (a table on stderr, JSON on stdout).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ddb_pitr::access::AutoScaling;
use ddb_pitr::chain::Expectations;
use ddb_pitr::manifest::{ExportType, OutputView};
use ddb_pitr::restore::Clients;
use ddb_pitr::validate::{self, DEFAULT_PRICE_PER_MILLION_WRU, Options};

/// Checks credentials, manifests, the chain, the target table, permissions and the checkpoint, and
/// estimates the write units, time and on-demand cost of the restore. Makes no write calls. Exits 1 if any
/// check fails.
#[derive(Args)]
pub struct ValidateArgs {
    /// Target table. It must exist, be ACTIVE and have the export's key schema.
    #[arg(long)]
    table: String,
    /// An export: s3://bucket/prefix/AWSDynamoDB/<export-id>/ or its manifest-summary.json. Repeat for a FULL
    /// export followed by INCREMENTAL exports, in order.
    #[arg(long = "export", value_name = "S3_URI", required = true)]
    exports: Vec<String>,
    /// Assert the export type (once for all exports, or once per --export); read from the manifest otherwise.
    #[arg(long = "type", value_enum)]
    types: Vec<TypeArg>,
    /// Assert the INCREMENTAL exports' output view.
    #[arg(long, value_enum)]
    view: Option<ViewArg>,
    /// Accept gaps or overlaps between exports (a warning instead of a failure).
    #[arg(long)]
    allow_gaps: bool,
    /// The restore's checkpoint location (s3://bucket/key or a local path): read if it exists, and its
    /// permissions checked. Nothing is created.
    #[arg(long, value_name = "S3_URI_OR_PATH")]
    resume: Option<String>,
    /// The restore's report location (an S3 object, or a prefix ending in /): its permission is checked.
    #[arg(long, value_name = "S3_URI")]
    report: Option<String>,
    /// Check the permissions `restore --manage-capacity` needs.
    #[arg(long)]
    manage_capacity: bool,
    /// With --manage-capacity: what the restore does with an auto-scaled table (for the permissions).
    #[arg(long, value_enum, default_value = "refuse")]
    autoscaling: AutoScalingArg,
    /// Also estimate the restore's duration at this many write units per second.
    #[arg(long, value_name = "WCU", value_parser = clap::value_parser!(u64).range(1..))]
    max_wcu: Option<u64>,
    /// On-demand price per million write request units, in USD. The default is the standard table class in
    /// us-east-1; check the DynamoDB pricing page for your region and table class.
    #[arg(long, value_name = "USD", default_value_t = DEFAULT_PRICE_PER_MILLION_WRU)]
    price_per_million_wru: f64,
    /// Lines read from the start of each data file to check keys and estimate item sizes.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    sample_lines: u64,
    /// AWS region of the table and the export bucket (default: the standard AWS configuration chain).
    #[arg(long)]
    region: Option<String>,
    /// Endpoint for every AWS service (local emulators).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum TypeArg {
    #[value(name = "FULL", alias = "full")]
    Full,
    #[value(name = "INCREMENTAL", alias = "incremental")]
    Incremental,
}

#[derive(Clone, Copy, ValueEnum)]
enum ViewArg {
    #[value(name = "NEW", alias = "new")]
    New,
    #[value(name = "NEW_AND_OLD", alias = "new_and_old")]
    NewAndOld,
}

#[derive(Clone, Copy, ValueEnum)]
enum AutoScalingArg {
    Refuse,
    Adjust,
}

pub async fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    if !(args.price_per_million_wru.is_finite() && args.price_per_million_wru >= 0.0) {
        anyhow::bail!("--price-per-million-wru must be a non-negative number");
    }
    let opts = Options {
        table: args.table,
        exports: args
            .exports
            .iter()
            .map(|e| e.parse())
            .collect::<Result<Vec<_>, _>>()?,
        expect: Expectations {
            types: args
                .types
                .iter()
                .map(|t| match t {
                    TypeArg::Full => ExportType::Full,
                    TypeArg::Incremental => ExportType::Incremental,
                })
                .collect(),
            view: args.view.map(|v| match v {
                ViewArg::New => OutputView::NewImage,
                ViewArg::NewAndOld => OutputView::NewAndOldImages,
            }),
            allow_gaps: args.allow_gaps,
        },
        resume: args.resume.as_deref().map(str::parse).transpose()?,
        report: args.report.as_deref().map(str::parse).transpose()?,
        manage_capacity: args.manage_capacity,
        autoscaling: match args.autoscaling {
            AutoScalingArg::Refuse => AutoScaling::Refuse,
            AutoScalingArg::Adjust => AutoScaling::Adjust,
        },
        max_wcu: args.max_wcu,
        price_per_million_wru: args.price_per_million_wru,
        sample_lines: args.sample_lines,
    };
    let clients = Clients::load(args.region, args.endpoint_url).await;
    let report = validate::run(&opts, &clients).await;
    eprint!("{}", report.render_table());
    println!(
        "{}",
        serde_json::to_string_pretty(&report).context("serialising the validate report")?
    );
    Ok(if report.failed() {
        ExitCode::from(crate::EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
