#!/usr/bin/env bash
# The cloud path end to end on this machine, with real emulators: moto_server runs
# statemachine/restore.asl.json (with infra/template.yaml's substitutions), its Lambda tasks reach the real
# planner and reporter binaries under `cargo lambda watch` through the router in scripts/moto_guard.py,
# an event-source poller feeds SQS messages to the real worker binary, and `ddb-pitr cloud start` /
# `ddb-pitr cloud status` drive four executions: the shared real chain and a generated multi-file chain
# (both must SUCCEED, tables and S3 reports checked) and a chain with a corrupt data file (must FAIL with
# FilesFailed.1 and the file named in the report), and a missing target table (must end in PlanningFailed
# with the planner's Fatal error, not retried). Also part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/venv.sh
export DDB_PITR_PYTHON="$PWD/.venv/bin/python"
export DDB_PITR_CARGO_LAMBDA="$PWD/.venv/bin/cargo-lambda"
# cargo lambda watch runs `cargo run --bin <function>`: build them the same way first.
for function in planner worker reporter; do
    cargo build --bin "$function"
done
cargo test --test it statemachine -- --nocapture
