//! IAM policy documents from permissions, and matching calls against them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::Permission;

/// What one statement is for: its `Sid` and its place in the document.
fn purpose(actions: &BTreeSet<&str>, condition: Option<&Value>) -> (u8, &'static str) {
    let has = |a: &str| actions.contains(a);
    let cond_op = condition
        .and_then(Value::as_object)
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_default();
    if has("dynamodb:ExportTableToPointInTime") {
        (13, "RequestMissingExport")
    } else if has("dynamodb:ListExports") || has("dynamodb:DescribeExport") {
        (14, "FindExports")
    } else if has("s3:AbortMultipartUpload") {
        (15, "DynamoDBWritesRequestedExports")
    } else if has("dynamodb:BatchWriteItem") && !has("dynamodb:Query") && !has("dynamodb:GetItem") {
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
        ("dynamodb", "ListExports") => &["dynamodb:ListExports"],
        ("dynamodb", "DescribeExport") => &["dynamodb:DescribeExport"],
        ("dynamodb", "ExportTableToPointInTime") => &["dynamodb:ExportTableToPointInTime"],
        ("dynamodb", "DescribeContinuousBackups") => &["dynamodb:DescribeContinuousBackups"],
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
        ("sfn" | "states", "ListExecutions") => &["states:ListExecutions"],
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
