//! Which AWS actions ddb-pitr calls, on which resources, for each role it runs in; and the least-privilege
//! IAM policy documents that allow exactly that (`ddb-pitr policy`, `docs/permissions.md`).
//!
//! [`permissions`] lists, per [`Role`], every IAM action the role's code path needs, on exact ARNs built
//! from a [`Scope`]. Two tests keep it honest against the code: a static scan of every SDK operation the
//! sources call (operation names taken from the SDK crates themselves), and integration tests that record
//! every call a real restore makes with the tests' `CallLog` and check it against the role's permissions.
//!
//! IAM facts this module relies on:
//! - HeadObject is authorised by `s3:GetObject`; SendMessageBatch by `sqs:SendMessage`; a
//!   TransactWriteItems by the actions of its items (`dynamodb:UpdateItem` for an Update).
//! - S3 answers 403, not 404, for a missing key unless the caller has `s3:ListBucket` on the bucket. The
//!   checkpoint store asks for its key with ListObjectsV2 (`prefix` = the key), which the `s3:prefix`
//!   condition allows exactly; the manifest reader tells a missing checksum file from a denial by the 404.
//! - `application-autoscaling:DescribeScalableTargets` has no resource-level permissions (its Resource must be
//!   `*`), and a scalable target's ARN ends in a random id: these are the only non-exact resources.

pub mod exports;
pub mod policy;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

pub use crate::aws::arn::Arn;
use crate::error::{Error, Result};
use crate::export::discover::Origin;
use crate::export::location::{ExportUri, S3Uri, report_object};
use crate::export::request::destination;
use crate::table::capacity::AutoScaling;

/// Where ddb-pitr runs, and so which identity needs the permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `ddb-pitr restore` (and `validate`) on a PC or EC2.
    Local,
    /// The planner Lambda.
    Planner,
    /// The worker Lambda (and `ddb-pitr worker`).
    Worker,
    /// The reporter Lambda.
    Reporter,
    /// The principal that reads the exports when it is not the table side's (`--s3-profile`,
    /// `--s3-role-arn`): a central backup bucket's reader role.
    ExportReader,
}

/// Everything a policy depends on.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: String,
    pub region: String,
    pub account: String,
    /// Target table name.
    pub table: String,
    /// Export objects: each is a bucket and a key prefix (an export's directory, or a prefix above several).
    pub export_objects: Vec<S3Uri>,
    /// An S3 checkpoint (`--resume s3://…`); local checkpoints need no permission.
    pub checkpoint: Option<S3Uri>,
    /// The report object, or a prefix ending in `/` under which reports are written.
    pub report: Option<S3Uri>,
    /// KMS keys the export objects are encrypted with (SSE-KMS).
    pub kms_keys: Vec<String>,
    pub manage_capacity: bool,
    pub autoscaling: AutoScaling,
    /// Distributed mode: the control table's name.
    pub control_table: String,
    /// Distributed mode: the file queue's name.
    pub queue: String,
    /// The exported table's side: its export APIs, and who reads the exports.
    pub source: SourceScope,
}

/// What a restore asks of the exported table and of the export bucket beyond reading the exports.
#[derive(Debug, Clone, Default)]
pub struct SourceScope {
    /// The exported table's ARN, when its export APIs are called.
    pub table_arn: Option<String>,
    /// `--source-table` without `--export-prefix`: the exports are found with ListExports and
    /// DescribeExport.
    pub list_exports: bool,
    /// `--request-export`: where missing exports are requested into (the bucket and the S3Prefix given to
    /// ExportTableToPointInTime).
    pub request_into: Option<S3Uri>,
    /// The exports are read as another principal (`--s3-profile`, `--s3-role-arn`): their permissions are
    /// [`Role::ExportReader`]'s, not the table side's.
    pub reader_apart: bool,
}

impl SourceScope {
    /// What a restore that finds its chain at `origin` asks of the source: its table (`table_arn`, or the
    /// one `origin` names), its ListExports when the origin is a table, and with `request`, the S3 prefix
    /// exports are requested into (the prefix, or the folder of the table's `latest` export).
    pub fn for_chain(
        origin: Option<&Origin>,
        table_arn: Option<String>,
        latest: Option<&ExportUri>,
        request: bool,
        reader_apart: bool,
    ) -> SourceScope {
        SourceScope {
            table_arn: table_arn.or_else(|| match origin {
                Some(Origin::Table(arn)) => Some(arn.clone()),
                _ => None,
            }),
            list_exports: matches!(origin, Some(Origin::Table(_))),
            request_into: origin
                .filter(|_| request)
                .and_then(|o| destination(o, latest).ok()),
            reader_apart,
        }
    }
}

/// One action on one resource, with an optional IAM `Condition` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permission {
    pub action: &'static str,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<serde_json::Value>,
}

impl Scope {
    /// `arn:…:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    /// `arn:…:dynamodb:…:table/<name>`.
    pub fn table_arn(&self, table: &str) -> String {
        self.arn("dynamodb", &format!("table/{table}"))
    }

    /// `arn:…:sqs:…:<queue name>`.
    pub fn queue_arn(&self) -> String {
        self.arn("sqs", &self.queue)
    }

    /// `arn:…:s3:::<bucket>/<key>` (S3 ARNs have no region or account).
    pub fn object_arn(&self, bucket: &str, key: &str) -> String {
        format!("arn:{}:s3:::{bucket}/{key}", self.partition)
    }

    pub fn bucket_arn(&self, bucket: &str) -> String {
        format!("arn:{}:s3:::{bucket}", self.partition)
    }

    /// A KMS key ARN for a key ARN or a bare key id (`1234abcd-…`, `mrk-…`). Aliases are refused: IAM
    /// authorises `kms:Decrypt` on the key, and S3 names the key, never an alias, when it decrypts.
    pub fn kms_key_arn(&self, key: &str) -> Result<String> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "KMS key `{key}` {why}; pass the key's ARN (arn:{}:kms:REGION:ACCOUNT:key/KEY_ID) with --kms-key",
                self.partition
            ))
        };
        if key.starts_with("arn:") {
            match Arn::parse(key) {
                Some(a)
                    if a.service == "kms"
                        && a.resource.starts_with("key/")
                        && a.resource.len() > 4 =>
                {
                    Ok(key.to_owned())
                }
                Some(a) if a.service == "kms" && a.resource.starts_with("alias/") => {
                    Err(bad("is an alias"))
                }
                _ => Err(bad("is not a KMS key ARN")),
            }
        } else if key.starts_with("alias/") {
            Err(bad("is an alias"))
        } else if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            Ok(self.arn("kms", &format!("key/{key}")))
        } else {
            Err(bad("is not a key id"))
        }
    }
}

/// A DynamoDB table ARN's parts: `(partition, region, account, table name)`.
pub fn parse_table_arn(arn: &str) -> Result<(String, String, String, String)> {
    let bad = || {
        Error::Usage(format!(
            "`{arn}` is not a DynamoDB table ARN: expected arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME"
        ))
    };
    let Some(Arn {
        partition,
        service,
        region,
        account,
        resource,
    }) = Arn::parse(arn)
    else {
        return Err(bad());
    };
    let name = resource.strip_prefix("table/").ok_or_else(bad)?;
    if service != "dynamodb"
        || partition.is_empty()
        || region.is_empty()
        || !is_account_id(account)
        || !is_table_name(name)
    {
        return Err(bad());
    }
    Ok((
        partition.to_string(),
        region.to_string(),
        account.to_string(),
        name.to_owned(),
    ))
}

/// Twelve digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// DynamoDB table names: 3 to 255 of `a-z A-Z 0-9 _ - .`.
pub fn is_table_name(s: &str) -> bool {
    (3..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Accumulates permissions without duplicates, in the order they were first added.
#[derive(Default)]
struct Perms(Vec<Permission>);

impl Perms {
    fn add(&mut self, actions: &[&'static str], resource: &str, condition: Option<Value>) {
        for &action in actions {
            let p = Permission {
                action,
                resource: resource.to_owned(),
                condition: condition.clone(),
            };
            if !self.0.contains(&p) {
                self.0.push(p);
            }
        }
    }
}

/// Read access to the export objects (manifests and data files: GetObject and HeadObject). `list`: also
/// `s3:ListBucket` on the export folders, because the manifest reader treats a missing checksum file
/// (`manifest-summary.md5`, or `.md5` where an export has `.checksum`) as a normal case, which it can only
/// tell from a denial by S3's 404.
fn exports(p: &mut Perms, scope: &Scope, list: bool) {
    let mut folders: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for uri in &scope.export_objects {
        p.add(
            &["s3:GetObject"],
            &scope.object_arn(&uri.bucket, &format!("{}*", uri.key)),
            None,
        );
        folders
            .entry(&uri.bucket)
            .or_default()
            .push(format!("{}*", uri.key));
    }
    for key in &scope.kms_keys {
        let arn = scope.kms_key_arn(key).unwrap_or_else(|_| key.clone());
        p.add(&["kms:Decrypt"], &arn, None);
    }
    if list {
        for (bucket, mut prefixes) in folders {
            prefixes.sort();
            prefixes.dedup();
            // A folder of "" is the whole bucket: no condition narrows it.
            let condition = (!prefixes.iter().any(|x| x == "*"))
                .then(|| json!({"StringLike": {"s3:prefix": prefixes}}));
            p.add(&["s3:ListBucket"], &scope.bucket_arn(bucket), condition);
        }
    }
}

/// The exported table's export APIs: ListExports (no resource-level permissions: `*`) and DescribeExport to
/// find its exports; ExportTableToPointInTime, DescribeContinuousBackups (the PITR window) and DescribeTable
/// (a FULL export's size) to request one, with the S3 writes DynamoDB makes as the caller into the
/// destination (only where `requests` are made: the local runner and `cloud start`).
fn source(p: &mut Perms, scope: &Scope, requests: bool) {
    let Some(table) = &scope.source.table_arn else {
        return;
    };
    let exports = format!("{table}/export/*");
    if scope.source.list_exports {
        p.add(&["dynamodb:ListExports"], "*", None);
        p.add(&["dynamodb:DescribeExport"], &exports, None);
    }
    if let Some(into) = scope.source.request_into.as_ref().filter(|_| requests) {
        p.add(
            &[
                "dynamodb:ExportTableToPointInTime",
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:DescribeTable",
            ],
            table,
            None,
        );
        p.add(&["dynamodb:DescribeExport"], &exports, None);
        p.add(
            &["s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectAcl"],
            &scope.object_arn(&into.bucket, &format!("{}*", into.key)),
            None,
        );
    }
}

/// The S3 checkpoint of a local restore: read (a 404 means "start from the beginning", hence the
/// `s3:ListBucket` limited to exactly that key) and written.
fn checkpoint(p: &mut Perms, scope: &Scope) {
    if let Some(uri) = &scope.checkpoint {
        p.add(
            &["s3:GetObject", "s3:PutObject"],
            &scope.object_arn(&uri.bucket, &uri.key),
            None,
        );
        p.add(
            &["s3:ListBucket"],
            &scope.bucket_arn(&uri.bucket),
            Some(json!({"StringEquals": {"s3:prefix": uri.key}})),
        );
    }
}

/// The report object: exactly the key, or `<prefix>ddb-pitr-report-*.json` for a prefix, the names
/// [`report_object`] gives.
fn report(p: &mut Perms, scope: &Scope) {
    if let Some(uri) = &scope.report {
        let target = report_object(uri, "*");
        p.add(
            &["s3:PutObject"],
            &scope.object_arn(&target.bucket, &target.key),
            None,
        );
    }
}

/// Every permission `role` needs for `scope`: exactly the actions its code path calls, on exact ARNs.
/// See `docs/permissions.md` for why each one is there.
pub fn permissions(role: Role, scope: &Scope) -> Vec<Permission> {
    let mut p = Perms::default();
    let table = scope.table_arn(&scope.table);
    let control = scope.table_arn(&scope.control_table);
    let queue = scope.queue_arn();
    match role {
        Role::Local => {
            // DescribeTable: every restore's pre-flight (status and key schema), and --manage-capacity.
            p.add(
                &["dynamodb:DescribeTable", "dynamodb:BatchWriteItem"],
                &table,
                None,
            );
            if scope.manage_capacity {
                // GSI capacity is changed through UpdateTable on the table too.
                p.add(&["dynamodb:UpdateTable"], &table, None);
            }
            if !scope.source.reader_apart {
                exports(&mut p, scope, true);
            }
            source(&mut p, scope, true);
            checkpoint(&mut p, scope);
            report(&mut p, scope);
            if scope.manage_capacity {
                autoscaling(&mut p, scope);
            }
        }
        Role::ExportReader => exports(&mut p, scope, true),
        Role::Planner => {
            p.add(&["dynamodb:DescribeTable"], &table, None);
            exports(&mut p, scope, true);
            // `cloud start --source-table ARN`: the planner finds the chain; requests are made by the CLI.
            source(&mut p, scope, false);
            p.add(
                &[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                ],
                &control,
                None,
            );
            // GetQueueAttributes: `progress` re-sends files whose messages are gone only when the queue is
            // empty.
            p.add(&["sqs:SendMessage", "sqs:GetQueueAttributes"], &queue, None);
        }
        Role::Worker => {
            p.add(&["dynamodb:BatchWriteItem"], &table, None);
            exports(&mut p, scope, false);
            // TransactWriteItems of two Updates (finish a file, count it in the header) needs UpdateItem.
            p.add(&["dynamodb:GetItem", "dynamodb:UpdateItem"], &control, None);
            // SendMessage: continuations. Receive/Delete/ChangeMessageVisibility: `ddb-pitr worker`, and
            // (with GetQueueAttributes) the Lambda SQS event source mapping, which polls as this role.
            p.add(
                &[
                    "sqs:SendMessage",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                &queue,
                None,
            );
        }
        Role::Reporter => {
            p.add(&["dynamodb:GetItem", "dynamodb:Query"], &control, None);
            report(&mut p, scope);
        }
    }
    p.0
}

/// The only non-exact resources (see the module docs): only with `--manage-capacity`, Register only with
/// `--autoscaling adjust`.
fn autoscaling(p: &mut Perms, scope: &Scope) {
    p.add(
        &["application-autoscaling:DescribeScalableTargets"],
        "*",
        Some(json!({"StringEquals": {"aws:RequestedRegion": scope.region}})),
    );
    if scope.autoscaling == AutoScaling::Adjust {
        p.add(
            &["application-autoscaling:RegisterScalableTarget"],
            &scope.arn("application-autoscaling", "scalable-target/*"),
            Some(
                json!({"StringEquals": {"application-autoscaling:service-namespace": "dynamodb"}}),
            ),
        );
    }
}

#[cfg(test)]
mod tests;
