//! Every kind of bad input fails with an error naming the export, the file, the line and the byte offset
//! (where there is a line), exits non-zero, and never records unwritten lines as done.

use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use ddb_pitr_synth::{self as synth, ExportKind, RawExport, RawFile};

use crate::cli::{self, Run};
use crate::support::{TestBucket, TestTable};

const TABLE_ARN: &str = "arn:aws:dynamodb:eu-north-1:123456789012:table/src";

fn good(i: usize) -> String {
    format!(r#"{{"Item":{{"pk":{{"S":"p{i}"}},"sk":{{"S":"s{i}"}},"v":{{"N":"{i}"}}}}}}"#)
}

fn full_export(files: Vec<RawFile>) -> RawExport {
    let mut export = RawExport::new(
        "01768385930622-0badf00d",
        ExportKind::Full {
            export_time: UNIX_EPOCH + Duration::from_millis(1_768_385_930_622),
        },
        TABLE_ARN,
    );
    export.files = files;
    export
}

/// A file of `n` good lines with `bad` as line `at` (1-based); returns it with the byte offset of that line.
fn file_with_bad_line(n: usize, at: usize, bad: &str) -> (RawFile, u64) {
    let lines: Vec<String> = (1..=n)
        .map(|i| if i == at { bad.to_owned() } else { good(i) })
        .collect();
    let offset = lines[..at - 1].iter().map(|l| l.len() as u64 + 1).sum();
    (RawFile::lines(lines), offset)
}

struct Case {
    _dir: tempfile::TempDir,
    bucket: TestBucket,
    table: TestTable,
    exports: Vec<synth::SynthExport>,
    checkpoint: std::path::PathBuf,
}

async fn setup(aws: &cli::Aws, exports: &[RawExport]) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bucket");
    let written = exports
        .iter()
        .map(|e| synth::write_raw_export(&data, e).unwrap())
        .collect();
    let bucket = TestBucket::create(&aws.s3, "bad").await;
    bucket.upload_dir(&data, "").await;
    let table = TestTable::create(&aws.ddb, "bad", ("pk", T::S), Some(("sk", T::S))).await;
    let checkpoint = dir.path().join("checkpoint.json");
    Case {
        _dir: dir,
        bucket,
        table,
        exports: written,
        checkpoint,
    }
}

impl Case {
    async fn restore(&self, aws: &cli::Aws, extra: &[&str]) -> Run {
        let mut args = cli::export_args(
            &self.bucket,
            self.exports.iter().map(|e| e.summary_key.as_str()),
        );
        args.extend([
            "--resume".to_string(),
            self.checkpoint.display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let run = cli::restore(aws, &self.table.name, &args).await;
        assert_eq!(run.code, Some(1), "bad input must fail: {:?}", run.report);
        assert_eq!(run.report["status"], "failed");
        run
    }

    fn data_file(&self) -> &str {
        &self.exports[0].files[0].key
    }

    /// The checkpoint must not claim the failing file, nor any line at or after `offset`.
    fn assert_not_done_past(&self, offset: u64) {
        if !self.checkpoint.exists() {
            return;
        }
        let cp = cli::read_json(&self.checkpoint);
        let export = &cp["exports"][0];
        assert_eq!(export["done"], false, "{cp}");
        if let Some(file) = export["files"].get(self.data_file()) {
            assert_eq!(file["done"], false, "{cp}");
            assert!(
                file["offset"].as_u64().unwrap() <= offset,
                "checkpoint past the bad line: {cp}"
            );
        }
    }
}

/// Asserts the error names the export, the file, the line and the byte offset.
fn assert_located(run: &Run, case: &Case, line: u64, offset: u64, what: &str) {
    let errors = run.errors();
    let want = format!(
        "export {}, file {}, line {line} (byte offset {offset})",
        case.exports[0].export_id,
        case.data_file()
    );
    assert!(errors.contains(&want), "expected {want:?} in:\n{errors}");
    assert!(errors.contains(what), "expected {what:?} in:\n{errors}");
    assert!(
        run.stderr.contains(&want),
        "the error is also on stderr:\n{}",
        run.stderr
    );
}

async fn bad_line_case(bad: &str, what: &str) {
    let aws = cli::aws().await;
    // Line 40 of 50: past the pre-flight sample, so the error comes from the restore itself.
    let (file, offset) = file_with_bad_line(50, 40, bad);
    let case = setup(&aws, &[full_export(vec![file])]).await;
    let run = case
        .restore(&aws, &["--sample-lines", "5", "--batch-size", "10"])
        .await;
    assert_located(&run, &case, 40, offset, what);
    case.assert_not_done_past(offset);
    assert_eq!(run.report["exports"][0]["files"][0]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json() {
    bad_line_case(
        r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"}"#,
        "EOF while parsing",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_type_descriptor() {
    bad_line_case(
        r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"},"v":{"DATE":"2026"}}}"#,
        "unknown type descriptor \"DATE\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_base64() {
    bad_line_case(
        r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"},"v":{"B":"not base64!"}}}"#,
        "bad base64",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_schema_mismatch_inside_a_file() {
    bad_line_case(
        r#"{"Item":{"pk":{"S":"x"},"sk":{"N":"1"}}}"#,
        "key attribute \"sk\" is of type N",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_schema_mismatch_is_caught_before_any_write() {
    let aws = cli::aws().await;
    let (file, offset) = file_with_bad_line(30, 3, r#"{"Item":{"id":{"S":"x"},"v":{"N":"1"}}}"#);
    let case = setup(&aws, &[full_export(vec![file])]).await;
    let run = case.restore(&aws, &[]).await;
    assert_located(&run, &case, 3, offset, "no key attribute \"pk\"");
    assert!(
        run.errors().contains("does not fit this table"),
        "{}",
        run.errors()
    );
    assert!(
        case.table.scan().await.is_empty(),
        "the sample check runs before the first write"
    );
    assert_eq!(run.report["writes"]["batch_write_requests"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_gzip() {
    let aws = cli::aws().await;
    let lines: Vec<String> = (1..=400).map(good).collect();
    let gz = synth::gzip(lines.join("\n").as_bytes());
    let mut file = RawFile::gz(gz[..gz.len() / 2].to_vec());
    file.item_count = Some(400);
    let case = setup(&aws, &[full_export(vec![file])]).await;
    let run = case.restore(&aws, &[]).await;
    let errors = run.errors();
    assert!(
        errors.contains("gzip stream is corrupt or truncated"),
        "{errors}"
    );
    let prefix = format!(
        "export {}, file {}, line ",
        case.exports[0].export_id,
        case.data_file()
    );
    assert!(
        errors.contains(&prefix) && errors.contains("(byte offset "),
        "{errors}"
    );
    case.assert_not_done_past(u64::MAX);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_data_file() {
    let aws = cli::aws().await;
    let case = setup(
        &aws,
        &[full_export(vec![
            RawFile::lines((1..=5).map(good)),
            RawFile::lines((6..=9).map(good)),
        ])],
    )
    .await;
    let missing = case.exports[0].files[1].key.clone();
    case.bucket.delete(&missing).await;
    let run = case.restore(&aws, &[]).await;
    let errors = run.errors();
    assert!(
        errors.contains(&missing) && errors.contains("does not exist"),
        "{errors}"
    );
    assert!(errors.contains(&case.exports[0].export_id), "{errors}");
}

#[tokio::test(flavor = "multi_thread")]
async fn data_file_md5_mismatch() {
    let aws = cli::aws().await;
    let mut file = RawFile::lines((1..=5).map(good));
    file.md5 = Some(synth::md5_base64(b"something else"));
    let case = setup(&aws, &[full_export(vec![file])]).await;
    let run = case.restore(&aws, &[]).await;
    let errors = run.errors();
    assert!(
        errors.contains("MD5 mismatch") && errors.contains(case.data_file()),
        "{errors}"
    );
    case.assert_not_done_past(u64::MAX);
}

#[tokio::test(flavor = "multi_thread")]
async fn data_file_item_count_mismatch() {
    let aws = cli::aws().await;
    let mut file = RawFile::lines((1..=5).map(good));
    file.item_count = Some(6);
    let case = setup(&aws, &[full_export(vec![file])]).await;
    let run = case.restore(&aws, &[]).await;
    let errors = run.errors();
    assert!(
        errors.contains("the file has 5 items but manifest-files.json says itemCount 6"),
        "{errors}"
    );
    assert!(errors.contains(case.data_file()), "{errors}");
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_problems_fail_before_any_write() {
    let aws = cli::aws().await;
    let mut corrupt_files_md5 = full_export(vec![RawFile::lines((1..=5).map(good))]);
    corrupt_files_md5.corrupt_files_md5 = true;
    let mut wrong_summary_count = full_export(vec![RawFile::lines((1..=5).map(good))]);
    wrong_summary_count.summary_item_count = Some(4);
    let mut ion = full_export(vec![RawFile::lines((1..=5).map(good))]);
    ion.output_format = "ION".into();
    for (export, want) in [
        (
            corrupt_files_md5,
            "manifest-files.json does not match manifest-files.md5",
        ),
        (
            wrong_summary_count,
            "manifest-summary.json says itemCount 4 but manifest-files.json lists 5 items",
        ),
        (ion, "outputFormat ION is not supported yet"),
    ] {
        let case = setup(&aws, &[export]).await;
        let run = case.restore(&aws, &[]).await;
        let errors = run.errors();
        assert!(errors.contains(want), "expected {want:?} in {errors}");
        assert!(errors.contains(&case.exports[0].export_id), "{errors}");
        assert!(case.table.scan().await.is_empty());
    }
}
