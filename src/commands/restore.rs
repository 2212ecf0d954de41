//! `ddb-pitr restore`: flags into [`RestoreOptions`], the run, the report on stdout and an exit status that
//! says how the run ended.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ddb_pitr::export::location::ReportLocation;
use ddb_pitr::local::{self, RestoreOptions};
use ddb_pitr::report::{Report, RunStatus, report_target};
use ddb_pitr::table::capacity::ManageOptions;
use ddb_pitr::write::BatchSize;
use indicatif::HumanCount;

use super::args::{
    AutoScalingArg, AwsArgs, ChainArgs, EngineArgs, S3Args, parse_flag, parse_interval, parse_rate,
};
use super::{EXIT_FAILED, EXIT_INTERRUPTED, shutdown_signal};
use super::{line, print_data};
use tracing::Level;

#[derive(Args)]
#[command(after_help = "EXAMPLES:
  ddb-pitr restore --table orders-restored --export s3://exports/prod/AWSDynamoDB/01768385930622-efd1a093/ \\
    --export s3://exports/prod/AWSDynamoDB/01768386924000-d339e52d/ --resume ./orders.checkpoint.json > report.json
  ddb-pitr restore --table orders-restored --export-prefix s3://exports/prod/ --source-table orders \\
    --to 2026-01-14T10:30:00Z --request-export --report s3://exports/reports/ > report.json

EXIT STATUS:
  0 succeeded, 1 failed, 2 bad usage (nothing on stdout), 130 interrupted (the checkpoint is saved; run the
  same command to resume). Every run that started prints its JSON report on stdout.")]
pub struct RestoreArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Checkpoint location (s3://bucket/key or a local path). Created if missing; resumed from if present.
    #[arg(long, value_name = "S3_URI_OR_PATH")]
    resume: Option<String>,
    /// Data files restored in parallel (1 or more).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
    /// Requests per BatchWriteItem call (1..=25).
    #[arg(long, default_value_t = BatchSize::MAX)]
    batch_size: BatchSize,
    /// Also write the JSON report here: an S3 object, or a new object under an s3:// URI ending in /; a local
    /// file, or a new file in a local folder. Written to before the first write, so a location that cannot
    /// be written fails the run before anything is restored.
    #[arg(long, value_name = "S3_URI_OR_PATH")]
    report: Option<String>,
    /// Read, verify and decode everything and report what would be written; make no write calls (no table
    /// write, no capacity change, no checkpoint, no report upload: the report is printed on stdout). Not with
    /// --report.
    #[arg(long, conflicts_with = "report")]
    dry_run: bool,
    /// After SIGINT/SIGTERM, how long in-flight batches may take before the checkpoint is saved.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    #[command(flatten)]
    capacity: CapacityArgs,
    /// How often the checkpoint is saved while running.
    #[arg(long, default_value = "10s", value_parser = parse_interval, help_heading = "Tuning")]
    checkpoint_interval: Duration,
    /// Lines of each export decoded and key-checked before the first write.
    #[arg(long, default_value_t = 20, help_heading = "Tuning")]
    sample_lines: u64,
}

/// The table's capacity during a restore.
#[derive(Args)]
#[command(next_help_heading = "Capacity")]
struct CapacityArgs {
    /// Cap the write rate at this many consumed write units per second (measured from ConsumedCapacity), to
    /// run beside production traffic.
    #[arg(long, value_name = "WCU", value_parser = parse_rate)]
    max_wcu: Option<f64>,
    /// Raise a provisioned table's (and its GSIs') write capacity before the restore and put it back after
    /// (also after a failure, an interruption, or a crash on the next run); pre-warm an on-demand table with
    /// warm throughput. Needs --resume: the originals are recorded in the checkpoint.
    #[arg(long, requires = "resume")]
    manage_capacity: bool,
    /// Write capacity to raise to (default: enough for about an hour at 1 WCU per item, capped by --max-wcu
    /// and by the default table quota of 40,000).
    #[arg(long, value_name = "WCU", requires = "manage_capacity", value_parser = clap::value_parser!(i64).range(1..))]
    target_wcu: Option<i64>,
    /// A table under Application Auto Scaling: refuse, or raise the scalable targets' minimum for the restore.
    #[arg(
        long,
        value_enum,
        default_value = "refuse",
        requires = "manage_capacity"
    )]
    autoscaling: AutoScalingArg,
    /// How long to wait for the table and its indexes to be ACTIVE around a capacity change.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    capacity_timeout: Duration,
}

impl CapacityArgs {
    fn manage(&self) -> Option<ManageOptions> {
        self.manage_capacity.then(|| ManageOptions {
            target_wcu: self.target_wcu,
            autoscaling: self.autoscaling.into(),
            timeout: self.capacity_timeout,
            ..ManageOptions::default()
        })
    }
}

pub async fn run(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let clients = args.aws.load(Some(&args.s3)).await?;
    let opts = RestoreOptions {
        table: args.chain.table.clone(),
        exports: args.chain.export_uris_or_explain(&clients).await?,
        find: args.chain.find()?,
        request: args.chain.request(),
        expect: args.chain.expectations(),
        workers: args.workers.into(),
        settings: args.engine.settings(args.batch_size),
        dry_run: args.dry_run,
        resume: parse_flag(args.resume.as_deref())?,
        report: parse_flag(args.report.as_deref())?,
        shutdown_timeout: args.shutdown_timeout,
        checkpoint_interval: args.checkpoint_interval,
        sample_lines: args.sample_lines,
        progress_bar: std::io::stderr().is_terminal(),
        max_wcu: args.capacity.max_wcu,
        manage_capacity: args.capacity.manage(),
    };
    let outcome = local::run(&opts, &clients, shutdown_signal()).await;
    let json = serde_json::to_string_pretty(&outcome.report).context("serialising the report")?;
    print_data(&json);
    let code = match outcome.report.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
        RunStatus::Failed => ExitCode::from(EXIT_FAILED),
    };
    if let Some(e) = &outcome.error {
        line(Level::ERROR, &format!("error: {e}"));
    }
    let closing = closing_line(&outcome.report, opts.report.as_ref());
    let level = match outcome.report.status {
        RunStatus::Succeeded => Level::INFO,
        _ => Level::WARN,
    };
    line(level, &closing);
    if let Some(hint) = &outcome.report.resume_hint {
        line(Level::WARN, hint);
    }
    Ok(code)
}

/// The run in one line, for the person who started it: how it ended, what it wrote, how fast, and where the
/// report and the checkpoint are.
fn closing_line(report: &Report, kept: Option<&ReportLocation>) -> String {
    let t = &report.totals;
    let status = match report.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Failed => "failed",
    };
    let exports = report.exports.len();
    let took = Duration::from_millis((report.duration_seconds * 1000.0).round() as u64);
    let mut line = format!(
        "restore {status}{}: {} items put and {} deleted, from {exports} export{} in {} ({:.0} items/s, {} \
         items this run)",
        if report.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        },
        HumanCount(t.items_put),
        HumanCount(t.items_deleted),
        if exports == 1 { "" } else { "s" },
        humantime::format_duration(took),
        t.items_per_second,
        HumanCount(t.items_this_run),
    );
    line.push_str("; report on stdout");
    if let Some(location) = kept {
        line.push_str(&format!(
            " and at {}",
            report_target(location, &report.started_at)
        ));
    }
    if let Some(cp) = &report.checkpoint {
        line.push_str(&format!("; checkpoint {cp}"));
    }
    line
}
