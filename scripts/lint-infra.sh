#!/usr/bin/env bash
# Lints the deployable parts: infra/template.yaml with cfn-lint (PyPI) and statemachine/restore.asl.json
# with asl-validator (npm). Installs both on first use (into .venv and .tools/node); offline afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ASL_VALIDATOR_VERSION=4.0.0
scripts/venv.sh
node_dir=.tools/node
validator="$node_dir/node_modules/.bin/asl-validator"
if [[ ! -x "$validator" ]] || [[ "$("$validator" --version)" != "$ASL_VALIDATOR_VERSION" ]]; then
    command -v npm >/dev/null || { echo "lint-infra.sh: npm is needed for asl-validator" >&2; exit 1; }
    echo "lint-infra.sh: installing asl-validator@$ASL_VALIDATOR_VERSION into $node_dir" >&2
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --no-save --no-audit --no-fund --silent \
        "asl-validator@$ASL_VALIDATOR_VERSION" >&2
fi

.venv/bin/cfn-lint infra/template.yaml
"$validator" --json-path statemachine/restore.asl.json
