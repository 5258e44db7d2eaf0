#!/usr/bin/env bash
# Makes VENV (default .venv) hold exactly the packages pinned in REQUIREMENTS (default
# training/requirements.txt): creates it when missing, installs when a pin is missing or differs,
# and otherwise returns in about a second without touching the network.
# With BASE (a venv ensured before), VENV also sees BASE's packages (a .pth file, after its own)
# and REQUIREMENTS, which then pins everything VENV needs beyond BASE, is installed with --no-deps.
# Usage: bash training/ensure_venv.sh [VENV] [REQUIREMENTS] [BASE]   (from the repo root)
set -euo pipefail
VENV=${1:-.venv}
REQUIREMENTS=${2:-training/requirements.txt}
BASE=${3:-}
log() { echo "[python setup] $*"; }

# Exit 0 when every `name==version` line of the requirements is installed at that version.
pins_ok() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$REQUIREMENTS" <<'PY'
import sys, importlib.metadata as md
for raw in open(sys.argv[1]):
    line = raw.split('#')[0].strip()
    if not line:
        continue
    name, _, want = line.partition('==')
    try:
        have = md.version(name.strip())
    except md.PackageNotFoundError:
        sys.exit(f"{name.strip()} is not installed")
    if have.split('+')[0] != want.strip():  # torch reports local builds as 2.15.0+cu132
        sys.exit(f"{name.strip()} is {have}, {want.strip()} is pinned")
PY
}

# VENV sees BASE's site-packages after its own.
link_base() {
  local site base_site
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  base_site=$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  realpath "$base_site" > "$site/base-venv.pth"
}

if [ -n "$BASE" ] && [ -x "$VENV/bin/python" ]; then link_base; fi
if pins_ok 2>/dev/null; then
  log "$VENV has the packages pinned in $REQUIREMENTS"
  exit 0
fi
t0=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
  log "python3 -m venv $VENV"
  python3 -m venv "$VENV"
fi
NO_DEPS=()
if [ -n "$BASE" ]; then
  link_base
  NO_DEPS=(--no-deps)
fi
log "pip install -r $REQUIREMENTS into $VENV (torch is large: minutes on a cold cache)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${NO_DEPS[@]}" -r "$REQUIREMENTS"
pins_ok
log "done in $((SECONDS - t0))s"
