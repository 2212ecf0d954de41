//! What a restore will cost: write units extrapolated from a sample of each export, for the table and each
//! index, in time at the table's capacity and in dollars.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::{KeyType as DdbKeyType, ProjectionType, TableDescription};
use serde::Serialize;

use crate::error::Result;
use crate::export::location::ExportUri;
use crate::export::manifest::Export;
use crate::item::key::KeySchema;
use crate::item::size;
use crate::item::{Item, WriteOp};
use crate::table::capacity::TableCapacity;
use crate::table::{self};

use super::{Check, Options, Status};

/// The write request units per second a new on-demand table can serve at once (its initial warm
/// throughput, per the DynamoDB documentation).
pub const NEW_ON_DEMAND_WRITE_UNITS: f64 = 4000.0;

/// The write units a restore will consume, and what that means in time and money. Extrapolated from the
/// first lines of each data file: an estimate, not a measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// How the numbers were made, in words.
    pub basis: String,
    pub sampled_files: u64,
    pub sampled_lines: u64,
    /// Lines in the exports (from the manifests).
    pub items: u64,
    pub estimated_puts: u64,
    pub estimated_deletes: u64,
    /// Table and index write units together: what an on-demand table bills.
    pub write_units: u64,
    /// Write units of the table itself (local secondary indexes included: they share its capacity).
    pub table_write_units: u64,
    /// Write units per global secondary index.
    pub index_write_units: BTreeMap<String, u64>,
    /// True when deletes are counted at their minimum (1 unit on the table and on each index): the size of
    /// a deleted item is not in the export.
    pub lower_bound: bool,
    pub mean_put_item_bytes: Option<f64>,
    /// Time at the table's current write capacity; `None` when the table could not be described.
    pub at_current_capacity: Option<Timing>,
    /// Time at `--max-wcu`.
    pub at_max_wcu: Option<Timing>,
    pub price_per_million_wru: f64,
    pub on_demand_cost_usd: f64,
    pub exports: Vec<ExportEstimate>,
}

/// A duration at a write rate.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub write_units_per_second: f64,
    /// Where the rate comes from, and which resource limits it.
    pub source: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportEstimate {
    pub export_id: String,
    pub items: u64,
    pub sampled_files: u64,
    pub sampled_lines: u64,
    pub sampled_puts: u64,
    pub sampled_deletes: u64,
    pub mean_put_item_bytes: Option<f64>,
    pub estimated_write_units: u64,
}

/// The target table's description: what [`table::describe`] checks, plus capacity and indexes.
#[derive(Debug, Clone)]
pub struct TableFacts {
    pub info: table::TableInfo,
    pub on_demand: bool,
    /// Table write rate and where it comes from.
    pub rate: (f64, String),
    pub indexes: Vec<Index>,
}

/// A secondary index, as far as write costs go.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    pub global: bool,
    /// The index's own key attributes.
    pub keys: Vec<String>,
    pub projection: Projection,
    /// A global index's own write rate (provisioned WCU or warm throughput).
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

impl Index {
    /// The write units of an item's entry in this index, or `None` when the index does not hold the item
    /// (a sparse index: the item lacks one of the index's key attributes).
    pub fn write_units(&self, table_key: &KeySchema, item: &Item) -> Option<u64> {
        if !self.keys.iter().all(|k| item.contains_key(k)) {
            return None;
        }
        let projected = match &self.projection {
            Projection::All => size::item_size(item),
            Projection::KeysOnly | Projection::Include(_) => {
                let mut names: BTreeSet<&str> = self.keys.iter().map(String::as_str).collect();
                names.extend(table_key.attrs.iter().map(|a| a.name.as_str()));
                if let Projection::Include(extra) = &self.projection {
                    names.extend(extra.iter().map(String::as_str));
                }
                names
                    .into_iter()
                    .filter_map(|n| item.get(n).map(|v| size::attribute_size(n, v)))
                    .sum()
            }
        };
        Some(size::wcu(projected))
    }
}

impl TableFacts {
    pub fn from_description(info: table::TableInfo, desc: &TableDescription) -> Self {
        let capacity = TableCapacity::from_description(desc);
        let on_demand = capacity.on_demand;
        let rate = if on_demand {
            let warm = capacity.warm_write.filter(|&w| w > 0);
            let max = desc
                .on_demand_throughput()
                .and_then(|o| o.max_write_request_units())
                .filter(|&m| m > 0);
            match (warm, max) {
                (Some(w), Some(m)) if m < w => (m as f64, format!("on-demand maximum {m} WRU/s")),
                (Some(w), _) => (w as f64, format!("on-demand warm throughput {w} WRU/s")),
                (None, Some(m)) => (m as f64, format!("on-demand maximum {m} WRU/s")),
                (None, None) => (
                    NEW_ON_DEMAND_WRITE_UNITS,
                    "a new on-demand table's initial 4,000 WRU/s (no warm throughput reported)"
                        .into(),
                ),
            }
        } else {
            let wcu = capacity.table.write;
            (wcu as f64, format!("provisioned {wcu} WCU"))
        };
        let keys_of = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
            let mut keys: Vec<(bool, String)> = schema
                .iter()
                .map(|k| {
                    (
                        *k.key_type() == DdbKeyType::Range,
                        k.attribute_name().to_owned(),
                    )
                })
                .collect();
            keys.sort();
            keys.into_iter().map(|(_, n)| n).collect::<Vec<_>>()
        };
        let projection_of = |p: Option<&aws_sdk_dynamodb::types::Projection>| match p
            .and_then(|p| p.projection_type())
        {
            Some(ProjectionType::KeysOnly) => Projection::KeysOnly,
            Some(ProjectionType::Include) => Projection::Include(
                p.map(|p| p.non_key_attributes().to_vec())
                    .unwrap_or_default(),
            ),
            _ => Projection::All,
        };
        let mut indexes: Vec<Index> = desc
            .global_secondary_indexes()
            .iter()
            .map(|g| Index {
                name: g.index_name().unwrap_or_default().to_owned(),
                global: true,
                keys: keys_of(g.key_schema()),
                projection: projection_of(g.projection()),
                rate: capacity
                    .indexes
                    .get(g.index_name().unwrap_or_default())
                    .and_then(|i| {
                        if on_demand {
                            i.warm_write.filter(|&w| w > 0).map(|w| w as f64)
                        } else {
                            g.provisioned_throughput()
                                .and_then(|p| p.write_capacity_units())
                                .map(|_| i.throughput.write as f64)
                        }
                    }),
            })
            .collect();
        indexes.extend(desc.local_secondary_indexes().iter().map(|l| Index {
            name: l.index_name().unwrap_or_default().to_owned(),
            global: false,
            keys: keys_of(l.key_schema()),
            projection: projection_of(l.projection()),
            rate: None,
        }));
        TableFacts {
            info,
            on_demand,
            rate,
            indexes,
        }
    }

    pub(super) fn summary(&self) -> String {
        let indexes = if self.indexes.is_empty() {
            "no secondary indexes".to_owned()
        } else {
            self.indexes
                .iter()
                .map(|i| {
                    format!(
                        "{} {} ({})",
                        if i.global { "GSI" } else { "LSI" },
                        i.name,
                        match &i.projection {
                            Projection::All => "ALL".to_owned(),
                            Projection::KeysOnly => "KEYS_ONLY".to_owned(),
                            Projection::Include(a) => format!("INCLUDE {}", a.join(",")),
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "ACTIVE, key {}, {}, {}",
            self.info.key,
            if self.on_demand {
                "on-demand"
            } else {
                "provisioned"
            },
            indexes
        )
    }
}

/// What the sampled lines of one export cost.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub files: u64,
    pub lines: u64,
    pub puts: u64,
    pub deletes: u64,
    pub put_bytes: u64,
    /// Table write units of the sampled puts (local indexes included).
    pub table_units: u64,
    /// Write units of the sampled puts per global index, in [`TableFacts::indexes`] order (local ones 0).
    pub index_units: Vec<u64>,
}

impl Tally {
    pub(super) fn new(indexes: usize) -> Self {
        Tally {
            index_units: vec![0; indexes],
            ..Tally::default()
        }
    }

    /// Adds one write.
    pub fn add(&mut self, op: &WriteOp, key: &KeySchema, indexes: &[Index]) {
        self.lines += 1;
        match op {
            WriteOp::Delete(_) => self.deletes += 1,
            WriteOp::Put(item) => {
                self.puts += 1;
                let bytes = size::item_size(item);
                self.put_bytes += bytes;
                self.table_units += size::wcu(bytes);
                for (i, index) in indexes.iter().enumerate() {
                    if let Some(units) = index.write_units(key, item) {
                        if index.global {
                            self.index_units[i] += units;
                        } else {
                            self.table_units += units;
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn estimate(
    opts: &Options,
    exports: &[&Export],
    table: Option<&TableFacts>,
    samples: Option<&[Result<Tally>]>,
) -> Estimate {
    let gsis: Vec<&Index> = table
        .map(|t| t.indexes.iter().filter(|i| i.global).collect())
        .unwrap_or_default();
    let mut per_export = Vec::new();
    let (mut table_units, mut puts_total, mut deletes_total) = (0f64, 0f64, 0f64);
    let mut index_units: BTreeMap<String, f64> =
        gsis.iter().map(|i| (i.name.clone(), 0.0)).collect();
    let (mut sampled_files, mut sampled_lines, mut put_bytes, mut puts_sampled) = (0, 0, 0, 0);
    for (i, export) in exports.iter().enumerate() {
        let items = export.item_count() as f64;
        let tally = samples.and_then(|s| s.get(i)).and_then(|t| t.as_ref().ok());
        let mut units = 0f64;
        match tally {
            Some(t) if t.lines > 0 => {
                let put_share = t.puts as f64 / t.lines as f64;
                let puts = items * put_share;
                let deletes = items - puts;
                puts_total += puts;
                deletes_total += deletes;
                let per_put = |u: u64| {
                    if t.puts == 0 {
                        0.0
                    } else {
                        u as f64 / t.puts as f64
                    }
                };
                let table_part = puts * per_put(t.table_units) + deletes;
                table_units += table_part;
                units += table_part;
                let indexes = table.map(|t| t.indexes.as_slice()).unwrap_or_default();
                for (j, index) in indexes.iter().enumerate() {
                    if index.global {
                        let part = puts * per_put(t.index_units[j]) + deletes;
                        *index_units.entry(index.name.clone()).or_default() += part;
                        units += part;
                    }
                }
                sampled_files += t.files;
                sampled_lines += t.lines;
                put_bytes += t.put_bytes;
                puts_sampled += t.puts;
            }
            // Not sampled: one unit per line, the least any write costs.
            _ => {
                puts_total += items;
                table_units += items;
                units += items;
            }
        }
        per_export.push(ExportEstimate {
            export_id: export.id().to_owned(),
            items: export.item_count(),
            sampled_files: tally.map_or(0, |t| t.files),
            sampled_lines: tally.map_or(0, |t| t.lines),
            sampled_puts: tally.map_or(0, |t| t.puts),
            sampled_deletes: tally.map_or(0, |t| t.deletes),
            mean_put_item_bytes: tally
                .filter(|t| t.puts > 0)
                .map(|t| t.put_bytes as f64 / t.puts as f64),
            estimated_write_units: units.ceil() as u64,
        });
    }
    let items: u64 = exports.iter().map(|e| e.item_count()).sum();
    let all_sampled = per_export
        .iter()
        .zip(exports)
        .all(|(e, x)| e.sampled_lines > 0 || x.item_count() == 0);
    let lower_bound = deletes_total > 0.0 || !all_sampled;
    let write_units = (table_units + index_units.values().sum::<f64>()).ceil();

    let at_current_capacity = table.map(|t| {
        let (rate, source) = &t.rate;
        let mut worst = (
            table_units / rate.max(f64::MIN_POSITIVE),
            *rate,
            format!("table: {source}"),
        );
        for index in &gsis {
            let units = index_units.get(&index.name).copied().unwrap_or_default();
            let (index_rate, what) = match index.rate {
                Some(r) if r > 0.0 => (r, format!("index {}: {r} write units/s", index.name)),
                _ => (*rate, format!("index {}: the table's rate", index.name)),
            };
            let seconds = units / index_rate.max(f64::MIN_POSITIVE);
            if seconds > worst.0 {
                worst = (seconds, index_rate, what);
            }
        }
        Timing {
            write_units_per_second: worst.1,
            source: format!(
                "limited by {}{}",
                worst.2,
                if t.on_demand {
                    ""
                } else {
                    "; auto scaling may raise it during the restore"
                }
            ),
            seconds: worst.0,
        }
    });
    let at_max_wcu = opts.max_wcu.filter(|&m| m > 0).map(|m| Timing {
        write_units_per_second: m as f64,
        source:
            "--max-wcu, the table's write units per second (indexes are written at the same pace)"
                .into(),
        seconds: table_units / m as f64,
    });
    let basis = if sampled_lines == 0 {
        "no lines were sampled: every item is counted at 1 write unit, the minimum".to_owned()
    } else {
        format!(
            "estimate from the first {} lines of each data file ({sampled_lines} lines of {sampled_files} files), \
             assuming an empty table: puts cost 1 unit per started KB of the item plus the same for each global \
             index that holds it; deletes are counted at 1 unit on the table and 1 per global index (a lower \
             bound: the deleted item's size is not in the export)",
            opts.sample_lines
        )
    };
    Estimate {
        basis,
        sampled_files,
        sampled_lines,
        items,
        estimated_puts: puts_total.round() as u64,
        estimated_deletes: deletes_total.round() as u64,
        write_units: write_units as u64,
        table_write_units: table_units.ceil() as u64,
        index_write_units: index_units
            .into_iter()
            .map(|(k, v)| (k, v.ceil() as u64))
            .collect(),
        lower_bound,
        mean_put_item_bytes: (puts_sampled > 0).then(|| put_bytes as f64 / puts_sampled as f64),
        at_current_capacity,
        at_max_wcu,
        price_per_million_wru: opts.price_per_million_wru,
        on_demand_cost_usd: write_units / 1e6 * opts.price_per_million_wru,
        exports: per_export,
    }
}

pub(super) fn estimate_row(e: &Estimate, exports: &[&Export], uris: &[ExportUri]) -> Check {
    let mut parts = vec![format!(
        "≈ {} write units{} for {} items",
        e.write_units,
        if e.lower_bound { " (at least)" } else { "" },
        e.items
    )];
    if let Some(d) = &e.at_current_capacity {
        parts.push(format!(
            "≈ {} at current capacity ({})",
            format_seconds(d.seconds),
            d.source
        ));
    }
    if let Some(d) = &e.at_max_wcu {
        parts.push(format!(
            "≈ {} at --max-wcu {}",
            format_seconds(d.seconds),
            d.write_units_per_second
        ));
    }
    let cost = format_usd(e.on_demand_cost_usd);
    parts.push(format!(
        "{}{cost} on demand at ${}/million WRU",
        if cost.starts_with('<') { "" } else { "≈ " },
        e.price_per_million_wru
    ));
    parts.push(format!(
        "sampled {} lines of {} files",
        e.sampled_lines, e.sampled_files
    ));
    let status = if exports.len() < uris.len() {
        parts.push("exports whose manifests could not be read are not counted".into());
        Status::Warn
    } else {
        Status::Pass
    };
    Check::new("estimate", status, parts.join("; "))
}

pub(super) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Dollars and cents; `< $0.01` for an amount that rounds to no cent.
pub(super) fn format_usd(usd: f64) -> String {
    if usd > 0.0 && usd < 0.005 {
        "< $0.01".into()
    } else {
        format!("${usd:.2}")
    }
}

pub(super) fn format_seconds(seconds: f64) -> String {
    let s = seconds.ceil().max(0.0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(s.max(1))).to_string()
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::BillingMode;

    use super::*;
    use crate::export::chain::Expectations;
    use crate::item::key::{KeyAttr, KeyType};
    use crate::table::TableInfo;
    use crate::table::capacity::AutoScaling;
    use crate::testing::exports::full;

    #[test]
    fn amounts_are_dollars_and_cents_and_durations_one_format() {
        assert_eq!(format_usd(0.0), "$0.00");
        assert_eq!(format_usd(0.000_3), "< $0.01");
        assert_eq!(format_usd(0.006), "$0.01");
        assert_eq!(format_usd(1234.5), "$1234.50");
        assert_eq!(format_seconds(69.4), "1m 10s");
        assert_eq!(crate::export::chain::span(69_378), "gap of 1m 9s 378ms");
        assert_eq!(crate::export::chain::span(-1_500), "overlap of 1s 500ms");
    }

    #[test]
    fn index_write_units_follow_the_projection() {
        use aws_sdk_dynamodb::types::AttributeValue as V;
        let key = KeySchema {
            attrs: vec![KeyAttr {
                name: "pk".into(),
                ty: KeyType::S,
            }],
        };
        let item: Item = [
            ("pk".to_owned(), V::S("a".into())),
            ("gk".to_owned(), V::S("g".into())),
            ("small".to_owned(), V::S("s".into())),
            ("big".to_owned(), V::S("x".repeat(3000))),
        ]
        .into_iter()
        .collect();
        let index = |projection| Index {
            name: "i".into(),
            global: true,
            keys: vec!["gk".into()],
            projection,
            rate: None,
        };
        assert_eq!(index(Projection::All).write_units(&key, &item), Some(3));
        assert_eq!(
            index(Projection::KeysOnly).write_units(&key, &item),
            Some(1)
        );
        assert_eq!(
            index(Projection::Include(vec!["small".into()])).write_units(&key, &item),
            Some(1)
        );
        assert_eq!(
            index(Projection::Include(vec!["big".into()])).write_units(&key, &item),
            Some(3)
        );
        let mut sparse = item.clone();
        sparse.remove("gk");
        assert_eq!(
            index(Projection::All).write_units(&key, &sparse),
            None,
            "an item without the index key is not in the index"
        );

        let mut tally = Tally::new(1);
        let indexes = [index(Projection::All)];
        tally.add(&WriteOp::Put(item.clone()), &key, &indexes);
        tally.add(&WriteOp::Put(sparse), &key, &indexes);
        tally.add(&WriteOp::Delete(Item::new()), &key, &indexes);
        assert_eq!((tally.lines, tally.puts, tally.deletes), (3, 2, 1));
        assert_eq!(tally.table_units, 3 + 3);
        assert_eq!(tally.index_units, vec![3]);
    }

    #[test]
    fn estimate_extrapolates_and_finds_the_tightest_resource() {
        use aws_sdk_dynamodb::types::{
            AttributeValue as V, BillingModeSummary, GlobalSecondaryIndexDescription,
            KeySchemaElement, ProvisionedThroughputDescription,
        };
        let key = KeySchema {
            attrs: vec![KeyAttr {
                name: "pk".into(),
                ty: KeyType::S,
            }],
        };
        let desc = TableDescription::builder()
            .billing_mode_summary(
                BillingModeSummary::builder()
                    .billing_mode(BillingMode::Provisioned)
                    .build(),
            )
            .provisioned_throughput(
                ProvisionedThroughputDescription::builder()
                    .write_capacity_units(100)
                    .build(),
            )
            .global_secondary_indexes(
                GlobalSecondaryIndexDescription::builder()
                    .index_name("by-g")
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("gk")
                            .key_type(DdbKeyType::Hash)
                            .build()
                            .unwrap(),
                    )
                    .projection(
                        aws_sdk_dynamodb::types::Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .provisioned_throughput(
                        ProvisionedThroughputDescription::builder()
                            .write_capacity_units(1)
                            .build(),
                    )
                    .build(),
            )
            .build();
        let info = TableInfo {
            name: "t".into(),
            arn: None,
            key: key.clone(),
        };
        let facts = TableFacts::from_description(info, &desc);
        assert!(!facts.on_demand);
        assert_eq!(facts.rate.0, 100.0);
        assert_eq!(facts.indexes.len(), 1);
        assert_eq!(facts.indexes[0].rate, Some(1.0));

        // 3 puts of 1.5 KB items (2 units, and 1 in the KEYS_ONLY index) and 1 delete, from 1,000 items.
        let item: Item = [
            ("pk".to_owned(), V::S("a".into())),
            ("gk".to_owned(), V::S("g".into())),
            ("data".to_owned(), V::S("x".repeat(1500))),
        ]
        .into_iter()
        .collect();
        let mut tally = Tally::new(1);
        tally.files = 1;
        for _ in 0..3 {
            tally.add(&WriteOp::Put(item.clone()), &key, &facts.indexes);
        }
        tally.add(&WriteOp::Delete(Item::new()), &key, &facts.indexes);
        let exports = [full("e1", 1000)];
        let readable: Vec<&Export> = exports.iter().collect();
        let opts = Options {
            table: "t".into(),
            exports: vec![],
            find: None,
            request: None,
            expect: Expectations::default(),
            resume: None,
            report: None,
            manage_capacity: false,
            autoscaling: AutoScaling::Refuse,
            max_wcu: Some(50),
            price_per_million_wru: 1.25,
            sample_lines: 4,
        };
        let e = estimate(&opts, &readable, Some(&facts), Some(&[Ok(tally)]));
        assert_eq!((e.estimated_puts, e.estimated_deletes), (750, 250));
        assert_eq!(e.table_write_units, 750 * 2 + 250);
        assert_eq!(e.index_write_units["by-g"], 750 + 250);
        assert_eq!(e.write_units, 2750);
        assert!(e.lower_bound, "deletes are counted at their minimum");
        assert!((e.on_demand_cost_usd - 2750.0 / 1e6 * 1.25).abs() < 1e-12);
        let current = e.at_current_capacity.unwrap();
        assert_eq!(current.seconds, 1000.0, "the 1-WCU index is the bottleneck");
        assert!(current.source.contains("index by-g"), "{}", current.source);
        assert_eq!(e.at_max_wcu.unwrap().seconds, 1750.0 / 50.0);

        // Unsampled (no table): every item at the 1-unit minimum.
        let e = estimate(&opts, &readable, None, None);
        assert_eq!((e.write_units, e.sampled_lines), (1000, 0));
        assert!(e.lower_bound && e.at_current_capacity.is_none());
    }

    #[test]
    fn on_demand_rates() {
        use aws_sdk_dynamodb::types::{
            BillingModeSummary, OnDemandThroughput, TableWarmThroughputDescription,
        };
        let info = || table::TableInfo {
            name: "t".into(),
            arn: None,
            key: KeySchema { attrs: vec![] },
        };
        let on_demand = || {
            TableDescription::builder().billing_mode_summary(
                BillingModeSummary::builder()
                    .billing_mode(BillingMode::PayPerRequest)
                    .build(),
            )
        };
        let new = TableFacts::from_description(info(), &on_demand().build());
        assert_eq!(new.rate.0, NEW_ON_DEMAND_WRITE_UNITS);
        assert!(new.rate.1.contains("initial 4,000"), "{}", new.rate.1);
        let warm = on_demand().warm_throughput(
            TableWarmThroughputDescription::builder()
                .write_units_per_second(12000)
                .build(),
        );
        assert_eq!(
            TableFacts::from_description(info(), &warm.clone().build())
                .rate
                .0,
            12000.0
        );
        let capped = warm.on_demand_throughput(
            OnDemandThroughput::builder()
                .max_write_request_units(500)
                .build(),
        );
        let capped = TableFacts::from_description(info(), &capped.build());
        assert_eq!(capped.rate.0, 500.0);
        assert!(capped.rate.1.contains("maximum"), "{}", capped.rate.1);
    }
}
