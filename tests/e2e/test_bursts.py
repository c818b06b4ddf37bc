"""Bursts through the real kube-scheduler and the live extender keep every invariant, masters too.

Per topology (uneven zones with an unlabelled node, fewer zones than copies, even zones) one
kube-scheduler and one `redis-extender serve --kubeconfig` schedule three bursts of 26 to 96
Redis pods created at once (as parallel StatefulSets would), each deleted before the next;
the measures are benchmarks/bench_placement.py's. Every run: nothing Pending, no two copies
of a shard on one node, no zone beyond an even spread, nothing on an unknown zone, the
masters of each cluster at most one apart per zone and per node of a zone where the domains
allow (no master on a node with two more of its cluster's masters than a node of the same zone
holding no copy of its shard), and no cluster with three or more zones where one zone holds
half of its masters.
"""
from __future__ import annotations

import os

import pytest

from benchmarks.bench_placement import COPIES, TOPOLOGIES, Session, create_topology, delete_topology

pytestmark = pytest.mark.e2e

BURSTS = (26, 60, 96)


@pytest.mark.parametrize("topology", ["uneven", "fewer-zones", "even"])
def test_bursts_keep_shards_spread_and_masters_balanced_and_quorum_safe(topology, control_plane, redis_server,
                                                                       tmp_path) -> None:
    from benchmarks.bench_scheduler import _ensure_namespace

    _ensure_namespace(control_plane)
    tag = f"e2eb{os.getpid() % 1000}{topology[0]}"
    zone_of = create_topology(control_plane, TOPOLOGIES[topology], tag)
    try:
        session = Session(control_plane, "extender", zone_of, redis_server.url, tmp_path, tag)
        try:
            for pods in BURSTS:
                r = session.run(pods, timeout=90)
                where = (topology, pods, {k: v for k, v in r.items() if k != "placement"})
                assert r["pods"] == pods
                assert r["pending"] == 0, where
                assert r["node_sharing"] == 0, where
                assert r["zone_excess"] == 0, where
                assert r["unknown_zone"] == 0, where
                assert r["master_skew_zone"] <= 1, where
                # per node, where the domains allow: no master on a node holding two more of its
                # cluster's masters than a node of its zone free of its shard; with one copy of a
                # shard per zone (zones >= copies) that is skew <= 1 between any two nodes of a zone
                assert r["master_node_avoidable"] == 0, where
                if len(TOPOLOGIES[topology].zones) >= COPIES:
                    assert r["master_skew_node"] <= 1, where
                assert r["quorum_unsafe"] == 0, where
        finally:
            session.close()
    finally:
        delete_topology(control_plane, zone_of)
