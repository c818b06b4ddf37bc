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
  # etcd + kube-apiserver + kube-scheduler for the end-to-end tests, both versions: current
  # (harness/kube/go.mod, built from Go modules, ~10 min cold) and 1.20.2 (Debian's
  # source package with Debian's Go 1.19, ~5 min), each cached under
  # ${REDIS_EXTENDER_KUBE_CACHE_ROOT:-/var/cache/redis-extender}/kube-v<version>. The tests find
  # them by version (--kube-version / REDIS_EXTENDER_KUBE_VERSION); $KUBE_BIN_DIR, if the user
  # set it, wins for every version (then only one run: see scripts/test).
  local version
  for version in current 1.20.2; do
    bash "$ROOT/scripts/kube-binaries.sh" "$version" >/dev/null
  done
}

ensure_tools() {
  # helm (helm.sh/helm/v4) and promtool (github.com/prometheus/prometheus), built from their
  # Go modules (harness/tools/NAME/go.mod), and the published CRDs of the Prometheus operator
  # and cert-manager the chart tests install, each cached under
  # ${REDIS_EXTENDER_KUBE_CACHE_ROOT:-/var/cache/redis-extender}/tools/NAME-vVERSION.
  # The tests find them through the same script (tests/support/tools.py).
  local tool
  for tool in helm promtool prometheus-operator-crds cert-manager-crds; do
    bash "$ROOT/scripts/tool-binaries.sh" "$tool" >/dev/null
  done
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
