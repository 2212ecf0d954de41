//! The reporter Lambda: `{"restore_id": …}` in; the restore's report (the schema of `ddb-pitr restore`'s
//! report) written to the report URI recorded in its plan; a short summary out (see
//! `ddb_pitr::distributed::reporter`).
//!
//! Configuration: `DDB_PITR_CONTROL_TABLE`. Errors carry the stable names `Retryable` or `Fatal` as their
//! `errorType`.

use ddb_pitr::aws::{ClientOptions, Clients, env};
use ddb_pitr::distributed::control::ControlTable;
use ddb_pitr::distributed::reporter::{ReportSummary, report};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;

/// The reporter's request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    pub restore_id: String,
}

pub struct Handler {
    control: ControlTable,
    clients: Clients,
}

impl Handler {
    pub fn new(clients: &Clients, control_table: &str) -> Self {
        Handler {
            control: ControlTable::new(clients.dynamodb.clone(), control_table),
            clients: clients.clone(),
        }
    }

    /// Reads the configuration from the environment.
    pub async fn from_env() -> Result<Self, ddb_pitr::Error> {
        let clients = Clients::load(&ClientOptions::from_env()).await;
        Ok(Handler::new(
            &clients,
            &env::required("DDB_PITR_CONTROL_TABLE")?,
        ))
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<ReportSummary, Diagnostic> {
        let request: ReportRequest =
            serde_json::from_value(event.payload).map_err(|e| Diagnostic {
                error_type: "Fatal".into(),
                error_message: format!(
                    "the reporter request is not valid: {e}; expected {{\"restore_id\": \"…\"}}"
                ),
            })?;
        let (_, summary) = report(&self.control, &self.clients.s3, &request.restore_id)
            .await
            .map_err(|e| {
                tracing::error!(error_type = e.error_type(), "{e}");
                Diagnostic {
                    error_type: e.error_type().into(),
                    error_message: e.to_string(),
                }
            })?;
        Ok(summary)
    }
}
