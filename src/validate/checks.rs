//! The read-only checks of `validate`: manifests, chain, table, a sample of each export, capacity and
//! checkpoint.

use std::sync::Arc;

use futures::StreamExt;

use crate::aws::Clients;
use crate::aws::error::describe;
use crate::engine::{Engine, Settings};
use crate::error::{Error, Result};
use crate::export::chain::{self, Expectations};
use crate::export::location::{ExportUri, ReportLocation, StateLocation};
use crate::export::manifest::{self, Export, SummaryChecksum};
use crate::export::source::ObjectReader;
use crate::item::WriteOp;
use crate::item::key::KeySchema;
use crate::local::checkpoint::{Checkpoint, CheckpointStore};
use crate::preflight::file_ref;
use crate::table::capacity::{Change, ManageOptions, Manager, RecordState};
use crate::table::{self};

use super::estimates::*;
use super::{Check, Options, SAMPLE_CONCURRENCY, Status};

pub(super) fn manifest_row(uri: &ExportUri, result: &Result<Export>) -> Check {
    let name = format!("manifest {}", uri.export_id);
    match result {
        Err(e) => Check::new(name, Status::Fail, e.to_string()),
        Ok(e) => {
            let what = format!(
                "{} export{}, {} items in {} data files, manifest-files.json checksum verified",
                e.export_type.short(),
                e.view.map(|v| format!(" ({v})")).unwrap_or_default(),
                e.item_count(),
                e.files.len()
            );
            match e.summary_checksum {
                SummaryChecksum::Verified => Check::new(
                    name,
                    Status::Pass,
                    format!("{what}, summary checksum verified"),
                ),
                SummaryChecksum::Mismatch => Check::new(
                    name,
                    Status::Warn,
                    format!(
                        "{what}; manifest-summary.json does not match its .md5 (usually rewritten when the export \
                         was copied; every field the restore uses is cross-checked)"
                    ),
                ),
                SummaryChecksum::Missing => Check::new(
                    name,
                    Status::Warn,
                    format!("{what}; manifest-summary.json has no checksum file"),
                ),
            }
        }
    }
}

pub(super) fn chain_row(exports: &[Export], expect: &Expectations) -> Check {
    match chain::validate(exports, expect) {
        Err(e) => Check::new("chain", Status::Fail, e.to_string()),
        Ok(gaps) if gaps.is_empty() => Check::new(
            "chain",
            Status::Pass,
            if exports.len() == 1 {
                "one export".to_owned()
            } else {
                format!("{} exports, contiguous, one table", exports.len())
            },
        ),
        Ok(gaps) => Check::new(
            "chain",
            Status::Warn,
            format!(
                "{} accepted with --allow-gaps ({}); changes inside a gap are in no export",
                plural(gaps.len() as u64, "discontinuity", "discontinuities"),
                gaps.iter()
                    .map(|g| format!(
                        "{} between {} and {}",
                        chain::span(g.millis),
                        g.before_export,
                        g.after_export
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    }
}

/// One DescribeTable: the restore's own checks ([`table::info`]) and the capacity and indexes.
pub(super) async fn describe_table(clients: &Clients, name: &str) -> Result<TableFacts> {
    let desc = match table::fetch(&clients.dynamodb, name).await {
        Ok(desc) => desc,
        Err(e) => return Err(table::name_the_account(e, &clients.sts).await),
    };
    Ok(TableFacts::from_description(
        table::info(name, &desc)?,
        &desc,
    ))
}

/// Samples the first `lines` lines of every data file of every export; one result per export (its first
/// error, if any).
pub(super) async fn sample(
    objects: Arc<dyn ObjectReader>,
    table: &TableFacts,
    exports: &[&Export],
    lines: u64,
) -> Vec<Result<Tally>> {
    let sampler = Engine {
        objects,
        writer: None,
        table: table.info.name.clone(),
        key: table.info.key.clone(),
        // Small reads: only the start of each file is wanted.
        settings: Settings {
            read_ahead: 1,
            part_size: 256 * 1024,
            ..Settings::default()
        },
        stats: Arc::default(),
    };
    let files: Vec<(usize, &manifest::DataFile)> = exports
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            e.files
                .iter()
                .filter(|f| f.item_count > 0)
                .map(move |f| (i, f))
        })
        .collect();
    let results: Vec<(usize, Result<Vec<WriteOp>>)> = futures::stream::iter(files)
        .map(|(i, f)| {
            let sampler = &sampler;
            async move {
                let want = lines.min(f.item_count).max(1);
                (i, sampler.sample_ops(file_ref(exports[i], f), want).await)
            }
        })
        .buffer_unordered(SAMPLE_CONCURRENCY)
        .collect()
        .await;
    let mut tallies: Vec<Result<Tally>> = exports
        .iter()
        .map(|_| Ok(Tally::new(table.indexes.len())))
        .collect();
    for (i, result) in results {
        match (result, &mut tallies[i]) {
            (Ok(ops), Ok(tally)) => {
                tally.files += 1;
                for op in &ops {
                    tally.add(op, &table.info.key, &table.indexes);
                }
            }
            (Err(e), slot @ Ok(_)) => *slot = Err(e),
            (_, Err(_)) => {}
        }
    }
    tallies
}

pub(super) fn sample_row(
    export: &Export,
    tally: &Result<Tally>,
    key: &KeySchema,
    table: &str,
) -> Check {
    let name = format!("sample {}", export.id());
    match tally {
        Ok(t) if t.lines == 0 => Check::new(name, Status::Pass, "no data lines to check"),
        Ok(t) => Check::new(
            name,
            Status::Pass,
            format!(
                "{} from the start of {} decoded; every key fits {key}",
                plural(t.lines, "line", "lines"),
                plural(t.files, "data file", "data files")
            ),
        ),
        Err(Error::Data { location, message }) if message.contains("key schema") => Check::new(
            name,
            Status::Fail,
            format!(
                "export {} does not fit table {table}: {location}: {message}",
                export.id()
            ),
        ),
        Err(e) => Check::new(name, Status::Fail, e.to_string()),
    }
}

/// What `--manage-capacity` would change: refused (auto scaling under `--autoscaling refuse`), a raise, a
/// pre-warm, or nothing.
pub(super) async fn capacity_row(opts: &Options, clients: &Clients, exports: &[&Export]) -> Check {
    let items = exports.iter().map(|e| e.item_count()).sum();
    let manage = ManageOptions {
        autoscaling: opts.autoscaling,
        ..ManageOptions::default()
    };
    let manager = Manager {
        dynamodb: &clients.dynamodb,
        autoscaling: &clients.autoscaling,
        table: &opts.table,
        opts: &manage,
    };
    match manager.propose(items, opts.max_wcu.map(|m| m as f64)).await {
        Err(e) => Check::new("capacity", Status::Fail, e.to_string()),
        Ok(proposal) => {
            let (target, warnings) = (proposal.target, proposal.warnings);
            let mut detail = match proposal.change {
                Change::Raise(r) => format!(
                    "--manage-capacity would raise the write capacity from {} (table) to {} for the table and \
                     its {} GSI(s), and put it back afterwards",
                    r.table.write,
                    r.target_wcu,
                    r.indexes.len()
                ),
                Change::Warm(t) => format!(
                    "--manage-capacity would pre-warm the on-demand table and its GSIs to {t} writes/s"
                ),
                Change::Nothing => format!("the table already has at least {target} write units/s"),
            };
            for w in &warnings {
                detail.push_str("; ");
                detail.push_str(w);
            }
            let status = if warnings.is_empty() {
                Status::Pass
            } else {
                Status::Warn
            };
            Check::new("capacity", status, detail)
        }
    }
}

/// Whether the report can go where `--report` says, without writing: the bucket exists (HeadBucket answers
/// 404 only for a missing bucket, 403 when it exists but may not be listed; PutObject itself is among the
/// permissions), or the local folder exists and is writable.
pub(super) async fn report_row(clients: &Clients, location: &ReportLocation) -> Check {
    let name = "report location";
    match location {
        ReportLocation::S3(uri) => {
            let head = clients.s3.head_bucket().bucket(&uri.bucket).send().await;
            match head {
                Ok(_) => Check::new(name, Status::Pass, format!("bucket {} exists", uri.bucket)),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
                    Check::new(
                        name,
                        Status::Pass,
                        format!(
                            "bucket {} exists (s3:PutObject on the report is in the permissions rows)",
                            uri.bucket
                        ),
                    )
                }
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                    Check::new(
                        name,
                        Status::Fail,
                        format!(
                            "bucket {} does not exist: the restore would fail before its first write",
                            uri.bucket
                        ),
                    )
                }
                Err(e) => Check::new(
                    name,
                    Status::Warn,
                    format!("HeadBucket {} failed: {}", uri.bucket, describe(&e)),
                ),
            }
        }
        ReportLocation::Local(path) => {
            let folder = if path.is_dir() {
                path.as_path()
            } else {
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."))
            };
            match std::fs::metadata(folder) {
                Ok(m) if m.is_dir() && !m.permissions().readonly() => Check::new(
                    name,
                    Status::Pass,
                    format!("folder {} exists and is writable", folder.display()),
                ),
                Ok(_) => Check::new(
                    name,
                    Status::Fail,
                    format!("{} is not a writable folder", folder.display()),
                ),
                Err(e) => Check::new(
                    name,
                    Status::Fail,
                    format!("folder {}: {e}", folder.display()),
                ),
            }
        }
    }
}

pub(super) async fn checkpoint_row(
    clients: &Clients,
    location: &StateLocation,
    table: &str,
    exports: Option<&[Export]>,
) -> Check {
    let store = CheckpointStore::new(location.clone(), clients.s3.clone());
    let loaded = store.load().await;
    // Capacity an earlier run raised and has not put back yet.
    let pending = match &loaded {
        Ok(Some(cp)) => cp
            .capacity
            .as_ref()
            .filter(|r| r.state != RecordState::Restored)
            .map(|r| {
                format!(
                    "; capacity raised to {} by an earlier run is not put back yet (originals: table {} WCU{}); \
                     the restore puts it back when it ends",
                    r.target_wcu,
                    r.table.write,
                    r.indexes
                        .iter()
                        .map(|(n, t)| format!(", index {n} {} WCU", t.write))
                        .collect::<String>()
                )
            }),
        _ => None,
    };
    let mut row = checkpoint_identity_row(loaded, location, table, exports);
    if let Some(p) = pending {
        row.detail.push_str(&p);
        if row.status == Status::Pass {
            row.status = Status::Warn;
        }
    }
    row
}

pub(super) fn checkpoint_identity_row(
    loaded: Result<Option<Checkpoint>>,
    location: &StateLocation,
    table: &str,
    exports: Option<&[Export]>,
) -> Check {
    match loaded {
        Err(e) => Check::new("checkpoint", Status::Fail, e.to_string()),
        Ok(None) => Check::new(
            "checkpoint",
            Status::Pass,
            format!("{location} does not exist yet; the restore creates it before its first write"),
        ),
        Ok(Some(cp)) => match exports {
            None => Check::new(
                "checkpoint",
                Status::Warn,
                format!(
                    "{location} exists, but not every manifest could be read to check that it belongs to this restore"
                ),
            ),
            Some(exports) => match cp.check_identity(location, table, exports) {
                Ok(added) => Check::new(
                    "checkpoint",
                    Status::Pass,
                    format!(
                        "{location} exists and belongs to this restore: the restore resumes from it ({} of {} exports done{})",
                        cp.exports.iter().filter(|e| e.done).count(),
                        cp.exports.len(),
                        if added > 0 {
                            format!("; {added} more added at the end")
                        } else {
                            String::new()
                        }
                    ),
                ),
                Err(e) => Check::new("checkpoint", Status::Fail, e.to_string()),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::key::{KeyAttr, KeyType};
    use crate::table::TableInfo;
    use crate::testing::exports::full;
    use crate::testing::objects::MemoryObjects;

    #[tokio::test]
    async fn samples_are_the_first_lines_of_each_file_and_keys_are_checked() {
        let lines: Vec<String> = (0..10)
            .map(|i| format!(r#"{{"Item":{{"pk":{{"S":"k{i}"}},"v":{{"N":"{i}"}}}}}}"#))
            .collect();
        let mut memory = MemoryObjects::default();
        let file = memory.add_lines("AWSDynamoDB/e1/data/f.json.gz", &lines);
        let objects: Arc<dyn ObjectReader> = Arc::new(memory);
        let mut e1 = full("e1", 10);
        e1.files = vec![file];
        let facts = |ty| TableFacts {
            info: TableInfo {
                name: "t".into(),
                arn: None,
                key: KeySchema {
                    attrs: vec![KeyAttr {
                        name: "pk".into(),
                        ty,
                    }],
                },
            },
            on_demand: true,
            rate: (1.0, String::new()),
            indexes: vec![],
        };
        for (want, got) in [(3, 3), (9, 9), (10, 10), (1000, 10)] {
            let tallies = sample(objects.clone(), &facts(KeyType::S), &[&e1], want).await;
            let t = tallies[0].as_ref().unwrap();
            assert_eq!(
                (t.files, t.lines, t.puts),
                (1, got, got),
                "asked for {want}"
            );
        }
        let tallies = sample(objects.clone(), &facts(KeyType::N), &[&e1], 3).await;
        let row = sample_row(&e1, &tallies[0], &facts(KeyType::N).info.key, "t");
        assert_eq!(row.status, Status::Fail);
        assert!(row.detail.contains("does not fit table t"), "{row:?}");
    }
}
