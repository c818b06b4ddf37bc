"""Placement-quality metrics: pure functions of an Inventory (no Redis, no Flask, no clock).

The metrics are those of reference/redis-placement.md, computed per Redis deployment
("cluster") and per domain level: the node level first, then every configured level above it
(zone, region, rack...). Inputs are plain records so the unit tests build them by hand and the
edges (reports.inventory, reports.topology) fill them from Redis.

Definitions (per level; "domain" = the node, or the node's label value at that level):
- healthy copy: its node is not known NotReady, and live health (when known) is "online".
- unknown domain: a node without the level's label, or absent from the node table. All
  unknown copies of a level count as ONE domain "(unknown)": they may well share it, and a
  report must not call a placement safe on a guess.
- SPOF shard: its healthy copies sit in at most one domain (a shard with no healthy copy is
  also "down").
- worst single-domain loss: the largest share of a cluster's data with no healthy copy left
  after losing one domain; shares are slot-weighted when live slots are known for every shard
  of the cluster, else one shard = one share. Shards already down count in every domain.
- write disruption: the largest share whose master sits in one domain.
- quorum: a Redis Cluster elects a new master only with a majority of masters; losing a
  domain holding k of M masters leaves M-k, so it is safe iff k < ceil(M/2). Applies to
  kind "cluster", and to clusters of unknown kind with two shards or more (Sentinel and
  single-shard deployments have no master quorum).
- master skew: max - min masters per domain, over the known domains holding a healthy copy
  of the cluster (only there can a master be).
- diversity: per shard, distinct domains of its copies / min(copies, domains at the level).
- surviving copies: per shard, healthy copies left after losing the domain holding most.
- failure headroom: for each domain, the memory requested on it (every pod) against the free
  allocatable memory of the ready nodes outside it; the worst margin is reported.
Live roles override cached ones: a promoted replica is a master from the moment Redis says so.

A level is "active" when it has two known domains or more; the summary takes the worst value
of every metric over the active levels (the node level alone when none is active).
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..domains import level_title
from ..model import HOSTNAME_LABEL, Copy, Node, Role

UNKNOWN_DOMAIN = "(unknown)"
"""How an unknown domain is shown and grouped (no label value can contain parentheses)."""

NODE_LEVEL = "node"
DEFAULT_MAX_LAG = 1 << 20
"""Replication offset bytes a replica may trail its master by and still count as in sync."""

KIND_CLUSTER, KIND_SENTINEL, KIND_UNKNOWN = "cluster", "sentinel", "unknown"


# --- inputs ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveNode:
    """One Redis process as the live topology reports it, mapped to its pod when possible.

    `offset` is the replication offset (the master's own, or how far a replica has read);
    `link_up` is the replica's master_link_status (None for masters, or when not probed);
    `slots` are inclusive ranges served by a master.
    """

    node_id: str
    ip: str
    port: int
    role: str  # "master" | "replica"
    health: str = "online"  # online | failed | loading | unknown
    hostname: str = ""
    master_id: str = ""
    offset: int | None = None
    link_up: bool | None = None
    slots: tuple[tuple[int, int], ...] = ()
    pod: str = ""  # "ns/name"; "" when it could not be mapped
    maxmemory: int | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def slot_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.slots)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.node_id, "ip": self.ip, "port": self.port, "role": self.role,
                "health": self.health, "hostname": self.hostname, "master_id": self.master_id,
                "offset": self.offset, "link_up": self.link_up, "slots": [list(s) for s in self.slots],
                "pod": self.pod, "maxmemory": self.maxmemory}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "LiveNode":
        return cls(node_id=str(d.get("id", "")), ip=str(d.get("ip", "")), port=int(d.get("port") or 0),
                   role=str(d.get("role", "")), health=str(d.get("health", "unknown")),
                   hostname=str(d.get("hostname") or ""), master_id=str(d.get("master_id") or ""),
                   offset=_opt_int(d.get("offset")), link_up=d.get("link_up"),
                   slots=tuple((int(a), int(b)) for a, b in d.get("slots") or ()),
                   pod=str(d.get("pod") or ""), maxmemory=_opt_int(d.get("maxmemory")))


@dataclass(frozen=True)
class LiveTopology:
    """What one Redis deployment said about itself at `fetched_at` (unix seconds)."""

    cluster: str  # the store's cluster id, "ns/name"
    kind: str  # KIND_CLUSTER | KIND_SENTINEL
    fetched_at: float
    seed: str  # host:port asked (sentinel: sentinel://host:port/master)
    nodes: tuple[LiveNode, ...] = ()
    source: str = ""  # "CLUSTER SHARDS" | "CLUSTER NODES" | "SENTINEL"
    error: str = ""

    def by_id(self) -> dict[str, LiveNode]:
        return {n.node_id: n for n in self.nodes}

    def by_pod(self) -> dict[str, LiveNode]:
        return {n.pod: n for n in self.nodes if n.pod}

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "kind": self.kind, "fetched_at": self.fetched_at,
                "seed": self.seed, "source": self.source, "error": self.error,
                "nodes": [n.to_json() for n in self.nodes]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "LiveTopology":
        return cls(cluster=str(d.get("cluster", "")), kind=str(d.get("kind", KIND_CLUSTER)),
                   fetched_at=float(d.get("fetched_at") or 0.0), seed=str(d.get("seed", "")),
                   nodes=tuple(LiveNode.from_json(n) for n in d.get("nodes") or ()),
                   source=str(d.get("source", "")), error=str(d.get("error", "")))


@dataclass(frozen=True)
class Inventory:
    """Everything the report reads, as one consistent value (see reports.inventory).

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


# --- the merged view --------------------------------------------------------------------------

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
        """The shard's master: the live one when known, else the cached one (first by name)."""
        live = [c for c in self.copies if c.live_role is Role.MASTER]
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
    """Merge cache and live topology into the view every metric and the advice read."""
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
            live_role = lag = replicates = link_up = maxmemory = None
            healthy = ready
            if ln is not None:
                live_role = Role.MASTER if ln.role == "master" else Role.REPLICA
                healthy = ready and ln.health == "online"
                maxmemory = ln.maxmemory
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
                replicates=replicates, maxmemory=maxmemory))
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


# --- metrics ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Share:
    """A share of a cluster's data (0..1) and the domain it concerns."""

    share: float = 0.0
    domain: str | None = None
    cluster: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"share": round(self.share, 4), "domain": self.domain, "cluster": self.cluster}


@dataclass(frozen=True)
class ClusterLevel:
    """One cluster at one level."""

    cluster: str
    level: str
    spof: tuple[str, ...]  # shard ids
    down: tuple[str, ...]
    worst_loss: Share
    write_disruption: Share
    masters: int
    masters_per_domain: Mapping[str, int]  # the known domains holding a healthy copy, + unknown
    master_skew: int
    quorum_limit: int | None  # ceil(M/2); None when quorum does not apply
    quorum_safe: bool | None
    diversity: Mapping[str, float]  # shard -> diversity
    surviving: Mapping[str, int]  # shard -> copies left after its worst domain is lost
    crowded: tuple[str, ...]  # domains holding more masters than a balanced spread would


@dataclass(frozen=True)
class Headroom:
    domain: str | None = None
    failed_memory: int = 0
    rest_free_memory: int = 0

    @property
    def margin(self) -> int:
        return self.rest_free_memory - self.failed_memory

    @property
    def absorbable(self) -> bool:
        return self.margin >= 0

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "failed_memory": self.failed_memory,
                "rest_free_memory": self.rest_free_memory, "margin": self.margin,
                "absorbable": self.absorbable}


@dataclass(frozen=True)
class LevelMetrics:
    level: Level
    clusters: tuple[ClusterLevel, ...]
    headroom: Headroom
    unknown_nodes: int
    unknown_copies: int

    @property
    def spof(self) -> int:
        return sum(len(c.spof) for c in self.clusters)

    @property
    def spof_shards(self) -> list[str]:
        return [f"{c.cluster}|{s}" for c in self.clusters for s in c.spof]

    @property
    def worst_loss(self) -> Share:
        return max((c.worst_loss for c in self.clusters), key=lambda s: s.share, default=Share())

    @property
    def write_disruption(self) -> Share:
        return max((c.write_disruption for c in self.clusters), key=lambda s: s.share, default=Share())

    @property
    def quorum_unsafe(self) -> list[str]:
        return [c.cluster for c in self.clusters if c.quorum_safe is False]

    @property
    def master_skew(self) -> int:
        return max((c.master_skew for c in self.clusters), default=0)

    @property
    def diversity_min(self) -> float:
        return min((d for c in self.clusters for d in c.diversity.values()), default=1.0)

    @property
    def diversity_mean(self) -> float:
        values = [d for c in self.clusters for d in c.diversity.values()]
        return sum(values) / len(values) if values else 1.0

    @property
    def surviving_copies(self) -> int | None:
        return min((n for c in self.clusters for n in c.surviving.values()), default=None)


@dataclass(frozen=True)
class NodeFit:
    node: str
    allocatable_memory: int
    requested_memory: int

    @property
    def utilization(self) -> float:
        return self.requested_memory / self.allocatable_memory if self.allocatable_memory else math.inf


@dataclass(frozen=True)
class MaxmemoryIssue:
    pod: str
    maxmemory: int
    memory_request: int
    reason: str


@dataclass(frozen=True)
class Hygiene:
    unknown_domain_nodes: Mapping[str, int]  # level -> nodes without a value
    unknown_domain_copies: Mapping[str, int]  # level -> copies on such nodes
    copies_on_unknown_nodes: tuple[str, ...]  # pods whose node is not in the node table
    cache_age: float | None
    live_age: Mapping[str, float | None]  # cluster -> seconds since fetched (None: never)
    live_errors: Mapping[str, str]
    mismatches: tuple[Mismatch, ...]


@dataclass(frozen=True)
class Summary:
    """The headline numbers (worst over the active levels): what --fail-on and gauges read."""

    clusters: int
    shards: int
    copies: int
    spof: int
    down: int
    worst_loss: float
    write_disruption: float
    quorum_unsafe: int
    master_skew: int
    diversity_min: float
    diversity_mean: float
    surviving_copies: int | None
    headroom_short: int
    overcommitted_nodes: int
    maxmemory_issues: int
    unknown_domain_copies: int
    cache_age: float | None
    live_age: float | None
    live_missing: int
    live_mismatch: int

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Report:
    placement: Placement
    levels: tuple[LevelMetrics, ...]
    overcommitted: tuple[NodeFit, ...]
    max_utilization: float
    maxmemory: tuple[MaxmemoryIssue, ...]
    hygiene: Hygiene
    summary: Summary
    risks: Mapping[str, tuple[str, ...]]  # shard key -> why it is risky

    def level(self, name: str) -> LevelMetrics:
        return next(m for m in self.levels if m.level.name == name)


def compute(placement: Placement) -> Report:
    """Every metric of the placement."""
    inv = placement.inventory
    per_level = tuple(_level_metrics(placement, i) for i in range(len(placement.levels)))
    fits = _node_fits(inv)
    over = tuple(f for f in fits if f.requested_memory > f.allocatable_memory)
    max_util = max((f.utilization for f in fits), default=0.0)
    maxmem = _maxmemory_issues(placement)
    hygiene = _hygiene(placement, per_level)
    risks = _risks(placement, per_level)
    active = [per_level[i] for i in placement.active_levels]
    shards = [s for c in placement.clusters for s in c.shards]
    live_ages = [a for a in hygiene.live_age.values() if a is not None]
    survivors = [m.surviving_copies for m in active if m.surviving_copies is not None]
    summary = Summary(
        clusters=len(placement.clusters), shards=len(shards),
        copies=sum(len(s.copies) for s in shards),
        spof=max(m.spof for m in active),
        down=sum(1 for s in shards if not s.healthy),
        worst_loss=round(max(m.worst_loss.share for m in active), 4),
        write_disruption=round(max(m.write_disruption.share for m in active), 4),
        quorum_unsafe=len({c for m in active for c in m.quorum_unsafe}),
        master_skew=max(m.master_skew for m in active),
        diversity_min=round(min(m.diversity_min for m in active), 4),
        diversity_mean=round(min(m.diversity_mean for m in active), 4),
        surviving_copies=min(survivors) if survivors else None,
        headroom_short=sum(1 for m in active if not m.headroom.absorbable),
        overcommitted_nodes=len(over),
        maxmemory_issues=len(maxmem),
        unknown_domain_copies=max(m.unknown_copies for m in active),
        cache_age=hygiene.cache_age,
        live_age=max(live_ages) if live_ages else None,
        live_missing=sum(1 for a in hygiene.live_age.values() if a is None),
        live_mismatch=len(hygiene.mismatches),
    )
    return Report(placement, per_level, over, max_util, maxmem, hygiene, summary, risks)


def _level_metrics(p: Placement, pos: int) -> LevelMetrics:
    level = p.levels[pos]
    clusters = tuple(cluster_level(c, pos, level) for c in p.clusters)
    nodes = p.inventory.nodes
    unknown_nodes = sum(1 for n in nodes if domain_of(n, nodes, level) == UNKNOWN_DOMAIN)
    unknown_copies = sum(1 for c in p.clusters for s in c.shards for cp in s.copies
                         if cp.domains[pos] == UNKNOWN_DOMAIN)
    return LevelMetrics(level, clusters, failure_headroom(p.inventory, level), unknown_nodes, unknown_copies)


def cluster_level(cv: ClusterView, pos: int, level: Level) -> ClusterLevel:
    """Every per-cluster metric at one level (see the module docstring for definitions)."""
    weights = _weights(cv.shards)
    total = sum(weights.values()) or 1
    lost: Counter[str] = Counter()
    writes: Counter[str] = Counter()
    down_weight = 0
    spof, down = [], []
    diversity: dict[str, float] = {}
    surviving: dict[str, int] = {}
    eligible: set[str] = set()
    masters: Counter[str] = Counter()
    domain_count = max(1, len(level.domains))
    for shard in cv.shards:
        w = weights[shard.shard]
        healthy = [c.domains[pos] for c in shard.healthy]
        per_domain = Counter(healthy)
        eligible.update(d for d in per_domain if d != UNKNOWN_DOMAIN)
        if len(per_domain) <= 1:
            spof.append(shard.shard)
        if not healthy:
            down.append(shard.shard)
            down_weight += w
        elif len(per_domain) == 1:
            lost[healthy[0]] += w
        surviving[shard.shard] = len(healthy) - max(per_domain.values(), default=0)
        distinct = len({c.domains[pos] for c in shard.copies})
        if shard.copies:
            diversity[shard.shard] = min(1.0, distinct / min(len(shard.copies), domain_count))
        master = shard.master
        if master is not None:
            writes[master.domains[pos]] += w
            masters[master.domains[pos]] += 1
    per_domain_masters = {d: masters.get(d, 0) for d in sorted(eligible | set(masters), key=natural_key)}
    known = [n for d, n in per_domain_masters.items() if d != UNKNOWN_DOMAIN]
    skew = (max(known) - min(known)) if known else 0
    m_total = sum(masters.values())
    limit = math.ceil(m_total / 2) if cv.quorum_applies and m_total else None
    safe = (max(masters.values()) < limit) if limit is not None else None
    worst_domain, worst = _top(lost)
    wd_domain, wd = _top(writes)
    balanced_cap = math.ceil(m_total / len(eligible)) if eligible else m_total
    crowded = tuple(d for d, n in per_domain_masters.items()
                    if n > balanced_cap or (limit is not None and n >= limit))
    return ClusterLevel(
        cluster=cv.id, level=level.name, spof=tuple(spof), down=tuple(down),
        worst_loss=Share((worst + down_weight) / total, worst_domain, cv.id),
        write_disruption=Share(wd / total, wd_domain, cv.id),
        masters=m_total, masters_per_domain=per_domain_masters, master_skew=skew,
        quorum_limit=limit, quorum_safe=safe, diversity=diversity, surviving=surviving,
        crowded=crowded)


def _top(counts: Mapping[str, int]) -> tuple[str | None, int]:
    """The domain with the largest value; ties go to the first in natural order."""
    if not counts:
        return None, 0
    domain = sorted(counts, key=lambda d: (-counts[d], natural_key(d)))[0]
    return domain, counts[domain]


def _weights(shards: tuple[ShardView, ...]) -> dict[str, int]:
    """Slots per shard when live topology gave them for every shard; else one per shard."""
    if shards and all(s.slots for s in shards):
        return {s.shard: int(s.slots or 0) for s in shards}
    return {s.shard: 1 for s in shards}


def failure_headroom(inv: Inventory, level: Level) -> Headroom:
    """The domain whose loss the rest of the cluster is least able to absorb (by memory).

    Failed = memory requested on the domain's nodes (every pod there must move); free = the
    allocatable memory not requested on the ready nodes elsewhere.
    """
    free: dict[str, int] = {}
    failed: Counter[str] = Counter()
    for name, node in inv.nodes.items():
        domain = domain_of(name, inv.nodes, level)
        failed[domain] += inv.requested_memory.get(name, 0)
        if node.ready and node.allocatable_memory is not None:
            free[domain] = free.get(domain, 0) + max(0, node.allocatable_memory - inv.requested_memory.get(name, 0))
    if not failed:
        return Headroom()
    total_free = sum(free.values())
    candidates = [Headroom(d, failed[d], total_free - free.get(d, 0)) for d in failed]
    return sorted(candidates, key=lambda h: (h.margin, natural_key(h.domain or "")))[0]


def _node_fits(inv: Inventory) -> list[NodeFit]:
    return [NodeFit(name, node.allocatable_memory, inv.requested_memory.get(name, 0))
            for name, node in sorted(inv.nodes.items(), key=lambda kv: natural_key(kv[0]))
            if node.allocatable_memory]


def _maxmemory_issues(p: Placement) -> tuple[MaxmemoryIssue, ...]:
    """Redis's own memory cap against what the pod asked of Kubernetes: a Redis that may grow
    past its request is the first to be evicted or OOM-killed when a node fills up."""
    issues = []
    for cv in p.clusters:
        for shard in cv.shards:
            for c in shard.copies:
                request = p.inventory.pod_memory.get(c.pod, 0)
                if c.maxmemory is None or request <= 0:
                    continue
                if c.maxmemory == 0:
                    issues.append(MaxmemoryIssue(c.pod, 0, request, "maxmemory 0: unbounded"))
                elif c.maxmemory > request:
                    issues.append(MaxmemoryIssue(c.pod, c.maxmemory, request, "maxmemory above the memory request"))
    return tuple(issues)


def _hygiene(p: Placement, per_level: tuple[LevelMetrics, ...]) -> Hygiene:
    inv = p.inventory
    on_unknown = tuple(c.pod for cv in p.clusters for s in cv.shards for c in s.copies
                       if c.node not in inv.nodes)
    cache_age = round(inv.read_at - inv.loaded_at, 3) if inv.loaded_at else None
    live_age = {cv.id: (round(inv.read_at - cv.live.fetched_at, 3) if cv.live else None) for cv in p.clusters}
    errors = {cid: t.error for cid, t in inv.live.items() if t.error}
    return Hygiene(
        unknown_domain_nodes={m.level.name: m.unknown_nodes for m in per_level},
        unknown_domain_copies={m.level.name: m.unknown_copies for m in per_level},
        copies_on_unknown_nodes=on_unknown, cache_age=cache_age, live_age=live_age,
        live_errors=errors, mismatches=tuple(m for cv in p.clusters for m in cv.mismatches))


def _risks(p: Placement, per_level: tuple[LevelMetrics, ...]) -> dict[str, tuple[str, ...]]:
    """Why each risky shard is risky, finest level first (a shard on one node is on one zone)."""
    risks: dict[str, list[str]] = defaultdict(list)
    top = p.top_level
    for cv_index, cv in enumerate(p.clusters):
        for shard in cv.shards:
            key = shard.key
            if not shard.healthy:
                risks[key].append("no healthy copy")
                continue
            for pos in p.active_levels:
                if shard.shard in per_level[pos].clusters[cv_index].spof:
                    risks[key].append(f"single {p.levels[pos].name}")
                    break
            if top is not None:
                cl = per_level[top].clusters[cv_index]
                master = shard.master
                if master is not None and master.domains[top] in cl.crowded:
                    risks[key].append(f"master in crowded {p.levels[top].name} {master.domains[top]}")
                if any(c.domains[top] == UNKNOWN_DOMAIN for c in shard.copies):
                    risks[key].append(f"copy in unknown {p.levels[top].name}")
    return {k: tuple(v) for k, v in risks.items() if v}


def _opt_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)
