"""`redis-extender bench`: the extender's latency and throughput at scale, over loopback HTTP.

It generates a synthetic cluster (default 5,000 nodes in 3 zones, racks below zones, 1,000
shards x 3 copies in 10 Redis clusters, filler pods on every node), loads it into a private
redis-server, starts `redis-extender serve` under gunicorn and replays filter + prioritize for
pending Redis pods, as kube-scheduler calls them: one keep-alive connection with TCP_NODELAY
per client, the same candidate list for consecutive pods. Cases: nodeCacheCapable true and
false, 500 and 5,000 candidates, concurrency 1 (one scheduler) and higher (several).

Per case it prints p50/p90/p99 of filter, prioritize and the pair, pairs per second, request
and reply bytes, and, from the extender's own /metrics, the cache hit ratio and the mean time
per phase (JSON parse, state reads, policy, Redis writes, JSON encode), so the next
optimisation is obvious; RSS per worker at the end. For full Node bodies it also times a bare
orjson.loads of the same body: the floor any Python extender pays. Figures are percentiles
of one run: compare within a run, machines here are noisy.

`--scheduler` adds the real kube-scheduler benchmark, benchmarks/bench_scheduler.py: a
development tool that needs a checkout of the repository (its control-plane harness and
scripts/kube-binaries.sh), so it is run from there, never imported from the package.
`--placement` runs only benchmarks/bench_placement.py the same way: bursts of 26 to 96 Redis
pods through the real kube-scheduler on several topologies, the extender against the best
native rules, with the placement-quality figures of every run.
"""
from __future__ import annotations

import gc
import http.client
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from extender.core import settings as settings_mod
from extender.core.identity import Identifier
from extender.local.localredis import LocalRedis
from extender.local.processes import free_port, http_ok, stop_process, wait_until
from extender.local.simulate import Shape, generate
from extender.state.loader import load_list
from extender.state.store import RedisStore

LEVELS = "kubernetes.io/hostname,topology.kubernetes.io/rack,topology.kubernetes.io/zone,topology.kubernetes.io/region"
PHASES = ("parse", "state", "policy", "record", "encode")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # extender/
SCHEDULER_BENCH = Path("benchmarks") / "bench_scheduler.py"  # of a checkout, beside extender/
HARNESS = Path("harness") / "controlplane.py"


def checkout(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The repository checkout this package is imported from (an editable install or
    PYTHONPATH), found as the parent of `package_dir` when it holds the real-scheduler
    benchmark and its harness; None for an installed wheel, which has neither."""
    root = package_dir.parent
    return root if (root / SCHEDULER_BENCH).is_file() and (root / HARNESS).is_file() else None


def scheduler_bench_needs(package_dir: Path = PACKAGE_DIR) -> str:
    """What `bench --scheduler` needs, for a package installed without a checkout."""
    return (f"redis-extender bench --scheduler: no repository checkout beside this package "
            f"({package_dir}). The real-scheduler benchmark ({SCHEDULER_BENCH}) is a development "
            "tool: run it from a checkout of the redis-extender repository (pip install -e . "
            "there, or python -m benchmarks.bench_scheduler from its root). It also needs the "
            "control-plane binaries etcd, kube-apiserver and kube-scheduler: built once by the "
            "checkout's scripts/kube-binaries.sh, or a directory holding them in KUBE_BIN_DIR.")


def run_checkout_bench(root: Path, module: str, args: Sequence[str] = ()) -> int:
    """A benchmark module of the checkout `root` (benchmarks/), as `python -m` from there."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=root).returncode


def run_scheduler_bench(root: Path, args: Sequence[str] = ()) -> int:
    """benchmarks/bench_scheduler.py of the checkout `root`, as `python -m` from there: it
    imports the control-plane harness of tests/support, which is no part of the package."""
    return subprocess.run([sys.executable, "-m", "benchmarks.bench_scheduler", *args], cwd=root).returncode


@dataclass(frozen=True)
class Case:
    names_mode: bool
    candidates: int
    concurrency: int = 1

    @property
    def name(self) -> str:
        mode = "nodeCacheCapable" if self.names_mode else "full Nodes"
        return f"{mode}, {self.candidates} nodes, c={self.concurrency}"


@dataclass
class Result:
    case: str
    pairs: int
    filter_ms: dict[str, float]
    prioritize_ms: dict[str, float]
    pair_ms: dict[str, float]
    pairs_per_s: float
    request_bytes: int
    filter_reply_bytes: int
    prioritize_reply_bytes: int
    cache_hit_ratio: float | None
    phase_ms_per_call: dict[str, float] = field(default_factory=dict)
    parse_floor_ms: float | None = None  # bare orjson.loads of the request body


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] * 1000, 3)

    return {"p50": at(50), "p90": at(90), "p99": at(99)}


class Client:
    """One keep-alive connection with TCP_NODELAY, as Go's HTTP client keeps."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, path: str, body: bytes) -> bytes:
        self.conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status}: {data[:300]!r}")
        return data


Sample = tuple[str, dict[str, str], float]


def metric_samples(text: str) -> list[Sample]:
    """(name, labels, value) of every sample of a Prometheus text exposition, as the
    extender's and kube-scheduler's /metrics serve it (prometheus_client's own parser)."""
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def scrape(port: int) -> dict[tuple[str, str], float]:
    """The extender's counters that the bench compares before and after a case:
    (phase_seconds_sum | phase_seconds_count, phase) and (cache_events_total, event)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    found: dict[tuple[str, str], float] = {}
    for name, labels, value in metric_samples(text):
        short = name.removeprefix("redis_extender_")
        if short in ("phase_seconds_sum", "phase_seconds_count"):
            found[short, labels["phase"]] = value
        elif short == "cache_events_total":
            found[short, labels["event"]] = value
    return found


def run_case(port: int, case: Case, pods: list[dict[str, Any]], nodes: list[dict[str, Any]], calls: int,
             warmup: int = 10) -> Result:
    chosen = nodes[: case.candidates]
    names = [n["metadata"]["name"] for n in chosen]
    if case.names_mode:
        bodies = [orjson.dumps({"Pod": p, "Nodes": None, "NodeNames": names}) for p in pods[:64]]
    else:
        bodies = [orjson.dumps({"Pod": p, "Nodes": {"metadata": {}, "items": chosen}, "NodeNames": None})
                  for p in pods[:8]]
    lat: dict[str, list[float]] = {"filter": [], "prioritize": [], "pair": []}
    sizes = {"filter": 0, "prioritize": 0}
    lock = threading.Lock()
    per_client = max(1, calls // case.concurrency)

    def worker(offset: int) -> None:
        client = Client(port)
        mine: dict[str, list[float]] = {"filter": [], "prioritize": [], "pair": []}
        for i in range(warmup + per_client):
            body = bodies[(offset + i) % len(bodies)]
            t0 = time.perf_counter()
            f = client.post("/filter", body)
            t1 = time.perf_counter()
            p = client.post("/prioritize", body)
            t2 = time.perf_counter()
            if i >= warmup:
                mine["filter"].append(t1 - t0)
                mine["prioritize"].append(t2 - t1)
                mine["pair"].append(t2 - t0)
        with lock:
            for k, v in mine.items():
                lat[k].extend(v)
            sizes["filter"], sizes["prioritize"] = len(f), len(p)

    before = scrape(port)
    threads = [threading.Thread(target=worker, args=(k * 7,)) for k in range(case.concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    after = scrape(port)
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    hits, misses = delta.get(("cache_events_total", "hits"), 0), delta.get(("cache_events_total", "misses"), 0)
    total_calls = 2 * case.concurrency * (warmup + per_client)
    phases = {ph: round(delta.get(("phase_seconds_sum", ph), 0.0) / total_calls * 1000, 3) for ph in PHASES}
    floor = None
    if not case.names_mode:  # the median of bare parses, without this process's big heap's GC
        gc.disable()
        try:
            times = []
            for body in bodies * 3:
                t0 = time.perf_counter()
                orjson.loads(body)
                times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
        floor = round(sorted(times)[len(times) // 2] * 1000, 3)
    pairs = len(lat["pair"])
    return Result(case.name, pairs, percentiles(lat["filter"]), percentiles(lat["prioritize"]),
                  percentiles(lat["pair"]), round(pairs / elapsed, 1), len(bodies[0]), sizes["filter"],
                  sizes["prioritize"], round(hits / (hits + misses), 3) if hits + misses else None, phases, floor)


def worker_rss_mb(master_pid: int) -> list[float]:
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    except OSError:
        return []
    sizes = []
    for pid in children:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        m = re.search(r"VmRSS:\s+(\d+) kB", status)
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        if m and b"sync" not in cmd:
            sizes.append(round(int(m.group(1)) / 1024, 1))
    return sizes


def synthetic(nodes: int, shards: int) -> dict[str, Any]:
    clusters = 10 if shards >= 10 else 1
    return generate(Shape(nodes=nodes, zones=3, racks_per_zone=max(1, nodes // 3 // 40), clusters=clusters,
                          shards=max(1, shards // clusters), replicas=2, placed=0.8, filler_per_node=4))


def main(nodes: int = 5000, shards: int = 1000, calls: int = 300, workers: int = 2, concurrency: int = 4,
         out: str | None = None, quick: bool = False) -> list[Result]:
    document = synthetic(nodes, shards)
    node_items = [i for i in document["items"] if i["kind"] == "Node"]
    pending = [{k: v for k, v in i.items() if k not in ("apiVersion", "kind")} for i in document["items"]
               if i["kind"] == "Pod" and "nodeName" not in i["spec"] and i["metadata"]["namespace"] == "redis"]
    small = min(500, nodes)
    cases = [Case(True, nodes), Case(True, small), Case(False, small), Case(True, nodes, concurrency)]
    if not quick and nodes > small:
        cases.insert(3, Case(False, nodes))
    results: list[Result] = []
    env = settings_mod.child_environment(REDIS_EXTENDER_LEVELS=LEVELS)
    with LocalRedis() as server:
        settings = settings_mod.load({"store.redis_url": server.url, "domains.levels": LEVELS})
        store = RedisStore.from_url(server.url, settings.store.key_prefix, timeout=60)
        t0 = time.perf_counter()
        n_nodes, n_pods = load_list(store, document, Identifier(settings.identity), source="bench")
        load_s = time.perf_counter() - t0
        port = free_port()
        log = tempfile.NamedTemporaryFile(prefix="redis-extender-bench-", suffix=".log", delete=False)
        proc = subprocess.Popen(
            [sys.executable, "-m", "extender.cli", "serve", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--redis-url", server.url],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz", timeout=0.5), timeout=60,
                       what="the extender's /healthz", proc=proc, log=Path(log.name), interval=0.1)
            for case in cases:
                case_calls = calls if case.names_mode or case.candidates <= 500 else max(20, calls // 10)
                results.append(run_case(port, case, pending, node_items, case_calls))
            rss = worker_rss_mb(proc.pid)
        finally:
            stop_process(proc, grace=15)
    _print(results, rss, n_nodes, n_pods, len(pending), load_s, workers)
    if out:
        Path(out).write_bytes(orjson.dumps({"nodes": nodes, "shards": shards, "workers": workers,
                                            "worker_rss_mb": rss, "load_seconds": round(load_s, 2),
                                            "python": sys.version.split()[0], "cores": os.cpu_count(),
                                            "results": [asdict(r) for r in results]}, option=orjson.OPT_INDENT_2))
    return results


def _print(results: list[Result], rss: list[float], n_nodes: int, n_pods: int, pending: int, load_s: float,
           workers: int) -> None:
    print(f"cluster: {n_nodes} nodes, {n_pods} pods ({pending} Redis pods pending), loaded into Redis in "
          f"{load_s:.1f}s; extender: {workers} gunicorn worker(s); python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores")
    print(f"{'case':34} {'filter p50/p99':>15} {'prio p50/p99':>14} {'pair p50/p90/p99 ms':>22} {'pairs/s':>8}"
          f" {'req KB':>7} {'reply KB f/p':>12} {'hit':>5}")
    for r in results:
        f, p, pr = r.filter_ms, r.prioritize_ms, r.pair_ms
        print(f"{r.case:34} {f['p50']:6.2f}/{f['p99']:<8.2f} {p['p50']:6.2f}/{p['p99']:<7.2f}"
              f" {pr['p50']:6.2f}/{pr['p90']:6.2f}/{pr['p99']:<8.2f} {r.pairs_per_s:8.0f} {r.request_bytes / 1024:7.0f}"
              f" {r.filter_reply_bytes / 1024:5.0f}/{r.prioritize_reply_bytes / 1024:<6.0f}"
              f" {'-' if r.cache_hit_ratio is None else f'{r.cache_hit_ratio:.2f}':>5}")
    print("\nmean ms per call inside the extender (from its /metrics):")
    print(f"{'case':34} " + " ".join(f"{ph:>7}" for ph in PHASES) + "   parse floor (bare orjson.loads)")
    for r in results:
        floor = f"{r.parse_floor_ms:.2f} ms; filter p50 = {r.filter_ms['p50'] / r.parse_floor_ms:.1f}x" \
            if r.parse_floor_ms else ""
        print(f"{r.case:34} " + " ".join(f"{r.phase_ms_per_call.get(ph, 0):7.3f}" for ph in PHASES) + f"   {floor}")
    print(f"\nRSS per worker: {', '.join(f'{m:.0f} MB' for m in rss)}")
