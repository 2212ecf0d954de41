//! `ddb-pitr worker`: file messages of distributed restores from their SQS queue, on a PC or EC2, beside or
//! instead of the worker Lambda.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ddb_pitr::distributed::worker::{QueueOptions, Worker, WorkerOptions, run_queue};
use ddb_pitr::write::BatchSize;

use super::args::{AwsArgs, EngineArgs, S3Args, parse_interval, parse_rate};
use super::print_data;
use super::shutdown_signal;

/// Process file messages of distributed restores from an SQS queue, beside or instead of the worker Lambda.
#[derive(Args)]
#[command(after_help = "EXAMPLES:
  ddb-pitr worker --queue-url \"$QUEUE_URL\" --control-table \"$CONTROL_TABLE\" --workers 8
  ddb-pitr worker --queue-url \"$QUEUE_URL\" --control-table \"$CONTROL_TABLE\" --idle-exit 10m --max-wcu 2000

EXIT STATUS:
  0 after --idle-exit or a signal (files in progress are checkpointed and handed back), 1 failed, 2 bad usage.")]
pub struct WorkerArgs {
    /// The restore queue (the same queue the worker Lambda reads).
    #[arg(long, value_name = "URL")]
    queue_url: String,
    /// The control table of the restores on that queue.
    #[arg(long, value_name = "TABLE")]
    control_table: String,
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    s3: S3Args,
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

pub async fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    if args.lease <= args.checkpoint_interval * 2 {
        anyhow::bail!(
            "--lease ({}) must be more than twice --checkpoint-interval ({}), or leases expire between checkpoints",
            humantime::format_duration(args.lease),
            humantime::format_duration(args.checkpoint_interval)
        );
    }
    let clients = args.aws.load(Some(&args.s3)).await?;
    let worker = Worker::new(
        &clients,
        &args.control_table,
        &args.queue_url,
        WorkerOptions {
            settings: args.engine.settings(BatchSize::MAX),
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
    print_data(&serde_json::to_string_pretty(&stats)?);
    Ok(ExitCode::SUCCESS)
}
