//! `ddb-pitr exports`: what can be restored from the exports under a prefix. JSON on stdout (the tables, their
//! exports and every restorable point with its chain); a readable table on stderr.

use std::process::ExitCode;

use clap::Args;
use ddb_pitr::clock::rfc3339;
use ddb_pitr::export::discover::{self, Listing, Origin};
use ddb_pitr::export::resolve;
use ddb_pitr::export::source::S3Reader;

use super::args::{AwsArgs, S3Args};
use super::{print_data, say_text};

/// Lists the exports under an S3 prefix (or the ones DynamoDB lists for a table), by table, and every point
/// in time they can restore: the time to give `restore --export-prefix … --to`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("origin").required(true).multiple(true).args(["export_prefix", "source_table"])))]
#[command(after_help = "EXAMPLES:
  ddb-pitr exports --export-prefix s3://exports/prod/
  ddb-pitr exports --source-table arn:aws:dynamodb:eu-north-1:111111111111:table/orders --s3-region eu-west-1

EXIT STATUS:
  0 listed, 1 failed, 2 bad usage. JSON on stdout, a table on stderr.")]
pub struct ExportsArgs {
    /// The S3 prefix the exports were written to (the folder that holds AWSDynamoDB/).
    #[arg(long, value_name = "S3_URI")]
    export_prefix: Option<String>,
    /// Only this table's exports (its ARN or name). Alone, its ARN: the exports DynamoDB lists for it
    /// (ListExports, DescribeExport), wherever they landed.
    #[arg(long, value_name = "ARN|NAME")]
    source_table: Option<String>,
    /// Also list the points reached by chains with gaps between exports.
    #[arg(long)]
    allow_gaps: bool,
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    s3: S3Args,
}

pub async fn run(args: ExportsArgs) -> anyhow::Result<ExitCode> {
    let clients = args.aws.load(Some(&args.s3)).await?;
    let objects = S3Reader::new(clients.exports.s3.clone());
    let origin = Origin::given(args.export_prefix.as_deref(), args.source_table.as_deref())?
        .expect("clap requires --export-prefix or --source-table");
    let catalog = resolve::catalog(&clients, &objects, &origin).await?;
    let listing = discover::list(&catalog, args.source_table.as_deref(), args.allow_gaps)?;
    say_text(&table(&listing));
    print_data(&serde_json::to_string_pretty(&listing)?);
    Ok(ExitCode::SUCCESS)
}

/// The listing for a person: per table, its exports, then its points with their chains.
fn table(listing: &Listing) -> String {
    let mut out = String::new();
    for t in &listing.tables {
        out.push_str(&format!("{}\n", t.table_arn));
        for e in &t.exports {
            let window = if e.start == e.end {
                rfc3339(e.end)
            } else {
                format!("{} → {}", rfc3339(e.start), rfc3339(e.end))
            };
            out.push_str(&format!(
                "  {:<26} {:<11} {:<50} {:>12} items {:>14} bytes\n",
                e.export_id,
                e.export_type.short(),
                window,
                e.items,
                e.billed_bytes
                    .map_or_else(|| "?".to_owned(), |b| b.to_string()),
            ));
        }
        out.push_str("  can be restored to:\n");
        for p in &t.points {
            out.push_str(&format!(
                "    {}  {}\n",
                rfc3339(p.time),
                p.chain.join(" + ")
            ));
        }
    }
    for s in &listing.skipped {
        out.push_str(&format!("skipped {}: {}\n", s.export, s.reason));
    }
    out
}
