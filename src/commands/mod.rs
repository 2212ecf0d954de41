//! One file per subcommand, and the flags they share ([`args`]). Each turns flags into the library's options,
//! runs, prints data (JSON) on stdout and returns the exit status.

pub mod args;
pub mod cloud;
pub mod exports;
pub mod policy;
pub mod restore;
pub mod validate;
pub mod worker;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// A line for people on stderr, like `eprintln!`, except that a stderr that cannot be written (a pipe whose
/// reader died with the terminal's Ctrl-C, as `2>&1 | tee log` does) loses the line instead of panicking:
/// the shutdown path still saves the checkpoint and prints the report.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say;

/// How lines for people are written: plain text (the default) or, with `--log-format json`, as log events
/// like every other line; `-q` keeps only warnings and errors.
static JSON_LINES: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_output(json: bool, quiet: bool) {
    JSON_LINES.store(json, Ordering::Relaxed);
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether lines go out as JSON log events.
pub fn json_lines() -> bool {
    JSON_LINES.load(Ordering::Relaxed)
}

/// Text for people on stderr, as it is (a table that ends with its own newline); see [`say!`]. Not with
/// `--log-format json` (the same data is on stdout) or `-q`.
pub fn say_text(text: &str) {
    if json_lines() || QUIET.load(Ordering::Relaxed) {
        return;
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// A line for people that ends a command: the error, the closing line, the way forward. A JSON log event
/// with `--log-format json`; dropped by `-q` unless it is a warning or an error.
pub fn line(level: tracing::Level, text: &str) {
    if json_lines() {
        match level {
            tracing::Level::ERROR => tracing::error!("{text}"),
            tracing::Level::WARN => tracing::warn!("{text}"),
            _ => tracing::info!("{text}"),
        }
    } else if level <= tracing::Level::WARN || !QUIET.load(Ordering::Relaxed) {
        say!("{text}");
    }
}

/// Data on stdout, one JSON document and a newline. A stdout that cannot be written is said on stderr; it
/// never panics.
pub fn print_data(json: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{json}").and_then(|()| out.flush()) {
        say!("error: the output could not be written to stdout: {e}");
    }
}

/// Colour on stderr only for a person at a terminal, and not when `NO_COLOR` is set (no-color.org): a file,
/// a pipe or CloudWatch gets plain lines.
pub fn stderr_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Exit statuses: 0 success, 1 failure, 2 bad usage (clap), 130 interrupted.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// A flag's value that is bad usage, found before anything runs (a malformed URI, a region that is not
/// one): the process exits 2 with nothing on stdout, as for clap's own errors.
#[derive(Debug)]
pub struct BadUsage(pub String);

impl std::fmt::Display for BadUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadUsage {}

/// [`BadUsage`] from any error, for `map_err`.
pub fn bad_usage(e: impl std::fmt::Display) -> anyhow::Error {
    BadUsage(e.to_string()).into()
}
pub const EXIT_INTERRUPTED: u8 = 130;

/// Resolves on the first SIGINT or SIGTERM. A second signal exits at once; the last saved checkpoint stays
/// valid because it never claims unacknowledged writes.
pub async fn shutdown_signal() {
    wait_for_signal().await;
    tokio::spawn(async {
        wait_for_signal().await;
        say!(
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
