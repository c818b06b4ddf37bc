"""Read everything a report needs from the store, read-only, in a handful of round trips.

The key schema is the store's (state/redis_store.py) plus the live topology keys of
reports/topology.py. Round trips: one pipeline for the cluster-wide hashes (clusters, nodes,
usage, meta), a SCAN of `P shard:*` (pages of 1000 keys), one pipeline for every shard hash and
live topology, one for the memory requests of the copies' pods. Reservations (entries with an
expiry, a pod's likely node noted at prioritize) are not placements and are skipped.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import orjson
import redis

from ..model import Copy, Role
from ..state.cache import build_node_table
from ..state.redis_store import NodeRecord, escape_glob
from .metrics import Inventory, LiveTopology
from .topology import live_key

SCAN_COUNT = 1000


def read_inventory(client: redis.Redis, prefix: str, levels: tuple[str, ...],
                   clock: Callable[[], float] = time.time) -> Inventory:
    """One consistent-enough picture of the state: every cluster's shards and copies, nodes
    with their domains, usage, and the stored live topologies. Raises redis.RedisError."""
    pipe = client.pipeline(transaction=True)
    pipe.smembers(prefix + "clusters")
    pipe.get(prefix + "gen:nodes")
    pipe.hgetall(prefix + "nodes")
    pipe.hgetall(prefix + "usage:mem")
    pipe.hgetall(prefix + "usage:cpu")
    pipe.hgetall(prefix + "meta")
    clusters_raw, gen, nodes_raw, mem_raw, cpu_raw, meta_raw = pipe.execute()

    records = {_s(k): NodeRecord.decode(_s(k), _b(v)) for k, v in nodes_raw.items()}
    table = build_node_table(int(gen or 0), records, levels)
    clusters = {_s(c) for c in clusters_raw}
    shard_prefix = prefix + "shard:"
    shard_keys = sorted({_s(k) for k in client.scan_iter(match=escape_glob(shard_prefix) + "*", count=SCAN_COUNT)})
    ids: list[tuple[str, str]] = []
    for key in shard_keys:
        cluster, sep, shard = key[len(shard_prefix):].partition("|")
        if sep:
            ids.append((cluster, shard))
            clusters.add(cluster)
    ordered = sorted(clusters)

    pipe = client.pipeline(transaction=True)
    for cluster, shard in ids:
        pipe.hgetall(f"{shard_prefix}{cluster}|{shard}")
    for cluster in ordered:
        pipe.get(live_key(prefix, cluster))
    out = pipe.execute()
    shard_hashes, live_raw = out[:len(ids)], out[len(ids):]

    shards: dict[str, dict[str, tuple[Copy, ...]]] = {c: {} for c in ordered}
    for (cluster, shard), raw in zip(ids, shard_hashes):
        copies = tuple(c for c in (_copy(_s(k), _s(v)) for k, v in raw.items()) if c is not None)
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
        pipe.hget(f"{prefix}pod:{pod}", "mem")
    pod_memory = {pod: int(_s(m) or 0) for pod, m in zip(pods, pipe.execute()) if m is not None}

    meta = {_s(k): _s(v) for k, v in meta_raw.items()}
    loaded_at = float(meta["loaded_at"]) if meta.get("loaded_at") else None
    return Inventory(
        levels=tuple(levels), nodes=table.nodes, shards=shards,
        requested_memory=_ints(mem_raw.items()), requested_cpu=_ints(cpu_raw.items()),
        pod_memory=pod_memory, live=live, loaded_at=loaded_at, read_at=clock())


def _copy(pod: str, value: str) -> Copy | None:
    """"node\\trole" is a placement; a third field (expiry) marks a reservation: skipped."""
    parts = value.split("\t")
    if len(parts) != 2 or not parts[0]:
        return None
    try:
        role = Role(parts[1])
    except ValueError:
        role = Role.UNKNOWN
    return Copy(pod=pod, node=parts[0], role=role)


def _ints(items: Iterable[tuple[Any, Any]]) -> dict[str, int]:
    return {_s(k): int(_s(v)) for k, v in items}


def _s(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)


def _b(value: Any) -> bytes:
    return bytes(value) if isinstance(value, (bytes, bytearray)) else str(value).encode()
