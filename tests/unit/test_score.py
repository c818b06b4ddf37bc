"""Prioritize scores of extender.policy.score: which candidate the extender prefers, and how
clearly (ints 0..10, best 10, worst 0)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from extender.policy.score import MAX_SCORE, NEUTRAL_SCORE, score_nodes

from .builders import Gi, make_copy, make_node, make_pod, make_settings, make_snapshot

SETTINGS = make_settings()
REPLICA = make_pod("cache-a-1", shard="3", role="replica")
MASTER = make_pod("cache-a-1", shard="3", role="master")


def zones(*names, region="region-1", per_zone=3):
    """Nodes node-<z><i> in zone-<z> of one region."""
    return [make_node(f"node-{z}{i}", f"zone-{z}", region) for z in names for i in range(1, per_zone + 1)]


def two_regions():
    """node-<r><z><i> in zone-<r><z> of region-<r>, r in 1,2 and z in a,b."""
    return [make_node(f"node-{r}{z}{i}", f"zone-{r}{z}", f"region-{r}") for r in "12" for z in "ab" for i in (1, 2, 3)]


# --- shard spread ------------------------------------------------------------------------

@pytest.mark.parametrize("nodes, copies, worse, better", [
    pytest.param(zones("a", "b"), ["node-a1"], "node-a2", "node-b1", id="zone-holding-a-copy-scores-lower"),
    pytest.param(two_regions(), ["node-1a1"], "node-1b1", "node-2a1", id="region-holding-a-copy-scores-lower"),
    pytest.param(zones("a"), ["node-a1"], "node-a1", "node-a2", id="node-holding-a-copy-scores-lower"),
    pytest.param(zones("a", "b"), ["node-a1", "node-a2", "node-b1"], "node-a3", "node-b2",
                 id="zone-with-two-copies-scores-below-zone-with-one"),
])
def test_fewer_copies_of_the_shard_in_the_domain_scores_higher(nodes, copies, worse, better):
    snap = make_snapshot(nodes, [make_copy(f"cache-a-{10 + i}", n) for i, n in enumerate(copies)])
    scores = score_nodes(REPLICA, [worse, better], snap, SETTINGS)
    assert scores == {worse: 0, better: MAX_SCORE}


def test_scores_are_graded_by_copies_and_span_the_full_range():
    copies = ["node-b1", "node-c1", "node-c2"]
    snap = make_snapshot(zones("a", "b", "c"), [make_copy(f"cache-a-{10 + i}", n) for i, n in enumerate(copies)])
    scores = score_nodes(REPLICA, ["node-c3", "node-a1", "node-b2"], snap, SETTINGS)
    assert scores["node-a1"] == MAX_SCORE
    assert scores["node-c3"] == 0
    assert 0 < scores["node-b2"] < MAX_SCORE


def test_higher_levels_weigh_more_region_spread_beats_zone_spread():
    # node-1b1: its zone is copy-free but its region holds 2 copies.
    # node-2a2: its zone holds 1 copy, and so does its region: fewer copies at the higher level.
    copies = [make_copy("cache-a-0", "node-1a1", "master"), make_copy("cache-a-5", "node-1a2"),
              make_copy("cache-a-4", "node-2a1")]
    scores = score_nodes(REPLICA, ["node-1b1", "node-2a2"], make_snapshot(two_regions(), copies), SETTINGS)
    assert scores == {"node-1b1": 0, "node-2a2": MAX_SCORE}


def test_level_weights_are_configuration():
    copies = [make_copy("cache-a-0", "node-1a1", "master"), make_copy("cache-a-5", "node-1a2"),
              make_copy("cache-a-4", "node-2a1")]
    zone_first = replace(SETTINGS, score=replace(SETTINGS.score, level_weights=(1.0, 8.0, 1.0)))
    scores = score_nodes(REPLICA, ["node-1b1", "node-2a2"], make_snapshot(two_regions(), copies), zone_first)
    assert scores == {"node-1b1": MAX_SCORE, "node-2a2": 0}


# --- cluster spread, masters, headroom ----------------------------------------------------

def test_cluster_spread_breaks_ties_in_shard_spread():
    snap = make_snapshot(zones("a", "b"), pods_per_node={"node-a1": 2})
    assert score_nodes(REPLICA, ["node-a2", "node-b2"], snap, SETTINGS) == {"node-a2": 0, "node-b2": MAX_SCORE}


def test_shard_spread_outranks_cluster_spread():
    # node-a2: zone-a holds 3 pods of the cluster but no copy; node-b2: zone-b holds a copy
    snap = make_snapshot(zones("a", "b"), [make_copy("cache-a-0", "node-b1")], pods_per_node={"node-a1": 3})
    assert score_nodes(REPLICA, ["node-a2", "node-b2"], snap, SETTINGS) == {"node-a2": MAX_SCORE, "node-b2": 0}


def test_score_weights_are_configuration():
    snap = make_snapshot(zones("a", "b"), [make_copy("cache-a-0", "node-b1")], pods_per_node={"node-a1": 3})
    cluster_only = make_settings(shard=0.0)
    assert score_nodes(REPLICA, ["node-a2", "node-b2"], snap, cluster_only) == {"node-a2": 0, "node-b2": MAX_SCORE}


@pytest.mark.parametrize("pod, its_master, expected", [
    pytest.param(MASTER, False, {"node-a2": 0, "node-b2": MAX_SCORE}, id="master-prefers-the-zone-with-fewer-masters"),
    # equal for a replica whose master is placed: a tie, broken by the pod-and-node hash
    pytest.param(REPLICA, True, None, id="replica-ignores-masters"),
    pytest.param(make_pod("cache-a-1", shard="3", role="unknown"), False, None, id="unknown-role-ignores-masters"),
    # a replica before its master leaves the master the zone with fewer masters
    pytest.param(REPLICA, False, {"node-a2": MAX_SCORE, "node-b2": 0}, id="replica-before-its-master"),
])
def test_master_balance_applies_only_to_masters(pod, its_master, expected):
    # each zone has one pod of the cluster; zone-a's is a master; the shard's master (if
    # placed) is in zone-c, which is no candidate
    copies = [make_copy("cache-a-0", "node-c1", "master")] if its_master else []
    snap = make_snapshot(zones("a", "b", "c"), copies, pods_per_node={"node-a1": 1, "node-b1": 1},
                         masters_per_node={"node-a1": 1})
    scores = score_nodes(pod, ["node-a2", "node-b2"], snap, SETTINGS)
    if expected is None:  # the masters do not count: the same tie as without any master
        plain = make_snapshot(zones("a", "b", "c"), copies, pods_per_node={"node-a1": 1, "node-b1": 1})
        assert scores == score_nodes(pod, ["node-a2", "node-b2"], plain, SETTINGS)
        assert sorted(scores.values()) == [0, MAX_SCORE]
    else:
        assert scores == expected


@pytest.mark.parametrize("memory, cpu", [
    pytest.param({"node-a2": 12 * Gi}, {}, id="more-free-memory-wins"),
    pytest.param({}, {"node-a2": 6000}, id="more-free-cpu-wins"),
])
def test_headroom_breaks_remaining_ties(memory, cpu):
    snap = make_snapshot(zones("a", "b"), requested_memory=memory, requested_cpu=cpu)
    pod = replace(REPLICA, memory_request=1 * Gi, cpu_request=500)
    assert score_nodes(pod, ["node-a2", "node-b2"], snap, SETTINGS) == {"node-a2": 0, "node-b2": MAX_SCORE}


def test_headroom_never_outranks_cluster_spread():
    snap = make_snapshot(zones("a", "b"), pods_per_node={"node-a1": 1}, requested_memory={"node-b2": 15 * Gi},
                         requested_cpu={"node-b2": 7900})
    assert score_nodes(REPLICA, ["node-a2", "node-b2"], snap, SETTINGS) == {"node-a2": 0, "node-b2": MAX_SCORE}


# --- unknown domains ----------------------------------------------------------------------

def with_unknown(nodes):
    return nodes + [make_node("node-x", zone=None, region="region-1")]


@pytest.mark.parametrize("pod, copies, pods, known", [
    pytest.param(REPLICA, [], {}, "node-a2", id="no-copies-anywhere"),
    pytest.param(REPLICA, ["node-a1", "node-b1", "node-b2"], {}, "node-b3",
                 id="unknown-scores-below-the-most-crowded-known-zone"),
    pytest.param(make_pod("cache-a-x", shard=None), [], {"node-a1": 4}, "node-a2",
                 id="cluster-spread-unknown-below-the-busiest-zone"),
])
def test_unknown_domain_is_never_preferred(pod, copies, pods, known):
    snap = make_snapshot(with_unknown(zones("a", "b")),
                         [make_copy(f"cache-a-{10 + i}", n) for i, n in enumerate(copies)], pods_per_node=pods)
    scores = score_nodes(pod, ["node-x", known], snap, SETTINGS)
    assert scores == {"node-x": 0, known: MAX_SCORE}


def test_uncached_node_is_never_preferred():
    snap = make_snapshot(zones("a", "b"), [make_copy("cache-a-0", "node-a1")])
    scores = score_nodes(REPLICA, ["node-new", "node-a2"], snap, SETTINGS)
    assert scores == {"node-new": 0, "node-a2": MAX_SCORE}


# --- neutral and special pods -------------------------------------------------------------

def test_non_redis_pod_gets_the_same_neutral_score_for_all():
    pod = make_pod("web-1", cluster=None)
    snap = make_snapshot(with_unknown(zones("a", "b")), [make_copy("cache-a-0", "node-a1")],
                         pods_per_node={"node-b1": 3}, requested_memory={"node-b2": 15 * Gi})
    candidates = ["node-a1", "node-b2", "node-x", "node-new"]
    assert score_nodes(pod, candidates, snap, SETTINGS) == dict.fromkeys(candidates, NEUTRAL_SCORE)


def test_ties_are_broken_so_one_candidate_is_alone_at_the_top():
    """The pod is reserved on its best-scored node: the scheduler must pick that one, not
    another of equal score in another zone."""
    snap = make_snapshot(zones("a", "b", "c"), [make_copy("cache-a-0", "node-a1")])
    one = score_nodes(REPLICA, ["node-b1", "node-c1"], snap, SETTINGS)
    assert sorted(one.values()) == [0, MAX_SCORE]
    # the winner does not depend on the order the nodes are asked in (explain = prioritize)
    assert score_nodes(REPLICA, ["node-c1", "node-b1"], snap, SETTINGS) == one
    roomier = make_snapshot(zones("a", "b", "c"), [make_copy("cache-a-0", "node-a1")],
                            requested_memory={"node-b1": 1 * Gi})  # less than a quarter: same class
    assert score_nodes(REPLICA, ["node-b1", "node-c1"], roomier, SETTINGS) == {"node-b1": 0, "node-c1": MAX_SCORE}
    three = score_nodes(REPLICA, ["node-b1", "node-b2", "node-c1"], snap, SETTINGS)
    assert sorted(three.values()) == [0, 0, MAX_SCORE]


def test_no_candidates_gives_no_scores():
    assert score_nodes(REPLICA, [], make_snapshot(zones("a")), SETTINGS) == {}


def test_pod_without_a_shard_is_spread_by_cluster_only():
    # copies are ignored (the pod has no siblings to avoid); cluster pods decide
    snap = make_snapshot(zones("a", "b"), [make_copy("cache-a-0", "node-a1")], pods_per_node={"node-b1": 2})
    pod = make_pod("cache-a-x", shard=None)
    assert score_nodes(pod, ["node-a2", "node-b2"], snap, SETTINGS) == {"node-a2": MAX_SCORE, "node-b2": 0}


@pytest.mark.parametrize("own_node, expected", [
    pytest.param("node-a1", None,  # equal: a tie (broken by the pod-and-node hash), nothing pushed away
                 id="own-stale-record-is-not-counted-against-its-old-node"),
    pytest.param(None, {"node-a1": 0, "node-b1": MAX_SCORE}, id="without-own-node-the-record-counts"),
])
def test_the_pods_own_stale_record_does_not_push_it_away(own_node, expected):
    # the only pod of the cluster on record is this very pod, still shown on node-a1
    snap = make_snapshot(zones("a", "b"), [make_copy("cache-a-1", "node-a1")], pods_per_node={"node-a1": 1})
    scores = score_nodes(REPLICA, ["node-a1", "node-b1"], snap, SETTINGS, own_node=own_node)
    if expected is None:
        empty = make_snapshot(zones("a", "b"))
        assert scores == score_nodes(REPLICA, ["node-a1", "node-b1"], empty, SETTINGS)
    else:
        assert scores == expected


# --- the 0..10 range keeps every term ------------------------------------------------------

def test_one_master_of_difference_on_a_node_is_not_rounded_away_beside_a_big_shard_difference():
    """Region, zone and node spread of the shard make a raw range of ~100; one master more on
    node-1a1 (node level, the lightest) is 4 of it: ranked, it stays a whole point or more."""
    snap = make_snapshot(two_regions(), [make_copy("cache-a-9", "node-2a1")], masters_per_node={"node-1a1": 1},
                         pods_per_node={"node-1a1": 1, "node-2a1": 1})
    scores = score_nodes(MASTER, ["node-1a1", "node-1a2", "node-2a2"], snap, SETTINGS)
    assert scores["node-1a2"] == MAX_SCORE
    assert scores["node-2a2"] == 0
    assert 0 < scores["node-1a1"] < MAX_SCORE


def test_master_balance_outranks_cluster_spread_for_a_master():
    """zone-a holds a master, zone-b two replicas of the cluster: a master prefers zone-b."""
    snap = make_snapshot(zones("a", "b"), masters_per_node={"node-a1": 1},
                         pods_per_node={"node-a1": 1, "node-b1": 2})
    assert score_nodes(MASTER, ["node-a2", "node-b2"], snap, SETTINGS) == {"node-a2": 0, "node-b2": MAX_SCORE}
    assert score_nodes(REPLICA, ["node-a2", "node-b2"], snap, SETTINGS) == {"node-a2": MAX_SCORE, "node-b2": 0}


def test_a_master_in_flight_counts_like_a_placed_one():
    from extender.core.model import Copy, Role

    snap = make_snapshot(zones("a", "b"), reserved=[Copy("ns/cache-a-0", "node-a1", Role.MASTER, reserved=True)])
    assert score_nodes(MASTER, ["node-a2", "node-b2"], snap, SETTINGS) == {"node-a2": 0, "node-b2": MAX_SCORE}


def test_replicas_waiting_for_their_masters_balance_the_zones_left_to_them():
    """The first replica of every shard whose master is not placed yet used to go to the zone
    holding the cluster's one master (most masters), leaving all masters to share the other
    zones (15/16/1 in a burst of 32 shards). Replicas less masters per zone instead: zone-c
    already holds a master and five replicas, so zones a and b take this replica."""
    snap = make_snapshot(zones("a", "b", "c"), pods_per_node={"node-c1": 3, "node-c2": 3},
                         masters_per_node={"node-c1": 1})
    scores = score_nodes(REPLICA, ["node-a2", "node-b2", "node-c2"], snap, SETTINGS)
    assert scores["node-c2"] < min(scores["node-a2"], scores["node-b2"]), scores
    # with the replicas even, the zone with more masters takes it (its master goes elsewhere)
    even = make_snapshot(zones("a", "b", "c"), pods_per_node={"node-a1": 1, "node-b1": 2, "node-c1": 2},
                         masters_per_node={"node-b1": 1, "node-c1": 1})
    scores = score_nodes(REPLICA, ["node-a2", "node-b2", "node-c2"], even, SETTINGS)
    assert scores["node-a2"] < min(scores["node-b2"], scores["node-c2"]), scores
