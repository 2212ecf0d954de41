//! Integration tests: the real `ddb-pitr` binary and the Lambda handlers against moto_server's S3, DynamoDB
//! and SQS.
//!
//! One moto per test process (started on first use, gone when the process exits); every test makes its own
//! uniquely named bucket and table, so tests run in parallel.

mod architecture;
mod bad_input;
mod capacity;
mod cli;
mod cloud;
mod discover;
mod distributed;
mod export_bucket;
mod integrity;
mod interruption;
mod lambda_watch;
mod library;
mod policy;
mod request_export;
mod restore_generated;
mod restore_real;
mod statemachine;
mod support;
mod support_smoke;
mod terminal;
mod validate;
