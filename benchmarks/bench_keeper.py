"""A zone lost and returned under a real Redis Cluster, with and without the keeper: the
README's figures. Per run (tests/support/zoneloss.py): a StatefulSet of 6 shards x 3 on
3 zones x 3 nodes placed by kube-scheduler v1.37.2 through the extender, a real Redis Cluster
on it (node agent), a writer counting acknowledged writes (SET + WAIT 1); zone-2 is lost (its
servers crash, its nodes NotReady) for `--lost-for` seconds and returns. Measured: seconds from
the loss to masters balanced over the survivors, seconds from the return to 2-2-2 (none when it
never came within `--watch`), the keeper's failovers, acknowledged writes and keys lost.

    python -m benchmarks.bench_keeper --runs 3 --out keeper.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from extender.local.localredis import LocalRedis
from harness.controlplane import CURRENT, ControlPlane, kube_bin_dir
from tests.support.keeperworld import keeper_world
from tests.support.zoneloss import run_zone_loss

ENV = {"REDIS_EXTENDER_KEEPER_INTERVAL": "1", "REDIS_EXTENDER_KEEPER_COOLDOWN": "2",
       "REDIS_EXTENDER_LIVE_REFRESH": "1"}


def run(runs: int, modes: Sequence[str], settle: float, lost_for: float, watch: float) -> list[dict[str, Any]]:
    bin_dir = kube_bin_dir(CURRENT)
    if bin_dir is None:
        raise SystemExit("control-plane binaries unavailable: scripts/kube-binaries.sh current")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-keeper-") as tmp, LocalRedis() as redis_server:
        with ControlPlane(bin_dir, Path(tmp) / "cp", with_scheduler=False) as cp:
            cp.start_controller_manager()
            for i in range(runs):
                for mode in modes:
                    env = {**ENV, "REDIS_EXTENDER_KEEPER": mode, "REDIS_EXTENDER_KEEPER_SETTLE": str(settle)}
                    log_dir = Path(tmp) / f"{mode}-{i}"
                    log_dir.mkdir()
                    with keeper_world(cp, redis_server.url, log_dir, env) as world:
                        r = run_zone_loss(world, mode, lost_for=lost_for, watch=watch).to_json()
                    r["run"] = i
                    print(json.dumps(r), flush=True)
                    results.append(r)
    return results


def table(results: list[dict[str, Any]]) -> str:
    def f(v: Any) -> str:
        return "never" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))

    rows = ["| keeper | run | masters after Redis's failover | loss -> balanced (s) | masters while lost | "
            "return -> 2-2-2 (s) | masters at the end | keeper failovers | acknowledged writes | keys lost |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append("| " + " | ".join([r["keeper"], str(r["run"]), _counts(r["masters_after_failover"]),
                                       f(r["loss_to_balanced"]), _counts(r["masters_while_lost"]),
                                       f(r["return_to_balanced"]), _counts(r["masters_after_return"]),
                                       str(r["steps"]), str(r["acked"]), str(r["lost_keys"])]) + " |")
    return "\n".join(rows)


def _counts(c: dict[str, int]) -> str:
    return "-".join(str(v) for _, v in sorted(c.items()))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--modes", default="act,off")
    p.add_argument("--settle", type=float, default=8.0)
    p.add_argument("--lost-for", type=float, default=30.0)
    p.add_argument("--watch", type=float, default=90.0)
    p.add_argument("--out")
    ns = p.parse_args(argv)
    results = run(ns.runs, ns.modes.split(","), ns.settle, ns.lost_for, ns.watch)
    print(table(results))
    if ns.out:
        Path(ns.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
