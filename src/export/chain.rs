//! Export chains: a FULL export optionally followed by INCREMENTAL exports, applied strictly in order.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::export::manifest::{Export, ExportType, OutputView};

/// What the user asserted about the exports on the command line; checked against the manifests.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// Empty: no assertion. One value: applies to every export. Otherwise one per export.
    pub types: Vec<ExportType>,
    /// Checked against the `outputView` of every INCREMENTAL export.
    pub view: Option<OutputView>,
    pub allow_gaps: bool,
}

/// A discontinuity accepted with `--allow-gaps`; it is listed in the report because changes made inside a
/// gap are not in any export and so are not restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discontinuity {
    pub before_export: String,
    pub after_export: String,
    /// Positive: a gap of this many milliseconds. Negative: an overlap.
    pub millis: i64,
}

/// `gap of 1m 9s 378ms`, or `overlap of …` for negative `millis`: how every message says a discontinuity.
pub fn span(millis: i64) -> String {
    format!(
        "{} of {}",
        if millis < 0 { "overlap" } else { "gap" },
        humantime::format_duration(Duration::from_millis(millis.unsigned_abs()))
    )
}

/// Validates a chain before anything is written. Returns the discontinuities accepted by `allow_gaps`.
pub fn validate(exports: &[Export], expect: &Expectations) -> Result<Vec<Discontinuity>> {
    let Some(first) = exports.first() else {
        return Err(Error::Usage("at least one --export is required".into()));
    };
    if expect.types.len() > 1 && expect.types.len() != exports.len() {
        return Err(Error::Usage(format!(
            "--type was given {} times for {} exports: give it once for all, or once per --export",
            expect.types.len(),
            exports.len()
        )));
    }
    let mut gaps = Vec::new();
    for (i, export) in exports.iter().enumerate() {
        if let Some(want) = expect
            .types
            .get(if expect.types.len() == 1 { 0 } else { i })
            && *want != export.export_type
        {
            return Err(Error::Usage(format!(
                "--type {want} does not match export {}, whose manifest says {}",
                export.id(),
                export.export_type
            )));
        }
        if let (Some(want), Some(have)) = (expect.view, export.view)
            && want != have
        {
            return Err(Error::Usage(format!(
                "--view {want} does not match export {}, whose outputView is {have}",
                export.id()
            )));
        }
        if export.summary.table_arn != first.summary.table_arn {
            return Err(Error::Chain(format!(
                "export {} is of table {} but export {} is of table {}; a chain must come from one table",
                export.id(),
                export.summary.table_arn,
                first.id(),
                first.summary.table_arn
            )));
        }
        let Some(prev) = i.checked_sub(1).map(|p| &exports[p]) else {
            continue;
        };
        if export.export_type == ExportType::Full {
            return Err(Error::Chain(format!(
                "export {} is a FULL export at position {}; a FULL export can only start a chain",
                export.id(),
                i + 1
            )));
        }
        // Whatever the flags: an export that starts or ends before the one it follows would write older
        // changes over newer ones.
        if export.start < prev.start || export.end < prev.end {
            let which = if export.start < prev.start {
                "starts"
            } else {
                "ends"
            };
            return Err(Error::Chain(format!(
                "export {} ({} to {}) {which} before export {} ({} to {}), which it follows in the chain; \
                 give the exports oldest first (--allow-gaps accepts gaps and overlaps, never this order)",
                export.id(),
                rfc3339(export.start),
                rfc3339(export.end),
                prev.id(),
                rfc3339(prev.start),
                rfc3339(prev.end),
            )));
        }
        let millis = signed_millis(prev.end, export.start);
        if millis != 0 {
            let message = format!(
                "{} between export {} (ends {}) and export {} (starts {})",
                span(millis),
                prev.id(),
                rfc3339(prev.end),
                export.id(),
                rfc3339(export.start),
            );
            if !expect.allow_gaps {
                return Err(Error::Chain(format!(
                    "{message}. Changes made in a gap are in no export and would be missing from the table; \
                     pass --allow-gaps to restore anyway"
                )));
            }
            tracing::warn!("{message}; continuing because of --allow-gaps");
            gaps.push(Discontinuity {
                before_export: prev.id().to_owned(),
                after_export: export.id().to_owned(),
                millis,
            });
        }
    }
    Ok(gaps)
}

fn signed_millis(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::exports::export;

    fn chain() -> Vec<Export> {
        vec![
            export(
                "f",
                ExportType::Full,
                "2026-01-14T10:00:00Z",
                "2026-01-14T10:00:00Z",
            ),
            export(
                "i1",
                ExportType::Incremental,
                "2026-01-14T10:00:00Z",
                "2026-01-14T10:15:00Z",
            ),
            export(
                "i2",
                ExportType::Incremental,
                "2026-01-14T10:15:00Z",
                "2026-01-14T10:30:00Z",
            ),
        ]
    }

    #[test]
    fn contiguous_chain_passes() {
        assert!(
            validate(&chain(), &Expectations::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn gap_and_overlap_need_allow_gaps() {
        let mut c = chain();
        c[2].start = humantime::parse_rfc3339("2026-01-14T10:16:00Z").unwrap();
        let e = validate(&c, &Expectations::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("gap of 1m") && e.contains("--allow-gaps"), "{e}");
        let allow = Expectations {
            allow_gaps: true,
            ..Default::default()
        };
        assert_eq!(validate(&c, &allow).unwrap()[0].millis, 60_000);
        c[2].start = humantime::parse_rfc3339("2026-01-14T10:14:00Z").unwrap();
        let e = validate(&c, &Expectations::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlap of 1m"), "{e}");
        assert_eq!(validate(&c, &allow).unwrap()[0].millis, -60_000);
    }

    /// An export that starts or ends before the one it follows is refused even with --allow-gaps, naming
    /// both exports and their times; a chain in order with an overlap is still accepted with it.
    #[test]
    fn exports_out_of_time_order_are_refused_whatever_the_flags() {
        let allow = Expectations {
            allow_gaps: true,
            ..Default::default()
        };
        let at = |s: &str| humantime::parse_rfc3339(s).unwrap();
        // FULL@10:00, INC 10:15–10:30, INC 10:00–10:15: the older incremental last.
        let mut c = chain();
        c[1].start = at("2026-01-14T10:15:00Z");
        c[1].end = at("2026-01-14T10:30:00Z");
        c[2].start = at("2026-01-14T10:00:00Z");
        c[2].end = at("2026-01-14T10:15:00Z");
        let e = validate(&c, &allow).unwrap_err().to_string();
        assert!(
            e.contains("export i2 (2026-01-14T10:00:00.000Z to 2026-01-14T10:15:00.000Z) starts before export i1 (2026-01-14T10:15:00.000Z to 2026-01-14T10:30:00.000Z)"),
            "{e}"
        );
        // FULL@10:00, INC 09:00–09:30.
        let c = vec![
            chain().remove(0),
            export(
                "i0",
                ExportType::Incremental,
                "2026-01-14T09:00:00Z",
                "2026-01-14T09:30:00Z",
            ),
        ];
        let e = validate(&c, &allow).unwrap_err().to_string();
        assert!(
            e.contains("export i0") && e.contains("starts before export f"),
            "{e}"
        );
        // An incremental inside the previous one's window: it ends before it.
        let mut c = chain();
        c[2].start = at("2026-01-14T10:05:00Z");
        c[2].end = at("2026-01-14T10:10:00Z");
        let e = validate(&c, &allow).unwrap_err().to_string();
        assert!(
            e.contains("export i2") && e.contains("ends before export i1"),
            "{e}"
        );
        // In order, overlapping: accepted with --allow-gaps, as before.
        let mut c = chain();
        c[2].start = at("2026-01-14T10:14:00Z");
        assert_eq!(validate(&c, &allow).unwrap()[0].millis, -60_000);
    }

    #[test]
    fn table_type_view_and_order_are_checked() {
        let mut c = chain();
        c[1].summary.table_arn = "arn:aws:dynamodb:r:1:table/other".into();
        assert!(
            validate(&c, &Expectations::default())
                .unwrap_err()
                .to_string()
                .contains("one table")
        );

        let c = chain();
        let full_only = Expectations {
            types: vec![ExportType::Full],
            ..Default::default()
        };
        assert!(
            validate(&c, &full_only)
                .unwrap_err()
                .to_string()
                .contains("--type FULL_EXPORT does not match")
        );
        let per_export = Expectations {
            types: vec![
                ExportType::Full,
                ExportType::Incremental,
                ExportType::Incremental,
            ],
            ..Default::default()
        };
        validate(&c, &per_export).unwrap();
        let view = Expectations {
            view: Some(OutputView::NewImage),
            ..Default::default()
        };
        assert!(
            validate(&c, &view)
                .unwrap_err()
                .to_string()
                .contains("--view")
        );

        let mut c = chain();
        c.swap(0, 1);
        assert!(validate(&c, &Expectations::default()).is_err());
    }
}
