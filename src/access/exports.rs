//! The export side of a policy's scope, read from the exports themselves.

use crate::error::Result;
use crate::export::location::{ExportUri, S3Uri};
use crate::export::manifest::{self, Export};
use crate::export::source::ObjectReader;

/// What the export scope of a policy is, read from the exports themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportAccess {
    /// Each export's folder, and the folders outside it that hold its data files (INCREMENTAL exports
    /// write theirs to the shared `AWSDynamoDB/data/`), as bucket + key prefix ending in `/`.
    pub objects: Vec<S3Uri>,
    /// `s3SseKmsKeyId` of each SSE-KMS export, as the summary gives it.
    pub kms_keys: Vec<String>,
}

/// Reads and verifies each export's manifests, and returns the folders its objects are in and the KMS
/// keys they are encrypted with. Makes no writes.
pub async fn export_access(objects: &dyn ObjectReader, uris: &[ExportUri]) -> Result<ExportAccess> {
    let mut exports = Vec::new();
    for uri in uris {
        exports.push(manifest::load(objects, uri).await?);
    }
    Ok(access_of(&exports.iter().collect::<Vec<_>>()))
}

/// [`export_access`] of exports already loaded.
pub fn access_of(exports: &[&Export]) -> ExportAccess {
    let mut access = ExportAccess::default();
    for export in exports {
        let uri = &export.uri;
        let folder = S3Uri {
            bucket: uri.bucket.clone(),
            key: uri.key(""),
        };
        let mut folders = vec![folder.clone()];
        for file in &export.files {
            if file.key.starts_with(&folder.key) {
                continue;
            }
            let parent = match file.key.rfind('/') {
                Some(i) => &file.key[..=i],
                None => "",
            };
            let f = S3Uri {
                bucket: uri.bucket.clone(),
                key: parent.to_owned(),
            };
            if !folders.contains(&f) {
                folders.push(f);
            }
        }
        for f in folders {
            if !access.objects.contains(&f) {
                access.objects.push(f);
            }
        }
        if let Some(key) = export
            .summary
            .s3_sse_kms_key_id
            .clone()
            .filter(|k| !k.is_empty())
            && !access.kms_keys.contains(&key)
        {
            access.kms_keys.push(key);
        }
    }
    access
}
