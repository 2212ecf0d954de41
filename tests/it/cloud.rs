//! The distributed mode on one machine: the planner and worker Lambda handlers called in-process with real
//! `LambdaEvent` payloads, SQS and DynamoDB from moto, and a test-side poller that delivers messages to the
//! worker handler the way Lambda's SQS event source mapping does (batches of up to 10, delete what
//! succeeded, leave batch item failures for redelivery after the visibility timeout).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use ddb_pitr::aws::Clients;
use ddb_pitr::distributed::control::{ControlTable, FileRecord};
use ddb_pitr::distributed::planner::Planner;
use ddb_pitr::distributed::worker::{Worker, WorkerOptions};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cli::{self, Aws};
use crate::support::{self, TestQueue, TestTable};

/// Visibility timeout of test queues: how long a batch item failure waits before redelivery.
pub const VISIBILITY: Duration = Duration::from_secs(3);
/// Owner name of in-process Lambda workers in leases and `finished_by`.
pub const LAMBDA_OWNER: &str = "lambda-in-process";

pub struct Cloud {
    pub aws: Aws,
    pub sqs: aws_sdk_sqs::Client,
    pub queue: TestQueue,
    pub control_table: TestTable,
    pub control: ControlTable,
    pub planner: planner::Handler,
    pub worker: worker::Handler,
}

/// Worker options for tests: short leases and frequent checkpoints.
pub fn test_worker_options() -> WorkerOptions {
    WorkerOptions {
        owner: LAMBDA_OWNER.into(),
        lease: Duration::from_secs(10),
        checkpoint_interval: Duration::from_millis(100),
        deadline_margin: Duration::from_millis(400),
        ..WorkerOptions::default()
    }
}

impl Cloud {
    pub async fn new(options: WorkerOptions) -> Arc<Cloud> {
        Cloud::at(cli::aws().await, options).await
    }

    /// The same, on the moto server `aws` points at.
    pub async fn at(aws: Aws, options: WorkerOptions) -> Arc<Cloud> {
        Cloud::build(aws, options, VISIBILITY, 50, |_| {}).await
    }

    /// A cloud whose queue has `visibility` and `max_receives` (deliveries before the DLQ), and whose
    /// planner `configure` adjusts.
    pub async fn build(
        aws: Aws,
        options: WorkerOptions,
        visibility: Duration,
        max_receives: u32,
        configure: impl FnOnce(&mut Planner),
    ) -> Arc<Cloud> {
        static LOGS: std::sync::Once = std::sync::Once::new();
        // The handlers' warnings, shown with a failing test's output.
        LOGS.call_once(|| {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("ddb_pitr=info,worker=info,planner=info")
                .with_test_writer()
                .try_init();
        });
        let conf = support::sdk_config(&aws.endpoint).await;
        let clients = Clients::from_sdk_config(&conf);
        let sqs = clients.sqs.clone();
        let queue = TestQueue::create(&sqs, "restore", visibility, max_receives).await;
        // The control table's key schema, as ControlTable::create and the SAM template define it.
        let control_table =
            TestTable::create(&aws.ddb, "control", ("pk", T::S), Some(("sk", T::S))).await;
        let control = ControlTable::new(aws.ddb.clone(), &control_table.name);
        let mut planner = Planner::new(clients.clone(), &control_table.name, &queue.url);
        configure(&mut planner);
        let planner = planner::Handler::new(planner);
        let worker = worker::Handler::new(
            Worker::new(&clients, &control_table.name, &queue.url, options),
            Duration::from_secs(60),
        );
        Arc::new(Cloud {
            aws,
            sqs,
            queue,
            control_table,
            control,
            planner,
            worker,
        })
    }

    /// Invokes the planner handler with a fixture event, its fields replaced by `fields`.
    pub async fn planner_call(&self, fixture: &str, fields: Value) -> Result<Value, Diagnostic> {
        let mut event = event_fixture(fixture);
        merge(&mut event, fields);
        self.planner
            .handle(LambdaEvent::new(event, context(Duration::from_secs(900))))
            .await
    }

    /// Plans a restore and returns its summary.
    pub async fn plan(
        &self,
        restore_id: &str,
        table: &str,
        exports: &[String],
        allow_gaps: bool,
    ) -> Value {
        self.planner_call(
            "planner-plan.json",
            json!({
                "restore_id": restore_id,
                "table": table,
                "exports": exports,
                "allow_gaps": allow_gaps,
                "report_uri": null,
            }),
        )
        .await
        .unwrap_or_else(|d| panic!("plan failed: {}: {}", d.error_type, d.error_message))
    }

    pub async fn progress(&self, restore_id: &str, k: usize) -> Value {
        self.try_progress(restore_id, k)
            .await
            .unwrap_or_else(|d| panic!("progress failed: {}: {}", d.error_type, d.error_message))
    }

    pub async fn plan_export(&self, restore_id: &str, k: usize) -> Result<Value, Diagnostic> {
        self.planner_call(
            "planner-plan-export.json",
            json!({"restore_id": restore_id, "export_index": k}),
        )
        .await
    }

    /// `plan_export` as the state machine's execution `execution` sends it.
    pub async fn plan_export_as(
        &self,
        restore_id: &str,
        k: usize,
        execution: &str,
    ) -> Result<Value, Diagnostic> {
        self.planner_call(
            "planner-plan-export.json",
            json!({"restore_id": restore_id, "export_index": k, "execution": execution}),
        )
        .await
    }

    /// `progress` as an error or an answer.
    pub async fn try_progress(&self, restore_id: &str, k: usize) -> Result<Value, Diagnostic> {
        self.planner_call(
            "planner-progress.json",
            json!({"restore_id": restore_id, "export_index": k}),
        )
        .await
    }

    /// Receives one batch (up to 10 messages, long poll of 1 s).
    pub async fn receive(&self) -> Vec<Message> {
        self.sqs
            .receive_message()
            .queue_url(&self.queue.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("ReceiveMessage")
            .messages
            .unwrap_or_default()
    }

    /// Invokes the worker handler with an SQS event built from `messages` and `invocation` time left.
    pub async fn invoke_worker(
        &self,
        messages: &[Message],
        invocation: Duration,
    ) -> SqsBatchResponse {
        let event = sqs_event(messages, &self.queue.arn);
        self.worker
            .handle(LambdaEvent::new(event, context(invocation)))
            .await
            .unwrap_or_else(|d| panic!("worker failed: {}: {}", d.error_type, d.error_message))
    }

    /// One event-source-mapping cycle: receive, invoke, delete the messages that did not fail.
    pub async fn poll_once(&self, invocation: Duration) -> usize {
        let messages = self.receive().await;
        if messages.is_empty() {
            return 0;
        }
        let response = self.invoke_worker(&messages, invocation).await;
        self.delete_succeeded(&messages, &response).await;
        messages.len()
    }

    pub async fn delete_succeeded(&self, messages: &[Message], response: &SqsBatchResponse) {
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        self.queue.delete_all_but(messages, &failed).await;
    }

    /// Runs `work` while `pollers` event-source pollers deliver messages to the worker handler, each
    /// invocation with `invocation` time before its deadline.
    pub async fn with_pollers<F: std::future::Future>(
        self: &Arc<Self>,
        pollers: usize,
        invocation: Duration,
        work: F,
    ) -> F::Output {
        let stop = CancellationToken::new();
        let handles: Vec<_> = (0..pollers)
            .map(|_| {
                let (cloud, stop) = (self.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        cloud.poll_once(invocation).await;
                    }
                })
            })
            .collect();
        let out = work.await;
        stop.cancel();
        for h in handles {
            h.await.expect("poller");
        }
        out
    }

    /// Drives a planned restore like the state machine (see [`Cloud::drive_exports`]) while `pollers`
    /// event-source pollers run.
    pub async fn drive(
        self: &Arc<Self>,
        restore_id: &str,
        range: std::ops::Range<usize>,
        pollers: usize,
        invocation: Duration,
    ) -> Value {
        self.with_pollers(pollers, invocation, self.drive_exports(restore_id, range))
            .await
    }

    /// Plans each export of `range` in turn and waits for it to finish; stops at an export with failures.
    pub async fn drive_exports(&self, restore_id: &str, range: std::ops::Range<usize>) -> Value {
        let mut last = Value::Null;
        for k in range {
            self.plan_export(restore_id, k).await.unwrap_or_else(|d| {
                panic!("plan_export {k}: {}: {}", d.error_type, d.error_message)
            });
            last = self.wait_finished(restore_id, k).await;
            if last["files_failed"] != 0 {
                break;
            }
        }
        last
    }

    /// Polls progress until export `k` is finished (bounded: 120 s).
    pub async fn wait_finished(&self, restore_id: &str, k: usize) -> Value {
        let give_up = Instant::now() + Duration::from_secs(120);
        loop {
            let p = self.progress(restore_id, k).await;
            if p["export_finished"] == true {
                return p;
            }
            if Instant::now() > give_up {
                panic!(
                    "export {k} not finished after 120 s: {p}\n{}",
                    self.dump(restore_id, k).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The header counters, the queue depth and every file item of export `k`: what a stuck test shows.
    pub async fn dump(&self, restore_id: &str, k: usize) -> String {
        let header = self.control.header(restore_id).await.expect("header");
        let files: Vec<String> = self
            .files(restore_id, k)
            .await
            .iter()
            .map(|f| format!("{f:?}"))
            .collect();
        format!(
            "header counters {:?}\nqueue depth {}\n{}",
            header.map(|h| h.exports),
            self.queue.depth(&self.queue.url).await,
            files.join("\n")
        )
    }

    pub async fn files(&self, restore_id: &str, k: usize) -> Vec<FileRecord> {
        self.control.files(restore_id, k).await.expect("file items")
    }

    /// Every item of the control table (header and files) for one restore.
    pub async fn control_items(&self) -> usize {
        support::scan_all(&self.aws.ddb, &self.control_table.name)
            .await
            .len()
    }
}

pub fn event_fixture(name: &str) -> Value {
    cli::read_json(&support::fixture_path(&format!("events/{name}")))
}

fn merge(event: &mut Value, fields: Value) {
    if let (Value::Object(event), Value::Object(fields)) = (event, fields) {
        for (k, v) in fields {
            if v.is_null() {
                event.remove(&k);
            } else {
                event.insert(k, v);
            }
        }
    }
}

/// A Lambda context with `remaining` time before its deadline.
pub fn context(remaining: Duration) -> Context {
    let mut ctx = Context::default();
    ctx.request_id = support::unique_name("req");
    ctx.deadline = (SystemTime::now() + remaining)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ctx.invoked_function_arn =
        "arn:aws:lambda:us-east-1:123456789012:function:ddb-pitr-worker".into();
    ctx
}

/// The SQS event Lambda would deliver for `messages`: the fixture record, filled in from each message.
pub fn sqs_event(messages: &[Message], queue_arn: &str) -> SqsEvent {
    let template = event_fixture("sqs-event.json")["Records"][0].clone();
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut r = template.clone();
            r["messageId"] = json!(m.message_id());
            r["receiptHandle"] = json!(m.receipt_handle());
            r["body"] = json!(m.body());
            r["md5OfBody"] = json!(m.md5_of_body());
            r["eventSourceARN"] = json!(queue_arn);
            if let Some(attrs) = m.attributes() {
                for (k, v) in attrs {
                    r["attributes"][k.as_str()] = json!(v);
                }
            }
            r
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("a valid SQS event")
}
