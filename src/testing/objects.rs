//! [`MemoryObjects`]: export objects served from memory, for the tests of the streaming path.

use std::collections::HashMap;
use std::ops::Range;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::Result;
use crate::export::manifest::DataFile;
use crate::export::source::{ObjectInfo, ObjectReader};

/// Objects by key, in any bucket. Each has the ETag DynamoDB's upload would give it
/// ([`ddb_pitr_synth::one_part_etag`]), quoted as S3 returns it.
#[derive(Default)]
pub struct MemoryObjects(pub HashMap<String, Bytes>);

impl MemoryObjects {
    /// Adds a gzip data file of `lines` (each followed by a newline) at `key`, and returns its manifest
    /// entry: item count, MD5 and ETag as DynamoDB would list them.
    pub fn add_lines(&mut self, key: &str, lines: &[String]) -> DataFile {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let gz = ddb_pitr_synth::gzip(text.as_bytes());
        let file = DataFile {
            key: key.to_owned(),
            item_count: lines.len() as u64,
            md5: ddb_pitr_synth::md5_base64(&gz),
            etag: Some(ddb_pitr_synth::one_part_etag(&gz)),
        };
        self.0.insert(file.key.clone(), Bytes::from(gz));
        file
    }
}

impl ObjectReader for MemoryObjects {
    fn get<'a>(&'a self, _: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Box::pin(async move { Ok(self.0.get(key).cloned()) })
    }

    fn head<'a>(&'a self, _: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectInfo>>> {
        Box::pin(async move {
            Ok(self.0.get(key).map(|b| ObjectInfo {
                size: b.len() as u64,
                etag: Some(format!("\"{}\"", ddb_pitr_synth::one_part_etag(b))),
            }))
        })
    }

    fn get_range<'a>(
        &'a self,
        _: &'a str,
        key: &'a str,
        r: Range<u64>,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move { Ok(self.0[key].slice(r.start as usize..r.end as usize)) })
    }

    fn list_folders<'a>(
        &'a self,
        _: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let folders: std::collections::BTreeSet<String> = self
                .0
                .keys()
                .filter_map(|k| k.strip_prefix(prefix))
                .filter_map(|rest| rest.find('/').map(|i| format!("{prefix}{}", &rest[..=i])))
                .collect();
            Ok(folders.into_iter().collect())
        })
    }
}
