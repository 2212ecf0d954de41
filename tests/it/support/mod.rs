//! Shared harness for the integration tests: one moto server per test process, AWS SDK
//! clients pointed at it, self-cleaning buckets and tables, canonical item comparison and a
//! recording HTTP proxy.
//!
//! Everything here talks only to 127.0.0.1 and depends only on the AWS SDK crates, tokio,
//! serde_json, base64, futures and std — never on the `ddb_pitr` library under test, so a bug
//! there cannot hide itself by also breaking the checks.
//!
//! Tests run as parallel threads of one process, so every resource gets a name from
//! [`unique_name`] and removes itself on `Drop`.
#![allow(dead_code)] // each test module uses a different subset of the harness

mod canonical;
mod proxy;
mod resources;

pub use canonical::{
    assert_table_matches, canonical_item_json, canonical_json_line, canonical_number,
    expected_from_jsonl, item_from_json_line,
};
pub use proxy::RecordingProxy;
pub use resources::{TestBucket, TestQueue, TestTable, scan_all};

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, Region};

/// How long moto may take to start (import of moto + boto3 is the slow part, ~1-3 s).
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(90);

/// The moto server shared by every test in this process.
///
/// The server is `scripts/moto_guard.py`, which exits when its stdin reaches EOF. We keep the
/// write end of that pipe in this static and never write to it: statics are never dropped, so the
/// pipe closes exactly when the test process dies (normally, by panic, or by `kill -9`), and moto
/// goes with it. No cleanup code needs to run for that.
pub struct Moto {
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    _stdin: ChildStdin,
    _child: Child,
}

/// Starts moto on first use (once per test process) and returns it.
///
/// Panics, telling the user to run `scripts/test.sh`, when the Python venv is missing: an
/// integration test that silently skips would report success for code that never ran.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| start_moto(&[]))
}

fn python_path() -> PathBuf {
    match std::env::var_os("DDB_PITR_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".venv/bin/python"),
    }
}

/// The crate root, where `scripts/` and `tests/fixtures/` live.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/fixtures/`.
pub fn fixture_path(rel: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(rel)
}

/// Starts a moto server of its own (stopped when the returned value is dropped, or with this process),
/// with extra `scripts/moto_guard.py` arguments such as `--lambda-url`.
pub fn start_moto(args: &[&str]) -> Moto {
    let python = python_path();
    let guard = repo_root().join("scripts/moto_guard.py");
    let hint = "run `scripts/test.sh` (or `scripts/venv.sh`) from the repository root to create \
                the Python venv with moto, or point DDB_PITR_PYTHON at a python that has \
                `moto[server]` installed";
    if !python.exists() {
        panic!(
            "integration tests need moto, but {} does not exist: {hint}",
            python.display()
        );
    }
    let mut child = Command::new(&python)
        .arg(&guard)
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "could not start {} {}: {e}; {hint}",
                python.display(),
                guard.display()
            )
        });

    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");

    // Read the one `MOTO_PORT=` line on a helper thread so the wait is bounded.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let res = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(res);
    });
    let line = match rx.recv_timeout(MOTO_START_TIMEOUT) {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => panic!("reading moto_guard.py's stdout failed: {e}"),
        Err(_) => {
            let _ = child.kill();
            panic!("moto_guard.py printed no MOTO_PORT line within {MOTO_START_TIMEOUT:?}")
        }
    };
    let port: u16 = match line.trim().strip_prefix("MOTO_PORT=").map(str::parse) {
        Some(Ok(port)) => port,
        _ => {
            let status = child.wait().ok();
            panic!(
                "moto_guard.py did not start (printed {line:?}, exit status {status:?}; its \
                 stderr is above): {hint}"
            )
        }
    };
    Moto {
        port,
        endpoint: format!("http://127.0.0.1:{port}"),
        _stdin: stdin,
        _child: child,
    }
}

/// SDK config for moto (or anything else on `endpoint`): static credentials
/// `testing`/`testing`, region `us-east-1`.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "ddb-pitr-tests",
        ))
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// S3 client with path-style addressing (moto on 127.0.0.1 has no virtual-host buckets).
pub fn s3_client(conf: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_conf = aws_sdk_s3::config::Builder::from(conf)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(s3_conf)
}

pub fn ddb_client(conf: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(conf)
}

/// A name no other test, thread or process will produce: `<prefix>-<pid>-<time>-<counter>`.
///
/// Valid both as an S3 bucket name (3-63 chars of `a-z0-9-`, starting and ending with a letter
/// or digit) and as a DynamoDB table name. The prefix is lowercased, other characters become
/// `-`, and it is shortened to fit.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // Time in base 36 keeps names from a crashed earlier run (same pid, reused) distinct.
    let suffix = format!("{}-{}-{}", std::process::id(), base36(nanos / 1000), n);
    let mut clean: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    clean = clean.trim_matches('-').to_owned();
    if clean.is_empty() {
        clean.push('t');
    }
    clean.truncate(63 - 1 - suffix.len());
    let clean = clean.trim_end_matches('-');
    format!("{clean}-{suffix}")
}

fn base36(mut v: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// Runs `f` to completion on a fresh thread with its own current-thread runtime and waits for it.
///
/// This is how `Drop` impls do async cleanup: it works whether or not the caller is inside a
/// tokio runtime (`block_on` inside a runtime panics, and blocking a current-thread runtime's
/// only thread would starve any task the cleanup depended on). Clients used inside `f` must be
/// built inside it, so their connection pools belong to the new runtime.
pub(crate) fn run_cleanup<F, Fut>(what: String, f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let res = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return Err(format!("building a runtime: {e}")),
        };
        rt.block_on(async move {
            match tokio::time::timeout(Duration::from_secs(60), f()).await {
                Ok(r) => r,
                Err(_) => Err("timed out after 60s".to_owned()),
            }
        })
    })
    .join();
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("warning: cleanup of {what} failed: {e}"),
        Err(_) => eprintln!("warning: cleanup of {what} panicked"),
    }
}
