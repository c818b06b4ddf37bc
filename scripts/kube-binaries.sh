#!/usr/bin/env bash
# Ensure etcd, kube-apiserver and kube-scheduler (v1.20.2) exist; print the directory holding them.
#
# The last line of stdout is the directory; all progress goes to stderr.
# Order of preference:
#   1. $KUBE_BIN_DIR, if it holds kube-apiserver + kube-scheduler (etcd there or on PATH);
#   2. the cache dir ${REDIS_EXTENDER_KUBE_CACHE:-/var/cache/redis-extender/kube-v1.20.2};
#   3. a build from Debian's `kubernetes` source package with Debian's Go (~6 min on 2 cores,
#      ~2 GB scratch under /var/tmp), whose result is stored in the cache dir.
# No registry ships kube-apiserver/kube-scheduler binaries, hence the source build. Root is
# needed only for the apt steps and for writing the default cache dir.
set -euo pipefail

readonly KUBE_VERSION=1.20.2
CACHE_DIR=${REDIS_EXTENDER_KUBE_CACHE:-/var/cache/redis-extender/kube-v${KUBE_VERSION}}
CACHE_DIR=$(realpath -m "$CACHE_DIR")  # absolute: the build step changes directory

# Keep stdout clean for the result: everything else goes to stderr.
exec 3>&1 1>&2

log() { printf '[kube-binaries] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
result() { printf '%s\n' "$1" >&3; exit 0; }

has_kube() { [[ -x $1/kube-apiserver && -x $1/kube-scheduler ]]; }

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

# 1. An explicit directory (any version) wins.
if [[ -n ${KUBE_BIN_DIR:-} ]]; then
    if has_kube "$KUBE_BIN_DIR"; then
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
    (cd "$K" && env KUBE_GIT_VERSION_FILE="$scratch/version.env" CGO_ENABLED=0 \
        GOCACHE="$scratch/gocache" GOPATH="$scratch/gopath" GOPROXY=off GOFLAGS=-mod=vendor \
        make WHAT="cmd/kube-apiserver cmd/kube-scheduler")

    # Publish atomically: a half-copied cache dir must never look complete.
    staging=$(mktemp -d "$CACHE_DIR.new.XXXXXX")
    cp "$K/_output/bin/kube-apiserver" "$K/_output/bin/kube-scheduler" "$staging/"
    chmod 755 "$staging" "$staging"/kube-*
    rm -rf "$CACHE_DIR"
    mv "$staging" "$CACHE_DIR"
    cd /
    rm -rf "$scratch"
    trap - EXIT
    log "built in $((SECONDS - start)) s"
fi

ln -sfn "$(command -v etcd)" "$CACHE_DIR/etcd"
cache_ready || die "cache dir $CACHE_DIR incomplete after build"
result "$CACHE_DIR"
