//! The operations: BatchWriteItem (validate → throttle → record → answer) and DescribeTable, over the
//! shared state of one endpoint.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, ThrottleMode};
use crate::items::{BatchWriteInput, MAX_BATCH_REQUESTS, Write, WriteKind, parse_write};
use crate::protocol::{ApiError, ErrorCode};
use crate::store::TableState;
use crate::throttle::{Clock, TokenBucket};

/// Everything one endpoint shares between its connections.
pub struct State {
    pub config: Config,
    pub tables: Vec<TableState>,
    buckets: Vec<Mutex<TokenBucket>>,
    pub clock: Arc<dyn Clock>,
    rng: Mutex<fastrand::Rng>,
    created: f64,
    pub counters: Counters,
}

/// Endpoint-wide counters (per-table ones live in [`TableState`]).
#[derive(Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub batch_write_item: AtomicU64,
    pub describe_table: AtomicU64,
    pub throttled_requests: AtomicU64,
    pub unprocessed_items_returned: AtomicU64,
    pub error_responses: AtomicU64,
    pub faults_5xx: AtomicU64,
    pub faults_dropped: AtomicU64,
}

/// `GET /stats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// TCP connections accepted (a client that reuses connections keeps this low).
    pub connections: u64,
    /// API calls (`POST /`), faults included.
    pub requests: u64,
    pub batch_write_item_requests: u64,
    pub describe_table_requests: u64,
    pub items_put: u64,
    pub items_deleted: u64,
    /// Calls refused whole with `ProvisionedThroughputExceededException`.
    pub throttled_requests: u64,
    pub unprocessed_items_returned: u64,
    pub wcu_consumed: u64,
    /// 4xx answers other than throttling (validation, unknown table, …).
    pub error_responses: u64,
    pub faults_injected: u64,
    pub faults_5xx: u64,
    pub faults_dropped: u64,
    pub tables: BTreeMap<String, TableStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableStats {
    pub items_put: u64,
    pub items_deleted: u64,
    /// Keys whose last write was a put.
    pub item_count: u64,
    pub wcu_consumed: u64,
    /// See [`crate::store`]; `null` with `--count-only`.
    pub key_digest: Option<String>,
}

/// A fault drawn for one API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 500 InternalServerError or 503 without applying the request.
    Status(ErrorCode),
    /// Apply the request, then close the connection without answering.
    Drop,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReturnCapacity {
    None,
    Total,
    Indexes,
}

/// One parsed write with its key's canonical bytes.
struct Parsed<'a> {
    write: Write<'a>,
    key: Vec<u8>,
}

impl State {
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        config.validate()?;
        let now = clock.now();
        let tables = config
            .tables
            .iter()
            .map(|t| TableState::new(t.clone(), !config.count_only, config.store))
            .collect();
        let buckets = config
            .tables
            .iter()
            .map(|_| {
                Mutex::new(TokenBucket::new(
                    config.wcu.unwrap_or(1),
                    config.burst_seconds,
                    now,
                ))
            })
            .collect();
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs() as f64);
        Ok(State {
            rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
            config,
            tables,
            buckets,
            clock,
            created,
            counters: Counters::default(),
        })
    }

    pub fn table(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.spec.name == name)
    }

    /// Draws this call's fault, if any (seeded: one client sending one call at a time sees the same
    /// sequence every run).
    pub fn draw_fault(&self) -> Option<Fault> {
        let (p5, pdrop) = (self.config.fault_5xx_rate, self.config.fault_drop_rate);
        if p5 == 0.0 && pdrop == 0.0 {
            return None;
        }
        let mut rng = self.rng.lock().expect("rng lock");
        let x = rng.f64();
        if x < p5 {
            self.counters.faults_5xx.fetch_add(1, Ordering::Relaxed);
            Some(Fault::Status(if rng.bool() {
                ErrorCode::InternalServerError
            } else {
                ErrorCode::ServiceUnavailable
            }))
        } else if x < p5 + pdrop {
            self.counters.faults_dropped.fetch_add(1, Ordering::Relaxed);
            Some(Fault::Drop)
        } else {
            None
        }
    }

    /// Clears counters, stored items and key digests, refills the buckets and re-seeds the faults.
    pub fn reset(&self) {
        for t in &self.tables {
            t.reset();
        }
        let now = self.clock.now();
        for b in &self.buckets {
            *b.lock().expect("bucket lock") =
                TokenBucket::new(self.config.wcu.unwrap_or(1), self.config.burst_seconds, now);
        }
        *self.rng.lock().expect("rng lock") = fastrand::Rng::with_seed(self.config.seed);
        let c = &self.counters;
        for counter in [
            &c.connections,
            &c.requests,
            &c.batch_write_item,
            &c.describe_table,
            &c.throttled_requests,
            &c.unprocessed_items_returned,
            &c.error_responses,
            &c.faults_5xx,
            &c.faults_dropped,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        let tables: BTreeMap<String, TableStats> = self
            .tables
            .iter()
            .map(|t| {
                (
                    t.spec.name.clone(),
                    TableStats {
                        items_put: get(&t.puts),
                        items_deleted: get(&t.deletes),
                        item_count: t.item_count(),
                        wcu_consumed: get(&t.wcu),
                        key_digest: t.digest(),
                    },
                )
            })
            .collect();
        Stats {
            connections: get(&c.connections),
            requests: get(&c.requests),
            batch_write_item_requests: get(&c.batch_write_item),
            describe_table_requests: get(&c.describe_table),
            items_put: tables.values().map(|t| t.items_put).sum(),
            items_deleted: tables.values().map(|t| t.items_deleted).sum(),
            throttled_requests: get(&c.throttled_requests),
            unprocessed_items_returned: get(&c.unprocessed_items_returned),
            wcu_consumed: tables.values().map(|t| t.wcu_consumed).sum(),
            error_responses: get(&c.error_responses),
            faults_injected: get(&c.faults_5xx) + get(&c.faults_dropped),
            faults_5xx: get(&c.faults_5xx),
            faults_dropped: get(&c.faults_dropped),
            tables,
        }
    }

    /// The stored items of `table` as JSON lines, in key order (`--store`); `None` if the table is
    /// unknown or items are not stored.
    pub fn items_jsonl(&self, table: &str) -> Option<String> {
        let t = &self.tables[self.table(table)?];
        let items = t.items.as_ref()?.lock().expect("items lock");
        let mut entries: Vec<_> = items.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = String::new();
        for (_, (json, _)) in entries {
            out.push_str(json);
            out.push('\n');
        }
        Some(out)
    }

    /// BatchWriteItem: the JSON answer, or the error to send.
    pub fn batch_write_item(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        self.counters
            .batch_write_item
            .fetch_add(1, Ordering::Relaxed);
        let text = simdutf8::basic::from_utf8(body)
            .map_err(|_| ApiError::serialization("The request body is not valid UTF-8"))?;
        let input: BatchWriteInput =
            serde_json::from_str(text).map_err(|e| ApiError::serialization(e.to_string()))?;
        let capacity = match input.return_consumed_capacity.as_ref().map(|s| &*s.0) {
            None | Some("NONE") => ReturnCapacity::None,
            Some("TOTAL") => ReturnCapacity::Total,
            Some("INDEXES") => ReturnCapacity::Indexes,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'returnConsumedCapacity' failed to \
                     satisfy constraint: Member must satisfy enum value set: [INDEXES, TOTAL, NONE]"
                )));
            }
        };
        let Some(request_items) = input.request_items else {
            return Err(ApiError::validation(
                "1 validation error detected: Value null at 'requestItems' failed to satisfy constraint: \
                 Member must not be null",
            ));
        };
        let request_items = request_items.0;
        if request_items.is_empty() {
            return Err(ApiError::validation(
                "1 validation error detected: Value '{}' at 'requestItems' failed to satisfy constraint: \
                 Member must have length greater than or equal to 1",
            ));
        }
        for (name, requests) in &request_items {
            if requests.is_empty() || requests.len() > MAX_BATCH_REQUESTS {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{{{}=[{} write requests]}}' at 'requestItems' failed \
                     to satisfy constraint: Map value must satisfy constraint: [Member must have length less \
                     than or equal to 25, Member must have length greater than or equal to 1]",
                    name.0,
                    requests.len()
                )));
            }
        }
        let total: usize = request_items.iter().map(|(_, r)| r.len()).sum();
        if total > MAX_BATCH_REQUESTS {
            return Err(ApiError::validation(
                "Too many items requested for the BatchWriteItem call",
            ));
        }

        let mut batches: Vec<(usize, Vec<Parsed>)> = Vec::with_capacity(request_items.len());
        for (name, requests) in &request_items {
            let index = self.table(&name.0).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ResourceNotFound,
                    format!("Requested resource not found: Table: {} not found", name.0),
                )
            })?;
            if batches.iter().any(|(i, _)| *i == index) {
                return Err(ApiError::validation(format!(
                    "Table {} appears more than once in RequestItems",
                    name.0
                )));
            }
            let spec = &self.tables[index].spec;
            let mut parsed: Vec<Parsed> = Vec::with_capacity(requests.len());
            for raw in requests {
                let write = parse_write(raw, spec)?;
                let key = write.key.to_bytes();
                if parsed.iter().any(|p| p.key == key) {
                    return Err(ApiError::validation(
                        "Provided list of item keys contains duplicates",
                    ));
                }
                parsed.push(Parsed { write, key });
            }
            batches.push((index, parsed));
        }

        let fit = self.admit(&batches)?;

        let mut unprocessed = 0u64;
        let mut consumed: Vec<(usize, u64)> = Vec::with_capacity(batches.len());
        for ((index, parsed), &n) in batches.iter().zip(&fit) {
            let table = &self.tables[*index];
            let accepted = &parsed[..n];
            let mut units = 0;
            let mut puts = 0;
            for p in accepted {
                table.record(p.write.kind, &p.write.key);
                units += p.write.units();
                puts += u64::from(p.write.kind == WriteKind::Put);
            }
            if let Some(items) = &table.items {
                let mut items = items.lock().expect("items lock");
                for p in accepted {
                    match p.write.item {
                        Some(item) => {
                            items.insert(p.key.clone(), (item.get().into(), p.write.size));
                        }
                        None => {
                            items.remove(&p.key);
                        }
                    }
                }
            }
            table.puts.fetch_add(puts, Ordering::Relaxed);
            table.deletes.fetch_add(n as u64 - puts, Ordering::Relaxed);
            table.wcu.fetch_add(units, Ordering::Relaxed);
            unprocessed += (parsed.len() - n) as u64;
            consumed.push((*index, units));
        }
        self.counters
            .unprocessed_items_returned
            .fetch_add(unprocessed, Ordering::Relaxed);

        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"UnprocessedItems\":{");
        let mut first = true;
        for ((index, parsed), &n) in batches.iter().zip(&fit) {
            if n == parsed.len() {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            push_name(&mut out, &self.tables[*index].spec.name);
            out.extend_from_slice(b":[");
            for (i, p) in parsed[n..].iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                p.write.push_request(&mut out);
            }
            out.push(b']');
        }
        out.push(b'}');
        if capacity != ReturnCapacity::None {
            out.extend_from_slice(b",\"ConsumedCapacity\":[");
            for (i, (index, units)) in consumed.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"TableName\":");
                push_name(&mut out, &self.tables[*index].spec.name);
                out.extend_from_slice(format!(",\"CapacityUnits\":{units}.0").as_bytes());
                if capacity == ReturnCapacity::Indexes {
                    out.extend_from_slice(
                        format!(",\"Table\":{{\"CapacityUnits\":{units}.0}}").as_bytes(),
                    );
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        out.push(b'}');
        Ok(out)
    }

    /// How many requests of each table's list fit in its bucket, in order; takes their units. Refuses the
    /// call (taking nothing) when nothing fits or, in `error` mode, when not everything fits.
    fn admit(&self, batches: &[(usize, Vec<Parsed>)]) -> Result<Vec<usize>, ApiError> {
        let all: Vec<usize> = batches.iter().map(|(_, p)| p.len()).collect();
        if self.config.wcu.is_none() {
            return Ok(all);
        }
        // Lock in table order, so that two calls naming the same tables cannot deadlock.
        let mut order: Vec<usize> = (0..batches.len()).collect();
        order.sort_by_key(|&i| batches[i].0);
        let now = self.clock.now();
        let mut guards: Vec<(usize, MutexGuard<TokenBucket>)> = order
            .iter()
            .map(|&i| (i, self.buckets[batches[i].0].lock().expect("bucket lock")))
            .collect();
        let mut fit = vec![0; batches.len()];
        let mut units = vec![0u64; batches.len()];
        for (i, bucket) in &mut guards {
            bucket.refill(now);
            for p in &batches[*i].1 {
                let u = p.write.units();
                if !bucket.fits(units[*i] + u) {
                    break;
                }
                units[*i] += u;
                fit[*i] += 1;
            }
        }
        let refused = match self.config.throttle_mode {
            ThrottleMode::Error => fit != all,
            ThrottleMode::Unprocessed => fit.iter().all(|&n| n == 0),
        };
        if refused {
            self.counters
                .throttled_requests
                .fetch_add(1, Ordering::Relaxed);
            let first_short = (0..batches.len()).find(|&i| fit[i] < all[i]).unwrap_or(0);
            return Err(ApiError::throttled(
                self.tables[batches[first_short].0].arn.clone(),
            ));
        }
        for (i, bucket) in &mut guards {
            bucket.take(units[*i]);
        }
        Ok(fit)
    }

    /// DescribeTable: a description shaped like DynamoDB's for an ACTIVE table.
    pub fn describe_table(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        self.counters.describe_table.fetch_add(1, Ordering::Relaxed);
        #[derive(Deserialize)]
        struct Input {
            #[serde(rename = "TableName")]
            table_name: Option<String>,
        }
        let input: Input =
            serde_json::from_slice(body).map_err(|e| ApiError::serialization(e.to_string()))?;
        let name = input.table_name.ok_or_else(|| {
            ApiError::validation(
                "1 validation error detected: Value null at 'tableName' failed to satisfy constraint: \
                 Member must not be null",
            )
        })?;
        let table = &self.tables[self.table(&name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ResourceNotFound,
                format!("Requested resource not found: Table: {name} not found"),
            )
        })?];
        let spec = &table.spec;
        let key_schema: Vec<_> = spec
            .key_attributes()
            .zip(["HASH", "RANGE"])
            .map(|(a, kind)| serde_json::json!({"AttributeName": a.name, "KeyType": kind}))
            .collect();
        let definitions: Vec<_> = spec
            .key_attributes()
            .map(|a| serde_json::json!({"AttributeName": a.name, "AttributeType": a.ty.as_str()}))
            .collect();
        let mut description = serde_json::json!({
            "TableName": spec.name,
            "TableArn": table.arn,
            "TableId": format!("00000000-0000-4000-8000-{:012x}", self.table(&name).unwrap_or(0)),
            "TableStatus": "ACTIVE",
            "CreationDateTime": self.created,
            "KeySchema": key_schema,
            "AttributeDefinitions": definitions,
            "ItemCount": table.item_count(),
            "TableSizeBytes": table.size_bytes(),
            "DeletionProtectionEnabled": false,
        });
        match self.config.wcu {
            Some(wcu) => {
                description["ProvisionedThroughput"] = serde_json::json!({
                    "ReadCapacityUnits": wcu,
                    "WriteCapacityUnits": wcu,
                    "NumberOfDecreasesToday": 0,
                });
                description["BillingModeSummary"] =
                    serde_json::json!({"BillingMode": "PROVISIONED"});
            }
            None => {
                description["ProvisionedThroughput"] = serde_json::json!({
                    "ReadCapacityUnits": 0,
                    "WriteCapacityUnits": 0,
                    "NumberOfDecreasesToday": 0,
                });
                description["BillingModeSummary"] = serde_json::json!({
                    "BillingMode": "PAY_PER_REQUEST",
                    "LastUpdateToPayPerRequestDateTime": self.created,
                });
            }
        }
        Ok(
            serde_json::to_vec(&serde_json::json!({ "Table": description }))
                .expect("a JSON value serialises"),
        )
    }
}

/// Table names are checked against DynamoDB's character set, so they need no escaping.
fn push_name(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}
