"""Prioritize scores: 0..10 per candidate, the best placement always 10 and the worst 0.

raw(node) = sum over active levels i of  w_i * ( W_shard   * fewest(copies of the shard in the node's domain)
                                              + W_masters * fewest(masters of the cluster in it)  [masters only]
                                              + W_masters * fewest(replicas - masters of the cluster in it)
                                                                          [a replica of a shard whose master is
                                                                           not placed yet; not at the node level]
                                              + W_cluster * fewest(pods of the cluster in it) )
          + W_headroom * quarters(mean(free memory fraction, free CPU fraction) after placing the pod)

fewest(count) = 1 - rank / (ranks - 1), where rank is the count's place among the distinct
counts of the candidates (0 = fewest), 1 when all are equal: each term lies in 0..1, and an
outlier (one zone with 100 pods) does not squeeze the differences among the rest, which a
min-max scale would. A replica that arrives before its master (parallel StatefulSets, or
masters retried later) goes where the cluster has the fewest replicas less masters, unknown
domains last: the domain its shard leaves free is where the master must go, and balanced
replicas leave the masters balanced (see _master_room). Cluster and master counts include the cluster's pods in flight
(reserved, not yet bound: ClusterCounts.reserved). Unknown domains count as the most crowded
known domain plus one half: never preferred. w_i defaults to 1, 2, 4, ... (higher levels weigh
more) and the W defaults (shard 8, masters 4, cluster 2, headroom 0.5) order the terms: shard
spread, then master balance (for a master), then cluster spread, then room. Headroom is
rounded down to quarters (0, .25, .5, .75, 1) so that it only separates nodes that differ
markedly and does not make every candidate a class of its own.

How raw becomes 0..10 (kube-scheduler's MaxExtenderPriority is 10, integers): by RANK, not by
a min-max stretch. The distinct raw values are ranked (0 = best); with d of them, rank r scores
round(10 * (1 - r / (d - 1))) when d <= 11 (every step at least one point), else 10 - r for
the ten best and 0 for the rest. So a difference in raw is never rounded away among the best
eleven classes of candidates, however small the term that makes it: a min-max stretch would
turn one master of difference (4 of a raw range of ~100 with three levels) into 0.4 points,
i.e. into nothing. The order is the raw order; only distances are dropped, which the
scheduler does not use (it adds weighted scores and takes the highest). Equal candidates all
no candidate shares the top: ties are broken by unrounded headroom, then by a hash of pod and
node (`_single_best`; equal candidates too: one gets 10, the others 0), so the node the pod
is reserved on is the one the scheduler picks. A non-Redis pod gets NEUTRAL_SCORE everywhere. Computed on arrays (policy/candidates.py): one gather per level and term,
whatever the number of candidates.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from extender.core.model import HOSTNAME_LABEL, PodRequest, Role, Snapshot
from extender.core.settings import Settings
from extender.policy import spread as spreadmod
from extender.policy.candidates import Candidates, Tables, fast_counts, view

MAX_SCORE = 10
NEUTRAL_SCORE = 0
UNKNOWN_PENALTY = 0.5
HEADROOM_STEPS = 4  # headroom counted in quarters
RAW_QUANTUM = 1e-6  # raw values closer than this are one class


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
    spread = spreadmod.build(pod.member, snapshot, pod.key, own_node, fast_counts(tables))
    waiting = (pod.member.role is Role.REPLICA and pod.member.shard is not None
               and not any(c.role is Role.MASTER for copies in spread.copy_nodes.values() for c in copies))
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
        if pod.member.role is Role.MASTER:
            terms.append(("master balance", lw * weights.masters, level.masters))
        terms.append(("cluster spread", lw * weights.cluster, level.cluster_pods))
        codes = cand.codes[level.index]
        for name, weight, tally in terms:
            if weight:
                values = _fewest(cand.coder.table(level.index, tally.known, tally.at(None) + UNKNOWN_PENALTY)[codes])
                raw += weight * values
                out.append(Term(name, level.label, weight, values))
        if waiting and weights.masters and level.label != HOSTNAME_LABEL:  # (a node is no master's zone)
            crowd = _master_room(cand, level)
            values = _fewest(crowd[codes])
            raw += lw * weights.masters * values
            out.append(Term("room for the master", level.label, lw * weights.masters, values))

    headroom = _headroom(cand, pod)
    if weights.headroom:
        values = np.floor(headroom * HEADROOM_STEPS + 1e-9) / HEADROOM_STEPS
        raw += weights.headroom * values
        out.append(Term("headroom", "", weights.headroom, values))
    raw = _single_best(raw, headroom, candidates, pod.key)
    return ScoreTerms(out, raw, _stretch(raw))


def _single_best(raw: np.ndarray, headroom: np.ndarray, names: list[str], pod_key: str) -> np.ndarray:
    """One candidate alone in the best class: the one with the most headroom (unrounded), then
    the highest hash of (pod, node) (rendezvous hashing: the same winner whatever the order the
    nodes are asked in, so explain and prioritize agree, while equal pods spread over equal
    nodes instead of all going to the lowest name). The pod is reserved on the best-scored node,
    and the scheduler picks among its best-scored nodes with its own plugins: with a tie, it
    could pick a node in another zone than the one reserved, and siblings in flight would be
    counted in the wrong domain. Alone at 10, the reserved node leads the others by a whole
    extender point (weight x 10 in the scheduler's sum)."""
    top = raw.max()
    best = np.flatnonzero(raw >= top - RAW_QUANTUM / 2)
    if best.size > 1:
        roomiest = best[headroom[best] >= headroom[best].max() - 1e-12]
        winner = max(roomiest, key=lambda i: zlib.crc32(f"{pod_key}\0{names[i]}".encode()))
        raw = raw.copy()
        raw[winner] += RAW_QUANTUM * 4
    return raw


def _master_room(cand: Candidates, level: spreadmod.LevelView) -> np.ndarray:
    """Per domain code (unknown last): replicas minus masters of the cluster, shifted to start
    at 0, for a replica whose shard has no master yet (the fewest is its best). The domain its
    shard's copies leave free is where the master must go (the shard rule outranks the masters
    rule), and a domain ends with one copy of every shard when there are as many domains as
    copies: its masters are the shards less its replicas. So the replicas are balanced, and
    the masters already placed lean the choice as before. Above the node level only: per node
    it would add noise that can outweigh the zone's term (`most(masters)` alone sent the first
    replica of every shard waiting for its master to the one domain with a master, and left
    their masters to share the others: 15/16/1 in a burst of 32 shards whose masters' filters
    had failed closed)."""
    pods = cand.coder.table(level.index, level.cluster_pods.known, 0)
    masters = cand.coder.table(level.index, level.masters.known, 0)
    crowd = pods - 2 * masters
    crowd -= crowd[:-1].min() if len(crowd) > 1 else 0
    crowd[-1] = (crowd[:-1].max() if len(crowd) > 1 else 0) + UNKNOWN_PENALTY  # unknown domains: last
    return crowd


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
    """Rank the distinct raw values (0 = best) and map ranks to 0..10, each of the best
    eleven classes a whole point or more apart (see the module docstring)."""
    order = np.rint(raw / RAW_QUANTUM).astype(np.int64)  # float noise of sums in one bucket
    distinct, inverse = np.unique(-order, return_inverse=True)  # ascending -raw: best first
    classes = len(distinct)
    if classes == 1:
        return [NEUTRAL_SCORE] * len(raw)
    if classes <= MAX_SCORE + 1:
        return np.rint(MAX_SCORE * (1 - inverse / (classes - 1))).astype(int).tolist()
    return np.maximum(MAX_SCORE - inverse, 0).astype(int).tolist()
