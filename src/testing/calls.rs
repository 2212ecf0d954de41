//! [`CallLog`]: an SDK interceptor that records every call a command makes, for the tests that compare what
//! the code calls with what a policy allows, or prove that a command makes no writes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef, Input,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

use crate::access::Scope;

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
/// [`crate::aws::Clients::with_interceptor`]; tests use it to compare what the code calls with what a policy allows, or
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
fn s3_target(input: &Input) -> Option<Target> {
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
