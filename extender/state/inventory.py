"""Read everything a report needs from the store, read-only, in a handful of round trips
(the store's summary, its shard copies, the stored live topologies, the copies' memory
requests). Reservations (a pod's likely node noted at prioritize) are not placements and are
skipped; expired or not, every placed entry counts.
"""
from __future__ import annotations

import time
from typing import Callable

from extender.analysis.placement import Inventory
from extender.core.model import Copy
from extender.state.cache import build_node_table
from extender.state.live import load_lives
from extender.state.store import RedisStore


def read_inventory(store: RedisStore, levels: tuple[str, ...],
                   clock: Callable[[], float] = time.time) -> Inventory:
    """One consistent-enough picture of the state: every cluster's shards and copies, nodes
    with their domains, usage, and the stored live topologies. Raises StoreError."""
    summary = store.summary()
    table = build_node_table(summary.node_generation, summary.nodes, levels)
    stored = store.shard_copies(now_ms=0)  # expired or not
    clusters = sorted(summary.clusters | {cluster for cluster, _ in stored})
    shards: dict[str, dict[str, tuple[Copy, ...]]] = {c: {} for c in clusters}
    for (cluster, shard), entries in stored.items():
        copies = tuple(c for c in entries if not c.reserved)
        if copies:
            shards[cluster][shard] = copies
    live = load_lives(store, clusters)
    pods = sorted({c.pod for cs in shards.values() for copies in cs.values() for c in copies})
    pod_memory = {pod: int(mem or 0) for pod, mem in store.pod_fields(pods, "mem").items()}
    meta = summary.meta
    loaded_at = float(meta["loaded_at"]) if meta.get("loaded_at") else None
    return Inventory(
        levels=tuple(levels), nodes=table.nodes, shards=shards,
        requested_memory=summary.usage_memory, requested_cpu=summary.usage_cpu,
        pod_memory=pod_memory, live=live, loaded_at=loaded_at, read_at=clock())
