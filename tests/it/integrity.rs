//! A data file whose object is not the one DynamoDB wrote, on the real export's chain: what is written from
//! it, what the checkpoint keeps, and the way back that docs/integrity.md gives (replace the object, run
//! again with the same `--resume`), after which the table is exact.
//!
//! The victim is the first incremental's second data file with items: pre-flight reads (and so verifies) the
//! first one of each export whole, as its sample, before any write.

use std::io::Read;

use serde_json::Value;

use crate::cli::{self, REAL_FULL, REAL_INC1, REAL_INC2};
use crate::support::{TestBucket, TestTable, assert_table_matches};

/// Three inserts of the first incremental export (keys 3/1, 3/2 and 3/3).
const DATA: &str = "AWSDynamoDB/data/z2grmkfehu6e5phyeuxxtu6xve.json.gz";
const INC1: usize = 1;

fn real_bytes() -> Vec<u8> {
    std::fs::read(cli::real_export().join(DATA)).unwrap()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The file's three records with every `string` value changed, and `extra` more lines.
fn wrong_object(extra: &[&str]) -> Vec<u8> {
    let text = gunzip(&real_bytes());
    let mut text = text.replace(r#""string":{"S":"test"}"#, r#""string":{"S":"WRONG"}"#);
    assert_eq!(text.matches("WRONG").count(), 3);
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    ddb_pitr_synth::gzip(text.as_bytes())
}

const EXTRA: &str = r#"{"Metadata":{"WriteTimestampMicros":{"N":"1768386364054999"}},"Keys":{"pk":{"S":"9"},"sk":{"S":"9"}},"NewImage":{"pk":{"S":"9"},"sk":{"S":"9"},"string":{"S":"only in the wrong object"}}}"#;

struct Case {
    aws: cli::Aws,
    bucket: TestBucket,
    table: TestTable,
    _dir: tempfile::TempDir,
    checkpoint: std::path::PathBuf,
}

impl Case {
    async fn new() -> Case {
        let aws = cli::aws().await;
        let (bucket, table) = cli::real_export_setup(&aws).await;
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().join("cp.json");
        Case {
            aws,
            bucket,
            table,
            _dir: dir,
            checkpoint,
        }
    }

    async fn restore(&self, extra: &[&str]) -> cli::Run {
        let mut args = cli::export_args(&self.bucket, [REAL_FULL, REAL_INC1, REAL_INC2]);
        args.extend([
            "--allow-gaps".into(),
            "--resume".into(),
            self.checkpoint.display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        cli::restore(&self.aws, &self.table.name, &args).await
    }

    fn checkpoint_file(&self) -> Option<Value> {
        let cp = cli::read_json(&self.checkpoint);
        cp["exports"][INC1]["files"].get(DATA).cloned()
    }

    /// `string` values in the table, by `pk/sk`.
    async fn values(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .table
            .scan()
            .await
            .iter()
            .map(|item| {
                let key = format!(
                    "{}/{}",
                    item["pk"].as_s().unwrap(),
                    item["sk"].as_s().unwrap()
                );
                let test = item
                    .get("string")
                    .map_or(String::new(), |v| v.as_s().unwrap().clone());
                (key, test)
            })
            .collect();
        out.sort();
        out
    }

    async fn assert_exact(&self) {
        assert_table_matches(
            &self.aws.ddb,
            &self.table.name,
            cli::real_export().join("expected-after-chain.jsonl"),
        )
        .await;
    }
}

/// DynamoDB uploads each data file as one part of a multipart upload, and manifest-files.json lists the ETag
/// S3 gave it; an object uploaded the same way has it, and a plain copy does not.
#[tokio::test(flavor = "multi_thread")]
async fn the_manifest_lists_the_etag_of_the_object_dynamodb_uploaded() {
    let case = Case::new().await;
    let manifest = std::fs::read_to_string(
        cli::real_export().join("AWSDynamoDB/01768386924000-d339e52d/manifest-files.json"),
    )
    .unwrap();
    let entry: Value = manifest
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["dataFileS3Key"] == DATA)
        .unwrap();
    assert_eq!(
        case.bucket.etag(DATA).await,
        entry["etag"].as_str().unwrap()
    );
    assert_eq!(
        ddb_pitr_synth::one_part_etag(&real_bytes()),
        entry["etag"].as_str().unwrap()
    );
    case.bucket.put(DATA, real_bytes()).await;
    assert_ne!(
        case.bucket.etag(DATA).await,
        entry["etag"].as_str().unwrap()
    );
}

/// By default an object without DynamoDB's ETag is MD5-checked before its first write: a wrong one is
/// refused with nothing written from it, and once it is replaced the same command makes the table exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_object_is_refused_before_any_write_and_the_resume_after_replacing_it_is_exact() {
    let case = Case::new().await;
    case.bucket.put(DATA, wrong_object(&[EXTRA])).await;

    let run = case.restore(&[]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let errors = run.errors();
    assert!(
        errors.contains(DATA) && errors.contains("MD5 mismatch, found before any write"),
        "{errors}"
    );
    let values = case.values().await;
    assert!(
        values
            .iter()
            .all(|(key, test)| key != "9/9" && !test.contains("WRONG")),
        "written from the wrong object: {values:?}"
    );
    assert_eq!(case.checkpoint_file(), None, "the file starts from line 1");

    // What docs/integrity.md says to do: put the right object back (here a copy, with a new ETag), then run
    // the same command again.
    case.bucket.put(DATA, real_bytes()).await;
    let run = case.restore(&[]).await;
    run.assert_success();
    case.assert_exact().await;
    let file = &run.report["exports"][INC1]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == DATA)
        .unwrap()
        .clone();
    assert_eq!(file["status"], "done", "{file}");
    assert_eq!(file["resumed_from_offset"], 0, "{file}");
}

/// With `--copied-objects verify-while-writing` a wrong object's lines are written before its MD5 fails (all
/// but its last batch); the
/// checkpoint then sends the file back to line 1, so that the resume after replacing the object rewrites
/// every key (it used to resume at the failed file's watermark, keeping the wrong values).
#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_fails_its_md5_after_writing_starts_again_from_line_one() {
    let case = Case::new().await;
    case.bucket.put(DATA, wrong_object(&[])).await;

    // Batches of one: the lines before the last are written before the end of the object is read (the last
    // batch waits for the check).
    let run = case
        .restore(&[
            "--copied-objects",
            "verify-while-writing",
            "--batch-size",
            "1",
        ])
        .await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let errors = run.errors();
    assert!(
        errors.contains("MD5 mismatch")
            && errors.contains("2 lines of this object were written before the check failed"),
        "{errors}"
    );
    let values = case.values().await;
    assert!(
        values.iter().any(|(_, test)| test.contains("WRONG")),
        "the wrong object's lines were written first: {values:?}"
    );
    assert_eq!(case.checkpoint_file(), None, "the file starts from line 1");
    // This run's count includes the lines written from the wrong object, whose position was dropped.
    let totals = &run.report["totals"];
    assert_eq!(
        totals["items_this_run"].as_u64().unwrap(),
        totals["items_put"].as_u64().unwrap() + totals["items_deleted"].as_u64().unwrap(),
        "{totals}"
    );

    case.bucket.put(DATA, real_bytes()).await;
    case.restore(&[]).await.assert_success();
    case.assert_exact().await;
}

/// A checkpoint's position belongs to the object it was read from: a resume restarts a file whose object
/// has another ETag since, and trusts the position while it has the same one.
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_restarts_a_file_whose_object_changed() {
    let case = Case::new().await;
    case.restore(&[]).await.assert_success();
    let recorded = case
        .checkpoint_file()
        .expect("the file is in the checkpoint");
    assert_eq!(recorded["etag"], case.bucket.etag(DATA).await.as_str());
    assert!(recorded["offset"].as_u64().unwrap() > 0);

    // As if the run had stopped after the file's last acknowledged batch (its position is at its end),
    // before the export after it.
    let unfinish = |cp: &mut Value| {
        cp["exports"][INC1]["done"] = false.into();
        cp["exports"][INC1]["files"][DATA]["done"] = false.into();
        cp["exports"][INC1 + 1]["done"] = false.into();
        cp["exports"][INC1 + 1]["files"] = serde_json::json!({});
    };
    let rewrite = |unfinish: &dyn Fn(&mut Value)| {
        let mut cp = cli::read_json(&case.checkpoint);
        unfinish(&mut cp);
        std::fs::write(&case.checkpoint, cp.to_string()).unwrap();
    };
    let resumed = |run: &cli::Run| {
        run.assert_success();
        run.report["exports"][INC1]["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == DATA)
            .unwrap()["resumed_from_offset"]
            .clone()
    };
    rewrite(&unfinish);
    let run = case.restore(&[]).await;
    assert_eq!(
        resumed(&run),
        recorded["offset"],
        "same object: the position holds"
    );

    rewrite(&unfinish);
    case.table
        .delete_keys(&[("3", "1"), ("3", "2"), ("3", "3")])
        .await;
    case.bucket.put(DATA, real_bytes()).await;
    let run = case.restore(&[]).await;
    assert_eq!(resumed(&run), 0, "another object: the file starts again");
    case.assert_exact().await;
    assert_eq!(
        case.checkpoint_file().unwrap()["etag"],
        case.bucket.etag(DATA).await.as_str()
    );
}
