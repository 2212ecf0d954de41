//! The exports a restore reads: the ones given, or the chain found for a time ([`discover`]), with the
//! exports DynamoDB is asked for when none ends there ([`request`]).

use crate::aws::Clients;
use crate::aws::arn::Arn;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::export::discover::{
    self, Catalog, Choice, Find, Origin, Target, choose, pick_table, points,
};
use crate::export::location::{ExportUri, S3Uri};
use crate::export::request::{self, RequestOptions};
use crate::export::source::ObjectReader;

/// The exports to restore: `exports` as given, or the chain `find` chooses (with the choice, for the
/// report). With `request`, exports missing for `find`'s time are asked for and waited for first.
pub async fn resolve(
    clients: &Clients,
    objects: &dyn ObjectReader,
    exports: &[ExportUri],
    find: Option<&Find>,
    request: Option<&RequestOptions>,
) -> Result<(Vec<ExportUri>, Option<Choice>)> {
    let Some(find) = find else {
        return Ok((exports.to_vec(), None));
    };
    let choice = self::find(clients, objects, find, request).await?;
    Ok((choice.uris.clone(), Some(choice)))
}

/// The chain to `find`'s target; see [`resolve`].
pub async fn find(
    clients: &Clients,
    objects: &dyn ObjectReader,
    find: &Find,
    request: Option<&RequestOptions>,
) -> Result<Choice> {
    let mut catalog = catalog(clients, objects, &find.origin).await?;
    let Some(opts) = request else {
        return choose(&catalog, find);
    };
    let Target::At(at) = find.to else {
        return Err(Error::Usage(
            "--request-export needs --to TIME: `latest` is the latest point the exports reach, which \
             needs no request"
                .into(),
        ));
    };
    let table_arn = pick_table(&catalog, find)?;
    let mine = catalog.of(&table_arn);
    if points(&mine, find.allow_gaps).iter().any(|p| p.time == at) {
        return choose(&catalog, find);
    }
    let into = request::destination(&find.origin, request::latest(&mine))?;
    let dynamodb = clients.source_in(&region_of(&table_arn)?);
    let state = request::source_state(&dynamodb, &table_arn).await?;
    let asks = request::plan(&table_arn, &mine, at, find.allow_gaps, &into, &state)?;
    if opts.dry_run {
        return Err(Error::Chain(format!(
            "no chain ends at {}; --request-export would ask DynamoDB for: {}. Run without --dry-run to \
             request {}",
            rfc3339(at),
            asks.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            if asks.len() == 1 { "it" } else { "them" }
        )));
    }
    let done = request::request(&dynamodb, &table_arn, &asks, opts).await?;
    let (landed, unreadable) =
        discover::read_all(objects, done.iter().map(|(_, uri)| uri.clone()).collect()).await?;
    if let Some(s) = unreadable.first() {
        return Err(Error::Chain(format!(
            "the export DynamoDB finished cannot be read at {}: {}",
            s.export, s.reason
        )));
    }
    catalog.add(landed);
    let mut choice = choose(&catalog, find)?;
    choice.requested = done.into_iter().map(|(r, _)| r).collect();
    Ok(choice)
}

/// Every export at `origin`: listed under a prefix, or by DynamoDB in the source table's region.
pub async fn catalog(
    clients: &Clients,
    objects: &dyn ObjectReader,
    origin: &Origin,
) -> Result<Catalog> {
    match origin {
        Origin::Prefix(prefix) => discover::scan(objects, prefix).await,
        Origin::Table(arn) => {
            discover::scan_table(&clients.source_in(&region_of(arn)?), objects, arn).await
        }
    }
}

/// When `given` (an `--export` that is not an export location) is a folder that holds exports, what they
/// are and what to give instead; `None` when it holds none.
pub async fn explain_folder(objects: &dyn ObjectReader, given: &str) -> Option<String> {
    let uri: S3Uri = given.parse().ok()?;
    let catalog = discover::scan(objects, &uri).await.ok()?;
    if catalog.exports.is_empty() {
        return None;
    }
    const SHOWN: usize = 20;
    let listed: Vec<String> = catalog
        .exports
        .iter()
        .take(SHOWN)
        .map(|f| {
            let table = f.table_arn.rsplit('/').next().unwrap_or(&f.table_arn);
            format!(
                "{} ({} of {table}, to {})",
                f.export_id,
                f.export_type,
                rfc3339(f.end)
            )
        })
        .collect();
    let more = catalog.exports.len().saturating_sub(SHOWN);
    let first = &catalog.exports[0].uri;
    Some(format!(
        "`{given}` is a folder of {} exports, not one export: {}{}. Give one with --export {}, or let \
         ddb-pitr choose the chain: --export-prefix {} --to TIME|latest",
        catalog.exports.len(),
        listed.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
        format_args!("s3://{}/{}", first.bucket, first.key("")),
        catalog.origin
    ))
}

/// The region of a table ARN, where its export APIs are called.
fn region_of(table_arn: &str) -> Result<String> {
    Arn::parse(table_arn)
        .filter(|a| a.service == "dynamodb" && !a.region.is_empty())
        .map(|a| a.region.to_owned())
        .ok_or_else(|| {
            Error::Usage(format!(
                "`{table_arn}` is not a DynamoDB table ARN (arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME)"
            ))
        })
}
