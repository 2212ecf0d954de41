//! `ddb-pitr validate`: read-only pre-flight checks. The checks are in [`ddb_pitr::validate`]; this file only
//! turns flags into its options and prints the result (a table on stderr, JSON on stdout).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ddb_pitr::validate::{self, DEFAULT_PRICE_PER_MILLION_WRU, Options};

use super::EXIT_FAILED;
use super::args::{AutoScalingArg, AwsArgs, ChainArgs, S3Args, parse_flag};
use super::{print_data, say_text};

/// Checks credentials, manifests, the chain, the target table, permissions and the checkpoint, and
/// estimates the write units, time and on-demand cost of the restore. Makes no write calls. Exits 1 if any
/// check fails.
#[derive(Args)]
#[command(after_help = "EXAMPLES:
  ddb-pitr validate --table orders-restored --export s3://exports/prod/AWSDynamoDB/01768385930622-efd1a093/
  ddb-pitr validate --table orders-restored --export-prefix s3://exports/prod/ --to latest --max-wcu 5000 \\
    --resume s3://exports/restores/orders.json --report s3://exports/reports/

EXIT STATUS:
  0 no check failed, 1 a check failed, 2 bad usage. Makes no write call.")]
pub struct ValidateArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// The restore's checkpoint location (s3://bucket/key or a local path): read if it exists, and its
    /// permissions checked. Nothing is created.
    #[arg(long, value_name = "S3_URI_OR_PATH")]
    resume: Option<String>,
    /// The restore's report location (an S3 object or a prefix ending in /, or a local file or folder):
    /// its bucket or folder is checked, and its permission.
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
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    s3: S3Args,
}

pub async fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    if !(args.price_per_million_wru.is_finite() && args.price_per_million_wru >= 0.0) {
        anyhow::bail!("--price-per-million-wru must be a non-negative number");
    }
    let clients = args.aws.load(Some(&args.s3)).await?;
    let opts = Options {
        table: args.chain.table.clone(),
        exports: args.chain.export_uris_or_explain(&clients).await?,
        find: args.chain.find()?,
        request: args.chain.request(),
        expect: args.chain.expectations(),
        resume: parse_flag(args.resume.as_deref())?,
        report: parse_flag(args.report.as_deref())?,
        manage_capacity: args.manage_capacity,
        autoscaling: args.autoscaling.into(),
        max_wcu: args.max_wcu,
        price_per_million_wru: args.price_per_million_wru,
        sample_lines: args.sample_lines,
    };
    let report = validate::run(&opts, &clients).await;
    say_text(&report.render_table());
    print_data(&serde_json::to_string_pretty(&report).context("serialising the validate report")?);
    Ok(if report.failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
