#!/bin/sh
# Start one container of a sentinel-mode cache pod: `start.sh redis` or `start.sh sentinel`.
# The master is whatever the Sentinels say; with no Sentinel answering (a fresh install),
# ordinal 0 is the master and the others replicate it. A restarted master comes back empty
# (the cache keeps no snapshot), so it never rejoins as master while the Sentinels still
# name it: it waits for their failover and then replicates the new master, instead of
# making the replicas copy its empty data set.
# Outside a pod (tests/integration/test_chart_sentinel.py): PEERS (the pods' addresses, in
# ordinal order), SELF (this pod's), REDIS_CONF, SENTINEL_DIR and SENTINEL_BIND override the
# defaults.
set -eu
peer() { if [ -n "${PEERS:-}" ]; then echo "$PEERS" | cut -d' ' -f"$(($1 + 1))"; else echo "$SET_NAME-$1.$HEADLESS"; fi; }
self="${SELF:-$POD_NAME.$HEADLESS}"
first=$(peer 0)

ask_sentinels() {  # prints "host port" of the master per the first Sentinel that knows it
  i=0
  while [ "$i" -lt "$REPLICAS" ]; do
    out=$(timeout 3 redis-cli -h "$(peer "$i")" -p 26379 --raw \
      sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null || true)
    host=$(printf '%s\n' "$out" | sed -n 1p)
    port=$(printf '%s\n' "$out" | sed -n 2p)
    case "$port" in
      ''|*[!0-9]*) ;;
      *) echo "$host $port"; return 0 ;;
    esac
    i=$((i + 1))
  done
  return 1
}

current_master() {  # "host port"; waits out a failover away from this pod (bounded)
  waited=0
  while master=$(ask_sentinels); do
    if [ "${master% *}" != "$self" ] || [ "$1" = sentinel ]; then echo "$master"; return 0; fi
    [ "$waited" -ge "$FAILOVER_WAIT" ] && { echo "$master"; return 0; }
    echo "the Sentinels still name this pod the master: waiting for their failover" >&2
    sleep 2; waited=$((waited + 2))
  done
  echo "$first 6379"
}

wait_resolvable() {  # Sentinel resolves the master's name at start: wait for its DNS record
  n=0
  until getent ahosts "$1" >/dev/null 2>&1; do
    n=$((n + 1)); [ "$n" -gt 60 ] && return 0; sleep 1
  done
}

case "$1" in
  redis)
    set -- redis-server "${REDIS_CONF:-/etc/redis/redis.conf}" --replica-announce-ip "$self"
    master=$(current_master redis)
    if [ "${master% *}" != "$self" ]; then
      set -- "$@" --replicaof "${master% *}" "${master#* }"
    fi
    exec "$@" ;;
  sentinel)
    master=$(current_master sentinel)
    wait_resolvable "${master% *}"
    dir="${SENTINEL_DIR:-/sentinel}"
    conf="$dir/sentinel.conf"   # rewritten by Sentinel: on a writable emptyDir
    {
      echo "port 26379"
      [ -n "${SENTINEL_BIND:-}" ] && echo "bind $SENTINEL_BIND"
      echo "dir $dir"
      echo "sentinel resolve-hostnames yes"
      echo "sentinel announce-hostnames yes"
      echo "sentinel announce-ip $self"
      echo "sentinel monitor $MASTER_NAME ${master% *} ${master#* } $QUORUM"
      echo "sentinel down-after-milliseconds $MASTER_NAME $DOWN_AFTER_MS"
      echo "sentinel failover-timeout $MASTER_NAME $FAILOVER_TIMEOUT_MS"
      echo "sentinel parallel-syncs $MASTER_NAME 1"
    } > "$conf"
    exec redis-server "$conf" --sentinel ;;
  *) echo "usage: $0 redis|sentinel" >&2; exit 2 ;;
esac
