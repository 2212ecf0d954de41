//! The target table's capacity during a restore. (The client-side cap on consumed write units,
//! `--max-wcu`, is [`crate::write::pace`].)
//!
//! - `--manage-capacity` ([`Manager`]): before the first write, raise a provisioned table's write capacity
//!   (the table and every GSI) to a target, or pre-warm an on-demand table with warm throughput; after the
//!   restore (succeeded, failed or interrupted) put provisioned capacity back. The original values are
//!   recorded in the checkpoint *before* anything is changed, so a run after a crash puts them back too.
//!
//! AWS contract this module relies on:
//! - UpdateTable is refused (`ResourceInUseException`) while the table or an index is not ACTIVE, so every
//!   change first waits until the table and all its GSIs are ACTIVE.
//! - Provisioned throughput can be raised at any time but decreased only a limited number of times per UTC
//!   day (4 at any time, then 1 more per hour without a decrease). A refused decrease is a
//!   `LimitExceededException`; the originals stay recorded and the next run with the same checkpoint tries
//!   again.
//! - A GSI has its own write capacity, and a GSI that throttles throttles the writes to its table, so every
//!   GSI is raised with the table.
//! - Application Auto Scaling owns the capacity of a table it scales: a direct UpdateTable is undone at its
//!   next scaling activity. Such tables are refused, or (`--autoscaling adjust`) the scalable targets'
//!   minimum is raised for the restore and put back afterwards.
//! - A new on-demand table sustains about 4,000 writes/s, and on-demand tables throttle when traffic exceeds
//!   twice the previous peak within 30 minutes. `WarmThroughput` pre-provisions a write rate. It can only be
//!   raised, so there is nothing to put back.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_dynamodb::types::{
    BillingMode, GlobalSecondaryIndexUpdate, IndexStatus, ProvisionedThroughput, TableStatus,
    UpdateGlobalSecondaryIndexAction, WarmThroughput,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::aws::error::{describe, sdk_error};
use crate::clock;
use crate::error::{Error, Result};

use super::fetch;

/// The default per-table write-capacity quota of an account: a computed target never exceeds it.
pub const DEFAULT_TABLE_WCU_QUOTA: i64 = 40_000;
/// The write rate a new on-demand table sustains without warm throughput.
pub const ON_DEMAND_INITIAL_WRITE_UNITS: i64 = 4_000;

/// Read and write capacity units of a table or index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throughput {
    pub read: i64,
    pub write: i64,
}

/// A scalable target's bounds before the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalableTargetBounds {
    /// `table/<name>` or `table/<name>/index/<index>`.
    pub resource_id: String,
    /// `dynamodb:table:WriteCapacityUnits` or `dynamodb:index:WriteCapacityUnits`.
    pub dimension: String,
    pub min: i32,
    pub max: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Recorded; the raise may or may not have been applied (a crash can come in between).
    Raising,
    Raised,
    /// Everything is back to the recorded values.
    Restored,
}

/// What `--manage-capacity` changed on a provisioned table, saved in the checkpoint before the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityRecord {
    pub state: RecordState,
    pub target_wcu: i64,
    /// The table's provisioned throughput before the restore.
    pub table: Throughput,
    /// Each GSI's provisioned throughput before the restore.
    pub indexes: BTreeMap<String, Throughput>,
    /// Scalable targets whose bounds were raised (`--autoscaling adjust`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scalable_targets: Vec<ScalableTargetBounds>,
    pub recorded_at: String,
}

/// One capacity setting that was changed, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityChange {
    /// `table` or `index/<name>`.
    pub resource: String,
    /// `write_capacity_units`, `warm_write_units_per_second`, `autoscaling_min` or `autoscaling_max`.
    pub setting: String,
    pub from: i64,
    pub to: i64,
}

/// The table's capacity as DescribeTable reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableCapacity {
    pub active: bool,
    pub on_demand: bool,
    /// Provisioned throughput (zero for on-demand).
    pub table: Throughput,
    pub decreases_today: i64,
    pub warm_write: Option<i64>,
    pub indexes: BTreeMap<String, IndexCapacity>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexCapacity {
    pub throughput: Throughput,
    pub warm_write: Option<i64>,
}

impl TableCapacity {
    pub fn from_description(desc: &aws_sdk_dynamodb::types::TableDescription) -> Self {
        let on_demand = desc
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .is_some_and(|m| *m == BillingMode::PayPerRequest);
        let throughput =
            |p: Option<&aws_sdk_dynamodb::types::ProvisionedThroughputDescription>| Throughput {
                read: p.and_then(|p| p.read_capacity_units()).unwrap_or(0),
                write: p.and_then(|p| p.write_capacity_units()).unwrap_or(0),
            };
        let mut active = desc.table_status() == Some(&TableStatus::Active);
        let mut indexes = BTreeMap::new();
        for gsi in desc.global_secondary_indexes() {
            active &= gsi.index_status().is_none_or(|s| *s == IndexStatus::Active);
            indexes.insert(
                gsi.index_name().unwrap_or_default().to_owned(),
                IndexCapacity {
                    throughput: throughput(gsi.provisioned_throughput()),
                    warm_write: gsi
                        .warm_throughput()
                        .and_then(|w| w.write_units_per_second()),
                },
            );
        }
        TableCapacity {
            active,
            on_demand,
            table: throughput(desc.provisioned_throughput()),
            decreases_today: desc
                .provisioned_throughput()
                .and_then(|p| p.number_of_decreases_today())
                .unwrap_or(0),
            warm_write: desc
                .warm_throughput()
                .and_then(|w| w.write_units_per_second()),
            indexes,
        }
    }
}

/// What `--manage-capacity` does with a provisioned table under Application Auto Scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoScaling {
    /// Refuse to change the capacity of an auto-scaled table, with a message saying so.
    #[default]
    Refuse,
    /// Raise the scalable target's minimum for the restore and put it back afterwards.
    Adjust,
}

/// How `--manage-capacity` behaves.
#[derive(Debug, Clone)]
pub struct ManageOptions {
    /// Write capacity (provisioned) or warm write units per second (on-demand) to set; computed if absent.
    pub target_wcu: Option<i64>,
    pub autoscaling: AutoScaling,
    /// DescribeTable interval while waiting for ACTIVE.
    pub poll: Duration,
    /// The longest wait for ACTIVE before and after a change.
    pub timeout: Duration,
}

impl Default for ManageOptions {
    fn default() -> Self {
        ManageOptions {
            target_wcu: None,
            autoscaling: AutoScaling::Refuse,
            poll: Duration::from_secs(5),
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// The write capacity to raise to when none is given: enough to write `items` in about an hour at one
/// write unit per item (`max_wcu` caps it: raising above the client's own cap buys nothing), never below
/// what the table has, never above the default per-table quota.
pub fn computed_target(items: u64, max_wcu: Option<f64>, current: i64) -> i64 {
    let mut target = (items as f64 / 3600.0).ceil() as i64;
    if let Some(cap) = max_wcu {
        target = target.min(cap.ceil() as i64);
    }
    target.clamp(current.max(1), DEFAULT_TABLE_WCU_QUOTA.max(current))
}

/// Capacity changes on one table, in the order a restore makes them.
pub struct Manager<'a> {
    pub dynamodb: &'a aws_sdk_dynamodb::Client,
    pub autoscaling: &'a aws_sdk_applicationautoscaling::Client,
    pub table: &'a str,
    pub opts: &'a ManageOptions,
}

/// What [`Manager::propose`] would change, towards which target, and what the user should know.
#[derive(Debug)]
pub struct Proposal {
    pub change: Change,
    pub target: i64,
    pub warnings: Vec<String>,
}

/// What to change.
#[derive(Debug)]
pub enum Change {
    /// Provisioned: record this (in the checkpoint), then [`Manager::raise`].
    Raise(CapacityRecord),
    /// On-demand: raise warm throughput to this many write units per second (nothing to put back).
    Warm(i64),
    /// The table already has at least the target.
    Nothing,
}

impl Manager<'_> {
    fn err(&self, message: String) -> Error {
        Error::Capacity {
            table: self.table.to_owned(),
            message,
        }
    }

    /// DescribeTable, reduced to what capacity management needs. Read-only.
    async fn describe(&self) -> Result<TableCapacity> {
        Ok(TableCapacity::from_description(
            &fetch(self.dynamodb, self.table).await?,
        ))
    }

    /// Reads the table and decides what to change, towards `--target-wcu` or else the target
    /// [`computed_target`] gives for `items` under `max_wcu`. Refuses an auto-scaled table unless told to
    /// adjust it. Changes nothing.
    pub async fn propose(&self, items: u64, max_wcu: Option<f64>) -> Result<Proposal> {
        let now = self.describe().await?;
        let target = self
            .opts
            .target_wcu
            .unwrap_or_else(|| computed_target(items, max_wcu, now.table.write));
        let mut warnings = Vec::new();
        if now.on_demand {
            let warm_ok = now.warm_write.unwrap_or(ON_DEMAND_INITIAL_WRITE_UNITS) >= target
                && now
                    .indexes
                    .values()
                    .all(|i| i.warm_write.unwrap_or(ON_DEMAND_INITIAL_WRITE_UNITS) >= target);
            return Ok(Proposal {
                change: if warm_ok {
                    Change::Nothing
                } else {
                    Change::Warm(target)
                },
                target,
                warnings,
            });
        }
        let scalable = self.scalable_targets().await?;
        if !scalable.is_empty() && self.opts.autoscaling == AutoScaling::Refuse {
            let list: Vec<String> = scalable
                .iter()
                .map(|t| format!("{} (min {}, max {})", t.resource_id, t.min, t.max))
                .collect();
            return Err(self.err(format!(
                "is under Application Auto Scaling ({}); a direct capacity change would be undone by its next \
                 scaling activity. Pass --autoscaling adjust to raise the scalable targets' minimum for the \
                 restore (and put it back afterwards), or restore without --manage-capacity",
                list.join(", ")
            )));
        }
        let raise_needed = now.table.write < target
            || now.indexes.values().any(|i| i.throughput.write < target)
            || scalable.iter().any(|t| i64::from(t.min) < target);
        if !raise_needed {
            return Ok(Proposal {
                change: Change::Nothing,
                target,
                warnings,
            });
        }
        if now.decreases_today >= 4 {
            warnings.push(format!(
                "table {} has had {} capacity decreases today (UTC); DynamoDB may refuse to put the capacity \
                 back until an hour without decreases has passed",
                self.table, now.decreases_today
            ));
        }
        Ok(Proposal {
            change: Change::Raise(CapacityRecord {
                state: RecordState::Raising,
                target_wcu: target,
                table: now.table,
                indexes: now
                    .indexes
                    .iter()
                    .map(|(name, i)| (name.clone(), i.throughput))
                    .collect(),
                scalable_targets: scalable,
                recorded_at: clock::now(),
            }),
            target,
            warnings,
        })
    }

    /// Raises the table, every GSI and the scalable targets of `record` to its target. Idempotent: a
    /// setting already at or above the target is left alone, so a resumed run can call it again.
    pub async fn raise(&self, record: &CapacityRecord) -> Result<Vec<CapacityChange>> {
        let mut changes = Vec::new();
        for t in &record.scalable_targets {
            let target = i32::try_from(record.target_wcu).unwrap_or(i32::MAX);
            if t.min < target {
                self.register(t, target, t.max.max(target)).await?;
                changes.push(change(&t.resource_id, "autoscaling_min", t.min, target));
                if t.max < target {
                    changes.push(change(&t.resource_id, "autoscaling_max", t.max, target));
                }
            }
        }
        let now = self.wait_active().await?;
        let mut update = self.dynamodb.update_table().table_name(self.table);
        let mut any = false;
        if now.table.write < record.target_wcu {
            update = update.provisioned_throughput(provisioned(now.table.read, record.target_wcu));
            changes.push(change(
                "table",
                "write_capacity_units",
                now.table.write,
                record.target_wcu,
            ));
            any = true;
        }
        for (name, index) in &now.indexes {
            if index.throughput.write < record.target_wcu {
                update = update.global_secondary_index_updates(index_update(
                    name,
                    provisioned(index.throughput.read, record.target_wcu),
                ));
                changes.push(change(
                    &format!("index/{name}"),
                    "write_capacity_units",
                    index.throughput.write,
                    record.target_wcu,
                ));
                any = true;
            }
        }
        if any {
            tracing::info!(
                table = self.table,
                target_wcu = record.target_wcu,
                "raising write capacity"
            );
            update.send().await.map_err(|e| {
                sdk_error(format!("UpdateTable {} (raise capacity)", self.table), &e)
            })?;
            self.wait_active().await?;
        }
        Ok(changes)
    }

    /// Pre-warms an on-demand table and its GSIs to `target` write units per second.
    pub async fn warm(&self, target: i64) -> Result<Vec<CapacityChange>> {
        let now = self.wait_active().await?;
        let mut changes = Vec::new();
        let mut update = self.dynamodb.update_table().table_name(self.table);
        let current = now.warm_write.unwrap_or(ON_DEMAND_INITIAL_WRITE_UNITS);
        let mut any = false;
        if current < target {
            update = update.warm_throughput(
                WarmThroughput::builder()
                    .write_units_per_second(target)
                    .build(),
            );
            changes.push(change(
                "table",
                "warm_write_units_per_second",
                current,
                target,
            ));
            any = true;
        }
        for (name, index) in &now.indexes {
            let current = index.warm_write.unwrap_or(ON_DEMAND_INITIAL_WRITE_UNITS);
            if current < target {
                update = update.global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder()
                        .update(
                            UpdateGlobalSecondaryIndexAction::builder()
                                .index_name(name)
                                .warm_throughput(
                                    WarmThroughput::builder()
                                        .write_units_per_second(target)
                                        .build(),
                                )
                                .build()
                                .expect("index name is set"),
                        )
                        .build(),
                );
                changes.push(change(
                    &format!("index/{name}"),
                    "warm_write_units_per_second",
                    current,
                    target,
                ));
                any = true;
            }
        }
        if any {
            tracing::info!(
                table = self.table,
                target,
                "pre-warming the on-demand table"
            );
            update.send().await.map_err(|e| {
                sdk_error(format!("UpdateTable {} (warm throughput)", self.table), &e)
            })?;
            self.wait_active().await?;
        }
        Ok(changes)
    }

    /// Puts back what `record` says the table had: scalable-target bounds, then provisioned write capacity
    /// (only where it differs). Read capacity is never changed by a raise, so it is not touched.
    pub async fn restore(&self, record: &CapacityRecord) -> Result<Vec<CapacityChange>> {
        let mut changes = Vec::new();
        let raised = i32::try_from(record.target_wcu).unwrap_or(i32::MAX);
        // Bounds first: with the raised minimum still in place, auto scaling would undo the decrease.
        for t in &record.scalable_targets {
            self.register(t, t.min, t.max).await?;
            if t.min < raised {
                changes.push(change(&t.resource_id, "autoscaling_min", raised, t.min));
            }
            if t.max < raised {
                changes.push(change(&t.resource_id, "autoscaling_max", raised, t.max));
            }
        }
        let now = self.wait_active().await?;
        let mut update = self.dynamodb.update_table().table_name(self.table);
        let mut any = false;
        // The capacity to put back: the original, kept within the scaler's bounds where there is one (a
        // scaler without a policy, or with scale-in disabled, would otherwise never bring it down).
        let desired = |resource_id: String, original: i64| match record
            .scalable_targets
            .iter()
            .find(|t| t.resource_id == resource_id)
        {
            Some(t) => original.clamp(i64::from(t.min), i64::from(t.max.max(t.min))),
            None => original,
        };
        let table_wcu = desired(format!("table/{}", self.table), record.table.write);
        if now.table.write != table_wcu {
            update = update.provisioned_throughput(provisioned(now.table.read, table_wcu));
            changes.push(change(
                "table",
                "write_capacity_units",
                now.table.write,
                table_wcu,
            ));
            any = true;
        }
        for (name, original) in &record.indexes {
            let Some(index) = now.indexes.get(name) else {
                tracing::warn!(index = %name, "index no longer exists; its capacity cannot be put back");
                continue;
            };
            let wcu = desired(format!("table/{}/index/{name}", self.table), original.write);
            if index.throughput.write != wcu {
                update = update.global_secondary_index_updates(index_update(
                    name,
                    provisioned(index.throughput.read, wcu),
                ));
                changes.push(change(
                    &format!("index/{name}"),
                    "write_capacity_units",
                    index.throughput.write,
                    wcu,
                ));
                any = true;
            }
        }
        if any {
            tracing::info!(
                table = self.table,
                "putting the original write capacity back"
            );
            if let Err(e) = update.send().await {
                let limit = e
                    .as_service_error()
                    .is_some_and(|s| s.is_limit_exceeded_exception());
                let what = changes
                    .iter()
                    .filter(|c| c.setting == "write_capacity_units")
                    .map(|c| format!("{} {} WCU", c.resource, c.to))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(self.err(if limit {
                    format!(
                        "DynamoDB refused to decrease the write capacity back to the original values ({what}): \
                         the table has used its decreases for now ({} today). The originals stay recorded in the \
                         checkpoint; run the same restore command with the same --resume later (at most an hour) \
                         to put them back, or set them by hand",
                        now.decreases_today
                    )
                } else {
                    format!(
                        "could not put the original write capacity back ({what}): {}; the originals stay \
                         recorded in the checkpoint and the next run with the same --resume tries again",
                        describe(&e)
                    )
                }));
            }
            self.wait_active().await?;
        }
        Ok(changes)
    }

    /// Waits until the table and all its GSIs are ACTIVE; UpdateTable is refused otherwise.
    pub async fn wait_active(&self) -> Result<TableCapacity> {
        let deadline = Instant::now() + self.opts.timeout;
        loop {
            let now = self.describe().await?;
            if now.active {
                return Ok(now);
            }
            if Instant::now() >= deadline {
                return Err(self.err(format!(
                    "the table or one of its indexes is still not ACTIVE after {}; capacity changes wait for \
                     ACTIVE because DynamoDB refuses UpdateTable while a table is UPDATING",
                    humantime::format_duration(self.opts.timeout)
                )));
            }
            tracing::info!(
                table = self.table,
                "waiting for the table and its indexes to be ACTIVE"
            );
            tokio::time::sleep(self.opts.poll).await;
        }
    }

    /// Scalable targets of the table's and GSIs' write capacity.
    async fn scalable_targets(&self) -> Result<Vec<ScalableTargetBounds>> {
        let mut found = Vec::new();
        let mut pages = self
            .autoscaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Dynamodb)
            .into_paginator()
            .send();
        let prefix = format!("table/{}", self.table);
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                let denied = e
                    .as_service_error()
                    .and_then(aws_sdk_applicationautoscaling::error::ProvideErrorMetadata::code)
                    .is_some_and(|c| c.contains("AccessDenied"));
                if denied {
                    self.err(format!(
                        "cannot tell whether the table is under auto scaling: \
                         application-autoscaling:DescribeScalableTargets was denied ({}). Grant it (see \
                         `ddb-pitr policy --manage-capacity`) or restore without --manage-capacity",
                        describe(&e)
                    ))
                } else {
                    sdk_error("DescribeScalableTargets", &e)
                }
            })?;
            for t in page.scalable_targets() {
                let id = t.resource_id();
                let ours = id == prefix || id.starts_with(&format!("{prefix}/index/"));
                let write = matches!(
                    t.scalable_dimension(),
                    ScalableDimension::DynamoDbTableWriteCapacityUnits
                        | ScalableDimension::DynamoDbIndexWriteCapacityUnits
                );
                if ours && write {
                    found.push(ScalableTargetBounds {
                        resource_id: id.to_owned(),
                        dimension: t.scalable_dimension().as_str().to_owned(),
                        min: t.min_capacity(),
                        max: t.max_capacity(),
                    });
                }
            }
        }
        Ok(found)
    }

    async fn register(&self, t: &ScalableTargetBounds, min: i32, max: i32) -> Result<()> {
        self.autoscaling
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Dynamodb)
            .resource_id(&t.resource_id)
            .scalable_dimension(ScalableDimension::from(t.dimension.as_str()))
            .min_capacity(min)
            .max_capacity(max)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error(format!("RegisterScalableTarget {}", t.resource_id), &e))
    }
}

fn change(
    resource: &str,
    setting: &str,
    from: impl Into<i64>,
    to: impl Into<i64>,
) -> CapacityChange {
    CapacityChange {
        resource: resource.to_owned(),
        setting: setting.to_owned(),
        from: from.into(),
        to: to.into(),
    }
}

fn provisioned(read: i64, write: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(read.max(1))
        .write_capacity_units(write.max(1))
        .build()
        .expect("both units are set")
}

fn index_update(name: &str, throughput: ProvisionedThroughput) -> GlobalSecondaryIndexUpdate {
    GlobalSecondaryIndexUpdate::builder()
        .update(
            UpdateGlobalSecondaryIndexAction::builder()
                .index_name(name)
                .provisioned_throughput(throughput)
                .build()
                .expect("index name is set"),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
    use aws_sdk_dynamodb::operation::update_table::{UpdateTableError, UpdateTableOutput};
    use aws_sdk_dynamodb::types::error::LimitExceededException;
    use aws_sdk_dynamodb::types::{
        GlobalSecondaryIndexDescription, ProvisionedThroughputDescription, TableDescription,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    #[test]
    fn computed_targets_stay_between_the_table_and_the_quota() {
        assert_eq!(computed_target(36_000_000, None, 5), 10_000);
        assert_eq!(computed_target(36_000_000, Some(2500.0), 5), 2500);
        assert_eq!(computed_target(1000, None, 50), 50, "never below the table");
        assert_eq!(
            computed_target(u64::MAX / 2, None, 5),
            DEFAULT_TABLE_WCU_QUOTA
        );
        assert_eq!(computed_target(u64::MAX / 2, None, 60_000), 60_000);
    }

    fn table(status: TableStatus, write: i64, index_status: IndexStatus) -> DescribeTableOutput {
        let throughput = |w| {
            ProvisionedThroughputDescription::builder()
                .read_capacity_units(7)
                .write_capacity_units(w)
                .number_of_decreases_today(1)
                .build()
        };
        DescribeTableOutput::builder()
            .table(
                TableDescription::builder()
                    .table_name("t")
                    .table_status(status)
                    .provisioned_throughput(throughput(write))
                    .global_secondary_indexes(
                        GlobalSecondaryIndexDescription::builder()
                            .index_name("g")
                            .index_status(index_status)
                            .provisioned_throughput(throughput(write))
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    fn record() -> CapacityRecord {
        CapacityRecord {
            state: RecordState::Raising,
            target_wcu: 500,
            table: Throughput { read: 7, write: 10 },
            indexes: [("g".to_owned(), Throughput { read: 7, write: 10 })].into(),
            scalable_targets: vec![],
            recorded_at: "2026-11-24T00:00:00Z".into(),
        }
    }

    /// An Application Auto Scaling client for managers whose record has no scalable targets: never called.
    fn unused_autoscaling() -> aws_sdk_applicationautoscaling::Client {
        aws_sdk_applicationautoscaling::Client::from_conf(
            aws_sdk_applicationautoscaling::Config::builder()
                .behavior_version_latest()
                .build(),
        )
    }

    fn manager_opts() -> ManageOptions {
        ManageOptions {
            poll: Duration::from_millis(1),
            ..ManageOptions::default()
        }
    }

    #[tokio::test]
    async fn update_table_waits_until_the_table_and_its_indexes_are_active() {
        use TableStatus as T;
        let updating = mock!(Client::describe_table)
            .sequence()
            .output(|| table(T::Updating, 10, IndexStatus::Active))
            .output(|| table(T::Active, 10, IndexStatus::Updating))
            .output(|| table(T::Active, 10, IndexStatus::Active))
            .build();
        let raise = mock!(Client::update_table)
            .match_requests(|r| {
                r.provisioned_throughput().is_some_and(|p| {
                    p.write_capacity_units() == 500 && p.read_capacity_units() == 7
                }) && r.global_secondary_index_updates().len() == 1
            })
            .then_output(|| UpdateTableOutput::builder().build());
        let after = mock!(Client::describe_table)
            .then_output(|| table(TableStatus::Active, 500, IndexStatus::Active));
        let ddb = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            &[&updating, &raise, &after]
        );
        let scaling = unused_autoscaling();
        let opts = manager_opts();
        let m = Manager {
            dynamodb: &ddb,
            autoscaling: &scaling,
            table: "t",
            opts: &opts,
        };
        let changes = m.raise(&record()).await.unwrap();
        assert_eq!(
            updating.num_calls(),
            3,
            "polled until everything was ACTIVE"
        );
        assert_eq!(raise.num_calls(), 1);
        assert_eq!(
            after.num_calls(),
            1,
            "and waited for ACTIVE after the change"
        );
        assert_eq!(
            changes,
            vec![
                change("table", "write_capacity_units", 10, 500),
                change("index/g", "write_capacity_units", 10, 500)
            ]
        );
    }

    #[tokio::test]
    async fn a_refused_decrease_says_what_to_do_and_keeps_the_record() {
        let raised = mock!(Client::describe_table)
            .then_output(|| table(TableStatus::Active, 500, IndexStatus::Active));
        let refused = mock!(Client::update_table).then_error(|| {
            UpdateTableError::LimitExceededException(
                LimitExceededException::builder()
                    .message(
                        "Subscriber limit exceeded: Provisioned throughput decreases are limited",
                    )
                    .build(),
            )
        });
        let ddb = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, &[&raised, &refused]);
        let scaling = unused_autoscaling();
        let opts = manager_opts();
        let m = Manager {
            dynamodb: &ddb,
            autoscaling: &scaling,
            table: "t",
            opts: &opts,
        };
        let err = m.restore(&record()).await.unwrap_err().to_string();
        assert!(
            err.contains("refused to decrease")
                && err.contains("table 10 WCU, index/g 10 WCU")
                && err.contains("same --resume"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn waiting_for_active_gives_up_after_the_timeout() {
        let updating = mock!(Client::describe_table)
            .then_output(|| table(TableStatus::Updating, 10, IndexStatus::Active));
        let ddb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&updating]);
        let scaling = unused_autoscaling();
        let opts = ManageOptions {
            poll: Duration::from_millis(1),
            timeout: Duration::from_millis(20),
            ..ManageOptions::default()
        };
        let m = Manager {
            dynamodb: &ddb,
            autoscaling: &scaling,
            table: "t",
            opts: &opts,
        };
        let err = m.raise(&record()).await.unwrap_err().to_string();
        assert!(err.contains("still not ACTIVE"), "{err}");
        assert!(updating.num_calls() >= 2);
    }
}
