"""Read everything a report needs from the store, read-only, in a handful of round trips.

The keys are the store's (Keys of state/redis_store.py). Round trips: one pipeline for the
cluster-wide hashes (clusters, nodes, usage, meta), a SCAN of the shard hashes (pages of 1000
keys), one pipeline for every shard hash and stored live topology, one for the memory
requests of the copies' pods. Shard entries are read by the store's own parse_copy;
reservations (a pod's likely node noted at prioritize) are not placements and are skipped.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import orjson

from ..model import Copy
from ..reports.placement import Inventory
from ..reports.topology import LiveTopology
from .cache import build_node_table
from .redis_store import Keys, NodeRecord, RedisStore, parse_copy

SCAN_COUNT = 1000


def read_inventory(store: RedisStore, levels: tuple[str, ...],
                   clock: Callable[[], float] = time.time) -> Inventory:
    """One consistent-enough picture of the state: every cluster's shards and copies, nodes
    with their domains, usage, and the stored live topologies. Raises StoreError."""
    client, keys = store.r, Keys(store.p)
    pipe = client.pipeline(transaction=True)
    pipe.smembers(keys.clusters)
    pipe.get(keys.node_generation)
    pipe.hgetall(keys.nodes)
    pipe.hgetall(keys.usage_memory)
    pipe.hgetall(keys.usage_cpu)
    pipe.hgetall(keys.meta)
    clusters_raw, gen, nodes_raw, mem_raw, cpu_raw, meta_raw = pipe.execute()

    records = {_s(k): NodeRecord.decode(_s(k), _b(v)) for k, v in nodes_raw.items()}
    table = build_node_table(int(gen or 0), records, levels)
    clusters = {_s(c) for c in clusters_raw}
    ids: list[tuple[str, str]] = []
    for key in sorted({_s(k) for k in client.scan_iter(match=keys.shard_pattern, count=SCAN_COUNT)}):
        shard_id = keys.shard_id(key)
        if shard_id is not None:
            ids.append(shard_id)
            clusters.add(shard_id[0])
    ordered = sorted(clusters)

    pipe = client.pipeline(transaction=True)
    for cluster, shard in ids:
        pipe.hgetall(keys.shard(cluster, shard))
    for cluster in ordered:
        pipe.get(keys.live(cluster))
    out = pipe.execute()
    shard_hashes, live_raw = out[:len(ids)], out[len(ids):]

    shards: dict[str, dict[str, tuple[Copy, ...]]] = {c: {} for c in ordered}
    for (cluster, shard), raw in zip(ids, shard_hashes):
        entries = (parse_copy(_s(k), _s(v), now_ms=0) for k, v in raw.items())  # expired or not
        copies = tuple(c for c in entries if c is not None and not c.reserved)
        if copies:
            shards[cluster][shard] = copies
    live = {}
    for cluster, raw in zip(ordered, live_raw):
        if raw:
            try:
                live[cluster] = LiveTopology.from_json(orjson.loads(raw))
            except (orjson.JSONDecodeError, TypeError, ValueError):
                continue  # a corrupt entry is as good as none: the report shows no live view

    pods = sorted({c.pod for cs in shards.values() for copies in cs.values() for c in copies})
    pipe = client.pipeline(transaction=False)
    for pod in pods:
        pipe.hget(keys.pod(pod), "mem")
    pod_memory = {pod: int(_s(m) or 0) for pod, m in zip(pods, pipe.execute()) if m is not None}

    meta = {_s(k): _s(v) for k, v in meta_raw.items()}
    loaded_at = float(meta["loaded_at"]) if meta.get("loaded_at") else None
    return Inventory(
        levels=tuple(levels), nodes=table.nodes, shards=shards,
        requested_memory=_ints(mem_raw.items()), requested_cpu=_ints(cpu_raw.items()),
        pod_memory=pod_memory, live=live, loaded_at=loaded_at, read_at=clock())


def _ints(items: Iterable[tuple[Any, Any]]) -> dict[str, int]:
    return {_s(k): int(_s(v)) for k, v in items}


def _s(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)


def _b(value: Any) -> bytes:
    return bytes(value) if isinstance(value, (bytes, bytearray)) else str(value).encode()
