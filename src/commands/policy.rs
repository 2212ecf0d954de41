//! `ddb-pitr policy`: prints the least-privilege IAM policy a restore needs, for the local runner or (with
//! `--mode lambda`) one per function role. The permissions come from [`ddb_pitr::access`]; this file only
//! turns flags into an [`access::Scope`]. See `docs/permissions.md`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use ddb_pitr::access::exports::export_access;
use ddb_pitr::access::policy::policy_document;
use ddb_pitr::access::{self, Role, Scope, SourceScope, permissions};
use ddb_pitr::aws::{ClientOptions, Clients, caller_account};
use ddb_pitr::export::discover::{self, Origin};
use ddb_pitr::export::location::{ExportUri, S3Uri, StateLocation};
use ddb_pitr::export::source::S3Reader;
use ddb_pitr::export::{request, resolve};
use serde_json::json;

use super::args::{AutoScalingArg, S3Args};
use super::print_data;

#[derive(Args)]
#[command(after_help = "EXAMPLES:
  ddb-pitr policy --table arn:aws:dynamodb:eu-north-1:111111111111:table/orders-restored \\
    --export-prefix s3://exports/prod/ --resume s3://exports/restores/orders.json
  ddb-pitr policy --table orders-restored --bucket exports --prefix prod/ --mode lambda \\
    --control-table ddb-pitr-ControlTable-ABC --queue ddb-pitr-RestoreQueue-DEF

EXIT STATUS:
  0 printed, 1 values that parse but make no policy (a non-table ARN, a KMS alias), 2 malformed flags.")]
pub struct PolicyArgs {
    /// Target table: a name, or its ARN (which also gives the partition, region and account).
    #[arg(long)]
    table: String,
    /// Bucket of the exports. Not needed with --export, --export-prefix or --source-table ARN, which name
    /// or find it.
    #[arg(long, required_unless_present_any = ["exports", "export_prefix", "source_table"], conflicts_with = "export_prefix")]
    bucket: Option<String>,
    /// Key prefix of the exports in --bucket; the policy reads only objects under it.
    #[arg(long, default_value = "", requires = "bucket")]
    prefix: String,
    /// An export the restore reads (repeatable): its manifests are read to scope the policy to its folders
    /// exactly and to add kms:Decrypt for its s3SseKmsKeyId.
    #[arg(long = "export", value_name = "S3_URI", value_parser = parse_export)]
    exports: Vec<ExportUri>,
    /// The restore finds its chain under this prefix (`restore --export-prefix`): ListBucket on its
    /// AWSDynamoDB/ folder, and reads under it.
    #[arg(long, value_name = "S3_URI", conflicts_with = "exports")]
    export_prefix: Option<String>,
    /// The exported table (`restore --source-table`). Its ARN alone: the restore finds the exports with
    /// ListExports and DescribeExport (and this command does too, to scope the reads).
    #[arg(long, value_name = "ARN|NAME")]
    source_table: Option<String>,
    /// The restore asks DynamoDB for missing exports (`restore --request-export`): ExportTableToPointInTime
    /// and the S3 writes DynamoDB makes as the caller. Needs --source-table ARN.
    #[arg(long, requires = "source_table")]
    request_export: bool,
    /// Where the report goes (`restore --report`): an object, or a prefix ending in `/`.
    #[arg(long, value_name = "S3_URI", value_parser = parse_s3)]
    report: Option<S3Uri>,
    /// Checkpoint location (`restore --resume`); only an s3:// checkpoint needs permissions.
    #[arg(long, value_name = "S3_URI|PATH", value_parser = parse_state)]
    resume: Option<StateLocation>,
    /// A KMS key the export objects are encrypted with (repeatable): key ARN or key id.
    #[arg(long = "kms-key", value_name = "ARN")]
    kms_keys: Vec<String>,
    /// `local`: one policy for `ddb-pitr restore`. `lambda`: one policy per function role
    /// (`{"planner": …, "worker": …, "reporter": …}`).
    #[arg(long, value_enum, default_value_t = Mode::Local)]
    mode: Mode,
    /// The restore will run with --manage-capacity (adds dynamodb:UpdateTable and Application Auto
    /// Scaling reads).
    #[arg(long)]
    manage_capacity: bool,
    /// With --manage-capacity: what the restore does with an auto-scaled table (`adjust` adds
    /// RegisterScalableTarget).
    #[arg(long, value_enum, default_value_t = AutoScalingArg::Refuse, requires = "manage_capacity")]
    autoscaling: AutoScalingArg,
    /// Region of the table (default: from a table ARN, else the standard AWS configuration chain).
    #[arg(long)]
    region: Option<String>,
    /// Account id of the table (default: from a table ARN, else sts:GetCallerIdentity).
    #[arg(long)]
    account: Option<String>,
    /// AWS partition (default: from a table ARN, else `aws`).
    #[arg(long)]
    partition: Option<String>,
    /// `--mode lambda`: the control table (stack output ControlTableName; CloudFormation generates it).
    #[arg(long, required_if_eq("mode", "lambda"))]
    control_table: Option<String>,
    /// `--mode lambda`: the file queue's name or URL (stack output QueueUrl; CloudFormation generates it).
    #[arg(long, required_if_eq("mode", "lambda"))]
    queue: Option<String>,
    /// Endpoint for every AWS service (local emulators).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The export bucket's side: with --s3-profile or --s3-role-arn the exports are read as another
    /// principal, and its policy is printed apart (`{"table": …, "exports": …}`).
    #[command(flatten)]
    s3: S3Args,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Local,
    Lambda,
}

fn parse_export(s: &str) -> Result<ExportUri, String> {
    s.parse().map_err(|e: ddb_pitr::Error| e.to_string())
}

fn parse_s3(s: &str) -> Result<S3Uri, String> {
    s.parse().map_err(|e: ddb_pitr::Error| e.to_string())
}

fn parse_state(s: &str) -> Result<StateLocation, String> {
    s.parse().map_err(|e: ddb_pitr::Error| e.to_string())
}

/// A table name or ARN as given to `--control-table`.
fn table_name(s: &str, flag: &str) -> anyhow::Result<String> {
    let name = if s.starts_with("arn:") {
        access::parse_table_arn(s)?.3
    } else {
        s.to_owned()
    };
    if !access::is_table_name(&name) {
        bail!("{flag} `{s}` is not a DynamoDB table name (3 to 255 of a-z A-Z 0-9 _ - .)");
    }
    Ok(name)
}

pub async fn run(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    let (partition, region, account, table) = if args.table.starts_with("arn:") {
        let (p, r, a, t) = access::parse_table_arn(&args.table)?;
        for (flag, given, from_arn) in [
            ("--partition", &args.partition, &p),
            ("--region", &args.region, &r),
            ("--account", &args.account, &a),
        ] {
            if let Some(given) = given.as_ref().filter(|g| *g != from_arn) {
                bail!("{flag} {given} contradicts the table ARN {}", args.table);
            }
        }
        (p, Some(r), Some(a), t)
    } else {
        (
            args.partition.clone().unwrap_or_else(|| "aws".into()),
            args.region.clone(),
            args.account.clone(),
            table_name(&args.table, "--table")?,
        )
    };

    let origin = Origin::given(args.export_prefix.as_deref(), args.source_table.as_deref())?;
    let listed = matches!(origin, Some(Origin::Table(_))) && args.bucket.is_none();
    if args.request_export
        && !args
            .source_table
            .as_deref()
            .is_some_and(|t| t.starts_with("arn:"))
    {
        bail!(
            "--request-export needs --source-table as the exported table's ARN: the permissions are on it"
        );
    }
    // AWS is called only for what the flags do not say: the region, the account, the export manifests, the
    // exports DynamoDB lists.
    let needs_aws = region.is_none() || account.is_none() || !args.exports.is_empty() || listed;
    let clients = if needs_aws {
        let opts = ClientOptions {
            region: region.clone(),
            endpoint_url: args.endpoint_url.clone(),
            s3: args.s3.side(),
        };
        Some(Clients::load(&opts).await)
    } else {
        None
    };
    let region = match region {
        Some(r) => r,
        None => clients
            .as_ref()
            .and_then(|c| c.sts.config().region())
            .map(|r| r.to_string())
            .context(
                "no region: pass --region, a table ARN, or configure one (AWS_REGION or a profile)",
            )?,
    };
    let account = match account {
        Some(a) => a,
        None => {
            let sts = &clients
                .as_ref()
                .expect("loaded when the account is unknown")
                .sts;
            caller_account(sts).await?
        }
    };
    if !access::is_account_id(&account) {
        bail!("account `{account}` is not a 12-digit AWS account id");
    }

    let mut export_objects = Vec::new();
    let mut kms_keys = args.kms_keys.clone();
    let mut latest = None;
    if let Some(Origin::Prefix(prefix)) = &origin {
        // Discovery lists `<root>AWSDynamoDB/` and reads everything under it.
        let root = discover::root_of(prefix);
        export_objects.push(S3Uri {
            bucket: prefix.bucket.clone(),
            key: format!("{root}AWSDynamoDB/"),
        });
    } else if let (true, Some(origin)) = (listed, &origin) {
        let c = clients.as_ref().expect("loaded to list the exports");
        let catalog = resolve::catalog(c, &S3Reader::new(c.exports.s3.clone()), origin).await?;
        let mine: Vec<_> = catalog.exports.iter().collect();
        for f in &mine {
            let folder = S3Uri {
                bucket: f.uri.bucket.clone(),
                key: format!("{}AWSDynamoDB/", f.uri.root),
            };
            if !export_objects.contains(&folder) {
                export_objects.push(folder);
            }
        }
        latest = request::latest(&mine).cloned();
        if args.request_export {
            // A table with no export has no folder to request into: say so rather than leave it out.
            request::destination(origin, latest.as_ref())?;
        }
    } else if args.exports.is_empty() {
        let bucket = args
            .bucket
            .clone()
            .expect("clap requires --bucket without --export");
        export_objects.push(S3Uri {
            bucket,
            key: args.prefix.clone(),
        });
    } else {
        for e in &args.exports {
            if let Some(b) = &args.bucket
                && (*b != e.bucket || !e.root.starts_with(&args.prefix))
            {
                bail!(
                    "--export {e} is not under --bucket {b} --prefix {:?}; give either --export or --bucket/--prefix, or make them agree",
                    args.prefix
                );
            }
        }
        let s3 = clients.as_ref().expect("loaded for --export").s3.clone();
        let found = export_access(&S3Reader::new(s3), &args.exports).await?;
        export_objects = found.objects;
        kms_keys.extend(found.kms_keys);
    }

    let mut scope = Scope {
        partition,
        region,
        account,
        table,
        export_objects,
        checkpoint: match args.resume {
            Some(StateLocation::S3(uri)) => Some(uri),
            _ => None,
        },
        report: args.report,
        kms_keys: Vec::new(),
        manage_capacity: args.manage_capacity,
        autoscaling: args.autoscaling.into(),
        control_table: String::new(),
        queue: String::new(),
        source: SourceScope::for_chain(
            origin.as_ref(),
            args.source_table.clone().filter(|t| t.starts_with("arn:")),
            latest.as_ref(),
            args.request_export,
            args.s3.side().other_principal(),
        ),
    };
    for key in kms_keys {
        let arn = scope.kms_key_arn(&key)?;
        if !scope.kms_keys.contains(&arn) {
            scope.kms_keys.push(arn);
        }
    }

    let document = match args.mode {
        Mode::Local if scope.source.reader_apart => json!({
            "table": policy_document(&permissions(Role::Local, &scope)),
            "exports": policy_document(&permissions(Role::ExportReader, &scope)),
        }),
        Mode::Local => policy_document(&permissions(Role::Local, &scope)),
        Mode::Lambda => {
            if scope.manage_capacity {
                bail!(
                    "--manage-capacity is a local restore option; the Lambda roles never change capacity"
                );
            }
            scope.control_table = table_name(
                args.control_table
                    .as_deref()
                    .expect("clap requires it in lambda mode"),
                "--control-table",
            )?;
            let queue = args.queue.expect("clap requires it in lambda mode");
            scope.queue = queue
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            if scope.queue.is_empty() {
                bail!("--queue `{queue}` names no queue");
            }
            let doc = |role| policy_document(&permissions(role, &scope));
            json!({
                "planner": doc(Role::Planner),
                "worker": doc(Role::Worker),
                "reporter": doc(Role::Reporter),
            })
        }
    };
    print_data(&serde_json::to_string_pretty(&document).expect("a policy serialises"));
    Ok(ExitCode::SUCCESS)
}
