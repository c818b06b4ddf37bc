"""The placement-quality measures of benchmarks/bench_placement.py, on hand-made placements."""
from __future__ import annotations

from benchmarks.bench_placement import _cluster_pods, measure

ZONES = {"a1": "zone-a", "a2": "zone-a", "b1": "zone-b", "b2": "zone-b", "c1": "zone-c", "x": None}


def bodies(pods: int = 9):
    return _cluster_pods("c", pods, "run", native=False)  # shards 0..2, copy-major: masters c-s0-0 .. c-s2-0


def test_a_clean_placement_measures_clean():
    node_of = {"c-s0-0": "a1", "c-s1-0": "b1", "c-s2-0": "c1", "c-s0-1": "b2", "c-s1-1": "c1", "c-s2-1": "a2",
               "c-s0-2": "c1", "c-s1-2": "a1", "c-s2-2": "b1"}
    m = measure(bodies(), node_of, ZONES)
    assert (m["pending"], m["node_sharing"], m["zone_excess"], m["unknown_zone"]) == (0, 0, 0, 0)
    assert (m["master_skew_zone"], m["quorum_unsafe"], m["master_node_avoidable"]) == (0, 0, 0)


def test_every_fault_is_counted():
    node_of = {"c-s0-0": "a1", "c-s1-0": "a2", "c-s2-0": "x",  # 2 masters in zone-a, one on no zone
               "c-s0-1": "a1",  # shares a node with its master (and the zone)
               "c-s1-1": "b1", "c-s2-1": "b2", "c-s0-2": "c1", "c-s1-2": "c1"}  # c-s2-2 pending
    m = measure(bodies(), node_of, ZONES)
    assert m["pending"] == 1
    assert m["node_sharing"] == 1
    assert m["zone_excess"] == 1  # shard 0: two in zone-a, one allowed
    assert m["unknown_zone"] == 1
    assert m["master_skew_zone"] == 2  # zone-a 2, zone-b 0
    assert m["half_masters"] == 1 and m["quorum_unsafe"] == 1  # 2 of 3 in zone-a: avoidable


def test_node_skew_is_avoidable_only_where_the_node_rule_allowed_another_node():
    node_of = {"c-s0-0": "a1", "c-s1-0": "a1", "c-s2-0": "b1"}  # a1 holds 2 masters, a2 none
    assert measure(bodies(), node_of, ZONES)["master_node_avoidable"] == 2
    blocked = {**node_of, "c-s0-1": "a2", "c-s1-1": "a2"}  # a2 holds copies of both shards
    m = measure(bodies(), blocked, ZONES)
    assert m["master_node_avoidable"] == 0 and m["master_skew_node"] == 2
