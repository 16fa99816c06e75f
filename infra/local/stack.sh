#!/usr/bin/env bash
# Runs pr-digest on this machine: moto server for SQS and DynamoDB,
# `cargo lambda watch` for the four functions, the local API gateway and the
# SQS event source. Every server listens on 127.0.0.1 only.
#
#   stack.sh demo   also starts the upstream stand-in (Nango, GitHub and the
#                   Messages API), runs the demo client once against the
#                   gateway, and exits with the demo client's exit code.
#   stack.sh offline
#                   starts the same stack and stand-in as demo, without the
#                   demo client, prints the API base URL and runs until
#                   interrupted, for trying the API by hand with no account.
#   stack.sh dev    reads upstream URLs and keys from the environment, then
#                   from .env in the repository root for variables not set,
#                   prints the API base URL and runs until interrupted.
#                   Without NANGO_WEBHOOK_SECRET it uses a random webhook
#                   signing key, so POST /api/nango-webhook rejects every
#                   delivery with 401.
#
# Ports (environment): MOTO_PORT (5050), LAMBDA_PORT (9000), GATEWAY_PORT
# (3000), STAND_IN_PORT (4010, demo and offline only). Logs of the background
# processes go to .local/logs/. Needs .venv with moto_server and cargo-lambda,
# and setsid.
set -euo pipefail

usage() {
  echo "usage: $0 demo|offline|dev" >&2
}

mode=${1:-}
case $mode in
  demo | offline) uses_stand_in=true ;;
  dev) uses_stand_in=false ;;
  *)
    usage
    exit 2
    ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo_root"

# Loads .env without overriding variables already set in the environment.
load_env_file() {
  local line key value
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]}
    value=${value%\"}
    value=${value#\"}
    if [[ -z ${!key+set} ]]; then
      export "$key=$value"
    fi
  done <"$1"
}

if [[ $mode == dev && -f .env ]]; then
  load_env_file .env
fi

MOTO_PORT=${MOTO_PORT:-5050}
LAMBDA_PORT=${LAMBDA_PORT:-9000}
GATEWAY_PORT=${GATEWAY_PORT:-3000}
STAND_IN_PORT=${STAND_IN_PORT:-4010}

venv_bin="$repo_root/.venv/bin"
state_dir="$repo_root/.local"
log_dir="$state_dir/logs"
env_file="$state_dir/lambda.env"
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
bin_dir="$target_dir/debug"

# Seconds to wait for a server to accept connections.
STARTUP_TIMEOUT_SECONDS=${STARTUP_TIMEOUT_SECONDS:-60}
# Seconds to wait for the background processes to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT_SECONDS=10

# Process group ids of the background processes, and their names and logs.
group_ids=()
names=()
logs=()

print_log_tails() {
  local i
  for i in "${!logs[@]}"; do
    echo "==> ${names[$i]}: last lines of ${logs[$i]} <==" >&2
    tail -n 30 "${logs[$i]}" >&2 || true
  done
}

stop_all() {
  local group deadline alive
  for group in "${group_ids[@]}"; do
    kill -TERM -- "-$group" 2>/dev/null || true
  done
  deadline=$((SECONDS + STOP_TIMEOUT_SECONDS))
  while ((SECONDS < deadline)); do
    alive=0
    for group in "${group_ids[@]}"; do
      if kill -0 -- "-$group" 2>/dev/null; then
        alive=1
      fi
    done
    ((alive == 0)) && break
    sleep 0.2
  done
  for group in "${group_ids[@]}"; do
    kill -KILL -- "-$group" 2>/dev/null || true
  done
}

cleanup() {
  local status=$?
  # A second signal (make forwards TERM, a closed terminal sends HUP) must not
  # cut the cleanup short, and the file with the keys goes first.
  trap '' INT TERM HUP
  trap - EXIT
  rm -f "$env_file"
  # 130, 129 and 143 are an interrupt, a hang-up or a termination, not a failure.
  if ((status != 0 && status != 129 && status != 130 && status != 143)); then
    print_log_tails
  fi
  stop_all
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 129' HUP
trap 'exit 143' TERM

fail() {
  echo "stack.sh: $*" >&2
  exit 1
}

# Starts a command in its own session, so stopping its process group also
# stops the processes it spawns (cargo lambda watch runs the functions).
start() {
  local name=$1
  shift
  local log="$log_dir/$name.log"
  : >"$log"
  # NO_COLOR keeps ANSI colour codes out of the logs of programs that honour it.
  NO_COLOR=1 setsid "$@" >"$log" 2>&1 &
  # Without job control, the background child is not a group leader, so
  # setsid does not fork and $! is the id of the new process group.
  group_ids+=("$!")
  names+=("$name")
  logs+=("$log")
  echo "started $name (process group $!, log ${log#"$repo_root"/})" >&2
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

check_port_free() {
  local variable=$1 port=$2
  if port_in_use "$port"; then
    fail "port $port on 127.0.0.1 is already in use; stop what listens there or set $variable to a free port"
  fi
}

# Waits until the process group `group` accepts connections on `port`, and
# fails when the process exits first or the startup timeout passes.
wait_for_port() {
  local name=$1 group=$2 port=$3
  local deadline=$((SECONDS + STARTUP_TIMEOUT_SECONDS))
  until port_in_use "$port"; do
    if ! kill -0 "$group" 2>/dev/null; then
      fail "$name exited before listening on 127.0.0.1:$port"
    fi
    if ((SECONDS >= deadline)); then
      fail "$name did not listen on 127.0.0.1:$port within $STARTUP_TIMEOUT_SECONDS s"
    fi
    sleep 0.2
  done
  echo "$name is listening on 127.0.0.1:$port" >&2
}

require_single_line() {
  local name=$1 value=$2
  if [[ $value == *$'\n'* ]]; then
    fail "$name contains a line break, which an env file cannot hold"
  fi
}

# --- Checks -----------------------------------------------------------------

command -v setsid >/dev/null || fail "setsid not found: install util-linux"
[[ -x $venv_bin/moto_server ]] ||
  fail ".venv/bin/moto_server not found: create the Python virtual environment with moto[server] and cargo-lambda first"
[[ -x $venv_bin/cargo-lambda ]] ||
  fail ".venv/bin/cargo-lambda not found: create the Python virtual environment with moto[server] and cargo-lambda first"

check_port_free MOTO_PORT "$MOTO_PORT"
check_port_free LAMBDA_PORT "$LAMBDA_PORT"
check_port_free GATEWAY_PORT "$GATEWAY_PORT"
if [[ $uses_stand_in == true ]]; then
  check_port_free STAND_IN_PORT "$STAND_IN_PORT"
fi

# --- Upstream settings --------------------------------------------------------

if [[ $uses_stand_in == true ]]; then
  stand_in_url="http://127.0.0.1:$STAND_IN_PORT"
  NANGO_BASE_URL=$stand_in_url
  GITHUB_API_URL=$stand_in_url
  ANTHROPIC_BASE_URL=$stand_in_url
  NANGO_SECRET_KEY=demo-nango-secret-key
  NANGO_INTEGRATION_ID=github
  NANGO_WEBHOOK_SECRET=demo-nango-webhook-secret
  ANTHROPIC_API_KEY=demo-anthropic-api-key
  CLAUDE_MODEL=${CLAUDE_MODEL:-claude-opus-4-6}
else
  NANGO_BASE_URL=${NANGO_BASE_URL:-https://api.nango.dev}
  GITHUB_API_URL=${GITHUB_API_URL:-https://api.github.com}
  ANTHROPIC_BASE_URL=${ANTHROPIC_BASE_URL:-https://api.anthropic.com}
  NANGO_INTEGRATION_ID=${NANGO_INTEGRATION_ID:-github}
  CLAUDE_MODEL=${CLAUDE_MODEL:-claude-opus-4-6}
  [[ -n ${NANGO_SECRET_KEY:-} ]] ||
    fail "NANGO_SECRET_KEY is not set: copy .env.example to .env and fill in your Nango secret key"
  [[ -n ${ANTHROPIC_API_KEY:-} ]] ||
    fail "ANTHROPIC_API_KEY is not set: copy .env.example to .env and fill in your Anthropic API key"
  # The webhook is optional locally, because Nango cannot reach 127.0.0.1
  # without a tunnel. Analyses still work, because analyze-api looks up a
  # connection's owner in Nango when the access table has no record of it.
  if [[ -z ${NANGO_WEBHOOK_SECRET:-} ]]; then
    NANGO_WEBHOOK_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    echo "stack.sh: NANGO_WEBHOOK_SECRET is not set, so a random key is used and /api/nango-webhook rejects every delivery with 401. Set it to your Nango environment's webhook signing key to verify deliveries." >&2
  fi
fi

ANALYSES_TABLE=${ANALYSES_TABLE:-pr-digest-analyses}
ACCESS_TABLE=${ACCESS_TABLE:-pr-digest-access}
MAX_ANALYSES_PER_HOUR=${MAX_ANALYSES_PER_HOUR:-30}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-5}
ALLOWED_ORIGINS=${ALLOWED_ORIGINS:-http://localhost:5173}

export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export ANALYSES_TABLE ACCESS_TABLE MAX_ATTEMPTS

mkdir -p "$log_dir"

# --- Build --------------------------------------------------------------------

echo "building the local stack and the functions (the first build takes several minutes)" >&2
cargo build -p local-stack --bins
# Built now so that cargo lambda watch finds them fresh and serves the first
# request without compiling.
cargo build -p connect-session -p analyze-api -p worker -p nango-webhook

# --- AWS resources on moto ------------------------------------------------------

start moto "$venv_bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
wait_for_port moto "${group_ids[-1]}" "$MOTO_PORT"

setup_output=$("$bin_dir/local-setup" 2>"$log_dir/local-setup.log") ||
  fail "local-setup failed: $(tail -n 5 "$log_dir/local-setup.log")"
ANALYSIS_QUEUE_URL=${setup_output#ANALYSIS_QUEUE_URL=}
if [[ $setup_output != ANALYSIS_QUEUE_URL=* || -z $ANALYSIS_QUEUE_URL ]]; then
  fail "local-setup printed no ANALYSIS_QUEUE_URL line: $setup_output"
fi
export ANALYSIS_QUEUE_URL
echo "queue: $ANALYSIS_QUEUE_URL" >&2

# --- Upstream stand-in ----------------------------------------------------------

# The stand-in's connections are tagged with the demo client's user, so
# analyze-api's ownership check accepts the demo's connection.
demo_user_id=${DEMO_USER_ID:-demo-user}
if [[ $uses_stand_in == true ]]; then
  STAND_IN_PORT=$STAND_IN_PORT \
    STAND_IN_NANGO_SECRET_KEY=$NANGO_SECRET_KEY \
    STAND_IN_INTEGRATION_ID=$NANGO_INTEGRATION_ID \
    STAND_IN_ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY \
    STAND_IN_END_USER_ID=$demo_user_id \
    start upstream-stand-in "$bin_dir/upstream-stand-in"
  wait_for_port upstream-stand-in "${group_ids[-1]}" "$STAND_IN_PORT"
fi

# --- cargo lambda watch -----------------------------------------------------------

lambda_variables=(
  ANALYSES_TABLE ANALYSIS_QUEUE_URL ACCESS_TABLE MAX_ANALYSES_PER_HOUR
  AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  ALLOWED_ORIGINS NANGO_BASE_URL NANGO_SECRET_KEY NANGO_INTEGRATION_ID
  NANGO_WEBHOOK_SECRET
  GITHUB_API_URL ANTHROPIC_BASE_URL ANTHROPIC_API_KEY CLAUDE_MODEL MAX_ATTEMPTS
)
# Tuning variables that pass through when set.
optional_variables=(
  RUST_LOG ANALYSIS_TTL_DAYS MAX_PULL_REQUESTS PR_BODY_MAX_CHARS PROMPT_MAX_CHARS
  CLAUDE_MAX_TOKENS NANGO_CONNECT_TIMEOUT_MS NANGO_TIMEOUT_MS
  GITHUB_CONNECT_TIMEOUT_MS GITHUB_TIMEOUT_MS ANTHROPIC_CONNECT_TIMEOUT_MS ANTHROPIC_TIMEOUT_MS
)
(
  # The file contains keys, so only this user may read it. Cleanup deletes it.
  umask 077
  {
    echo "AUTH_MODE=dev"
    echo "LOG_FORMAT=text"
    echo "NO_COLOR=1"
    for name in "${lambda_variables[@]}"; do
      require_single_line "$name" "${!name}"
      printf '%s=%s\n' "$name" "${!name}"
    done
    for name in "${optional_variables[@]}"; do
      if [[ -n ${!name:-} ]]; then
        require_single_line "$name" "${!name}"
        printf '%s=%s\n' "$name" "${!name}"
      fi
    done
  } >"$env_file"
)

# --disable-cors leaves CORS to the functions, as behind API Gateway.
PATH="$venv_bin:$PATH" start cargo-lambda-watch \
  cargo lambda watch -A 127.0.0.1 -P "$LAMBDA_PORT" --disable-cors --env-file "$env_file"
wait_for_port cargo-lambda-watch "${group_ids[-1]}" "$LAMBDA_PORT"

# --- Gateway and event source -----------------------------------------------------

GATEWAY_PORT=$GATEWAY_PORT LAMBDA_WATCH_URL="http://127.0.0.1:$LAMBDA_PORT" \
  start local-gateway "$bin_dir/local-gateway"
wait_for_port local-gateway "${group_ids[-1]}" "$GATEWAY_PORT"

WORKER_INVOKE_URL="http://127.0.0.1:$LAMBDA_PORT/2015-03-31/functions/worker/invocations" \
  start sqs-event-source "$bin_dir/sqs-event-source"

api_base_url="http://127.0.0.1:$GATEWAY_PORT"

if [[ $mode == demo ]]; then
  echo "running the demo client against $api_base_url" >&2
  demo_status=0
  API_BASE_URL=$api_base_url "$bin_dir/demo-client" || demo_status=$?
  exit "$demo_status"
fi

echo "pr-digest API ready at $api_base_url (Ctrl-C stops everything; logs in ${log_dir#"$repo_root"/}/)"
if [[ $mode == offline ]]; then
  echo "offline: send the header x-user-id: $demo_user_id. Every connectionId belongs to that user. Every repository returns the sample pull requests, except demo-org/missing, which the stand-in's GitHub answers with 404."
fi
while true; do
  for i in "${!group_ids[@]}"; do
    if ! kill -0 "${group_ids[$i]}" 2>/dev/null; then
      fail "${names[$i]} exited unexpectedly"
    fi
  done
  sleep 1
done
