#!/usr/bin/env bash
# The one command that runs the whole test suite, on a fresh machine too:
# Python venv with moto and cargo-lambda (for the integration tests), format check, clippy, the
# function binaries, all tests. Each cargo step reuses the previous one's build; no test rebuilds
# anything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/venv.sh
# tests/it/support starts moto with this interpreter (one server per test process).
export DDB_PITR_PYTHON="$PWD/.venv/bin/python"
export DDB_PITR_CARGO_LAMBDA="$PWD/.venv/bin/cargo-lambda"

for script in scripts/*.sh .ci/run; do
    bash -n "$script"
done

scripts/lint-infra.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# `cargo lambda watch` (tests/it/lambda_watch.rs) runs `cargo run --bin <function>`, which resolves
# features for that one package; building the same way here makes its first invocation only link.
cargo build --bin planner
cargo build --bin worker
cargo build --bin reporter
cargo test --workspace --all-targets
cargo test --workspace --doc
