"""Prioritize scores: 0..10 per candidate, the best placement always 10 and the worst 0.

raw(node) = sum over active levels i of  w_i * ( W_shard   * fewest(copies of the shard in the node's domain)
                                              + W_cluster * fewest(pods of the cluster in it)
                                              + W_masters * fewest(masters of the cluster in it)  [masters only] )
          + W_headroom * mean(free memory fraction, free CPU fraction) after placing the pod

fewest(count) = 1 - rank / (ranks - 1), where rank is the count's place among the distinct
counts of the candidates (0 = fewest), 1 when all are equal: each term lies in 0..1, and an
outlier (one zone with 100 pods) does not squeeze the differences among the rest, which a
min-max scale would (then headroom could outweigh one pod of cluster spread). Unknown domains
count as the most crowded known domain plus one half: never preferred. w_i defaults to 1, 2, 4, ... (higher levels weigh
more) and the W defaults (8, 2, 1, 0.5) make the order near-lexicographic: shard spread, then
cluster spread, then master balance, then room. Finally raw is stretched to 0..10 (min-max),
so the scheduler sees a clear preference; equal candidates all get NEUTRAL_SCORE.
Computed on arrays (policy/candidates.py): one gather per level and term, whatever the
number of candidates.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model import PodRequest, Role, Snapshot
from ..settings import Settings
from . import spread as spreadmod
from .candidates import Candidates, Tables, view

MAX_SCORE = 10
NEUTRAL_SCORE = 0
UNKNOWN_PENALTY = 0.5


def score_nodes(pod: PodRequest, candidates: list[str], snapshot: Snapshot, settings: Settings,
                own_node: str | None = None, tables: Tables | None = None) -> dict[str, int]:
    """Scores by node name."""
    return dict(zip(candidates, score_list(pod, candidates, snapshot, settings, own_node, tables)))


@dataclass(frozen=True)
class Term:
    """One addend of raw(node): its name, the level it counts at ("" for headroom), its
    weight, and its value (0..1) for every candidate, in the candidates' order."""

    name: str
    level: str
    weight: float
    values: np.ndarray


@dataclass(frozen=True)
class ScoreTerms:
    """Every term of the score, the raw sum and the final 0..10 scores (what prioritize sends)."""

    terms: list[Term] = field(default_factory=list)
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scores: list[int] = field(default_factory=list)


def score_list(pod: PodRequest, candidates: list[str], snapshot: Snapshot, settings: Settings,
               own_node: str | None = None, tables: Tables | None = None) -> list[int]:
    """Scores in the candidates' order (what the reply needs, without a dict of thousands);
    `tables`: the snapshot as arrays (candidates.Tables), the fast path; same scores."""
    if pod.member is None or not candidates:
        return [NEUTRAL_SCORE] * len(candidates)
    return score_terms(pod, candidates, snapshot, settings, own_node, tables).scores


def score_terms(pod: PodRequest, candidates: list[str], snapshot: Snapshot, settings: Settings,
                own_node: str | None = None, tables: Tables | None = None) -> ScoreTerms:
    """The score with its parts (explain shows each); no terms for a non-Redis pod."""
    if pod.member is None or not candidates:
        return ScoreTerms(scores=[NEUTRAL_SCORE] * len(candidates), raw=np.zeros(len(candidates)))
    weights = settings.score
    level_weights = settings.level_weights
    spread = spreadmod.build(pod.member, snapshot, pod.key, own_node)
    cand = view(snapshot, candidates, tables)
    raw = np.zeros(len(cand))
    out: list[Term] = []

    for level in spread.levels:
        if not level.active:
            continue
        lw = level_weights[level.index]
        terms: list[tuple[str, float, spreadmod.Tally]] = []
        if pod.member.shard is not None:
            terms.append(("shard spread", lw * weights.shard, level.copies))
        terms.append(("cluster spread", lw * weights.cluster, level.cluster_pods))
        if pod.member.role is Role.MASTER:
            terms.append(("master balance", lw * weights.masters, level.masters))
        codes = cand.codes[level.index]
        for name, weight, tally in terms:
            if weight:
                values = _fewest(cand.coder.table(level.index, tally.known, tally.at(None) + UNKNOWN_PENALTY)[codes])
                raw += weight * values
                out.append(Term(name, level.label, weight, values))

    if weights.headroom:
        values = _headroom(cand, pod)
        raw += weights.headroom * values
        out.append(Term("headroom", "", weights.headroom, values))
    return ScoreTerms(out, raw, _stretch(raw))


def _fewest(counts: np.ndarray) -> np.ndarray:
    """1 for the fewest, 0 for the most, by dense rank among the candidates' counts.

    Counts are whole numbers, or halves (unknown domains): doubled they index a bincount, so
    the ranks cost one pass instead of a sort of thousands of candidates."""
    halves = np.rint(counts * 2).astype(np.int64)
    present = np.bincount(halves) > 0
    distinct = int(present.sum())
    if distinct == 1:
        return np.ones_like(counts)
    rank_of = np.cumsum(present) - 1  # dense rank of every possible doubled count
    return 1.0 - rank_of[halves] / (distinct - 1)


def _headroom(cand: Candidates, pod: PodRequest) -> np.ndarray:
    """Mean free fraction of memory and CPU once the pod is placed; 0 where unknown."""
    total = np.zeros(len(cand))
    for allocatable, requested, want in ((cand.alloc_mem, cand.req_mem, pod.memory_request),
                                         (cand.alloc_cpu, cand.req_cpu, pod.cpu_request)):
        with np.errstate(invalid="ignore", divide="ignore"):
            known = allocatable > 0  # False for nan (not cached) and 0
            free = np.clip((allocatable - requested - want) / allocatable, 0.0, 1.0)
        total += np.where(known, free, 0.0)
    return total / 2


def _stretch(raw: np.ndarray) -> list[int]:
    low, high = float(raw.min()), float(raw.max())
    if high - low < 1e-9:
        return [NEUTRAL_SCORE] * len(raw)
    return np.rint(MAX_SCORE * (raw - low) / (high - low)).astype(int).tolist()
