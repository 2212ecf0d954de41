#!/usr/bin/env bash
# Builds the Lambda functions for arm64 and deploys infra/template.yaml with AWS SAM.
#
# Usage:
#   scripts/deploy.sh --stack-name NAME --export-bucket BUCKET --report-bucket BUCKET \
#       --table NAME [--table NAME ...] [options]
#
# Required:
#   --stack-name NAME        CloudFormation stack to create or update.
#   --export-bucket BUCKET   Bucket holding the DynamoDB exports (read-only access).
#   --report-bucket BUCKET   Bucket the reporter writes reports to.
#   --table NAME             A table restores may write; repeat for several. A name may end in * to allow
#                            every table with that prefix. Turned into ARNs in the deploy region/account.
# Options (template parameter in brackets, default after the colon):
#   --export-prefix P        [ExportPrefix: ""]             key prefix of the exports in the export bucket
#   --report-prefix P        [ReportPrefix: ddb-pitr-reports/] key prefix reports may be written under
#   --kms-key-arn ARN        [KmsKeyArn: ""]                key of SSE-KMS exports; adds kms:Decrypt
#   --worker-memory MB       [WorkerMemory: 1769]           worker memory (1769 MB = one vCPU)
#   --worker-concurrency N   [WorkerConcurrency: 20]        MaximumConcurrency of the SQS event source
#   --worker-batch-size N    [WorkerBatchSize: 1]           files per worker invocation
#   --worker-max-wcu N       [WorkerMaxWcu: 0]              consumed WCU/s cap per worker environment (0: none)
#   --max-receive-count N    [MaxReceiveCount: 10]          deliveries before a message goes to the DLQ
#   --log-level LEVEL        [LogLevel: INFO]               functions' application log level
#   --region REGION          deploy region (default: the AWS CLI's)
#   --guided                 run `sam deploy --guided` instead of passing everything on the command line
#
# Needs: cargo-lambda (pip install cargo-lambda, or see https://www.cargo-lambda.info), the AWS SAM CLI, the
# AWS CLI, and credentials for the target account. Prints the stack outputs (StateMachineArn,
# ControlTableName, QueueUrl, DeadLetterQueueUrl) at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

stack="" export_bucket="" report_bucket="" region="" guided=0
tables=() params=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --stack-name) stack="$2"; shift 2 ;;
        --export-bucket) export_bucket="$2"; shift 2 ;;
        --report-bucket) report_bucket="$2"; shift 2 ;;
        --table) tables+=("$2"); shift 2 ;;
        --export-prefix) params+=("ExportPrefix=$2"); shift 2 ;;
        --report-prefix) params+=("ReportPrefix=$2"); shift 2 ;;
        --kms-key-arn) params+=("KmsKeyArn=$2"); shift 2 ;;
        --worker-memory) params+=("WorkerMemory=$2"); shift 2 ;;
        --worker-concurrency) params+=("WorkerConcurrency=$2"); shift 2 ;;
        --worker-batch-size) params+=("WorkerBatchSize=$2"); shift 2 ;;
        --worker-max-wcu) params+=("WorkerMaxWcu=$2"); shift 2 ;;
        --max-receive-count) params+=("MaxReceiveCount=$2"); shift 2 ;;
        --log-level) params+=("LogLevel=$2"); shift 2 ;;
        --region) region="$2"; shift 2 ;;
        --guided) guided=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "deploy.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for required in stack export_bucket report_bucket; do
    if [[ -z "${!required}" ]]; then
        echo "deploy.sh: --${required//_/-} is required (see --help)" >&2
        exit 2
    fi
done
if [[ ${#tables[@]} -eq 0 ]]; then
    echo "deploy.sh: at least one --table is required (see --help)" >&2
    exit 2
fi
for tool in cargo-lambda sam aws; do
    command -v "$tool" >/dev/null || { echo "deploy.sh: $tool is not on PATH" >&2; exit 1; }
done

region_args=()
[[ -n "$region" ]] && region_args=(--region "$region")
region="${region:-$(aws configure get region || true)}"
region="${region:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}"
[[ -n "$region" ]] || { echo "deploy.sh: no region: pass --region" >&2; exit 2; }
account="$(aws sts get-caller-identity --query Account --output text "${region_args[@]}")"
partition="$(aws sts get-caller-identity --query Arn --output text "${region_args[@]}" | cut -d: -f2)"
arns=()
for t in "${tables[@]}"; do
    arns+=("arn:${partition}:dynamodb:${region}:${account}:table/${t}")
done
table_arns="$(IFS=,; echo "${arns[*]}")"
params+=(
    "TargetTableArns=${table_arns}"
    "ExportBucket=${export_bucket}"
    "ReportBucket=${report_bucket}"
)

# Release builds for Graviton; sam build's rust-cargolambda builder runs cargo lambda the same way.
cargo lambda build --release --arm64 --bin planner --bin worker --bin reporter
sam build --template-file infra/template.yaml --beta-features
if [[ "$guided" -eq 1 ]]; then
    sam deploy --guided --stack-name "$stack" "${region_args[@]}" \
        --capabilities CAPABILITY_IAM --parameter-overrides "${params[@]}"
else
    sam deploy --stack-name "$stack" "${region_args[@]}" --resolve-s3 \
        --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
        --parameter-overrides "${params[@]}"
fi
aws cloudformation describe-stacks --stack-name "$stack" "${region_args[@]}" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text
