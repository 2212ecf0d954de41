//! Buckets and objects on disk: a bucket is a directory under the S3 root, a key a relative path in it.
//!
//! Every function here blocks; callers run them on tokio's blocking pool.

use std::fs::{self, File, Metadata};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::error::S3Error;

/// S3's longest key, in UTF-8 bytes. It also bounds how deep a listing descends, so a symlink loop
/// cannot make it recurse forever.
const MAX_KEY_BYTES: usize = 1024;

/// Names of PutObject's temporary files start with this; listings skip them.
const TEMP_PREFIX: &str = ".ddb-bench-put.";

static TEMP_IDS: AtomicU64 = AtomicU64::new(0);

/// What identifies one version of an object, taken from its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub size: u64,
    /// Quoted, like S3's. Not an MD5 (see [`etag`]).
    pub etag: String,
    pub modified: SystemTime,
}

impl Version {
    fn of(meta: &Metadata) -> Version {
        Version {
            size: meta.len(),
            etag: etag(meta),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }
}

/// The ETag of a file: its inode, size and modification time in nanoseconds, in hex.
///
/// Hashing multi-GB files on every HEAD would cost seconds; these three change whenever the content is
/// replaced (a rename brings a new inode, a rewrite a new mtime), which is all `If-Match` needs. The `-`
/// makes it look like a multipart ETag, which no client mistakes for the MD5 of the bytes.
pub fn etag(meta: &Metadata) -> String {
    let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    format!("\"{:x}-{:x}-{mtime_ns:x}\"", meta.ino(), meta.size())
}

/// An object opened for reading: its version is that of the open file, so a concurrent replacement of
/// the path does not mix two versions in one answer.
pub struct Object {
    pub file: Arc<File>,
    pub version: Version,
}

/// One listed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub version: Version,
}

/// A bucket: a directory under the S3 root, which may not exist.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub name: String,
    pub dir: PathBuf,
}

impl Bucket {
    /// `NoSuchBucket` unless the bucket's directory exists.
    pub fn require(&self) -> Result<(), S3Error> {
        if self.dir.is_dir() {
            Ok(())
        } else {
            Err(S3Error::NoSuchBucket {
                bucket: self.name.clone(),
            })
        }
    }

    /// The file that holds `key`, or `None` if no file can: an empty key, an empty, `.` or `..` segment
    /// (which a path would read as a different place), or a key longer than S3 allows.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return None;
        }
        let mut path = self.dir.clone();
        for segment in key.split('/') {
            if !is_plain_segment(segment) {
                return None;
            }
            path.push(segment);
        }
        Some(path)
    }

    /// Opens `key` for reading.
    pub fn open(&self, key: &str) -> Result<Object, S3Error> {
        let no_such_key = || -> S3Error {
            match self.require() {
                Ok(()) => S3Error::NoSuchKey { key: key.into() },
                Err(e) => e,
            }
        };
        let path = self.path(key).ok_or_else(no_such_key)?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if is_absent(&e) => return Err(no_such_key()),
            Err(e) => return Err(S3Error::internal(&format!("opening {}", path.display()), e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| S3Error::internal(&format!("reading {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(no_such_key());
        }
        Ok(Object {
            file: Arc::new(file),
            version: Version::of(&meta),
        })
    }

    /// Every key that starts with `prefix`, sorted as S3 sorts them (by UTF-8 bytes).
    ///
    /// Only the directory that the prefix names is read: `a/b/man` reads `a/b/`, keeps the entries whose
    /// names start with `man`, and descends into those that are directories.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        self.require()?;
        let (dir_key, name_prefix) = match prefix.rsplit_once('/') {
            Some((dir, name)) => (Some(dir), name),
            None => (None, prefix),
        };
        let (dir, key_prefix) = match dir_key {
            None => (self.dir.clone(), String::new()),
            // No key lies under a directory that no file path can name.
            Some(dir) => match self.path(dir) {
                Some(path) => (path, format!("{dir}/")),
                None => return Ok(Vec::new()),
            },
        };
        let mut keys = Vec::new();
        collect_keys(&dir, &key_prefix, name_prefix, &mut keys)
            .map_err(|e| S3Error::internal(&format!("listing {}", dir.display()), e))?;
        keys.sort_unstable();
        Ok(keys)
    }

    /// The version of `key` if it is still a file (a listing stats only the keys it returns).
    pub fn stat(&self, key: &str) -> Option<Version> {
        let meta = fs::metadata(self.path(key)?).ok()?;
        meta.is_file().then(|| Version::of(&meta))
    }

    /// Writes `key` atomically: a temporary file in the same directory, renamed over the key's path, so
    /// a concurrent reader opens the old file or the new one, never a partial one. There is no fsync: the
    /// endpoint serves benchmarks, not data that must survive a crash.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<Version, S3Error> {
        self.require()?;
        let unstorable = |why: String| {
            S3Error::InvalidArgument(format!(
                "key `{key}` cannot be stored as a file under the S3 root: {why}"
            ))
        };
        let path = self.path(key).ok_or_else(|| {
            unstorable("it is empty, too long, or has an empty, `.` or `..` segment".into())
        })?;
        let dir = path.parent().expect("a key's path is inside its bucket");
        fs::create_dir_all(dir).map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists | ErrorKind::NotADirectory => {
                unstorable(format!("a parent is a file ({e})"))
            }
            _ => S3Error::internal(&format!("creating {}", dir.display()), e),
        })?;
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}.{}",
            std::process::id(),
            TEMP_IDS.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_and_rename(&temp, &path, bytes);
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written.map_err(|e| match e.kind() {
            ErrorKind::IsADirectory | ErrorKind::DirectoryNotEmpty => {
                unstorable(format!("it is a directory ({e})"))
            }
            _ => S3Error::internal(&format!("writing {}", path.display()), e),
        })
    }
}

/// A path segment that names an entry of its directory (not the directory itself or its parent).
pub fn is_plain_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(['/', '\0'])
}

fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

/// Writes `temp`, takes its version, and renames it to `path` (a rename keeps inode and mtime, so the
/// version stays that of the object).
fn write_and_rename(temp: &Path, path: &Path, bytes: &[u8]) -> io::Result<Version> {
    let mut file = File::create_new(temp)?;
    file.write_all(bytes)?;
    let version = Version::of(&file.metadata()?);
    fs::rename(temp, path)?;
    Ok(version)
}

/// Appends to `out` the keys of the files under `dir` (whose own key, with its trailing `/`, is
/// `key_prefix`) whose entry names in `dir` start with `name_prefix`. Symlinks are followed; names that
/// are not UTF-8, broken links and PutObject's temporary files are skipped.
fn collect_keys(
    dir: &Path,
    key_prefix: &str,
    name_prefix: &str,
    out: &mut Vec<String>,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with(name_prefix) || name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let key = format!("{key_prefix}{name}");
        if key.len() > MAX_KEY_BYTES {
            continue;
        }
        let file_type = entry.file_type()?;
        let (is_dir, is_file) = if file_type.is_symlink() {
            match fs::metadata(entry.path()) {
                Ok(meta) => (meta.is_dir(), meta.is_file()),
                Err(_) => continue,
            }
        } else {
            (file_type.is_dir(), file_type.is_file())
        };
        if is_dir {
            collect_keys(&entry.path(), &format!("{key}/"), "", out)?;
        } else if is_file {
            out.push(key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(dir: &Path) -> Bucket {
        Bucket {
            name: "b".into(),
            dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn keys_that_no_file_can_hold_have_no_path() {
        let b = bucket(Path::new("/r/b"));
        assert_eq!(b.path("x/y.gz"), Some(PathBuf::from("/r/b/x/y.gz")));
        for bad in ["", "a//b", "../etc/passwd", "a/./b", "a/", "/a", "a\0b"] {
            assert_eq!(b.path(bad), None, "{bad:?}");
        }
        assert_eq!(b.path(&"k".repeat(MAX_KEY_BYTES + 1)), None);
    }

    #[test]
    fn listing_reads_the_prefix_directory_sorts_by_bytes_and_skips_temporaries() {
        let root = tempfile::tempdir().unwrap();
        let b = bucket(root.path());
        for key in ["a/b", "a.b", "a/c/d", "man-1", "manx/z", "other"] {
            let path = b.path(key).unwrap();
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, key).unwrap();
        }
        fs::write(root.path().join(format!("{TEMP_PREFIX}1.2")), "partial").unwrap();
        assert_eq!(
            b.keys("").unwrap(),
            ["a.b", "a/b", "a/c/d", "man-1", "manx/z", "other"]
        );
        assert_eq!(b.keys("man").unwrap(), ["man-1", "manx/z"]);
        assert_eq!(b.keys("a/c").unwrap(), ["a/c/d"]);
        assert_eq!(b.keys("a/c/d/e").unwrap(), Vec::<String>::new());
        assert_eq!(b.keys("a//").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_put_replaces_the_file_and_changes_the_etag() {
        let root = tempfile::tempdir().unwrap();
        let b = bucket(root.path());
        let first = b.put("x/y", b"one").unwrap();
        let second = b.put("x/y", b"two!").unwrap();
        assert_eq!(fs::read(root.path().join("x/y")).unwrap(), b"two!");
        assert_ne!(first.etag, second.etag);
        assert_eq!(b.stat("x/y"), Some(second));
        assert_eq!(b.keys("").unwrap(), ["x/y"]);
        assert!(matches!(
            b.put("x/y/z", b""),
            Err(S3Error::InvalidArgument(_))
        ));
        assert!(matches!(b.put("x", b""), Err(S3Error::InvalidArgument(_))));
    }
}
