"""The filter verdicts of extender.policy.filter, one behaviour per test.

Topologies are small and spelled out: node names say where a node sits, so a failing
assertion reads like the placement it is about.
"""
from __future__ import annotations

import pytest

from extender.core.model import Copy, Role, Snapshot
from extender.policy.filter import Outcome, filter_nodes

from .builders import LEVELS, Gi, Mi, make_copy, make_node, make_pod, make_snapshot

POD = make_pod("cache-a-1", cluster="cache-a", shard="3", role="replica", memory=1 * Gi)


def three_zones(**kw):
    """One region, zones a/b/c with two nodes each: node-a1, node-a2, node-b1, ..."""
    return [make_node(f"node-{z}{i}", zone=f"zone-{z}", region="region-1", **kw)
            for z in "abc" for i in (1, 2)]


# --- the node rule ------------------------------------------------------------------------

def test_node_holding_a_copy_is_rejected_with_a_reason_naming_node_shard_cluster_pod_and_role():
    nodes = [make_node(f"node-{i}", zone=f"zone-{i}", region="r") for i in range(1, 5)]
    snap = make_snapshot(nodes, [make_copy("cache-a-4", "node-3", "master")])
    result = filter_nodes(POD, ["node-1", "node-2", "node-3"], snap)
    assert "node-3" not in result.accepted
    assert result.unresolvable["node-3"] == "node-3 already holds shard 3 of cache-a (cache-a-4, master)"
    assert "node-3" not in result.failed


@pytest.mark.parametrize("copies, described", [
    pytest.param([("cache-a-0", "master")], "cache-a-0, master", id="one-master-copy"),
    pytest.param([("cache-a-7", "replica")], "cache-a-7, replica", id="one-replica-copy"),
    pytest.param([("cache-a-0", "master"), ("cache-a-7", "replica")], "cache-a-0, master; cache-a-7, replica",
                 id="two-copies-on-one-node-are-all-listed"),
])
def test_node_rule_reason_lists_every_copy_on_the_node(copies, described):
    nodes = [make_node("node-1", "zone-a", "r"), make_node("node-2", "zone-b", "r")]
    snap = make_snapshot(nodes, [make_copy(pod, "node-1", role) for pod, role in copies])
    result = filter_nodes(POD, ["node-1", "node-2"], snap)
    assert result.unresolvable["node-1"] == f"node-1 already holds shard 3 of cache-a ({described})"
    assert result.accepted == ["node-2"]


@pytest.mark.parametrize("candidates", [
    pytest.param(["node-a1"], id="only-candidate-holds-a-copy"),
    pytest.param(["node-a1", "node-b1"], id="every-candidate-holds-a-copy"),
])
def test_node_rule_is_never_relaxed_even_if_the_pod_stays_pending(candidates):
    snap = make_snapshot(three_zones(), [make_copy("cache-a-0", "node-a1", "master"),
                                         make_copy("cache-a-4", "node-b1", "replica")])
    result = filter_nodes(POD, candidates, snap)
    assert result.accepted == []
    assert set(result.unresolvable) == set(candidates)
    assert result.outcome is Outcome.NO_FIT


def test_a_copy_not_yet_placed_on_any_node_blocks_nothing():
    snap = make_snapshot(three_zones(), [Copy(pod="ns/cache-a-0", node="", role=Role.MASTER)])
    result = filter_nodes(POD, ["node-a1", "node-b1"], snap)
    assert result.accepted == ["node-a1", "node-b1"]
    assert result.unresolvable == {}


# --- the zone rule ------------------------------------------------------------------------

def test_zone_holding_a_copy_is_rejected_when_a_copy_free_zone_has_a_candidate():
    snap = make_snapshot(three_zones(), [make_copy("cache-a-4", "node-a1", "master")])
    result = filter_nodes(POD, ["node-a2", "node-b1", "node-c1"], snap)
    assert result.accepted == ["node-b1", "node-c1"]
    assert result.unresolvable == {
        "node-a2": "zone-a already holds shard 3 of cache-a (cache-a-4, master); zones without a copy are available"}
    assert result.outcome is Outcome.SPREAD


def test_zone_reason_names_every_copy_in_the_zone():
    nodes = three_zones() + [make_node("node-a3", "zone-a", "region-1")]
    copies = [make_copy("cache-a-0", "node-a1", "master"), make_copy("cache-a-4", "node-a2", "replica")]
    result = filter_nodes(POD, ["node-a3", "node-b1"], make_snapshot(nodes, copies))
    assert result.unresolvable["node-a3"] == (
        "zone-a already holds shard 3 of cache-a (cache-a-0, master; cache-a-4, replica); "
        "zones without a copy are available")


def test_node_reason_wins_over_zone_reason_for_a_node_holding_a_copy():
    copies = [make_copy("cache-a-0", "node-a1", "master")]
    result = filter_nodes(POD, ["node-a1", "node-b1"], make_snapshot(three_zones(), copies))
    assert result.unresolvable["node-a1"].startswith("node-a1 already holds")


# --- fallback when every zone holds a copy ------------------------------------------------

def test_when_every_zone_holds_a_copy_the_least_crowded_zones_are_kept():
    copies = [make_copy("cache-a-0", "node-a1", "master"), make_copy("cache-a-5", "node-a2", "replica"),
              make_copy("cache-a-4", "node-b1", "replica"), make_copy("cache-a-7", "node-c1", "replica")]
    nodes = three_zones() + [make_node("node-a3", "zone-a", "region-1")]
    result = filter_nodes(POD, ["node-a3", "node-b2", "node-c2"], make_snapshot(nodes, copies))
    assert result.accepted == ["node-b2", "node-c2"]
    assert result.unresolvable == {
        "node-a3": "zone-a holds 2 copies of shard 3 of cache-a (cache-a-0, master; cache-a-5, replica); "
                   "zones holding 1 copy are available"}
    assert result.outcome is Outcome.RELAXED


@pytest.mark.parametrize("candidates, expected", [
    pytest.param(["node-a2", "node-b2", "node-c2"], ["node-a2", "node-b2", "node-c2"],
                 id="every-zone-holds-one-copy-all-copy-free-nodes-kept"),
    pytest.param(["node-a2"], ["node-a2"], id="only-candidate-is-in-a-copy-zone-it-is-kept"),
    pytest.param(["node-a1", "node-b2"], ["node-b2"], id="copy-node-rejected-the-other-kept"),
])
def test_pod_is_never_left_pending_for_want_of_spread(candidates, expected):
    copies = [make_copy("cache-a-0", "node-a1", "master"), make_copy("cache-a-4", "node-b1", "replica"),
              make_copy("cache-a-7", "node-c1", "replica")]
    result = filter_nodes(POD, candidates, make_snapshot(three_zones(), copies))
    assert result.accepted == expected
    assert result.outcome is Outcome.RELAXED


# --- unknown zones ------------------------------------------------------------------------

def unknown_zone_nodes():
    return three_zones() + [make_node("node-x", zone=None, region="region-1")]


def test_unknown_zone_node_is_rejected_when_a_known_copy_free_zone_has_a_candidate():
    snap = make_snapshot(unknown_zone_nodes(), [make_copy("cache-a-4", "node-a1", "master")])
    result = filter_nodes(POD, ["node-x", "node-b1"], snap)
    assert result.accepted == ["node-b1"]
    assert result.unresolvable["node-x"] == (
        "zone unknown (node has no topology.kubernetes.io/zone label) while shard 3 of cache-a has copies; "
        "zones known to hold 0 copies are available")
    assert result.unknown_domain_nodes == 1


def test_unknown_zone_node_is_accepted_as_fallback_when_every_known_zone_holds_as_many_copies():
    copies = [make_copy("cache-a-0", "node-a1", "master"), make_copy("cache-a-4", "node-b1", "replica"),
              make_copy("cache-a-7", "node-c1", "replica")]
    result = filter_nodes(POD, ["node-x", "node-a2", "node-b2"], make_snapshot(unknown_zone_nodes(), copies))
    assert result.accepted == ["node-x", "node-a2", "node-b2"]
    assert result.outcome is Outcome.RELAXED


def test_unknown_zone_counts_as_the_most_crowded_known_zone_in_the_fallback():
    copies = [make_copy("cache-a-0", "node-a1", "master"), make_copy("cache-a-5", "node-a2", "replica"),
              make_copy("cache-a-4", "node-b1", "replica"), make_copy("cache-a-7", "node-c1", "replica")]
    result = filter_nodes(POD, ["node-x", "node-b2", "node-c2"], make_snapshot(unknown_zone_nodes(), copies))
    assert result.accepted == ["node-b2", "node-c2"]
    assert result.unresolvable["node-x"] == (
        "zone unknown (node has no topology.kubernetes.io/zone label) while shard 3 of cache-a has copies; "
        "zones known to hold 1 copy are available")


@pytest.mark.parametrize("copies, candidates", [
    pytest.param([], ["node-x", "node-b1"], id="no-copies-anywhere-unknown-is-not-penalized"),
    pytest.param([("cache-a-0", "node-a1")], ["node-x", "node-a2"],
                 id="unknown-ties-with-the-only-known-candidate-zone-holding-a-copy"),
    pytest.param([("cache-a-0", "node-a1")], ["node-x"], id="only-unknown-candidate-is-kept-not-pending"),
])
def test_unknown_zone_node_is_accepted_when_no_known_copy_free_candidate_exists(copies, candidates):
    snap = make_snapshot(unknown_zone_nodes(), [make_copy(p, n, "master") for p, n in copies])
    result = filter_nodes(POD, candidates, snap)
    assert result.accepted == candidates


def test_copy_on_an_unknown_zone_node_makes_unknown_zone_candidates_look_crowded():
    nodes = unknown_zone_nodes() + [make_node("node-y", zone=None, region="region-1")]
    snap = make_snapshot(nodes, [make_copy("cache-a-0", "node-x", "master")])
    result = filter_nodes(POD, ["node-y", "node-a1"], snap)
    assert result.accepted == ["node-a1"]
    assert "zone unknown" in result.unresolvable["node-y"]


def test_uncached_node_counts_as_unknown_above_the_node_level():
    snap = make_snapshot(three_zones(), [make_copy("cache-a-0", "node-a1", "master")])
    result = filter_nodes(POD, ["node-new", "node-b1"], snap)
    assert result.accepted == ["node-b1"]
    assert "zone unknown" in result.unresolvable["node-new"]
    assert result.unknown_domain_nodes == 1


@pytest.mark.parametrize("nodes, copies, candidates", [
    pytest.param([make_node("node-a1", "zone-a", "r"), make_node("node-a2", "zone-a", "r")], ["node-a1"],
                 ["node-new", "node-a2"], id="single-zone-cluster-uncached-node-kept-beside-a-cached-one"),
    pytest.param(three_zones(), ["node-a1", "node-b1", "node-c1"], ["node-new", "node-a2", "node-b2"],
                 id="every-zone-holds-a-copy-uncached-node-kept-as-fallback"),
])
def test_uncached_node_is_its_own_node_level_domain(nodes, copies, candidates):
    # its name is known, and the node rule already checked that name: no copy can be on it
    snap = make_snapshot(nodes, [make_copy(f"cache-a-{10 + i}", n) for i, n in enumerate(copies)])
    result = filter_nodes(POD, candidates, snap)
    assert result.accepted == candidates


def test_reason_for_an_uncached_node_does_not_claim_a_missing_label():
    snap = make_snapshot(three_zones(), [make_copy("cache-a-0", "node-a1", "master")])
    result = filter_nodes(POD, ["node-new", "node-b1"], snap)
    reason = result.unresolvable["node-new"]
    assert "label" not in reason, reason


# --- levels with a single known domain ---------------------------------------------------

@pytest.mark.parametrize("nodes, candidates, expected", [
    pytest.param([make_node("node-a1", "zone-a", "region-1"), make_node("node-a2", "zone-a", "region-1"),
                  make_node("node-x", None, "region-1")],
                 ["node-a2", "node-x"], ["node-a2", "node-x"],
                 id="single-zone-and-region-only-the-node-rule-applies"),
    pytest.param([make_node("node-a1", "zone-a", "region-1"), make_node("node-a2", "zone-a", None),
                  make_node("node-b1", "zone-b", "region-1")],
                 ["node-a2", "node-b1"], ["node-b1"],
                 id="single-region-still-spreads-by-zone"),
    pytest.param([make_node("node-a1", "zone-a", "region-1"), make_node("node-a2", "zone-a", "region-1"),
                  make_node("node-x", None, None)],
                 ["node-x", "node-a2"], ["node-x", "node-a2"],
                 id="unknown-domains-are-not-penalized-on-a-level-with-one-known-domain"),
])
def test_level_with_a_single_known_domain_constrains_nothing(nodes, candidates, expected):
    snap = make_snapshot(nodes, [make_copy("cache-a-0", "node-a1", "master")])
    result = filter_nodes(POD, candidates, snap)
    assert result.accepted == expected
    assert result.outcome is Outcome.SPREAD


def test_a_copy_holder_outside_the_known_domains_makes_the_level_active():
    # level_domains lists zone-a only, but a copy sits in zone-b: two domains, so zone spreads
    nodes = [make_node("node-a1", "zone-a", "r"), make_node("node-a2", "zone-a", "r"),
             make_node("node-b1", "zone-b", "r"), make_node("node-b2", "zone-b", "r")]
    snap = make_snapshot(nodes, [make_copy("cache-a-0", "node-b1", "master")],
                         level_domains=(frozenset(n.name for n in nodes), frozenset({"zone-a"}), frozenset({"r"})))
    result = filter_nodes(POD, ["node-b2", "node-a2"], snap)
    assert result.accepted == ["node-a2"]


# --- regions and other levels ------------------------------------------------------------

def two_regions():
    return [make_node(f"node-{r}{z}{i}", zone=f"zone-{r}{z}", region=f"region-{r}")
            for r in "12" for z in "ab" for i in (1, 2)]


def test_region_holding_a_copy_is_rejected_when_a_copy_free_region_has_a_candidate():
    snap = make_snapshot(two_regions(), [make_copy("cache-a-4", "node-1a1", "master")])
    result = filter_nodes(POD, ["node-1b1", "node-2a1"], snap)
    assert result.accepted == ["node-2a1"]
    assert result.unresolvable["node-1b1"] == (
        "region-1 already holds shard 3 of cache-a (cache-a-4, master); regions without a copy are available")


def test_region_level_is_decided_before_zone_level():
    # region-1: 2 copies in zone-1a, candidate node-1b1 in copy-free zone-1b.
    # region-2: 1 copy in zone-2a, candidate node-2a2 in that zone.
    # Region first keeps region-2 (fewer copies) even though its zone holds a copy;
    # zone first would have kept node-1b1 instead.
    copies = [make_copy("cache-a-0", "node-1a1", "master"), make_copy("cache-a-5", "node-1a2", "replica"),
              make_copy("cache-a-4", "node-2a1", "replica")]
    result = filter_nodes(POD, ["node-1b1", "node-2a2"], make_snapshot(two_regions(), copies))
    assert result.accepted == ["node-2a2"]
    assert result.unresolvable["node-1b1"].startswith("region-1 holds 2 copies")
    assert result.outcome is Outcome.RELAXED


def test_zone_rule_applies_among_the_survivors_of_the_region_rule():
    copies = [make_copy("cache-a-0", "node-1a1", "master"), make_copy("cache-a-4", "node-2a1", "replica")]
    nodes = two_regions() + [make_node("node-3a1", "zone-3a", "region-3")]
    snap = make_snapshot(nodes, copies)
    # every region holds a copy but region-3; no candidate there: zone-level spread inside regions 1 and 2
    result = filter_nodes(POD, ["node-1a2", "node-1b1", "node-2a2", "node-2b1"], snap)
    assert result.accepted == ["node-1b1", "node-2b1"]


def test_an_extra_rack_level_spreads_copies_like_a_zone():
    from extender.core.model import Node

    levels = ("kubernetes.io/hostname", "example.com/rack", "topology.kubernetes.io/zone")
    nodes = [Node(f"node-{r}{i}", (f"node-{r}{i}", f"rack-{r}", "zone-a"), 16 * Gi, 8000)
             for r in "12" for i in (1, 2)]
    snap = make_snapshot(nodes, [make_copy("cache-a-0", "node-11", "master")], levels=levels)
    result = filter_nodes(POD, ["node-12", "node-21"], snap)
    assert result.accepted == ["node-21"]
    assert result.unresolvable["node-12"] == (
        "rack-1 already holds shard 3 of cache-a (cache-a-0, master); racks without a copy are available")


# --- resources and readiness --------------------------------------------------------------

def test_node_without_memory_headroom_is_rejected_as_failed_with_a_readable_reason():
    nodes = [make_node("node-a1", "zone-a", "r", memory=8 * Gi), make_node("node-b1", "zone-b", "r", memory=8 * Gi)]
    snap = make_snapshot(nodes, requested_memory={"node-a1": 7 * Gi + 512 * Mi})
    result = filter_nodes(POD, ["node-a1", "node-b1"], snap)
    assert result.accepted == ["node-b1"]
    assert result.failed == {"node-a1": "memory headroom 512Mi < request 1Gi (allocatable 8Gi, requested 7.5Gi)"}
    assert result.unresolvable == {}


def test_the_nominated_node_is_not_judged_on_headroom_but_still_on_readiness():
    from dataclasses import replace

    nodes = [make_node("node-a1", "zone-a", "r", memory=8 * Gi), make_node("node-b1", "zone-b", "r", memory=8 * Gi),
             make_node("node-c1", "zone-c", "r", ready=False)]
    full = {"node-a1": 8 * Gi, "node-b1": 8 * Gi}
    snap = make_snapshot(nodes, requested_memory=full)
    nominated = replace(POD, nominated_node="node-a1")  # the scheduler preempted there: its victims are leaving
    result = filter_nodes(nominated, ["node-a1", "node-b1", "node-c1"], snap)
    assert result.accepted == ["node-a1"] and set(result.failed) == {"node-b1", "node-c1"}
    assert filter_nodes(POD, ["node-a1", "node-b1"], snap).accepted == []
    on_not_ready = replace(POD, nominated_node="node-c1")
    assert filter_nodes(on_not_ready, ["node-c1"], snap).failed == {"node-c1": "node is not Ready (cached node status)"}


@pytest.mark.parametrize("allocatable, requested, accepted", [
    pytest.param(8 * Gi, 7 * Gi, True, id="headroom-exactly-the-request-fits"),
    pytest.param(8 * Gi, 7 * Gi + 1, False, id="one-byte-short-does-not-fit"),
    pytest.param(None, 100 * Gi, True, id="unknown-allocatable-is-never-rejected"),
    pytest.param(8 * Gi, 0, True, id="empty-node-fits"),
])
def test_memory_headroom_boundary(allocatable, requested, accepted):
    snap = make_snapshot([make_node("node-a1", "zone-a", "r", memory=allocatable)],
                         requested_memory={"node-a1": requested})
    result = filter_nodes(POD, ["node-a1"], snap)
    assert (result.accepted == ["node-a1"]) is accepted
    assert ("node-a1" in result.failed) is (not accepted)


def test_uncached_node_is_not_rejected_on_resources():
    result = filter_nodes(POD, ["node-new"], make_snapshot([]))
    assert result.accepted == ["node-new"]


def test_not_ready_node_is_rejected_as_failed():
    nodes = [make_node("node-a1", "zone-a", "r", ready=False), make_node("node-b1", "zone-b", "r")]
    result = filter_nodes(POD, ["node-a1", "node-b1"], make_snapshot(nodes))
    assert result.accepted == ["node-b1"]
    assert result.failed == {"node-a1": "node is not Ready (cached node status)"}


def test_resources_are_checked_before_spread_so_a_full_copy_free_zone_does_not_reject_others():
    # zone-b is copy-free but its only candidate is full: zone-a's copy-free node must be kept
    nodes = [make_node("node-a1", "zone-a", "r"), make_node("node-a2", "zone-a", "r"),
             make_node("node-b1", "zone-b", "r", memory=1 * Gi)]
    snap = make_snapshot(nodes, [make_copy("cache-a-0", "node-a1", "master")], requested_memory={"node-b1": 1 * Gi})
    result = filter_nodes(POD, ["node-a2", "node-b1"], snap)
    assert result.accepted == ["node-a2"]
    assert "node-b1" in result.failed


@pytest.mark.parametrize("node_kw, requested", [
    pytest.param({"memory": 8 * Gi}, 8 * Gi, id="full-node-holding-a-copy"),
    pytest.param({"ready": False}, 0, id="not-ready-node-holding-a-copy"),
])
def test_node_holding_a_copy_is_unresolvable_even_without_room(node_kw, requested):
    nodes = [make_node("node-a1", "zone-a", "r", **node_kw), make_node("node-b1", "zone-b", "r")]
    snap = make_snapshot(nodes, [make_copy("cache-a-0", "node-a1", "master")],
                         requested_memory={"node-a1": requested})
    result = filter_nodes(POD, ["node-a1", "node-b1"], snap)
    assert "node-a1" in result.unresolvable
    assert "node-a1" not in result.failed


# --- pods the spread rules do not apply to ------------------------------------------------

def test_non_redis_pod_passes_through_untouched():
    pod = make_pod("web-1", cluster=None, memory=100 * Gi)
    nodes = [make_node("node-a1", "zone-a", "r", ready=False), make_node("node-b1", "zone-b", "r", memory=1 * Gi)]
    snap = make_snapshot(nodes, [make_copy("cache-a-0", "node-a1", "master")])
    candidates = ["node-b1", "node-a1", "node-new"]
    result = filter_nodes(pod, candidates, snap)
    assert result.accepted == candidates
    assert result.failed == {} and result.unresolvable == {}
    assert result.outcome is Outcome.PASSTHROUGH


def test_pod_with_cluster_but_no_shard_only_gets_resource_filtering():
    pod = make_pod("cache-a-x", shard=None, memory=1 * Gi)
    nodes = three_zones() + [make_node("node-full", "zone-a", "region-1", memory=512 * Mi)]
    snap = make_snapshot(nodes, [make_copy("cache-a-0", "node-a1", "master")],
                         pods_per_node={"node-a1": 3, "node-a2": 1})
    result = filter_nodes(pod, ["node-a1", "node-a2", "node-b1", "node-full"], snap)
    assert result.accepted == ["node-a1", "node-a2", "node-b1"]
    assert list(result.failed) == ["node-full"]
    assert result.unresolvable == {}


@pytest.mark.parametrize("stale_pod, accepted", [
    pytest.param("ns/cache-a-1", ["node-a1", "node-b1"], id="same-namespace-and-name-is-the-pod-itself"),
    pytest.param("other/cache-a-1", ["node-b1"], id="same-name-in-another-namespace-is-a-real-copy"),
])
def test_the_pods_own_stale_copy_is_ignored(stale_pod, accepted):
    snap = make_snapshot(three_zones(), [Copy(pod=stale_pod, node="node-a1", role=Role.REPLICA)])
    result = filter_nodes(POD, ["node-a1", "node-b1"], snap, own_node="node-a1")
    assert result.accepted == accepted


def test_accepted_nodes_keep_the_input_order():
    snap = make_snapshot(three_zones(), [make_copy("cache-a-0", "node-a1", "master")])
    candidates = ["node-c2", "node-a2", "node-b1", "node-c1", "node-b2"]
    result = filter_nodes(POD, candidates, snap)
    assert result.accepted == ["node-c2", "node-b1", "node-c1", "node-b2"]


def test_no_candidates_means_no_fit():
    result = filter_nodes(POD, [], make_snapshot(three_zones()))
    assert result.accepted == [] and result.outcome is Outcome.NO_FIT


def test_an_empty_node_table_treats_every_candidate_as_uncached():
    """The first request after start may come before the sync has stored any node."""
    from extender.policy.candidates import NodeArrays, Tables, UsageArrays

    arrays = NodeArrays.build({}, 3)
    snapshot = Snapshot(level_names=LEVELS, nodes={})
    result = filter_nodes(make_pod(), ["fresh-node"], snapshot, tables=Tables(arrays, UsageArrays.build(arrays, {}, {})))
    assert result.accepted == ["fresh-node"]


# --- rule 4: masters ------------------------------------------------------------------------

MASTER = make_pod("cache-a-2", cluster="cache-a", shard="2", role="master")
NODES6 = ["node-a1", "node-a2", "node-b1", "node-b2", "node-c1", "node-c2"]


def zone(name: str) -> str:
    return "zone-" + name[len("node-")]


def one_zone_among(result, candidates: list[str], zones: set[str]) -> str:
    """Rule 5: the master's survivors are the candidates of one zone, one of `zones` (the
    ones rule 4 allows); the others name that zone. Returns it."""
    chosen = {zone(n) for n in result.accepted}
    assert len(chosen) == 1 and chosen <= zones, result.accepted
    (where,) = chosen
    for name in candidates:
        if zone(name) in zones and zone(name) != where:
            assert result.unresolvable[name].startswith("a master of cache-a goes to one zone at a time: " + where), \
                result.unresolvable[name]
    return where


def test_a_master_goes_to_the_zones_holding_the_fewest_masters_of_its_cluster():
    snap = make_snapshot(three_zones(), masters_per_node={"node-a1": 1, "node-b1": 1},
                         pods_per_node={"node-a1": 1, "node-b1": 1})
    result = filter_nodes(MASTER, NODES6, snap)
    assert result.accepted == ["node-c1", "node-c2"]
    assert result.unresolvable["node-a2"] == ("zone-a would hold 2 of 3 masters of cache-a (half or more: "
                                              "losing it loses the quorum); zones that stay below half are available")


def test_a_crowded_zone_that_stays_below_half_is_named_as_crowded():
    """Masters 3/3/2, this one the 9th: zone a would hold 4 of 9, still below half."""
    snap = make_snapshot(three_zones(), masters_per_node={"node-a1": 2, "node-a2": 1, "node-b1": 2,
                                                          "node-b2": 1, "node-c1": 1, "node-c2": 1})
    result = filter_nodes(MASTER, NODES6, snap)
    assert result.accepted == ["node-c1", "node-c2"]
    assert result.unresolvable["node-a2"] == ("zone-a holds 3 of cache-a's masters; a master goes to the "
                                              "zones holding 2")


def test_a_replica_is_not_spread_by_masters():
    snap = make_snapshot(three_zones(), masters_per_node={"node-a1": 1, "node-b1": 1})
    assert filter_nodes(POD, NODES6, snap).accepted == NODES6


def test_masters_of_another_cluster_do_not_count():
    """ClusterCounts are the pod's cluster's (the store reads cmasters:<cluster>)."""
    snap = make_snapshot(three_zones())
    result = filter_nodes(MASTER, NODES6, snap)
    where = one_zone_among(result, NODES6, {"zone-a", "zone-b", "zone-c"})
    assert result.accepted == [n for n in NODES6 if zone(n) == where]  # every node of the zone


def test_the_masters_rule_works_among_the_shard_rule_survivors_and_relaxes_never_pending():
    """Zone c is the only copy-free zone: the master goes there, whatever its masters."""
    copies = [make_copy("cache-a-7", "node-a1"), make_copy("cache-a-8", "node-b1")]
    snap = make_snapshot(three_zones(), copies, masters_per_node={"node-c1": 2, "node-c2": 1})
    result = filter_nodes(MASTER, NODES6, snap)
    assert result.accepted == ["node-c2"]  # the node level: the fewest masters in zone c
    assert "masters" in result.unresolvable["node-c1"]


def test_masters_spread_per_node_within_the_zone():
    snap = make_snapshot(three_zones(), masters_per_node={"node-a1": 1, "node-b1": 1, "node-c1": 1})
    result = filter_nodes(MASTER, NODES6, snap)
    where = one_zone_among(result, ["node-a2", "node-b2", "node-c2"], {"zone-a", "zone-b", "zone-c"})
    assert result.accepted == [f"node-{where[-1]}2"]


def test_masters_spread_per_node_even_when_the_levels_leave_the_node_out():
    from extender.core.model import Node

    levels = ("topology.kubernetes.io/zone", "topology.kubernetes.io/region")
    nodes = [Node(f"node-{z}{i}", (f"zone-{z}", "region-1"), 16 * Gi, 8000) for z in "abc" for i in (1, 2)]
    reserved = [Copy(pod="ns/cache-a-0", node="node-b2", role=Role.MASTER, reserved=True)]
    snap = make_snapshot(nodes, levels=levels, masters_per_node={"node-a1": 1, "node-c1": 1}, reserved=reserved)
    result = filter_nodes(MASTER, NODES6, snap)
    free = {"zone-a": "node-a2", "zone-b": "node-b1", "zone-c": "node-c2"}
    where = one_zone_among(result, NODES6, set(free))
    assert result.accepted == [free[where]]
    crowded = {"zone-a": "node-a1", "zone-b": "node-b2", "zone-c": "node-c1"}[where]
    assert result.unresolvable[crowded] == f"{crowded} holds 1 of cache-a's masters; a master goes to the nodes holding 0"
    assert filter_nodes(POD, NODES6, snap).accepted == NODES6  # a replica: no masters rule


def test_a_sibling_master_in_flight_counts_where_it_is_reserved():
    reserved = [Copy(pod="ns/cache-a-0", node="node-a2", role=Role.MASTER, reserved=True),
                Copy(pod="ns/cache-a-1", node="node-b1", role=Role.MASTER, reserved=True),
                Copy(pod="ns/cache-a-5", node="node-c1", role=Role.REPLICA, reserved=True)]
    snap = make_snapshot(three_zones(), reserved=reserved)
    assert filter_nodes(MASTER, NODES6, snap).accepted == ["node-c1", "node-c2"]


def test_the_pods_own_reservation_does_not_count_against_it():
    reserved = [Copy(pod=MASTER.key, node="node-a1", role=Role.MASTER, reserved=True)]
    snap = make_snapshot(three_zones(), reserved=reserved)
    one_zone_among(filter_nodes(MASTER, NODES6, snap), NODES6, {"zone-a", "zone-b", "zone-c"})


def test_of_equal_zones_a_master_takes_the_one_with_the_fewest_pods_of_its_cluster():
    snap = make_snapshot(three_zones(), pods_per_node={"node-a1": 2, "node-b2": 1, "node-c1": 1, "node-c2": 1})
    assert filter_nodes(MASTER, NODES6, snap).accepted == ["node-b1", "node-b2"]


def test_the_zone_of_a_master_depends_on_the_pod_not_on_the_order_of_the_candidates():
    snap = make_snapshot(three_zones())
    chosen = set()
    for i in range(30):
        pod = make_pod(f"cache-a-{i}", cluster="cache-a", shard=str(i), role="master")
        forward = filter_nodes(pod, NODES6, snap).accepted
        assert sorted(filter_nodes(pod, NODES6[::-1], snap).accepted) == sorted(forward)
        chosen.add(zone(forward[0]))
    assert chosen == {"zone-a", "zone-b", "zone-c"}  # equal pods spread over equal zones


def test_a_master_keeps_the_zone_of_its_nominated_node():
    """The scheduler preempted there for it: the one zone is that one (while rule 4 allows it)."""
    from dataclasses import replace

    snap = make_snapshot(three_zones())
    for node in NODES6:
        assert filter_nodes(replace(MASTER, nominated_node=node), NODES6, snap).accepted == \
            [n for n in NODES6 if zone(n) == zone(node)]


def test_a_replica_is_not_held_to_one_zone():
    assert filter_nodes(POD, NODES6, make_snapshot(three_zones())).accepted == NODES6


def test_quorum_unsafe_zone_is_named_when_a_safe_zone_exists():
    """Masters 2/1/0 (3, this one the 4th): zone a would hold 3 of 4 masters."""
    nodes = three_zones()
    snap = make_snapshot(nodes, masters_per_node={"node-a1": 1, "node-a2": 1, "node-b1": 1})
    result = filter_nodes(MASTER, NODES6, snap)
    assert result.accepted == ["node-c1", "node-c2"]
    assert result.unresolvable["node-a1"].startswith("zone-a would hold 3 of 4 masters of cache-a")


def test_unknown_zone_counts_as_the_most_crowded_for_masters():
    nodes = three_zones() + [make_node("node-x", zone=None, region="region-1")]
    snap = make_snapshot(nodes, masters_per_node={"node-a1": 1, "node-b1": 1, "node-c1": 1})
    result = filter_nodes(MASTER, NODES6 + ["node-x"], snap)
    assert "node-x" not in result.accepted
    assert "unknown" in result.unresolvable["node-x"]
