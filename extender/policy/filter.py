"""The filter verdicts: which candidates may take the pod, and why the others may not.

Order of the rules, each applied to the survivors of the previous one:
1. The node rule (hard, never relaxed): no two copies of one shard on one node.
2. Room: a node not Ready in the cache, or whose memory headroom (allocatable minus the
   requests of every pod on it, including those this service placed and the cache has not
   yet seen from the API) is below the pod's memory request. Preemption may help: these go to
   FailedNodes (a node failing rule 1 too is unresolvable, so it is judged there first).
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
DOMAIN_CROWDED = "{domain} holds {count} of shard {shard} of {cluster} ({copies}); {title}s holding {best} are available"
DOMAIN_UNKNOWN = ("{title} unknown ({why}) while shard {shard} of {cluster} has copies; "
                  "{title}s known to hold {best} are available")


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
    eligible: list[Node] = field(default_factory=list)  # fit and hold no copy: what the levels chose from


def _describe(copies: list[Copy]) -> str:
    return "; ".join(f"{c.pod_name}, {c.role.value}" for c in copies)


def filter_nodes(pod: PodRequest, candidates: list[str], snapshot: Snapshot,
                 own_node: str | None = None) -> FilterResult:
    if pod.member is None:
        return FilterResult(accepted=list(candidates), outcome=Outcome.PASSTHROUGH)
    result = FilterResult(accepted=[])
    nodes = [snapshot.node(name) for name in candidates]
    member = pod.member
    if member.shard is None:
        survivors = _room(pod, nodes, snapshot, result)
    else:
        view = spreadmod.build(member, snapshot, pod.key, own_node)
        cluster, shard = member.cluster_name, member.shard
        kept = []
        for node in nodes:  # the node rule first: such a node is unresolvable, whatever its room
            held = view.copy_nodes.get(node.name)
            if held:
                result.unresolvable[node.name] = NODE_HOLDS_COPY.format(
                    node=node.name, shard=shard, cluster=cluster, copies=_describe(held))
            else:
                kept.append(node)
        survivors = result.eligible = _room(pod, kept, snapshot, result)
        active = sorted((lv for lv in view.levels if lv.active), key=lambda lv: -lv.index)
        for level in active:
            survivors = _level(level, survivors, result, cluster, shard)
        indexes = [lv.index for lv in active]
        result.unknown_domain_nodes = sum(1 for node in nodes if any(node.domains[i] is None for i in indexes))
    result.accepted = [node.name for node in survivors]
    if not survivors:
        result.outcome = Outcome.NO_FIT
    return result


def _room(pod: PodRequest, candidates: list[Node], snapshot: Snapshot, result: FilterResult) -> list[Node]:
    kept = []
    requested = snapshot.requested_memory
    want = pod.memory_request
    for node in candidates:
        allocatable = node.allocatable_memory
        if not node.ready:
            result.failed[node.name] = NOT_READY
        elif allocatable is not None and allocatable - requested.get(node.name, 0) < want:
            result.failed[node.name] = NO_ROOM.format(
                headroom=human_bytes(allocatable - requested.get(node.name, 0)), request=human_bytes(want),
                allocatable=human_bytes(allocatable), requested=human_bytes(requested.get(node.name, 0)))
        else:  # fits, or not cached: the scheduler's own resource filter has judged it
            kept.append(node)
    return kept


def _level(level: spreadmod.LevelView, survivors: list[Node], result: FilterResult,
           cluster: str, shard: str) -> list[Node]:
    """Keep the least crowded domains at this level. Crowding is computed once per distinct
    domain value, and reasons once per rejected domain: a zone's nodes share both."""
    if not survivors:
        return survivors
    index = level.index
    crowd_of: dict[str | None, int] = {}
    crowd = []
    for node in survivors:
        value = node.domains[index]
        count = crowd_of.get(value)
        if count is None:
            count = crowd_of[value] = level.copies.at(value)
        crowd.append(count)
    best = min(crowd)
    if best > 0:
        result.outcome = Outcome.RELAXED
    kept = []
    reasons: dict[tuple[str | None, bool], str] = {}
    for node, count in zip(survivors, crowd):
        if count == best:
            kept.append(node)
            continue
        value = node.domains[index]
        reason = reasons.get((value, node.known))
        if reason is None:
            reason = reasons[(value, node.known)] = _level_reason(level, value, node.known, count, best,
                                                                   cluster, shard)
        result.unresolvable[node.name] = reason
    return kept


def _level_reason(level: spreadmod.LevelView, value: str | None, known: bool, count: int, best: int,
                  cluster: str, shard: str) -> str:
    if value is None:
        why = f"node has no {level.label} label" if known else "node not in the extender's cache yet"
        return DOMAIN_UNKNOWN.format(title=level.title, why=why, shard=shard, cluster=cluster,
                                     best=_copies(best))
    copies = _describe(level.holders.get(value, []))
    if best == 0:
        return DOMAIN_HOLDS_COPY.format(domain=value, shard=shard, cluster=cluster, copies=copies,
                                        title=level.title)
    return DOMAIN_CROWDED.format(domain=value, count=_copies(count), shard=shard, cluster=cluster,
                                 copies=copies, title=level.title, best=_copies(best))


def _copies(count: int) -> str:
    return f"{count} copy" if count == 1 else f"{count} copies"
