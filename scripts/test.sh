#!/usr/bin/env bash
# The one command that runs the whole test suite, on a fresh machine too:
# Python venv with moto (for the integration tests), format check, clippy, all tests.
# Each cargo step reuses the previous one's build; no test rebuilds anything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/venv.sh
# tests/it/support starts moto with this interpreter (one server per test process).
export DDB_PITR_PYTHON="$PWD/.venv/bin/python"

for script in scripts/*.sh .ci/run; do
    bash -n "$script"
done

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
cargo test --doc
