//! `ddb-pitr cloud`: starts the restore state machine (`statemachine/restore.asl.json`) and follows an
//! execution through Step Functions and the control table.

use serde::{Deserialize, Serialize};

use crate::aws::error::sdk_error;
use crate::error::{Error, Result};
use crate::export::location::{S3Uri, report_object};
use crate::report::Report;

use super::control::{ControlTable, ExportProgress};
use super::planner::{PlanRequest, new_restore_id};
use super::reporter;

/// An execution that was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub execution_arn: String,
    pub restore_id: String,
    pub started_at: String,
}

/// Where an execution is: Step Functions' status and the control table's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub execution_arn: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED` or `PENDING_REDRIVE`.
    pub execution_status: String,
    pub restore_id: String,
    pub table: Option<String>,
    pub files: u64,
    pub files_done: u64,
    pub files_failed: u64,
    pub items_put: u64,
    pub items_deleted: u64,
    /// Per export, in chain order (empty until the plan is recorded).
    pub exports: Vec<ExportProgress>,
    pub report_uri: Option<String>,
    /// The Fail state's error and cause, once the execution failed.
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Status {
    pub fn running(&self) -> bool {
        matches!(
            self.execution_status.as_str(),
            "RUNNING" | "PENDING_REDRIVE"
        )
    }

    pub fn succeeded(&self) -> bool {
        self.execution_status == "SUCCEEDED"
    }
}

/// Starts an execution for `plan`. The restore id is chosen here (when absent) so that the execution can
/// be followed in the control table, and names the execution when it is a valid execution name.
///
/// Given the id of a restore that already ran, it continues that restore: Step Functions keeps execution
/// names for 90 days, so the new execution is named `<restore id>-2` (`-3`, …), and its planner re-sends
/// every unfinished file and retries the FAILED ones. It is refused while an execution of that restore
/// still runs.
pub async fn start(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    mut plan: PlanRequest,
) -> Result<Started> {
    let given = plan.restore_id.is_some();
    let restore_id = plan.restore_id.get_or_insert_with(new_restore_id).clone();
    let input = serde_json::to_string(&plan).expect("plan request serialises");
    // Room for a `-NNN` suffix within Step Functions' 80 characters.
    let nameable = restore_id.len() <= 76 && !restore_id.contains('.');
    if given {
        refuse_if_running(sfn, state_machine_arn, &restore_id, nameable).await?;
    }
    let mut attempt = 1;
    let out = loop {
        let mut req = sfn
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .input(&input);
        if nameable {
            req = req.name(if attempt == 1 {
                restore_id.clone()
            } else {
                format!("{restore_id}-{attempt}")
            });
        }
        match req.send().await {
            Ok(out) => break out,
            Err(e)
                if nameable
                    && attempt < MAX_CONTINUATIONS
                    && e.as_service_error()
                        .is_some_and(|se| se.is_execution_already_exists()) =>
            {
                attempt += 1;
            }
            Err(e) => return Err(sdk_error(format!("StartExecution {state_machine_arn}"), &e)),
        }
    };
    if attempt > 1 {
        tracing::info!(
            restore_id,
            execution = out.execution_arn(),
            "restore continued by a new execution"
        );
    }
    Ok(Started {
        execution_arn: out.execution_arn().to_owned(),
        restore_id,
        started_at: humantime::format_rfc3339_millis(
            std::time::SystemTime::try_from(*out.start_date())
                .unwrap_or_else(|_| std::time::SystemTime::now()),
        )
        .to_string(),
    })
}

/// Executions of one restore a state machine may have (each continuation is one).
const MAX_CONTINUATIONS: u32 = 1000;

/// Refuses to start a second execution of a restore while one runs: two would enqueue its files twice and
/// race to report it. Executions are recognised by name when the restore id can be one (`named`), else
/// every running execution's input is read. (Two `cloud start` calls at the same instant can both pass.)
async fn refuse_if_running(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    restore_id: &str,
    named: bool,
) -> Result<()> {
    let mut pages = sfn
        .list_executions()
        .state_machine_arn(state_machine_arn)
        .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| sdk_error(format!("ListExecutions {state_machine_arn}"), &e))?;
        for execution in page.executions() {
            let name = execution.name();
            let continuation = name
                .strip_prefix(restore_id)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| n.parse::<u32>().is_ok());
            if named && name != restore_id && !continuation {
                continue;
            }
            let out = sfn
                .describe_execution()
                .execution_arn(execution.execution_arn())
                .send()
                .await
                .map_err(|e| {
                    sdk_error(
                        format!("DescribeExecution {}", execution.execution_arn()),
                        &e,
                    )
                })?;
            if input_restore_id(out.input()).as_deref() == Some(restore_id) {
                return Err(Error::Usage(format!(
                    "restore {restore_id} is still running as execution {}; follow it with `ddb-pitr cloud \
                     status {} --wait`, or stop it (aws stepfunctions stop-execution) before continuing it",
                    execution.execution_arn(),
                    execution.execution_arn()
                )));
            }
        }
    }
    Ok(())
}

/// The `restore_id` of an execution's input, which [`start`] always sets.
fn input_restore_id(input: Option<&str>) -> Option<String> {
    let input: serde_json::Value = serde_json::from_str(input?).ok()?;
    input["restore_id"].as_str().map(str::to_owned)
}

/// The status of an execution started by [`start`] (or by anyone, with a `restore_id` in its input).
pub async fn status(
    sfn: &aws_sdk_sfn::Client,
    control: &ControlTable,
    execution_arn: &str,
) -> Result<Status> {
    let out = sfn
        .describe_execution()
        .execution_arn(execution_arn)
        .send()
        .await
        .map_err(|e| sdk_error(format!("DescribeExecution {execution_arn}"), &e))?;
    let restore_id = input_restore_id(out.input()).ok_or_else(|| {
        Error::Usage(format!(
            "execution {execution_arn} has no restore_id in its input; start executions with \
                 `ddb-pitr cloud start`, or pass restore_id in the input"
        ))
    })?;
    let mut status = Status {
        execution_arn: execution_arn.to_owned(),
        execution_status: out.status().as_str().to_owned(),
        restore_id: restore_id.clone(),
        table: None,
        files: 0,
        files_done: 0,
        files_failed: 0,
        items_put: 0,
        items_deleted: 0,
        exports: vec![],
        report_uri: None,
        error: out.error().map(str::to_owned),
        cause: out.cause().map(str::to_owned),
    };
    if let Some(header) = control.header(&restore_id).await? {
        status.table = Some(header.plan.table.clone());
        status.report_uri = header.plan.options.report_uri.as_deref().map(|u| {
            u.parse::<S3Uri>()
                .map(|uri| report_object(&uri, &restore_id).to_string())
                .unwrap_or_else(|_| u.to_owned())
        });
        for e in &header.exports {
            status.files += e.files;
            status.files_done += e.done;
            status.files_failed += e.failed;
            status.items_put += e.puts;
            status.items_deleted += e.deletes;
        }
        status.exports = header.exports;
    }
    Ok(status)
}

/// The report of a finished execution: the object the reporter wrote, or, when there is none (no report
/// URI, or the execution failed before reporting), one built from the control table.
pub async fn report(
    s3: &aws_sdk_s3::Client,
    control: &ControlTable,
    status: &Status,
) -> Result<Report> {
    if let Some(uri) = &status.report_uri {
        let uri: S3Uri = uri.parse()?;
        match s3
            .get_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .send()
            .await
        {
            Ok(out) => {
                let body = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| Error::Aws {
                        operation: format!("GetObject {uri}"),
                        message: e.to_string(),
                        retryable: true,
                    })?
                    .into_bytes();
                return serde_json::from_slice(&body)
                    .map_err(|e| Error::Usage(format!("{uri} is not a ddb-pitr report: {e}")));
            }
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => {
                tracing::info!(report = %uri, "no report object yet; building it from the control table");
            }
            Err(e) => return Err(sdk_error(format!("GetObject {uri}"), &e)),
        }
    }
    reporter::build(control, &status.restore_id).await
}
