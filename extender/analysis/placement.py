"""The placement view: the cache's copies and the live topology merged, per report level.

Pure (no Redis, no Flask, no clock). An Inventory is everything a report reads, as one value
(state/inventory.py fills it from the store; the unit tests build it by hand); `place` merges
its cached placements with the live topologies (analysis/topology.py) into the Placement that
the measures (analysis/measures.py) and the advice (analysis/advice.py) read.

- The levels are the node first, then every configured level above it (zone, region...);
  a level is "active" when it has two known domains or more.
- A copy's domain at a level is its node's label value there; a node without the label, or
  absent from the node table, is in UNKNOWN_DOMAIN.
- A copy is healthy when its node is not known NotReady and its live health (when known) is
  "online". Live roles override cached ones: a promoted replica is a master from the moment
  Redis says so; where live and cache disagree, the view lists a Mismatch (hygiene).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from extender.core.domains import level_title
from extender.core.model import HOSTNAME_LABEL, Copy, Node, Role
from extender.analysis.topology import KIND_CLUSTER, KIND_UNKNOWN, LiveNode, LiveTopology

UNKNOWN_DOMAIN = "(unknown)"
"""How an unknown domain is shown and grouped (no label value can contain parentheses)."""

NODE_LEVEL = "node"
DEFAULT_MAX_LAG = 1 << 20
"""Replication offset bytes a replica may trail its master by and still count as in sync."""


@dataclass(frozen=True)
class Inventory:
    """Everything the report reads, as one consistent value (see state/inventory.py).

    `shards` maps cluster -> shard -> placed copies with their cached roles. `pod_memory` is
    the memory request of each Redis pod (maxmemory check). Times are unix seconds.
    """

    levels: tuple[str, ...]
    nodes: Mapping[str, Node]
    shards: Mapping[str, Mapping[str, tuple[Copy, ...]]]
    requested_memory: Mapping[str, int] = field(default_factory=dict)
    requested_cpu: Mapping[str, int] = field(default_factory=dict)
    pod_memory: Mapping[str, int] = field(default_factory=dict)
    live: Mapping[str, LiveTopology] = field(default_factory=dict)
    loaded_at: float | None = None
    read_at: float = 0.0



@dataclass(frozen=True)
class Level:
    """A domain level of the report. `index` is the position in Node.domains; None is the
    node itself (the node level always uses the node name)."""

    name: str
    key: str
    index: int | None
    domains: frozenset[str]

    @property
    def active(self) -> bool:
        return len(self.domains) >= 2


@dataclass(frozen=True)
class CopyView:
    """A copy of a shard with the cache and live topology merged."""

    pod: str
    node: str
    domains: tuple[str, ...]  # one per report level; UNKNOWN_DOMAIN where unknown
    cached_role: Role
    live_role: Role | None = None
    healthy: bool = True
    link_up: bool | None = None
    lag: int | None = None  # replica: its master's offset minus its own
    replicates: str | None = None  # pod of the master it replicates (live)
    maxmemory: int | None = None
    serves_slots: bool | None = None  # live Redis Cluster master: serves slots; None elsewhere

    @property
    def role(self) -> Role:
        return self.live_role if self.live_role is not None else self.cached_role

    def in_sync(self, max_lag: int) -> bool:
        """Safe to promote: a healthy replica, link up, not trailing by more than max_lag."""
        return (self.role is Role.REPLICA and self.healthy and self.link_up is True
                and self.lag is not None and 0 <= self.lag <= max_lag)


@dataclass(frozen=True)
class ShardView:
    cluster: str
    shard: str
    copies: tuple[CopyView, ...]
    slots: int | None = None

    @property
    def key(self) -> str:
        return f"{self.cluster}|{self.shard}"

    @property
    def master(self) -> CopyView | None:
        """The shard's master: the live one when known, else the cached one (first by name).
        Among live masters, a healthy one serving slots first: after a failover the old
        master, dead, still says "master" (flagged fail, its slots gone) until it returns
        as a replica, and its promoted replica is the one serving the shard."""
        live = sorted((c for c in self.copies if c.live_role is Role.MASTER),
                      key=lambda c: (not c.healthy, c.serves_slots is False))
        masters = live or [c for c in self.copies if c.role is Role.MASTER]
        return masters[0] if masters else None

    @property
    def healthy(self) -> tuple[CopyView, ...]:
        return tuple(c for c in self.copies if c.healthy)


@dataclass(frozen=True)
class Mismatch:
    """Live topology and cache disagree (hygiene)."""

    cluster: str
    pod: str
    kind: str  # role | not_live | unmapped | shard
    cached: str = ""
    live: str = ""


@dataclass(frozen=True)
class ClusterView:
    id: str
    kind: str
    shards: tuple[ShardView, ...]
    live: LiveTopology | None = None
    mismatches: tuple[Mismatch, ...] = ()

    @property
    def quorum_applies(self) -> bool:
        return self.kind == KIND_CLUSTER or (self.kind == KIND_UNKNOWN and len(self.shards) >= 2)


@dataclass(frozen=True)
class Placement:
    levels: tuple[Level, ...]
    clusters: tuple[ClusterView, ...]
    inventory: Inventory
    max_lag: int = DEFAULT_MAX_LAG

    @property
    def active_levels(self) -> tuple[int, ...]:
        """Positions of the active levels; the node level alone when none is active."""
        active = tuple(i for i, level in enumerate(self.levels) if level.active)
        return active or (0,)

    @property
    def top_level(self) -> int | None:
        """The highest active level: where masters are balanced and advice works."""
        active = [i for i, level in enumerate(self.levels) if level.active]
        return active[-1] if active else None


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort "2" before "10" (shard ids and pod ordinals)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def report_levels(levels: tuple[str, ...], nodes: Mapping[str, Node],
                  copy_nodes: Iterable[str] = ()) -> tuple[Level, ...]:
    result = [Level(NODE_LEVEL, HOSTNAME_LABEL, None, frozenset(nodes) | frozenset(copy_nodes))]
    for i, key in enumerate(levels):
        if key == HOSTNAME_LABEL:
            continue
        values = frozenset(d for n in nodes.values() if i < len(n.domains) and (d := n.domains[i]))
        result.append(Level(level_title(key), key, i, values))
    return tuple(result)


def domain_of(node_name: str, nodes: Mapping[str, Node], level: Level) -> str:
    if level.index is None:
        return node_name
    node = nodes.get(node_name)
    if node is None or level.index >= len(node.domains):
        return UNKNOWN_DOMAIN
    return node.domains[level.index] or UNKNOWN_DOMAIN


def place(inventory: Inventory, max_lag: int = DEFAULT_MAX_LAG) -> Placement:
    """Merge cache and live topology into the view every measure and the advice read."""
    copy_nodes = {c.node for shards in inventory.shards.values() for cs in shards.values() for c in cs}
    levels = report_levels(inventory.levels, inventory.nodes, copy_nodes)
    clusters = tuple(_cluster_view(cid, inventory.shards[cid], inventory, levels)
                     for cid in sorted(inventory.shards))
    return Placement(levels=levels, clusters=clusters, inventory=inventory, max_lag=max_lag)


def _cluster_view(cid: str, shards: Mapping[str, tuple[Copy, ...]], inv: Inventory,
                  levels: tuple[Level, ...]) -> ClusterView:
    live = inv.live.get(cid)
    if live is not None and not live.nodes:  # a failed fetch: its error shows in hygiene
        live = None
    by_pod = live.by_pod() if live else {}
    by_id = live.by_id() if live else {}
    pod_shard = {c.pod: sid for sid, copies in shards.items() for c in copies}
    mismatches: list[Mismatch] = []
    views = []
    for sid in sorted(shards, key=natural_key):
        copies = []
        for c in sorted(shards[sid], key=lambda c: natural_key(c.pod)):
            node = inv.nodes.get(c.node)
            ready = node.ready if node is not None else True
            ln = by_pod.get(c.pod)
            live_role = lag = replicates = link_up = maxmemory = serves_slots = None
            healthy = ready
            if ln is not None:
                live_role = Role.parse(ln.role)
                healthy = ready and ln.health == "online"
                maxmemory = ln.maxmemory
                if live_role is Role.MASTER and live is not None and live.kind == KIND_CLUSTER:
                    serves_slots = bool(ln.slots)
                if live_role is Role.REPLICA:
                    link_up = ln.link_up
                    master = by_id.get(ln.master_id)
                    if master is not None:
                        replicates = master.pod or None
                        if master.offset is not None and ln.offset is not None:
                            lag = master.offset - ln.offset
                if c.role is not Role.UNKNOWN and c.role is not live_role:
                    mismatches.append(Mismatch(cid, c.pod, "role", c.role.value, live_role.value))
                if replicates and pod_shard.get(replicates, sid) != sid:
                    mismatches.append(Mismatch(cid, c.pod, "shard", sid, pod_shard[replicates]))
            elif live is not None:
                mismatches.append(Mismatch(cid, c.pod, "not_live", c.role.value, ""))
            copies.append(CopyView(
                pod=c.pod, node=c.node, domains=tuple(domain_of(c.node, inv.nodes, lv) for lv in levels),
                cached_role=c.role, live_role=live_role, healthy=healthy, link_up=link_up, lag=lag,
                replicates=replicates, maxmemory=maxmemory, serves_slots=serves_slots))
        views.append(ShardView(cid, sid, tuple(copies), _slots(copies, by_pod)))
    if live is not None:
        for ln in sorted(live.nodes, key=lambda n: n.address):
            if not ln.pod or ln.pod not in pod_shard:
                mismatches.append(Mismatch(cid, ln.pod or ln.address, "unmapped", "", ln.role))
    kind = live.kind if live is not None else KIND_UNKNOWN
    return ClusterView(cid, kind, tuple(views), live, tuple(mismatches))


def _slots(copies: list[CopyView], by_pod: Mapping[str, LiveNode]) -> int | None:
    for c in copies:
        ln = by_pod.get(c.pod)
        if ln is not None and ln.role == "master" and ln.slots:
            return ln.slot_count
    return None

