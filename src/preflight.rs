//! The checks made before anything is written, shared by the local runner, the distributed planner and
//! `ddb-pitr validate`: every manifest loaded and verified, the chain validated, the table ACTIVE, and a
//! sample of each export decoded and checked against the table's key schema.

use std::sync::Arc;

use futures::future::try_join_all;

use crate::engine::{Engine, FileRef, Settings};
use crate::error::{Error, Result};
use crate::export::chain::{self, Discontinuity, Expectations};
use crate::export::location::ExportUri;
use crate::export::manifest::{self, DataFile, Export};
use crate::export::source::ObjectReader;
use crate::item::key::KeySchema;
use crate::table::{TableInfo, describe};

/// A chain that passed every check that can be made before the first write.
#[derive(Debug, Clone)]
pub struct PreparedChain {
    pub exports: Vec<Export>,
    pub gaps: Vec<Discontinuity>,
    pub key: KeySchema,
    pub table: TableInfo,
}

/// The checks shared by the local runner and the distributed planner, made before anything is written:
/// every manifest loaded and verified, the chain validated, the table ACTIVE, and the first
/// `sample_lines` lines of each export decoded and checked against the table's key schema.
pub async fn prepare(
    objects: Arc<dyn ObjectReader>,
    dynamodb: &aws_sdk_dynamodb::Client,
    table_name: &str,
    uris: &[ExportUri],
    expect: &Expectations,
    settings: &Settings,
    sample_lines: u64,
) -> Result<PreparedChain> {
    if uris.is_empty() {
        return Err(Error::Usage("at least one --export is required".into()));
    }
    let exports =
        try_join_all(uris.iter().map(|uri| manifest::load(objects.as_ref(), uri))).await?;
    let gaps = chain::validate(&exports, expect)?;
    let table = describe(dynamodb, table_name).await?;

    let sampler = Engine {
        objects,
        writer: None,
        table: table_name.to_owned(),
        key: table.key.clone(),
        settings: settings.clone(),
        stats: Arc::default(),
    };
    for export in &exports {
        if let Some(file) = export.files.iter().find(|f| f.item_count > 0) {
            sampler
                .check_sample(file_ref(export, file), sample_lines)
                .await
                .map_err(|e| match e {
                    Error::Data { location, message } if message.contains("key schema") => {
                        Error::Table {
                            table: table_name.to_owned(),
                            message: format!(
                                "export {} does not fit this table: {location}: {message}",
                                export.id()
                            ),
                        }
                    }
                    other => other,
                })?;
        }
    }
    Ok(PreparedChain {
        exports,
        gaps,
        key: table.key.clone(),
        table,
    })
}

/// The [`FileRef`] of one data file of a loaded export.
pub fn file_ref<'a>(export: &'a Export, file: &'a DataFile) -> FileRef<'a> {
    FileRef {
        export_id: export.id(),
        export_type: export.export_type,
        bucket: &export.uri.bucket,
        file,
    }
}
