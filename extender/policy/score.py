"""Prioritize scores: 0..10 per candidate, the best placement always 10 and the worst 0.

raw(node) = sum over active levels i of  w_i * ( W_shard   * fewest(copies of the shard in the node's domain)
                                              + W_cluster * fewest(pods of the cluster in it)
                                              + W_masters * fewest(masters of the cluster in it)  [masters only] )
          + W_headroom * mean(free memory fraction, free CPU fraction) after placing the pod

fewest(count) = (max - count) / (max - min) over the candidates, 1 when all are equal, so each
term lies in 0..1 and is comparable across levels. Unknown domains count as the most crowded
known domain plus one half: never preferred. w_i defaults to 1, 2, 4, ... (higher levels weigh
more) and the W defaults (8, 2, 1, 0.5) make the order near-lexicographic: shard spread, then
cluster spread, then master balance, then room. Finally raw is stretched to 0..10 (min-max),
so the scheduler sees a clear preference; equal candidates all get NEUTRAL_SCORE.
"""
from __future__ import annotations

from ..model import Node, PodRequest, Role, Snapshot
from ..settings import Settings
from . import spread as spreadmod

MAX_SCORE = 10
NEUTRAL_SCORE = 0
UNKNOWN_PENALTY = 0.5


def score_nodes(pod: PodRequest, candidates: list[str], snapshot: Snapshot, settings: Settings,
                own_node: str | None = None) -> dict[str, int]:
    if pod.member is None or not candidates:
        return {name: NEUTRAL_SCORE for name in candidates}
    weights = settings.score
    level_weights = settings.level_weights
    view = spreadmod.build(pod.member, snapshot, pod.key, own_node)
    nodes = [snapshot.node(name) for name in candidates]
    raw = [0.0] * len(nodes)

    terms: list[tuple[float, spreadmod.Tally]] = []
    for level in view.levels:
        if not level.active:
            continue
        lw = level_weights[level.index]
        if pod.member.shard is not None:
            terms.append((lw * weights.shard, level.copies))
        terms.append((lw * weights.cluster, level.cluster_pods))
        if pod.member.role is Role.MASTER:
            terms.append((lw * weights.masters, level.masters))
        for weight, tally in terms:
            _add_fewest(raw, [_count(tally, n.domains[level.index]) for n in nodes], weight)
        terms.clear()

    if weights.headroom:
        for i, node in enumerate(nodes):
            raw[i] += weights.headroom * _headroom(node, pod, snapshot)
    return dict(zip(candidates, _stretch(raw)))


def _count(tally: spreadmod.Tally, value: str | None) -> float:
    if value is None:
        return tally.at(None) + UNKNOWN_PENALTY
    return tally.known.get(value, 0)


def _add_fewest(raw: list[float], counts: list[float], weight: float) -> None:
    if not weight:
        return
    low, high = min(counts), max(counts)
    if high == low:
        for i in range(len(raw)):
            raw[i] += weight
        return
    span = high - low
    for i, count in enumerate(counts):
        raw[i] += weight * (high - count) / span


def _headroom(node: Node, pod: PodRequest, snapshot: Snapshot) -> float:
    """Mean free fraction of memory and CPU once the pod is placed; 0 when unknown."""
    fractions = []
    for allocatable, requested, want in (
        (node.allocatable_memory, snapshot.requested_memory.get(node.name, 0), pod.memory_request),
        (node.allocatable_cpu, snapshot.requested_cpu.get(node.name, 0), pod.cpu_request),
    ):
        if not allocatable:
            fractions.append(0.0)
        else:
            fractions.append(min(1.0, max(0.0, (allocatable - requested - want) / allocatable)))
    return sum(fractions) / len(fractions)


def _stretch(raw: list[float]) -> list[int]:
    low, high = min(raw), max(raw)
    if high - low < 1e-9:
        return [NEUTRAL_SCORE] * len(raw)
    span = high - low
    return [int(round(MAX_SCORE * (value - low) / span)) for value in raw]
