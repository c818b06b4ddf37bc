"""Placement quality of bursts through the real kube-scheduler: the extender vs the best native rules.

One control plane (etcd + kube-apiserver, harness/controlplane.py) and one private
redis-server. Per topology its fake Ready Nodes are created, then per mode a kube-scheduler
(and for the extender a `redis-extender serve --kubeconfig` in live mode, which syncs and
binds) is started once and schedules `runs` bursts, one after the other, each deleted again
before the next:

- ``extender``: filter + prioritize + bind through the extender (nodeCacheCapable), pods
  carry only the Redis labels (cluster, shard, role);
- ``native``:   the scheduler alone with the best rules the pod spec offers: required
  podAntiAffinity on the hostname per shard, topologySpreadConstraints maxSkew 1 per zone
  for the shard's copies (DoNotSchedule) and, on masters, for the cluster's masters
  (ScheduleAnyway: v1.20 allows one constraint per key and whenUnsatisfiable), plus the
  cluster's pods per node (ScheduleAnyway).

A burst is 26 to 96 pods at once (run i takes BURSTS[i % 5]) in clusters of up to 6 shards x
3 copies, created from a few threads copy-major, as parallel StatefulSets (one per copy)
would; copy 0 of a shard is its master (role label). Topologies:

- ``uneven``:      zones of 4, 2 and 1 nodes, plus a node without a zone label;
- ``fewer-zones``: 2 zones of 3 nodes, fewer zones than copies;
- ``even``:        3 zones of 3 nodes;
- ``large``:       3 zones of 10 nodes, each burst one cluster of 32 shards x 3 (96 pods).

Per run it prints: pods pending (once the burst settles: every pod bound, or no bind for
SETTLE_S), copies sharing a node (copies beyond the first of a shard on one node), copies
beyond an even spread per zone (per shard, copies in a zone beyond ceil(copies / zones)),
copies on nodes with an unknown zone, master skew per zone (max over clusters of the
most minus the fewest masters in a zone) and per node (the same among the nodes of one zone,
the domains the topology allows to balance), masters whose node skew was avoidable (a node of
the same zone holding no copy of their shard had two fewer of their cluster's masters: the
node rule allowed it), clusters with a zone holding half or more of
their masters (three or more zones; only clusters whose masters could be spread below half:
2 x ceil(masters / zones) < masters), and the scheduling time (first create to last bind).

From the repository root (the harness lives in tests/support, outside the package), or as
`redis-extender bench --placement` from a checkout:

    python -m benchmarks.bench_placement --runs 5 --out placement.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bench_scheduler import (LABEL_CLUSTER, NAMESPACE, REGION, SCHEDULER_NAME, ZONE, BindWatch,
                                        LiveExtender, _parallel, bench_world, scheduler_config)
from harness.controlplane import CURRENT, KUBE_VERSIONS, ControlPlane, version_text

MODES = ("extender", "native")
BURSTS = (26, 42, 60, 78, 96)
COPIES = 3
SHARDS_PER_CLUSTER = 6
SETTLE_S = 12.0
RUN_LABEL = "bench.redis-extender.io/run"
LABEL_SHARD = "redis-extender.io/shard"
LABEL_ROLE = "redis-extender.io/role"
UNLABELLED = "(none)"
REDIS_TIMEOUT = "0.5"


@dataclass(frozen=True)
class Topology:
    name: str
    zones: tuple[int, ...]  # nodes per zone
    unlabelled: int = 0  # nodes without a zone label
    shards_per_cluster: int = SHARDS_PER_CLUSTER  # a burst's clusters: this many shards x COPIES
    bursts: tuple[int, ...] | None = None  # pods per burst, run i takes bursts[i % len]; None: BURSTS
    late_masters: bool = False  # one master first, then every replica, then the other masters

    def nodes(self, tag: str) -> dict[str, str | None]:
        """node name -> zone (None: no zone label)."""
        out: dict[str, str | None] = {}
        for z, count in enumerate(self.zones):
            for i in range(count):
                out[f"{tag}-{self.name}-z{z}-n{i}"] = f"zone-{z}"
        for i in range(self.unlabelled):
            out[f"{tag}-{self.name}-nozone-{i}"] = None
        return out


TOPOLOGIES = {
    "uneven": Topology("uneven", (4, 2, 1), unlabelled=1),
    "fewer-zones": Topology("fewer-zones", (3, 3)),
    "even": Topology("even", (3, 3, 3)),
    # one large cluster created at once: 32 shards x 3 (96 pods) on 3 zones x 10 nodes
    "large": Topology("large", (10, 10, 10), shards_per_cluster=32, bursts=(96,)),
    # the same with the masters late (as when their filters failed closed on Redis timeouts and
    # they were retried after their replicas): one master, every replica, then the masters
    "large-late-masters": Topology("large-late-masters", (10, 10, 10), shards_per_cluster=32, bursts=(96,),
                                   late_masters=True),
}
DEFAULT_TOPOLOGIES = ("uneven", "fewer-zones", "even", "large")


# --------------------------------------------------------------------------------------------
# Workload

def burst(run_id: str, pods: int, native: bool, shards_per_cluster: int = SHARDS_PER_CLUSTER) -> list[dict[str, Any]]:
    """`pods` Redis pods in clusters of `shards_per_cluster` x COPIES, copy-major per cluster,
    clusters interleaved (their StatefulSets are created together)."""
    per_cluster = shards_per_cluster * COPIES
    lanes = []
    for c in range(math.ceil(pods / per_cluster)):
        size = min(per_cluster, pods - c * per_cluster)
        lanes.append(_cluster_pods(f"{run_id}-c{c}", size, run_id, native))
    out = []
    for i in range(max(len(lane) for lane in lanes)):
        out.extend(lane[i] for lane in lanes if i < len(lane))
    return out


def _cluster_pods(cluster: str, pods: int, run_id: str, native: bool) -> list[dict[str, Any]]:
    shards = math.ceil(pods / COPIES)
    out = []
    for copy in range(COPIES):
        for shard in range(shards):
            if len(out) == pods:
                return out
            role = "master" if copy == 0 else "replica"
            labels = {LABEL_CLUSTER: cluster, LABEL_SHARD: str(shard), LABEL_ROLE: role, RUN_LABEL: run_id}
            spec: dict[str, Any] = {
                "schedulerName": SCHEDULER_NAME,
                "containers": [{"name": "redis", "image": "redis:7", "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"}}}]}
            if native:
                spec.update(native_rules(cluster, str(shard), role))
            out.append({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": f"{cluster}-s{shard}-{copy}", "namespace": NAMESPACE, "labels": labels},
                        "spec": spec})
    return out


def masters_late(bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first master, then every replica, then the other masters (creation order)."""
    masters = [b for b in bodies if b["metadata"]["labels"][LABEL_ROLE] == "master"]
    replicas = [b for b in bodies if b["metadata"]["labels"][LABEL_ROLE] != "master"]
    return masters[:1] + replicas + masters[1:]


def native_rules(cluster: str, shard: str, role: str) -> dict[str, Any]:
    """The best the pod spec offers (kube-scheduler v1.20): no two copies of a shard on one
    node (required anti-affinity), copies at most one apart per zone (DoNotSchedule),
    masters one apart per zone and the cluster's pods spread over nodes (ScheduleAnyway)."""
    shard_sel = {"matchLabels": {LABEL_CLUSTER: cluster, LABEL_SHARD: shard}}
    constraints = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": shard_sel}]
    if role == "master":  # (one constraint per key and whenUnsatisfiable: the copies' takes DoNotSchedule)
        constraints.append({"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": {LABEL_CLUSTER: cluster, LABEL_ROLE: "master"}}})
    constraints.append({"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {LABEL_CLUSTER: cluster}}})
    return {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": shard_sel, "topologyKey": "kubernetes.io/hostname"}]}},
            "topologySpreadConstraints": constraints}


# --------------------------------------------------------------------------------------------
# Measures of one placement (pure: the e2e tests assert on them)

def measure(bodies: Sequence[dict[str, Any]], node_of: dict[str, str],
            zone_of: dict[str, str | None]) -> dict[str, Any]:
    """The placement-quality figures of one burst; see the module docstring."""
    shards: dict[tuple[str, str], list[str]] = defaultdict(list)
    masters: dict[str, list[str]] = defaultdict(list)
    clusters = set()
    for body in bodies:
        labels = body["metadata"]["labels"]
        cluster = labels[LABEL_CLUSTER]
        clusters.add(cluster)
        node = node_of.get(body["metadata"]["name"])
        if node is None:
            continue
        shards[(cluster, labels[LABEL_SHARD])].append(node)
        if labels[LABEL_ROLE] == "master":
            masters[cluster].append(node)
    zones = sorted({z for z in zone_of.values() if z is not None})
    nodes_in: dict[str, list[str]] = defaultdict(list)
    for node, zone in zone_of.items():
        nodes_in[zone if zone is not None else UNLABELLED].append(node)

    sharing = sum(len(nodes) - len(set(nodes)) for nodes in shards.values())
    unknown = sum(1 for nodes in shards.values() for n in nodes if zone_of.get(n) is None)
    excess = 0
    for nodes in shards.values():
        per_zone = Counter(zone_of.get(n) for n in nodes if zone_of.get(n) is not None)
        cap = math.ceil(len(nodes) / len(zones)) if zones else len(nodes)
        excess += sum(max(0, c - cap) for c in per_zone.values())

    zone_skew = node_skew = node_avoidable = 0
    half = avoidable_half = 0
    copy_nodes = {key: set(nodes) for key, nodes in shards.items()}
    for cluster in clusters:
        placed = masters.get(cluster, [])
        per_zone = Counter(zone_of.get(n) for n in placed)
        counts = [per_zone.get(z, 0) for z in zones]
        if counts:
            zone_skew = max(zone_skew, max(counts) - min(counts))
        per_node = Counter(placed)
        for members in nodes_in.values():
            here = [per_node.get(n, 0) for n in members]
            node_skew = max(node_skew, max(here) - min(here))
        # a master on a node with 2+ more of its cluster's masters than another node of the same
        # zone that holds no copy of its shard: the node rule allowed a better spot
        for body in bodies:
            labels = body["metadata"]["labels"]
            node = node_of.get(body["metadata"]["name"])
            if labels[LABEL_CLUSTER] != cluster or labels[LABEL_ROLE] != "master" or node is None:
                continue
            zone = zone_of.get(node)
            others = nodes_in[zone if zone is not None else UNLABELLED]
            taken = copy_nodes[(cluster, labels[LABEL_SHARD])]
            if any(per_node.get(n, 0) <= per_node[node] - 2 for n in others if n not in taken):
                node_avoidable += 1
        total = len(placed)
        if len(zones) >= 3 and total:
            worst = max(per_zone.get(z, 0) for z in [*zones, None])
            if 2 * worst >= total:
                half += 1
                if 2 * math.ceil(total / len(zones)) < total:
                    avoidable_half += 1
    return {"pods": len(bodies), "pending": len(bodies) - sum(1 for b in bodies if b["metadata"]["name"] in node_of),
            "node_sharing": sharing, "zone_excess": excess, "unknown_zone": unknown,
            "master_skew_zone": zone_skew, "master_skew_node": node_skew, "master_node_avoidable": node_avoidable,
            "half_masters": half, "quorum_unsafe": avoidable_half, "clusters": len(clusters)}


# --------------------------------------------------------------------------------------------
# Running bursts

class Session:
    """One mode on one topology: its scheduler (and extender) kept across the runs."""

    def __init__(self, cp: ControlPlane, mode: str, zone_of: dict[str, str | None], redis_url: str,
                 logdir: Path, tag: str, shards_per_cluster: int = SHARDS_PER_CLUSTER, code: Path | None = None,
                 late_masters: bool = False):
        self.cp, self.mode, self.zone_of, self.tag = cp, mode, zone_of, tag
        self.shards_per_cluster = shards_per_cluster
        self.late_masters = late_masters
        self.extender: LiveExtender | None = None
        if mode == "extender":
            from extender.state.store import RedisStore

            prefix = f"rxplace:{{{tag}}}:"
            # placement, not latency, is measured: a Redis call slowed by a busy machine must not
            # open the breaker (the 30 ms default) and leave pods failing closed
            self.extender = LiveExtender(cp, redis_url, prefix, 1, logdir / f"extender-{tag}.log",
                                         env_extra={"REDIS_EXTENDER_REDIS_TIMEOUT": REDIS_TIMEOUT} if REDIS_TIMEOUT else {},
                                         code=code)
            self.extender.wait_ready()
            self.store = store = RedisStore.from_url(redis_url, prefix, timeout=5)
            cp.wait_for(lambda: set(zone_of) <= set(store.node_names()), timeout=60, interval=0.1,
                        what="nodes synced into Redis")
            config = scheduler_config(self.extender.port)
        elif mode == "native":
            config = scheduler_config()
        else:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        try:
            cp.start_scheduler(config)
        except BaseException:
            self.close()
            raise
        time.sleep(0.5)  # informers synced and the queue idle before the burst
        self.runs = 0

    def run(self, pods: int, timeout: float = 120.0) -> dict[str, Any]:
        run_id = self.next_run()
        bodies = burst(run_id, pods, native=self.mode == "native", shards_per_cluster=self.shards_per_cluster)
        if self.late_masters:
            bodies = masters_late(bodies)
        names = [b["metadata"]["name"] for b in bodies]
        node_of, seconds = self.place(run_id, bodies, timeout)
        result = measure(bodies, node_of, self.zone_of)
        result["seconds"] = seconds
        result["placement"] = node_of
        self.delete(run_id, names)
        return result

    def next_run(self) -> str:
        self.runs += 1
        return f"{self.tag}-r{self.runs - 1}"

    def place(self, run_id: str, bodies: Sequence[dict[str, Any]], timeout: float = 120.0) -> tuple[dict[str, str], float]:
        """Create the pods at once; (pod name -> node of those bound, seconds from the first
        create to the last bind) once every pod is bound or nothing was bound for SETTLE_S."""
        names = [b["metadata"]["name"] for b in bodies]
        watch = BindWatch(self.cp, run_id, names)
        watch.selector = f"{RUN_LABEL}={run_id}"
        watch.start_and_wait()
        try:
            started = time.perf_counter()
            if self.late_masters:  # the first master placed before anything else is created
                self.cp.create_pod(bodies[0])
                first = bodies[0]["metadata"]["name"]
                self.cp.wait_for(lambda: first in watch.bound_at, timeout=30, interval=0.05,
                                 what=f"{first} to be bound")
                _parallel(self.cp.create_pod, bodies[1:])
            else:
                _parallel(self.cp.create_pod, bodies)
            created = time.perf_counter()
            deadline = started + timeout
            while not watch.done.is_set() and time.perf_counter() < deadline:
                last = max(watch.bound_at.values(), default=created)
                if time.perf_counter() - max(last, created) > SETTLE_S:
                    break  # settled: nothing bound for a while, the rest stays Pending
                watch.done.wait(0.2)
            if watch.error:
                raise RuntimeError(f"bind watch failed: {watch.error}")
            node_of = dict(watch.node_of)
            end = max(watch.bound_at.values(), default=started)
        finally:
            watch.close()
        return node_of, round(end - started, 2)

    def delete(self, run_id: str, names: Sequence[str]) -> None:
        cp = self.cp
        _parallel(lambda n: cp.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/{n}"), list(names))
        cp.wait_for(lambda: not cp.list_pods(NAMESPACE, f"{RUN_LABEL}={run_id}"), timeout=120, interval=0.2,
                    what=f"pods of {run_id} to be gone")

    def close(self) -> None:
        self.cp.stop_scheduler()
        if self.extender is not None:
            self.extender.stop()
            self.extender = None


def create_topology(cp: ControlPlane, topology: Topology, tag: str) -> dict[str, str | None]:
    zone_of = topology.nodes(tag)

    def create(name: str) -> None:
        labels = {REGION: "region-1"}
        if zone_of[name] is not None:
            labels[ZONE] = zone_of[name]  # type: ignore[assignment]
        cp.create_node(name, labels, cpu="32", memory="128Gi")

    _parallel(create, list(zone_of))
    return zone_of


def delete_topology(cp: ControlPlane, zone_of: dict[str, str | None]) -> None:
    _parallel(lambda n: cp.delete(f"/api/v1/nodes/{n}"), list(zone_of))


def run(runs: int = 5, topologies: Sequence[str] = DEFAULT_TOPOLOGIES, modes: Sequence[str] = MODES,
        bursts: Sequence[int] = BURSTS, out: str | Path | None = None, control_plane: ControlPlane | None = None,
        redis_url: str | None = None, keep: bool = False, quiet: bool = False,
        kube_version: str = CURRENT, code: Path | None = None) -> dict[str, Any]:
    """Every topology x mode x run; prints the table and returns (and writes) a dict."""
    t_start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="redis-extender-bench-place-"))
    results: list[dict[str, Any]] = []
    try:
        with bench_world(control_plane, redis_url, kube_version, workdir) as (cp, redis_url):
            base = f"p{os.getpid() % 10000}"
            for t_index, name in enumerate(topologies):
                topology = TOPOLOGIES[name]
                zone_of = create_topology(cp, topology, f"{base}t{t_index}")
                try:
                    for mode in modes:
                        session = Session(cp, mode, zone_of, redis_url, workdir, f"{base}t{t_index}{mode[0]}",
                                          topology.shards_per_cluster, code, topology.late_masters)
                        sizes = topology.bursts or bursts
                        try:
                            for i in range(runs):
                                r = session.run(sizes[i % len(sizes)])
                                r.update(topology=name, mode=mode, run=i + 1)
                                results.append(r)
                                if not quiet:
                                    print(format_row(r), file=sys.stderr)
                        finally:
                            session.close()
                finally:
                    delete_topology(cp, zone_of)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result = {"config": {"runs": runs, "bursts": list(bursts), "copies": COPIES,
                         "kube_scheduler": version_text(cp.scheduler_version),
                         "shards_per_cluster": SHARDS_PER_CLUSTER,
                         "topologies": {n: {"zones": list(TOPOLOGIES[n].zones),
                                            "unlabelled": TOPOLOGIES[n].unlabelled,
                                            "shards_per_cluster": TOPOLOGIES[n].shards_per_cluster,
                                            **({"bursts": list(TOPOLOGIES[n].bursts or ())} if TOPOLOGIES[n].bursts else {})}
                                        for n in topologies}},
              "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
              "runs": results, "total_s": round(time.perf_counter() - t_start, 1)}
    if not quiet:
        print(format_table(result))
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return result


COLUMNS = (("pending", "pend"), ("node_sharing", "node-shr"), ("zone_excess", "zone-exc"),
           ("unknown_zone", "unk-zone"), ("master_skew_zone", "mskew-z"), ("master_skew_node", "mskew-n"),
           ("master_node_avoidable", "mnode-avoid"),
           ("quorum_unsafe", "half-m"), ("seconds", "sched s"))


def format_row(r: dict[str, Any]) -> str:
    cells = " ".join(f"{r[key]:>{len(title)}}" for key, title in COLUMNS)
    return f"| {r['topology']:11} | {r['mode']:8} | {r['run']:>3} | {r['pods']:>4} | " + \
        " | ".join(cells.split()) + " |"


def format_table(result: dict[str, Any]) -> str:
    head = "| topology    | mode     | run | pods | " + " | ".join(t for _, t in COLUMNS) + " |"
    lines = [f"kube-scheduler {result['config'].get('kube_scheduler', '?')}, bursts of {', '.join(map(str, result['config']['bursts']))} pods "
             f"(clusters of {SHARDS_PER_CLUSTER} shards x {COPIES} copies), {result['machine']['cores']} cores",
             head, "|" + "|".join("---" for _ in range(4 + len(COLUMNS))) + "|"]
    lines += [format_row(r) for r in result["runs"]]
    lines.append("")
    lines.append("| topology    | mode     | runs | runs all-clean | worst mskew-z | worst half-m | mean sched s |")
    lines.append("|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in result["runs"]:
        groups[(r["topology"], r["mode"])].append(r)
    for (topology, mode), rows in groups.items():
        clean = sum(1 for r in rows if clean_run(r))
        lines.append(f"| {topology:11} | {mode:8} | {len(rows)} | {clean} | "
                     f"{max(r['master_skew_zone'] for r in rows)} | {max(r['quorum_unsafe'] for r in rows)} | "
                     f"{sum(r['seconds'] for r in rows) / len(rows):.2f} |")
    return "\n".join(lines)


def clean_run(r: dict[str, Any]) -> bool:
    """Every invariant of issue 9 held in the run."""
    return (r["pending"] == r["node_sharing"] == r["zone_excess"] == r["unknown_zone"] == r["quorum_unsafe"] == 0
            and r["master_skew_zone"] <= 1 and r["master_node_avoidable"] == 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redis-extender bench --placement", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="bursts per topology and mode")
    parser.add_argument("--topologies", default=",".join(DEFAULT_TOPOLOGIES), help=f"comma-separated, of {', '.join(TOPOLOGIES)}")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--out", help="also write the results as JSON")
    parser.add_argument("--kube-version", choices=KUBE_VERSIONS, default=CURRENT,
                        help="kube-apiserver/kube-scheduler to start (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep configs and logs")
    parser.add_argument("--redis-timeout", default=REDIS_TIMEOUT,
                        help="the extender's Redis timeout (REDIS_EXTENDER_REDIS_TIMEOUT, default %(default)s s: "
                             "placement, not latency, is measured); '' keeps the extender's own default, as a "
                             "new user would run it")
    parser.add_argument("--code", type=Path, help="run the extender from this directory's `extender` package "
                        "(a snapshot of the code, or a baseline), not the checkout's")
    ns = parser.parse_args(argv)
    globals()["REDIS_TIMEOUT"] = ns.redis_timeout
    run(runs=ns.runs, topologies=[t.strip() for t in ns.topologies.split(",") if t.strip()],
        modes=[m.strip() for m in ns.modes.split(",") if m.strip()], out=ns.out, keep=ns.keep,
        kube_version=ns.kube_version, code=ns.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
