//! Export manifests: `manifest-summary.json`, `manifest-files.json` and their checksum files.
//!
//! Data files are found only through `manifest-files.json`; INCREMENTAL exports put theirs in the shared
//! `AWSDynamoDB/data/` folder, so listing a prefix would pick up other exports' files.
//!
//! Integrity policy (see `docs/integrity.md`):
//! - `manifest-files.json` must match `manifest-files.md5` (or `.checksum`): it is what lists the data, so a
//!   mismatch or a missing checksum file is fatal.
//! - Every data file's `md5Checksum` and `itemCount` are verified while it streams ([`crate::export::source`]).
//! - The summary's `itemCount` must equal the sum of the files' counts.
//! - A mismatching `manifest-summary.md5` is reported as a warning, not an error: summaries are commonly
//!   rewritten when exports are copied or anonymised (account ids, bucket names), and every summary field the
//!   restore relies on is cross-checked against checksummed data above.

use std::collections::HashSet;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::export::location::ExportUri;
use crate::export::source::{ObjectReader, bare_etag};

/// The fields of `manifest-summary.json` the restore uses. Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub version: Option<String>,
    pub export_arn: String,
    pub table_arn: String,
    pub export_time: Option<String>,
    pub export_from_time: Option<String>,
    pub export_to_time: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_prefix: Option<String>,
    pub s3_sse_kms_key_id: Option<String>,
    pub manifest_files_s3_key: String,
    pub item_count: u64,
    /// What the export was billed for, in bytes (absent from some older summaries).
    #[serde(default)]
    pub billed_size_bytes: Option<u64>,
    pub output_format: Option<String>,
    pub output_view: Option<String>,
    pub export_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExportType {
    Full,
    Incremental,
}

impl ExportType {
    /// `FULL` or `INCREMENTAL`: the word of the report and the control table.
    pub fn short(self) -> &'static str {
        match self {
            ExportType::Full => "FULL",
            ExportType::Incremental => "INCREMENTAL",
        }
    }
}

/// DynamoDB's own name, as the summary's `exportType` and the API's `ExportType` have it.
impl std::fmt::Display for ExportType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExportType::Full => "FULL_EXPORT",
            ExportType::Incremental => "INCREMENTAL_EXPORT",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputView {
    #[serde(rename = "NEW_IMAGE")]
    NewImage,
    #[serde(rename = "NEW_AND_OLD_IMAGES")]
    NewAndOldImages,
}

/// DynamoDB's own name, as the summary's `outputView` has it.
impl std::fmt::Display for OutputView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutputView::NewImage => "NEW_IMAGE",
            OutputView::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        })
    }
}

/// What became of the `manifest-summary.md5` check. Only `Verified` means the summary is byte-identical to
/// what DynamoDB wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryChecksum {
    Verified,
    Mismatch,
    Missing,
}

/// One line of `manifest-files.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestLine {
    item_count: u64,
    md5_checksum: String,
    /// The S3 ETag of the object as DynamoDB wrote it (absent from some older exports).
    #[serde(default)]
    etag: Option<String>,
    data_file_s3_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// The key in the bucket the user named (re-rooted, see [`ExportUri::resolve`]).
    pub key: String,
    pub item_count: u64,
    /// Base64 MD5 of the gzip object, as DynamoDB wrote it.
    pub md5: String,
    /// The object's S3 ETag as DynamoDB wrote it, without quotes: an object that still has it holds the
    /// exported bytes (a copy gets another one).
    pub etag: Option<String>,
}

/// A loaded and verified export.
#[derive(Debug, Clone)]
pub struct Export {
    pub uri: ExportUri,
    pub summary: Summary,
    pub export_type: ExportType,
    pub view: Option<OutputView>,
    /// FULL: `exportTime`; INCREMENTAL: `exportFromTime`.
    pub start: SystemTime,
    /// FULL: `exportTime`; INCREMENTAL: `exportToTime`.
    pub end: SystemTime,
    pub summary_checksum: SummaryChecksum,
    pub files: Vec<DataFile>,
}

impl Export {
    pub fn id(&self) -> &str {
        &self.uri.export_id
    }

    pub fn item_count(&self) -> u64 {
        self.summary.item_count
    }
}

/// The two names DynamoDB has used for checksum files: the real exports we have seen write `.md5`, the
/// documentation names `.checksum`. Both hold the MD5 of the JSON file.
const CHECKSUM_SUFFIXES: [&str; 2] = ["md5", "checksum"];

/// What `manifest-summary.json` says about an export, checked against its folder: type, view and window.
#[derive(Debug, Clone)]
pub struct SummaryInfo {
    pub summary: Summary,
    pub export_type: ExportType,
    pub view: Option<OutputView>,
    /// FULL: `exportTime`; INCREMENTAL: `exportFromTime`.
    pub start: SystemTime,
    /// FULL: `exportTime`; INCREMENTAL: `exportToTime`.
    pub end: SystemTime,
}

/// Reads and checks an export's `manifest-summary.json` and returns it with its bytes, or `None` if the
/// object does not exist (an export still running, or one that failed, has only `_started`).
pub async fn read_summary(
    objects: &dyn ObjectReader,
    uri: &ExportUri,
) -> Result<Option<(SummaryInfo, Bytes)>> {
    let Some(bytes) = objects
        .get(&uri.bucket, &uri.key("manifest-summary.json"))
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((parse_summary(uri, &bytes)?, bytes)))
}

fn parse_summary(uri: &ExportUri, bytes: &[u8]) -> Result<SummaryInfo> {
    let err = |message: String| Error::Manifest {
        export: uri.export_id.clone(),
        message,
    };
    let summary: Summary = serde_json::from_slice(bytes).map_err(|e| {
        err(format!(
            "manifest-summary.json is not a valid export summary: {e}"
        ))
    })?;

    let arn_id = summary.export_arn.rsplit('/').next().unwrap_or_default();
    if arn_id != uri.export_id {
        return Err(err(format!(
            "manifest-summary.json belongs to export {arn_id} (exportArn {}), not to the folder it was read \
             from; the export folder was renamed or files from different exports were mixed",
            summary.export_arn
        )));
    }

    match summary.output_format.as_deref() {
        None | Some("DYNAMODB_JSON") => {}
        Some("ION") => {
            return Err(err(
                "outputFormat ION is not supported yet; export the table again with DYNAMODB_JSON output".into(),
            ));
        }
        Some(other) => return Err(err(format!("unknown outputFormat {other:?}"))),
    }

    let export_type = match summary.export_type.as_deref() {
        None | Some("FULL_EXPORT") => ExportType::Full,
        Some("INCREMENTAL_EXPORT") => ExportType::Incremental,
        Some(other) => return Err(err(format!("unknown exportType {other:?}"))),
    };
    let time = |field: &str, value: &Option<String>| -> Result<SystemTime> {
        let v = value
            .as_deref()
            .ok_or_else(|| err(format!("manifest-summary.json has no {field}")))?;
        humantime::parse_rfc3339(v)
            .map_err(|e| err(format!("{field} {v:?} is not an RFC 3339 time: {e}")))
    };
    let (start, end, view) = match export_type {
        ExportType::Full => {
            let t = time("exportTime", &summary.export_time)?;
            (t, t, None)
        }
        ExportType::Incremental => {
            let view = match summary.output_view.as_deref() {
                Some("NEW_IMAGE") => OutputView::NewImage,
                Some("NEW_AND_OLD_IMAGES") => OutputView::NewAndOldImages,
                other => {
                    return Err(err(format!(
                        "INCREMENTAL export with unknown outputView {other:?}"
                    )));
                }
            };
            (
                time("exportFromTime", &summary.export_from_time)?,
                time("exportToTime", &summary.export_to_time)?,
                Some(view),
            )
        }
    };
    Ok(SummaryInfo {
        summary,
        export_type,
        view,
        start,
        end,
    })
}

/// Reads, parses and verifies one export's manifests. Makes no writes.
pub async fn load(objects: &dyn ObjectReader, uri: &ExportUri) -> Result<Export> {
    let id = uri.export_id.clone();
    let err = |message: String| Error::Manifest {
        export: id.clone(),
        message,
    };

    let Some((info, summary_bytes)) = read_summary(objects, uri).await? else {
        return Err(err(format!(
            "s3://{}/{} not found: check the export URI (it should be the folder that holds \
             manifest-summary.json)",
            uri.bucket,
            uri.key("manifest-summary.json")
        )));
    };
    let SummaryInfo {
        summary,
        export_type,
        view,
        start,
        end,
    } = info;

    let summary_checksum = match read_checksum(objects, uri, "manifest-summary").await? {
        None => SummaryChecksum::Missing,
        Some((_, text)) if checksum_matches(&summary_bytes, &text) => SummaryChecksum::Verified,
        Some((name, _)) => {
            tracing::warn!(
                export = %id,
                "manifest-summary.json does not match {name}; continuing because every field the restore \
                 uses is cross-checked against checksummed manifests (see docs/integrity.md)"
            );
            SummaryChecksum::Mismatch
        }
    };

    let files_key = uri.resolve(&summary.manifest_files_s3_key).ok_or_else(|| {
        err(format!(
            "manifestFilesS3Key {:?} is not under an AWSDynamoDB/ folder",
            summary.manifest_files_s3_key
        ))
    })?;
    let files_bytes = objects.get(&uri.bucket, &files_key).await?.ok_or_else(|| {
        err(format!(
            "s3://{}/{files_key} not found: the export is incomplete or was copied partially",
            uri.bucket
        ))
    })?;
    match read_checksum(objects, uri, "manifest-files").await? {
        None => {
            return Err(err(
                "neither manifest-files.md5 nor manifest-files.checksum exists, so the list of data files \
                 cannot be verified; copy the whole export folder"
                    .into(),
            ));
        }
        Some((name, text)) if !checksum_matches(&files_bytes, &text) => {
            return Err(err(format!(
                "manifest-files.json does not match {name} (expected {}, object has {}): the manifest changed \
                 after export or was copied partially",
                text.trim(),
                BASE64.encode(Md5::digest(&files_bytes))
            )));
        }
        Some(_) => {}
    }
    let files = parse_files(uri, &files_bytes).map_err(err)?;

    let total: u64 = files.iter().map(|f| f.item_count).sum();
    if total != summary.item_count {
        return Err(err(format!(
            "manifest-summary.json says itemCount {} but manifest-files.json lists {total} items",
            summary.item_count
        )));
    }

    Ok(Export {
        uri: uri.clone(),
        summary,
        export_type,
        view,
        start,
        end,
        summary_checksum,
        files,
    })
}

fn parse_files(uri: &ExportUri, bytes: &[u8]) -> std::result::Result<Vec<DataFile>, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| format!("manifest-files.json is not UTF-8: {e}"))?;
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("manifest-files.json line {}", i + 1);
        let entry: ManifestLine =
            serde_json::from_str(line).map_err(|e| format!("{}: {e}", at()))?;
        match BASE64.decode(&entry.md5_checksum) {
            Ok(d) if d.len() == 16 => {}
            _ => {
                return Err(format!(
                    "{}: md5Checksum {:?} is not a base64 MD5",
                    at(),
                    entry.md5_checksum
                ));
            }
        }
        let key = uri.resolve(&entry.data_file_s3_key).ok_or_else(|| {
            format!(
                "{}: dataFileS3Key {:?} is not under AWSDynamoDB/",
                at(),
                entry.data_file_s3_key
            )
        })?;
        if !seen.insert(key.clone()) {
            return Err(format!("{}: data file {key} is listed twice", at()));
        }
        files.push(DataFile {
            key,
            item_count: entry.item_count,
            md5: entry.md5_checksum,
            etag: entry.etag.map(|e| bare_etag(&e).to_owned()),
        });
    }
    Ok(files)
}

/// Reads `<stem>.md5` or else `<stem>.checksum` from the export folder.
async fn read_checksum(
    objects: &dyn ObjectReader,
    uri: &ExportUri,
    stem: &str,
) -> Result<Option<(String, String)>> {
    for suffix in CHECKSUM_SUFFIXES {
        let name = format!("{stem}.{suffix}");
        if let Some(bytes) = objects.get(&uri.bucket, &uri.key(&name)).await? {
            return Ok(Some((
                name,
                String::from_utf8_lossy(&bytes).trim().to_owned(),
            )));
        }
    }
    Ok(None)
}

/// Checksum files hold the MD5 as base64 (what DynamoDB writes today); hex is accepted too.
fn checksum_matches(content: &[u8], checksum: &str) -> bool {
    let digest = Md5::digest(content);
    let checksum = checksum.trim();
    BASE64.encode(digest) == checksum || hex_lower(&digest) == checksum.to_ascii_lowercase()
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_formats() {
        let body = b"hello";
        assert!(checksum_matches(body, "XUFAKrxLKna5cZ2REBfFkg=="));
        assert!(checksum_matches(body, "5d41402abc4b2a76b9719d911017c592\n"));
        assert!(!checksum_matches(body, "XUFAKrxLKna5cZ2REBfFkg==x"));
    }

    #[test]
    fn manifest_lines_are_validated() {
        let uri: ExportUri = "s3://b/AWSDynamoDB/01-ab/".parse().unwrap();
        let good = r#"{"itemCount":3,"md5Checksum":"y+zg5fVeudb3R3DOQ+RKgA==","etag":"x","dataFileS3Key":"AWSDynamoDB/data/a.json.gz"}"#;
        let files = parse_files(&uri, format!("{good}\n").as_bytes()).unwrap();
        assert_eq!(files[0].key, "AWSDynamoDB/data/a.json.gz");
        let dup = parse_files(&uri, format!("{good}\n{good}\n").as_bytes()).unwrap_err();
        assert!(
            dup.contains("line 2") && dup.contains("listed twice"),
            "{dup}"
        );
        let bad_md5 = good.replace("y+zg5fVeudb3R3DOQ+RKgA==", "nope");
        assert!(
            parse_files(&uri, bad_md5.as_bytes())
                .unwrap_err()
                .contains("not a base64 MD5")
        );
        assert!(
            parse_files(&uri, b"{\"itemCount\":1}\n")
                .unwrap_err()
                .contains("line 1")
        );
    }
}
