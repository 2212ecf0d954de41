#!/usr/bin/env bash
# Run the main job locally, with no AWS account: start moto on 127.0.0.1, put the bundled real
# export chain (tests/fixtures/sample-export: one FULL and two INCREMENTAL exports) in bucket
# ddb-pitr-demo, create table `demo`, and restore the chain into it with the release binary.
#
# The restore report (JSON) goes to stdout; everything else goes to stderr.
# Env: MOTO_PORT  fixed port for moto (default: a free one)
#      DEMO_CHECK=0  skip comparing the table with expected-after-chain.jsonl afterwards
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

scripts/venv.sh
py="$repo_root/.venv/bin/python"
fixtures="$repo_root/tests/fixtures/sample-export"
bucket=ddb-pitr-demo
table=demo

cargo build --release --bin ddb-pitr >&2
bin="${CARGO_TARGET_DIR:-$repo_root/target}/release/ddb-pitr"

# moto runs until its stdin reaches EOF. Its stdin is a pipe whose only writer is this script
# (coproc), so moto stops whenever the script ends, however it ends; the trap also says so.
moto_args=()
if [[ -n "${MOTO_PORT:-}" ]]; then
    moto_args=(--port "$MOTO_PORT")
fi
coproc MOTO { exec "$py" scripts/moto_guard.py "${moto_args[@]}"; }
# shellcheck disable=SC2153 # MOTO_PID is set by coproc
moto_pid=$MOTO_PID
moto_in=${MOTO[1]}
moto_out=${MOTO[0]}

stop_moto() {
    # Closing moto's stdin is the stop signal; wait (bounded by moto itself) so no server is
    # left behind when the script returns.
    exec {moto_in}>&- 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
}
trap stop_moto EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

line=""
if ! read -r -t 90 line <&"$moto_out" || [[ "$line" != MOTO_PORT=* ]]; then
    echo "demo.sh: moto did not start (got ${line:-nothing}); see the errors above" >&2
    exit 1
fi
port=${line#MOTO_PORT=}
endpoint="http://127.0.0.1:$port"
echo "demo.sh: moto on $endpoint" >&2

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE

"$py" - "$endpoint" "$fixtures" "$bucket" "$table" <<'PY'
import os
import sys

import boto3

endpoint, root, bucket, table = sys.argv[1:5]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
s3 = boto3.client("s3", **kw)
s3.create_bucket(Bucket=bucket)
count = 0
for dirpath, _, files in os.walk(root):
    for name in sorted(files):
        path = os.path.join(dirpath, name)
        key = os.path.relpath(path, root).replace(os.sep, "/")
        s3.upload_file(path, bucket, key)
        count += 1
ddb = boto3.client("dynamodb", **kw)
ddb.create_table(
    TableName=table,
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
               {"AttributeName": "sk", "KeyType": "RANGE"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                          {"AttributeName": "sk", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
)
ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
print(f"demo.sh: uploaded {count} objects to s3://{bucket}/, created table {table}", file=sys.stderr)
PY

rc=0
"$bin" restore --table "$table" \
    --export "s3://$bucket/AWSDynamoDB/01768385930622-efd1a093/" \
    --export "s3://$bucket/AWSDynamoDB/01768386924000-d339e52d/" \
    --export "s3://$bucket/AWSDynamoDB/01768388186000-4a2fc3ff/" \
    --allow-gaps \
    --endpoint-url "$endpoint" --region us-east-1 || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "demo.sh: ddb-pitr restore exited with status $rc" >&2
    exit "$rc"
fi

if [[ "${DEMO_CHECK:-1}" != 0 ]]; then
    "$py" - "$endpoint" "$table" "$fixtures/expected-after-chain.jsonl" <<'PY'
import json
import sys

import boto3

endpoint, table, expected_path = sys.argv[1:4]
ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")

def canon(v):
    # Sets are unordered; boto3 returns B as bytes, the fixture has base64 text.
    (t, x), = v.items()
    if t in ("SS", "NS", "BS"):
        return {t: sorted(canon({t[0]: e})[t[0]] for e in x)}
    if t == "B":
        import base64
        return {t: x if isinstance(x, str) else base64.b64encode(x).decode()}
    if t == "L":
        return {t: [canon(e) for e in x]}
    if t == "M":
        return {t: {k: canon(e) for k, e in x.items()}}
    return {t: x}

def line(item):
    return json.dumps({k: canon(v) for k, v in item.items()}, sort_keys=True)

items = []
for page in ddb.get_paginator("scan").paginate(TableName=table):
    items.extend(page["Items"])
got = sorted(line(i) for i in items)
with open(expected_path) as f:
    want = sorted(line(json.loads(l)) for l in f if l.strip())
if got == want:
    print(f"demo.sh: table {table} holds the {len(got)} expected items", file=sys.stderr)
else:
    print(f"demo.sh: table {table} differs from {expected_path}:", file=sys.stderr)
    for l in sorted(set(want) - set(got)):
        print(f"  missing {l[:200]}", file=sys.stderr)
    for l in sorted(set(got) - set(want)):
        print(f"  unexpected {l[:200]}", file=sys.stderr)
    sys.exit(1)
PY
fi
