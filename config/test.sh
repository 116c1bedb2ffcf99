#!/usr/bin/env bash
# Runs every EOS test: formatting, lints, and the whole workspace's test suite.
# Needs only what a fresh machine of the project's kind has (Rust toolchain, git); it installs
# nothing else yet because no test needs an outside service so far.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v git >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y git; }
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
