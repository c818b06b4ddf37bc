"""/preempt's decision beside filter's, in one process against one private redis-server.

A simulated cluster (extender/local/simulate.py: `nodes` nodes in 3 zones, `shards` shards of 3
copies, every Redis pod placed, two filler pods a node) is loaded; then, interleaved call by
call, Decider.filter for a pending Redis pod over every node, and Decider.preempt for the same
pod with every node a candidate and its pods (fillers and Redis copies) as victims by UID, as
a nodeCacheCapable scheduler sends them. Printed: p50 and p90 of each and the ratio of the
p50s. preempt reads more of the state (a SCAN of every shard hash, the copies' UIDs, the live
topologies of the victims' clusters): preemption is rare, a filter is every pod.

    python -m benchmarks.bench_preempt --nodes 1000 --shards 300 --calls 50
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from extender.core.identity import Identifier
from extender.local.localredis import LocalRedis
from extender.core.model import Victim, VictimSet
from extender.protocol import ExtenderArgs, PreemptionArgs, parse_pod
from extender.engine.decider import Decider
from extender.core.settings import Settings
from extender.local.simulate import Shape, generate, make_pod, redis_labels
from extender.state.cache import StateCache
from extender.state.loader import load_list
from extender.state.store import RedisStore


def run(nodes: int, shards: int, calls: int) -> dict[str, float]:
    settings = Settings()
    identifier = Identifier(settings.identity)
    document = generate(Shape(nodes=nodes, zones=3, clusters=1, shards=shards, replicas=2, placed=1.0))
    on_node: dict[str, list[str]] = defaultdict(list)
    for item in document["items"]:
        if item["kind"] == "Pod" and item["spec"].get("nodeName"):
            on_node[item["spec"]["nodeName"]].append(item["metadata"]["uid"])
    names = [i["metadata"]["name"] for i in document["items"] if i["kind"] == "Node"]
    with LocalRedis() as server:
        store = RedisStore.from_url(server.url, settings.store.key_prefix, timeout=10)
        load_list(store, document, identifier)
        decider = Decider(settings, StateCache(store, settings.domains.levels), identifier)
        pod = parse_pod(make_pod("redis", "newcomer", redis_labels("cache-0", 0, "replica"), "1Gi", "500m"),
                        identifier)
        victims = {n: VictimSet(n, tuple(Victim(uid, n) for uid in on_node[n])) for n in names}
        filter_args = ExtenderArgs(pod, names, None, True)
        preempt_args = PreemptionArgs(pod, victims, True)
        timings: dict[str, list[float]] = {"filter": [], "preempt": []}
        for _ in range(calls):
            for verb, call in (("filter", lambda: decider.filter(filter_args)),
                               ("preempt", lambda: decider.preempt(preempt_args))):
                t0 = time.perf_counter()
                call()
                timings[verb].append(time.perf_counter() - t0)
        kept = len(decider.preempt(preempt_args)[0].kept)
    out = {}
    for verb, values in timings.items():
        q = statistics.quantiles(values, n=10)
        out[f"{verb}_p50_ms"], out[f"{verb}_p90_ms"] = statistics.median(values) * 1000, q[8] * 1000
    out["ratio_p50"] = out["preempt_p50_ms"] / out["filter_p50_ms"]
    out["kept"] = kept
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=300)
    parser.add_argument("--calls", type=int, default=50)
    ns = parser.parse_args()
    result = run(ns.nodes, ns.shards, ns.calls)
    print(f"{ns.nodes} nodes, {ns.shards} shards x 3 copies, {ns.calls} calls each:")
    print(f"  filter  p50 {result['filter_p50_ms']:.2f} ms  p90 {result['filter_p90_ms']:.2f} ms")
    print(f"  preempt p50 {result['preempt_p50_ms']:.2f} ms  p90 {result['preempt_p90_ms']:.2f} ms  "
          f"({result['kept']:.0f} candidates kept)")
    print(f"  preempt / filter at p50: {result['ratio_p50']:.1f}x")


if __name__ == "__main__":
    main()
