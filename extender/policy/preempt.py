"""Preemption that respects shards: which of the scheduler's candidate nodes to keep.

kube-scheduler proposes, per node, the victims whose eviction lets the preemptor fit; the
extender may only take nodes out (or victims' nodes), never add a victim. For each node:

1. The preemptor's own rules (a Redis preemptor only): the node rule and the level rules
   of policy/filter.py, with room ignored (evicting the victims is what makes room), among
   every Ready node of the state: a zone holding a copy is not "least crowded" only because
   the copy-free zones sent no candidate this time. A node with no victims is one the extender's filter rejected while it
   fit (schedulers with kubernetes#135486 send such nodes; v1.37.2 does not): nothing evicted changes that
   verdict, so it is left out to stay rejected.
2. The victims (any preemptor): a node is dropped when its victims include Redis copies whose
   eviction, all of this node's victims together, would
   - leave their shard with no healthy copy outside one domain at some level that now spreads
     it (the last copy of the shard in a zone, or its last copy at all);
   - take a master whose shard has no healthy, in-sync replica on another node;
   - take half or more of their cluster's masters (its failover quorum).
3. Preference: when some survivor's victims hold no Redis copy, only those are kept (a clean
   choice exists); otherwise every survivor stays.

A non-Redis preemptor whose victims are not Redis copies passes through unchanged.
Pure: the state (copies of the victims' shards, live health) is read by state/victims.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from extender.core.model import HOSTNAME_LABEL, Copy, CopyHealth, PodRequest, Role, Snapshot, Victim, VictimSet
from extender.policy.filter import filter_nodes

NO_VICTIMS = ("no victims: the extender's filter rejected this node while the pod fit, and "
              "preempting nothing does not change that")
LAST_IN_DOMAIN = ("evicting {pod} would leave shard {shard} of {cluster} with no healthy copy outside "
                  "{where}")
LAST_COPY = "evicting {pod} would leave shard {shard} of {cluster} with no healthy copy"
NO_INSYNC_REPLICA = ("evicting master {pod} of shard {shard} of {cluster}: no healthy, in-sync replica "
                     "on another node")
QUORUM = "evicting {count} of the {total} masters of {cluster} loses its failover quorum"
NOT_CLEAN = "victims include Redis copies ({pods}); nodes whose victims are not Redis copies are available"

ShardKey = tuple[str, str]  # (cluster "ns/name", shard)


@dataclass(frozen=True)
class VictimState:
    """What the state says of the victims' deployments: every copy of each shard of the
    clusters the Redis victims belong to (roles included), and live health by pod."""

    shards: Mapping[ShardKey, tuple[Copy, ...]] = field(default_factory=dict)
    health: Mapping[str, CopyHealth] = field(default_factory=dict)


@dataclass
class PreemptResult:
    kept: dict[str, VictimSet]
    dropped: dict[str, str] = field(default_factory=dict)  # node -> reason
    passthrough: bool = False
    kinds: dict[str, str] = field(default_factory=dict)  # node -> no_victims | rules | shard | not_clean

    def drop(self, node: str, kind: str, reason: str) -> None:
        self.dropped[node] = reason
        self.kinds[node] = kind


def preempt_nodes(pod: PodRequest, victims: Mapping[str, VictimSet], snapshot: Snapshot,
                  state: VictimState, own_node: str | None = None) -> PreemptResult:
    """`snapshot`: the preemptor's shard and the nodes, as for filter; `state`: the victims'."""
    result = PreemptResult(kept={})
    any_copies = any(v.copies for v in victims.values())
    if pod.member is None and not any_copies:
        result.kept = dict(victims)
        result.passthrough = True
        return result

    candidates = list(victims)
    if pod.member is not None:
        with_victims = [n for n in candidates if victims[n].victims]
        for node in candidates:
            if not victims[node].victims:
                result.drop(node, "no_victims", NO_VICTIMS)
        # Judged among every Ready node, not the candidates alone: preemption makes room
        # anywhere (and a node freed a moment ago is no candidate), so a zone holding a copy
        # is never "the least crowded" only because the copy-free zones sent no candidate.
        chosen = set(with_victims)
        others = [n for n, node in snapshot.nodes.items() if n not in chosen and node.ready]
        verdict = filter_nodes(pod, with_victims + others, _room_ignored(snapshot), own_node)
        for node, reason in {**verdict.failed, **verdict.unresolvable}.items():
            if node in chosen:
                result.drop(node, "rules", reason)
        candidates = [n for n in with_victims if n not in result.dropped]

    survivors = []
    masters = cluster_masters(state)
    for node in candidates:
        reason = victims_reason(victims[node], snapshot, state, masters)
        if reason:
            result.drop(node, "shard", reason)
        else:
            survivors.append(node)

    clean = [n for n in survivors if not victims[n].copies]
    if clean and len(clean) < len(survivors):
        keep = set(clean)
        for node in survivors:
            if node not in keep:
                result.drop(node, "not_clean", NOT_CLEAN.format(pods=", ".join(v.pod or v.uid for v in victims[node].copies)))
        survivors = clean
    result.kept = {n: victims[n] for n in survivors}
    return result


def _room_ignored(snapshot: Snapshot) -> Snapshot:
    """The snapshot with nothing requested on any node: the victims make the room."""
    return replace(snapshot, requested_memory={}, requested_cpu={})


def cluster_masters(state: VictimState) -> dict[str, set[str]]:
    """The healthy masters (pods) of each cluster, its failover quorum: once per call."""
    masters: dict[str, set[str]] = {}
    for (cluster, _), shard_copies in state.shards.items():
        masters.setdefault(cluster, set()).update(c.pod for c in shard_copies
                                                  if c.role is Role.MASTER and _healthy(c, state))
    return masters


def victims_reason(victim_set: VictimSet, snapshot: Snapshot, state: VictimState,
                   masters: Mapping[str, set[str]] | None = None) -> str:
    """Why evicting this node's victims together costs a shard too much ("" when it does not)."""
    copies = victim_set.copies
    if not copies:
        return ""
    evicted = {v.pod for v in copies}
    by_shard: dict[ShardKey, list[Victim]] = {}
    for v in copies:
        assert v.member is not None and v.member.shard is not None
        by_shard.setdefault((v.member.cluster, v.member.shard), []).append(v)
    for (cluster, shard), gone in sorted(by_shard.items()):
        name = cluster.split("/", 1)[-1]
        before = [c for c in state.shards.get((cluster, shard), ()) if _healthy(c, state)]
        if not any(c.pod == v.pod for c in before for v in gone):
            continue  # not a copy the state counts (already unhealthy, or unknown): nothing lost
        after = [c for c in before if c.pod not in evicted]
        pod = gone[0].pod
        if not after:
            return LAST_COPY.format(pod=pod, shard=shard, cluster=name)
        for index, label in enumerate(snapshot.level_names):
            spans_before = _domains(before, snapshot, index)
            spans_after = _domains(after, snapshot, index)
            if len(spans_before) > 1 and len(spans_after) <= 1:
                where = f"{label} {next(iter(spans_after))}" if spans_after else f"one {label}"
                if label == HOSTNAME_LABEL:
                    where = f"node {next(iter(spans_after))}" if spans_after else "one node"
                return LAST_IN_DOMAIN.format(pod=pod, shard=shard, cluster=name, where=where)
        for v in gone:
            if _role(v, state, cluster, shard) is Role.MASTER:
                replicas = [c for c in after if c.role is Role.REPLICA and c.node != victim_set.node
                            and state.health.get(c.pod, CopyHealth()).in_sync is not False]
                if not replicas:
                    return NO_INSYNC_REPLICA.format(pod=v.pod, shard=shard, cluster=name)
    if masters is None:
        masters = cluster_masters(state)
    for cluster in sorted({k[0] for k in by_shard}):
        alive = masters.get(cluster, set())
        lost = alive & evicted
        if lost and len(alive) > 1 and 2 * len(lost) >= len(alive):
            return QUORUM.format(count=len(lost), total=len(alive), cluster=cluster.split("/", 1)[-1])
    return ""


def _healthy(copy: Copy, state: VictimState) -> bool:
    return not copy.reserved and state.health.get(copy.pod, CopyHealth()).healthy


def _role(victim: Victim, state: VictimState, cluster: str, shard: str) -> Role:
    """The stored role (live roles included) over the victim's labels."""
    for c in state.shards.get((cluster, shard), ()):
        if c.pod == victim.pod:
            return c.role
    return victim.member.role if victim.member else Role.UNKNOWN


def _domains(copies: list[Copy], snapshot: Snapshot, index: int) -> set[str]:
    """Known domains holding the copies at one level (unknown ones spread nothing)."""
    return {d for d in (snapshot.node(c.node).domains[index] for c in copies) if d is not None}
