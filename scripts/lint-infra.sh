#!/usr/bin/env bash
# Lints the deployable parts: infra/template.yaml with cfn-lint and `sam validate` (the SAM translator, offline)
# and statemachine/restore.asl.json with asl-validator (npm). Installs them on first use (cfn-lint into .venv,
# aws-sam-cli into its own venv .tools/sam, asl-validator into .tools/node); offline afterwards.
#
# cfn-lint is pinned to 1.53.3: from 1.54 on it no longer runs the SAM transform and misses most mistakes in
# AWS::Serverless resources (bad runtimes, event properties, unknown conditions in policies...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ASL_VALIDATOR_VERSION=4.0.0
SAM_CLI_VERSION=1.170.0
scripts/venv.sh
sam_venv=.tools/sam
if [[ ! -x "$sam_venv/bin/sam" ]] || ! "$sam_venv/bin/sam" --version | grep -q "$SAM_CLI_VERSION"; then
    echo "lint-infra.sh: installing aws-sam-cli==$SAM_CLI_VERSION into $sam_venv" >&2
    "${PYTHON:-python3}" -m venv "$sam_venv"
    "$sam_venv/bin/python" -m pip install --disable-pip-version-check --quiet --no-compile \
        "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==1.53.3" >&2
fi
node_dir=.tools/node
validator="$node_dir/node_modules/.bin/asl-validator"
if [[ ! -x "$validator" ]] || [[ "$("$validator" --version)" != "$ASL_VALIDATOR_VERSION" ]]; then
    command -v npm >/dev/null || { echo "lint-infra.sh: npm is needed for asl-validator" >&2; exit 1; }
    echo "lint-infra.sh: installing asl-validator@$ASL_VALIDATOR_VERSION into $node_dir" >&2
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --no-save --no-audit --no-fund --silent \
        "asl-validator@$ASL_VALIDATOR_VERSION" >&2
fi

# Paths the tools do not check: the code and the definition the template points at.
for path in .. ../statemachine/restore.asl.json; do
    [[ -e "infra/$path" ]] || { echo "lint-infra.sh: infra/template.yaml refers to missing $path" >&2; exit 1; }
done
.venv/bin/cfn-lint infra/template.yaml
SAM_CLI_TELEMETRY=0 "$sam_venv/bin/sam" validate --region us-east-1 --template-file infra/template.yaml
SAM_CLI_TELEMETRY=0 "$sam_venv/bin/sam" validate --lint --region us-east-1 --template-file infra/template.yaml
"$validator" --json-path statemachine/restore.asl.json
