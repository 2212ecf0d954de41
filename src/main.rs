//! The `ddb-pitr` command line: parses flags into the library's options, sets up logging, AWS clients and
//! signals, runs, prints the report on stdout and exits with a status that says how the run ended.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ddb_pitr::budget::ByteBudget;
use ddb_pitr::capacity::ManageOptions;
use ddb_pitr::cloud;
use ddb_pitr::control::ControlTable;
use ddb_pitr::engine::{MAX_BATCH_SIZE, Settings};
use ddb_pitr::plan::PlanRequest;
use ddb_pitr::report::RunStatus;
use ddb_pitr::restore::{self, Clients, RestoreOptions};
use ddb_pitr::worker::{QueueOptions, Worker, WorkerOptions, run_queue};
use ddb_pitr::write::RetryPolicy;

mod commands;

use commands::args::{AutoScalingArg, ChainArgs};

/// Restore Amazon DynamoDB tables from DynamoDB "export to S3" output (FULL and INCREMENTAL exports).
#[derive(Parser)]
#[command(name = "ddb-pitr", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "DDB_PITR_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Restore a table from an export, or from a FULL export followed by INCREMENTAL exports.
    Restore(RestoreArgs),
    /// Process file messages of distributed restores from their SQS queue (on a PC or EC2).
    Worker(WorkerArgs),
    /// Start and follow distributed restores (the deployed Step Functions state machine).
    #[command(subcommand)]
    Cloud(CloudCommand),
    /// Print the least-privilege IAM policy (JSON) a restore needs, for the local runner or per Lambda role.
    Policy(commands::policy::PolicyArgs),
    /// Read-only checks before a restore: credentials, manifests, chain, table, permissions, estimates.
    Validate(commands::validate::ValidateArgs),
}

#[derive(Subcommand)]
enum CloudCommand {
    /// Start an execution of the restore state machine; prints its ARN and restore id as JSON.
    Start(CloudStartArgs),
    /// Show an execution's progress from the control table; prints the report once it has ended.
    Status(CloudStatusArgs),
}

/// Region and endpoint of `cloud` commands.
#[derive(Args)]
struct AwsArgs {
    /// AWS region (default: the standard AWS configuration chain).
    #[arg(long)]
    region: Option<String>,
    /// Endpoint for every AWS service (local emulators).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
}

#[derive(Args)]
struct CloudStartArgs {
    /// The restore state machine (the stack output `StateMachineArn` of infra/template.yaml).
    #[arg(long, value_name = "ARN", env = "DDB_PITR_STATE_MACHINE_ARN")]
    state_machine_arn: String,
    /// Target table. It must exist, be ACTIVE and have the export's key schema.
    #[arg(long)]
    table: String,
    /// An export URI; repeat for a FULL export followed by INCREMENTAL exports, in order.
    #[arg(long = "export", value_name = "S3_URI", required = true)]
    exports: Vec<String>,
    /// Restore id (default: a new time-ordered id). Starting again with the same id continues that restore.
    #[arg(long)]
    restore_id: Option<String>,
    /// Requests per BatchWriteItem call.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u8).range(1..=25))]
    batch_size: u8,
    /// Restore even if the chain has gaps or overlaps between exports.
    #[arg(long)]
    allow_gaps: bool,
    /// Where the reporter writes the JSON report (an object, or a prefix ending in /).
    #[arg(long, value_name = "S3_URI")]
    report_uri: Option<String>,
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Args)]
struct CloudStatusArgs {
    /// The execution (printed by `cloud start`).
    execution_arn: String,
    /// The control table (the stack output `ControlTableName`).
    #[arg(long, value_name = "TABLE", env = "DDB_PITR_CONTROL_TABLE")]
    control_table: String,
    /// Follow the execution until it ends, with a progress bar on a terminal.
    #[arg(long)]
    wait: bool,
    /// Poll interval of --wait.
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    interval: Duration,
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args)]
struct RestoreArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// AWS region of the table and the export bucket (default: the standard AWS configuration chain).
    #[arg(long)]
    region: Option<String>,
    /// Checkpoint location (s3://bucket/key or a local path). Created if missing; resumed from if present.
    #[arg(long, value_name = "S3_URI_OR_PATH")]
    resume: Option<String>,
    /// Data files restored in parallel.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
    /// Requests per BatchWriteItem call.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u8).range(1..=25))]
    batch_size: u8,
    /// Also upload the JSON report to this S3 object (or, for a URI ending in /, a new object under it).
    #[arg(long, value_name = "S3_URI")]
    report: Option<String>,
    /// Read, verify and decode everything and report what would be written; make no write calls (no table
    /// write, no capacity change, no checkpoint, no report upload: the report is printed on stdout).
    #[arg(long, conflicts_with = "report")]
    dry_run: bool,
    /// After SIGINT/SIGTERM, how long in-flight batches may take before the checkpoint is saved.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,
    /// Endpoint for every AWS service (local emulators). AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 and
    /// AWS_ENDPOINT_URL_DYNAMODB work as usual.
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
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

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= ddb_pitr::pace::MIN_RATE => Ok(v),
        _ => Err(format!(
            "{s:?} is not a positive number of at least {}",
            ddb_pitr::pace::MIN_RATE
        )),
    }
}

/// Read and write tuning shared by `restore` and `worker`.
#[derive(Args)]
struct EngineArgs {
    /// Ranged GETs in flight per data file.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    read_ahead: u16,
    /// Size of each ranged GET.
    #[arg(long, default_value = "1MiB", value_parser = parse_size, help_heading = "Tuning")]
    part_size: u64,
    /// Compressed bytes read ahead across all data files at once: bounds memory when many files are
    /// restored in parallel.
    #[arg(long, default_value = "16MiB", value_parser = parse_size, help_heading = "Tuning")]
    read_budget: u64,
    /// Bytes of batches cut and not yet written, across all data files at once: bounds memory when items
    /// are large (batches are cut at 4 MiB of lines: about ten items near 400 KB).
    #[arg(long, default_value = "24MiB", value_parser = parse_size, help_heading = "Tuning")]
    batch_budget: u64,
    /// BatchWriteItem calls in flight per data file.
    #[arg(long, default_value_t = ddb_pitr::engine::DEFAULT_INFLIGHT_BATCHES as u16, value_parser = clap::value_parser!(u16).range(1..), help_heading = "Tuning")]
    inflight_batches: u16,
    /// Consecutive BatchWriteItem attempts without progress before a file stops.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Tuning")]
    max_attempts: u32,
    /// Do not learn the table's write capacity from throttling; only back off batch by batch. For
    /// comparisons: the adaptive rate keeps a throttled table at its capacity with far fewer retries.
    #[arg(long, help_heading = "Tuning")]
    no_adaptive_rate: bool,
}

impl EngineArgs {
    fn settings(&self, batch_size: usize) -> Settings {
        Settings {
            batch_size,
            read_ahead: self.read_ahead.into(),
            part_size: self.part_size,
            inflight_batches: self.inflight_batches.into(),
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                ..RetryPolicy::default()
            },
            adaptive_rate: !self.no_adaptive_rate,
            read_budget: ByteBudget::new(self.read_budget),
            batch_budget: ByteBudget::new(self.batch_budget),
        }
    }
}

/// Process file messages of distributed restores from an SQS queue, beside or instead of the worker Lambda.
#[derive(Args)]
struct WorkerArgs {
    /// The restore queue (the same queue the worker Lambda reads).
    #[arg(long, value_name = "URL")]
    queue_url: String,
    /// The control table of the restores on that queue.
    #[arg(long, value_name = "TABLE")]
    control_table: String,
    /// AWS region (default: the standard AWS configuration chain).
    #[arg(long)]
    region: Option<String>,
    /// Endpoint for every AWS service (local emulators).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Data files processed at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
    /// Exit after this long without messages (default: run until SIGINT/SIGTERM).
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_exit: Option<Duration>,
    /// Long-poll wait of each ReceiveMessage (at most 20s).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, help_heading = "Tuning")]
    wait_time: Duration,
    /// Visibility timeout of received messages; renewed every third of it while a file is processed.
    #[arg(long, default_value = "5m", value_parser = parse_visibility, help_heading = "Tuning")]
    visibility_timeout: Duration,
    /// How long a file lease lasts without a checkpoint.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, help_heading = "Tuning")]
    lease: Duration,
    /// How often the file checkpoint is saved (and the lease renewed).
    #[arg(long, default_value = "10s", value_parser = parse_interval, help_heading = "Tuning")]
    checkpoint_interval: Duration,
    /// Print one CloudWatch embedded-metric-format line per file lease on stdout (for the CloudWatch agent).
    #[arg(long)]
    metrics: bool,
    /// Cap this worker's write rate (all its files together) at this many consumed write units per second.
    #[arg(long, value_name = "WCU", value_parser = parse_rate)]
    max_wcu: Option<f64>,
    #[command(flatten)]
    engine: EngineArgs,
}

fn parse_visibility(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(3) || d > Duration::from_secs(12 * 3600) {
        return Err("must be between 3s and 12h".into());
    }
    Ok(d)
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 1MiB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use B, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(10) {
        return Err("must be at least 10ms".into());
    }
    Ok(d)
}

/// Exit statuses: 0 success, 1 failure, 2 bad usage (clap), 130 interrupted.
pub(crate) const EXIT_FAILED: u8 = 1;
const EXIT_INTERRUPTED: u8 = 130;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Restore(args) => run_restore(args).await,
        Command::Worker(args) => run_worker(args).await,
        Command::Cloud(CloudCommand::Start(args)) => run_cloud_start(args).await,
        Command::Cloud(CloudCommand::Status(args)) => run_cloud_status(args).await,
        Command::Policy(args) => commands::policy::run(args).await,
        Command::Validate(args) => commands::validate::run(args).await,
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(EXIT_FAILED)
    })
}

fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run_restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let opts = RestoreOptions {
        table: args.chain.table.clone(),
        exports: args.chain.export_uris()?,
        expect: args.chain.expectations(),
        workers: args.workers.into(),
        settings: args.engine.settings(args.batch_size.into()),
        dry_run: args.dry_run,
        resume: args.resume.as_deref().map(str::parse).transpose()?,
        report: args.report.as_deref().map(str::parse).transpose()?,
        shutdown_timeout: args.shutdown_timeout,
        checkpoint_interval: args.checkpoint_interval,
        sample_lines: args.sample_lines,
        progress_bar: std::io::stderr().is_terminal(),
        max_wcu: args.capacity.max_wcu,
        manage_capacity: args.capacity.manage(),
    };
    let clients = Clients::load(args.region, args.endpoint_url).await;

    let outcome = restore::run(&opts, &clients, shutdown_signal()).await;
    let json = serde_json::to_string_pretty(&outcome.report).context("serialising the report")?;
    println!("{json}");
    let code = match outcome.report.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
        RunStatus::Failed => ExitCode::from(EXIT_FAILED),
    };
    if let Some(e) = &outcome.error {
        eprintln!("error: {e}");
    }
    if let Some(hint) = &outcome.report.resume_hint {
        eprintln!("{hint}");
    }
    Ok(code)
}

async fn run_worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    if args.lease <= args.checkpoint_interval * 2 {
        anyhow::bail!(
            "--lease ({}) must be more than twice --checkpoint-interval ({}), or leases expire between checkpoints",
            humantime::format_duration(args.lease),
            humantime::format_duration(args.checkpoint_interval)
        );
    }
    let clients = Clients::load(args.region, args.endpoint_url).await;
    let worker = Worker::new(
        &clients,
        &args.control_table,
        &args.queue_url,
        WorkerOptions {
            settings: args.engine.settings(MAX_BATCH_SIZE),
            lease: args.lease,
            checkpoint_interval: args.checkpoint_interval,
            emit_metrics: args.metrics,
            max_wcu: args.max_wcu,
            ..WorkerOptions::default()
        },
    );
    let opts = QueueOptions {
        queue_url: args.queue_url,
        concurrency: args.workers.into(),
        wait_time: args.wait_time,
        visibility: args.visibility_timeout,
        idle_exit: args.idle_exit,
    };
    tracing::info!(
        owner = worker.options().owner,
        queue = opts.queue_url,
        "worker started"
    );
    let stats = run_queue(&worker, &opts, shutdown_signal())
        .await
        .context("polling the queue")?;
    println!("{}", serde_json::to_string_pretty(&stats)?);
    Ok(ExitCode::SUCCESS)
}

async fn run_cloud_start(args: CloudStartArgs) -> anyhow::Result<ExitCode> {
    let clients = Clients::load(args.aws.region, args.aws.endpoint_url).await;
    let plan = PlanRequest {
        restore_id: args.restore_id,
        table: args.table,
        exports: args.exports,
        batch_size: Some(args.batch_size.into()),
        allow_gaps: args.allow_gaps,
        report_uri: args.report_uri,
        ..PlanRequest::default()
    };
    let started = cloud::start(&clients.sfn, &args.state_machine_arn, plan).await?;
    println!("{}", serde_json::to_string_pretty(&started)?);
    Ok(ExitCode::SUCCESS)
}

/// Prints the status (or, once the execution has ended, the report; the status again when it ended before
/// planning) on stdout. Exit status: 0 while
/// running or after success, 1 after any other end.
async fn run_cloud_status(args: CloudStatusArgs) -> anyhow::Result<ExitCode> {
    let clients = Clients::load(args.aws.region, args.aws.endpoint_url).await;
    let control = ControlTable::new(clients.dynamodb.clone(), &args.control_table);
    let mut status = cloud::status(&clients.sfn, &control, &args.execution_arn).await?;
    if args.wait {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(status.files),
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} files {msg}",
                )
                .expect("valid template"),
            );
            bar
        });
        while status.running() {
            let message = format!(
                "{} items put, {} deleted, {} files failed",
                status.items_put, status.items_deleted, status.files_failed
            );
            match &bar {
                Some(bar) => {
                    bar.set_length(status.files);
                    bar.set_position(status.files_done + status.files_failed);
                    bar.set_message(message);
                }
                None => tracing::info!(
                    execution = status.execution_status,
                    files_done = status.files_done,
                    files = status.files,
                    "{message}"
                ),
            }
            tokio::time::sleep(args.interval).await;
            status = cloud::status(&clients.sfn, &control, &args.execution_arn).await?;
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    }
    if status.running() {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    if status.table.is_some() {
        let report = cloud::report(&clients.s3, &control, &status).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        // The execution ended before the restore was planned (a bad request, a missing table): there is
        // no report, only the execution's error and cause.
        println!("{}", serde_json::to_string_pretty(&status)?);
    }
    eprintln!(
        "execution {}: {}{}",
        status.execution_status,
        status.error.as_deref().unwrap_or(""),
        status
            .cause
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    );
    Ok(if status.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// Resolves on the first SIGINT or SIGTERM. A second signal exits at once; the last saved checkpoint stays
/// valid because it never claims unacknowledged writes.
async fn shutdown_signal() {
    wait_for_signal().await;
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!(
            "second signal: exiting now; the last saved checkpoint is still valid (capacity raised by \
             --manage-capacity stays raised until the next run with the same --resume puts it back)"
        );
        std::process::exit(EXIT_INTERRUPTED.into());
    });
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The defaults written as text for `--help` are the engine's.
    #[test]
    fn budget_defaults_are_the_engines() {
        let cli = Cli::try_parse_from([
            "ddb-pitr",
            "restore",
            "--table",
            "t",
            "--export",
            "s3://b/p/AWSDynamoDB/01-ab/",
        ])
        .unwrap();
        let Command::Restore(args) = cli.command else {
            panic!("not a restore");
        };
        let settings = args.engine.settings(MAX_BATCH_SIZE);
        assert_eq!(
            settings.read_budget.bytes(),
            ddb_pitr::engine::DEFAULT_READ_BUDGET
        );
        assert_eq!(
            settings.batch_budget.bytes(),
            ddb_pitr::engine::DEFAULT_BATCH_BUDGET
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1TB").is_err());
        assert!(parse_interval("0s").is_err());
        assert_eq!(parse_interval("50ms"), Ok(Duration::from_millis(50)));
    }
}
