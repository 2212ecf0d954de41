//! The control table of a distributed restore: one header item per restore and one item per data file,
//! holding the plan, each file's lease and byte-offset checkpoint, and the restore's aggregate counters.
//!
//! The schema is versioned ([`SCHEMA_VERSION`]) and documented in `docs/control-table.md`. Every write a
//! worker makes is conditioned on the lease it holds, so a worker whose lease was taken over can neither
//! move a checkpoint nor count a file; aggregate counters move only in the same transaction that marks a
//! file DONE or FAILED, which happens once per file.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::aws::error::{describe, sdk_error};
use crate::clock::{self, epoch_ms};
use crate::engine::watermark::FilePosition;
use crate::error::{Error, Result, truncate};
use crate::export::chain::Discontinuity;
use crate::export::discover::Choice;
use crate::export::manifest::{DataFile, Export, ExportType, OutputView, SummaryChecksum};
use crate::item::key::KeySchema;
use crate::write::BatchSize;
use crate::write::retry::RetryPolicy;
use crate::write::stats::WriteStatsSnapshot;

/// Version of the item layout below. Readers refuse items of another version.
pub const SCHEMA_VERSION: u32 = 1;
/// The TTL attribute (epoch seconds) set on every item of a restore.
pub const TTL_ATTRIBUTE: &str = "expires_at";
const HEADER_SK: &str = "header";

/// Options of a distributed restore, fixed when it is planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    pub batch_size: BatchSize,
    pub allow_gaps: bool,
    pub report_uri: Option<String>,
}

/// One export of the chain, as recorded in the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportPlan {
    pub export_id: String,
    pub export_arn: String,
    pub uri: String,
    pub bucket: String,
    pub export_type: ExportType,
    pub view: Option<OutputView>,
    pub summary_checksum: SummaryChecksum,
    pub files: u64,
    pub items: u64,
}

impl ExportPlan {
    pub fn from_export(export: &Export) -> Self {
        ExportPlan {
            export_id: export.id().to_owned(),
            export_arn: export.summary.export_arn.clone(),
            uri: export.uri.to_string(),
            bucket: export.uri.bucket.clone(),
            export_type: export.export_type,
            view: export.view,
            summary_checksum: export.summary_checksum,
            files: export.files.len() as u64,
            items: export.item_count(),
        }
    }
}

/// Everything about a restore that does not change once it is planned (the header's `plan` attribute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestorePlan {
    pub restore_id: String,
    pub table: String,
    pub key: KeySchema,
    pub exports: Vec<ExportPlan>,
    pub gaps: Vec<Discontinuity>,
    pub options: PlanOptions,
    pub created_at: String,
    /// How the chain was found (`export_prefix`/`source_table` and `to`), for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Choice>,
}

impl RestorePlan {
    /// True when `other` describes the same restore: same table, key and exports in the same order.
    pub fn same_restore(&self, other: &RestorePlan) -> bool {
        self.table == other.table
            && self.key == other.key
            && self.options == other.options
            && self.exports.len() == other.exports.len()
            && self
                .exports
                .iter()
                .zip(&other.exports)
                .all(|(a, b)| a.export_arn == b.export_arn && a.uri == b.uri)
    }
}

/// Header status: `PLANNING` while file items are written, `READY` once all of them are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeaderStatus {
    Planning,
    Ready,
}

/// Status of one data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordStatus {
    Pending,
    Done,
    Failed,
}

impl RecordStatus {
    fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Pending => "PENDING",
            RecordStatus::Done => "DONE",
            RecordStatus::Failed => "FAILED",
        }
    }
}

/// Counters of one export, read from the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportProgress {
    pub files: u64,
    pub done: u64,
    pub failed: u64,
    pub puts: u64,
    pub deletes: u64,
    pub compressed_bytes: u64,
    pub enqueued: bool,
}

impl ExportProgress {
    /// Every file is DONE or FAILED.
    pub fn finished(&self) -> bool {
        self.done + self.failed >= self.files
    }
}

/// What the planner keeps per export about the messages it sent and the progress it saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatch {
    /// The execution that last enqueued the export's files (`None`: enqueued without one, or not yet).
    pub enqueued_by: Option<String>,
    /// When messages were last sent for the export's files (epoch ms; 0: never).
    pub sent_at_ms: u64,
    /// Files finished and lines acknowledged in unfinished files when the planner last saw either move.
    pub seen_finished: u64,
    pub seen_lines: u64,
    /// When that was (epoch ms).
    pub active_at_ms: u64,
}

/// The header: the plan and the counters.
#[derive(Debug, Clone)]
pub struct Header {
    pub plan: RestorePlan,
    pub status: HeaderStatus,
    pub exports: Vec<ExportProgress>,
    /// Per export, in chain order.
    pub dispatch: Vec<Dispatch>,
}

/// One data file's item.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub export_index: usize,
    pub export_id: String,
    pub export_type: ExportType,
    pub bucket: String,
    pub file: DataFile,
    pub status: RecordStatus,
    pub position: FilePosition,
    /// The ETag of the object `position` was read from.
    pub object_etag: Option<String>,
    /// The last time a worker leased, checkpointed or released the file.
    pub updated_at: Option<SystemTime>,
    pub compressed_bytes: u64,
    pub md5_verified: bool,
    pub lease_owner: Option<String>,
    /// The token of the lease held on the file, if any.
    pub lease_token: Option<String>,
    /// Epoch milliseconds; 0 when no lease is held.
    pub lease_expires_ms: u64,
    /// Times a lease was acquired on this file.
    pub deliveries: u64,
    /// Consecutive leases that ended at the deadline without moving the checkpoint.
    pub stalls: u32,
    pub error: Option<String>,
    /// The lease owner that marked the file DONE or FAILED.
    pub finished_by: Option<String>,
    /// BatchWriteItem statistics of every lease on the file, up to its checkpoint.
    pub writes: WriteStatsSnapshot,
}

/// What a lease-conditioned write records: the file's checkpoint and the write statistics of every lease
/// on the file so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileProgress {
    pub position: FilePosition,
    /// The ETag of the object `position` was read from: a file whose object has another one starts again.
    pub object_etag: Option<String>,
    pub writes: WriteStatsSnapshot,
}

/// A lease held on one file: only the holder of `token` can move its checkpoint or finish it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub restore_id: String,
    pub token: String,
    pub owner: String,
    pub record: FileRecord,
}

/// The result of trying to lease a file.
#[derive(Debug, Clone)]
pub enum Acquired {
    Leased(Box<Lease>),
    Done,
    Failed,
    /// Another worker holds a live lease until `expires_in` from now.
    Busy {
        owner: String,
        expires_in: Duration,
    },
    /// No such file in this restore.
    Missing,
}

/// What the planner wrote when asked to create a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    /// The same restore was already planned (or partly planned): nothing is duplicated.
    Existing,
}

/// The control table client.
#[derive(Clone)]
pub struct ControlTable {
    client: Client,
    name: String,
}

impl ControlTable {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        ControlTable {
            client,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the table (on-demand, TTL on [`TTL_ATTRIBUTE`]) and waits until it is ACTIVE. The SAM
    /// template creates it in AWS; this is for local runs and tests.
    pub async fn create(&self) -> Result<()> {
        let op = format!("CreateTable {}", self.name);
        self.client
            .create_table()
            .table_name(&self.name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr_def("pk")?)
            .attribute_definitions(attr_def("sk")?)
            .key_schema(key_elem("pk", KeyType::Hash)?)
            .key_schema(key_elem("sk", KeyType::Range)?)
            .send()
            .await
            .map_err(|e| sdk_error(&op, &e))?;
        loop {
            let status = self
                .client
                .describe_table()
                .table_name(&self.name)
                .send()
                .await
                .map_err(|e| sdk_error(format!("DescribeTable {}", self.name), &e))?
                .table
                .and_then(|t| t.table_status);
            if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.client
            .update_time_to_live()
            .table_name(&self.name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .map_err(|e| Error::Usage(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| sdk_error(format!("UpdateTimeToLive {}", self.name), &e))?;
        Ok(())
    }

    /// Writes the header of a new restore, or checks that an existing header describes the same restore.
    pub async fn create_header(&self, plan: &RestorePlan, ttl: Duration) -> Result<Created> {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(restore_pk(&plan.restore_id))),
            ("sk".to_owned(), s(HEADER_SK)),
            ("kind".to_owned(), s("header")),
            ("schema_version".to_owned(), n(SCHEMA_VERSION.into())),
            ("restore_id".to_owned(), s(&plan.restore_id)),
            ("table".to_owned(), s(&plan.table)),
            (
                "plan".to_owned(),
                s(serde_json::to_string(plan).expect("plan serialises")),
            ),
            ("status".to_owned(), s("PLANNING")),
            ("created_at".to_owned(), s(&plan.created_at)),
            (TTL_ATTRIBUTE.to_owned(), n(expiry(ttl))),
        ]);
        for (k, e) in plan.exports.iter().enumerate() {
            item.insert(counter(k, "files"), n(e.files));
            for c in COUNTERS {
                item.insert(counter(k, c), n(0));
            }
            item.insert(counter(k, "enqueued"), AttributeValue::Bool(false));
        }
        if self.put_if_absent(item).await? {
            return Ok(Created::New);
        }
        let existing = self.header(&plan.restore_id).await?.ok_or_else(|| {
            Error::Usage(format!(
                "restore {} vanished while it was being planned",
                plan.restore_id
            ))
        })?;
        if !existing.plan.same_restore(plan) {
            return Err(Error::Usage(format!(
                "restore id {} is already used by a restore of table {} from {} export(s) with other \
                 settings; choose another restore id",
                plan.restore_id,
                existing.plan.table,
                existing.plan.exports.len()
            )));
        }
        Ok(Created::Existing)
    }

    /// Puts `item` unless an item with its key exists; false when one did.
    async fn put_if_absent(&self, item: HashMap<String, AttributeValue>) -> Result<bool> {
        let put = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(format!("PutItem {}", self.name), &e)),
        }
    }

    /// Writes one PENDING item per data file, each only if it does not exist yet: a second planner of the
    /// same restore (a Step Functions retry while the first still runs) finds the header `PLANNING` too,
    /// and must never put a file that a worker has leased, checkpointed or finished back to PENDING.
    pub async fn put_files(
        &self,
        plan: &RestorePlan,
        exports: &[Export],
        ttl: Duration,
    ) -> Result<()> {
        let expires = expiry(ttl);
        let mut items = Vec::new();
        for (k, export) in exports.iter().enumerate() {
            for file in &export.files {
                items.push(HashMap::from([
                    ("pk".to_owned(), s(restore_pk(&plan.restore_id))),
                    ("sk".to_owned(), s(file_sk(k, &file.key))),
                    ("kind".to_owned(), s("file")),
                    ("schema_version".to_owned(), n(SCHEMA_VERSION.into())),
                    ("export_index".to_owned(), n(k as u64)),
                    ("export_id".to_owned(), s(export.id())),
                    ("export_type".to_owned(), s(export.export_type.short())),
                    ("bucket".to_owned(), s(&export.uri.bucket)),
                    ("key".to_owned(), s(&file.key)),
                    ("expected_items".to_owned(), n(file.item_count)),
                    ("md5".to_owned(), s(&file.md5)),
                    (
                        "export_etag".to_owned(),
                        file.etag.as_ref().map_or(AttributeValue::Null(true), s),
                    ),
                    ("status".to_owned(), s(RecordStatus::Pending.as_str())),
                    ("offset".to_owned(), n(0)),
                    ("lines".to_owned(), n(0)),
                    ("puts".to_owned(), n(0)),
                    ("deletes".to_owned(), n(0)),
                    ("lease_expires".to_owned(), n(0)),
                    ("deliveries".to_owned(), n(0)),
                    ("stalls".to_owned(), n(0)),
                    (TTL_ATTRIBUTE.to_owned(), n(expires)),
                ]));
            }
        }
        // An item that exists was written by another planner of this restore, and perhaps already worked
        // on: it is kept as it is.
        let puts = futures::stream::iter(items.into_iter().map(|item| self.put_if_absent(item)));
        let mut puts = puts.buffer_unordered(16);
        while let Some(r) = puts.next().await {
            r?;
        }
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(header_key(&plan.restore_id)))
            .update_expression("SET #st = :ready")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":ready", s("READY"))
            .send()
            .await
            .map_err(|e| sdk_error(format!("UpdateItem {}", self.name), &e))?;
        Ok(())
    }

    /// Reads the header with a strongly consistent read.
    pub async fn header(&self, restore_id: &str) -> Result<Option<Header>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(header_key(restore_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(format!("GetItem {}", self.name), &e))?;
        out.item
            .map(|item| parse_header(&self.name, &item))
            .transpose()
    }

    /// The header of a restore that must exist.
    pub async fn require_header(&self, restore_id: &str) -> Result<Header> {
        self.header(restore_id).await?.ok_or_else(|| {
            Error::Usage(format!(
                "restore {restore_id} is not in control table {}; run the plan action first",
                self.name
            ))
        })
    }

    /// Every file item of export `k`, in key order.
    pub async fn files(&self, restore_id: &str, k: usize) -> Result<Vec<FileRecord>> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_values(":pk", s(restore_pk(restore_id)))
                .expression_attribute_values(":prefix", s(file_sk_prefix(k)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error(format!("Query {}", self.name), &e))?;
            for item in out.items() {
                records.push(parse_file(&self.name, item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(records),
            }
        }
    }

    /// Reads one file item.
    pub async fn file(&self, restore_id: &str, k: usize, key: &str) -> Result<Option<FileRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(file_key(restore_id, k, key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(format!("GetItem {}", self.name), &e))?;
        out.item
            .map(|item| parse_file(&self.name, &item))
            .transpose()
    }

    /// Records that every PENDING file of export `k` has a message on the queue.
    pub async fn mark_enqueued(
        &self,
        restore_id: &str,
        k: usize,
        execution: Option<&str>,
    ) -> Result<()> {
        let now = n(epoch_ms(SystemTime::now()));
        self.set_header(
            restore_id,
            &[
                (counter(k, "enqueued"), AttributeValue::Bool(true)),
                (
                    counter(k, "enqueued_by"),
                    execution.map_or(AttributeValue::Null(true), s),
                ),
                (counter(k, "sent_at"), now.clone()),
                (counter(k, "active_at"), now),
            ],
        )
        .await
    }

    /// Records that messages were sent again for files of export `k`.
    pub async fn mark_sent(&self, restore_id: &str, k: usize) -> Result<()> {
        self.set_header(
            restore_id,
            &[(counter(k, "sent_at"), n(epoch_ms(SystemTime::now())))],
        )
        .await
    }

    /// Records the progress the planner saw in export `k`, and that it moved now.
    pub async fn mark_active(
        &self,
        restore_id: &str,
        k: usize,
        finished: u64,
        lines: u64,
    ) -> Result<()> {
        self.set_header(
            restore_id,
            &[
                (counter(k, "seen_finished"), n(finished)),
                (counter(k, "seen_lines"), n(lines)),
                (counter(k, "active_at"), n(epoch_ms(SystemTime::now()))),
            ],
        )
        .await
    }

    async fn set_header(
        &self,
        restore_id: &str,
        values: &[(String, AttributeValue)],
    ) -> Result<()> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(header_key(restore_id)));
        let mut sets = Vec::new();
        for (i, (name, value)) in values.iter().enumerate() {
            sets.push(format!("#a{i} = :v{i}"));
            req = req
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value.clone());
        }
        req.update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map_err(|e| sdk_error(format!("UpdateItem {}", self.name), &e))?;
        Ok(())
    }

    /// Makes a FAILED file of export `k` PENDING again (its position kept: an integrity failure already set
    /// it to 0) and takes it off the header's failed count, in one transaction. False when the file was not
    /// FAILED (another planner of this restore retried it first).
    pub async fn retry_failed(&self, restore_id: &str, k: usize, key: &str) -> Result<bool> {
        let file = Update::builder()
            .table_name(&self.name)
            .set_key(Some(file_key(restore_id, k, key)))
            .update_expression(RETRY)
            .condition_expression("#status = :failed")
            .set_expression_attribute_names(Some(names(&[RETRY, "#status"])))
            .expression_attribute_values(":failed", s(RecordStatus::Failed.as_str()))
            .expression_attribute_values(":pending", s(RecordStatus::Pending.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":at", s(clock::now()))
            .build()
            .map_err(|e| Error::Usage(e.to_string()))?;
        let header = Update::builder()
            .table_name(&self.name)
            .set_key(Some(header_key(restore_id)))
            .update_expression("SET #failed = #failed - :one")
            .expression_attribute_names("#failed", counter(k, "failed"))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| Error::Usage(e.to_string()))?;
        self.transact(vec![
            TransactWriteItem::builder().update(file).build(),
            TransactWriteItem::builder().update(header).build(),
        ])
        .await
    }

    /// Takes a lease on a PENDING file whose lease is free or expired.
    pub async fn acquire(
        &self,
        restore_id: &str,
        k: usize,
        key: &str,
        owner: &str,
        lease_for: Duration,
    ) -> Result<Acquired> {
        let now = epoch_ms(SystemTime::now());
        let token = format!("{owner}/{:016x}", fastrand::u64(..));
        let out = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(file_key(restore_id, k, key)))
            .update_expression(ACQUIRE)
            .condition_expression(ACQUIRE_IF)
            .set_expression_attribute_names(Some(names(&[ACQUIRE, ACQUIRE_IF])))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_values(":exp", n(now + lease_for.as_millis() as u64))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", s(clock::now()))
            .expression_attribute_values(":pending", s(RecordStatus::Pending.as_str()))
            .expression_attribute_values(":now", n(now))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => {
                let attributes = out.attributes.unwrap_or_default();
                let record = parse_file(&self.name, &attributes)?;
                Ok(Acquired::Leased(Box::new(Lease {
                    restore_id: restore_id.to_owned(),
                    token,
                    owner: owner.to_owned(),
                    record,
                })))
            }
            Err(e) if is_conditional(&e) => {
                let Some(record) = self.file(restore_id, k, key).await? else {
                    return Ok(Acquired::Missing);
                };
                Ok(match record.status {
                    RecordStatus::Done => Acquired::Done,
                    RecordStatus::Failed => Acquired::Failed,
                    RecordStatus::Pending => Acquired::Busy {
                        owner: record.lease_owner.unwrap_or_default(),
                        expires_in: Duration::from_millis(
                            record
                                .lease_expires_ms
                                .saturating_sub(epoch_ms(SystemTime::now())),
                        ),
                    },
                })
            }
            Err(e) => Err(sdk_error(format!("UpdateItem {}", self.name), &e)),
        }
    }

    /// Saves a checkpoint and extends the lease. `Ok(false)`: the lease was lost; stop working on the file.
    pub async fn checkpoint(
        &self,
        lease: &Lease,
        progress: &FileProgress,
        lease_for: Duration,
    ) -> Result<bool> {
        let exp = epoch_ms(SystemTime::now()) + lease_for.as_millis() as u64;
        self.leased_update(lease, CHECKPOINT, progress, vec![(":exp", n(exp))])
            .await
    }

    /// Saves a checkpoint and gives the lease up, so the next delivery can take the file at once.
    /// `stalled`: this lease ended without moving the checkpoint.
    pub async fn release(
        &self,
        lease: &Lease,
        progress: &FileProgress,
        stalled: bool,
    ) -> Result<bool> {
        let stalls = if stalled { lease.record.stalls + 1 } else { 0 };
        self.leased_update(
            lease,
            RELEASE,
            progress,
            vec![(":zero", n(0)), (":stalls", n(stalls.into()))],
        )
        .await
    }

    async fn leased_update(
        &self,
        lease: &Lease,
        expression: &str,
        progress: &FileProgress,
        extra: Vec<(&str, AttributeValue)>,
    ) -> Result<bool> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(file_key(
                &lease.restore_id,
                lease.record.export_index,
                &lease.record.file.key,
            )))
            .update_expression(expression)
            .condition_expression(LEASE_HELD)
            .set_expression_attribute_names(Some(names(&[expression, LEASE_HELD])))
            .expression_attribute_values(":token", s(&lease.token))
            .expression_attribute_values(":pending", s(RecordStatus::Pending.as_str()))
            .expression_attribute_values(":at", s(clock::now()));
        for (name, value) in progress_values(progress).into_iter().chain(extra) {
            req = req.expression_attribute_values(name, value);
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(sdk_error(format!("UpdateItem {}", self.name), &e)),
        }
    }

    /// Marks the file DONE and adds its counts to the header, in one transaction. `Ok(false)`: the lease
    /// was lost and nothing was written (whoever holds it now will finish the file).
    pub async fn complete(
        &self,
        lease: &Lease,
        progress: &FileProgress,
        compressed_bytes: u64,
    ) -> Result<bool> {
        self.finish(lease, progress, RecordStatus::Done, compressed_bytes, None)
            .await
    }

    /// Marks the file FAILED with the error text and counts it in the header, in one transaction.
    pub async fn fail(&self, lease: &Lease, progress: &FileProgress, error: &str) -> Result<bool> {
        self.finish(lease, progress, RecordStatus::Failed, 0, Some(error))
            .await
    }

    async fn finish(
        &self,
        lease: &Lease,
        progress: &FileProgress,
        status: RecordStatus,
        compressed_bytes: u64,
        error: Option<&str>,
    ) -> Result<bool> {
        let k = lease.record.export_index;
        let mut file = Update::builder()
            .table_name(&self.name)
            .set_key(Some(file_key(&lease.restore_id, k, &lease.record.file.key)))
            .update_expression(FINISH)
            .condition_expression(LEASE_HELD)
            .set_expression_attribute_names(Some(names(&[FINISH, LEASE_HELD])))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":bytes", n(compressed_bytes))
            .expression_attribute_values(
                ":verified",
                AttributeValue::Bool(status == RecordStatus::Done),
            )
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":at", s(clock::now()))
            .expression_attribute_values(
                ":err",
                error.map_or(AttributeValue::Null(true), |e| s(truncate(e, 4000))),
            )
            .expression_attribute_values(":token", s(&lease.token))
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":pending", s(RecordStatus::Pending.as_str()));
        for (name, value) in progress_values(progress) {
            file = file.expression_attribute_values(name, value);
        }
        let position = progress.position;
        let header = if status == RecordStatus::Done {
            Update::builder()
                .update_expression(
                    "SET #done = #done + :one, #puts = #puts + :puts, #deletes = #deletes + :deletes, \
                     #bytes = #bytes + :bytes",
                )
                .expression_attribute_names("#done", counter(k, "done"))
                .expression_attribute_names("#puts", counter(k, "puts"))
                .expression_attribute_names("#deletes", counter(k, "deletes"))
                .expression_attribute_names("#bytes", counter(k, "compressed_bytes"))
                .expression_attribute_values(":puts", n(position.puts))
                .expression_attribute_values(":deletes", n(position.deletes))
                .expression_attribute_values(":bytes", n(compressed_bytes))
        } else {
            Update::builder()
                .update_expression("SET #failed = #failed + :one")
                .expression_attribute_names("#failed", counter(k, "failed"))
        }
        .table_name(&self.name)
        .set_key(Some(header_key(&lease.restore_id)))
        .expression_attribute_values(":one", n(1));
        self.transact(vec![
            TransactWriteItem::builder()
                .update(file.build().map_err(|e| Error::Usage(e.to_string()))?)
                .build(),
            TransactWriteItem::builder()
                .update(header.build().map_err(|e| Error::Usage(e.to_string()))?)
                .build(),
        ])
        .await
    }

    /// Runs a transaction that touches a file item and the header. `Ok(false)`: a condition failed and
    /// nothing was written. Many workers finish files at once and every transaction touches the header, so
    /// conflicts between transactions are expected and retried.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool> {
        let policy = RetryPolicy::default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let out = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let e = match out {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let reasons: Vec<String> = e
                .as_service_error()
                .and_then(|se| match se {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                        Some(c.cancellation_reasons().iter().filter_map(|r| r.code().map(str::to_owned)).collect())
                    }
                    _ => None,
                })
                .unwrap_or_default();
            let message = describe(&e);
            if reasons.iter().any(|r| r == "ConditionalCheckFailed")
                || (reasons.is_empty() && message.contains("ConditionalCheckFailed"))
            {
                return Ok(false);
            }
            let conflict = reasons.iter().any(|r| r == "TransactionConflict")
                || message.contains("TransactionConflict")
                || e.as_service_error()
                    .is_some_and(|se| se.is_transaction_in_progress_exception());
            let err = sdk_error(format!("TransactWriteItems {}", self.name), &e);
            if !(conflict || err.is_retryable()) || attempt >= policy.max_attempts {
                return Err(err);
            }
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
    }
}

// Update expressions name every attribute through `#name` (see [`names`]): DynamoDB reserves hundreds of
// words, `status`, `offset` and `lines` among them.
const ACQUIRE: &str = "SET #lease_owner = :owner, #lease_token = :token, #lease_expires = :exp, \
     #deliveries = #deliveries + :one, #updated_at = :at";
const ACQUIRE_IF: &str = "#status = :pending AND #lease_expires < :now";
const LEASE_HELD: &str = "#lease_token = :token AND #status = :pending";
const CHECKPOINT: &str = "SET #offset = :off, #lines = :lines, #puts = :puts, #deletes = :deletes, \
     #object_etag = :etag, #writes = :writes, #lease_expires = :exp, #updated_at = :at";
const RELEASE: &str = "SET #offset = :off, #lines = :lines, #puts = :puts, #deletes = :deletes, \
     #object_etag = :etag, #writes = :writes, #lease_expires = :zero, #stalls = :stalls, #updated_at = :at \
     REMOVE #lease_owner, #lease_token";
const FINISH: &str = "SET #status = :status, #offset = :off, #lines = :lines, #puts = :puts, \
     #deletes = :deletes, #object_etag = :etag, #writes = :writes, #compressed_bytes = :bytes, #md5_verified = :verified, #lease_expires = :zero, \
     #updated_at = :at, #error = :err, #finished_by = :owner REMOVE #lease_owner, #lease_token";

const RETRY: &str = "SET #status = :pending, #stalls = :zero, #lease_expires = :zero, #updated_at = :at \
     REMOVE #error, #finished_by, #lease_owner, #lease_token";

/// `#name` → `name` for every placeholder in the expressions.
fn names(expressions: &[&str]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for e in expressions {
        let mut rest = *e;
        while let Some(i) = rest.find('#') {
            let tail = &rest[i + 1..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            out.insert(format!("#{}", &tail[..end]), tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    out
}

/// Counters kept per export in the header, besides `files` and `enqueued`.
const COUNTERS: [&str; 5] = ["done", "failed", "puts", "deletes", "compressed_bytes"];

fn counter(k: usize, name: &str) -> String {
    format!("e{k}_{name}")
}

fn restore_pk(restore_id: &str) -> String {
    format!("restore#{restore_id}")
}

fn file_sk_prefix(k: usize) -> String {
    format!("file#{k:05}#")
}

fn file_sk(k: usize, key: &str) -> String {
    format!("{}{key}", file_sk_prefix(k))
}

fn header_key(restore_id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), s(restore_pk(restore_id))),
        ("sk".to_owned(), s(HEADER_SK)),
    ])
}

fn file_key(restore_id: &str, k: usize, key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), s(restore_pk(restore_id))),
        ("sk".to_owned(), s(file_sk(k, key))),
    ])
}

fn progress_values(progress: &FileProgress) -> [(&'static str, AttributeValue); 6] {
    let p = progress.position;
    [
        (":off", n(p.offset)),
        (":lines", n(p.lines)),
        (":puts", n(p.puts)),
        (":deletes", n(p.deletes)),
        (
            ":etag",
            progress
                .object_etag
                .as_ref()
                .map_or(AttributeValue::Null(true), s),
        ),
        (
            ":writes",
            s(serde_json::to_string(&progress.writes).expect("statistics serialise")),
        ),
    ]
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn expiry(ttl: Duration) -> u64 {
    (SystemTime::now() + ttl)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn is_conditional<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    e.as_service_error()
        .is_some_and(|se| se.code() == Some("ConditionalCheckFailedException"))
}

fn attr_def(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| Error::Usage(e.to_string()))
}

fn key_elem(name: &str, ty: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(ty)
        .build()
        .map_err(|e| Error::Usage(e.to_string()))
}

/// Reads typed attributes of one item, naming the item in every error.
struct Fields<'a> {
    table: &'a str,
    item: &'a HashMap<String, AttributeValue>,
}

impl Fields<'_> {
    fn bad(&self, what: String) -> Error {
        let sk = self
            .item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map_or("?", String::as_str);
        Error::Checkpoint {
            location: format!("control table {} item {sk}", self.table),
            message: what,
        }
    }

    fn str(&self, name: &str) -> Result<&str> {
        match self.item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v),
            _ => Err(self.bad(format!("attribute {name} is missing or not a string"))),
        }
    }

    fn opt_str(&self, name: &str) -> Option<String> {
        match self.item.get(name) {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            _ => None,
        }
    }

    fn num(&self, name: &str) -> Result<u64> {
        match self.item.get(name) {
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| self.bad(format!("attribute {name} = {v} is not a count"))),
            _ => Err(self.bad(format!("attribute {name} is missing or not a number"))),
        }
    }

    fn num_or_zero(&self, name: &str) -> Result<u64> {
        if self.item.contains_key(name) {
            self.num(name)
        } else {
            Ok(0)
        }
    }

    fn bool(&self, name: &str) -> bool {
        matches!(self.item.get(name), Some(AttributeValue::Bool(true)))
    }

    fn check_version(&self) -> Result<()> {
        let v = self.num("schema_version")?;
        if v != u64::from(SCHEMA_VERSION) {
            return Err(self.bad(format!(
                "schema version {v} is not supported by this ddb-pitr (it reads version {SCHEMA_VERSION})"
            )));
        }
        Ok(())
    }
}

fn parse_header(table: &str, item: &HashMap<String, AttributeValue>) -> Result<Header> {
    let f = Fields { table, item };
    f.check_version()?;
    let plan: RestorePlan = serde_json::from_str(f.str("plan")?)
        .map_err(|e| f.bad(format!("attribute plan is not a restore plan: {e}")))?;
    let status = match f.str("status")? {
        "PLANNING" => HeaderStatus::Planning,
        "READY" => HeaderStatus::Ready,
        other => return Err(f.bad(format!("unknown header status {other}"))),
    };
    let exports = (0..plan.exports.len())
        .map(|k| {
            Ok(ExportProgress {
                files: f.num(&counter(k, "files"))?,
                done: f.num_or_zero(&counter(k, "done"))?,
                failed: f.num_or_zero(&counter(k, "failed"))?,
                puts: f.num_or_zero(&counter(k, "puts"))?,
                deletes: f.num_or_zero(&counter(k, "deletes"))?,
                compressed_bytes: f.num_or_zero(&counter(k, "compressed_bytes"))?,
                enqueued: f.bool(&counter(k, "enqueued")),
            })
        })
        .collect::<Result<_>>()?;
    let dispatch = (0..plan.exports.len())
        .map(|k| {
            Ok(Dispatch {
                enqueued_by: f.opt_str(&counter(k, "enqueued_by")),
                sent_at_ms: f.num_or_zero(&counter(k, "sent_at"))?,
                seen_finished: f.num_or_zero(&counter(k, "seen_finished"))?,
                seen_lines: f.num_or_zero(&counter(k, "seen_lines"))?,
                active_at_ms: f.num_or_zero(&counter(k, "active_at"))?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Header {
        plan,
        status,
        exports,
        dispatch,
    })
}

fn parse_file(table: &str, item: &HashMap<String, AttributeValue>) -> Result<FileRecord> {
    let f = Fields { table, item };
    f.check_version()?;
    let status = match f.str("status")? {
        "PENDING" => RecordStatus::Pending,
        "DONE" => RecordStatus::Done,
        "FAILED" => RecordStatus::Failed,
        other => return Err(f.bad(format!("unknown file status {other}"))),
    };
    let export_type = match f.str("export_type")? {
        "FULL" => ExportType::Full,
        "INCREMENTAL" => ExportType::Incremental,
        other => return Err(f.bad(format!("unknown export type {other}"))),
    };
    Ok(FileRecord {
        export_index: f.num("export_index")? as usize,
        export_id: f.str("export_id")?.to_owned(),
        export_type,
        bucket: f.str("bucket")?.to_owned(),
        file: DataFile {
            key: f.str("key")?.to_owned(),
            item_count: f.num("expected_items")?,
            md5: f.str("md5")?.to_owned(),
            etag: f.opt_str("export_etag"),
        },
        object_etag: f.opt_str("object_etag"),
        updated_at: f
            .opt_str("updated_at")
            .and_then(|t| humantime::parse_rfc3339(&t).ok()),
        status,
        position: FilePosition {
            offset: f.num("offset")?,
            lines: f.num("lines")?,
            puts: f.num("puts")?,
            deletes: f.num("deletes")?,
        },
        compressed_bytes: f.num_or_zero("compressed_bytes")?,
        md5_verified: f.bool("md5_verified"),
        lease_owner: f.opt_str("lease_owner"),
        lease_token: f.opt_str("lease_token"),
        lease_expires_ms: f.num_or_zero("lease_expires")?,
        deliveries: f.num_or_zero("deliveries")?,
        stalls: f.num_or_zero("stalls")? as u32,
        error: f.opt_str("error"),
        finished_by: f.opt_str("finished_by"),
        writes: match f.opt_str("writes") {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| f.bad(format!("attribute writes is not write statistics: {e}")))?,
            None => WriteStatsSnapshot::default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_keep_exports_apart_and_ordered() {
        assert!(file_sk(1, "z") < file_sk(2, "a"));
        assert!(file_sk(9, "a") < file_sk(10, "a"));
        assert!(file_sk(3, "a").starts_with(&file_sk_prefix(3)));
        assert!(!file_sk(31, "a").starts_with(&file_sk_prefix(3)));
    }

    #[test]
    fn every_placeholder_is_named() {
        let n = names(&[RELEASE, LEASE_HELD]);
        assert_eq!(n["#offset"], "offset");
        assert_eq!(n["#lease_token"], "lease_token");
        assert_eq!(n["#status"], "status");
        assert_eq!(n["#writes"], "writes");
        assert_eq!(n.len(), 12);
        for expr in [ACQUIRE, ACQUIRE_IF, LEASE_HELD, CHECKPOINT, RELEASE, FINISH] {
            let bare = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '#' || c == ':'))
                .filter(|w| !w.is_empty() && !w.starts_with(['#', ':']))
                .filter(|w| !["SET", "REMOVE", "AND"].contains(w));
            assert_eq!(bare.collect::<Vec<_>>(), Vec::<&str>::new(), "{expr}");
        }
    }
}
