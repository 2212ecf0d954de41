//! CloudWatch embedded metric format (EMF): one JSON object per line on stdout, which CloudWatch Logs turns
//! into metrics without any API call. Lambda sends a function's stdout to CloudWatch Logs; on EC2 the
//! CloudWatch agent does the same for a log file.
//!
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::time::SystemTime;

use serde_json::{Map, Value, json};

/// The namespace of every ddb-pitr metric.
pub const NAMESPACE: &str = "ddb-pitr";

/// One metric value with its CloudWatch unit (`Count`, `Count/Second`, `Seconds`, `Bytes`, …).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric<'a> {
    pub name: &'a str,
    pub value: f64,
    pub unit: &'a str,
}

/// One EMF document: `dimensions` (name, value) form the single dimension set, `metrics` are recorded
/// against it, and `properties` are searchable fields that are not metrics.
pub fn emf_line(
    timestamp: SystemTime,
    dimensions: &[(&str, &str)],
    metrics: &[Metric<'_>],
    properties: &[(&str, Value)],
) -> String {
    let millis = timestamp
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics
                    .iter()
                    .map(|m| json!({"Name": m.name, "Unit": m.unit}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        doc.insert((*name).into(), json!(value));
    }
    for m in metrics {
        // CloudWatch rejects NaN and infinities; a rate over a zero duration is reported as 0.
        let value = if m.value.is_finite() { m.value } else { 0.0 };
        doc.insert(m.name.into(), json!(value));
    }
    for (name, value) in properties {
        doc.insert((*name).into(), value.clone());
    }
    Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_document_declares_what_it_carries() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let line = emf_line(
            t,
            &[("Table", "orders")],
            &[
                Metric {
                    name: "ItemsWritten",
                    value: 25.0,
                    unit: "Count",
                },
                Metric {
                    name: "ItemsPerSecond",
                    value: f64::INFINITY,
                    unit: "Count/Second",
                },
            ],
            &[("File", json!("data/a.json.gz"))],
        );
        assert!(!line.contains('\n'), "one line per document");
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Table"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "ItemsWritten", "Unit": "Count"},
                {"Name": "ItemsPerSecond", "Unit": "Count/Second"}
            ])
        );
        assert_eq!(doc["Table"], "orders");
        assert_eq!(doc["ItemsWritten"], 25.0);
        assert_eq!(doc["ItemsPerSecond"], 0.0);
        assert_eq!(doc["File"], "data/a.json.gz");
    }
}
