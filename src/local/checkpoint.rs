//! The checkpoint of a local restore (`--resume`): the restore's identity (table and export chain), each
//! file's acknowledged position ([`FilePosition`]), and where it is kept (a local file or an S3 object).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aws::error::sdk_error;
use crate::clock::now;
use crate::engine::watermark::FilePosition;
use crate::error::{Error, Result};
use crate::export::location::StateLocation;
use crate::export::manifest::Export;
use crate::table::capacity::CapacityRecord;

pub const CHECKPOINT_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    #[serde(flatten)]
    pub position: FilePosition,
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportState {
    pub export_arn: String,
    pub uri: String,
    pub done: bool,
    /// Keyed by data-file key; files not listed have not started.
    pub files: BTreeMap<String, FileState>,
}

/// The durable state of a local restore: its identity (table and export chain) and each file's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    pub table: String,
    pub exports: Vec<ExportState>,
    /// The table's capacity before `--manage-capacity` raised it, until it is put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityRecord>,
    pub updated_at: String,
}

impl Checkpoint {
    pub fn new(table: &str, exports: &[Export]) -> Self {
        Checkpoint {
            format: CHECKPOINT_FORMAT,
            table: table.to_owned(),
            exports: exports
                .iter()
                .map(|e| ExportState {
                    export_arn: e.summary.export_arn.clone(),
                    uri: e.uri.to_string(),
                    done: false,
                    files: BTreeMap::new(),
                })
                .collect(),
            capacity: None,
            updated_at: now(),
        }
    }

    /// Refuses a checkpoint that belongs to another table or another chain: resuming it would skip files
    /// of a different restore.
    pub fn check_identity(
        &self,
        location: &StateLocation,
        table: &str,
        exports: &[Export],
    ) -> Result<()> {
        let err = |message: String| Error::Checkpoint {
            location: location.to_string(),
            message,
        };
        if self.format != CHECKPOINT_FORMAT {
            return Err(err(format!(
                "has format {} but this version of ddb-pitr reads format {CHECKPOINT_FORMAT}",
                self.format
            )));
        }
        let mine: Vec<&str> = self.exports.iter().map(|e| e.export_arn.as_str()).collect();
        let given: Vec<&str> = exports
            .iter()
            .map(|e| e.summary.export_arn.as_str())
            .collect();
        if self.table != table || mine != given {
            return Err(err(format!(
                "belongs to a restore of table {} from exports [{}], not of table {table} from [{}]; \
                 use another --resume location for a different restore",
                self.table,
                mine.join(", "),
                given.join(", ")
            )));
        }
        Ok(())
    }
}

/// Loads and saves a [`Checkpoint`] at a [`StateLocation`].
#[derive(Clone)]
pub struct CheckpointStore {
    location: StateLocation,
    s3: aws_sdk_s3::Client,
}

impl CheckpointStore {
    pub fn new(location: StateLocation, s3: aws_sdk_s3::Client) -> Self {
        CheckpointStore { location, s3 }
    }

    pub fn location(&self) -> &StateLocation {
        &self.location
    }

    fn err(&self, message: String) -> Error {
        Error::Checkpoint {
            location: self.location.to_string(),
            message,
        }
    }

    pub async fn load(&self) -> Result<Option<Checkpoint>> {
        let bytes = match &self.location {
            StateLocation::Local(path) => match tokio::fs::read(path).await {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.err(format!("cannot be read: {e}"))),
            },
            StateLocation::S3(uri) => {
                // S3 answers 403, not 404, for a missing key to a caller without s3:ListBucket. Listing the key
                // itself (which a policy can allow for exactly this key, with an s3:prefix condition) tells
                // "no checkpoint yet" from "not allowed" without reading anything else in the bucket.
                let listed = self
                    .s3
                    .list_objects_v2()
                    .bucket(&uri.bucket)
                    .prefix(&uri.key)
                    .max_keys(1)
                    .send()
                    .await;
                match listed {
                    Ok(out) => {
                        if !out
                            .contents()
                            .iter()
                            .any(|o| o.key() == Some(uri.key.as_str()))
                        {
                            return Ok(None);
                        }
                    }
                    // Without the listing, a missing key reads as 403 below, and the error says so.
                    Err(e)
                        if e.as_service_error()
                            .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
                            == Some("AccessDenied") =>
                    {
                        tracing::warn!(
                            "s3:ListBucket on {} is denied, so a missing checkpoint cannot be told from a \
                             denied one; `ddb-pitr policy --resume {uri}` shows the permission",
                            uri.bucket
                        );
                    }
                    Err(e) => return Err(sdk_error(format!("ListObjectsV2 {uri}"), &e)),
                }
                match self
                    .s3
                    .get_object()
                    .bucket(&uri.bucket)
                    .key(&uri.key)
                    .send()
                    .await
                {
                    Ok(out) => out
                        .body
                        .collect()
                        .await
                        .map_err(|e| self.err(format!("cannot be read: {e}")))?
                        .to_vec(),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                        return Ok(None);
                    }
                    Err(e) => return Err(sdk_error(format!("GetObject {uri}"), &e)),
                }
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| self.err(format!("is not a ddb-pitr checkpoint: {e}")))
    }

    /// Replaces the stored checkpoint atomically: readers see the old or the new one, never a mix.
    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let body = serde_json::to_vec_pretty(checkpoint).expect("checkpoint serialises");
        match &self.location {
            StateLocation::Local(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || write_atomically(&path, &body))
                    .await
                    .expect("checkpoint writer panicked")
                    .map_err(|e| self.err(format!("cannot be written: {e}")))
            }
            StateLocation::S3(uri) => self
                .s3
                .put_object()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .content_type("application/json")
                .body(body.into())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error(format!("PutObject {uri}"), &e)),
        }
    }
}

/// Writes a sibling temporary file, syncs it, renames it over `path` and syncs the directory, so that a
/// crash leaves either the old or the new file.
fn write_atomically(path: &std::path::Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(body)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_local_write_replaces_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left behind"
        );
    }
}
