//! Which AWS actions ddb-pitr calls, on which resources, for each role it runs in; and the least-privilege
//! IAM policy documents that allow exactly that (`ddb-pitr policy`, `docs/permissions.md`).
//!
//! [`permissions`] lists, per [`Role`], every IAM action the role's code path needs, on exact ARNs built
//! from a [`Scope`]. Two tests keep it honest against the code: a static scan of every SDK operation the
//! sources call (operation names taken from the SDK crates themselves), and integration tests that record
//! every call a real restore makes with [`CallLog`] and check it against the role's permissions.
//!
//! IAM facts this module relies on:
//! - HeadObject is authorised by `s3:GetObject`; SendMessageBatch by `sqs:SendMessage`; a
//!   TransactWriteItems by the actions of its items (`dynamodb:UpdateItem` for an Update).
//! - S3 answers 403, not 404, for a missing key unless the caller has `s3:ListBucket` on the bucket. The
//!   checkpoint store asks for its key with ListObjectsV2 (`prefix` = the key), which the `s3:prefix`
//!   condition allows exactly; the manifest reader tells a missing checksum file from a denial by the 404.
//! - `application-autoscaling:DescribeScalableTargets` has no resource-level permissions (its Resource must be
//!   `*`), and a scalable target's ARN ends in a random id: these are the only non-exact resources.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::location::{ExportUri, S3Uri};
use crate::restore::Clients;
use crate::source::ObjectReader;

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
    fn arn(&self, service: &str, resource: &str) -> String {
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
/// The parts of `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// `None` unless `arn` starts with `arn:` and has all six parts (the resource may hold more colons).
    pub fn parse(arn: &'a str) -> Option<Self> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ["arn", partition, service, region, account, resource] = parts.as_slice() else {
            return None;
        };
        Some(Arn {
            partition,
            service,
            region,
            account,
            resource,
        })
    }
}

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
/// [`crate::report::report_object`] gives.
fn report(p: &mut Perms, scope: &Scope) {
    if let Some(uri) = &scope.report {
        let target = crate::report::report_object(uri, "*");
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
            exports(&mut p, scope, true);
            checkpoint(&mut p, scope);
            report(&mut p, scope);
            if scope.manage_capacity {
                autoscaling(&mut p, scope);
            }
        }
        Role::Planner => {
            p.add(&["dynamodb:DescribeTable"], &table, None);
            exports(&mut p, scope, true);
            p.add(
                &[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                    "dynamodb:BatchWriteItem",
                ],
                &control,
                None,
            );
            p.add(&["sqs:SendMessage"], &queue, None);
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

/// What one statement is for: its `Sid` and its place in the document.
fn purpose(actions: &BTreeSet<&str>, condition: Option<&Value>) -> (u8, &'static str) {
    let has = |a: &str| actions.contains(a);
    let cond_op = condition
        .and_then(Value::as_object)
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_default();
    if has("dynamodb:BatchWriteItem") && !has("dynamodb:Query") && !has("dynamodb:GetItem") {
        (0, "WriteTargetTable")
    } else if has("dynamodb:DescribeTable") || has("dynamodb:UpdateTable") {
        (1, "DescribeTargetTable")
    } else if has("dynamodb:GetItem") || has("dynamodb:Query") {
        (8, "ControlTable")
    } else if has("s3:ListBucket") && cond_op == "StringEquals" {
        (5, "ListCheckpointKeySoMissingIs404")
    } else if has("s3:ListBucket") {
        (3, "ListExportFoldersSoMissingIs404")
    } else if has("s3:GetObject") && has("s3:PutObject") {
        (6, "ReadWriteCheckpoint")
    } else if has("s3:GetObject") {
        (2, "ReadExportObjects")
    } else if has("s3:PutObject") {
        (7, "WriteReport")
    } else if actions.iter().any(|a| a.starts_with("kms:")) {
        (4, "DecryptExportObjects")
    } else if actions.iter().any(|a| a.starts_with("sqs:")) {
        (9, "FileQueue")
    } else if has("application-autoscaling:DescribeScalableTargets") {
        (
            10,
            "AutoScalingDescribeHasNoResourceLevelPermissionsSoStarInOneRegion",
        )
    } else if has("application-autoscaling:RegisterScalableTarget") {
        (11, "AutoScalingRegisterTargetArnEndsInARandomId")
    } else {
        (12, "Other")
    }
}

/// A resource under one condition.
type ResourceKey = (String, Option<Value>);
/// A set of actions under one condition.
type ActionsKey<'a> = (BTreeSet<&'a str>, Option<Value>);

/// An IAM policy document (Version 2012-10-17) allowing exactly `perms`. Actions on the same resources
/// under the same condition share a statement; statements come in a fixed order with readable, unique
/// `Sid`s, so the same permissions always give the same document.
pub fn policy_document(perms: &[Permission]) -> Value {
    // (resource, condition) -> actions, in first-seen order.
    let mut by_resource: Vec<(ResourceKey, BTreeSet<&str>)> = Vec::new();
    for p in perms {
        let key = (p.resource.clone(), p.condition.clone());
        match by_resource.iter_mut().find(|(k, _)| *k == key) {
            Some((_, actions)) => {
                actions.insert(p.action);
            }
            None => by_resource.push((key, BTreeSet::from([p.action]))),
        }
    }
    // (actions, condition) -> resources.
    let mut groups: Vec<(ActionsKey<'_>, Vec<String>)> = Vec::new();
    for ((resource, condition), actions) in by_resource {
        let key = (actions, condition);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, resources)) => resources.push(resource),
            None => groups.push((key, vec![resource])),
        }
    }
    let mut statements: Vec<(u8, &'static str, Vec<String>, Value)> = groups
        .into_iter()
        .map(|((actions, condition), mut resources)| {
            resources.sort();
            let (rank, sid) = purpose(&actions, condition.as_ref());
            let mut s = json!({
                "Effect": "Allow",
                "Action": actions.iter().collect::<Vec<_>>(),
                "Resource": resources,
            });
            if let Some(c) = condition {
                s["Condition"] = c;
            }
            (rank, sid, resources.clone(), s)
        })
        .collect();
    statements.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let statements: Vec<Value> = statements
        .into_iter()
        .map(|(_, sid, _, body)| {
            let n = seen.entry(sid).or_default();
            *n += 1;
            let sid = if *n == 1 {
                sid.to_owned()
            } else {
                format!("{sid}{n}")
            };
            let mut out = serde_json::Map::new();
            out.insert("Sid".into(), sid.into());
            if let Value::Object(fields) = body {
                out.extend(fields);
            }
            Value::Object(out)
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// `arn:aws:s3:::b/k` against an IAM resource pattern: `*` matches any run of characters (`/` and `:`
/// included), `?` any one character.
pub fn arn_matches(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < v.len() {
        if i < p.len() && (p[i] == b'?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// Whether `perms` allow `action` on `resource` (conditions are not evaluated).
pub fn allows(perms: &[Permission], action: &str, resource: &str) -> bool {
    perms
        .iter()
        .any(|p| p.action == action && arn_matches(&p.resource, resource))
}

/// The IAM actions that authorise one SDK operation, by the names the SDK gives them in its operation
/// `Metadata` (service `"S3"`, `"DynamoDB"`, `"SQS"`, `"Application Auto Scaling"`, …; case, spaces and
/// dashes are ignored). `Some(&[])`: no permission is needed. `None`: not known here; add it when the code
/// starts calling the operation (a test fails until then).
pub fn actions_for(service: &str, operation: &str) -> Option<&'static [&'static str]> {
    let service: String = service
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect();
    let actions: &'static [&'static str] = match (service.as_str(), operation) {
        ("s3", "GetObject" | "HeadObject") => &["s3:GetObject"],
        ("s3", "PutObject") => &["s3:PutObject"],
        ("s3", "DeleteObject") => &["s3:DeleteObject"],
        ("s3", "ListObjectsV2" | "ListObjects" | "HeadBucket") => &["s3:ListBucket"],
        ("dynamodb", "DescribeTable") => &["dynamodb:DescribeTable"],
        ("dynamodb", "UpdateTable") => &["dynamodb:UpdateTable"],
        ("dynamodb", "CreateTable") => &["dynamodb:CreateTable"],
        ("dynamodb", "DeleteTable") => &["dynamodb:DeleteTable"],
        ("dynamodb", "UpdateTimeToLive") => &["dynamodb:UpdateTimeToLive"],
        ("dynamodb", "BatchWriteItem") => &["dynamodb:BatchWriteItem"],
        ("dynamodb", "PutItem") => &["dynamodb:PutItem"],
        ("dynamodb", "GetItem") => &["dynamodb:GetItem"],
        ("dynamodb", "UpdateItem") => &["dynamodb:UpdateItem"],
        ("dynamodb", "DeleteItem") => &["dynamodb:DeleteItem"],
        ("dynamodb", "Query") => &["dynamodb:Query"],
        ("dynamodb", "Scan") => &["dynamodb:Scan"],
        // IAM authorises a transaction by the action of each item. ddb-pitr's transactions (control.rs,
        // `finish`) hold Update items only; a test scans for the item kinds the code builds.
        ("dynamodb", "TransactWriteItems") => &["dynamodb:UpdateItem"],
        ("sqs", "SendMessage" | "SendMessageBatch") => &["sqs:SendMessage"],
        ("sqs", "ReceiveMessage") => &["sqs:ReceiveMessage"],
        ("sqs", "DeleteMessage" | "DeleteMessageBatch") => &["sqs:DeleteMessage"],
        ("sqs", "ChangeMessageVisibility" | "ChangeMessageVisibilityBatch") => {
            &["sqs:ChangeMessageVisibility"]
        }
        ("sqs", "GetQueueAttributes") => &["sqs:GetQueueAttributes"],
        ("sqs", "GetQueueUrl") => &["sqs:GetQueueUrl"],
        ("applicationautoscaling", "DescribeScalableTargets") => {
            &["application-autoscaling:DescribeScalableTargets"]
        }
        ("applicationautoscaling", "RegisterScalableTarget") => {
            &["application-autoscaling:RegisterScalableTarget"]
        }
        ("sfn" | "states", "StartExecution") => &["states:StartExecution"],
        ("sfn" | "states", "DescribeExecution") => &["states:DescribeExecution"],
        ("sfn" | "states", "GetExecutionHistory") => &["states:GetExecutionHistory"],
        // "No permissions are required to perform this operation" (STS API reference).
        ("sts", "GetCallerIdentity") => &[],
        ("iam", "SimulatePrincipalPolicy") => &["iam:SimulatePrincipalPolicy"],
        ("iam", "GetRole") => &["iam:GetRole"],
        ("iam", "GetUser") => &["iam:GetUser"],
        _ => return None,
    };
    Some(actions)
}

/// What the export scope of a policy is, read from the exports themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportAccess {
    /// Each export's folder, and the folders outside it that hold its data files (INCREMENTAL exports
    /// write theirs to the shared `AWSDynamoDB/data/`), as bucket + key prefix ending in `/`.
    pub objects: Vec<S3Uri>,
    /// `s3SseKmsKeyId` of each SSE-KMS export, as the summary gives it.
    pub kms_keys: Vec<String>,
}

/// Reads and verifies each export's manifests, and returns the folders its objects are in and the KMS
/// keys they are encrypted with. Makes no writes.
pub async fn export_access(objects: &dyn ObjectReader, uris: &[ExportUri]) -> Result<ExportAccess> {
    let mut access = ExportAccess::default();
    for uri in uris {
        let export = crate::manifest::load(objects, uri).await?;
        let folder = S3Uri {
            bucket: uri.bucket.clone(),
            key: uri.key(""),
        };
        let mut folders = vec![folder.clone()];
        for file in &export.files {
            if file.key.starts_with(&folder.key) {
                continue;
            }
            let parent = match file.key.rfind('/') {
                Some(i) => &file.key[..=i],
                None => "",
            };
            let f = S3Uri {
                bucket: uri.bucket.clone(),
                key: parent.to_owned(),
            };
            if !folders.contains(&f) {
                folders.push(f);
            }
        }
        for f in folders {
            if !access.objects.contains(&f) {
                access.objects.push(f);
            }
        }
        if let Some(key) = export.summary.s3_sse_kms_key_id.filter(|k| !k.is_empty())
            && !access.kms_keys.contains(&key)
        {
            access.kms_keys.push(key);
        }
    }
    Ok(access)
}

/// What an SDK call was made on, for checking calls against permissions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    S3Object {
        bucket: String,
        key: String,
    },
    S3Bucket {
        bucket: String,
    },
    Table(String),
    /// The queue URL.
    Queue(String),
}

impl Target {
    /// The resource ARN IAM checks for this target.
    pub fn arn(&self, scope: &Scope) -> String {
        match self {
            Target::S3Object { bucket, key } => scope.object_arn(bucket, key),
            Target::S3Bucket { bucket } => scope.bucket_arn(bucket),
            Target::Table(name) => scope.table_arn(name),
            Target::Queue(url) => {
                let name = url.trim_end_matches('/').rsplit('/').next().unwrap_or(url);
                scope.arn("sqs", name)
            }
        }
    }
}

/// One SDK call as [`CallLog`] saw it. `target` is `None` in the record every call gets, and set in one
/// more record per resource the call names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    pub service: String,
    pub operation: String,
    pub target: Option<Target>,
}

/// An SDK interceptor that records every operation called (service and operation from the SDK's own
/// operation `Metadata`) and the buckets, keys, tables and queues it names. Attach it to every client with
/// [`Clients::with_interceptor`]; tests use it to compare what the code calls with what a policy allows, or
/// to prove a command makes no writes.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    records: Arc<Mutex<BTreeSet<Call>>>,
}

impl CallLog {
    pub fn new() -> Self {
        CallLog::default()
    }

    /// Every `(service, operation)` called so far, e.g. `("S3", "GetObject")`.
    pub fn calls(&self) -> BTreeSet<(String, String)> {
        self.lock()
            .iter()
            .map(|c| (c.service.clone(), c.operation.clone()))
            .collect()
    }

    /// Every call with the resources it named.
    pub fn records(&self) -> BTreeSet<Call> {
        self.lock().clone()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Call>> {
        // A panic elsewhere while recording leaves a set that is still consistent.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, meta: &Metadata, target: Option<Target>) {
        self.lock().insert(Call {
            service: meta.service().to_owned(),
            operation: meta.name().to_owned(),
            target,
        });
    }
}

fn is_s3(meta: &Metadata) -> bool {
    meta.service().eq_ignore_ascii_case("s3")
}

/// Bucket and key of the S3 inputs ddb-pitr uses.
fn s3_target(
    input: &aws_smithy_runtime_api::client::interceptors::context::Input,
) -> Option<Target> {
    use aws_sdk_s3::operation::{
        get_object::GetObjectInput, head_object::HeadObjectInput,
        list_objects_v2::ListObjectsV2Input, put_object::PutObjectInput,
    };
    let object = |bucket: Option<&str>, key: Option<&str>| {
        Some(Target::S3Object {
            bucket: bucket?.to_owned(),
            key: key?.to_owned(),
        })
    };
    if let Some(i) = input.downcast_ref::<GetObjectInput>() {
        object(i.bucket(), i.key())
    } else if let Some(i) = input.downcast_ref::<HeadObjectInput>() {
        object(i.bucket(), i.key())
    } else if let Some(i) = input.downcast_ref::<PutObjectInput>() {
        object(i.bucket(), i.key())
    } else if let Some(i) = input.downcast_ref::<ListObjectsV2Input>() {
        Some(Target::S3Bucket {
            bucket: i.bucket()?.to_owned(),
        })
    } else {
        None
    }
}

/// Tables and queues named in a JSON-protocol request body (DynamoDB, SQS).
fn json_targets(body: &Value) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(t) = body.get("TableName").and_then(Value::as_str) {
        out.push(Target::Table(t.to_owned()));
    }
    if let Some(items) = body.get("RequestItems").and_then(Value::as_object) {
        out.extend(items.keys().map(|t| Target::Table(t.clone())));
    }
    for item in body
        .get("TransactItems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for kind in ["Put", "Update", "Delete", "ConditionCheck"] {
            if let Some(t) = item
                .get(kind)
                .and_then(|k| k.get("TableName"))
                .and_then(Value::as_str)
            {
                out.push(Target::Table(t.to_owned()));
            }
        }
    }
    if let Some(url) = body.get("QueueUrl").and_then(Value::as_str) {
        out.push(Target::Queue(url.to_owned()));
    }
    out
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "ddb-pitr CallLog"
    }

    // Not `read_before_execution`: for interceptors set on a client it runs before the operation's
    // configuration (which holds the `Metadata`) is applied. This hook runs once per operation too, after.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            self.record(meta, None);
            if is_s3(meta)
                && let Some(target) = s3_target(context.input())
            {
                self.record(meta, Some(target));
            }
        }
        Ok(())
    }

    // Right after serialization rather than before transmit: `write::DynamoWriter` sends BatchWriteItem
    // itself and takes the SDK's request (for each table) from a call that it stops before signing.
    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>()
            && !is_s3(meta)
            && let Some(bytes) = context.request().body().bytes()
            && let Ok(body) = serde_json::from_slice::<Value>(bytes)
        {
            for target in json_targets(&body) {
                self.record(meta, Some(target));
            }
        }
        Ok(())
    }
}

impl Clients {
    /// The same clients with `interceptor` added to each (e.g. a [`CallLog`]). Clients derived from these
    /// later (the BatchWriteItem client without SDK retries) keep it, as they are rebuilt from the config.
    pub fn with_interceptor(&self, interceptor: impl Intercept + 'static) -> Clients {
        let shared = SharedInterceptor::new(interceptor);
        macro_rules! rebuild {
            ($client:expr, $krate:ident) => {{
                let mut builder = $client.config().to_builder();
                builder.push_interceptor(shared.clone());
                $krate::Client::from_conf(builder.build())
            }};
        }
        Clients {
            s3: rebuild!(self.s3, aws_sdk_s3),
            dynamodb: rebuild!(self.dynamodb, aws_sdk_dynamodb),
            sqs: rebuild!(self.sqs, aws_sdk_sqs),
            sfn: rebuild!(self.sfn, aws_sdk_sfn),
            sts: rebuild!(self.sts, aws_sdk_sts),
            iam: rebuild!(self.iam, aws_sdk_iam),
            autoscaling: rebuild!(self.autoscaling, aws_sdk_applicationautoscaling),
        }
    }
}

/// The account of the caller's credentials (sts:GetCallerIdentity, which needs no permission).
pub async fn caller_account(sts: &aws_sdk_sts::Client) -> Result<String> {
    let out = sts.get_caller_identity().send().await.map_err(|e| {
        Error::Usage(format!(
            "the account id is unknown: pass --account or a table ARN (sts:GetCallerIdentity failed: {})",
            crate::error::describe_sdk_error(&e)
        ))
    })?;
    out.account().map(str::to_owned).ok_or_else(|| {
        Error::Usage("sts:GetCallerIdentity returned no account; pass --account".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(bucket: &str, key: &str) -> S3Uri {
        S3Uri {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    fn scope() -> Scope {
        Scope {
            partition: "aws".into(),
            region: "eu-north-1".into(),
            account: "123456789012".into(),
            table: "orders".into(),
            export_objects: vec![uri("exports", "backups/")],
            checkpoint: None,
            report: None,
            kms_keys: vec![],
            manage_capacity: false,
            autoscaling: AutoScaling::Refuse,
            control_table: "ctl".into(),
            queue: "files".into(),
        }
    }

    /// Every option on: the union of what any role can need.
    fn full_scope() -> Scope {
        Scope {
            checkpoint: Some(uri("state", "restores/orders.json")),
            report: Some(uri("state", "reports/")),
            kms_keys: vec!["arn:aws:kms:eu-north-1:123456789012:key/k1".into()],
            manage_capacity: true,
            autoscaling: AutoScaling::Adjust,
            ..scope()
        }
    }

    const ROLES: [Role; 4] = [Role::Local, Role::Planner, Role::Worker, Role::Reporter];

    fn statements(doc: &Value) -> &Vec<Value> {
        doc["Statement"].as_array().expect("statements")
    }

    fn strings(v: &Value) -> Vec<&str> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|s| s.as_str().expect("string"))
            .collect()
    }

    fn actions(perms: &[Permission]) -> BTreeSet<&'static str> {
        perms.iter().map(|p| p.action).collect()
    }

    /// Every combination of the options that change a policy.
    fn variants() -> Vec<Scope> {
        let mut out = Vec::new();
        for checkpoint in [None, Some(uri("state", "cp.json"))] {
            for report in [None, Some(uri("state", "r/")), Some(uri("state", "r.json"))] {
                for kms in [
                    vec![],
                    vec!["arn:aws:kms:eu-north-1:123456789012:key/k".into()],
                ] {
                    for (manage, auto) in [
                        (false, AutoScaling::Refuse),
                        (true, AutoScaling::Refuse),
                        (true, AutoScaling::Adjust),
                    ] {
                        out.push(Scope {
                            checkpoint: checkpoint.clone(),
                            report: report.clone(),
                            kms_keys: kms.clone(),
                            manage_capacity: manage,
                            autoscaling: auto,
                            ..scope()
                        });
                    }
                }
            }
        }
        out
    }

    #[test]
    fn local_minimal_policy_is_exact() {
        let doc = policy_document(&permissions(Role::Local, &scope()));
        assert_eq!(
            doc,
            json!({"Version": "2012-10-17", "Statement": [
                {"Sid": "WriteTargetTable", "Effect": "Allow",
                 "Action": ["dynamodb:BatchWriteItem", "dynamodb:DescribeTable"],
                 "Resource": ["arn:aws:dynamodb:eu-north-1:123456789012:table/orders"]},
                {"Sid": "ReadExportObjects", "Effect": "Allow", "Action": ["s3:GetObject"],
                 "Resource": ["arn:aws:s3:::exports/backups/*"]},
                {"Sid": "ListExportFoldersSoMissingIs404", "Effect": "Allow", "Action": ["s3:ListBucket"],
                 "Resource": ["arn:aws:s3:::exports"],
                 "Condition": {"StringLike": {"s3:prefix": ["backups/*"]}}},
            ]})
        );
    }

    #[test]
    fn local_full_policy_has_checkpoint_report_kms_and_capacity() {
        let doc = policy_document(&permissions(Role::Local, &full_scope()));
        let by_sid = |sid: &str| {
            statements(&doc)
                .iter()
                .find(|s| s["Sid"] == sid)
                .unwrap_or_else(|| panic!("no {sid} in {doc:#}"))
                .clone()
        };
        assert_eq!(
            strings(&by_sid("WriteTargetTable")["Action"]),
            [
                "dynamodb:BatchWriteItem",
                "dynamodb:DescribeTable",
                "dynamodb:UpdateTable"
            ]
        );
        let cp = by_sid("ReadWriteCheckpoint");
        assert_eq!(
            strings(&cp["Resource"]),
            ["arn:aws:s3:::state/restores/orders.json"]
        );
        assert_eq!(
            by_sid("ListCheckpointKeySoMissingIs404")["Condition"],
            json!({"StringEquals": {"s3:prefix": "restores/orders.json"}})
        );
        assert_eq!(
            strings(&by_sid("WriteReport")["Resource"]),
            ["arn:aws:s3:::state/reports/ddb-pitr-report-*.json"]
        );
        assert_eq!(
            strings(&by_sid("DecryptExportObjects")["Resource"]),
            ["arn:aws:kms:eu-north-1:123456789012:key/k1"]
        );
        let describe = by_sid("AutoScalingDescribeHasNoResourceLevelPermissionsSoStarInOneRegion");
        assert_eq!(strings(&describe["Resource"]), ["*"]);
        assert_eq!(
            describe["Condition"],
            json!({"StringEquals": {"aws:RequestedRegion": "eu-north-1"}})
        );
        assert_eq!(
            strings(&by_sid("AutoScalingRegisterTargetArnEndsInARandomId")["Resource"]),
            ["arn:aws:application-autoscaling:eu-north-1:123456789012:scalable-target/*"]
        );
    }

    #[test]
    fn an_exact_report_key_is_not_widened() {
        let s = Scope {
            report: Some(uri("state", "out/report.json")),
            ..scope()
        };
        let perms = permissions(Role::Local, &s);
        assert!(allows(
            &perms,
            "s3:PutObject",
            "arn:aws:s3:::state/out/report.json"
        ));
        assert!(!allows(
            &perms,
            "s3:PutObject",
            "arn:aws:s3:::state/out/report.json2"
        ));
    }

    #[test]
    fn wildcards_only_where_documented() {
        for role in ROLES {
            for s in variants() {
                let doc = policy_document(&permissions(role, &s));
                for st in statements(&doc) {
                    let sid = st["Sid"].as_str().unwrap();
                    for r in strings(&st["Resource"]) {
                        if sid.starts_with("AutoScaling") {
                            continue;
                        }
                        assert_ne!(r, "*", "{role:?}: {sid} has Resource *");
                        if !r.contains('*') {
                            continue;
                        }
                        // Under an export prefix, or a report name under a report prefix: nothing else.
                        let export = s
                            .export_objects
                            .iter()
                            .any(|e| r == s.object_arn(&e.bucket, &format!("{}*", e.key)));
                        let report = s.report.as_ref().is_some_and(|u| {
                            u.key.ends_with('/')
                                && r == s.object_arn(
                                    &u.bucket,
                                    &format!("{}ddb-pitr-report-*.json", u.key),
                                )
                        });
                        assert!(export || report, "{role:?}: {sid} has wildcard {r}");
                    }
                }
                let acts = actions(&permissions(role, &s));
                let autoscaling = acts
                    .iter()
                    .any(|a| a.starts_with("application-autoscaling:"));
                assert!(
                    !autoscaling || (role == Role::Local && s.manage_capacity),
                    "{role:?}: autoscaling without --manage-capacity"
                );
                assert_eq!(
                    acts.contains("application-autoscaling:RegisterScalableTarget"),
                    role == Role::Local
                        && s.manage_capacity
                        && s.autoscaling == AutoScaling::Adjust
                );
                assert_eq!(
                    acts.contains("dynamodb:UpdateTable"),
                    role == Role::Local && s.manage_capacity,
                    "{role:?}: UpdateTable only with --manage-capacity"
                );
                assert_eq!(
                    acts.contains("kms:Decrypt"),
                    role != Role::Reporter && !s.kms_keys.is_empty(),
                    "{role:?}: kms:Decrypt only for a key, only for roles that read exports"
                );
            }
        }
    }

    #[test]
    fn documents_are_deterministic_with_unique_sids() {
        for role in ROLES {
            for s in variants() {
                let perms = permissions(role, &s);
                let mut shuffled = perms.clone();
                shuffled.reverse();
                let doc = policy_document(&perms);
                assert_eq!(
                    doc,
                    policy_document(&shuffled),
                    "order of permissions matters"
                );
                let sids: Vec<&str> = statements(&doc)
                    .iter()
                    .map(|s| s["Sid"].as_str().unwrap())
                    .collect();
                let unique: BTreeSet<&str> = sids.iter().copied().collect();
                assert_eq!(unique.len(), sids.len(), "{sids:?}");
                assert!(
                    sids.iter()
                        .all(|s| s.bytes().all(|b| b.is_ascii_alphanumeric()))
                );
                // Every permission is in the document, and nothing else.
                let mut granted = BTreeSet::new();
                for st in statements(&doc) {
                    for a in strings(&st["Action"]) {
                        for r in strings(&st["Resource"]) {
                            granted.insert((a.to_owned(), r.to_owned()));
                        }
                    }
                }
                let wanted: BTreeSet<(String, String)> = perms
                    .iter()
                    .map(|p| (p.action.to_owned(), p.resource.clone()))
                    .collect();
                assert_eq!(granted, wanted);
            }
        }
    }

    #[test]
    fn two_export_buckets_get_two_list_statements() {
        let s = Scope {
            export_objects: vec![
                uri("a", "AWSDynamoDB/01-x/"),
                uri("a", "AWSDynamoDB/data/"),
                uri("b", ""),
            ],
            ..scope()
        };
        let doc = policy_document(&permissions(Role::Planner, &s));
        let lists: Vec<&Value> = statements(&doc)
            .iter()
            .filter(|s| strings(&s["Action"]) == ["s3:ListBucket"])
            .collect();
        assert_eq!(lists.len(), 2, "{doc:#}");
        assert_eq!(
            lists[0]["Condition"],
            json!({"StringLike": {"s3:prefix": ["AWSDynamoDB/01-x/*", "AWSDynamoDB/data/*"]}})
        );
        assert_eq!(
            lists[1].get("Condition"),
            None,
            "a whole bucket needs no condition"
        );
        assert_eq!(lists[1]["Sid"], "ListExportFoldersSoMissingIs4042");
    }

    #[test]
    fn lambda_roles_get_only_their_own_calls() {
        let s = full_scope();
        let planner = actions(&permissions(Role::Planner, &s));
        let worker = actions(&permissions(Role::Worker, &s));
        let reporter = actions(&permissions(Role::Reporter, &s));
        assert!(planner.contains("sqs:SendMessage") && !planner.contains("sqs:ReceiveMessage"));
        assert!(
            !planner.contains("s3:PutObject"),
            "the planner writes no report"
        );
        assert!(
            worker.contains("sqs:GetQueueAttributes"),
            "the event source mapping polls as the worker role"
        );
        assert!(!worker.contains("dynamodb:DescribeTable") && !worker.contains("s3:ListBucket"));
        assert_eq!(
            reporter,
            BTreeSet::from(["dynamodb:GetItem", "dynamodb:Query", "s3:PutObject"])
        );
        for role in [Role::Planner, Role::Worker, Role::Reporter] {
            let perms = permissions(role, &s);
            assert!(
                !perms
                    .iter()
                    .any(|p| p.resource.contains(":s3:::state/restores")),
                "{role:?}: Lambda roles have no local checkpoint"
            );
        }
    }

    #[test]
    fn kms_keys_and_table_arns_are_checked() {
        let s = scope();
        assert_eq!(
            s.kms_key_arn("1234abcd-12ab-34cd-56ef-1234567890ab")
                .unwrap(),
            "arn:aws:kms:eu-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        );
        for bad in [
            "alias/exports",
            "arn:aws:kms:eu-north-1:123456789012:alias/x",
            "arn:aws:s3:::b",
            "",
        ] {
            assert!(s.kms_key_arn(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_table_arn("arn:aws-cn:dynamodb:cn-north-1:123456789012:table/t-1").unwrap(),
            (
                "aws-cn".into(),
                "cn-north-1".into(),
                "123456789012".into(),
                "t-1".into()
            )
        );
        for bad in [
            "arn:aws:dynamodb:eu-north-1:123456789012:table/t/index/i",
            "arn:aws:s3:::t",
            "arn:aws:dynamodb:eu-north-1:1234:table/orders",
            "orders",
        ] {
            assert!(parse_table_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcard_matching() {
        assert!(arn_matches("arn:aws:s3:::b/p*", "arn:aws:s3:::b/p/x/y.gz"));
        assert!(arn_matches("arn:aws:s3:::b/p*", "arn:aws:s3:::b/p"));
        assert!(!arn_matches("arn:aws:s3:::b/p*", "arn:aws:s3:::b/q"));
        assert!(arn_matches(
            "arn:aws:s3:::b/r/ddb-pitr-report-*.json",
            "arn:aws:s3:::b/r/ddb-pitr-report-2026.json"
        ));
        assert!(!arn_matches(
            "arn:aws:s3:::b/r/ddb-pitr-report-*.json",
            "arn:aws:s3:::b/r/ddb-pitr-report-2026.txt"
        ));
        assert!(arn_matches("a?c", "abc") && !arn_matches("a?c", "ac"));
        assert!(arn_matches("*", "") && arn_matches("a**", "abc"));
        assert!(!arn_matches("abc", "abcd") && !arn_matches("abcd", "abc"));
    }

    #[test]
    fn sdk_names_map_to_iam_actions() {
        assert_eq!(actions_for("S3", "HeadObject"), Some(&["s3:GetObject"][..]));
        assert_eq!(
            actions_for("SQS", "SendMessageBatch"),
            Some(&["sqs:SendMessage"][..])
        );
        assert_eq!(
            actions_for("s3", "ListObjectsV2"),
            Some(&["s3:ListBucket"][..])
        );
        assert_eq!(
            actions_for("Application Auto Scaling", "DescribeScalableTargets"),
            Some(&["application-autoscaling:DescribeScalableTargets"][..])
        );
        assert_eq!(actions_for("STS", "GetCallerIdentity"), Some(&[][..]));
        assert_eq!(actions_for("DynamoDB", "DeleteBackup"), None);
    }

    // ---- Coverage derived from the code: every SDK operation the sources call is granted. ----

    /// Operations the sources call outside every role `ddb-pitr policy` prints: where, and why.
    const OUTSIDE_ROLES: &[(&str, &str, &str, &str)] = &[
        (
            "DynamoDB",
            "CreateTable",
            "src/control.rs",
            "ControlTable::create, for tests and local experiments; the stack creates the control table",
        ),
        (
            "DynamoDB",
            "UpdateTimeToLive",
            "src/control.rs",
            "ControlTable::create, as above",
        ),
        (
            "SFN",
            "StartExecution",
            "src/cloud.rs",
            "`ddb-pitr cloud start` runs as the operator, who starts the state machine",
        ),
        (
            "SFN",
            "DescribeExecution",
            "src/cloud.rs",
            "`ddb-pitr cloud status` runs as the operator",
        ),
        (
            "IAM",
            "SimulatePrincipalPolicy",
            "src/validate.rs",
            "optional for `ddb-pitr validate`: when denied it falls back to read probes (docs/permissions.md)",
        ),
        (
            "IAM",
            "GetRole",
            "src/validate.rs",
            "optional for `ddb-pitr validate`: when denied it simulates the session's role ARN",
        ),
    ];

    fn repo() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// `snake_case` method name → (SDK service name, operation name) for every operation of every AWS SDK
    /// crate this package depends on, read from the crates' own sources (`src/operation/<op>.rs` stores
    /// `Metadata::new("<Operation>", "<Service>")`, the names [`CallLog`] records).
    fn sdk_operations() -> BTreeMap<String, Vec<(String, String)>> {
        // Only the host's dependencies: crates of other platforms may not be downloaded.
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let version = std::process::Command::new(rustc)
            .arg("-vV")
            .output()
            .expect("rustc -vV runs");
        let version = String::from_utf8_lossy(&version.stdout);
        let host = version
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .expect("rustc -vV names the host");
        let out = std::process::Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--offline"])
            .args(["--filter-platform", host])
            .current_dir(repo())
            .output()
            .expect("cargo metadata runs");
        assert!(
            out.status.success(),
            "cargo metadata: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
        let packages = meta["packages"].as_array().unwrap();
        let root = packages
            .iter()
            .find(|p| p["name"] == "ddb-pitr")
            .expect("ddb-pitr package");
        let node = meta["resolve"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == root["id"])
            .expect("ddb-pitr in the resolve graph");
        let mut ops: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut crates = 0;
        for dep in node["deps"].as_array().unwrap() {
            let pkg = packages.iter().find(|p| p["id"] == dep["pkg"]).unwrap();
            let name = pkg["name"].as_str().unwrap();
            if !name.starts_with("aws-sdk-") {
                continue;
            }
            crates += 1;
            let dir = std::path::Path::new(pkg["manifest_path"].as_str().unwrap())
                .parent()
                .unwrap()
                .join("src/operation");
            for entry in std::fs::read_dir(&dir).expect("SDK operation folder") {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let Some(at) = text.find("orchestrator::Metadata::new(") else {
                    continue;
                };
                let mut literals = text[at..].split('"').skip(1).step_by(2);
                let (op, service) = (literals.next().unwrap(), literals.next().unwrap());
                let method = path.file_stem().unwrap().to_string_lossy().into_owned();
                ops.entry(method)
                    .or_default()
                    .push((service.to_owned(), op.to_owned()));
            }
        }
        assert!(
            crates >= 6,
            "found only {crates} aws-sdk-* dependencies of ddb-pitr"
        );
        ops
    }

    /// Production source files (tests cut off at `#[cfg(test)]`, comment lines dropped), by repo path.
    fn sources() -> Vec<(String, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let root = repo();
        let mut files = Vec::new();
        walk(&root.join("src"), &mut files);
        for f in std::fs::read_dir(root.join("functions")).unwrap() {
            let src = f.unwrap().path().join("src");
            if src.is_dir() {
                walk(&src, &mut files);
            }
        }
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                let code: String = code
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (rel, code)
            })
            .collect()
    }

    /// Every `.name(` method call in `code`.
    fn method_calls(code: &str) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        let b = code.as_bytes();
        for (i, _) in code.match_indices('.') {
            let end = b[i + 1..]
                .iter()
                .position(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_'))
                .map_or(b.len(), |n| i + 1 + n);
            if end > i + 1 && b.get(end) == Some(&b'(') {
                out.insert(&code[i + 1..end]);
            }
        }
        out
    }

    #[test]
    fn every_sdk_operation_the_code_calls_is_granted_by_a_role() {
        let ops = sdk_operations();
        assert!(
            ops["get_object"].contains(&("S3".into(), "GetObject".into())),
            "the operation table is read from the SDK"
        );
        let s = full_scope();
        let granted: BTreeSet<&str> = ROLES
            .iter()
            .flat_map(|r| permissions(*r, &s))
            .map(|p| p.action)
            .collect();
        let mut found: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for (file, code) in sources() {
            for m in method_calls(&code) {
                let Some(candidates) = ops.get(m) else {
                    continue;
                };
                assert_eq!(
                    candidates.len(),
                    1,
                    "{file}: `.{m}()` is an operation of several SDKs ({candidates:?}); teach this test \
                     which client it is called on"
                );
                found
                    .entry(candidates[0].clone())
                    .or_default()
                    .insert(file.clone());
            }
        }
        // The calls this module knows the code makes are among those found.
        for op in [
            ("S3", "HeadObject"),
            ("DynamoDB", "BatchWriteItem"),
            ("DynamoDB", "TransactWriteItems"),
            ("SQS", "SendMessageBatch"),
        ] {
            assert!(
                found.contains_key(&(op.0.into(), op.1.into())),
                "{op:?} not found: {found:?}"
            );
        }
        let mut problems = Vec::new();
        for ((service, op), files) in &found {
            if let Some((_, _, file, _)) = OUTSIDE_ROLES
                .iter()
                .find(|(s, o, ..)| s == service && o == op)
            {
                if files.iter().any(|f| f != file) {
                    problems.push(format!(
                        "{service} {op} is called in {files:?}, not only in {file} where no role needs it"
                    ));
                }
                continue;
            }
            match actions_for(service, op) {
                None => problems.push(format!(
                    "{service} {op} (called in {files:?}) has no IAM mapping in actions_for"
                )),
                Some(actions) => {
                    for a in actions {
                        if !granted.contains(a) {
                            problems.push(format!(
                                "{service} {op} (called in {files:?}) needs {a}, which no role grants"
                            ));
                        }
                    }
                }
            }
        }
        for (service, op, file, _) in OUTSIDE_ROLES {
            if !found.contains_key(&(service.to_string(), op.to_string())) {
                problems.push(format!(
                    "{service} {op} is listed as called in {file} but the code no longer calls it"
                ));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn transactions_hold_only_the_item_kinds_actions_for_grants() {
        let mut kinds = BTreeSet::new();
        for (file, code) in sources() {
            for (i, _) in code.match_indices("TransactWriteItem::builder()") {
                let rest = code[i + "TransactWriteItem::builder()".len()..].trim_start();
                let kind = rest
                    .strip_prefix('.')
                    .and_then(|r| r.split('(').next())
                    .unwrap_or_default();
                kinds.insert((kind.to_owned(), file.clone()));
            }
        }
        assert!(!kinds.is_empty(), "no TransactWriteItem found");
        let needed: BTreeSet<&str> = kinds
            .iter()
            .map(|(k, file)| match k.as_str() {
                "update" => "dynamodb:UpdateItem",
                "put" => "dynamodb:PutItem",
                "delete" => "dynamodb:DeleteItem",
                "condition_check" => "dynamodb:ConditionCheckItem",
                other => panic!("{file}: unknown transaction item `.{other}(`"),
            })
            .collect();
        let mapped: BTreeSet<&str> = actions_for("DynamoDB", "TransactWriteItems")
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(needed, mapped, "transaction items in the code: {kinds:?}");
    }
}
