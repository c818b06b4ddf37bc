"""The settings' table: every option declared once (section, name, environment variable,
parser, help). core/settings.py builds and validates Settings from it, and the README's
configuration table is generated from it (`redis-extender config --markdown`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

PRESETS = ("default", "kubedb", "valkey", "ot", "spotahome", "bitnami")


# --- parsing of single values -------------------------------------------------------------

def _str_list(text: Any) -> tuple[str, ...]:
    items = text if isinstance(text, list) else str(text).split(",")
    return tuple(str(i).strip() for i in items if str(i).strip())


def _float_list(text: Any) -> tuple[float, ...]:
    return tuple(float(i) for i in _str_list(text))


def _shard_map(text: Any) -> dict[str, int]:
    if isinstance(text, dict):
        return {str(k): int(v) for k, v in text.items()}
    result: dict[str, int] = {}
    for item in _str_list(text):
        name, sep, count = item.partition("=")
        if not sep:
            raise ValueError(f"expected cluster=count, got {item!r}")
        result[name.strip()] = int(count)
    return result


def _bool(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _seed_map(text: Any) -> dict[str, str]:
    if isinstance(text, dict):
        return {str(k): str(v) for k, v in text.items()}
    result: dict[str, str] = {}
    for item in _str_list(text):
        name, sep, seed = item.partition("=")
        if not sep or "/" not in name or not seed:
            raise ValueError(f"expected ns/name=HOST:PORT or ns/name=sentinel://HOST:PORT/MASTER, got {item!r}")
        result[name.strip()] = seed.strip()
    return result


def _optional_str(text: Any) -> str | None:
    return str(text) if str(text) else None


@dataclass(frozen=True)
class Option:
    section: str
    name: str
    env: str
    parse: Callable[[Any], Any]
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("store", "redis_url", "REDIS_URL", str,
           "Redis holding the shared state: redis://, rediss://, unix://, or "
           "redis+sentinel://host:26379[,host2:26379]/mymaster[/db] (Sentinel-managed)."),
    Option("store", "key_prefix", "REDIS_EXTENDER_KEY_PREFIX", str,
           "Prefix of every key: several installations can share one Redis under different prefixes."),
    Option("store", "socket_timeout", "REDIS_EXTENDER_REDIS_TIMEOUT", float,
           "Seconds a decision's Redis call may take before Redis counts as down: a wedged Redis costs "
           "one such wait, then the circuit breaker (answers stay well under 100 ms). Big reads "
           "(node table, usage) run in the background with bulk_timeout."),
    Option("store", "bulk_timeout", "REDIS_EXTENDER_BULK_TIMEOUT", float,
           "Seconds a call over thousands of fields may take: the background reloads of the node table "
           "and usage, the reports' reads of the whole placement, the syncer's writes (never a "
           "decision's wait)."),
    Option("store", "cache_ttl", "REDIS_EXTENDER_CACHE_TTL", float,
           "Seconds the nodes' usage is served from process memory (then reloaded in the background)."),
    Option("store", "node_cache_ttl", "REDIS_EXTENDER_NODE_CACHE_TTL", float,
           "Seconds between checks of the node table's generation."),
    Option("store", "shard_cache_ttl", "REDIS_EXTENDER_SHARD_CACHE_TTL", float,
           "Seconds a shard's copies are served from memory; 0 reads them fresh (siblings seen at once)."),
    Option("store", "reservation_ttl", "REDIS_EXTENDER_RESERVATION_TTL", float,
           "Seconds a pod's likely node (noted at prioritize) counts as a copy until its bind arrives; 0 disables."),
    Option("store", "max_staleness", "REDIS_EXTENDER_MAX_STALENESS", float,
           "While Redis is down, decide from state at most this old (seconds)."),
    Option("store", "retry_after", "REDIS_EXTENDER_RETRY_AFTER", float,
           "After a Redis failure, seconds before this process tries Redis again."),
    Option("store", "on_unavailable", "REDIS_EXTENDER_ON_UNAVAILABLE", str,
           "When state is missing or too old: fail-closed (filter answers Error) or fail-open (accept all)."),
    Option("identity", "preset", "REDIS_EXTENDER_PRESET", str,
           "Label convention: " + ", ".join(PRESETS) + "."),
    Option("identity", "cluster_label", "REDIS_EXTENDER_CLUSTER_LABEL", _optional_str, "Pod label naming the cluster (overrides the preset)."),
    Option("identity", "shard_label", "REDIS_EXTENDER_SHARD_LABEL", _optional_str, "Pod label naming the shard (overrides the preset)."),
    Option("identity", "role_label", "REDIS_EXTENDER_ROLE_LABEL", _optional_str, "Pod label naming the role (overrides the preset)."),
    Option("identity", "shards_label", "REDIS_EXTENDER_SHARDS_LABEL", str,
           "Pod label declaring a cluster's shard count (enables the StatefulSet ordinal rule)."),
    Option("identity", "cluster_shards", "REDIS_EXTENDER_CLUSTER_SHARDS", _shard_map,
           "Shard counts by cluster, 'ns/name=3,other=6' (a bare name matches any namespace)."),
    Option("domains", "levels", "REDIS_EXTENDER_LEVELS", _str_list,
           "Failure-domain node labels, smallest first (comma-separated)."),
    Option("score", "shard", "REDIS_EXTENDER_WEIGHT_SHARD", float, "Weight of spreading the pod's shard."),
    Option("score", "cluster", "REDIS_EXTENDER_WEIGHT_CLUSTER", float, "Weight of spreading the pod's cluster."),
    Option("score", "masters", "REDIS_EXTENDER_WEIGHT_MASTERS", float, "Weight of balancing masters (master pods only)."),
    Option("score", "headroom", "REDIS_EXTENDER_WEIGHT_HEADROOM", float, "Weight of free memory/CPU after placement."),
    Option("score", "level_weights", "REDIS_EXTENDER_LEVEL_WEIGHTS", _float_list,
           "Weight per level, same order as levels (default 1,2,4,...)."),
    Option("service", "bind", "REDIS_EXTENDER_BIND", str, "HOST:PORT to serve on."),
    Option("service", "workers", "REDIS_EXTENDER_WORKERS", int, "gunicorn worker processes."),
    Option("service", "threads", "REDIS_EXTENDER_THREADS", int, "Threads per worker (gthread: keep-alive connections)."),
    Option("service", "handshake_timeout", "REDIS_EXTENDER_HANDSHAKE_TIMEOUT", float,
           "Seconds a TLS handshake may take (done by the worker's poller, never a thread); slower ones are closed."),
    Option("service", "connections_per_address", "REDIS_EXTENDER_CONNECTIONS_PER_ADDRESS", int,
           "Open connections one client address may hold per worker; more are closed at accept."),
    Option("service", "max_body_bytes", "REDIS_EXTENDER_MAX_BODY", int, "Largest request body; larger gets 413."),
    Option("service", "certfile", "REDIS_EXTENDER_CERTFILE", _optional_str, "TLS certificate (serve HTTPS)."),
    Option("service", "keyfile", "REDIS_EXTENDER_KEYFILE", _optional_str, "TLS private key."),
    Option("service", "client_ca_file", "REDIS_EXTENDER_CLIENT_CA_FILE", _optional_str,
           "CA bundle: require and verify client certificates on the TLS listener (mTLS; needs certfile)."),
    Option("service", "public_bind", "REDIS_EXTENDER_PUBLIC_BIND", _optional_str,
           "HOST:PORT of a plain-HTTP listener for /healthz, /readyz, /metrics and reports only (the verbs "
           "are refused there); unset: none."),
    Option("service", "max_worker_rss", "REDIS_EXTENDER_MAX_WORKER_RSS", int,
           "MiB: a worker whose RSS is above this after a request is replaced by a fresh one (0: never)."),
    Option("service", "retire_after", "REDIS_EXTENDER_RETIRE_AFTER", float,
           "Seconds a worker lives at least before service.max_worker_rss may replace it (a steady state "
           "above the limit recycles a worker at most this often)."),
    Option("service", "log_level", "REDIS_EXTENDER_LOG_LEVEL", str, "debug, info, warning or error."),
    Option("service", "unresolvable_in_failed", "REDIS_EXTENDER_UNRESOLVABLE_IN_FAILED", _bool,
           "Also list unresolvable nodes in FailedNodes (needed for reasons in kube-scheduler <= 1.20 "
           "events; false halves large replies on 1.21+)."),
    Option("live", "refresh", "REDIS_EXTENDER_LIVE_REFRESH", float,
           "Seconds between reads of every cluster's live topology by the sync leader; 0 disables."),
    Option("live", "seeds", "REDIS_EXTENDER_LIVE_SEEDS", _seed_map,
           "Where to read live topology: 'ns/name=host:port,ns/other=sentinel://host:26379/mymaster'; "
           "clusters not named are found through their pods' IPs."),
    Option("live", "redis_port", "REDIS_EXTENDER_REDIS_PORT", int, "Redis port of discovered pods."),
    Option("keeper", "mode", "REDIS_EXTENDER_KEEPER", str,
           "The keeper, run by the sync leader: off, advise (Events and metrics about drift, no action) or "
           "act (CLUSTER FAILOVER to rebalance masters, evictions to move misplaced replicas)."),
    Option("keeper", "settle", "REDIS_EXTENDER_KEEPER_SETTLE", float,
           "Seconds a drift must last before the keeper acts (Redis finishes its own failover first; a "
           "domain flapping for less triggers nothing)."),
    Option("keeper", "cooldown", "REDIS_EXTENDER_KEEPER_COOLDOWN", float,
           "Seconds between two keeper steps on one cluster (one step per cluster at a time always)."),
    Option("keeper", "rate", "REDIS_EXTENDER_KEEPER_RATE", int, "Keeper steps per minute over all clusters."),
    Option("keeper", "max_lag", "REDIS_EXTENDER_KEEPER_MAX_LAG", int,
           "Bytes a replica may trail its master and still be promoted or count as in sync."),
    Option("keeper", "interval", "REDIS_EXTENDER_KEEPER_INTERVAL", float, "Seconds between the keeper's rounds."),
    Option("keeper", "step_timeout", "REDIS_EXTENDER_KEEPER_STEP_TIMEOUT", float,
           "Seconds a failover has to show in the live topology before the keeper stops and reports."),
    Option("keeper", "evict_timeout", "REDIS_EXTENDER_KEEPER_EVICT_TIMEOUT", float,
           "Seconds an evicted replica has to be back in sync before the keeper stops and reports."),
    Option("keeper", "delete_pvc", "REDIS_EXTENDER_KEEPER_DELETE_PVC", _bool,
           "Opt-in: a replica whose PVC is bound to a zonal volume is evicted with its PVC deleted (it "
           "resyncs from its master in full); otherwise it is reported as blocked by volume topology."),
    Option("kube", "kubeconfig", "REDIS_EXTENDER_KUBECONFIG", _optional_str,
           "kubeconfig of the cluster to sync from and bind in (live mode)."),
    Option("kube", "in_cluster", "REDIS_EXTENDER_IN_CLUSTER", _bool,
           "Use the pod's service account (live mode inside the cluster)."),
    Option("kube", "run_sync", "REDIS_EXTENDER_RUN_SYNC", _bool,
           "In live mode, `serve` also runs the leader-elected syncer as a child process."),
    Option("kube", "lock_ttl", "REDIS_EXTENDER_LOCK_TTL", float,
           "Seconds before a dead syncer's leader lock expires and another replica takes over."),
    Option("kube", "scheduler_names", "REDIS_EXTENDER_SCHEDULER_NAMES", _str_list,
           "Live mode: /bind refuses a pod whose spec.schedulerName is not one of these "
           "(comma-separated; empty: any scheduler). The pod must exist with that UID, unbound."),
)
