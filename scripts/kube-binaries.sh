#!/usr/bin/env bash
# Ensure etcd, kube-apiserver and kube-scheduler (and, for current, kube-controller-manager) of
# one Kubernetes version exist; print the directory holding them.
#
#   scripts/kube-binaries.sh [current|1.20.2]      (default: current)
#
# current: the release required in harness/kube/go.mod (v1.37.2), built from Go modules
#   with the machine's Go (>= the go.mod `go` line); go.sum pins every module's checksum.
#   The Go module and build caches live under the cache root, so a rebuild is cheap. Also
#   kube-controller-manager (development only: the keeper's e2e tests run its StatefulSet,
#   disruption and garbage-collector controllers); a cache without it is rebuilt.
# 1.20.2: the compatibility version, built from Debian's `kubernetes` source package with
#   Debian's Go 1.19 (golang-go), pinned first on PATH for that build.
#
# The last line of stdout is the directory; all progress goes to stderr.
# Order of preference:
#   1. $KUBE_BIN_DIR, if it holds kube-apiserver + kube-scheduler (etcd there or on PATH;
#      kube-controller-manager there is used when present, the tests needing it fail without);
#   2. the cache dir $REDIS_EXTENDER_KUBE_CACHE, else
#      ${REDIS_EXTENDER_KUBE_CACHE_ROOT:-/var/cache/redis-extender}/kube-v<version>;
#   3. a build (under a lock; published atomically), whose result is stored in the cache dir.
# No registry ships kube-apiserver/kube-scheduler binaries, hence the source build. Root is
# needed only for the apt steps and for writing the default cache root. etcd is Debian's
# etcd-server (3.4), which both versions accept.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KUBE_MODULE=$ROOT/harness/kube
# The current version is the one go.mod requires: one place names it.
current_version() {
    sed -n 's#^\(require \)\{0,1\}[[:space:]]*k8s.io/kubernetes v\([0-9.]*\)$#\2#p' "$KUBE_MODULE/go.mod"
}

case ${1:-current} in
    current) KUBE_VERSION=$(current_version); KIND=modules ;;
    1.20.2|v1.20.2) KUBE_VERSION=1.20.2; KIND=debian ;;
    *) printf 'usage: %s [current|1.20.2]\n' "$0" >&2; exit 2 ;;
esac
[[ -n $KUBE_VERSION ]] || { echo "no k8s.io/kubernetes version in $KUBE_MODULE/go.mod" >&2; exit 1; }
CACHE_ROOT=$(realpath -m "${REDIS_EXTENDER_KUBE_CACHE_ROOT:-/var/cache/redis-extender}")
CACHE_DIR=${REDIS_EXTENDER_KUBE_CACHE:-$CACHE_ROOT/kube-v${KUBE_VERSION}}
CACHE_DIR=$(realpath -m "$CACHE_DIR")  # absolute: the build step changes directory

# Keep stdout clean for the result: everything else goes to stderr.
exec 3>&1 1>&2

log() { printf '[kube-binaries] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
result() { printf '%s\n' "$1" >&3; exit 0; }

# The binaries a version's cache must hold: current adds kube-controller-manager (v1.20.2's
# Debian build does not have it; no test needs it there).
case $KIND in
    modules) KUBE_TOOLS=(kube-apiserver kube-scheduler kube-controller-manager) ;;
    debian) KUBE_TOOLS=(kube-apiserver kube-scheduler) ;;
esac
has_tools() {  # $1 = dir, then the names
    local dir=$1 tool; shift
    for tool in "$@"; do [[ -x $dir/$tool ]] || return 1; done
}
has_kube() { has_tools "$1" "${KUBE_TOOLS[@]}"; }

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo -n "$@"
    else die "need root for: $*"; fi
}

apt_install() {
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

apt_updated=0
apt_update() {
    if [[ $apt_updated -eq 0 ]]; then
        log "apt-get update"
        as_root apt-get update -q
        apt_updated=1
    fi
}

ensure_etcd() {
    command -v etcd >/dev/null && return 0
    log "etcd not found; installing etcd-server"
    apt_install etcd-server || { apt_update; apt_install etcd-server; }
    command -v etcd >/dev/null || die "etcd still missing after installing etcd-server"
}

# Publish atomically: a half-copied cache dir must never look complete.
publish() {
    local staging
    staging=$(mktemp -d "$CACHE_DIR.new.XXXXXX")
    cp "$@" "$staging/"
    chmod 755 "$staging" "$staging"/kube-*
    rm -rf "$CACHE_DIR"
    mv "$staging" "$CACHE_DIR"
}

go_version_ok() {  # $1 = go binary, $2 = minimum "1.N[.M]"
    local have
    have=$("$1" env GOVERSION 2>/dev/null) || return 1
    have=${have#go}
    [[ $(printf '%s\n%s\n' "$2" "$have" | sort -V | head -n 1) == "$2" ]]
}

build_modules() {
    local want go ldflags
    want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$KUBE_MODULE/go.mod")
    go=$(command -v go || true)
    [[ -z $go ]] && [[ -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go
    [[ -n $go ]] && go_version_ok "$go" "$want" \
        || die "building v$KUBE_VERSION needs Go >= $want first on PATH (have: ${go:-none}${go:+ $("$go" env GOVERSION)})"
    log "building ${KUBE_TOOLS[*]} v$KUBE_VERSION from Go modules with $("$go" env GOVERSION)"
    local minor=${KUBE_VERSION#*.}; minor=${minor%%.*}
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    BUILD_OUT=$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")
    trap 'rm -rf "$BUILD_OUT"' EXIT
    # Module + build caches under the cache root: checksum-verified against go.sum
    # (-mod=readonly: go.mod/go.sum are never rewritten), reused by the next build. No VCS
    # stamp: the binaries depend on go.mod/go.sum and the mains, not on this repo's commit.
    (cd "$KUBE_MODULE" && env CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" \
        GOMODCACHE="$CACHE_ROOT/go/mod" GOCACHE="$CACHE_ROOT/go/build" \
        "$go" build -trimpath -ldflags "$ldflags" -o "$BUILD_OUT/" "${KUBE_TOOLS[@]/#/./cmd/}")
    publish "${KUBE_TOOLS[@]/#/$BUILD_OUT/}"
    rm -rf "$BUILD_OUT"
    trap - EXIT
}

build_debian() {
    start=$SECONDS
    scratch=$(mktemp -d /var/tmp/redis-extender-kube-build.XXXXXX)
    trap 'rm -rf "$scratch"' EXIT
    log "building kube-apiserver + kube-scheduler v$KUBE_VERSION in $scratch"

    # deb-src entries derived from the machine's own sources, so no mirror host is hard-coded.
    if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
            sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
                | as_root tee /etc/apt/sources.list.d/debian-src.sources >/dev/null
        elif [[ -f /etc/apt/sources.list ]]; then
            sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
                | as_root tee /etc/apt/sources.list.d/debian-src.list >/dev/null
        else
            die "no Debian apt sources found to derive deb-src entries from"
        fi
        apt_updated=0
    fi
    apt_update
    apt_install golang-go rsync make etcd-server \
        golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev

    cd "$scratch"
    apt-get source --download-only kubernetes
    origs=(kubernetes_*.orig.tar.*)
    [[ -f ${origs[0]} ]] || die "apt-get source gave no kubernetes orig tarball"
    orig=${origs[0]}
    log "unpacking $orig"
    tar xf "$orig"
    K=kubernetes-$KUBE_VERSION
    [[ -d $K ]] || die "expected $K/ in $orig (Debian's kubernetes source is not v$KUBE_VERSION?)"

    # Go >= 1.18 crashes the vendored reflect2 1.0.1 / json-iterator 1.1.10 at run time
    # (fault in reflect2.(*UnsafeMapType).UnsafeIterate): swap in Debian's 1.0.2 / 1.1.12.
    for p in modern-go/reflect2 json-iterator/go; do
        s=/usr/share/gocode/src/github.com/$p
        d=$K/vendor/github.com/$p
        find "$d" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
        find "$s" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
            -exec cp {} "$d/" \;
    done
    sed -i 's#modern-go/reflect2 v1.0.1#modern-go/reflect2 v1.0.2#g; s#json-iterator/go v1.1.10#json-iterator/go v1.1.12#g' \
        "$K/go.mod" "$K/vendor/modules.txt"
    printf "KUBE_GIT_VERSION='v%s'\nKUBE_GIT_MAJOR='1'\nKUBE_GIT_MINOR='20'\nKUBE_GIT_TREE_STATE='clean'\n" \
        "$KUBE_VERSION" >version.env

    log "make (takes several minutes)"
    # Go caches live in the scratch dir so nothing is left behind; GOPROXY=off fails fast
    # instead of hanging if anything outside vendor/ were needed.
    # Debian's Go 1.19 pinned first on PATH: the machine's newer Go may come first otherwise
    # and is not known to build this tree.
    local gobin=/usr/lib/go-1.19/bin
    [[ -x $gobin/go ]] || die "Debian's Go 1.19 ($gobin/go) missing after installing golang-go"
    (cd "$K" && env PATH="$gobin:$PATH" GOTOOLCHAIN=local KUBE_GIT_VERSION_FILE="$scratch/version.env" CGO_ENABLED=0 \
        GOCACHE="$scratch/gocache" GOPATH="$scratch/gopath" GOPROXY=off GOFLAGS=-mod=vendor \
        make WHAT="cmd/kube-apiserver cmd/kube-scheduler")

    publish "$K/_output/bin/kube-apiserver" "$K/_output/bin/kube-scheduler"
    cd /
    rm -rf "$scratch"
    trap - EXIT
}

# 1. An explicit directory (any version) wins.
if [[ -n ${KUBE_BIN_DIR:-} ]]; then
    if has_tools "$KUBE_BIN_DIR" kube-apiserver kube-scheduler; then
        [[ -x $KUBE_BIN_DIR/etcd ]] || ensure_etcd
        result "$(cd "$KUBE_BIN_DIR" && pwd)"
    fi
    log "KUBE_BIN_DIR=$KUBE_BIN_DIR lacks kube-apiserver/kube-scheduler; using the cache"
fi

cache_ready() { has_kube "$CACHE_DIR" && [[ -x $CACHE_DIR/etcd ]]; }

# 2. The cache, checked without the lock first so the common case is instant.
if cache_ready; then
    result "$CACHE_DIR"
fi

# 3. Build, under a lock so that concurrent runs wait for one build instead of racing.
mkdir -p "$(dirname "$CACHE_DIR")"
exec 9>"$CACHE_DIR.lock"
log "waiting for lock $CACHE_DIR.lock"
flock 9
if cache_ready; then
    result "$CACHE_DIR"
fi

ensure_etcd

if ! has_kube "$CACHE_DIR"; then
    start=$SECONDS
    "build_$KIND"
    log "built v$KUBE_VERSION in $((SECONDS - start)) s"
fi

ln -sfn "$(command -v etcd)" "$CACHE_DIR/etcd"
cache_ready || die "cache dir $CACHE_DIR incomplete after build"
result "$CACHE_DIR"
