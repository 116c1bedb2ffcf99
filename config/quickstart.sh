#!/usr/bin/env bash
# Builds EOS and starts a CO, one LO (site "site-1") and two ENs on this machine with embedded
# defaults (SQLite, a local bare Git repository, the built-in WASM runtime), registers the sample
# WASM application, and prints what to try next. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${EOS_DATA:-$(pwd)/.eos}"
cargo build --release -p eos-co -p eos-lo -p eos-en -p edgectl
BIN="$(pwd)/target/release"
mkdir -p "$DATA"
pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$BIN/eos-co" --data-dir "$DATA/co" --http-listen 127.0.0.1:8080 --grpc-listen 127.0.0.1:7070 >"$DATA/co.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf http://127.0.0.1:8080/api/v1/health >/dev/null 2>&1 && break; sleep 0.2; done
"$BIN/eos-lo" --site-id site-1 --co-endpoint http://127.0.0.1:7070 --deployments-repo "$DATA/co/deployments.git" \
  --listen 127.0.0.1:7071 --data-dir "$DATA/lo" --poll-secs 10 >"$DATA/lo.log" 2>&1 & pids+=($!)
for n in 1 2; do
  "$BIN/eos-en" --device-id "site-1/node-$n" --lo-endpoint http://127.0.0.1:7071 --data-dir "$DATA/en-$n" >"$DATA/en-$n.log" 2>&1 & pids+=($!)
done
export EOS_SERVER=http://127.0.0.1:8080
for _ in $(seq 100); do [ "$("$BIN/edgectl" -o json device list | grep -c '"online": true')" -ge 2 ] && break; sleep 0.2; done
"$BIN/edgectl" app add config/apps/hello-wasm

cat <<MSG

EOS is running (logs in $DATA/*.log):
  REST API   http://127.0.0.1:8080/api/v1   (OpenAPI: /api/v1/openapi.json)
  the web portal is not built yet; use edgectl or the REST API.

Try next (edgectl is $BIN/edgectl, EOS_SERVER is set in this shell only):
  export EOS_SERVER=http://127.0.0.1:8080 PATH="$BIN:\$PATH"
  edgectl device list
  edgectl deploy com-eos-hello-wasm --site site-1
  edgectl status
  tail -f $DATA/en-*/workloads/*/hello/stdout.log
  edgectl undeploy <DEPLOYMENT-ID>

Press Ctrl-C to stop.
MSG
wait
