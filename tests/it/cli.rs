//! Running the `ddb-pitr` binary the way a user does, and reading what it prints.

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::support::{self, TestBucket, TestTable};

pub struct Aws {
    pub endpoint: String,
    pub s3: aws_sdk_s3::Client,
    pub ddb: aws_sdk_dynamodb::Client,
}

pub async fn aws() -> Aws {
    aws_at(&support::moto().endpoint).await
}

/// Clients for the moto server at `endpoint`.
pub async fn aws_at(endpoint: &str) -> Aws {
    let conf = support::sdk_config(endpoint).await;
    Aws {
        endpoint: endpoint.to_owned(),
        s3: support::s3_client(&conf),
        ddb: support::ddb_client(&conf),
    }
}

/// Variables that could point the binary at a real account, removed from its environment.
pub const UNSET: [&str; 5] = [
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_SESSION_TOKEN",
];

/// Test credentials and settings the binary runs with.
pub const ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("RUST_LOG", "info"),
];

/// The binary with test credentials and nothing inherited that could point it at a real account.
pub fn command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddb-pitr"));
    for var in UNSET {
        cmd.env_remove(var);
    }
    cmd.envs(ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub report: Value,
    pub stderr: String,
}

impl Run {
    /// Every error message of the report, joined.
    pub fn errors(&self) -> String {
        self.report["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["message"].as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    pub fn assert_success(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "restore failed: {}\nstderr:\n{}",
            self.errors(),
            self.stderr
        );
        assert_eq!(self.report["status"], "succeeded");
    }
}

pub async fn finish(child: tokio::process::Child) -> Run {
    let out = child.wait_with_output().await.expect("ddb-pitr ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("stdout is not a JSON report ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    Run {
        code: out.status.code(),
        report,
        stderr,
    }
}

/// `ddb-pitr restore --table T --endpoint-url moto <args…>`, to completion.
pub async fn restore(aws: &Aws, table: &str, args: &[String]) -> Run {
    finish(spawn_restore(aws, table, args)).await
}

pub fn spawn_restore(aws: &Aws, table: &str, args: &[String]) -> tokio::process::Child {
    command()
        .args(["restore", "--table", table, "--endpoint-url", &aws.endpoint])
        .args(args)
        .spawn()
        .expect("spawn ddb-pitr")
}

/// `--export s3://bucket/<summary key>` for each summary key.
pub fn export_args<'a>(
    bucket: &TestBucket,
    summary_keys: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    summary_keys
        .into_iter()
        .flat_map(|k| ["--export".to_string(), format!("s3://{}/{k}", bucket.name)])
        .collect()
}

/// The real export DynamoDB wrote (shared with the other projects of this workspace).
pub fn real_export() -> std::path::PathBuf {
    let shared = support::repo_root().join("../shared/fixtures/aws-real-export");
    assert!(
        shared.join("README.md").exists(),
        "{} is missing: the shared fixtures must sit beside the repository",
        shared.display()
    );
    shared
}

pub const REAL_FULL: &str = "AWSDynamoDB/01768385930622-efd1a093/manifest-summary.json";
pub const REAL_INC1: &str = "AWSDynamoDB/01768386924000-d339e52d/";
pub const REAL_INC2: &str = "AWSDynamoDB/01768388186000-4a2fc3ff/";

/// A bucket holding the real export and an empty table with its key schema (pk S, sk S).
pub async fn real_export_setup(aws: &Aws) -> (TestBucket, TestTable) {
    use aws_sdk_dynamodb::types::ScalarAttributeType as T;
    let bucket = TestBucket::create(&aws.s3, "real").await;
    bucket.upload_dir(&real_export(), "").await;
    let table = TestTable::create(&aws.ddb, "real", ("pk", T::S), Some(("sk", T::S))).await;
    (bucket, table)
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("valid json")
}
