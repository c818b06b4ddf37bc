"""What preemption needs to know about the victims, read from the store.

The scheduler names victims by UID (nodeCacheCapable) or sends them whole; either way the
store says which of them are Redis copies (their cluster, shard and current role, live
roles included), every copy of those clusters' shards, and what the live topology last said
of each copy's health and replication link. One SCAN of the shard hashes, one pipelined read
of the candidate copies' UIDs, one read of each involved cluster's live topology: preemption
is rare, and correctness here costs more than a millisecond.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Mapping

from extender.core.model import Copy, CopyHealth, Member, Role, VictimSet
from extender.policy.preempt import VictimState
from extender.state.store import RedisStore
from extender.state.live import load_live

UNHEALTHY = ("failed", "loading")


def read_victims(store: RedisStore, victims: Mapping[str, VictimSet],
                 now_ms: float | None = None) -> tuple[dict[str, VictimSet], VictimState]:
    """The victim sets with each Redis copy's member filled in, and the state of its shards."""
    now = time.time() * 1000 if now_ms is None else now_ms
    nodes = set(victims)
    shards = store.shard_copies(now)
    on_nodes: list[tuple[str, str, str, Copy]] = [  # (pod, cluster, shard, copy) on candidate nodes
        (c.pod, ident[0], ident[1], c) for ident, copies in shards.items() for c in copies
        if c.node in nodes and not c.reserved]
    uid_of = store.pod_fields([pod for pod, *_ in on_nodes], "uid")
    uids = [uid_of.get(pod, "") for pod, *_ in on_nodes]
    by_uid = {uid: entry for uid, entry in zip(uids, on_nodes) if uid}
    by_pod = {entry[0]: entry for entry in on_nodes}

    resolved: dict[str, VictimSet] = {}
    clusters: set[str] = set()
    for node, victim_set in victims.items():
        found = []
        for v in victim_set.victims:
            entry = by_uid.get(v.uid) or (by_pod.get(v.pod) if v.pod else None)
            if entry is not None and entry[3].node == node:
                pod, cluster, shard, c = entry
                v = replace(v, pod=pod, member=Member(cluster, shard, c.role))
            if v.is_copy:
                assert v.member is not None
                clusters.add(v.member.cluster)
            found.append(v)
        resolved[node] = replace(victim_set, victims=tuple(found))

    health: dict[str, CopyHealth] = {}
    for cluster in sorted(clusters):
        live = load_live(store, cluster)
        for n in live.nodes if live is not None else ():
            if n.pod:
                in_sync = n.link_up if n.role == Role.REPLICA.value else None
                health[n.pod] = CopyHealth(healthy=n.health not in UNHEALTHY, in_sync=in_sync)
    involved = {k: v for k, v in shards.items() if k[0] in clusters}
    return resolved, VictimState(shards=involved, health=health)
