//! The binary as scripts use it: a free port, announced as one JSON line on stdout.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::client;

#[tokio::test]
async fn the_binary_prints_its_endpoint_and_serves_it() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddb-bench-endpoint"))
        .args([
            "--table",
            "bin_t:pk:S:sk:N",
            "--wcu",
            "77",
            "--threads",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .next_line()
        .await
        .unwrap()
        .expect("a first stdout line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    let url = v["endpoint"].as_str().expect("endpoint").to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );

    let described = client(&url)
        .await
        .describe_table()
        .table_name("bin_t")
        .send()
        .await
        .unwrap();
    let t = described.table().unwrap();
    assert_eq!(
        t.provisioned_throughput().unwrap().write_capacity_units(),
        Some(77)
    );
    assert_eq!(t.key_schema().len(), 2);
    // Nothing else is printed on stdout.
    child.kill().await.unwrap();
    assert_eq!(lines.next_line().await.unwrap(), None);
}

#[tokio::test]
async fn bad_flags_are_refused_with_a_reason() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddb-bench-endpoint"))
        .args(["--table", "bad:pk:X"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("use S, N or B"), "{stderr}");
}
