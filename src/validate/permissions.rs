//! Whether the caller may make every call a restore makes: IAM's policy simulator on exactly the
//! permissions [`crate::access::permissions`] lists, or harmless read probes where it cannot be used.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType};
use aws_smithy_runtime_api::client::result::SdkError;

use crate::access::exports::access_of;
use crate::access::{Arn, Permission, Scope};
use crate::aws::Clients;
use crate::aws::error::describe;
use crate::error::Result;
use crate::export::location::{ExportUri, ReportLocation, S3Uri, StateLocation};
use crate::export::manifest::Export;

use super::{Check, Options, Status};

/// The scope of the local restore's permissions, from the flags, the caller and the manifests.
pub(super) fn scope(opts: &Options, clients: &Clients, caller: &str, exports: &[&Export]) -> Scope {
    let parts = Arn::parse(caller);
    let region = clients
        .sts
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_default();
    // The folders the exports' objects are in (INCREMENTAL data files sit outside their export's folder)
    // and their KMS keys, as `ddb-pitr policy` computes them; exports whose manifests could not be read
    // count with their own folder.
    let found = access_of(exports);
    let mut export_objects = found.objects;
    for uri in &opts.exports {
        let dir = S3Uri {
            bucket: uri.bucket.clone(),
            key: uri.key(""),
        };
        if !export_objects.contains(&dir) {
            export_objects.push(dir);
        }
    }
    Scope {
        partition: parts
            .as_ref()
            .map_or_else(|| "aws".to_owned(), |p| p.partition.to_owned()),
        region,
        account: parts.map(|p| p.account.to_owned()).unwrap_or_default(),
        table: opts.table.clone(),
        export_objects,
        checkpoint: match &opts.resume {
            Some(StateLocation::S3(uri)) => Some(uri.clone()),
            _ => None,
        },
        report: opts.report.as_ref().and_then(ReportLocation::s3).cloned(),
        kms_keys: found.kms_keys,
        manage_capacity: opts.manage_capacity,
        autoscaling: opts.autoscaling,
        control_table: String::new(),
        queue: String::new(),
        source: Default::default(),
    }
}

/// Who the caller is, as far as `SimulatePrincipalPolicy` is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An IAM user: simulated as itself.
    User { arn: String },
    /// An assumed-role session: simulated as its role. `arn` has no path (the session ARN does not carry
    /// it); `iam:GetRole` on `name` gives the real one.
    Role { name: String, arn: String },
    /// The account's root user, which is allowed everything and cannot be simulated.
    Root { arn: String },
    /// A federated user (GetFederationToken), which cannot be simulated.
    Federated { arn: String },
    /// Anything else.
    Other { arn: String },
}

/// Maps the caller's ARN (from GetCallerIdentity) to the principal to simulate:
/// `arn:aws:sts::ACCT:assumed-role/NAME/SESSION` → role `NAME` (`arn:aws:iam::ACCT:role/NAME`).
pub fn principal(caller: &str) -> Principal {
    let other = || Principal::Other {
        arn: caller.to_owned(),
    };
    let Some(p) = Arn::parse(caller) else {
        return other();
    };
    match (p.service, p.resource.split_once('/')) {
        ("iam", None) if p.resource == "root" => Principal::Root {
            arn: caller.to_owned(),
        },
        ("iam", Some(("user", _))) => Principal::User {
            arn: caller.to_owned(),
        },
        ("sts", Some(("assumed-role", rest))) => match rest.split_once('/') {
            Some((name, _session)) if !name.is_empty() => Principal::Role {
                name: name.to_owned(),
                arn: format!("arn:{}:iam::{}:role/{name}", p.partition, p.account),
            },
            _ => other(),
        },
        ("sts", Some(("federated-user", _))) => Principal::Federated {
            arn: caller.to_owned(),
        },
        _ => other(),
    }
}

/// What the read probes may touch.
pub struct Probes<'a> {
    pub exports: &'a [&'a Export],
    /// Every export given, also those whose manifests could not be read.
    pub uris: &'a [ExportUri],
    pub table: &'a str,
    pub checkpoint: Option<&'a S3Uri>,
    pub manage_capacity: bool,
}

/// Checks that the caller may do everything in `required`: by simulation, or, when the simulation is not
/// possible, by read probes (and `skip` rows for what only a write could prove).
pub async fn check_permissions(
    clients: &Clients,
    caller: &str,
    region: &str,
    required: &[Permission],
    probes: &Probes<'_>,
) -> Vec<Check> {
    let mut rows = Vec::new();
    let source = match principal(caller) {
        Principal::Root { arn } => {
            rows.push(Check::new(
                "permissions",
                Status::Warn,
                format!(
                    "{arn} is the account's root user, which IAM allows everything (SCPs aside) and cannot be \
                     simulated; use an IAM role with the policy from `ddb-pitr policy` instead"
                ),
            ));
            return rows;
        }
        Principal::Federated { arn } | Principal::Other { arn } => {
            rows.push(Check::new(
                "permissions",
                Status::Warn,
                format!(
                    "{arn} cannot be simulated with iam:SimulatePrincipalPolicy (only IAM users and roles can); \
                     probing with read calls instead"
                ),
            ));
            rows.extend(probe(clients, required, probes).await);
            return rows;
        }
        Principal::User { arn } => arn,
        Principal::Role { name, arn } => match clients.iam.get_role().role_name(&name).send().await
        {
            Ok(out) => out.role().map_or(arn, |r| r.arn().to_owned()),
            Err(e) => {
                rows.push(Check::new(
                    "role",
                    Status::Warn,
                    format!(
                        "iam:GetRole {name} failed ({}), so the role's path is unknown: simulating {arn}; if the \
                         role has a path the simulation fails and read probes are used instead",
                        describe(&e)
                    ),
                ));
                arn
            }
        },
    };

    match simulate(&clients.iam, &source, region, required).await {
        Ok(results) => {
            let denied: Vec<&Simulated> = results.iter().filter(|r| !r.allowed()).collect();
            let kms = required.iter().any(|p| p.action.starts_with("kms:"));
            let note = "the simulation covers identity policies, permissions boundaries and (partly) SCPs, \
                        not resource policies such as bucket or key policies";
            rows.push(if denied.is_empty() {
                Check::new(
                    "permissions",
                    Status::Pass,
                    format!(
                        "{source} is allowed all {} action/resource pairs the restore needs ({note})",
                        results.len()
                    ),
                )
            } else {
                Check::new(
                    "permissions",
                    Status::Fail,
                    format!(
                        "{source} is denied {} of {} action/resource pairs the restore needs (rows below); \
                         `ddb-pitr policy` prints a policy that allows them",
                        denied.len(),
                        results.len()
                    ),
                )
            });
            for d in denied {
                rows.push(Check::new(
                    format!("permission {}", d.action),
                    Status::Fail,
                    format!("{} on {}{}", d.decision_text(), d.resource, d.detail),
                ));
            }
            if kms {
                rows.push(Check::new(
                    "key policy",
                    Status::Warn,
                    "the exports are encrypted with KMS keys, whose key policies the simulation does not see: \
                     each key policy must allow this principal kms:Decrypt (or delegate to IAM)",
                ));
            }
        }
        Err(e) => {
            let denied = e.contains("AccessDenied");
            rows.push(Check::new(
                "permissions",
                Status::Warn,
                if denied {
                    format!(
                        "the caller may not call iam:SimulatePrincipalPolicy ({e}); probing with read calls instead"
                    )
                } else {
                    format!("iam:SimulatePrincipalPolicy failed ({e}); probing with read calls instead")
                },
            ));
            rows.extend(probe(clients, required, probes).await);
        }
    }
    rows
}

/// The simulated decision on one action/resource pair.
#[derive(Debug, Clone)]
pub(super) struct Simulated {
    action: String,
    resource: String,
    decision: PolicyEvaluationDecisionType,
    detail: String,
}

impl Simulated {
    fn allowed(&self) -> bool {
        self.decision == PolicyEvaluationDecisionType::Allowed
    }

    fn decision_text(&self) -> &'static str {
        match self.decision {
            PolicyEvaluationDecisionType::ExplicitDeny => "explicitly denied",
            PolicyEvaluationDecisionType::ImplicitDeny => "not allowed (implicit deny)",
            _ => "not allowed",
        }
    }
}

/// One `SimulatePrincipalPolicy` call (with its pages) per resource and condition: many actions on one
/// resource, with the context its conditions need (`s3:prefix`, `aws:RequestedRegion`, …).
pub(super) async fn simulate(
    iam: &aws_sdk_iam::Client,
    source: &str,
    region: &str,
    required: &[Permission],
) -> Result<Vec<Simulated>, String> {
    // (resource, condition) -> (actions, context entries).
    type Groups = BTreeMap<(String, String), (Vec<&'static str>, Vec<ContextEntry>)>;
    let mut groups = Groups::new();
    for p in required {
        let condition = p
            .condition
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let entry = groups
            .entry((p.resource.clone(), condition))
            .or_insert_with(|| (Vec::new(), context_entries(p.condition.as_ref(), region)));
        if !entry.0.contains(&p.action) {
            entry.0.push(p.action);
        }
    }
    let mut results = Vec::new();
    for ((resource, _), (actions, context)) in groups {
        let mut marker: Option<String> = None;
        loop {
            let out = iam
                .simulate_principal_policy()
                .policy_source_arn(source)
                .set_action_names(Some(actions.iter().map(|a| a.to_string()).collect()))
                .resource_arns(&resource)
                .set_context_entries(Some(context.clone()))
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| describe(&e))?;
            for r in out.evaluation_results() {
                let mut detail = String::new();
                if let Some(org) = r.organizations_decision_detail()
                    && !org.allowed_by_organizations()
                {
                    detail.push_str("; denied by an SCP");
                }
                if let Some(b) = r.permissions_boundary_decision_detail()
                    && !b.allowed_by_permissions_boundary()
                {
                    detail.push_str("; denied by the permissions boundary");
                }
                if !r.missing_context_values().is_empty() {
                    detail.push_str(&format!(
                        "; context keys not given to the simulation: {}",
                        r.missing_context_values().join(", ")
                    ));
                }
                let matched: Vec<&str> = r
                    .matched_statements()
                    .iter()
                    .filter_map(|s| s.source_policy_id())
                    .collect();
                if r.eval_decision() == &PolicyEvaluationDecisionType::ExplicitDeny
                    && !matched.is_empty()
                {
                    detail.push_str(&format!("; deny in {}", matched.join(", ")));
                }
                results.push(Simulated {
                    action: r.eval_action_name().to_owned(),
                    resource: r.eval_resource_name().unwrap_or(&resource).to_owned(),
                    decision: r.eval_decision().clone(),
                    detail,
                });
            }
            match out.marker() {
                Some(m) if out.is_truncated() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
    }
    Ok(results)
}

/// Context values that satisfy a permission's own condition (the first value of each key, wildcards made
/// concrete: `StringLike "prefix/*"` → `"prefix/"`), plus `aws:RequestedRegion`.
pub(super) fn context_entries(
    condition: Option<&serde_json::Value>,
    region: &str,
) -> Vec<ContextEntry> {
    let mut entries: BTreeMap<String, (ContextKeyTypeEnum, String)> = BTreeMap::new();
    if let Some(serde_json::Value::Object(operators)) = condition {
        for (operator, keys) in operators {
            let ty = match operator
                .trim_start_matches("ForAnyValue:")
                .trim_start_matches("ForAllValues:")
            {
                o if o.starts_with("Bool") => ContextKeyTypeEnum::Boolean,
                o if o.starts_with("Numeric") => ContextKeyTypeEnum::Numeric,
                o if o.starts_with("Date") => ContextKeyTypeEnum::Date,
                o if o.starts_with("IpAddress") => ContextKeyTypeEnum::Ip,
                _ => ContextKeyTypeEnum::String,
            };
            let serde_json::Value::Object(keys) = keys else {
                continue;
            };
            for (key, values) in keys {
                let first = match values {
                    serde_json::Value::Array(v) => v.first().cloned(),
                    other => Some(other.clone()),
                };
                let value = match first {
                    Some(serde_json::Value::String(s)) => s.replace('*', "").replace('?', "x"),
                    Some(other) => other.to_string(),
                    None => continue,
                };
                entries.insert(key.clone(), (ty.clone(), value));
            }
        }
    }
    if !region.is_empty() {
        entries
            .entry("aws:RequestedRegion".into())
            .or_insert((ContextKeyTypeEnum::String, region.to_owned()));
    }
    entries
        .into_iter()
        .map(|(key, (ty, value))| {
            ContextEntry::builder()
                .context_key_name(key)
                .context_key_type(ty)
                .context_key_values(value)
                .build()
        })
        .collect()
}

/// Read calls that prove a permission without changing anything, one row each; `skip` rows for the
/// required actions no read call can prove.
pub(super) async fn probe(
    clients: &Clients,
    required: &[Permission],
    p: &Probes<'_>,
) -> Vec<Check> {
    let mut rows = Vec::new();
    let mut proven: BTreeSet<&str> = BTreeSet::new();
    proven.insert("sts:GetCallerIdentity");

    // s3:GetObject (HeadObject is authorised by it) on each export's summary.
    for uri in p.uris {
        let key = uri.key("manifest-summary.json");
        let result = clients
            .exports
            .s3
            .head_object()
            .bucket(&uri.bucket)
            .key(&key)
            .send()
            .await;
        rows.push(probe_row(
            "s3:GetObject",
            &format!("HeadObject s3://{}/{key}", uri.bucket),
            result.map(|_| ()).map_err(|e| probe_error(&e)),
            "not found (see the manifest row)",
        ));
        proven.insert("s3:GetObject");
    }
    // s3:ListBucket on each export folder (ListObjectsV2 of one key).
    for uri in p.uris {
        let prefix = uri.key("");
        let result = clients
            .exports
            .s3
            .list_objects_v2()
            .bucket(&uri.bucket)
            .prefix(&prefix)
            .max_keys(1)
            .send()
            .await;
        rows.push(probe_row(
            "s3:ListBucket",
            &format!("ListObjectsV2 s3://{}/{prefix}", uri.bucket),
            result.map(|_| ()).map_err(|e| probe_error(&e)),
            "bucket not found",
        ));
        proven.insert("s3:ListBucket");
    }
    // The first byte of one data file per export: s3:GetObject, and kms:Decrypt for SSE-KMS objects.
    for export in p.exports {
        if let Some(file) = export.files.iter().find(|f| f.item_count > 0) {
            let result = clients
                .exports
                .s3
                .get_object()
                .bucket(&export.uri.bucket)
                .key(&file.key)
                .range("bytes=0-0")
                .send()
                .await;
            let action = if export.summary.s3_sse_kms_key_id.is_some() {
                proven.insert("kms:Decrypt");
                "s3:GetObject+kms:Decrypt"
            } else {
                "s3:GetObject"
            };
            rows.push(probe_row(
                action,
                &format!("GetObject (1 byte) s3://{}/{}", export.uri.bucket, file.key),
                result.map(|_| ()).map_err(|e| probe_error(&e)),
                "data file not found",
            ));
        }
    }
    // dynamodb:DescribeTable.
    let result = clients
        .dynamodb
        .describe_table()
        .table_name(p.table)
        .send()
        .await;
    rows.push(probe_row(
        "dynamodb:DescribeTable",
        &format!("DescribeTable {}", p.table),
        result.map(|_| ()).map_err(|e| probe_error(&e)),
        "table not found (see the table row)",
    ));
    proven.insert("dynamodb:DescribeTable");
    // The checkpoint: 200 or 404 both prove access; 403 means s3:GetObject (or s3:ListBucket) is missing.
    if let Some(cp) = p.checkpoint {
        let result = clients
            .s3
            .head_object()
            .bucket(&cp.bucket)
            .key(&cp.key)
            .send()
            .await;
        let outcome = match result {
            Ok(_) => Ok(()),
            // A missing key is fine (the restore creates it); a missing bucket is not, and HeadObject's
            // bodiless 404 cannot tell them apart: HeadBucket can.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                match clients.s3.head_bucket().bucket(&cp.bucket).send().await {
                    Err(b) if b.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                        Err(ProbeError::NotFound)
                    }
                    _ => Ok(()),
                }
            }
            Err(e) => Err(probe_error(&e)),
        };
        rows.push(probe_row(
            "s3:GetObject",
            &format!("HeadObject {cp} (checkpoint; 404 is fine)"),
            outcome,
            "its bucket does not exist (see the checkpoint row)",
        ));
    }
    if p.manage_capacity {
        let result = clients
            .autoscaling
            .describe_scalable_targets()
            .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Dynamodb)
            .resource_ids(format!("table/{}", p.table))
            .send()
            .await;
        rows.push(probe_row(
            "application-autoscaling:DescribeScalableTargets",
            &format!("DescribeScalableTargets table/{}", p.table),
            result.map(|_| ()).map_err(|e| probe_error(&e)),
            "",
        ));
        proven.insert("application-autoscaling:DescribeScalableTargets");
    }

    // What no read call can prove.
    let mut unproven: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for perm in required {
        if !proven.contains(perm.action) {
            unproven
                .entry(perm.action)
                .or_default()
                .push(&perm.resource);
        }
    }
    for (action, resources) in unproven {
        rows.push(Check::new(
            format!("permission {action}"),
            Status::Skip,
            format!(
                "not probed on {}: only a write call could prove it, and validate makes none",
                resources.join(", ")
            ),
        ));
    }
    rows
}

pub(super) enum ProbeError {
    Denied(String),
    NotFound,
    Other(String),
}

pub(super) fn probe_error<E>(e: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> ProbeError
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + 'static,
{
    let text = describe(e);
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = match e {
        SdkError::ServiceError(se) => se.err().code().map(str::to_owned),
        _ => None,
    };
    let not_found = status == Some(404)
        || code.as_deref().is_some_and(|c| {
            c == "ResourceNotFoundException"
                || c == "NoSuchKey"
                || c == "NoSuchBucket"
                || c == "NotFound"
        });
    if not_found {
        ProbeError::NotFound
    } else if status == Some(403) || code.as_deref().is_some_and(|c| c.contains("AccessDenied")) {
        ProbeError::Denied(text)
    } else {
        ProbeError::Other(text)
    }
}

pub(super) fn probe_row(
    action: &str,
    call: &str,
    outcome: Result<(), ProbeError>,
    not_found: &str,
) -> Check {
    let name = format!("probe {action}");
    match outcome {
        Ok(()) => Check::new(name, Status::Pass, format!("{call}: allowed")),
        Err(ProbeError::NotFound) => Check::new(
            name,
            Status::Skip,
            format!("{call}: {not_found}; the permission is not proven"),
        ),
        Err(ProbeError::Denied(e)) => Check::new(
            name,
            Status::Fail,
            format!("{call}: denied ({e}); grant {action} (see `ddb-pitr policy`)"),
        ),
        Err(ProbeError::Other(e)) => {
            Check::new(name, Status::Warn, format!("{call}: could not probe ({e})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{self, Role};
    use crate::table::capacity::AutoScaling;

    #[test]
    fn caller_arns_map_to_principals() {
        assert_eq!(
            principal("arn:aws:sts::123456789012:assumed-role/Restorer/alice@example.com"),
            Principal::Role {
                name: "Restorer".into(),
                arn: "arn:aws:iam::123456789012:role/Restorer".into()
            }
        );
        assert_eq!(
            principal("arn:aws-cn:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123/bob"),
            Principal::Role {
                name: "AWSReservedSSO_Admin_0123".into(),
                arn: "arn:aws-cn:iam::123456789012:role/AWSReservedSSO_Admin_0123".into()
            },
            "the partition is kept; the path is learnt from iam:GetRole"
        );
        assert_eq!(
            principal("arn:aws:iam::123456789012:user/ops/carol"),
            Principal::User {
                arn: "arn:aws:iam::123456789012:user/ops/carol".into()
            }
        );
        assert!(matches!(
            principal("arn:aws:iam::123456789012:root"),
            Principal::Root { .. }
        ));
        assert!(matches!(
            principal("arn:aws:sts::123456789012:federated-user/dave"),
            Principal::Federated { .. }
        ));
        assert!(matches!(principal("not an arn"), Principal::Other { .. }));
        assert!(matches!(
            principal("arn:aws:sts::123456789012:assumed-role/"),
            Principal::Other { .. }
        ));
    }

    #[test]
    fn conditions_become_context_values_that_satisfy_them() {
        let condition = serde_json::json!({
            "StringLike": {"s3:prefix": ["exports/AWSDynamoDB/01-ab/*", "other/*"]},
            "Bool": {"aws:SecureTransport": true}
        });
        let entries = context_entries(Some(&condition), "eu-west-1");
        let find = |k: &str| {
            entries
                .iter()
                .find(|e| e.context_key_name() == Some(k))
                .unwrap_or_else(|| panic!("{k} missing from {entries:?}"))
        };
        assert_eq!(
            find("s3:prefix").context_key_values(),
            ["exports/AWSDynamoDB/01-ab/"]
        );
        assert_eq!(
            find("aws:SecureTransport").context_key_type(),
            Some(&ContextKeyTypeEnum::Boolean)
        );
        assert_eq!(
            find("aws:RequestedRegion").context_key_values(),
            ["eu-west-1"]
        );
        assert_eq!(context_entries(None, "").len(), 0);
    }

    mod sdk {
        use super::*;
        use aws_sdk_iam::operation::get_role::GetRoleOutput;
        use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
        use aws_sdk_iam::types::EvaluationResult;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;

        const CALLER: &str = "arn:aws:sts::123456789012:assumed-role/Restorer/alice";
        const ROLE_WITH_PATH: &str = "arn:aws:iam::123456789012:role/ops/Restorer";
        const TABLE_ARN: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/target";

        fn scope() -> Scope {
            Scope {
                partition: "aws".into(),
                region: "eu-west-1".into(),
                account: "123456789012".into(),
                table: "target".into(),
                export_objects: vec!["s3://exports/AWSDynamoDB/01-ab/".parse().unwrap()],
                checkpoint: None,
                report: None,
                kms_keys: vec![],
                manage_capacity: false,
                autoscaling: AutoScaling::Refuse,
                control_table: String::new(),
                queue: String::new(),
                source: Default::default(),
            }
        }

        fn clients(iam: aws_sdk_iam::Client, dynamodb: aws_sdk_dynamodb::Client) -> Clients {
            let conf = aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("eu-west-1"))
                .build();
            Clients {
                iam,
                dynamodb,
                ..Clients::from_sdk_config(&conf)
            }
        }

        fn get_role() -> aws_smithy_mocks::Rule {
            mock!(aws_sdk_iam::Client::get_role)
                .match_requests(|r| r.role_name() == Some("Restorer"))
                .then_output(|| {
                    GetRoleOutput::builder()
                        .role(
                            aws_sdk_iam::types::Role::builder()
                                .path("/ops/")
                                .role_name("Restorer")
                                .role_id("AROAEXAMPLE")
                                .arn(ROLE_WITH_PATH)
                                .create_date(aws_smithy_types::DateTime::from_secs(0))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
        }

        /// Answers each simulated action: denied if it is in `deny`, allowed otherwise. Only for the role
        /// with its real (path) ARN, so a wrong mapping fails the test.
        fn simulate(deny: &'static [&'static str]) -> aws_smithy_mocks::Rule {
            mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .match_requests(|r| r.policy_source_arn() == Some(ROLE_WITH_PATH))
                .then_compute_output(move |r| {
                    let resource = r.resource_arns()[0].clone();
                    let results = r
                        .action_names()
                        .iter()
                        .map(|a| {
                            EvaluationResult::builder()
                                .eval_action_name(a)
                                .eval_resource_name(&resource)
                                .eval_decision(if deny.contains(&a.as_str()) {
                                    PolicyEvaluationDecisionType::ImplicitDeny
                                } else {
                                    PolicyEvaluationDecisionType::Allowed
                                })
                                .build()
                                .unwrap()
                        })
                        .collect();
                    SimulatePrincipalPolicyOutput::builder()
                        .set_evaluation_results(Some(results))
                        .is_truncated(false)
                        .build()
                })
        }

        fn no_dynamodb() -> aws_sdk_dynamodb::Client {
            let describe =
                mock!(aws_sdk_dynamodb::Client::describe_table).then_http_response(|| {
                    panic!("DynamoDB must not be called when the simulation works")
                });
            mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&describe])
        }

        fn probes<'a>(uris: &'a [ExportUri]) -> Probes<'a> {
            Probes {
                exports: &[],
                uris,
                table: "target",
                checkpoint: None,
                manage_capacity: false,
            }
        }

        #[tokio::test]
        async fn simulation_allowed_passes() {
            let get_role = get_role();
            let simulate = simulate(&[]);
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[&get_role, &simulate]);
            let clients = clients(iam, no_dynamodb());
            let required = access::permissions(Role::Local, &scope());
            assert!(required.len() >= 4, "{required:?}");
            let rows =
                check_permissions(&clients, CALLER, "eu-west-1", &required, &probes(&[])).await;
            assert_eq!(rows.len(), 1, "{rows:?}");
            assert_eq!(rows[0].status, Status::Pass, "{rows:?}");
            assert!(rows[0].detail.contains(ROLE_WITH_PATH), "{rows:?}");
            assert!(
                rows[0]
                    .detail
                    .contains(&format!("all {} action/resource pairs", required.len())),
                "{rows:?}"
            );
            assert_eq!(get_role.num_calls(), 1);
            // One call per resource (and condition), each with every action on it.
            let resources: BTreeSet<(&str, String)> = required
                .iter()
                .map(|p| (p.resource.as_str(), format!("{:?}", p.condition)))
                .collect();
            assert_eq!(simulate.num_calls(), resources.len());
        }

        #[tokio::test]
        async fn simulation_denied_names_the_action_and_resource() {
            let get_role = get_role();
            let simulate = simulate(&["dynamodb:BatchWriteItem"]);
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[&get_role, &simulate]);
            let clients = clients(iam, no_dynamodb());
            let required = access::permissions(Role::Local, &scope());
            let rows =
                check_permissions(&clients, CALLER, "eu-west-1", &required, &probes(&[])).await;
            assert_eq!(rows[0].status, Status::Fail, "{rows:?}");
            assert!(rows[0].detail.contains("denied 1 of"), "{rows:?}");
            let denied: Vec<&Check> = rows
                .iter()
                .filter(|r| r.check.starts_with("permission "))
                .collect();
            assert_eq!(denied.len(), 1, "{rows:?}");
            assert_eq!(denied[0].check, "permission dynamodb:BatchWriteItem");
            assert_eq!(denied[0].status, Status::Fail);
            assert!(
                denied[0].detail.contains("implicit deny") && denied[0].detail.contains(TABLE_ARN),
                "{denied:?}"
            );
        }

        #[tokio::test]
        async fn simulation_paginates() {
            let get_role = get_role();
            let first = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .match_requests(|r| r.marker().is_none())
                .then_output(|| {
                    SimulatePrincipalPolicyOutput::builder()
                        .evaluation_results(
                            EvaluationResult::builder()
                                .eval_action_name("dynamodb:DescribeTable")
                                .eval_resource_name(TABLE_ARN)
                                .eval_decision(PolicyEvaluationDecisionType::Allowed)
                                .build()
                                .unwrap(),
                        )
                        .is_truncated(true)
                        .marker("page-2")
                        .build()
                });
            let second = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .match_requests(|r| r.marker() == Some("page-2"))
                .then_output(|| {
                    SimulatePrincipalPolicyOutput::builder()
                        .evaluation_results(
                            EvaluationResult::builder()
                                .eval_action_name("dynamodb:BatchWriteItem")
                                .eval_resource_name(TABLE_ARN)
                                .eval_decision(PolicyEvaluationDecisionType::ExplicitDeny)
                                .build()
                                .unwrap(),
                        )
                        .is_truncated(false)
                        .build()
                });
            let iam = mock_client!(
                aws_sdk_iam,
                RuleMode::MatchAny,
                &[&get_role, &first, &second]
            );
            let clients = clients(iam, no_dynamodb());
            let required: Vec<Permission> = access::permissions(Role::Local, &scope())
                .into_iter()
                .filter(|p| p.action.starts_with("dynamodb:"))
                .collect();
            let rows =
                check_permissions(&clients, CALLER, "eu-west-1", &required, &probes(&[])).await;
            assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
            assert!(rows[0].detail.contains("denied 1 of 2"), "{rows:?}");
            assert!(
                rows.iter()
                    .any(|r| r.check == "permission dynamodb:BatchWriteItem"
                        && r.detail.contains("explicitly denied")),
                "{rows:?}"
            );
        }

        #[tokio::test]
        async fn simulation_not_permitted_falls_back_to_read_probes() {
            // GetRole denied too: the path-less role ARN is used, and said so.
            let get_role = mock!(aws_sdk_iam::Client::get_role).then_http_response(access_denied);
            let simulate = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .then_http_response(access_denied);
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[&get_role, &simulate]);
            let describe = mock!(aws_sdk_dynamodb::Client::describe_table)
                .match_requests(|r| r.table_name() == Some("target"))
                .then_output(|| {
                    aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput::builder()
                        .build()
                });
            let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&describe]);
            let clients = clients(iam, dynamodb);
            let mut scope = scope();
            scope.export_objects.clear();
            let required = access::permissions(Role::Local, &scope);
            let rows =
                check_permissions(&clients, CALLER, "eu-west-1", &required, &probes(&[])).await;

            let find = |name: &str| {
                rows.iter()
                    .find(|r| r.check == name)
                    .unwrap_or_else(|| panic!("no {name} row in {rows:?}"))
            };
            let role = find("role");
            assert_eq!(role.status, Status::Warn);
            assert!(
                role.detail
                    .contains("arn:aws:iam::123456789012:role/Restorer"),
                "{role:?}"
            );
            let permissions = find("permissions");
            assert_eq!(permissions.status, Status::Warn);
            assert!(
                permissions
                    .detail
                    .contains("may not call iam:SimulatePrincipalPolicy")
                    && permissions.detail.contains("probing"),
                "{permissions:?}"
            );
            assert_eq!(simulate.num_calls(), 1, "AccessDenied is not retried");
            let probe = find("probe dynamodb:DescribeTable");
            assert_eq!(probe.status, Status::Pass, "{probe:?}");
            assert_eq!(describe.num_calls(), 1);
            let write = find("permission dynamodb:BatchWriteItem");
            assert_eq!(write.status, Status::Skip);
            assert!(write.detail.contains("validate makes none"), "{write:?}");
            assert!(rows.iter().all(|r| r.status != Status::Fail), "{rows:?}");
        }

        #[tokio::test]
        async fn denied_probe_fails() {
            let simulate = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .then_http_response(access_denied);
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[&simulate]);
            let describe = mock!(aws_sdk_dynamodb::Client::describe_table).then_http_response(|| {
                response(
                    400,
                    r#"{"__type":"com.amazon.coral.service#AccessDeniedException","message":"not authorized to perform: dynamodb:DescribeTable"}"#,
                )
            });
            let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&describe]);
            let clients = clients(iam, dynamodb);
            let required = vec![Permission {
                action: "dynamodb:DescribeTable",
                resource: TABLE_ARN.into(),
                condition: None,
            }];
            let user = "arn:aws:iam::123456789012:user/carol";
            let rows =
                check_permissions(&clients, user, "eu-west-1", &required, &probes(&[])).await;
            let probe = rows
                .iter()
                .find(|r| r.check == "probe dynamodb:DescribeTable")
                .unwrap();
            assert_eq!(probe.status, Status::Fail, "{rows:?}");
            assert!(probe.detail.contains("AccessDeniedException"), "{probe:?}");
        }

        #[tokio::test]
        async fn root_is_not_simulated() {
            let simulate = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .then_http_response(|| panic!("root must not be simulated"));
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[&simulate]);
            let clients = clients(iam, no_dynamodb());
            let rows = check_permissions(
                &clients,
                "arn:aws:iam::123456789012:root",
                "eu-west-1",
                &access::permissions(Role::Local, &scope()),
                &probes(&[]),
            )
            .await;
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].status, Status::Warn);
            assert!(rows[0].detail.contains("root user"), "{rows:?}");
        }

        fn response(status: u16, body: &'static str) -> aws_smithy_runtime_api::http::Response {
            aws_smithy_runtime_api::http::Response::new(
                StatusCode::try_from(status).unwrap(),
                SdkBody::from(body),
            )
        }

        fn access_denied() -> aws_smithy_runtime_api::http::Response {
            response(
                403,
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: \
                 arn:aws:sts::123456789012:assumed-role/Restorer/alice is not authorized to perform: \
                 iam:SimulatePrincipalPolicy</Message></Error><RequestId>r</RequestId></ErrorResponse>",
            )
        }
    }
}
