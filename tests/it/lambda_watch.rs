//! The real function binaries under `cargo lambda watch` (PyPI `cargo-lambda`), invoked over the Lambda
//! Invoke API with real event JSON: the planner and the worker restore the real export chain.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{self, REAL_FULL, REAL_INC1, REAL_INC2};
use crate::cloud::{Cloud, event_fixture, sqs_event, test_worker_options};
use crate::support::{self, assert_table_matches, unique_name};

fn cargo_lambda() -> PathBuf {
    let path = match std::env::var_os("DDB_PITR_CARGO_LAMBDA") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => support::repo_root().join(".venv/bin/cargo-lambda"),
    };
    assert!(
        path.exists(),
        "{} is missing: run `scripts/test.sh` (or `scripts/venv.sh`) to install cargo-lambda into .venv",
        path.display()
    );
    path
}

/// `cargo lambda watch` serving every function binary of the workspace; stopped with SIGINT on drop.
pub struct Watch {
    port: u16,
    child: Option<tokio::process::Child>,
    /// The functions' logs (and cargo's), shown when the test fails.
    log: tempfile::NamedTempFile,
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Watch {
    pub async fn start(env: &[(&str, String)]) -> Watch {
        Watch::start_on(free_port(), env).await
    }

    /// Serves the Invoke API on `port`.
    pub async fn start_on(port: u16, env: &[(&str, String)]) -> Watch {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = tokio::process::Command::new(cargo_lambda());
        // `cargo test` gives this process the test crate's CARGO_PKG_*, CARGO_MANIFEST_DIR, OUT_DIR...
        // Build scripts (ring's, for one) list those with rerun-if-env-changed, so the nested `cargo run`
        // would see them changed and rebuild half the dependency tree: start it with the plain
        // environment `cargo build --bin planner` had in scripts/test.sh.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let injected = key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_BIN_")
                || key.starts_with("CARGO_MANIFEST_")
                || matches!(
                    &*key,
                    "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                        | "OUT_DIR"
                );
            if injected {
                cmd.env_remove(&*key);
            }
        }
        cmd.current_dir(support::repo_root())
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string()])
            // The first invocation of each function runs `cargo run`; with `scripts/test.sh`'s
            // `cargo build --workspace --bins` done it only links, but a cold build takes minutes.
            .args(["--timeout", "900"])
            .env_remove("AWS_PROFILE")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn cargo lambda watch");
        let give_up = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < give_up,
                "cargo lambda watch did not listen on {port} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Watch {
            port,
            child: Some(child),
            log,
        }
    }

    /// POST /2015-03-31/functions/NAME/invocations; returns the status and the JSON body.
    pub async fn invoke(&self, function: &str, payload: &Value) -> (u16, Value) {
        http_post(
            self.port,
            &format!("/2015-03-31/functions/{function}/invocations"),
            payload,
        )
        .await
    }

    /// Everything the functions (and cargo) wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The last lines of the functions' logs.
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(200)..].join("\n")
    }

    pub async fn call(&self, function: &str, payload: &Value) -> Value {
        let (status, body) = self.invoke(function, payload).await;
        assert_eq!(status, 200, "{function}: {body}");
        body
    }

    pub async fn stop(mut self) {
        let child = self.child.take().expect("running");
        let pid = child.id().expect("running").to_string();
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        let status = child.wait_with_output().await.unwrap().status;
        assert!(status.success(), "cargo lambda watch exited with {status}");
    }
}

/// POSTs JSON to 127.0.0.1:`port` over a fresh connection; returns the status and the JSON body (a string
/// when the body is not JSON).
pub async fn http_post(port: u16, path: &str, payload: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(payload).unwrap();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, json)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn real_binaries_under_cargo_lambda_watch_restore_the_real_chain() {
    let cloud = Cloud::new(test_worker_options()).await;
    let (bucket, table) = cli::real_export_setup(&cloud.aws).await;
    let watch = Watch::start(&[
        ("AWS_ENDPOINT_URL", cloud.aws.endpoint.clone()),
        ("DDB_PITR_CONTROL_TABLE", cloud.control_table.name.clone()),
        ("DDB_PITR_QUEUE_URL", cloud.queue.url.clone()),
        ("DDB_PITR_CHECKPOINT_INTERVAL", "200ms".into()),
        // cargo lambda watch sends a deadline in 1970; the worker falls back to this.
        ("DDB_PITR_FALLBACK_TIMEOUT", "60s".into()),
    ])
    .await;

    // A bad request comes back as a Lambda error with the stable error type Step Functions matches on.
    let (status, error) = watch
        .invoke("planner", &json!({"action": "plan", "exports": []}))
        .await;
    assert_eq!(status, 500, "{error}");
    assert_eq!(error["errorType"], "Fatal", "{error}");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("missing field `table`"),
        "{error}"
    );

    let id = unique_name("watch");
    let mut plan = event_fixture("planner-plan.json");
    plan["restore_id"] = json!(id);
    plan["table"] = json!(table.name);
    plan["exports"] = json!([REAL_FULL, REAL_INC1, REAL_INC2].map(|k| bucket.url(k)));
    plan["allow_gaps"] = json!(true);
    plan.as_object_mut().unwrap().remove("report_uri");
    let summary = watch.call("planner", &plan).await;
    assert_eq!(summary["exports"], 3, "{summary}");

    for k in 0..3 {
        let mut request = event_fixture("planner-plan-export.json");
        request["restore_id"] = json!(id);
        request["export_index"] = json!(k);
        let enqueued = watch.call("planner", &request).await;
        assert!(
            enqueued["messages_sent"].as_u64().unwrap() > 0,
            "{enqueued}"
        );
        let mut progress_request = event_fixture("planner-progress.json");
        progress_request["restore_id"] = json!(id);
        progress_request["export_index"] = json!(k);
        let give_up = Instant::now() + Duration::from_secs(120);
        loop {
            let progress = watch.call("planner", &progress_request).await;
            if progress["export_finished"] == true {
                assert_eq!(progress["files_failed"], 0, "{progress}");
                break;
            }
            if Instant::now() > give_up {
                panic!(
                    "export {k} not finished after 120 s: {progress}\n{}\nlogs:\n{}",
                    cloud.dump(&id, k).await,
                    watch.log_tail()
                );
            }
            // The event source mapping's part: deliver a batch to the worker function, delete what
            // did not fail.
            let messages = cloud.receive().await;
            if messages.is_empty() {
                continue;
            }
            let event = serde_json::to_value(sqs_event(&messages, &cloud.queue.arn)).unwrap();
            let response = watch.call("worker", &event).await;
            let response = serde_json::from_value(response).expect("an SQS batch response");
            cloud.delete_succeeded(&messages, &response).await;
        }
    }
    watch.stop().await;

    assert_table_matches(
        &cloud.aws.ddb,
        &table.name,
        cli::real_export().join("expected-after-chain.jsonl"),
    )
    .await;
    let header = cloud.control.header(&id).await.unwrap().unwrap();
    let puts_deletes: Vec<_> = header.exports.iter().map(|e| (e.puts, e.deletes)).collect();
    assert_eq!(puts_deletes, vec![(3, 0), (6, 0), (3, 2)]);
}
