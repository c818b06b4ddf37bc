"""Smoke test of the real-scheduler throughput benchmark (benchmarks/bench_scheduler.py): a small
cluster, every mode, on the session's control plane. Proves the measurement runs end to end
and returns sane numbers; the figures themselves are not asserted (a noisy 2-core machine)."""
from __future__ import annotations

import json

import pytest

from benchmarks.bench_scheduler import MODES, run

pytestmark = pytest.mark.e2e


def test_bench_scheduler_runs_every_mode_end_to_end(control_plane, tmp_path, capsys) -> None:
    out = tmp_path / "sched.json"
    result = run(nodes=30, pods=30, modes=MODES, workers=1, out=out, control_plane=control_plane,
                 timeout=60)

    modes = [r["mode"] for r in result["runs"]]
    assert modes == [*MODES, "none"]  # "none" again at the end, for the noisy-machine mean
    for r in result["runs"]:
        assert "error" not in r, r["error"]
        assert r["complete"] and r["bound"] == r["pods"] == 30, r
        assert r["pods_per_s"] > 0 and r["seconds"] > 0
        assert r["violations"]["shards"] == 10
        if r["mode"] != "none":
            # the extender's rules held: never two copies of a shard on one node, 3 zones each
            assert r["violations"] == {"node": 0, "zone": 0, "shards": 10}, r["violations"]
            ext = r["extender"]
            assert ext["latency"]["filter"]["count"] >= 30
            assert ext["latency"]["prioritize"]["count"] >= 1
            assert ext["latency"]["bind"]["count"] >= 30  # the extender bound, not the scheduler
            assert ext["placements"].get("ok", 0) == 30
            assert r["per_pod_ms"]["wall"] > 0
    summary = result["summary"]
    assert set(summary) == set(MODES)
    assert summary["none"]["ratio"] == 1.0 and len(summary["none"]["runs"]) == 2
    assert all(0 < summary[m]["ratio"] for m in MODES)

    assert json.loads(out.read_text())["summary"] == json.loads(json.dumps(summary))
    printed = capsys.readouterr().out
    assert "pods/s" in printed and "extender-full" in printed
    print(printed)
    # the bench nodes are gone again from the shared control plane
    assert not [n for n in control_plane.request("GET", "/api/v1/nodes")["items"]
                if n["metadata"]["name"].startswith("bench")]
