//! The checkpoint of a local restore (`--resume`): the restore's identity (table and export chain), each
//! file's acknowledged position ([`FilePosition`]), and where it is kept (a local file or an S3 object).
//!
//! One run at a time holds a checkpoint ([`CheckpointStore::claim`]): the holder is written into it and
//! renewed with every save, a local checkpoint is also locked (`<path>.lock`, released by the kernel when
//! the process ends), and every S3 save is conditional on the ETag this run last read or wrote
//! (`If-None-Match: *` to create, `If-Match` after), so two runs can never interleave their saves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::aws::env::process_owner;
use crate::aws::error::sdk_error;
use crate::clock::{now, rfc3339};
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
    /// The ETag of the object `position` was read from: a resume restarts a file whose object has another
    /// one (or, for checkpoints written before it was recorded, none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
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
    /// The run that holds the checkpoint; absent once that run has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
    pub updated_at: String,
}

/// The run holding a checkpoint: `host:pid`, since when, and until when it holds it unless it saves again
/// (a run that crashed holds it until then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub owner: String,
    pub since: String,
    pub expires_at: String,
}

/// How long a claim lasts without a save; a running restore renews it every third of that.
pub const HOLD: Duration = Duration::from_secs(120);

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
            holder: None,
            updated_at: now(),
        }
    }

    /// Checks that the checkpoint belongs to this restore, and how many exports `exports` adds to it: a
    /// chain that extends the checkpoint's (its exports in the same order, then more: the next day's
    /// incremental) continues it. Another table or any other chain is refused, naming the first export
    /// that differs: resuming it would skip files of a different restore.
    pub fn check_identity(
        &self,
        location: &StateLocation,
        table: &str,
        exports: &[Export],
    ) -> Result<usize> {
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
        if self.table != table {
            return Err(err(format!(
                "belongs to a restore of table {}, not {table}; use another --resume location for a \
                 different restore",
                self.table
            )));
        }
        let id = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_owned();
        for (k, mine) in self.exports.iter().enumerate() {
            match exports.get(k) {
                Some(given) if given.summary.export_arn == mine.export_arn => {}
                Some(given) => {
                    return Err(err(format!(
                        "export {} of its chain is {}, but this run's is {}: a checkpoint continues only the \
                         same exports in the same order (more may follow); use another --resume location",
                        k + 1,
                        id(&mine.export_arn),
                        id(&given.summary.export_arn)
                    )));
                }
                None => {
                    return Err(err(format!(
                        "its chain has {} exports and this run's only {}: export {} ({}) is missing; give the \
                         same exports in the same order (more may follow)",
                        self.exports.len(),
                        exports.len(),
                        k + 1,
                        id(&mine.export_arn)
                    )));
                }
            }
        }
        Ok(exports.len() - self.exports.len())
    }

    /// Adds the exports `exports` has beyond the checkpoint's chain (see [`Checkpoint::check_identity`]),
    /// not started.
    pub fn extend(&mut self, exports: &[Export]) {
        let fresh = Checkpoint::new(
            &self.table,
            &exports[self.exports.len().min(exports.len())..],
        );
        self.exports.extend(fresh.exports);
    }
}

/// Loads and saves a [`Checkpoint`] at a [`StateLocation`], holding it for this run once claimed.
#[derive(Clone)]
pub struct CheckpointStore {
    location: StateLocation,
    s3: aws_sdk_s3::Client,
    owner: String,
    hold: Arc<Mutex<Hold>>,
}

/// This run's hold on the checkpoint.
#[derive(Default)]
struct Hold {
    /// S3: the ETag of the object as this run last read or wrote it (`None`: there was none).
    etag: Option<String>,
    /// Local: the locked `<path>.lock`.
    lock: Option<std::fs::File>,
    since: Option<String>,
    renewed: Option<Instant>,
}

impl CheckpointStore {
    pub fn new(location: StateLocation, s3: aws_sdk_s3::Client) -> Self {
        CheckpointStore {
            location,
            s3,
            owner: process_owner("localhost"),
            hold: Arc::default(),
        }
    }

    /// The same store for a run named `owner` (for tests of runs sharing a checkpoint).
    pub fn with_owner(mut self, owner: &str) -> Self {
        self.owner = owner.to_owned();
        self
    }

    /// `host:pid` of this run, as written into the checkpoint it holds.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn hold(&self) -> std::sync::MutexGuard<'_, Hold> {
        self.hold.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the checkpoint for this run before anything is written: refused, naming the holder, while
    /// another run holds it. `loaded` is what [`CheckpointStore::load`] returned; it is saved with this
    /// run as holder (created if it was missing).
    pub async fn claim(&self, checkpoint: &Checkpoint) -> Result<()> {
        let locked_here = match &self.location {
            StateLocation::Local(path) => {
                self.lock_local(path)?;
                true
            }
            StateLocation::S3(_) => false,
        };
        if let Some(h) = &checkpoint.holder
            && h.owner != self.owner
            && !locked_here
            && humantime::parse_rfc3339(&h.expires_at).is_ok_and(|t| t > SystemTime::now())
        {
            return Err(self.held_by(h, &checkpoint.updated_at));
        }
        self.hold().since = Some(now());
        self.save(checkpoint).await
    }

    fn lock_local(&self, path: &std::path::Path) -> Result<()> {
        use std::io::{Read, Seek, Write};
        let lock_path = lock_path(path);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| {
                self.err(format!(
                    "lock file {} cannot be opened: {e}",
                    lock_path.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(self.err(format!(
                    "is in use by another run ({}, which locks {}); two runs must not share a --resume \
                     checkpoint: wait for that run to end or stop it",
                    holder.trim(),
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(self.err(format!(
                    "lock file {} cannot be locked: {e}",
                    lock_path.display()
                )));
            }
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{} since {}", self.owner, now()));
        if let Err(e) = written {
            tracing::warn!(
                "lock file {} not written (the lock holds): {e}",
                lock_path.display()
            );
        }
        self.hold().lock = Some(file);
        Ok(())
    }

    fn held_by(&self, h: &Holder, updated_at: &str) -> Error {
        self.err(format!(
            "is held by another run, {} (since {}, last saved {updated_at}); two runs must not share a \
             --resume checkpoint: wait for that run to end or stop it. If it crashed, its hold ends at {}",
            h.owner, h.since, h.expires_at
        ))
    }

    /// True when this run's hold should be renewed by a save even if nothing else changed.
    pub fn renewal_due(&self) -> bool {
        self.hold().renewed.is_some_and(|t| t.elapsed() >= HOLD / 3)
    }

    /// The last save of this run: the checkpoint as it stands, held by no one.
    pub async fn release(&self, checkpoint: &Checkpoint) -> Result<()> {
        let mut cp = checkpoint.clone();
        cp.holder = None;
        cp.updated_at = now();
        self.put(&cp).await?;
        self.hold().lock = None;
        Ok(())
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
                    Ok(out) => {
                        self.hold().etag = out.e_tag().map(str::to_owned);
                        out.body
                            .collect()
                            .await
                            .map_err(|e| self.err(format!("cannot be read: {e}")))?
                            .to_vec()
                    }
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

    /// Replaces the stored checkpoint atomically (readers see the old or the new one, never a mix), with
    /// this run as its holder for [`HOLD`] more.
    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let mut cp = checkpoint.clone();
        cp.updated_at = now();
        let since = self.hold().since.clone().unwrap_or_else(now);
        cp.holder = Some(Holder {
            owner: self.owner.clone(),
            since,
            expires_at: rfc3339(SystemTime::now() + HOLD),
        });
        self.put(&cp).await?;
        self.hold().renewed = Some(Instant::now());
        Ok(())
    }

    async fn put(&self, checkpoint: &Checkpoint) -> Result<()> {
        let body = serde_json::to_vec_pretty(checkpoint).expect("checkpoint serialises");
        match &self.location {
            StateLocation::Local(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || write_atomically(&path, &body))
                    .await
                    .expect("checkpoint writer panicked")
                    .map_err(|e| self.err(format!("cannot be written: {e}")))
            }
            StateLocation::S3(uri) => {
                let etag = self.hold().etag.clone();
                let put = self
                    .s3
                    .put_object()
                    .bucket(&uri.bucket)
                    .key(&uri.key)
                    .content_type("application/json")
                    .body(body.into());
                let put = match &etag {
                    Some(etag) => put.if_match(etag),
                    None => put.if_none_match("*"),
                };
                match put.send().await {
                    Ok(out) => {
                        self.hold().etag = out.e_tag().map(str::to_owned);
                        Ok(())
                    }
                    Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                        // Written by someone else since this run read or wrote it: name them if possible.
                        let other = self.load_unheld().await.ok().flatten();
                        Err(match other.as_ref().and_then(|cp| cp.holder.as_ref().map(|h| (h, cp))) {
                            Some((h, cp)) if h.owner != self.owner => self.held_by(h, &cp.updated_at),
                            _ => self.err(
                                "was changed by another run since this run read it; two runs must not \
                                 share a --resume checkpoint"
                                    .into(),
                            ),
                        })
                    }
                    Err(e) => Err(sdk_error(format!("PutObject {uri}"), &e)),
                }
            }
        }
    }

    /// Reads the checkpoint without taking its ETag as this run's.
    async fn load_unheld(&self) -> Result<Option<Checkpoint>> {
        let mine = self.hold().etag.clone();
        let loaded = self.load().await;
        self.hold().etag = mine;
        loaded
    }
}

/// The lock file of a local checkpoint: `<path>.lock`.
fn lock_path(path: &std::path::Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    name.into()
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

    fn checkpoint() -> Checkpoint {
        Checkpoint::new("t", &[])
    }

    fn s3_client() -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .build(),
        )
    }

    /// A local checkpoint is locked by the run that claimed it: a second run is refused, naming the
    /// holder, until the first releases it; the holder is written into the checkpoint and removed at the
    /// end.
    #[tokio::test]
    async fn a_local_checkpoint_is_held_by_one_run_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let at = StateLocation::Local(dir.path().join("cp.json"));
        let first = CheckpointStore::new(at.clone(), s3_client()).with_owner("ec2-a:1");
        let second = CheckpointStore::new(at.clone(), s3_client()).with_owner("laptop:2");
        first.claim(&checkpoint()).await.unwrap();
        let held = first.load().await.unwrap().unwrap().holder.unwrap();
        assert_eq!(held.owner, "ec2-a:1");
        let loaded = second.load().await.unwrap().unwrap();
        let e = second.claim(&loaded).await.unwrap_err().to_string();
        assert!(
            e.contains("is in use by another run (ec2-a:1 since ") && e.contains("cp.json.lock"),
            "{e}"
        );
        first.save(&checkpoint()).await.unwrap();
        first.release(&checkpoint()).await.unwrap();
        let released = second.load().await.unwrap().unwrap();
        assert_eq!(released.holder, None);
        second.claim(&released).await.unwrap();
        assert_eq!(
            second.load().await.unwrap().unwrap().holder.unwrap().owner,
            "laptop:2"
        );
    }

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
