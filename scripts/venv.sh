#!/usr/bin/env bash
# Make <repo>/.venv hold exactly what scripts/requirements-test.txt asks for (moto[server],
# which brings boto3, and cargo-lambda, whose `cargo lambda watch` serves the function binaries). Idempotent and quiet when nothing has changed: the fast path compares
# a hash of the requirements file (and the interpreter version) with a stamp inside the venv.
#
# Env: PYTHON   interpreter used to create the venv (default: python3)
#      VENV_DIR where the venv lives (default: <repo>/.venv)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV_DIR:-$repo_root/.venv}"
req="$repo_root/scripts/requirements-test.txt"
stamp="$venv/.requirements-test.stamp"
base_python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "venv.sh: creating $venv" >&2
    "$base_python" -m venv "$venv"
fi

want="$({ sha256sum "$req" | cut -d' ' -f1; "$venv/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

echo "venv.sh: installing $(tr '\n' ' ' < "$req")into $venv" >&2
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$req" >&2
# Fail here, not in the middle of a test run, if the install is unusable.
"$venv/bin/python" -c 'from moto.server import ThreadedMotoServer; import boto3' >&2
"$venv/bin/cargo-lambda" lambda --version >&2
echo "$want" > "$stamp"
