"""The filter verdicts: which candidates may take the pod, and why the others may not.

Order of the rules, each applied to the survivors of the previous one:
1. The node rule (hard, never relaxed): no two copies of one shard on one node.
2. Room: a node not Ready in the cache, or whose memory headroom (allocatable minus the
   requests of every pod on it, including those this service placed and the cache has not
   yet seen from the API) is below the pod's memory request. Preemption may help: these go to
   FailedNodes (a node failing rule 1 too is unresolvable, so it is judged there first).
   The pod's nominated node (status.nominatedNodeName) is not judged on headroom: the
   scheduler preempted there to make room, and its victims' deletions reach this state
   later than the scheduler's retry (it would park the pod as unschedulable meanwhile).
3. Each higher level, from the largest (region) down: keep the candidates whose domain holds
   the fewest copies of the shard. When some candidate's domain holds none, that rejects every
   domain holding a copy (and every unknown domain); when all hold some, the least crowded
   stay, so the pod is never left Pending for want of a perfect spot. Levels with a single
   known domain constrain nothing.
4. A pod that will be a master (policy sees Role.MASTER: role label, live role, the ordinal
   rule or the operator's convention): among the survivors of 1-3, each level from the
   largest down keeps the domains holding the fewest masters of the pod's cluster (placed,
   plus siblings reserved in flight: ClusterCounts.reserved). Relaxed like rule 3: the least
   crowded survivors always stay, so it never leaves a pod Pending. Quorum safety follows:
   with three or more domains at the top active level, a domain that would then hold half
   or more of the cluster's masters is kept only when every survivor would (the fewest-masters
   survivor is the safest one there is); QUORUM_UNSAFE names it when it loses. An unknown
   domain counts as holding half a master more than the most crowded known one: a master
   lands there only when no known domain survived the shard rules. The node is rule 4's last
   level even when the configured levels leave it out.
5. A master goes to one domain per level (above the node): of the domains rule 4 left, the
   one holding the fewest pods of its cluster (in flight included), then the highest hash of
   (pod, domain), or the pod's nominated node's. Its sibling masters in flight count it where
   it is reserved; left a choice of zones, the scheduler's own plugins could bind it in
   another zone than the reserved one, the siblings' filters would have counted it in the
   wrong zone, and a bind refused for it (policy/bindcheck.py) retries it after its shard's
   replicas, which then decide its zone by the shard rule. The nodes of the chosen domain
   all stay (the scheduler still picks among them); not done at the bind's re-check.
Rules 1, 3, 4 and 5 reject as FailedAndUnresolvableNodes: evicting a sibling copy is never a fix.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

import numpy as np

from extender.core.model import HOSTNAME_LABEL, Copy, PodRequest, Role, Snapshot
from extender.core.quantity import human_bytes
from extender.policy import spread as spreadmod
from extender.policy.candidates import UNKNOWN_CODE, Candidates, Tables, fast_counts, view

# Reasons shown in the pod's FailedScheduling event: written for the person reading it.
NOT_READY = "node is not Ready (cached node status)"
NO_ROOM = "memory headroom {headroom} < request {request} (allocatable {allocatable}, requested {requested})"
NODE_HOLDS_COPY = "{node} already holds shard {shard} of {cluster} ({copies})"
DOMAIN_HOLDS_COPY = "{domain} already holds shard {shard} of {cluster} ({copies}); {title}s without a copy are available"
DOMAIN_CROWDED = "{domain} holds {count} of shard {shard} of {cluster} ({copies}); {title}s holding {best} are available"
DOMAIN_UNKNOWN = ("{title} unknown ({why}) while shard {shard} of {cluster} has copies; "
                  "{title}s known to hold {best} are available")
MASTERS_CROWDED = ("{domain} holds {count} of {cluster}'s masters; a master goes to the {title}s "
                   "holding {best}")
ONE_DOMAIN = ("a master of {cluster} goes to one {title} at a time: {chosen} (as few of its masters, "
              "the fewest of its pods), where its siblings in flight count it")
MASTERS_UNKNOWN = ("{title} unknown ({why}): a master of {cluster} goes to a {title} known to hold "
                   "{best} of its masters")
QUORUM_UNSAFE = ("{domain} would hold {after} of {total} masters of {cluster} (half or more: losing it "
                 "loses the quorum); {title}s that stay below half are available")

UNKNOWN_MASTERS = 0.5  # a domain that is unknown holds this many more masters than the most crowded one


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
    eligible: list[str] = field(default_factory=list)  # fit and hold no copy: what the levels chose from
    eligible_paths: list[tuple[str | None, ...]] = field(default_factory=list)  # their domains, node level blanked


def _describe(copies: list[Copy]) -> str:
    return "; ".join(f"{c.pod_name}, {c.role.value}" for c in copies)


def filter_nodes(pod: PodRequest, candidates: list[str], snapshot: Snapshot,
                 own_node: str | None = None, tables: Tables | None = None,
                 node_masters: bool = True) -> FilterResult:
    """`tables`: the snapshot as arrays (candidates.Tables), the fast path; same verdicts.
    `node_masters` False: rule 4 above the node level only (the bind's re-check, which knows
    the domains the filter chose from, not their nodes)."""
    if pod.member is None:
        return FilterResult(accepted=list(candidates), outcome=Outcome.PASSTHROUGH)
    result = FilterResult(accepted=[])
    cand = view(snapshot, candidates, tables)
    alive = np.ones(len(cand), dtype=bool)
    member = pod.member
    if member.shard is None:
        _room(pod, cand, alive, result)
    else:
        spread = spreadmod.build(member, snapshot, pod.key, own_node, fast_counts(tables))
        cluster, shard = member.cluster_name, member.shard
        _node_rule(cand, spread, alive, result, cluster, shard)  # first: unresolvable, whatever the room
        _room(pod, cand, alive, result)
        eligible = np.flatnonzero(alive)
        result.eligible = cand.names_at(eligible)
        result.eligible_paths = _paths(cand, eligible, snapshot.level_names)
        active = sorted((lv for lv in spread.levels if lv.active), key=lambda lv: -lv.index)
        for level in active:
            _level(level, cand, alive, result, cluster, shard)
        if member.role is Role.MASTER:
            _masters([lv for lv in active if node_masters or lv.label != HOSTNAME_LABEL], cand, alive, result, cluster)
            if node_masters:
                _one_domain([lv for lv in active if lv.label != HOSTNAME_LABEL], cand, alive, result, cluster,
                            pod.key, pod.nominated_node)
            if node_masters and HOSTNAME_LABEL not in snapshot.level_names:
                _masters_per_node(spread.masters_per_node, cand, alive, result, cluster)
        if active:
            unknown = (cand.codes[[lv.index for lv in active]] == UNKNOWN_CODE).any(axis=0)
            result.unknown_domain_nodes = int(unknown.sum())
    result.accepted = cand.names_at(np.flatnonzero(alive))
    if not result.accepted:
        result.outcome = Outcome.NO_FIT
    return result


def _node_rule(cand: Candidates, spread: spreadmod.Spread, alive: np.ndarray, result: FilterResult,
               cluster: str, shard: str) -> None:
    if not spread.copy_nodes:
        return
    names = cand.names
    for i in cand.positions(spread.copy_nodes.keys()):
        name = names[i]
        alive[i] = False
        result.unresolvable[name] = NODE_HOLDS_COPY.format(
            node=name, shard=shard, cluster=cluster, copies=_describe(spread.copy_nodes[name]))


def _room(pod: PodRequest, cand: Candidates, alive: np.ndarray, result: FilterResult) -> None:
    want = pod.memory_request
    with np.errstate(invalid="ignore"):
        short = cand.alloc_mem - cand.req_mem < want  # False where allocatable is unknown (nan)
    if pod.nominated_node:
        short[cand.positions([pod.nominated_node])] = False
    failing = alive & (~cand.ready | short)
    for i in np.flatnonzero(failing).tolist():
        alive[i] = False
        name = cand.names[i]
        if not cand.ready[i]:
            result.failed[name] = NOT_READY
            continue
        allocatable, requested = int(cand.alloc_mem[i]), int(cand.req_mem[i])
        result.failed[name] = NO_ROOM.format(
            headroom=human_bytes(allocatable - requested), request=human_bytes(want),
            allocatable=human_bytes(allocatable), requested=human_bytes(requested))


def _level(level: spreadmod.LevelView, cand: Candidates, alive: np.ndarray, result: FilterResult,
           cluster: str, shard: str) -> None:
    """Keep the least crowded domains at this level: one gather from a per-domain table;
    reasons are made once per rejected domain, which a zone's nodes share."""
    positions = np.flatnonzero(alive)
    if not positions.size:
        return
    codes = cand.codes[level.index, positions]
    table = cand.coder.table(level.index, level.copies.known, level.copies.at(None))
    crowd = table[codes]
    best = crowd.min()
    if best > 0:
        result.outcome = Outcome.RELAXED
    losing = crowd != best
    if not losing.any():
        return
    rejected = positions[losing]
    alive[rejected] = False
    rejected_codes = codes[losing]
    rejected_known = cand.known[rejected]
    for code in np.unique(rejected_codes).tolist():  # one reason per rejected domain
        for known in (True, False):
            mask = (rejected_codes == code) & (rejected_known == known)
            if mask.any():
                count = int(crowd[losing][mask][0])
                reason = _level_reason(level, cand.coder.value(level.index, code), known, count, int(best),
                                       cluster, shard)
                result.unresolvable.update(dict.fromkeys(cand.names_at(rejected[mask]), reason))


def _masters(active: list[spreadmod.LevelView], cand: Candidates, alive: np.ndarray, result: FilterResult,
             cluster: str) -> None:
    """Rule 4: top-down, keep the survivors whose domain holds the fewest of the cluster's
    masters; the quorum check first at the top level (three or more domains there)."""
    for rank, level in enumerate(active):
        positions = np.flatnonzero(alive)
        if positions.size <= 1:
            return
        codes = cand.codes[level.index, positions]
        # unknown: more crowded than the most crowded known domain, so never chosen over one
        table = cand.coder.table(level.index, level.masters.known, level.masters.at(None) + UNKNOWN_MASTERS)
        crowd = table[codes]
        best = crowd.min()
        losing = crowd != best
        if not losing.any():
            continue
        total = sum(level.masters.known.values()) + level.masters.unknown + 1  # with this pod
        top = rank == 0 and len({c for c in codes.tolist() if c != UNKNOWN_CODE} |
                                set(level.masters.known)) >= 3
        rejected = positions[losing]
        alive[rejected] = False
        rejected_codes = codes[losing]
        rejected_known = cand.known[rejected]
        for code in np.unique(rejected_codes).tolist():
            for known in (True, False):
                mask = (rejected_codes == code) & (rejected_known == known)
                if not mask.any():
                    continue
                count = int(np.floor(crowd[losing][mask][0]))
                value = cand.coder.value(level.index, code)
                if value is None:
                    why = f"node has no {level.label} label" if known else "node not in the extender's cache yet"
                    reason = MASTERS_UNKNOWN.format(title=level.title, why=why, cluster=cluster, best=int(np.floor(best)))
                elif top and 2 * (count + 1) >= total > 2 * (best + 1):
                    reason = QUORUM_UNSAFE.format(domain=value, after=count + 1, total=total, cluster=cluster,
                                                  title=level.title)
                else:
                    reason = MASTERS_CROWDED.format(domain=value, count=count, cluster=cluster,
                                                    title=level.title, best=int(np.floor(best)))
                result.unresolvable.update(dict.fromkeys(cand.names_at(rejected[mask]), reason))


def _one_domain(levels: list[spreadmod.LevelView], cand: Candidates, alive: np.ndarray, result: FilterResult,
                cluster: str, pod_key: str, nominated: str) -> None:
    """Rule 5, top-down over the levels above the node: the survivors of one domain stay."""
    at_nominated = cand.positions([nominated]) if nominated else []
    for level in levels:
        positions = np.flatnonzero(alive)
        if positions.size <= 1:
            return
        codes = cand.codes[level.index, positions]
        distinct = np.unique(codes).tolist()
        if len(distinct) <= 1:
            continue
        kept_nominated = [i for i in at_nominated if alive[i]]
        if kept_nominated:
            chosen = int(cand.codes[level.index, kept_nominated[0]])
        else:
            pods = cand.coder.table(level.index, level.cluster_pods.known, level.cluster_pods.at(None))
            fewest = min(pods[c] for c in distinct)
            chosen = max((c for c in distinct if pods[c] == fewest),
                         key=lambda c: zlib.crc32(f"{pod_key}\0{cand.coder.value(level.index, c)}".encode()))
        losing = codes != chosen
        alive[positions[losing]] = False
        reason = ONE_DOMAIN.format(cluster=cluster, title=level.title,
                                   chosen=cand.coder.value(level.index, chosen) or f"an unknown {level.title}")
        result.unresolvable.update(dict.fromkeys(cand.names_at(positions[losing]), reason))


def _masters_per_node(masters: dict[str, int], cand: Candidates, alive: np.ndarray, result: FilterResult,
                      cluster: str) -> None:
    """Rule 4's last level when the configured levels leave the node out: the survivors on
    the nodes holding the fewest of the cluster's masters."""
    positions = np.flatnonzero(alive)
    if positions.size <= 1 or not masters:
        return
    names = cand.names_at(positions)
    crowd = np.array([masters.get(n, 0) for n in names])
    best = int(crowd.min())
    for i in np.flatnonzero(crowd != best).tolist():
        alive[positions[i]] = False
        result.unresolvable[names[i]] = MASTERS_CROWDED.format(domain=names[i], count=int(crowd[i]), cluster=cluster,
                                                               title="node", best=best)


def _paths(cand: Candidates, positions: np.ndarray, levels: Sequence[str]) -> list[tuple[str | None, ...]]:
    """Distinct domain paths of the given candidates, without the node level (a zone's
    thousand nodes are one choice): what the bind-time re-check compares against."""
    if not positions.size:
        return []
    keep = [i for i, label in enumerate(levels) if label != HOSTNAME_LABEL]
    key = np.zeros(positions.size, dtype=np.int64)
    for level in keep:  # one mixed-radix integer per path: a 1-D unique is cheap
        key = key * (cand.coder.size(level) + 1) + (cand.codes[level, positions] + 1)
    _, first = np.unique(key, return_index=True)
    paths = set()
    for i in positions[first].tolist():
        path: list[str | None] = [None] * len(levels)
        for level in keep:
            path[level] = cand.coder.value(level, int(cand.codes[level, i]))
        paths.add(tuple(path))
    return sorted(paths, key=lambda p: tuple("" if v is None else v for v in p))


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
