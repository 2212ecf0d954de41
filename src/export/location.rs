//! `s3://` URIs for exports, checkpoints and reports.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::Error;

/// `s3://bucket/key`. The key may be empty (the bucket root) and keeps any trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl FromStr for S3Uri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| Error::Usage(format!("`{s}` is not an s3:// URI")))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Usage(format!("`{s}` has no bucket name")));
        }
        Ok(S3Uri {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// One export, as given by the user: its folder `s3://bucket/prefix/AWSDynamoDB/<export-id>/` or its
/// `manifest-summary.json`.
///
/// Keys inside the manifests (`manifestFilesS3Key`, `dataFileS3Key`) are resolved against the folder that
/// holds `AWSDynamoDB/` in the URI given here, not against the summary's `s3Bucket`/`s3Prefix`, so an export
/// copied to another bucket or prefix restores without editing its manifests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExportUri {
    pub bucket: String,
    /// Everything before `AWSDynamoDB/`, either empty or ending with `/`.
    pub root: String,
    pub export_id: String,
}

const EXPORT_DIR: &str = "AWSDynamoDB/";

impl ExportUri {
    /// Key of an object in the export folder, e.g. `manifest-summary.json`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{EXPORT_DIR}{}/{name}", self.root, self.export_id)
    }

    /// Re-roots a key written by DynamoDB (`<s3Prefix>/AWSDynamoDB/...`) onto this URI's root. The last
    /// `AWSDynamoDB/` folder counts, so a prefix that itself contains one still resolves.
    pub fn resolve(&self, key_from_manifest: &str) -> Option<String> {
        let idx = match key_from_manifest.rfind(&format!("/{EXPORT_DIR}")) {
            Some(i) => i + 1,
            None if key_from_manifest.starts_with(EXPORT_DIR) => 0,
            None => return None,
        };
        Some(format!("{}{}", self.root, &key_from_manifest[idx..]))
    }
}

impl FromStr for ExportUri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let uri: S3Uri = s.parse()?;
        let key = uri
            .key
            .strip_suffix("manifest-summary.json")
            .unwrap_or(&uri.key);
        let key = key.trim_end_matches('/');
        let bad = || {
            Error::Usage(format!(
                "`{s}` is not an export location: expected s3://BUCKET/[PREFIX/]AWSDynamoDB/EXPORT_ID/ \
                 or its manifest-summary.json"
            ))
        };
        let (parent, export_id) = key.rsplit_once('/').ok_or_else(bad)?;
        let root = parent
            .strip_suffix("AWSDynamoDB")
            .filter(|r| r.is_empty() || r.ends_with('/'))
            .ok_or_else(bad)?;
        if export_id.is_empty() || export_id == "data" {
            return Err(bad());
        }
        Ok(ExportUri {
            bucket: uri.bucket,
            root: root.to_owned(),
            export_id: export_id.to_owned(),
        })
    }
}

impl fmt::Display for ExportUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "s3://{}/{}{EXPORT_DIR}{}/",
            self.bucket, self.root, self.export_id
        )
    }
}

/// Where a checkpoint lives: S3 (written with one PutObject, which is atomic) or a local file (written to
/// a temporary file, synced and renamed over the old one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    S3(S3Uri),
    Local(PathBuf),
}

impl FromStr for StateLocation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.starts_with("s3://") {
            let uri: S3Uri = s.parse()?;
            if uri.key.is_empty() || uri.key.ends_with('/') {
                return Err(Error::Usage(format!(
                    "`{s}` must name an object, not a folder"
                )));
            }
            Ok(StateLocation::S3(uri))
        } else if s.is_empty() {
            Err(Error::Usage("empty checkpoint path".into()))
        } else {
            Ok(StateLocation::Local(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for StateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateLocation::S3(u) => u.fmt(f),
            StateLocation::Local(p) => p.display().fmt(f),
        }
    }
}

/// The S3 object a report goes to: `uri` itself, or `<prefix>ddb-pitr-report-<id>.json` when `uri` is a
/// prefix (empty or ending in `/`). The local runner names its reports by start time, the reporter by
/// restore id.
/// Where `restore --report` writes the report: an S3 object or prefix, or a local file or folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportLocation {
    S3(S3Uri),
    Local(PathBuf),
}

impl FromStr for ReportLocation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.starts_with("s3://") {
            Ok(ReportLocation::S3(s.parse()?))
        } else if s.is_empty() {
            Err(Error::Usage("empty report path".into()))
        } else {
            Ok(ReportLocation::Local(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for ReportLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportLocation::S3(u) => u.fmt(f),
            ReportLocation::Local(p) => p.display().fmt(f),
        }
    }
}

impl ReportLocation {
    /// The object or file the report of the run with `id` goes to: the location itself, or, for an S3
    /// prefix ending in `/` or a local folder, `ddb-pitr-report-<id>.json` in it.
    pub fn target(&self, id: &str) -> ReportLocation {
        match self {
            ReportLocation::S3(uri) => ReportLocation::S3(report_object(uri, id)),
            ReportLocation::Local(path)
                if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') =>
            {
                ReportLocation::Local(path.join(format!("ddb-pitr-report-{id}.json")))
            }
            ReportLocation::Local(path) => ReportLocation::Local(path.clone()),
        }
    }

    /// The S3 location, for permissions.
    pub fn s3(&self) -> Option<&S3Uri> {
        match self {
            ReportLocation::S3(uri) => Some(uri),
            ReportLocation::Local(_) => None,
        }
    }
}

pub fn report_object(uri: &S3Uri, id: &str) -> S3Uri {
    if uri.key.is_empty() || uri.key.ends_with('/') {
        S3Uri {
            bucket: uri.bucket.clone(),
            key: format!("{}ddb-pitr-report-{id}.json", uri.key),
        }
    } else {
        uri.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_uri_forms() {
        let a: ExportUri = "s3://b/AWSDynamoDB/0176-ab/".parse().unwrap();
        let b: ExportUri = "s3://b/AWSDynamoDB/0176-ab/manifest-summary.json"
            .parse()
            .unwrap();
        let c: ExportUri = "s3://b/AWSDynamoDB/0176-ab".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.root, "");
        assert_eq!(
            a.key("manifest-files.json"),
            "AWSDynamoDB/0176-ab/manifest-files.json"
        );
        let p: ExportUri = "s3://b/backups/x/AWSDynamoDB/0176-ab/".parse().unwrap();
        assert_eq!(p.root, "backups/x/");
        assert_eq!(p.to_string(), "s3://b/backups/x/AWSDynamoDB/0176-ab/");
    }

    #[test]
    fn export_uri_rejects_non_exports() {
        for bad in [
            "s3://b/",
            "s3://b/foo/bar/",
            "s3://b/AWSDynamoDB/data/",
            "http://b/AWSDynamoDB/x/",
            "s3:///AWSDynamoDB/x/",
            "s3://b/xAWSDynamoDB/1/",
        ] {
            assert!(
                bad.parse::<ExportUri>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn resolve_reroots_manifest_keys() {
        let p: ExportUri = "s3://copy/restore-src/AWSDynamoDB/01-ab/".parse().unwrap();
        assert_eq!(
            p.resolve("orig/prefix/AWSDynamoDB/data/x.json.gz")
                .as_deref(),
            Some("restore-src/AWSDynamoDB/data/x.json.gz")
        );
        assert_eq!(
            p.resolve("AWSDynamoDB/01-ab/data/x.json.gz").as_deref(),
            Some("restore-src/AWSDynamoDB/01-ab/data/x.json.gz")
        );
        assert_eq!(p.resolve("elsewhere/x.json.gz"), None);
        assert_eq!(
            p.resolve("old/AWSDynamoDB/copies/AWSDynamoDB/data/x.json.gz")
                .as_deref(),
            Some("restore-src/AWSDynamoDB/data/x.json.gz")
        );
    }

    #[test]
    fn state_location() {
        assert!(matches!(
            "s3://b/k.json".parse::<StateLocation>(),
            Ok(StateLocation::S3(_))
        ));
        assert!(matches!(
            "./cp.json".parse::<StateLocation>(),
            Ok(StateLocation::Local(_))
        ));
        assert!("s3://b/dir/".parse::<StateLocation>().is_err());
    }
}
