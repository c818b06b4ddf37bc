"""Placement-quality measures: pure functions of a Placement (no Redis, no Flask, no clock).

The measures are those of reference/redis-placement.md, computed per Redis deployment
("cluster") and per domain level of the placement view (analysis/placement.py). They are
"measures", not "metrics": metrics are the Prometheus series (core/metrics.py, the
report's gauges in service/report_routes.py), which export some of these numbers.

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

The summary takes the worst value of every measure over the active levels (the node level
alone when none is active).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Mapping

from extender.analysis.placement import (UNKNOWN_DOMAIN, ClusterView, Inventory, Level, Mismatch, Placement, ShardView,
                        domain_of, natural_key)


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
class LevelMeasures:
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
    levels: tuple[LevelMeasures, ...]
    overcommitted: tuple[NodeFit, ...]
    max_utilization: float
    maxmemory: tuple[MaxmemoryIssue, ...]
    hygiene: Hygiene
    summary: Summary
    risks: Mapping[str, tuple[str, ...]]  # shard key -> why it is risky

    def level(self, name: str) -> LevelMeasures:
        return next(m for m in self.levels if m.level.name == name)


def compute(placement: Placement) -> Report:
    """Every measure of the placement."""
    inv = placement.inventory
    per_level = tuple(_level_measures(placement, i) for i in range(len(placement.levels)))
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


def _level_measures(p: Placement, pos: int) -> LevelMeasures:
    level = p.levels[pos]
    clusters = tuple(cluster_level(c, pos, level) for c in p.clusters)
    nodes = p.inventory.nodes
    unknown_nodes = sum(1 for n in nodes if domain_of(n, nodes, level) == UNKNOWN_DOMAIN)
    unknown_copies = sum(1 for c in p.clusters for s in c.shards for cp in s.copies
                         if cp.domains[pos] == UNKNOWN_DOMAIN)
    return LevelMeasures(level, clusters, failure_headroom(p.inventory, level), unknown_nodes, unknown_copies)


def cluster_level(cv: ClusterView, pos: int, level: Level) -> ClusterLevel:
    """Every per-cluster measure at one level (see the module docstring for definitions)."""
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


def _hygiene(p: Placement, per_level: tuple[LevelMeasures, ...]) -> Hygiene:
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


def _risks(p: Placement, per_level: tuple[LevelMeasures, ...]) -> dict[str, tuple[str, ...]]:
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

