#!/usr/bin/env bash
# The one command that reproduces BENCHMARKS.md: release build, then every whole-process measurement
# (scripts/bench.py) and the criterion benches of the hot path. `--quick` runs everything small, once.
# Data and results go to target/bench/ (about 10 GB at full size; generated once and reused).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# moto_server and boto3 for the discovery benchmark.
scripts/venv.sh
cargo build --release -p ddb-pitr --bins -p ddb-pitr-synth -p ddb-bench-endpoint
python3 scripts/bench.py "$@"
if [[ " $* " == *" --quick "* ]]; then
    cargo bench --bench hot_path -- --quick
else
    cargo bench --bench hot_path
fi
