#!/usr/bin/env bash
# Builds EOS and starts a CO, one LO (site "site-1") and two ENs on this machine with embedded
# defaults (SQLite, a local bare Git repository, the built-in WASM runtime), registers the sample
# WASM application, and prints what to try next. Ctrl-C stops everything.
#
# Environment: EOS_DATA (data folder, default ./.eos), EOS_HTTP_PORT (8080), EOS_GRPC_PORT (7070),
# EOS_LO_PORT (7071), EOS_PROFILE (release; "dev" builds faster and runs slower).
# EOS_QUICKSTART_SMOKE=1 also deploys the sample app, waits until it runs, undeploys it and exits:
# config/test.sh uses it to prove this script works.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${EOS_DATA:-$(pwd)/.eos}"
HTTP_PORT="${EOS_HTTP_PORT:-8080}" GRPC_PORT="${EOS_GRPC_PORT:-7070}" LO_PORT="${EOS_LO_PORT:-7071}"
PROFILE="${EOS_PROFILE:-release}"
command -v git >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y git; }
echo "Building EOS ($PROFILE profile; the first build takes several minutes)..."
cargo build --profile "$PROFILE" -p eos-co -p eos-lo -p eos-en -p edgectl
BIN="$(pwd)/target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"
mkdir -p "$DATA"
pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
export EOS_SERVER="http://127.0.0.1:$HTTP_PORT"
# The CO writes its bootstrap admin token (a platform admin's) there on first start.
export EOS_TOKEN_FILE="$DATA/co/admin.token"
# Waits up to 30 s for a command to succeed; says which step failed and where its log is.
await() {
  local what="$1" log="$2"; shift 2
  for _ in $(seq 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "EOS quick start: timed out waiting for $what; see $log" >&2
  tail -20 "$log" >&2
  exit 1
}

# The gRPC links are mutual TLS: the LO and the ENs enrol with single-use claim tokens the
# first time (their keys are made in their data folders and never leave them).
"$BIN/eos-co" --data-dir "$DATA/co" --http-listen "127.0.0.1:$HTTP_PORT" --grpc-listen "127.0.0.1:$GRPC_PORT" \
  --grpc-tls >"$DATA/co.log" 2>&1 & pids+=($!)
await "the CO's REST API" "$DATA/co.log" "$BIN/edgectl" site list
# Claim flags for a tier whose data folder holds no certificate yet.
claim() { # data folder, edgectl site claim arguments...
  local dir="$1"; shift
  [ -f "$dir/tls/cert.pem" ] && return 0
  echo "--claim-token $("$BIN/edgectl" site claim site-1 "$@" 2>/dev/null) --enrol-url $EOS_SERVER"
}
# shellcheck disable=SC2046 # the claim flags are words
"$BIN/eos-lo" --site-id site-1 --co-endpoint "http://127.0.0.1:$GRPC_PORT" \
  --deployments-repo "$DATA/co/deployments.git" --listen "127.0.0.1:$LO_PORT" --data-dir "$DATA/lo" \
  --poll-secs 10 $(claim "$DATA/lo" --role lo) >"$DATA/lo.log" 2>&1 & pids+=($!)
for n in 1 2; do
  # shellcheck disable=SC2046
  "$BIN/eos-en" --device-id "site-1/node-$n" --lo-endpoint "http://127.0.0.1:$LO_PORT" \
    --data-dir "$DATA/en-$n" $(claim "$DATA/en-$n" --role en --host "node-$n") \
    >"$DATA/en-$n.log" 2>&1 & pids+=($!)
done
online() { [ "$("$BIN/edgectl" -o json device list | grep -c '"online": true')" -ge 2 ]; }
await "both edge nodes to come online" "$DATA/lo.log" online
"$BIN/edgectl" app add config/apps/hello-wasm

cat <<MSG

EOS is running (logs in $DATA/*.log):
  REST API   $EOS_SERVER/api/v1   (OpenAPI: $EOS_SERVER/api/v1/openapi.json)
  reference  $EOS_SERVER/api/reference
  events     curl -N -H "Authorization: Bearer \$(cat $EOS_TOKEN_FILE)" $EOS_SERVER/api/v1/events
  GraphQL    $EOS_SERVER/graphql   (subscriptions: ws://${EOS_SERVER#http://}/graphql/ws)
  GraphiQL   $EOS_SERVER/graphiql#token=\$(cat $EOS_TOKEN_FILE)
  the web portal is not built yet; use GraphiQL, edgectl or the REST API.

Every request but health carries a bearer token. The bootstrap admin token (a platform admin's,
valid a year; keep it secret) is in $EOS_TOKEN_FILE:
  curl -H "Authorization: Bearer \$(cat $EOS_TOKEN_FILE)" $EOS_SERVER/api/v1/me

Try next (EOS_SERVER and EOS_TOKEN_FILE are set in this shell only):
  export EOS_SERVER=$EOS_SERVER EOS_TOKEN_FILE=$EOS_TOKEN_FILE PATH="$BIN:\$PATH"
  edgectl device list
  edgectl deploy com-eos-hello-wasm --site site-1
  edgectl status
  tail -f $DATA/en-*/workloads/*/hello/stdout.log
  edgectl undeploy <DEPLOYMENT-ID>

Press Ctrl-C to stop.
MSG

if [ "${EOS_QUICKSTART_SMOKE:-}" = 1 ]; then
  id="$("$BIN/edgectl" -o json deploy com-eos-hello-wasm --site site-1 | sed -n 's/^  "id": "\(.*\)",$/\1/p')"
  [ -n "$id" ] || { echo "smoke: deploy returned no id" >&2; exit 1; }
  state() { "$BIN/edgectl" -o json status "$id" | grep -q "^  \"state\": \"$1\""; }
  await "deployment $id to be installed" "$DATA/lo.log" state installed
  await "the module's output" "$DATA/en-1.log" grep -rqs "hello from eos" "$DATA"/en-1/workloads "$DATA"/en-2/workloads
  "$BIN/edgectl" status "$id"
  "$BIN/edgectl" undeploy "$id" >/dev/null
  await "deployment $id to be removed" "$DATA/lo.log" state removed
  echo "smoke: deployed, ran and removed the sample app"
  exit 0
fi
wait
