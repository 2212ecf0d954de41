//! Flags and flag parsers shared by several subcommands, so that `restore` and `validate` read a chain the
//! same way and `restore` and `worker` tune the engine the same way.

use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};
use ddb_pitr::aws::{ClientOptions, Clients, S3Side};

use super::bad_usage;
use ddb_pitr::budget::ByteBudget;
use ddb_pitr::engine::{CopiedObjects, DEFAULT_INFLIGHT_BATCHES, Settings};
use ddb_pitr::export::chain::Expectations;
use ddb_pitr::export::discover::{Find, Origin, Target};
use ddb_pitr::export::location::ExportUri;
use ddb_pitr::export::manifest::{ExportType, OutputView};
use ddb_pitr::export::request::RequestOptions;
use ddb_pitr::export::resolve;
use ddb_pitr::export::source::S3Reader;
use ddb_pitr::table::capacity::AutoScaling;
use ddb_pitr::write::BatchSize;
use ddb_pitr::write::pace::MIN_RATE;
use ddb_pitr::write::retry::RetryPolicy;

/// Where AWS is reached: the region and endpoint of the table side.
#[derive(Args)]
pub struct AwsArgs {
    /// AWS region of the table (default: the standard AWS configuration chain). The exports are read in it
    /// too, unless --s3-region says otherwise.
    #[arg(long)]
    pub region: Option<String>,
    /// Endpoint for every AWS service (local emulators). AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 and
    /// AWS_ENDPOINT_URL_DYNAMODB work as usual.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Accept a region name ddb-pitr does not know (a region newer than this version).
    #[arg(long)]
    pub allow_unknown_region: bool,
}

/// The AWS regions of the commercial, China, GovCloud and European Sovereign Cloud partitions when this
/// version was released. A region given by mistake (`us-east1`, `eu-west`) otherwise costs the retries of
/// every call before the error.
const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eusc-de-east-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

impl AwsArgs {
    pub async fn clients(&self) -> anyhow::Result<Clients> {
        self.load(None).await
    }

    /// The clients, with the export bucket's side from `s3`; a region name that is not an AWS region is
    /// refused at once, unless `--allow-unknown-region`.
    pub async fn load(&self, s3: Option<&S3Args>) -> anyhow::Result<Clients> {
        let clients = Clients::load(&self.options(s3)).await;
        if !self.allow_unknown_region {
            let regions = [
                ("--region", clients.dynamodb.config().region()),
                ("--s3-region", clients.exports.s3.config().region()),
            ];
            for (flag, region) in regions {
                if let Some(r) = region
                    && !KNOWN_REGIONS.contains(&r.as_ref())
                {
                    return Err(bad_usage(format!(
                        "`{r}` is not an AWS region ({flag}, AWS_REGION or the profile's region): regions look \
                         like us-east-1 or eu-west-2; pass --allow-unknown-region for a region newer than this \
                         version of ddb-pitr"
                    )));
                }
            }
        }
        Ok(clients)
    }

    pub fn options(&self, s3: Option<&S3Args>) -> ClientOptions {
        ClientOptions {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            s3: s3.map(S3Args::side).unwrap_or_default(),
        }
    }
}

/// The export bucket's side, when it is in another account or region than the table.
#[derive(Args)]
#[command(next_help_heading = "Export bucket")]
pub struct S3Args {
    /// Region of the export bucket (default: --region).
    #[arg(long, value_name = "REGION")]
    s3_region: Option<String>,
    /// Read the exports with this profile of the shared AWS config files (default: the table side's
    /// credentials).
    #[arg(long, value_name = "PROFILE")]
    s3_profile: Option<String>,
    /// Read the exports as this role (sts:AssumeRole with --s3-profile's credentials, or the default
    /// chain's; refreshed before they expire).
    #[arg(long, value_name = "ARN")]
    s3_role_arn: Option<String>,
    /// Endpoint of the export bucket's S3 (default: --endpoint-url).
    #[arg(long, value_name = "URL")]
    s3_endpoint_url: Option<String>,
}

impl S3Args {
    pub fn side(&self) -> S3Side {
        S3Side {
            region: self.s3_region.clone(),
            profile: self.s3_profile.clone(),
            role_arn: self.s3_role_arn.clone(),
            endpoint_url: self.s3_endpoint_url.clone(),
        }
    }
}

/// The target table and the export chain: given export by export, or found under a prefix for a time.
#[derive(Args)]
#[command(group(ArgGroup::new("chain_source").required(true).multiple(true).args(["exports", "export_prefix", "source_table"])))]
pub struct ChainArgs {
    /// Target table. It must exist, be ACTIVE and have the export's key schema.
    #[arg(long)]
    pub table: String,
    /// An export: s3://bucket/prefix/AWSDynamoDB/<export-id>/ or its manifest-summary.json. Repeat to apply a
    /// FULL export and then INCREMENTAL exports, in the order given.
    #[arg(long = "export", value_name = "S3_URI")]
    exports: Vec<String>,
    /// Find the chain instead: the S3 prefix the exports were written to (the S3Prefix given to
    /// ExportTableToPointInTime, the folder that holds AWSDynamoDB/). Needs --to.
    #[arg(
        long,
        value_name = "S3_URI",
        conflicts_with = "exports",
        requires = "to"
    )]
    export_prefix: Option<String>,
    /// With --export-prefix or --source-table: the point to restore to, an RFC 3339 time
    /// (2026-11-24T10:30:00Z, or with an offset) at which a chain of exports ends, or `latest`.
    #[arg(long, value_name = "TIME|latest", value_parser = parse_target)]
    to: Option<Target>,
    /// The exported table (its ARN or name): with --export-prefix, the one whose exports to use when the
    /// prefix holds several tables' exports; alone, its ARN, and the exports are the ones DynamoDB lists
    /// for it (ListExports, DescribeExport), wherever they landed. Needs --to.
    #[arg(
        long,
        value_name = "ARN|NAME",
        conflicts_with = "exports",
        requires = "to"
    )]
    source_table: Option<String>,
    /// When no chain ends at --to TIME, ask DynamoDB for the missing exports (ExportTableToPointInTime,
    /// within the source table's PITR window) into the same bucket and prefix, wait for them, then restore.
    /// A re-run asks with the same ClientToken and gets the same exports.
    #[arg(long, requires = "to")]
    request_export: bool,
    /// With --request-export: how often each requested export's status is read (DescribeExport).
    #[arg(long, default_value = "30s", value_parser = parse_interval, requires = "request_export", help_heading = "Tuning")]
    export_poll_interval: Duration,
    /// With --request-export: how long to wait for the requested exports.
    #[arg(long, default_value = "12h", value_parser = humantime::parse_duration, requires = "request_export", help_heading = "Tuning")]
    export_wait_timeout: Duration,
    /// Assert the export type (once for all exports, or once per --export); read from the manifest otherwise.
    #[arg(long = "type", value_enum)]
    types: Vec<TypeArg>,
    /// Assert the INCREMENTAL exports' output view.
    #[arg(long, value_enum)]
    view: Option<ViewArg>,
    /// Accept a chain with gaps or overlaps between exports (they are listed in the report).
    #[arg(long)]
    allow_gaps: bool,
}

impl ChainArgs {
    pub fn export_uris(&self) -> anyhow::Result<Vec<ExportUri>> {
        self.exports
            .iter()
            .map(|e| e.parse().map_err(bad_usage))
            .collect()
    }

    /// [`ChainArgs::export_uris`], and for an `--export` that is a folder of exports, the exports it holds
    /// in the error.
    pub async fn export_uris_or_explain(
        &self,
        clients: &Clients,
    ) -> anyhow::Result<Vec<ExportUri>> {
        match self.export_uris() {
            Ok(uris) => Ok(uris),
            Err(e) => {
                let objects = S3Reader::new(clients.exports.s3.clone());
                for given in &self.exports {
                    if given.parse::<ExportUri>().is_err()
                        && let Some(why) = resolve::explain_folder(&objects, given).await
                    {
                        return Err(bad_usage(why));
                    }
                }
                Err(e)
            }
        }
    }

    /// What `--export-prefix`, `--to` and `--source-table` ask to find, if given.
    pub fn find(&self) -> anyhow::Result<Option<Find>> {
        let Some(origin) =
            Origin::given(self.export_prefix.as_deref(), self.source_table.as_deref())?
        else {
            return Ok(None);
        };
        Ok(Some(Find {
            origin,
            source_table: self.source_table.clone(),
            to: self.to.expect("clap requires --to with --export-prefix"),
            allow_gaps: self.allow_gaps,
        }))
    }

    pub fn export_prefix(&self) -> Option<&str> {
        self.export_prefix.as_deref()
    }

    pub fn source_table(&self) -> Option<&str> {
        self.source_table.as_deref()
    }

    /// `--request-export` and its timing, if given.
    pub fn request(&self) -> Option<RequestOptions> {
        self.request_export.then_some(RequestOptions {
            poll: self.export_poll_interval,
            timeout: self.export_wait_timeout,
            dry_run: false,
        })
    }

    pub fn expectations(&self) -> Expectations {
        Expectations {
            types: self
                .types
                .iter()
                .map(|t| match t {
                    TypeArg::Full => ExportType::Full,
                    TypeArg::Incremental => ExportType::Incremental,
                })
                .collect(),
            view: self.view.map(|v| match v {
                ViewArg::New => OutputView::NewImage,
                ViewArg::NewAndOld => OutputView::NewAndOldImages,
            }),
            allow_gaps: self.allow_gaps,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TypeArg {
    #[value(name = "FULL", aliases = ["full", "FULL_EXPORT", "full_export"])]
    Full,
    #[value(name = "INCREMENTAL", aliases = ["incremental", "INCREMENTAL_EXPORT", "incremental_export"])]
    Incremental,
}

#[derive(Clone, Copy, ValueEnum)]
enum ViewArg {
    #[value(name = "NEW", aliases = ["new", "NEW_IMAGE", "new_image"])]
    New,
    #[value(name = "NEW_AND_OLD", aliases = ["new_and_old", "NEW_AND_OLD_IMAGES", "new_and_old_images"])]
    NewAndOld,
}

/// `--autoscaling`: what `--manage-capacity` does with a table under Application Auto Scaling.
#[derive(Clone, Copy, ValueEnum)]
pub enum AutoScalingArg {
    Refuse,
    Adjust,
}

impl From<AutoScalingArg> for AutoScaling {
    fn from(a: AutoScalingArg) -> Self {
        match a {
            AutoScalingArg::Refuse => AutoScaling::Refuse,
            AutoScalingArg::Adjust => AutoScaling::Adjust,
        }
    }
}

/// `--copied-objects`: what to do with a data file whose object no longer has the ETag DynamoDB wrote.
#[derive(Clone, Copy, ValueEnum)]
pub enum CopiedObjectsArg {
    /// Read the object and check its MD5 before the first write (one more read of the compressed bytes).
    VerifyFirst,
    /// Check the MD5 while writing: no extra read, but a file that fails has had its lines written.
    VerifyWhileWriting,
}

impl From<CopiedObjectsArg> for CopiedObjects {
    fn from(a: CopiedObjectsArg) -> Self {
        match a {
            CopiedObjectsArg::VerifyFirst => CopiedObjects::VerifyFirst,
            CopiedObjectsArg::VerifyWhileWriting => CopiedObjects::VerifyWhileWriting,
        }
    }
}

/// Read and write tuning shared by `restore` and `worker`.
#[derive(Args)]
pub struct EngineArgs {
    /// Ranged GETs in flight per data file (1 or more).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    read_ahead: u16,
    /// Size of each ranged GET.
    #[arg(long, default_value = "1MiB", value_parser = parse_size, help_heading = "Tuning")]
    part_size: u64,
    /// Compressed bytes read ahead across all data files at once: bounds memory when many files are
    /// restored in parallel.
    #[arg(long, default_value = "16MiB", value_parser = parse_size, help_heading = "Tuning")]
    read_budget: u64,
    /// Bytes of batches cut and not yet written, across all data files at once: bounds memory when items
    /// are large (batches are cut at 4 MiB of lines: about ten items near 400 KB).
    #[arg(long, default_value = "24MiB", value_parser = parse_size, help_heading = "Tuning")]
    batch_budget: u64,
    /// BatchWriteItem calls in flight per data file (1 or more).
    #[arg(long, default_value_t = DEFAULT_INFLIGHT_BATCHES as u16, value_parser = clap::value_parser!(u16).range(1..), help_heading = "Tuning")]
    inflight_batches: u16,
    /// Consecutive BatchWriteItem attempts without progress before a file stops (1 or more).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Tuning")]
    max_attempts: u32,
    /// Do not learn the table's write capacity from throttling; only back off batch by batch. For
    /// comparisons: the adaptive rate keeps a throttled table at its capacity with far fewer retries.
    #[arg(long, help_heading = "Tuning")]
    no_adaptive_rate: bool,
    /// A data file whose object no longer has the ETag DynamoDB wrote (an export copied with `aws s3 cp`)
    /// is not known to hold the exported bytes until its MD5 is checked: check it before writing, or
    /// while writing (docs/integrity.md).
    #[arg(long, value_enum, default_value = "verify-first")]
    copied_objects: CopiedObjectsArg,
}

impl EngineArgs {
    pub fn settings(&self, batch_size: BatchSize) -> Settings {
        Settings {
            batch_size,
            read_ahead: self.read_ahead.into(),
            part_size: self.part_size,
            inflight_batches: self.inflight_batches.into(),
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                ..RetryPolicy::default()
            },
            adaptive_rate: !self.no_adaptive_rate,
            read_budget: ByteBudget::new(self.read_budget),
            batch_budget: ByteBudget::new(self.batch_budget),
            copied_objects: self.copied_objects.into(),
        }
    }
}

/// An optional flag's value parsed into its type (a checkpoint or report location); a bad one is bad usage.
pub fn parse_flag<T>(value: Option<&str>) -> anyhow::Result<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value.map(str::parse).transpose().map_err(bad_usage)
}

/// `--to`: an RFC 3339 time or `latest`.
pub fn parse_target(s: &str) -> Result<Target, String> {
    s.parse()
}

pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= MIN_RATE => Ok(v),
        _ => Err(format!(
            "{s:?} is not a positive number of at least {MIN_RATE}"
        )),
    }
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 1MiB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use B, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(10) {
        return Err("must be at least 10ms".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1TB").is_err());
        assert!(parse_interval("0s").is_err());
        assert_eq!(parse_interval("50ms"), Ok(Duration::from_millis(50)));
    }
}
