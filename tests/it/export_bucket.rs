//! Exports in a central backup bucket of another account and region, read with their own settings
//! (`--s3-region`, `--s3-role-arn`, `--s3-endpoint-url`), and the policy that principal needs, printed apart
//! from the table's.
//!
//! moto serves every account's buckets to any credentials, so the test tells who read the exports from
//! the signatures: the S3 side goes through a recording proxy that keeps each request's SigV4 credential
//! scope (access key, region, service).

use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use ddb_pitr_synth::{self as synth, IncrementalSpec, SynthSpec};
use serde_json::Value;

use crate::cli;
use crate::support::{self, RecordingProxy, TestBucket, TestTable, assert_table_matches};
use crate::validate::{self, validate};

const BACKUP_ROLE: &str = "arn:aws:iam::222222222222:role/backup-reader";
const BACKUP_REGION: &str = "eu-west-2";

/// An S3 client of the backup account in its region, with the role's credentials from moto's STS.
async fn backup_account_s3(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = support::sdk_config(endpoint).await;
    let creds = aws_sdk_sts::Client::new(&conf)
        .assume_role()
        .role_arn(BACKUP_ROLE)
        .role_session_name("test-setup")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let conf = conf
        .into_builder()
        .region(aws_config::Region::new(BACKUP_REGION))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new(
                creds.access_key_id(),
                creds.secret_access_key(),
                Some(creds.session_token().to_owned()),
                None,
                "backup-account",
            ),
        ))
        .build();
    support::s3_client(&conf)
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_in_another_account_and_region_are_read_with_their_own_credentials() {
    let aws = cli::aws().await;
    let backup = backup_account_s3(&aws.endpoint).await;
    let bucket = TestBucket::create_in(&backup, "central-backups", BACKUP_REGION).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        seed: 21,
        table: "orders".into(),
        prefix: Some("prod".into()),
        full_items: 40,
        full_files: 2,
        incrementals: vec![IncrementalSpec {
            files: 1,
            inserts: 5,
            updates: 5,
            deletes: 2,
            big_inserts: 0,
        }],
        big_items: 0,
        start_time: UNIX_EPOCH + Duration::from_millis(1_768_385_930_622),
        write_expected: true,
        ..SynthSpec::default()
    };
    let out = synth::generate(dir.path(), &spec).unwrap();
    bucket.upload_dir(dir.path(), "").await;
    // The S3 side goes through a recording proxy: which credentials and region signed each read.
    let proxy = RecordingProxy::start(&aws.endpoint).await;
    let prefix = bucket.url("prod/");
    let s3_side = [
        "--s3-region",
        BACKUP_REGION,
        "--s3-role-arn",
        BACKUP_ROLE,
        "--s3-endpoint-url",
        &proxy.endpoint,
    ];

    let table = TestTable::create(&aws.ddb, "xacct", ("pk", T::S), Some(("sk", T::S))).await;
    let args = |extra: &[&str]| -> Vec<String> {
        ["--export-prefix", prefix.as_str(), "--to", "latest"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let run = cli::restore(&aws, &table.name, &args(&s3_side)).await;
    run.assert_success();
    assert_table_matches(&aws.ddb, &table.name, &out.expected[1]).await;

    let signed = proxy.signed();
    let (sts, s3): (Vec<_>, Vec<_>) = signed
        .iter()
        .partition(|(_, scope)| scope.contains("/sts/"));
    assert!(
        !sts.is_empty(),
        "the role is assumed on the S3 side: {signed:?}"
    );
    assert!(
        sts.iter().all(|(_, scope)| scope.starts_with("testing/")),
        "the role is assumed with the default chain's credentials: {sts:?}"
    );
    assert!(
        s3.len() >= 6,
        "summaries, manifests and data files are read through the S3 side: {signed:?}"
    );
    for (request, scope) in &s3 {
        assert!(
            scope.contains(&format!("/{BACKUP_REGION}/s3/")),
            "{request} signed for {scope}, not the bucket's region"
        );
        assert!(
            !scope.starts_with("testing/"),
            "{request} signed with the table side's credentials ({scope})"
        );
    }

    // validate names both principals and checks the export reader's reads as that reader.
    let run = validate(&aws, &table.name, &args(&s3_side)).await;
    let findings = &run.report;
    let row = |name: &str| validate::row(&run, name);
    assert_eq!(row("export reader")["status"], "pass", "{findings}");
    let reader = row("export reader")["detail"].as_str().unwrap().to_owned();
    assert!(
        reader.contains("222222222222") && reader.contains("backup-reader"),
        "{reader}"
    );
    assert!(
        !row("credentials")["detail"]
            .as_str()
            .unwrap()
            .contains("222222222222")
    );
    assert_eq!(row("chain found")["status"], "pass", "{findings}");

    // The policy for that principal is printed apart from the table's.
    let output = cli::command()
        .args([
            "policy",
            "--table",
            &format!(
                "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
                table.name
            ),
            "--export-prefix",
            &prefix,
            "--s3-role-arn",
            BACKUP_ROLE,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let policy: Value = serde_json::from_slice(&output.stdout).unwrap();
    let actions = |doc: &Value, resource: &str| -> Vec<String> {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["Resource"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r.as_str() == Some(resource))
            })
            .flat_map(|s| s["Action"].as_array().unwrap().clone())
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    };
    let objects = format!("arn:aws:s3:::{}/prod/AWSDynamoDB/*", bucket.name);
    let bucket_arn = format!("arn:aws:s3:::{}", bucket.name);
    assert_eq!(actions(&policy["exports"], &objects), ["s3:GetObject"]);
    assert_eq!(actions(&policy["exports"], &bucket_arn), ["s3:ListBucket"]);
    let listing = policy["exports"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"][0] == "s3:ListBucket")
        .unwrap();
    assert_eq!(
        listing["Condition"]["StringLike"]["s3:prefix"],
        serde_json::json!(["prod/AWSDynamoDB/*"])
    );
    assert!(actions(&policy["table"], &objects).is_empty());
    assert!(actions(&policy["table"], &bucket_arn).is_empty());
    let table_arn = format!(
        "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
        table.name
    );
    assert!(actions(&policy["table"], &table_arn).contains(&"dynamodb:BatchWriteItem".to_owned()));
    assert!(actions(&policy["exports"], &table_arn).is_empty());
}
