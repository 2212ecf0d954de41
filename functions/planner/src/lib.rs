//! The planner Lambda: one JSON request in, one small JSON summary out (see `ddb_pitr::distributed::planner`).
//!
//! Configuration: `DDB_PITR_CONTROL_TABLE`, `DDB_PITR_QUEUE_URL`, `DDB_PITR_MIN_POLL` (10s: the shortest
//! wait the progress answer suggests to the state machine), `DDB_PITR_IDLE_TIMEOUT` (1h: how long an
//! export may make no progress before `progress` fails with `Stalled`) and `DDB_PITR_RESEND_AFTER` (2m: how
//! long after its last message a PENDING file may go unleased, with the queue empty, before it is sent
//! again).
//! Errors carry the stable names `Retryable`, `Fatal` or `Stalled` as their `errorType`, for Step
//! Functions' `Retry` and `Catch`.

use ddb_pitr::aws::{ClientOptions, Clients, env};
use ddb_pitr::distributed::planner::{Planner, PlannerRequest};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

pub struct Handler {
    planner: Planner,
}

impl Handler {
    pub fn new(planner: Planner) -> Self {
        Handler { planner }
    }

    /// Reads the configuration from the environment.
    pub async fn from_env() -> Result<Self, ddb_pitr::Error> {
        let clients = Clients::load(&ClientOptions::from_env()).await;
        let mut planner = Planner::new(
            clients,
            &env::required("DDB_PITR_CONTROL_TABLE")?,
            &env::required("DDB_PITR_QUEUE_URL")?,
        );
        planner.min_poll = env::duration("DDB_PITR_MIN_POLL", planner.min_poll)?;
        planner.idle_timeout = env::duration("DDB_PITR_IDLE_TIMEOUT", planner.idle_timeout)?;
        planner.resend_after = env::duration("DDB_PITR_RESEND_AFTER", planner.resend_after)?;
        Ok(Handler::new(planner))
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        let request: PlannerRequest = serde_json::from_value(event.payload).map_err(|e| Diagnostic {
            error_type: "Fatal".into(),
            error_message: format!(
                "the planner request is not valid: {e}; expected {{\"action\": \"plan\" | \"plan_export\" | \"progress\", ...}}"
            ),
        })?;
        self.planner.handle(request).await.map_err(|e| {
            tracing::error!(error_type = e.error_type(), "{e}");
            Diagnostic {
                error_type: e.error_type().into(),
                error_message: e.to_string(),
            }
        })
    }
}
