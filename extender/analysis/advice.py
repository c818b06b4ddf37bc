"""Failover advice: the fewest CLUSTER FAILOVER steps that balance masters and make quorum safe.

Pure: reads a placement.Placement, returns Plans; reports.rebalance executes them.

The problem. After failovers, masters pile up in one domain (redis/redis #6736): losing it
then stops writes for many shards at once and, past half of the masters, no election can
succeed. A failover only moves a shard's master to one of its own replicas, so the question
is an assignment: every shard with a master keeps its master's domain or picks the domain of
one of its in-sync replicas (healthy, link up, lag <= max_lag, replicating that master; never
a replica in an unknown domain). Goal, at the top active level: master skew <= 1 over the
domains holding the cluster, and fewer than ceil(M/2) masters in any one domain.

The algorithm: a min-cost flow, one unit per shard, source -> shard -> domain -> sink.
- shard -> its master's domain costs 0; shard -> a replica's domain costs W (one failover),
  minus 2 if that replica is the pod the cache calls master (it restores the intended layout),
  plus 1 if its node already holds a master of the cluster (keeps the node level balanced).
  W = 4(M+1) exceeds any sum of these tie-breaks, so fewer failovers always win.
- domain -> sink: the k-th master of a domain costs B(2k-1), so a domain holding n masters
  costs B*n^2. B exceeds any total of move costs, so the flow minimizes sum(n^2) first.
Why sum(n^2): the reachable vectors of per-domain master counts are the integral bases of a
polymatroid (shards choose among allowed domains: a transversal structure). On such sets a
square-sum minimizer is decreasingly minimal and increasingly maximal (Frank & Murota,
"Discrete decreasing minimization", 2022): it has the smallest possible maximum and the largest
possible minimum at once. Hence if skew <= 1 is reachable at all, the flow reaches it (all
vectors of skew <= 1 share the minimal sum(n^2)) with the fewest failovers; and its maximum is
the smallest any plan can reach, so quorum is made safe whenever it can be. When the goal is
out of reach the plan is the most balanced reachable, and the notes say why.
Successive shortest paths (Bellman-Ford with a FIFO queue) over nodes and edges in a fixed,
naturally sorted order make the result deterministic. Sizes are tiny (shards x domains).

Order of the steps: greedily, the move from the most crowded domain to the least crowded one
first (ties by shard), so no intermediate state piles up more masters than needed.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Mapping

from extender.core.model import Role
from extender.analysis.placement import UNKNOWN_DOMAIN, ClusterView, CopyView, Placement, ShardView, natural_key
from extender.analysis.topology import KIND_CLUSTER, KIND_SENTINEL


@dataclass(frozen=True)
class Step:
    """Promote `promote` (a replica of `shard`) with CLUSTER FAILOVER; `demote` becomes a replica."""

    order: int
    cluster: str
    shard: str
    promote: str
    demote: str
    promote_node: str
    from_domain: str
    to_domain: str
    lag: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"order": self.order, "cluster": self.cluster, "shard": self.shard,
                "promote": self.promote, "demote": self.demote, "promote_node": self.promote_node,
                "from_domain": self.from_domain, "to_domain": self.to_domain, "lag": self.lag}



@dataclass(frozen=True)
class Plan:
    cluster: str
    level: str | None
    steps: tuple[Step, ...] = ()
    before: Mapping[str, int] = field(default_factory=dict)
    after: Mapping[str, int] = field(default_factory=dict)
    quorum_limit: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def skew_before(self) -> int:
        return _skew(self.before)

    @property
    def skew_after(self) -> int:
        return _skew(self.after)

    @property
    def quorum_safe_before(self) -> bool | None:
        return _quorum(self.before, self.quorum_limit)

    @property
    def quorum_safe_after(self) -> bool | None:
        return _quorum(self.after, self.quorum_limit)

    @property
    def goal_met(self) -> bool:
        """After the steps: skew <= 1 and quorum not unsafe."""
        return self.skew_after <= 1 and self.quorum_safe_after is not False

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "level": self.level, "steps": [s.to_json() for s in self.steps],
                "masters_before": dict(self.before), "masters_after": dict(self.after),
                "skew_before": self.skew_before, "skew_after": self.skew_after,
                "quorum_limit": self.quorum_limit, "quorum_safe_before": self.quorum_safe_before,
                "quorum_safe_after": self.quorum_safe_after, "goal_met": self.goal_met,
                "notes": list(self.notes)}


def _skew(counts: Mapping[str, int]) -> int:
    known = [n for d, n in counts.items() if d != UNKNOWN_DOMAIN]
    return max(known) - min(known) if known else 0


def _quorum(counts: Mapping[str, int], limit: int | None) -> bool | None:
    if limit is None:
        return None
    return max(counts.values(), default=0) < limit


def plan_all(placement: Placement) -> tuple[Plan, ...]:
    return tuple(plan_cluster(placement, cv) for cv in placement.clusters)


def plan_cluster(placement: Placement, cv: ClusterView) -> Plan:
    top = placement.top_level
    if top is None:
        return Plan(cv.id, None, notes=("no level has two domains or more: nothing to balance",))
    level = placement.levels[top].name
    masters = [(s, s.master) for s in cv.shards if s.master is not None]
    eligible = {c.domains[top] for s in cv.shards for c in s.healthy if c.domains[top] != UNKNOWN_DOMAIN}
    before_counts = Counter(m.domains[top] for _, m in masters)
    domains = sorted(eligible | set(before_counts), key=natural_key)
    before = {d: before_counts.get(d, 0) for d in domains}
    limit = math.ceil(len(masters) / 2) if cv.quorum_applies and masters else None
    notes: list[str] = []
    for s in cv.shards:
        if s.master is None:
            notes.append(f"shard {s.shard}: no master known, left out")
    if cv.kind == KIND_SENTINEL:
        return Plan(cv.id, level, (), before, before, limit, tuple(notes + [
            "Sentinel picks the replica it promotes (SENTINEL FAILOVER); steer it with replica-priority"]))
    if cv.kind != KIND_CLUSTER:
        return Plan(cv.id, level, (), before, before, limit, tuple(notes + [
            "no live topology: refresh it (report --refresh-live) to know roles and in-sync replicas"]))

    chosen = _solve(cv, masters, domains, top, placement.max_lag)
    moves = [(s, m, r) for (s, m), r in zip(masters, chosen) if r is not None]
    steps = _order(cv.id, moves, dict(before), top)
    after = dict(before)
    for step in steps:
        after[step.from_domain] -= 1
        after[step.to_domain] += 1
    plan = Plan(cv.id, level, tuple(steps), before, after, limit, ())
    if not plan.goal_met:
        notes.extend(_why_not(cv, masters, after, top, placement.max_lag, limit, level))
    return Plan(cv.id, level, tuple(steps), before, after, limit, tuple(notes))


def _candidates(shard: ShardView, master: CopyView, top: int, max_lag: int,
                masters_on_node: Mapping[str, int]) -> dict[str, tuple[int, CopyView]]:
    """The best in-sync replica in each other known domain, with its move cost adjustment."""
    best: dict[str, tuple[tuple[Any, ...], int, CopyView]] = {}
    for c in shard.copies:
        domain = c.domains[top]
        if (c is master or not c.in_sync(max_lag) or c.replicates != master.pod
                or domain == UNKNOWN_DOMAIN or domain == master.domains[top]):
            continue
        restores = c.cached_role is Role.MASTER
        crowded_node = masters_on_node.get(c.node, 0) > 0
        rank = (not restores, crowded_node, c.lag or 0, natural_key(c.pod))
        adjust = (-2 if restores else 0) + (1 if crowded_node else 0)
        if domain not in best or rank < best[domain][0]:
            best[domain] = (rank, adjust, c)
    return {d: (adjust, c) for d, (_, adjust, c) in sorted(best.items(), key=lambda kv: natural_key(kv[0]))}


def _solve(cv: ClusterView, masters: list[tuple[ShardView, CopyView]], domains: list[str], top: int,
           max_lag: int) -> list[CopyView | None]:
    """Per shard (in `masters` order): the replica to promote, or None to keep the master."""
    m = len(masters)
    if m == 0:
        return []
    w_move = 4 * (m + 1)
    big = (m + 1) * (w_move + 1) + 1
    masters_on_node = Counter(master.node for _, master in masters)
    dindex = {d: i for i, d in enumerate(domains)}
    source, first_shard = 0, 1
    first_domain = first_shard + m
    sink = first_domain + len(domains)
    flow = _MinCostFlow(sink + 1)
    options: list[list[tuple[tuple[int, int], CopyView | None]]] = []  # per shard: (edge, replica)
    reach: Counter[str] = Counter()
    for i, (shard, master) in enumerate(masters):
        vertex = first_shard + i
        flow.add(source, vertex, 1, 0)
        here = master.domains[top]
        stay = flow.add(vertex, first_domain + dindex[here], 1, 0)
        edges: list[tuple[tuple[int, int], CopyView | None]] = [(stay, None)]
        reach[here] += 1
        for domain, (adjust, replica) in _candidates(shard, master, top, max_lag, masters_on_node).items():
            if domain in dindex:
                edges.append((flow.add(vertex, first_domain + dindex[domain], 1, w_move + adjust), replica))
                reach[domain] += 1
        options.append(edges)
    for d, i in dindex.items():
        for k in range(1, reach[d] + 1):
            flow.add(first_domain + i, sink, 1, big * (2 * k - 1))
    flow.run(source, sink, m)
    return [next(replica for edge, replica in edges if flow.used(edge)) for edges in options]


def _order(cluster: str, moves: list[tuple[ShardView, CopyView, CopyView]], counts: dict[str, int],
           top: int) -> list[Step]:
    steps: list[Step] = []
    remaining = list(moves)
    while remaining:
        def gain(move: tuple[ShardView, CopyView, CopyView]) -> tuple[Any, ...]:
            shard, master, replica = move
            return (-(counts[master.domains[top]] - counts[replica.domains[top]]), natural_key(shard.shard))
        remaining.sort(key=gain)
        shard, master, replica = remaining.pop(0)
        src, dst = master.domains[top], replica.domains[top]
        counts[src] -= 1
        counts[dst] += 1
        steps.append(Step(len(steps) + 1, cluster, shard.shard, replica.pod, master.pod, replica.node,
                          src, dst, replica.lag))
    return steps


def _why_not(cv: ClusterView, masters: list[tuple[ShardView, CopyView]], after: Mapping[str, int],
             top: int, max_lag: int, limit: int | None, level: str) -> list[str]:
    notes = []
    domains = [d for d in after if d != UNKNOWN_DOMAIN]
    if limit is not None and domains and math.ceil(len(masters) / len(domains)) >= limit:
        notes.append(f"quorum cannot be safe: {len(masters)} masters over {len(domains)} {level}s put "
                     f"at least {math.ceil(len(masters) / len(domains))} in one (limit {limit - 1})")
    crowded = {d for d, n in after.items() if n == max(after.values())}
    for shard, master in masters:
        if master.domains[top] not in crowded:
            continue
        stuck = [c for c in shard.copies if c is not master and c.role is Role.REPLICA
                 and c.domains[top] != master.domains[top]]
        if stuck and not any(c.in_sync(max_lag) and c.replicates == master.pod
                             and c.domains[top] != UNKNOWN_DOMAIN for c in stuck):
            why = ", ".join(f"{c.pod}: {_sync_reason(c, max_lag, master.pod, top)}" for c in stuck)
            notes.append(f"shard {shard.shard}: no in-sync replica outside {level} {master.domains[top]} ({why})")
        elif not stuck:
            notes.append(f"shard {shard.shard}: no replica outside {level} {master.domains[top]}")
    if not notes:
        notes.append(f"master skew <= 1 is not reachable by failovers alone at the {level} level")
    return notes


def _sync_reason(c: CopyView, max_lag: int, master_pod: str, top: int) -> str:
    if c.domains[top] == UNKNOWN_DOMAIN:
        return "unknown domain"
    if not c.healthy:
        return "not healthy"
    if c.link_up is not True:
        return "link down" if c.link_up is False else "link state unknown"
    if c.replicates != master_pod:
        return f"replicates {c.replicates or 'an unknown master'}"
    if c.lag is None:
        return "offset unknown"
    return f"lag {c.lag} > {max_lag}"


class _MinCostFlow:
    """Successive shortest paths with Bellman-Ford (FIFO queue); deterministic by construction."""

    def __init__(self, n: int):
        self.graph: list[list[list[int]]] = [[] for _ in range(n)]  # [to, cap, cost, rev]

    def add(self, u: int, v: int, cap: int, cost: int) -> tuple[int, int]:
        self.graph[u].append([v, cap, cost, len(self.graph[v])])
        self.graph[v].append([u, 0, -cost, len(self.graph[u]) - 1])
        return (u, len(self.graph[u]) - 1)

    def used(self, edge: tuple[int, int]) -> bool:
        return self.graph[edge[0]][edge[1]][1] == 0

    def run(self, s: int, t: int, units: int) -> int:
        n = len(self.graph)
        total = 0
        for _ in range(units):
            dist = [math.inf] * n
            prev: list[tuple[int, int] | None] = [None] * n
            queued = [False] * n
            dist[s] = 0
            queue = deque([s])
            queued[s] = True
            while queue:
                u = queue.popleft()
                queued[u] = False
                for i, (v, cap, cost, _) in enumerate(self.graph[u]):
                    if cap > 0 and dist[u] + cost < dist[v]:
                        dist[v] = dist[u] + cost
                        prev[v] = (u, i)
                        if not queued[v]:
                            queue.append(v)
                            queued[v] = True
            if dist[t] == math.inf:
                break
            v = t
            while v != s:
                step = prev[v]
                assert step is not None
                u, i = step
                edge = self.graph[u][i]
                edge[1] -= 1
                self.graph[v][edge[3]][1] += 1
                v = u
            total += int(dist[t])
        return total
