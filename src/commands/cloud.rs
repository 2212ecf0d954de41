//! `ddb-pitr cloud start` and `cloud status`: distributed restores through the deployed Step Functions state
//! machine.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ddb_pitr::distributed::cloud;
use ddb_pitr::distributed::control::ControlTable;
use ddb_pitr::distributed::planner::PlanRequest;
use ddb_pitr::export::resolve;
use ddb_pitr::export::source::S3Reader;
use ddb_pitr::write::BatchSize;

use super::EXIT_FAILED;
use super::args::{AwsArgs, ChainArgs, parse_interval};
use super::{print_data, say};

#[derive(Args)]
#[command(after_help = "EXAMPLES:
  ddb-pitr cloud start --table orders-restored --export-prefix s3://exports/prod/ --to 2026-01-14T10:30:00Z
  ddb-pitr cloud start --table orders-restored --export s3://exports/prod/AWSDynamoDB/01768385930622-efd1a093/ \\
    --restore-id r-orders-1 --report-uri s3://exports/reports/

EXIT STATUS:
  0 started (its ARN and restore id as JSON on stdout), 1 failed, 2 bad usage.")]
pub struct CloudStartArgs {
    /// The restore state machine (the stack output `StateMachineArn` of infra/template.yaml).
    #[arg(long, value_name = "ARN", env = "DDB_PITR_STATE_MACHINE_ARN")]
    state_machine_arn: String,
    /// The target table and the chain: --export URIs, or --export-prefix/--source-table and --to for the
    /// planner to find (and record in the control table). With --request-export, the missing exports are
    /// requested and waited for here, before the execution starts.
    #[command(flatten)]
    chain: ChainArgs,
    /// Restore id (default: a new time-ordered id). Starting again with the id of a restore that ended
    /// (failed, stalled or stopped), with the same table and exports, continues it under a new execution:
    /// unfinished files are sent again and FAILED ones retried.
    #[arg(long)]
    restore_id: Option<String>,
    /// Requests per BatchWriteItem call (1..=25).
    #[arg(long, default_value_t = BatchSize::MAX)]
    batch_size: BatchSize,
    /// Where the reporter writes the JSON report (an object, or a prefix ending in /).
    #[arg(long, value_name = "S3_URI")]
    report_uri: Option<String>,
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Args)]
#[command(after_help = "EXAMPLES:
  ddb-pitr cloud status \"$EXECUTION_ARN\" --control-table \"$CONTROL_TABLE\"
  ddb-pitr cloud status \"$EXECUTION_ARN\" --control-table \"$CONTROL_TABLE\" --wait > report.json

EXIT STATUS:
  0 running or succeeded, 1 any other end.")]
pub struct CloudStatusArgs {
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

pub async fn start(args: CloudStartArgs) -> anyhow::Result<ExitCode> {
    let clients = args.aws.clients().await?;
    let find = args.chain.find()?;
    if let (Some(find), Some(request)) = (&find, args.chain.request()) {
        let objects = S3Reader::new(clients.exports.s3.clone());
        let choice = resolve::find(&clients, &objects, find, Some(&request)).await?;
        tracing::info!(
            reached = choice.reached,
            requested = choice.requested.len(),
            "the chain is complete; the planner finds it again"
        );
    }
    let expect = args.chain.expectations();
    let plan = PlanRequest {
        restore_id: args.restore_id,
        table: args.chain.table.clone(),
        exports: args
            .chain
            .export_uris()?
            .iter()
            .map(ToString::to_string)
            .collect(),
        export_prefix: args.chain.export_prefix().map(str::to_owned),
        source_table: find
            .as_ref()
            .and(args.chain.source_table().map(str::to_owned)),
        to: find.as_ref().map(|f| f.to.to_string()),
        batch_size: Some(args.batch_size),
        allow_gaps: expect.allow_gaps,
        types: expect.types,
        view: expect.view,
        report_uri: args.report_uri,
        ..PlanRequest::default()
    };
    let started = cloud::start(&clients.sfn, &args.state_machine_arn, plan).await?;
    print_data(&serde_json::to_string_pretty(&started)?);
    Ok(ExitCode::SUCCESS)
}

/// Prints the status (or, once the execution has ended, the report; the status again when it ended before
/// planning) on stdout. Exit status: 0 while
/// running or after success, 1 after any other end.
pub async fn status(args: CloudStatusArgs) -> anyhow::Result<ExitCode> {
    let clients = args.aws.clients().await?;
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
        print_data(&serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    if status.table.is_some() {
        let report = cloud::report(&clients.s3, &control, &status).await?;
        print_data(&serde_json::to_string_pretty(&report)?);
    } else {
        // The execution ended before the restore was planned (a bad request, a missing table): there is
        // no report, only the execution's error and cause.
        print_data(&serde_json::to_string_pretty(&status)?);
    }
    say!(
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
