#!/usr/bin/env bash
# The VS Code tests, run by `npm test` (after `npm run build`) from the repo root:
#   1. make sure code-server + chromium are installed (test/vscode/setup.sh; fast when cached);
#   2. bundle the suite (dist/test/vscode/suite/*.js);
#   3. package the extension (.vsix via `npm run package`; folder fallback if there is no package script);
#   4. run the suite inside code-server, then the browser ghost-text check (runCodeServer.mjs).
# Prints one line per test and `N passed, N failed`; exits non-zero on any failure or timeout.
# Environment: DEER_VSCODE_TIMEOUT_S (whole run, default 2400), DEER_VSCODE_SUITE_TIMEOUT_S,
# DEER_VSCODE_GHOST_TIMEOUT_S, DEER_VSIX (use this .vsix instead of packaging), DEER_VSCODE_KEEP_TMP.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
log() { echo "[vscode run] $*"; }
STAGE=""
export DEER_VSCODE_PIDFILE=$(mktemp /tmp/deer-code-server-pid.XXXXXX)
cleanup() {
  # Last resort if runCodeServer.mjs was killed before it could stop code-server's process group.
  if [ -s "$DEER_VSCODE_PIDFILE" ]; then kill -KILL -- "-$(cat "$DEER_VSCODE_PIDFILE")" 2>/dev/null || true; fi
  rm -f "$DEER_VSCODE_PIDFILE"
  [ -z "$STAGE" ] || rm -rf "$STAGE"
}
trap cleanup EXIT

bash test/vscode/setup.sh || { log "ERROR: test/vscode/setup.sh failed"; echo "0 passed, 1 failed"; exit 1; }
TOOLS="$ROOT/.cache/vscode-tools"
NODE_PKG=$(cat "$TOOLS/node24.path")
export NODE24="$NODE_PKG/bin/node"
export CODE_SERVER_ENTRY="$TOOLS/code-server/node_modules/code-server/out/node/entry.js"
export HARNESS_DIR="$ROOT/test/vscode/harness"
export SUITE="$ROOT/dist/test/vscode/suite/index.js"
export ARTIFACTS="$ROOT/test/artifacts"
mkdir -p "$ARTIFACTS"

log "bundling the suite"
node_modules/.bin/esbuild test/vscode/suite/*.ts --bundle --platform=node --target=node20 --format=cjs \
  --sourcemap --external:vscode --external:onnxruntime-node --outdir=dist/test/vscode/suite --log-level=error

if [ -n "${DEER_VSIX:-}" ]; then
  log "using DEER_VSIX=$DEER_VSIX"
elif node -e 'process.exit(require("./package.json").scripts?.package ? 0 : 1)'; then
  log "npm run package"
  stamp=$(mktemp); sleep 1
  if ! npm run package --silent; then log "ERROR: npm run package failed"; echo "0 passed, 1 failed"; exit 1; fi
  # the newest .vsix written by the package script (repo root or dist/)
  DEER_VSIX=$(find "$ROOT" "$ROOT/dist" -maxdepth 1 -name '*.vsix' -newer "$stamp" -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
  rm -f "$stamp"
  [ -n "$DEER_VSIX" ] || { log "ERROR: npm run package wrote no .vsix"; echo "0 passed, 1 failed"; exit 1; }
  log "packaged $DEER_VSIX ($(du -h "$DEER_VSIX" | cut -f1))"
else
  # No package script yet: install a folder with what a .vsix would hold.
  [ -f dist/extension.js ] || { log "ERROR: dist/extension.js missing (run npm run build)"; echo "0 passed, 1 failed"; exit 1; }
  STAGE=$(mktemp -d /tmp/deer-ext-XXXXXX)
  cp package.json "$STAGE/"
  for p in dist models media README.md LICENSE; do [ -e "$p" ] && ln -s "$ROOT/$p" "$STAGE/$p"; done
  mkdir -p "$STAGE/node_modules"
  for dep in $(node -p 'Object.keys(require("./package.json").dependencies||{}).join(" ")'); do
    mkdir -p "$STAGE/node_modules/$(dirname "$dep")"; ln -s "$ROOT/node_modules/$dep" "$STAGE/node_modules/$dep"
  done
  export DEER_EXT_DIR="$STAGE"
  log "no package script: installing the extension folder (symlinks into the repo)"
fi
export DEER_VSIX="${DEER_VSIX:-}"

# runCodeServer.mjs stops code-server's process group and chromium itself; the outer timeout
# is a last resort (TERM, then KILL 30 s later).
set +e
timeout --kill-after=30 "${DEER_VSCODE_TIMEOUT_S:-2400}" node test/vscode/runCodeServer.mjs
rc=$?
set -e
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then log "ERROR: timed out"; echo "0 passed, 1 failed"; fi
exit $rc
