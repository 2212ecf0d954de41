use std::collections::BTreeSet;

use super::policy::{actions_for, allows, arn_matches, policy_document};
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
        source: Default::default(),
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
        source: SourceScope {
            table_arn: Some("arn:aws:dynamodb:eu-north-1:123456789012:table/orders-prod".into()),
            list_exports: true,
            request_into: Some(uri("backups", "ddb/")),
            reader_apart: false,
        },
        ..scope()
    }
}

const ROLES: [Role; 5] = [
    Role::Local,
    Role::Planner,
    Role::Worker,
    Role::Reporter,
    Role::ExportReader,
];

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
                            && r == s
                                .object_arn(&u.bucket, &format!("{}ddb-pitr-report-*.json", u.key))
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
                role == Role::Local && s.manage_capacity && s.autoscaling == AutoScaling::Adjust
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
        "ListTables",
        "src/table/mod.rs",
        "only after a missing table, for a \"did you mean\" when it is allowed; denied, there is no suggestion",
    ),
    (
        "DynamoDB",
        "CreateTable",
        "src/distributed/control.rs",
        "ControlTable::create, for tests and local experiments; the stack creates the control table",
    ),
    (
        "DynamoDB",
        "UpdateTimeToLive",
        "src/distributed/control.rs",
        "ControlTable::create, as above",
    ),
    (
        "SFN",
        "StartExecution",
        "src/distributed/cloud.rs",
        "`ddb-pitr cloud start` runs as the operator, who starts the state machine",
    ),
    (
        "SFN",
        "DescribeExecution",
        "src/distributed/cloud.rs",
        "`ddb-pitr cloud status` runs as the operator",
    ),
    (
        "SFN",
        "ListExecutions",
        "src/distributed/cloud.rs",
        "`ddb-pitr cloud start --restore-id` (the operator) refuses to continue a restore still running",
    ),
    (
        "IAM",
        "SimulatePrincipalPolicy",
        "src/validate/permissions.rs",
        "optional for `ddb-pitr validate`: when denied it falls back to read probes (docs/permissions.md)",
    ),
    (
        "IAM",
        "GetRole",
        "src/validate/permissions.rs",
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
