//! The `ddb-pitr` command line: the subcommands, logging and dispatch. Each subcommand (`commands/`) parses
//! its flags into the library's options, runs, prints data on stdout and returns an exit status that says how
//! the run ended.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

mod commands;

use commands::cloud::{CloudStartArgs, CloudStatusArgs};
use commands::exports::ExportsArgs;
use commands::policy::PolicyArgs;
use commands::restore::RestoreArgs;
use commands::validate::ValidateArgs;
use commands::worker::WorkerArgs;
use commands::{EXIT_FAILED, EXIT_USAGE};

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
    /// Only warnings and errors on stderr (no progress lines, no closing line on success, no tables).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// More on stderr: -v adds ddb-pitr's debug lines (the SDK's error detail among them), -vv everyone's.
    /// RUST_LOG, when set, decides instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
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
    Policy(PolicyArgs),
    /// Read-only checks before a restore: credentials, manifests, chain, table, permissions, estimates.
    Validate(ValidateArgs),
    /// List the exports under an S3 prefix and every point in time they can restore.
    Exports(ExportsArgs),
    /// Print a shell completion script on stdout, e.g. `ddb-pitr completions bash > /etc/bash_completion.d/ddb-pitr`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, e.g. `ddb-pitr man > /usr/local/share/man/man1/ddb-pitr.1`.
    Man,
}

#[derive(Subcommand)]
enum CloudCommand {
    /// Start an execution of the restore state machine; prints its ARN and restore id as JSON.
    Start(CloudStartArgs),
    /// Show an execution's progress from the control table; prints the report once it has ended.
    Status(CloudStatusArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format, cli.quiet, cli.verbose);
    commands::set_output(matches!(cli.log_format, LogFormat::Json), cli.quiet);
    let result = match cli.command {
        Command::Restore(args) => commands::restore::run(args).await,
        Command::Worker(args) => commands::worker::run(args).await,
        Command::Cloud(CloudCommand::Start(args)) => commands::cloud::start(args).await,
        Command::Cloud(CloudCommand::Status(args)) => commands::cloud::status(args).await,
        Command::Policy(args) => commands::policy::run(args).await,
        Command::Validate(args) => commands::validate::run(args).await,
        Command::Exports(args) => commands::exports::run(args).await,
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ddb-pitr", &mut out);
            commands::print_data(String::from_utf8_lossy(&out).trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut out = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut out) {
                Ok(()) => {
                    commands::print_data(String::from_utf8_lossy(&out).trim_end());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(anyhow::anyhow!("rendering the man page: {e}")),
            }
        }
    };
    result.unwrap_or_else(|e| {
        commands::line(tracing::Level::ERROR, &format!("error: {e:#}"));
        // Bad usage found before anything ran (a malformed URI, a region that is not one) exits like clap's:
        // 2, with nothing on stdout.
        if e.downcast_ref::<commands::BadUsage>().is_some() {
            ExitCode::from(EXIT_USAGE)
        } else {
            ExitCode::from(EXIT_FAILED)
        }
    })
}

fn init_tracing(format: LogFormat, quiet: bool, verbose: u8) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "info,ddb_pitr=debug",
        (false, _) => "debug",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(commands::stderr_colour())
        // Its own report of a failed write is an `eprintln!`, which panics on a stderr whose reader is gone.
        .log_internal_errors(false)
        .with_writer(|| ddb_pitr::local::progress::AroundBar);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddb_pitr::engine::{DEFAULT_BATCH_BUDGET, DEFAULT_READ_BUDGET};
    use ddb_pitr::write::BatchSize;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command's --help has two examples and its exit statuses; ranges and conflicts are said.
    #[test]
    fn help_has_examples_exit_statuses_and_ranges() {
        let mut cli = Cli::command();
        let mut paths: Vec<Vec<String>> = Vec::new();
        for sub in cli.get_subcommands() {
            let name = sub.get_name().to_owned();
            if sub.has_subcommands() {
                for s in sub.get_subcommands() {
                    paths.push(vec![name.clone(), s.get_name().to_owned()]);
                }
            } else if !matches!(name.as_str(), "completions" | "man" | "help") {
                paths.push(vec![name]);
            }
        }
        assert_eq!(paths.len(), 7, "{paths:?}");
        for path in &paths {
            let mut cmd = &mut cli;
            for p in path {
                cmd = cmd.find_subcommand_mut(p).expect("a subcommand");
            }
            let help = cmd.render_long_help().to_string();
            assert!(help.contains("EXIT STATUS:"), "{path:?}:\n{help}");
            let examples = help
                .split("EXAMPLES:")
                .nth(1)
                .unwrap_or_else(|| panic!("{path:?} has no examples"));
            let runs = examples
                .lines()
                .filter(|l| l.trim_start().starts_with("ddb-pitr "))
                .count();
            assert_eq!(runs, 2, "{path:?}: two examples");
        }
        let restore = cli.find_subcommand_mut("restore").unwrap();
        let help = restore.render_long_help().to_string();
        assert!(help.contains("(1..=25)"), "{help}");
        assert!(
            help.contains("Not with\n") || help.contains("Not with --report"),
            "{help}"
        );
    }

    #[test]
    fn completions_and_the_man_page_come_from_the_same_definition() {
        let mut out = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "ddb-pitr",
            &mut out,
        );
        let bash = String::from_utf8(out).unwrap();
        for word in [
            "restore",
            "validate",
            "exports",
            "--export-prefix",
            "--request-export",
        ] {
            assert!(bash.contains(word), "{word}");
        }
        let mut man = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut man)
            .unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(
            man.starts_with(".ie") || man.contains(".TH ddb-pitr"),
            "{}",
            &man[..200]
        );
        assert!(man.contains("restore"));
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
        let settings = args.engine.settings(BatchSize::MAX);
        assert_eq!(settings.read_budget.bytes(), DEFAULT_READ_BUDGET);
        assert_eq!(settings.batch_budget.bytes(), DEFAULT_BATCH_BUDGET);
    }
}
