//! Loaded exports built in memory, as the manifest reader would return them.

use crate::export::manifest::{Export, ExportType, OutputView, Summary, SummaryChecksum};

/// Export `id` of table `t` in bucket `b`, of type `ty`, covering `start` to `end` (RFC 3339), with no data
/// files and no items. An INCREMENTAL export has the NEW_AND_OLD_IMAGES view.
pub fn export(id: &str, ty: ExportType, start: &str, end: &str) -> Export {
    Export {
        uri: format!("s3://b/AWSDynamoDB/{id}/")
            .parse()
            .expect("an export URI"),
        summary: Summary {
            version: None,
            export_arn: format!("arn:aws:dynamodb:r:1:table/t/export/{id}"),
            table_arn: "arn:aws:dynamodb:r:1:table/t".into(),
            export_time: None,
            export_from_time: None,
            export_to_time: None,
            s3_bucket: None,
            s3_prefix: None,
            s3_sse_kms_key_id: None,
            manifest_files_s3_key: String::new(),
            item_count: 0,
            billed_size_bytes: None,
            output_format: None,
            output_view: None,
            export_type: None,
        },
        export_type: ty,
        view: (ty == ExportType::Incremental).then_some(OutputView::NewAndOldImages),
        start: humantime::parse_rfc3339(start).expect("an RFC 3339 time"),
        end: humantime::parse_rfc3339(end).expect("an RFC 3339 time"),
        summary_checksum: SummaryChecksum::Verified,
        files: vec![],
    }
}

/// FULL export `id` of `items` items, as of the Unix epoch: for tests where the chain's times do not matter.
pub fn full(id: &str, items: u64) -> Export {
    const EPOCH: &str = "1970-01-01T00:00:00Z";
    let mut e = export(id, ExportType::Full, EPOCH, EPOCH);
    e.summary.item_count = items;
    e
}
