# Sourced by scripts/run and scripts/test: installs what the project needs on a fresh
# Debian/Ubuntu machine (redis-server from apt, Python dependencies into .venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REDIS_EXTENDER_VENV:-$ROOT/.venv}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  # apt-get update once per run, only when something is missing
  if [ -z "${_APT_UPDATED:-}" ]; then as_root apt-get update -q >&2; _APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
}

ensure_kube() {
  # etcd + kube-apiserver + kube-scheduler v1.20.2 for the end-to-end tests: $KUBE_BIN_DIR if
  # it holds them, else the cache, else built once from Debian's source package (~5 min).
  local dir
  dir="$(bash "$ROOT/scripts/kube-binaries.sh" | tail -n 1)"
  export KUBE_BIN_DIR="$dir"
}

ensure_chromium() {
  # the report page is rendered in headless Chromium by its test
  command -v chromium >/dev/null 2>&1 || apt_install chromium
}

ensure_venv() {
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
  fi
  # reinstall only when pyproject.toml changed since the last install
  local stamp="$VENV/.installed-$extras"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]" >&2
    touch "$stamp"
  fi
}
