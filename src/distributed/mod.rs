//! Distributed restores over the same engine, for the planner, worker and reporter Lambdas, `ddb-pitr
//! worker` on EC2 and `ddb-pitr cloud`:
//!
//! - [`control`]: the DynamoDB control table: the plan, each file's lease and byte-offset checkpoint, counters;
//! - [`planner`]: validates the chain and enqueues one SQS message per data file, one export at a time;
//! - [`queue`]: the file messages and how they are sent;
//! - [`worker`]: leases a file, restores it from its checkpoint and hands it on or finishes it;
//! - [`reporter`]: the final report, from the control table;
//! - [`cloud`]: starts and follows executions of the state machine.

pub mod cloud;
pub mod control;
pub mod planner;
pub mod queue;
pub mod reporter;
pub mod worker;
