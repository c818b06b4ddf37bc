#!/usr/bin/env bash
# Ensure one development tool exists; print the directory holding it.
#
#   scripts/tool-binaries.sh helm|promtool|prometheus-operator-crds|cert-manager-crds
#
# helm:      built from the helm.sh/helm/v4 Go module (harness/tools/helm/go.mod `tool` line)
# promtool:  built from github.com/prometheus/prometheus (harness/tools/promtool/go.mod)
# prometheus-operator-crds: the published CustomResourceDefinitions
#            (example/prometheus-operator-crd/*.yaml) of the github.com/prometheus-operator/
#            prometheus-operator module (harness/tools/prometheus-operator-crds/go.mod);
#            nothing is built, the YAML files are copied.
# cert-manager-crds: likewise deploy/crds/*.yaml of github.com/cert-manager/cert-manager
#            (harness/tools/cert-manager-crds/go.mod).
# Each is built with the machine's Go (>= the go.mod `go` line); go.sum pins every module's
# checksum (-mod=readonly: go.mod/go.sum are never rewritten). The version is the one go.mod
# requires, so one place names it.
#
# The last line of stdout is the directory; all progress goes to stderr.
# Cache: ${REDIS_EXTENDER_KUBE_CACHE_ROOT:-/var/cache/redis-extender}/tools/NAME-vVERSION,
# checked without the lock first, else built under a lock (concurrent runs wait for one build)
# and published atomically. The Go module and build caches live under the cache root too
# (shared with scripts/kube-binaries.sh), so a rebuild is cheap.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAME=${1:-}
case $NAME in
    helm) MODULE=helm.sh/helm/v4; PKG=helm.sh/helm/v4/cmd/helm ;;
    promtool) MODULE=github.com/prometheus/prometheus; PKG=github.com/prometheus/prometheus/cmd/promtool ;;
    prometheus-operator-crds) MODULE=github.com/prometheus-operator/prometheus-operator; PKG=
        CRDS=example/prometheus-operator-crd ;;
    cert-manager-crds) MODULE=github.com/cert-manager/cert-manager; PKG=; CRDS=deploy/crds ;;
    *) printf 'usage: %s helm|promtool|prometheus-operator-crds|cert-manager-crds\n' "$0" >&2; exit 2 ;;
esac
TOOL_MODULE=$ROOT/harness/tools/$NAME
CACHE_ROOT=$(realpath -m "${REDIS_EXTENDER_KUBE_CACHE_ROOT:-/var/cache/redis-extender}")

exec 3>&1 1>&2
log() { printf '[tool-binaries] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
result() { printf '%s\n' "$1" >&3; exit 0; }

# The version go.mod requires (a `require` block line or a single-line require).
VERSION=$(sed -n "s#^\(require \)\{0,1\}[[:space:]]*${MODULE//./\\.} \(v[^[:space:]]*\).*#\2#p" "$TOOL_MODULE/go.mod" | head -n 1)
[[ -n $VERSION ]] || die "no $MODULE version in $TOOL_MODULE/go.mod"
CACHE_DIR=$CACHE_ROOT/tools/$NAME-$VERSION

ready() {
    if [[ -n $PKG ]]; then [[ -x $CACHE_DIR/$NAME ]]
    else compgen -G "$CACHE_DIR/*.yaml" >/dev/null; fi
}

ready && result "$CACHE_DIR"

go_version_ok() {  # $1 = go binary, $2 = minimum "1.N[.M]"
    local have
    have=$("$1" env GOVERSION 2>/dev/null) || return 1
    have=${have#go}
    [[ $(printf '%s\n%s\n' "$2" "$have" | sort -V | head -n 1) == "$2" ]]
}

mkdir -p "$CACHE_ROOT/tools"
exec 9>"$CACHE_DIR.lock"
log "waiting for lock $CACHE_DIR.lock"
flock 9
ready && result "$CACHE_DIR"

want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$TOOL_MODULE/go.mod")
go=$(command -v go || true)
[[ -z $go ]] && [[ -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go
[[ -n $go ]] && go_version_ok "$go" "$want" \
    || die "building $NAME $VERSION needs Go >= $want first on PATH (have: ${go:-none}${go:+ $("$go" env GOVERSION)})"
gorun() {
    (cd "$TOOL_MODULE" && env CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" \
        GOMODCACHE="$CACHE_ROOT/go/mod" GOCACHE="$CACHE_ROOT/go/build" "$go" "$@")
}

start=$SECONDS
staging=$(mktemp -d "$CACHE_DIR.new.XXXXXX")
trap 'rm -rf "$staging"' EXIT
case $NAME in
    helm)
        log "building helm $VERSION with $("$go" env GOVERSION)"
        gorun build -trimpath -o "$staging/" -ldflags "-s -w \
            -X helm.sh/helm/v4/internal/version.version=$VERSION \
            -X helm.sh/helm/v4/internal/version.metadata= \
            -X helm.sh/helm/v4/internal/version.gitTreeState=clean" "$PKG" ;;
    promtool)
        # v0.3X.Y of the Go module is Prometheus 3.X.Y; the module's VERSION file says which.
        gorun mod download "$MODULE"
        release=$(cat "$(gorun list -m -f '{{.Dir}}' "$MODULE")/VERSION")
        log "building promtool $VERSION (Prometheus $release) with $("$go" env GOVERSION)"
        gorun build -trimpath -tags netgo -o "$staging/" -ldflags "-s -w \
            -X github.com/prometheus/common/version.Version=$release \
            -X github.com/prometheus/common/version.Branch=HEAD" "$PKG" ;;
    *-crds)
        log "downloading $MODULE $VERSION"
        dir=$(gorun mod download -json "$MODULE" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
        [[ -d $dir/$CRDS ]] || die "$MODULE $VERSION has no $CRDS/"
        cp "$dir/$CRDS"/*.yaml "$staging/" ;;
esac
chmod -R a+rX "$staging"
rm -rf "$CACHE_DIR"
mv "$staging" "$CACHE_DIR"
trap - EXIT
ready || die "cache dir $CACHE_DIR incomplete after build"
log "$NAME $VERSION ready in $((SECONDS - start)) s"
result "$CACHE_DIR"
