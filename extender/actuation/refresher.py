"""Every cluster's live topology, read periodically by the sync leader (one reader for all
replicas, so N extenders do not all poll every Redis).

Seeds: configured per cluster (live.seeds), else discovered from the cluster's pods: their
IPs (from the API, kept in the store) on live.redis_port, tried in order until one answers,
the seed that answered last time first; a round whose tries all fail starts the next round
with the following pods (a lost zone may hold the first few, and the keeper needs a fresh view
exactly then). The IPs also map Redis nodes that announce no hostname to their pods.
"""
from __future__ import annotations

import logging
import threading
from typing import Mapping

from extender.core.settings import Settings
from extender.state.store import RedisStore
from extender.actuation.nodes import fetch
from extender.state.live import store_live

log = logging.getLogger(__name__)


def discovered_seeds(pod_ips: Mapping[str, str], port: int) -> list[str]:
    """Addresses to try, in a stable order (the pods' names), each IP once."""
    seen, seeds = set(), []
    for pod in sorted(pod_ips):
        ip = pod_ips[pod]
        if ip not in seen:
            seen.add(ip)
            seeds.append(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
    return seeds


_last_good: dict[str, str] = {}  # cluster -> the seed that answered last (this process)
_skip: dict[str, int] = {}  # cluster -> discovered seeds to skip after failed rounds


def seed_order(seeds: list[str], last_good: str | None, skip: int) -> list[str]:
    """The last good seed first, then the others from position `skip` on (wrapping round)."""
    rest = [s for s in seeds if s != last_good]
    if rest:
        k = skip % len(rest)
        rest = rest[k:] + rest[:k]
    return ([last_good] if last_good in seeds else []) + rest


def refresh_cluster(store: RedisStore, cluster: str, settings: Settings, max_tries: int = 3) -> str:
    """Read and store one cluster's live topology; returns "" or the last error."""
    pod_ips = store.cluster_pod_ips(cluster)
    ip_map = {ip: pod for pod, ip in pod_ips.items()}
    configured = settings.live.seeds.get(cluster)
    if configured:
        seeds = [configured]
    else:
        discovered = discovered_seeds(pod_ips, settings.live.redis_port)
        seeds = seed_order(discovered, _last_good.get(cluster), _skip.get(cluster, 0))[:max_tries]
    error = "no seed: no configured seed and no pod IP known"
    for seed in seeds:
        topology = fetch(cluster, seed, ip_map)
        store_live(store, topology)
        if not topology.error:
            _last_good[cluster] = seed
            return ""
        error = topology.error
    _last_good.pop(cluster, None)
    _skip[cluster] = _skip.get(cluster, 0) + max_tries
    return error


def refresh_all(store: RedisStore, settings: Settings) -> dict[str, str]:
    return {cluster: refresh_cluster(store, cluster, settings) for cluster in store.clusters()}


def run_refresher(store: RedisStore, settings: Settings, stop: threading.Event) -> None:
    """Until `stop`: refresh every cluster, then wait live.refresh seconds."""
    while not stop.is_set():
        try:
            for cluster, error in refresh_all(store, settings).items():
                if error:
                    log.info("live topology of %s: %s", cluster, error)
        except Exception as exc:  # Redis down, a bad reply: try again next round
            log.warning("live topology refresh failed: %s", exc)
        stop.wait(settings.live.refresh)
