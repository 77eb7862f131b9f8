#!/usr/bin/env bash
# The main job on a fresh machine: configure an endpoint, start it, run functions
# through the SDK, show the list table, stop it. Run via `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

CE=.venv/bin/compute-endpoint
NAME=demo
export COMPUTE_ENDPOINT_HOME=${DEMO_HOME:-$(mktemp -d /tmp/compute-endpoint-demo.XXXXXX)}
# RabbitMQ's stock administrator works over loopback; use your own identity elsewhere.
export COMPUTE_CLIENT_ID=${COMPUTE_CLIENT_ID:-guest}
export COMPUTE_CLIENT_SECRET=${COMPUTE_CLIENT_SECRET:-guest}
trap '$CE stop $NAME >/dev/null 2>&1 || true' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step $CE configure $NAME --broker-url 'amqp://127.0.0.1:5672/%2F'
step $CE start $NAME
step $CE list
ENDPOINT_ID=$($CE list --json | .venv/bin/python -c "import json,sys; print(next(r['endpoint_id'] for r in json.load(sys.stdin) if r['name']=='$NAME'))")
step .venv/bin/python examples/submit.py "$ENDPOINT_ID"
step $CE status $NAME
step $CE stop $NAME
step $CE list
echo
echo "Demo finished. Endpoint files are in $COMPUTE_ENDPOINT_HOME (logs under $NAME/logs)."
