#!/usr/bin/env bash
# Runs a command with moto server (the AWS emulator) listening on 127.0.0.1,
# AWS_ENDPOINT_URL pointing at it and dummy credentials, then stops moto.
# Usage: infra/local/with-moto.sh COMMAND [ARGS...]
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
moto="$root/.venv/bin/moto_server"
if [[ ! -x "$moto" ]]; then
  echo "with-moto: $moto is missing; run 'make venv' first" >&2
  exit 2
fi

# A port the kernel reports free; MOTO_PORT belongs to the local stack, not to the tests.
port=$("$root/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$root/.local/logs"
log="$root/.local/logs/moto-test.log"

"$moto" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if "$root/.venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "with-moto: moto server exited; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
"$@"
