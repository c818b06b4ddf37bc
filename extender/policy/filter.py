"""The filter verdicts: which candidates may take the pod, and why the others may not.

Order of the rules, each applied to the survivors of the previous one:
1. Room: a node not Ready in the cache, or whose memory headroom (allocatable minus the
   requests of every pod on it, including those this service placed and the cache has not
   yet seen from the API) is below the pod's memory request. Preemption may help: these go to
   FailedNodes.
2. The node rule (hard, never relaxed): no two copies of one shard on one node.
3. Each higher level, from the largest (region) down: keep the candidates whose domain holds
   the fewest copies of the shard. When some candidate's domain holds none, that rejects every
   domain holding a copy (and every unknown domain); when all hold some, the least crowded
   stay, so the pod is never left Pending for want of a perfect spot. Levels with a single
   known domain constrain nothing.
Rules 2 and 3 reject as FailedAndUnresolvableNodes: evicting a sibling copy is never a fix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ..model import Copy, Node, PodRequest, Snapshot
from ..quantity import human_bytes
from . import spread as spreadmod

# Reasons shown in the pod's FailedScheduling event: written for the person reading it.
NOT_READY = "node is not Ready (cached node status)"
NO_ROOM = "memory headroom {headroom} < request {request} (allocatable {allocatable}, requested {requested})"
NODE_HOLDS_COPY = "{node} already holds shard {shard} of {cluster} ({copies})"
DOMAIN_HOLDS_COPY = "{domain} already holds shard {shard} of {cluster} ({copies}); {title}s without a copy are available"
DOMAIN_CROWDED = "{domain} holds {count} copies of shard {shard} of {cluster} ({copies}); {title}s holding {best} are available"
DOMAIN_UNKNOWN = ("{title} unknown (node has no {label} label) while shard {shard} of {cluster} has copies; "
                  "{title}s known to hold {best} copies are available")


class Outcome(str, Enum):
    PASSTHROUGH = "passthrough"  # not a Redis pod
    SPREAD = "spread"  # every level's best (copy-free) domains were available
    RELAXED = "relaxed"  # some level had no copy-free candidate: least crowded kept
    NO_FIT = "no_fit"  # nothing survived (resources or node rule)


@dataclass
class FilterResult:
    accepted: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)
    outcome: Outcome = Outcome.SPREAD
    unknown_domain_nodes: int = 0


def _describe(copies: list[Copy]) -> str:
    return "; ".join(f"{c.pod_name}, {c.role.value}" for c in copies)


def filter_nodes(pod: PodRequest, candidates: list[str], snapshot: Snapshot,
                 own_node: str | None = None) -> FilterResult:
    if pod.member is None:
        return FilterResult(accepted=list(candidates), outcome=Outcome.PASSTHROUGH)
    result = FilterResult(accepted=[])
    survivors = _room(pod, candidates, snapshot, result)
    member = pod.member
    if member.shard is not None:
        view = spreadmod.build(member, snapshot, pod.key, own_node)
        cluster, shard = member.cluster_name, member.shard
        kept = []
        for name in survivors:
            held = view.copy_nodes.get(name)
            if held:
                result.unresolvable[name] = NODE_HOLDS_COPY.format(
                    node=name, shard=shard, cluster=cluster, copies=_describe(held))
            else:
                kept.append(name)
        survivors = kept
        for level in sorted((lv for lv in view.levels if lv.active), key=lambda lv: -lv.index):
            survivors = _level(level, survivors, snapshot, result, cluster, shard)
        result.unknown_domain_nodes = sum(
            1 for name in candidates if None in snapshot.node(name).domains)
    result.accepted = survivors
    if not survivors:
        result.outcome = Outcome.NO_FIT
    return result


def _room(pod: PodRequest, candidates: list[str], snapshot: Snapshot, result: FilterResult) -> list[str]:
    kept = []
    for name in candidates:
        node = snapshot.nodes.get(name)
        if node is None:  # not cached: the scheduler's own resource filter has judged it
            kept.append(name)
        elif not node.ready:
            result.failed[name] = NOT_READY
        elif (headroom := snapshot.memory_headroom(node)) is not None and headroom < pod.memory_request:
            result.failed[name] = NO_ROOM.format(
                headroom=human_bytes(headroom), request=human_bytes(pod.memory_request),
                allocatable=human_bytes(node.allocatable_memory),
                requested=human_bytes(snapshot.requested_memory.get(name, 0)))
        else:
            kept.append(name)
    return kept


def _level(level: spreadmod.LevelView, survivors: list[str], snapshot: Snapshot,
           result: FilterResult, cluster: str, shard: str) -> list[str]:
    if not survivors:
        return survivors
    crowd = {name: level.copies.at(_value(snapshot.node(name), level.index)) for name in survivors}
    best = min(crowd.values())
    if best > 0:
        result.outcome = Outcome.RELAXED
    kept = []
    for name in survivors:
        count = crowd[name]
        if count == best:
            kept.append(name)
            continue
        value = _value(snapshot.node(name), level.index)
        if value is None:
            reason = DOMAIN_UNKNOWN.format(title=level.title, label=level.label, shard=shard,
                                           cluster=cluster, best=best)
        elif best == 0:
            reason = DOMAIN_HOLDS_COPY.format(domain=value, shard=shard, cluster=cluster,
                                              copies=_describe(level.holders.get(value, [])), title=level.title)
        else:
            reason = DOMAIN_CROWDED.format(domain=value, count=count, shard=shard, cluster=cluster,
                                           copies=_describe(level.holders.get(value, [])),
                                           title=level.title, best=best)
        result.unresolvable[name] = reason
    return kept


def _value(node: Node, index: int) -> str | None:
    return node.domains[index] if index < len(node.domains) else None
