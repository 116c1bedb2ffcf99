#!/usr/bin/env bash
# Runs every EOS test: formatting, lints, the whole workspace's test suite (unit, property, Margo
# conformance, process and end-to-end tests), then the README's quick start in smoke mode.
# Needs only what a fresh machine of the project's kind has (Rust toolchain, root for apt-get): it
# installs git when missing, and config/services.sh installs and starts the real services the
# tests use (a Docker engine, Podman, OCI registries on loopback, the test image, the wasm32 C
# toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."
# A clean CI build gains nothing from incremental caches or line tables (no backtrace is printed
# there): both only cost disk, several gigabytes of it across the test binaries.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=false
fi
disk() { df -h . /tmp | awk 'NR > 1 { print "  " $6 ": " $4 " free of " $2 }'; }
echo "test.sh: disk before the build:"; disk
trap 'echo "test.sh: failed; disk now:"; disk' ERR
command -v git >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y git; }
bash config/services.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The oci driver again, against Podman's Docker-compatible API. Podman runs health checks from
# systemd timers, which a machine without systemd lacks, so that one test is Docker's alone.
EOS_TEST_CONTAINER_SOCKET="${EOS_TEST_PODMAN_SOCKET:-/run/podman/podman.sock}" \
  cargo test -p eos-adapter-oci --test engine -- --skip a_failing_health_check_makes_the_container_unhealthy
# The quick start itself, on a debug build and spare ports: deploy, run, undeploy the sample app.
smoke="$(mktemp -d)"
EOS_DATA="$smoke" EOS_PROFILE=dev EOS_HTTP_PORT=18080 EOS_GRPC_PORT=17070 EOS_LO_PORT=17071 \
  EOS_QUICKSTART_SMOKE=1 bash config/quickstart.sh
rm -rf "$smoke"
