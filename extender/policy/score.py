"""Prioritize scores: 0..10 per candidate, the best placement always 10 and the worst 0.

raw(node) = sum over active levels i of  w_i * ( W_shard   * fewest(copies of the shard in the node's domain)
                                              + W_cluster * fewest(pods of the cluster in it)
                                              + W_masters * fewest(masters of the cluster in it)  [masters only] )
          + W_headroom * mean(free memory fraction, free CPU fraction) after placing the pod

fewest(count) = 1 - rank / (ranks - 1), where rank is the count's place among the distinct
counts of the candidates (0 = fewest), 1 when all are equal: each term lies in 0..1, and an
outlier (one zone with 100 pods) does not squeeze the differences among the rest, which a
min-max scale would (then headroom could outweigh one pod of cluster spread). Unknown domains count as the most crowded
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

    for level in view.levels:
        if not level.active:
            continue
        lw = level_weights[level.index]
        terms: list[tuple[float, spreadmod.Tally]] = []
        if pod.member.shard is not None:
            terms.append((lw * weights.shard, level.copies))
        terms.append((lw * weights.cluster, level.cluster_pods))
        if pod.member.role is Role.MASTER:
            terms.append((lw * weights.masters, level.masters))
        _add_level(raw, [n.domains[level.index] for n in nodes], [t for t in terms if t[0]])

    if weights.headroom:
        _add_headroom(raw, nodes, pod, snapshot, weights.headroom)
    return dict(zip(candidates, _stretch(raw)))


def _count(tally: spreadmod.Tally, value: str | None) -> float:
    if value is None:
        return tally.at(None) + UNKNOWN_PENALTY
    return tally.known.get(value, 0)


def _add_level(raw: list[float], values: list[str | None], terms: list[tuple[float, spreadmod.Tally]]) -> None:
    """Add sum of weight * fewest(count) for one level.

    Sparse: most candidates sit in domains where every count is 0 ("plain"); only the few
    domains with pods (or unknown) are computed one by one. Raw scores are later min-max
    stretched, so the plain candidates' common term can be left out (a constant shift).
    """
    if not terms:
        return
    busy = set()
    for _, tally in terms:
        busy.update(tally.known)
    special = [i for i, v in enumerate(values) if v is None or v in busy]
    if not special:
        return
    has_plain = len(special) < len(values)
    delta = dict.fromkeys({values[i] for i in special}, 0.0)  # per distinct domain value
    for weight, tally in terms:
        counts = {value: _count(tally, value) for value in delta}
        ranks = sorted(set(counts.values()) | ({0.0} if has_plain else set()))
        if len(ranks) == 1:
            continue
        rank = {count: i for i, count in enumerate(ranks)}
        plain_term = weight if has_plain else 0.0  # plain candidates hold 0: the first rank, fewest = 1
        for value, count in counts.items():
            delta[value] += weight * (1 - rank[count] / (len(ranks) - 1)) - plain_term
    for i in special:
        raw[i] += delta[values[i]]


def _add_headroom(raw: list[float], nodes: list[Node], pod: PodRequest, snapshot: Snapshot, weight: float) -> None:
    """weight * mean free fraction of memory and CPU once the pod is placed; 0 when unknown."""
    req_mem, req_cpu = snapshot.requested_memory, snapshot.requested_cpu
    want_mem, want_cpu = pod.memory_request, pod.cpu_request
    half = weight / 2
    for i, node in enumerate(nodes):
        mem, cpu = node.allocatable_memory, node.allocatable_cpu
        if mem:
            raw[i] += half * min(1.0, max(0.0, (mem - req_mem.get(node.name, 0) - want_mem) / mem))
        if cpu:
            raw[i] += half * min(1.0, max(0.0, (cpu - req_cpu.get(node.name, 0) - want_cpu) / cpu))


def _stretch(raw: list[float]) -> list[int]:
    low, high = min(raw), max(raw)
    if high - low < 1e-9:
        return [NEUTRAL_SCORE] * len(raw)
    span = high - low
    return [int(round(MAX_SCORE * (value - low) / span)) for value in raw]
