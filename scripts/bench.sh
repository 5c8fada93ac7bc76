#!/usr/bin/env bash
# The benchmark in one command: release build, then Switchboard against a direct connection.
#   scripts/bench.sh            full run (~2 min), table on stdout, JSON in results/
#   scripts/bench.sh --short    a few seconds; checks every scenario completes with zero errors
# server-everything scenarios run when the peers are installed (this script installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard/target}"
profile=release
if [[ " $* " == *" --short "* && -n "${SWITCHBOARD_BENCH_DEBUG:-}" ]]; then profile=debug; fi
if [[ $profile == release ]]; then
  cargo build --release -p switchboard-server -p switchboard-bench >&2
else
  cargo build -p switchboard-server -p switchboard-bench >&2
fi
eval "$(scripts/install-peers.sh)"
exec "$CARGO_TARGET_DIR/$profile/switchboard-bench" --switchboard "$CARGO_TARGET_DIR/$profile/switchboard" "$@"
