//! The real export written by DynamoDB: FULL alone, then the whole chain (which has a real gap).

use crate::cli::{self, REAL_FULL, REAL_INC1, REAL_INC2};
use crate::support::assert_table_matches;
use crate::validate::{detail, status, validate};

#[tokio::test(flavor = "multi_thread")]
async fn full_export_alone_restores_exactly() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let run = cli::restore(&aws, &table.name, &cli::export_args(&bucket, [REAL_FULL])).await;
    run.assert_success();
    assert_table_matches(
        &aws.ddb,
        &table.name,
        cli::real_export().join("expected-after-full.jsonl"),
    )
    .await;

    let export = &run.report["exports"][0];
    assert_eq!(
        export["type"], "FULL",
        "a summary without exportType is a FULL export"
    );
    assert_eq!(export["items_put"], 3);
    assert_eq!(
        export["summary_checksum"], "mismatch",
        "the fixture's summary md5 was invalidated on purpose"
    );
    let files = export["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    assert!(
        files
            .iter()
            .all(|f| f["status"] == "done" && f["md5_verified"] == true),
        "{files:?}"
    );
    assert_eq!(run.report["totals"]["items_this_run"], 3);
}

/// stderr that is not a terminal (here a pipe, as with `2>file` or CloudWatch) gets plain lines: the log
/// is there, its colour codes are not.
#[tokio::test(flavor = "multi_thread")]
async fn stderr_that_is_not_a_terminal_has_no_colour_codes() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let run = cli::restore(&aws, &table.name, &cli::export_args(&bucket, [REAL_FULL])).await;
    run.assert_success();
    assert!(run.stderr.contains("INFO"), "no log lines: {}", run.stderr);
    assert!(
        !run.stderr.contains('\u{1b}'),
        "escape codes on a pipe: {:?}",
        run.stderr
    );
}

/// A `--resume` checkpoint in use by another run (which holds its lock file) is refused before any
/// write, naming that run; once it is free, the same command restores.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_in_use_by_another_run_is_refused_before_any_write() {
    use std::io::Write;
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("cp.json");
    let mut lock = std::fs::File::create(dir.path().join("cp.json.lock")).unwrap();
    lock.try_lock().unwrap();
    writeln!(lock, "ec2-a:4242 since 2026-12-03T10:00:00.000Z").unwrap();
    let mut args = cli::export_args(&bucket, [REAL_FULL]);
    args.extend(["--resume".into(), checkpoint.display().to_string()]);
    let run = cli::restore(&aws, &table.name, &args).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.errors()
            .contains("is in use by another run (ec2-a:4242 since"),
        "{}",
        run.errors()
    );
    assert!(table.scan().await.is_empty(), "nothing was written");
    drop(lock);
    cli::restore(&aws, &table.name, &args)
        .await
        .assert_success();
    let saved = cli::read_json(&checkpoint);
    assert!(
        saved.get("holder").is_none(),
        "released at the end: {saved}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chain_with_a_gap_is_refused_then_restored_with_allow_gaps() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let exports = cli::export_args(&bucket, [REAL_FULL, REAL_INC1, REAL_INC2]);

    let refused = cli::restore(&aws, &table.name, &exports).await;
    assert_eq!(refused.code, Some(1));
    let errors = refused.errors();
    assert!(
        errors.contains("gap of 1m 9s 378ms") && errors.contains("--allow-gaps"),
        "{errors}"
    );
    assert!(
        table.scan().await.is_empty(),
        "nothing may be written before the chain is validated"
    );

    let mut args = exports.clone();
    args.extend(["--allow-gaps".into(), "--view".into(), "NEW_AND_OLD".into()]);
    let run = cli::restore(&aws, &table.name, &args).await;
    run.assert_success();
    assert_table_matches(
        &aws.ddb,
        &table.name,
        cli::real_export().join("expected-after-chain.jsonl"),
    )
    .await;

    let gaps = run.report["chain_discontinuities"].as_array().unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0]["millis"], 69_378);
    let per_export: Vec<(u64, u64)> = run.report["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["items_put"].as_u64().unwrap(),
                e["items_deleted"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per_export, vec![(3, 0), (6, 0), (3, 2)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn type_and_view_assertions_are_checked_before_writing() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let args = cli::export_args(&bucket, [REAL_FULL, REAL_INC1]);
    // DynamoDB's names are taken beside the short ones, and every message uses DynamoDB's.
    for given in ["INCREMENTAL", "INCREMENTAL_EXPORT"] {
        let mut args = args.clone();
        args.extend(["--allow-gaps".into(), "--type".into(), given.into()]);
        let run = cli::restore(&aws, &table.name, &args).await;
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(
            run.errors().contains(
                "--type INCREMENTAL_EXPORT does not match export 01768385930622-efd1a093, whose \
                 manifest says FULL_EXPORT"
            ),
            "{}",
            run.errors()
        );
    }

    for given in ["NEW", "NEW_IMAGE"] {
        let mut args = cli::export_args(&bucket, [REAL_INC1]);
        args.extend(["--view".into(), given.into()]);
        let run = cli::restore(&aws, &table.name, &args).await;
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(
            run.errors().contains(
                "--view NEW_IMAGE does not match export 01768386924000-d339e52d, whose outputView is \
                 NEW_AND_OLD_IMAGES"
            ),
            "{}",
            run.errors()
        );
    }
    // The name validate prints for the real incrementals is accepted as it is.
    let mut args = cli::export_args(&bucket, [REAL_FULL, REAL_INC1]);
    args.extend(
        [
            "--allow-gaps",
            "--dry-run",
            "--view",
            "NEW_AND_OLD_IMAGES",
            "--type",
            "FULL_EXPORT",
            "--type",
            "INCREMENTAL_EXPORT",
        ]
        .map(String::from),
    );
    let run = cli::restore(&aws, &table.name, &args).await;
    run.assert_success();
    assert!(table.scan().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_reads_everything_and_makes_no_write_call() {
    use crate::support::RecordingProxy;
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let proxy = RecordingProxy::start(&aws.endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("cp.json");
    let mut cmd = cli::command();
    // Service-specific endpoint variables, as a user of a local emulator would set them.
    cmd.env("AWS_ENDPOINT_URL_DYNAMODB", &proxy.endpoint)
        .env("AWS_ENDPOINT_URL_S3", &aws.endpoint)
        .args([
            "restore",
            "--table",
            &table.name,
            "--dry-run",
            "--allow-gaps",
            "--manage-capacity",
            "--max-wcu",
            "100",
        ])
        .args(["--resume", checkpoint.to_str().unwrap()])
        .args(cli::export_args(&bucket, [REAL_FULL, REAL_INC1, REAL_INC2]));
    let run = cli::finish(cmd.spawn().unwrap()).await;
    run.assert_success();
    assert_eq!(run.report["dry_run"], true);
    assert_eq!(
        run.report["totals"]["items_this_run"], 14,
        "every line is decoded"
    );
    assert_eq!(run.report["totals"]["items_deleted"], 2);

    let requests = proxy.requests();
    assert!(
        requests.iter().any(|r| r.ends_with(".DescribeTable")),
        "the proxy saw DynamoDB traffic: {requests:?}"
    );
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| {
            [
                "BatchWriteItem",
                "PutItem",
                "DeleteItem",
                "UpdateItem",
                "TransactWriteItems",
                "UpdateTable",
                "CreateTable",
            ]
            .iter()
            .any(|w| r.ends_with(w))
        })
        .collect();
    assert!(writes.is_empty(), "dry run made write calls: {writes:?}");
    assert!(table.scan().await.is_empty());
    assert!(!checkpoint.exists(), "a dry run writes no checkpoint");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_table_is_reported_before_any_write() {
    let aws = cli::aws().await;
    let (bucket, _table) = cli::real_export_setup(&aws).await;
    let missing = crate::support::unique_name("missing");
    let run = cli::restore(&aws, &missing, &cli::export_args(&bucket, [REAL_FULL])).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.errors()
            .contains(&format!("table {missing}: does not exist")),
        "{}",
        run.errors()
    );
    assert!(
        run.report.get("resume_hint").is_none(),
        "nothing was written, so there is nothing to resume"
    );
    let e = run.errors();
    assert!(
        e.contains("in region us-east-1 of account 123456789012") && e.contains("--region"),
        "names the account and region, and suggests --region: {e}"
    );

    // The right name in the wrong case: a suggestion from ListTables.
    let shouted = _table.name.to_uppercase();
    let run = cli::restore(&aws, &shouted, &cli::export_args(&bucket, [REAL_FULL])).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.errors()
            .contains(&format!("Did you mean `{}`?", _table.name)),
        "{}",
        run.errors()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_standard_endpoint_variable_is_enough() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let mut cmd = cli::command();
    cmd.env("AWS_ENDPOINT_URL", &aws.endpoint)
        .args(["restore", "--table", &table.name])
        .args(cli::export_args(&bucket, [REAL_FULL]));
    let run = cli::finish(cmd.spawn().unwrap()).await;
    run.assert_success();
    assert_table_matches(
        &aws.ddb,
        &table.name,
        cli::real_export().join("expected-after-full.jsonl"),
    )
    .await;
}

/// A `--report` that cannot be written fails the run before its first write (it used to be found after
/// every item was written); a local folder takes the report as a file named by the run's start; `validate`
/// tells a missing report bucket without writing anything.
#[tokio::test(flavor = "multi_thread")]
async fn the_report_location_is_checked_before_the_first_write() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let missing = format!("s3://{}-missing/reports/", bucket.name);
    let mut args = cli::export_args(&bucket, [REAL_FULL]);
    args.extend(["--report".into(), missing.clone()]);
    let run = cli::restore(&aws, &table.name, &args).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.errors().contains("cannot be written") && run.errors().contains("nothing was restored"),
        "{}",
        run.errors()
    );
    assert!(
        table.scan().await.is_empty(),
        "no write before the report's place is held"
    );

    let folder = tempfile::tempdir().unwrap();
    let mut args = cli::export_args(&bucket, [REAL_FULL]);
    args.extend(["--report".into(), format!("{}/", folder.path().display())]);
    let run = cli::restore(&aws, &table.name, &args).await;
    run.assert_success();
    let files: Vec<_> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("ddb-pitr-report-") && name.ends_with(".json"),
        "{name}"
    );
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(
        kept, run.report,
        "the file holds the report printed on stdout"
    );
    assert!(
        run.stderr
            .contains(&format!("report on stdout and at {}", files[0].display()))
    );

    let mut args = cli::export_args(&bucket, [REAL_FULL]);
    args.extend(["--report".into(), missing.clone()]);
    let run = validate(&aws, &table.name, &args).await;
    assert_eq!(status(&run, "report location"), "fail", "{}", run.report);
    assert!(
        detail(&run, "report location").contains("does not exist"),
        "{}",
        run.report
    );
}

/// Restore FULL + INC1 today, then add INC2 tomorrow with the same `--resume`: the finished exports are
/// skipped and the new one applied. Any other change to the chain is refused, naming the first export
/// that differs, before any write.
#[tokio::test(flavor = "multi_thread")]
async fn a_finished_checkpoint_takes_the_next_incremental_export() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let state = tempfile::tempdir().unwrap();
    let resume = [
        "--resume".to_string(),
        state.path().join("cp.json").display().to_string(),
    ];
    let run = |exports: &[&str]| {
        let mut args = cli::export_args(&bucket, exports.iter().copied());
        args.extend(resume.clone());
        args.push("--allow-gaps".into());
        args
    };
    cli::restore(&aws, &table.name, &run(&[REAL_FULL, REAL_INC1]))
        .await
        .assert_success();

    let extended = cli::restore(&aws, &table.name, &run(&[REAL_FULL, REAL_INC1, REAL_INC2])).await;
    extended.assert_success();
    assert_table_matches(
        &aws.ddb,
        &table.name,
        cli::real_export().join("expected-after-chain.jsonl"),
    )
    .await;
    assert_eq!(
        extended.report["totals"]["items_this_run"], 5,
        "only INC2's 3 puts and 2 deletes are written: {}",
        extended.report["totals"]
    );
    assert!(extended.stderr.contains("1 added"), "{}", extended.stderr);

    // Another chain: the FULL and INC2 without INC1.
    let other = cli::restore(&aws, &table.name, &run(&[REAL_FULL, REAL_INC2])).await;
    assert_eq!(other.code, Some(1));
    let e = other.errors();
    assert!(
        e.contains("export 2 of its chain is 01768386924000-d339e52d, but this run's is 01768388186000-4a2fc3ff"),
        "{e}"
    );
    assert!(!e.contains("arn:aws:dynamodb"), "short, by export id: {e}");
    // A shorter chain.
    let shorter = cli::restore(&aws, &table.name, &run(&[REAL_FULL])).await;
    assert_eq!(shorter.code, Some(1));
    assert!(
        shorter
            .errors()
            .contains("its chain has 3 exports and this run's only 1"),
        "{}",
        shorter.errors()
    );
}

/// No credentials anywhere: one line that says where they were looked for and what to do, not the SDK's
/// thousand characters, and no retries.
#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_are_said_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddb-pitr"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_PROFILE", "oncall")
        .args([
            "restore",
            "--table",
            "orders",
            "--export",
            "s3://b/AWSDynamoDB/01768385930622-efd1a093/",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    for needle in [
        "no AWS credentials were found",
        "profile `oncall`",
        "aws sso login --profile",
        "AWS_PROFILE",
    ] {
        assert!(error.contains(needle), "{needle:?} in {error}");
    }
    assert!(
        error.len() < 600,
        "one readable line: {} chars: {error}",
        error.len()
    );
    assert!(
        !stderr.contains("DispatchFailure"),
        "no SDK internals: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["errors"][0]["error_type"], "Fatal",
        "not retryable: {report}"
    );
}

/// A region that is not one is refused at once, instead of after every call's retries; a new region is
/// accepted with --allow-unknown-region.
#[tokio::test(flavor = "multi_thread")]
async fn a_region_that_is_not_one_is_refused_at_once() {
    let aws = cli::aws().await;
    let started = std::time::Instant::now();
    let out = cli::command()
        .args([
            "restore",
            "--table",
            "orders",
            "--region",
            "us-east1",
            "--endpoint-url",
            &aws.endpoint,
        ])
        .args(["--export", "s3://b/AWSDynamoDB/01768385930622-efd1a093/"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "bad usage");
    assert!(out.stdout.is_empty(), "no report for bad usage");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`us-east1` is not an AWS region")
            && stderr.contains("--allow-unknown-region"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "at once"
    );

    // Accepted, the region reaches the service (moto, which knows no such region, answers 500).
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let mut args = cli::export_args(&bucket, [REAL_FULL]);
    args.extend(
        [
            "--region",
            "xx-new-1",
            "--allow-unknown-region",
            "--max-attempts",
            "1",
        ]
        .map(String::from),
    );
    let run = cli::restore(&aws, &table.name, &args).await;
    assert!(
        !run.stderr.contains("is not an AWS region"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("DescribeTable"),
        "the calls are made: {}",
        run.stderr
    );
}

/// `--export` given a folder above the exports lists what it holds and what to give instead; a malformed
/// URI is bad usage (exit 2, nothing on stdout), before any call.
#[tokio::test(flavor = "multi_thread")]
async fn an_export_folder_lists_its_exports_and_a_malformed_uri_is_bad_usage() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    for folder in [bucket.url("AWSDynamoDB/"), bucket.url("")] {
        let run = cli::command()
            .args([
                "restore",
                "--table",
                &table.name,
                "--endpoint-url",
                &aws.endpoint,
            ])
            .args(["--export", &folder])
            .output()
            .await
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{folder}");
        assert!(run.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&run.stderr);
        for needle in [
            "is a folder of 3 exports, not one export",
            "01768385930622-efd1a093 (FULL_EXPORT of",
            "01768386924000-d339e52d (INCREMENTAL_EXPORT of",
            "--export-prefix",
        ] {
            assert!(stderr.contains(needle), "{needle:?} in {stderr}");
        }
    }
    let run = cli::command()
        .args([
            "restore",
            "--table",
            &table.name,
            "--endpoint-url",
            &aws.endpoint,
        ])
        .args(["--export", "https://example.com/export"])
        .output()
        .await
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stdout.is_empty());
    assert!(String::from_utf8_lossy(&run.stderr).contains("is not an s3:// URI"));
}

/// `--log-format json` makes every stderr line JSON, the final error and closing line included, and
/// `validate` prints no text table with it; `-q` leaves a successful run's stderr empty.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_quiet_and_verbose_cover_every_line() {
    let aws = cli::aws().await;
    let (bucket, table) = cli::real_export_setup(&aws).await;
    let missing = crate::support::unique_name("missing");
    let mut args = cli::export_args(&bucket, [REAL_FULL]);
    args.extend(["--log-format".into(), "json".into()]);
    let run = cli::restore(&aws, &missing, &args).await;
    assert_eq!(run.code, Some(1));
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("error: ") && m.contains("does not exist")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("restore failed: ")),
        "{messages:?}"
    );

    let out = cli::command()
        .args([
            "validate",
            "--table",
            &table.name,
            "--endpoint-url",
            &aws.endpoint,
        ])
        .args(cli::export_args(&bucket, [REAL_FULL]))
        .args(["--log-format", "json"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("STATUS  CHECK"), "no text table: {stderr}");
    for l in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();

    // RUST_LOG, which the tests set, would decide instead of -q and -v.
    let without_rust_log = |table: &str, flag: &str| {
        let mut cmd = cli::command();
        cmd.env_remove("RUST_LOG")
            .args([
                "restore",
                "--table",
                table,
                "--endpoint-url",
                &aws.endpoint,
                flag,
            ])
            .args(cli::export_args(&bucket, [REAL_FULL]));
        cmd.spawn().unwrap()
    };
    let run = cli::finish(without_rust_log(&table.name, "-q")).await;
    run.assert_success();
    let kept: Vec<&str> = run
        .stderr
        .lines()
        // moto's export summary does not match its .md5 (a known warning of the real fixture).
        .filter(|l| !l.contains("manifest-summary.md5"))
        .collect();
    assert!(kept.is_empty(), "-q: {kept:?}");

    let other = crate::support::TestTable::create(
        &aws.ddb,
        "verbose",
        ("pk", aws_sdk_dynamodb::types::ScalarAttributeType::S),
        Some(("sk", aws_sdk_dynamodb::types::ScalarAttributeType::S)),
    )
    .await;
    // -vv: everyone's debug lines (the SDK's among them).
    let run = cli::finish(without_rust_log(&other.name, "-vv")).await;
    run.assert_success();
    assert!(run.stderr.contains("DEBUG"), "{}", run.stderr);
}
