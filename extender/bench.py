"""`redis-extender bench`: latency of filter+prioritize over loopback HTTP, as kube-scheduler
calls it (one keep-alive connection, TCP_NODELAY, one pod at a time).

It generates a synthetic cluster, loads it into a private redis-server, starts the extender
under gunicorn and replays the verbs for pending Redis pods with every node as a candidate.
Figures are percentiles of one run (machines here are noisy: compare within a run).
"""
from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from . import settings as settings_mod
from .identity import Identifier
from .localredis import LocalRedis, free_port
from .simulate import Shape, generate
from .state.loader import load_list
from .state.redis_store import RedisStore


@dataclass
class Case:
    name: str
    names_mode: bool
    candidates: int


@dataclass
class Result:
    case: str
    calls: int
    filter_p50_ms: float
    filter_p99_ms: float
    prioritize_p50_ms: float
    prioritize_p99_ms: float
    pair_p50_ms: float
    pair_p90_ms: float
    pair_p99_ms: float
    pairs_per_s: float
    request_bytes: int
    reply_bytes: int


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Client:
    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, path: str, body: bytes) -> bytes:
        self.conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status}: {data[:300]!r}")
        return data


def run_case(port: int, case: Case, pods: list[dict[str, Any]], nodes: list[dict[str, Any]],
             calls: int, warmup: int = 20) -> Result:
    chosen = nodes[: case.candidates]
    if case.names_mode:
        bodies = [orjson.dumps({"Pod": p, "Nodes": None, "NodeNames": [n["metadata"]["name"] for n in chosen]})
                  for p in pods]
    else:
        bodies = [orjson.dumps({"Pod": p, "Nodes": {"metadata": {}, "items": chosen}, "NodeNames": None})
                  for p in pods]
    client = Client(port)
    f_lat, p_lat, pair = [], [], []
    reply_bytes = 0
    started = time.perf_counter()
    for i in range(warmup + calls):
        body = bodies[i % len(bodies)]
        t0 = time.perf_counter()
        reply = client.post("/filter", body)
        t1 = time.perf_counter()
        client.post("/prioritize", body)
        t2 = time.perf_counter()
        if i == warmup:
            started = t0
        if i >= warmup:
            f_lat.append(t1 - t0)
            p_lat.append(t2 - t1)
            pair.append(t2 - t0)
            reply_bytes = len(reply)
    elapsed = time.perf_counter() - started
    ms = 1000.0
    return Result(case.name, calls, percentile(f_lat, 50) * ms, percentile(f_lat, 99) * ms,
                  percentile(p_lat, 50) * ms, percentile(p_lat, 99) * ms,
                  percentile(pair, 50) * ms, percentile(pair, 90) * ms, percentile(pair, 99) * ms,
                  calls / elapsed, len(bodies[0]), reply_bytes)


def main(nodes: int = 1000, calls: int = 300, workers: int = 1, out: str | None = None,
         full_nodes: bool = True) -> list[Result]:
    shape = Shape(nodes=nodes, zones=3, clusters=max(1, nodes // 100), shards=16, replicas=2, placed=0.7)
    document = generate(shape)
    node_items = [i for i in document["items"] if i["kind"] == "Node"]
    pending = [dict((k, v) for k, v in i.items() if k not in ("apiVersion", "kind"))
               for i in document["items"]
               if i["kind"] == "Pod" and "nodeName" not in i["spec"] and i["metadata"]["namespace"] == "redis"]
    with LocalRedis() as server:
        settings = settings_mod.load({"store.redis_url": server.url})
        store = RedisStore.from_url(server.url, settings.store.key_prefix, timeout=30)
        load_list(store, document, Identifier(settings.identity), source="bench")
        port = free_port()
        log = tempfile.NamedTemporaryFile(prefix="redis-extender-bench-", suffix=".log", delete=False)
        proc = subprocess.Popen(
            [sys.executable, "-m", "extender.cli", "serve", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--redis-url", server.url],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        try:
            _wait(port, proc, Path(log.name))
            cases = [Case(f"nodeCacheCapable, {nodes} nodes", True, nodes)]
            if full_nodes:
                cases.append(Case(f"full Node bodies, {min(nodes, 500)} nodes", False, min(nodes, 500)))
            results = [run_case(port, case, pending, node_items, calls) for case in cases]
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{len(pending)} pending Redis pods, {nodes} nodes, {workers} worker(s), {calls} calls a case, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    header = f"{'case':38} {'filter p50/p99':>15} {'prio p50/p99':>14} {'pair p50/p90/p99 ms':>21} {'pairs/s':>8} {'req KB':>7}"
    print(header)
    for r in results:
        print(f"{r.case:38} {r.filter_p50_ms:6.2f}/{r.filter_p99_ms:<7.2f} {r.prioritize_p50_ms:6.2f}/{r.prioritize_p99_ms:<6.2f}"
              f" {r.pair_p50_ms:6.2f}/{r.pair_p90_ms:6.2f}/{r.pair_p99_ms:<6.2f} {r.pairs_per_s:8.0f} {r.request_bytes / 1024:7.0f}")
    if out:
        Path(out).write_bytes(orjson.dumps([asdict(r) for r in results], option=orjson.OPT_INDENT_2))
    return results


def _wait(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"extender exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("extender did not start")
