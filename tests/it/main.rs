//! Integration tests: the real `ddb-pitr` binary against moto_server's S3 and DynamoDB.
//!
//! One moto per test process (started on first use, gone when the process exits); every test makes its own
//! uniquely named bucket and table, so tests run in parallel.

mod bad_input;
mod cli;
mod interruption;
mod restore_generated;
mod restore_real;
mod support;
mod support_smoke;
