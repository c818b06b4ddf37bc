"""Property tests of the pure policy (filter and score) over generated topologies.

Topologies are hierarchical: regions contain zones contain nodes, zone names are unique per
region (so a known zone implies its region), and some nodes lack a zone or region label.
A few candidates are not in the node cache at all ("ghost" nodes: their own node-level
domain, unknown at every higher level).
Every expectation below is computed from the generated data, not from the policy's helpers.
"""
from __future__ import annotations

import math
import os
import zlib
from collections import Counter
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.core.model import Copy, PodRequest, Role, Snapshot
from extender.policy.candidates import NodeArrays, Tables, UsageArrays
from extender.policy.filter import filter_nodes
from extender.policy.score import MAX_SCORE, NEUTRAL_SCORE, score_nodes

from .builders import HOSTNAME, LEVELS, Gi, make_copy, make_node, make_pod, make_snapshot, make_settings

# PROPERTY_EXAMPLES=3000 for a deeper search than the suite's 200 examples per property
PROPERTY = settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "200")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
SETTINGS = make_settings()
GHOSTS = ("ghost-1", "ghost-2")


@dataclass
class Case:
    pod: PodRequest
    snapshot: Snapshot
    candidates: list[str]

    # --- independent oracles ---------------------------------------------------------------
    def domain(self, name: str, level: int) -> str | None:
        """A cached node's domain; an uncached one is its own node-level domain, unknown above."""
        node = self.snapshot.nodes.get(name)
        if node is not None:
            return node.domains[level]
        return name if LEVELS[level] == HOSTNAME else None

    def copies(self) -> list[Copy]:
        """The shard's placed copies other than the pod itself."""
        return [c for c in self.snapshot.copies if c.pod != self.pod.key and c.node]

    def copy_nodes(self) -> set[str]:
        return {c.node for c in self.copies()}

    def holding(self, level: int) -> Counter[str]:
        return Counter(d for c in self.copies() if (d := self.domain(c.node, level)) is not None)

    def active(self, level: int) -> bool:
        return len({n.domains[level] for n in self.snapshot.nodes.values()} - {None}) > 1

    def fits(self, name: str) -> bool:
        node = self.snapshot.nodes.get(name)
        if node is None:
            return True
        if not node.ready:
            return False
        if node.allocatable_memory is None:
            return True
        return node.allocatable_memory - self.snapshot.requested_memory.get(name, 0) >= self.pod.memory_request

    def eligible(self) -> list[str]:
        """Candidates with room and no copy on the node: what the spread levels work on."""
        return [n for n in self.candidates if self.fits(n) and n not in self.copy_nodes()]

    def clean_at(self, name: str, level: int) -> bool:
        """Known domain at `level`, and that domain holds no copy."""
        value = self.domain(name, level)
        return value is not None and value not in self.holding(level)


def _bits(value: int, shift: int, width: int) -> int:
    return (value >> shift) & ((1 << width) - 1)


@st.composite
def cases(draw, uniform_resources: bool = False, cluster_counts: bool = True, shard: bool = True) -> Case:
    shape = draw(st.lists(st.lists(st.integers(1, 3), min_size=1, max_size=3), min_size=1, max_size=3))
    places = [(r, z, k) for r, zones in enumerate(shape) for z, size in enumerate(zones) for k in range(size)]
    # One packed integer per node keeps generation cheap (hypothesis pays per draw); it
    # shrinks toward 0, which decodes to the plainest node: labelled, roomy, Ready, empty.
    attrs = draw(st.lists(st.integers(0, 2**25 - 1), min_size=len(places), max_size=len(places)))
    nodes, requested, pods, masters = [], {}, {}, {}
    for (r, z, k), packed in zip(places, attrs):
        name = f"n-{r}{z}{k}"
        zone = None if _bits(packed, 0, 3) == 7 else f"region-{r}-zone-{z}"  # 1 in 8 unlabelled
        region = None if _bits(packed, 3, 4) == 15 else f"region-{r}"  # 1 in 16 unlabelled
        if uniform_resources:
            nodes.append(make_node(name, zone, region, memory=16 * Gi))
            continue
        mem = _bits(packed, 7, 5)
        memory = None if mem == 31 else (16 - mem % 17) * Gi
        ready = _bits(packed, 12, 4) != 15
        nodes.append(make_node(name, zone, region, memory=memory, ready=ready))
        if used := _bits(packed, 16, 5):
            requested[name] = used * Gi
        if cluster_counts and (n_pods := _bits(packed, 21, 2)):
            pods[name] = n_pods
            masters[name] = min(n_pods, _bits(packed, 23, 2))
    names = [n.name for n in nodes]
    pod = make_pod("cache-a-1", shard="3" if shard else None,
                   role=draw(st.sampled_from([Role.MASTER, Role.REPLICA, Role.UNKNOWN])),
                   memory=0 if uniform_resources else draw(st.integers(0, 4)) * Gi)
    placed = draw(st.lists(st.tuples(st.sampled_from(names), st.booleans()), max_size=6))
    copies = [make_copy(f"cache-a-{10 + i}", node, Role.MASTER if master else Role.REPLICA)
              for i, (node, master) in enumerate(placed)]
    stale = draw(st.one_of(st.none(), st.sampled_from(names)))  # the pod's own stale record
    if stale is not None:
        copies.append(make_copy(pod.name, stale, Role.REPLICA))
    candidates = draw(st.lists(st.sampled_from(names + list(GHOSTS)), unique=True, min_size=1))
    snap = make_snapshot(nodes, copies, pods_per_node=pods, masters_per_node=masters,
                         requested_memory=requested)
    return Case(pod, snap, candidates)


# --- filter --------------------------------------------------------------------------------

@PROPERTY
@given(cases())
def test_filter_returns_a_subset_of_the_candidates_in_input_order(case):
    result = filter_nodes(case.pod, case.candidates, case.snapshot)
    assert result.accepted == [n for n in case.candidates if n in set(result.accepted)]
    assert len(set(result.accepted)) == len(result.accepted)


@PROPERTY
@given(cases())
def test_every_candidate_is_either_accepted_or_rejected_with_a_reason_never_both(case):
    result = filter_nodes(case.pod, case.candidates, case.snapshot)
    accepted, failed, unresolvable = set(result.accepted), set(result.failed), set(result.unresolvable)
    assert accepted | failed | unresolvable == set(case.candidates)
    assert not accepted & failed and not accepted & unresolvable and not failed & unresolvable
    assert all(isinstance(r, str) and r for r in [*result.failed.values(), *result.unresolvable.values()])


@PROPERTY
@given(cases())
def test_no_accepted_node_holds_a_copy_of_the_pods_shard(case):
    result = filter_nodes(case.pod, case.candidates, case.snapshot)
    assert not set(result.accepted) & case.copy_nodes()


@PROPERTY
@given(cases())
def test_no_accepted_node_lacks_room(case):
    result = filter_nodes(case.pod, case.candidates, case.snapshot)
    assert all(case.fits(n) for n in result.accepted)


@PROPERTY
@given(cases())
def test_eligible_lists_the_candidates_that_fit_and_hold_no_copy_in_input_order(case):
    result = filter_nodes(case.pod, case.candidates, case.snapshot)
    assert result.eligible == case.eligible()


@PROPERTY
@given(cases())
def test_pod_is_never_pending_for_want_of_spread(case):
    result = filter_nodes(case.pod, case.candidates, case.snapshot)
    if case.eligible():
        assert result.accepted
    else:
        assert not result.accepted


@PROPERTY
@given(cases())
def test_at_the_top_active_level_copy_holding_and_unknown_domains_lose_to_a_clean_candidate(case):
    active = [i for i in range(len(LEVELS)) if case.active(i)]
    if not active:
        return
    top = max(active)
    if not any(case.clean_at(n, top) for n in case.eligible()):
        return
    result = filter_nodes(case.pod, case.candidates, case.snapshot)
    for name in result.accepted:
        assert case.domain(name, top) not in case.holding(top), name
        if case.copies():
            assert case.domain(name, top) is not None, name


@PROPERTY
@given(cases())
def test_at_each_level_a_candidate_clean_there_and_above_excludes_copy_holding_and_unknown_domains(case):
    """Levels are decided from the largest down, each among the survivors of the ones above:
    a candidate in known copy-free domains at level i and every active level above it
    survives them all, so at level i nothing worse than it is kept."""
    active = [i for i in range(len(LEVELS)) if case.active(i)]
    result = filter_nodes(case.pod, case.candidates, case.snapshot)
    for level in active:
        above = [i for i in active if i >= level]
        if not any(all(case.clean_at(n, i) for i in above) for n in case.eligible()):
            continue
        for name in result.accepted:
            assert case.domain(name, level) not in case.holding(level), (LEVELS[level], name)
            if case.copies():
                assert case.domain(name, level) is not None, (LEVELS[level], name)


@PROPERTY
@given(cases())
def test_if_a_candidate_lies_outside_every_domain_holding_a_copy_no_accepted_node_lies_inside_one(case):
    """The issue's statement, over every active level at once."""
    active = [i for i in range(len(LEVELS)) if case.active(i)]
    if not any(all(case.clean_at(n, i) for i in active) for n in case.eligible()):
        return
    result = filter_nodes(case.pod, case.candidates, case.snapshot)
    for name in result.accepted:
        for i in active:
            assert case.clean_at(name, i) or not case.copies(), (LEVELS[i], name)


@PROPERTY
@given(cases(shard=False))
def test_pod_without_a_shard_is_only_filtered_on_room(case):
    result = filter_nodes(case.pod, case.candidates, case.snapshot)
    assert result.accepted == [n for n in case.candidates if case.fits(n)]
    assert result.unresolvable == {}


# --- score ---------------------------------------------------------------------------------

@PROPERTY
@given(cases())
def test_every_candidate_gets_an_integer_score_from_0_to_10(case):
    scores = score_nodes(case.pod, case.candidates, case.snapshot, SETTINGS)
    assert list(scores) == case.candidates
    assert all(type(s) is int and 0 <= s <= MAX_SCORE for s in scores.values())


@PROPERTY
@given(cases())
def test_scores_that_differ_span_the_full_range(case):
    scores = score_nodes(case.pod, case.candidates, case.snapshot, SETTINGS)
    values = set(scores.values())
    if len(values) > 1:
        assert max(values) == MAX_SCORE and min(values) == 0


@PROPERTY
@given(cases(uniform_resources=True, cluster_counts=False))
def test_fewer_copies_in_the_zone_never_scores_below_more_copies_all_else_equal(case):
    """At an active zone level (two or more known zones): a level with one known zone spreads
    nothing, so there an unlabelled node is not worse than the labelled ones (the filter's
    "levels with a single known domain constrain nothing"), and the single-best tie-break
    may pick it."""
    scores = score_nodes(case.pod, case.candidates, case.snapshot, SETTINGS)
    zone = LEVELS.index("topology.kubernetes.io/zone")
    if not case.active(zone):
        return

    def count(name, level):  # None: unknown domain
        value = case.domain(name, level)
        return None if value is None else case.holding(level)[value]

    for a in case.candidates:
        for b in case.candidates:
            if a == b or count(a, zone) is None:
                continue
            same_elsewhere = all(count(a, i) == count(b, i) for i in range(len(LEVELS)) if i != zone)
            b_worse = count(b, zone) is None or count(b, zone) > count(a, zone)
            if same_elsewhere and b_worse:
                assert scores[a] >= scores[b], (a, b, scores)


@PROPERTY
@given(cases(), st.booleans())
def test_non_redis_pod_gets_one_neutral_score_for_every_candidate(case, uncached_state):
    pod = make_pod("web-1", cluster=None)
    snapshot = Snapshot(level_names=(), nodes={}) if uncached_state else case.snapshot
    scores = score_nodes(pod, case.candidates, snapshot, SETTINGS)
    assert list(scores) == case.candidates
    assert len(set(scores.values())) == 1


def reference_raw(case: Case, own_node: str | None) -> dict[str, float]:
    """The prioritize formula as score.py's docstring states it, computed naively per candidate."""
    member = case.pod.member
    weights = SETTINGS.score
    pods = Counter(case.snapshot.cluster.pods_per_node)
    masters = Counter(case.snapshot.cluster.masters_per_node)
    if own_node and pods.get(own_node, 0) > 0:  # the pod's own ghost is not a neighbour
        pods[own_node] -= 1
        if member.role is Role.MASTER and masters.get(own_node, 0) > 0:
            masters[own_node] -= 1
    for sibling in case.snapshot.cluster.reserved:  # in flight: where it is reserved
        if sibling.pod != case.pod.key:
            pods[sibling.node] += 1
            masters[sibling.node] += sibling.role is Role.MASTER

    def tally(per_node: dict[str, int], level: int) -> tuple[Counter[str], int]:
        known, unknown = Counter(), 0
        for node, amount in per_node.items():
            if amount:
                value = case.domain(node, level)
                if value is None:
                    unknown += amount
                else:
                    known[value] += amount
        return known, unknown

    raw = dict.fromkeys(case.candidates, 0.0)
    unrounded: dict[str, float] = {}
    for level in range(len(LEVELS)):
        if not case.active(level):
            continue
        lw = 2.0 ** level
        terms = []
        if member.shard is not None:
            terms.append((lw * weights.shard, tally(Counter(c.node for c in case.copies()), level)))
        terms.append((lw * weights.cluster, tally(pods, level)))
        if member.role is Role.MASTER:
            terms.append((lw * weights.masters, tally(masters, level)))
        if member.role is Role.REPLICA and member.shard is not None and \
                not any(c.role is Role.MASTER for c in case.copies()):  # leave the master its zones
            known, _ = tally(masters, level)
            most = max(known.values(), default=0)
            terms.append((lw * weights.masters, (Counter({v: most - k for v, k in known.items()}), most, most)))
        for weight, (known, unknown, *base) in terms:
            def count(name):
                value = case.domain(name, level)
                if base:  # reversed (most masters first): a domain without any holds `most` fewer
                    return base[0] + 0.5 if value is None else known.get(value, base[0])
                if value is None:  # the most crowded known domain plus one half
                    return max(max(known.values(), default=0), unknown) + 0.5
                return known[value]
            counts = {n: count(n) for n in case.candidates}
            ranks = sorted(set(counts.values()))  # dense rank among the candidates' counts
            for n in case.candidates:
                raw[n] += weight * (1.0 if len(ranks) == 1 else 1 - ranks.index(counts[n]) / (len(ranks) - 1))
    for n in case.candidates:
        node = case.snapshot.nodes.get(n)
        fractions = []
        for allocatable, requested, want in (
                (node and node.allocatable_memory, case.snapshot.requested_memory.get(n, 0), case.pod.memory_request),
                (node and node.allocatable_cpu, case.snapshot.requested_cpu.get(n, 0), case.pod.cpu_request)):
            fractions.append(min(1.0, max(0.0, (allocatable - requested - want) / allocatable)) if allocatable else 0.0)
        raw[n] += weights.headroom * math.floor(sum(fractions) / 2 * 4 + 1e-9) / 4  # in quarters
        unrounded[n] = sum(fractions) / 2
    # one candidate alone at the top: the most (unrounded) headroom, then the highest crc32 of pod and node
    top = max(raw.values())
    tied = [n for n in case.candidates if abs(raw[n] - top) < 5e-7]
    if len(tied) > 1:
        raw[max(tied, key=lambda n: (unrounded[n], zlib.crc32(f"{case.pod.key}\0{n}".encode())))] += 4e-6
    return raw


@PROPERTY
@given(cases(), st.booleans())
def test_scores_follow_the_documented_formula(case, pass_own_node):
    own_node = next((c.node for c in case.snapshot.copies if c.pod == case.pod.key), None) if pass_own_node else None
    scores = score_nodes(case.pod, case.candidates, case.snapshot, SETTINGS, own_node=own_node)
    raw = reference_raw(case, own_node)
    classes = sorted({round(v, 6) for v in raw.values()}, reverse=True)  # best first
    for n in case.candidates:
        rank = classes.index(round(raw[n], 6))
        if len(classes) == 1:
            assert scores[n] == NEUTRAL_SCORE, (n, scores)
        elif len(classes) <= MAX_SCORE + 1:  # ranked, every class a whole point apart
            assert abs(scores[n] - MAX_SCORE * (1 - rank / (len(classes) - 1))) <= 0.5 + 1e-6, (n, scores, raw)
        else:
            assert scores[n] == max(0, MAX_SCORE - rank), (n, scores, raw)



# --- the array view ------------------------------------------------------------------------

def _tables(snapshot: Snapshot) -> Tables:
    """The snapshot's nodes and requests as arrays, as state/snapshot.py hands them over."""
    arrays = NodeArrays.build(snapshot.nodes, len(snapshot.level_names))
    return Tables(arrays, UsageArrays.build(arrays, snapshot.requested_memory, snapshot.requested_cpu))


@PROPERTY
@given(cases())
def test_the_array_view_gives_the_same_verdicts_and_scores(case):
    tables = _tables(case.snapshot)
    fast = filter_nodes(case.pod, case.candidates, case.snapshot, tables=tables)
    slow = filter_nodes(case.pod, case.candidates, case.snapshot)
    assert fast == slow
    assert score_nodes(case.pod, case.candidates, case.snapshot, SETTINGS, tables=tables) == \
        score_nodes(case.pod, case.candidates, case.snapshot, SETTINGS)


# --- masters (filter rule 4) ----------------------------------------------------------------

def _masters_in(case: Case, level: int) -> tuple[Counter[str], int]:
    """Masters of the cluster per known domain at `level` (placed and reserved siblings), and
    those on nodes whose domain there is unknown: computed from the raw counts."""
    known: Counter[str] = Counter()
    unknown = 0
    per_node = Counter(case.snapshot.cluster.masters_per_node)
    for sibling in case.snapshot.cluster.reserved:
        if sibling.pod != case.pod.key and sibling.role is Role.MASTER:
            per_node[sibling.node] += 1
    for node, count in per_node.items():
        value = case.domain(node, level)
        if value is None:
            unknown += count
        else:
            known[value] += count
    return known, unknown


def _master_count(case: Case, name: str, level: int) -> int:
    known, unknown = _masters_in(case, level)
    value = case.domain(name, level)
    return known.get(value, 0) if value is not None else max(max(known.values(), default=0), unknown)


def _as_master(case: Case) -> Case:
    return Case(make_pod(case.pod.name, role=Role.MASTER, memory=case.pod.memory_request), case.snapshot,
                case.candidates)


def _shard_survivors(case: Case) -> list[str]:
    """What the shard rules (1-3) keep: the same pod as a replica (rule 4 is for masters)."""
    replica = make_pod(case.pod.name, role=Role.REPLICA, memory=case.pod.memory_request)
    return filter_nodes(replica, case.candidates, case.snapshot).accepted


@st.composite
def master_cases(draw) -> Case:
    base = draw(cases())
    names = sorted(base.snapshot.nodes)
    flight = draw(st.lists(st.tuples(st.sampled_from(names), st.booleans()), max_size=5))
    reserved = tuple(make_copy(f"cache-a-{30 + i}", node, Role.MASTER if m else Role.REPLICA)
                     for i, (node, m) in enumerate(flight))
    snap = replace(base.snapshot, cluster=replace(base.snapshot.cluster, reserved=reserved))
    return _as_master(Case(base.pod, snap, base.candidates))


@PROPERTY
@given(master_cases())
def test_a_master_is_accepted_within_the_shard_rules_and_never_left_pending_for_masters(case):
    survivors = _shard_survivors(case)
    accepted = filter_nodes(case.pod, case.candidates, case.snapshot).accepted
    assert set(accepted) <= set(survivors)
    assert bool(accepted) == bool(survivors)


@PROPERTY
@given(master_cases())
def test_a_master_goes_to_the_top_level_domains_holding_the_fewest_masters_among_the_shard_survivors(case):
    active = [i for i in range(len(LEVELS)) if case.active(i)]
    survivors = _shard_survivors(case)
    if not active or len(survivors) < 2:
        return
    top = max(active)
    fewest = min(_master_count(case, n, top) for n in survivors)
    accepted = filter_nodes(case.pod, case.candidates, case.snapshot).accepted
    assert all(_master_count(case, n, top) == fewest for n in accepted)


@PROPERTY
@given(master_cases())
def test_with_three_top_domains_no_master_goes_where_it_would_hold_half_while_a_safe_choice_exists(case):
    active = [i for i in range(len(LEVELS)) if case.active(i)]
    if not active:
        return
    top = max(active)
    known, unknown = _masters_in(case, top)
    domains = {n.domains[top] for n in case.snapshot.nodes.values()} - {None}
    if len(domains) < 3:
        return
    total = sum(known.values()) + unknown + 1

    def safe(name: str) -> bool:
        return 2 * (_master_count(case, name, top) + 1) < total

    survivors = _shard_survivors(case)
    accepted = filter_nodes(case.pod, case.candidates, case.snapshot).accepted
    if any(safe(n) for n in survivors):
        assert accepted and all(safe(n) for n in accepted)


@PROPERTY
@given(master_cases())
def test_a_sibling_in_flight_counts_exactly_like_a_placed_master(case):
    """Each reserved sibling moved into the placed counts gives the same verdicts."""
    cluster = case.snapshot.cluster
    pods, masters = Counter(cluster.pods_per_node), Counter(cluster.masters_per_node)
    for sibling in cluster.reserved:
        pods[sibling.node] += 1
        masters[sibling.node] += sibling.role is Role.MASTER
    placed = replace(case.snapshot, cluster=replace(cluster, pods_per_node=dict(pods),
                                                    masters_per_node=dict(masters), reserved=()))
    a = filter_nodes(case.pod, case.candidates, case.snapshot)
    b = filter_nodes(case.pod, case.candidates, placed)
    assert a.accepted == b.accepted
    assert score_nodes(case.pod, case.candidates, case.snapshot, SETTINGS) == \
        score_nodes(case.pod, case.candidates, placed, SETTINGS)


@PROPERTY
@given(master_cases())
def test_a_better_raw_never_scores_lower_and_the_best_eleven_classes_never_tie(case):
    """The masters term (or any other) is never rounded away among the best classes."""
    scores = score_nodes(case.pod, case.candidates, case.snapshot, SETTINGS)
    raw = reference_raw(case, None)
    classes = sorted({round(v, 6) for v in raw.values()}, reverse=True)
    for a in case.candidates:
        for b in case.candidates:
            ra, rb = round(raw[a], 6), round(raw[b], 6)
            if ra > rb:
                assert scores[a] >= scores[b]
                if classes.index(ra) < MAX_SCORE:
                    assert scores[a] > scores[b], (a, b, scores, raw)
