"""The chart's `cache.mode=sentinel`: the extender keeps placing Redis pods while its cache's
master dies mid-burst.

A real Sentinel-managed Redis on 127.0.0.1 (three redis-server processes, three Sentinels with
quorum 2: tests/support/sentinel.py) holds the live extender's state, reached as the chart
reaches it (REDIS_URL=redis+sentinel://...). The real kube-scheduler places a burst of 96
Redis pods (bench_placement's burst, the `even` topology: 3 zones of 3 nodes) through the
extender; once a fifth of them is bound, the cache's master is SIGKILLed. The Sentinels
promote a replica; the extender finds it through them. Every pod is bound, some after the
kill (so the kill was mid-burst), and the placement breaks no hard rule (0 violations): no
two copies of a shard on a node, no zone beyond an even spread, nothing on an unknown zone.

Not asserted, printed: the soft balance of masters. Measured on 2 shared cores (kube-apiserver
v1.37.2): 6 runs with the kill, all 96 pods bound in 7.4-10.5 s with 0 violations, but in 2
runs a zone held 2 more masters of a cluster than another (master_skew_zone 2; in one of
them 2 clusters quorum-unsafe); 4 control runs without the kill (RX_KILL_AFTER=1000): skew 1,
0 quorum-unsafe, 3.2-5.1 s. Replication is asynchronous: what the master acknowledged in
its last moments (placement records, reservations, master counts) can be missing on the
promoted replica, and the extender reads the promoted replica's state as whole.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from benchmarks.bench_placement import (NAMESPACE, RUN_LABEL, TOPOLOGIES, Session, burst, create_topology,
                                        delete_topology, measure)
from benchmarks.bench_scheduler import _ensure_namespace

from ..support.sentinel import SentinelCache

pytestmark = pytest.mark.e2e

PODS = 96
KILL_AFTER_BOUND = int(os.environ.get("RX_KILL_AFTER", PODS // 5))


def bound_count(cp: Any, run_id: str) -> int:
    return sum(1 for p in cp.list_pods(NAMESPACE, f"{RUN_LABEL}={run_id}") if p["spec"].get("nodeName"))


def test_cache_master_killed_mid_burst_every_pod_bound_without_a_violation(control_plane, tmp_path) -> None:
    _ensure_namespace(control_plane)
    cache = SentinelCache(tmp_path).start()
    tag = f"e2es{os.getpid() % 1000}"
    zone_of = create_topology(control_plane, TOPOLOGIES["even"], tag)
    killed: dict[str, Any] = {}
    try:
        session = Session(control_plane, "extender", zone_of, cache.url, tmp_path, tag)
        try:
            run_id = session.next_run()
            bodies = burst(run_id, PODS, native=False)
            stop = threading.Event()

            def kill_mid_burst() -> None:
                while not stop.is_set():
                    bound = bound_count(control_plane, run_id)
                    if bound >= KILL_AFTER_BOUND:
                        killed["bound"] = bound
                        killed["port"] = cache.kill_master()
                        killed["at"] = time.monotonic()
                        return
                    stop.wait(0.05)

            killer = threading.Thread(target=kill_mid_burst, daemon=True)
            killer.start()
            node_of, seconds = session.place(run_id, bodies, timeout=180)
            stop.set()
            killer.join(10)
            result = measure(bodies, node_of, zone_of)
            new_master = cache.wait_failover(killed["port"]) if "port" in killed else None
            where = {"killed": killed, "new_master": new_master, "seconds": seconds,
                     **{k: v for k, v in result.items() if k != "placement"}}
            print(f"sentinel failover mid-burst: {where}")
            assert "port" in killed, f"the master was never killed: {where}"
            assert killed["bound"] < PODS, f"the kill came after the burst: {where}"
            assert new_master and new_master != killed["port"], where
            assert result["pods"] == PODS and result["pending"] == 0, where
            assert len(node_of) == PODS, where
            assert result["node_sharing"] == 0, where
            assert result["zone_excess"] == 0, where
            assert result["unknown_zone"] == 0, where
            session.delete(run_id, [b["metadata"]["name"] for b in bodies])
        finally:
            session.close()
    finally:
        delete_topology(control_plane, zone_of)
        cache.stop()
