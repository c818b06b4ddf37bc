"""How large kube-scheduler's bodies get, and what one costs a worker's memory.

    python -m benchmarks.bench_body [--nodes 15000]

Builds ExtenderArgs with full Node objects (nodeCacheCapable=false) from the Node that a real
kube-scheduler v1.20.2 sent (tests/data), scaled to --nodes distinct nodes, and the same
with a node as a kubelet reports it in a real cluster (50 images in status.images, nodeInfo):
prints their sizes and the NodeNames body's (nodeCacheCapable=true). Then posts the largest
body that fits the cap to one gunicorn worker, sends it chunked too, and prints the worker's
RSS before, right after, and after a few small requests: memory must return near baseline.
"""
from __future__ import annotations

import argparse
import copy
import http.client
import json
import re
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.serving import served

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def sample() -> dict[str, Any]:
    return json.loads((DATA / "kube-scheduler-1.20-ncc-false-filter.json").read_text())


def kubelet_node(node: dict[str, Any]) -> dict[str, Any]:
    real = copy.deepcopy(node)
    real["status"]["images"] = [
        {"names": [f"registry.example.com/team/image-{j}@sha256:" + "a" * 64, f"registry.example.com/team/image-{j}:v1.2.{j}"],
         "sizeBytes": 123456789} for j in range(50)]  # the kubelet reports at most 50 (nodeStatusMaxImages)
    real["status"]["nodeInfo"] = {"machineID": "x" * 32, "systemUUID": "x" * 36, "bootID": "x" * 36,
                                  "kernelVersion": "5.15.0-1051", "osImage": "Ubuntu 22.04.3 LTS",
                                  "containerRuntimeVersion": "containerd://1.7.7", "kubeletVersion": "v1.28.3",
                                  "kubeProxyVersion": "v1.28.3", "operatingSystem": "linux", "architecture": "amd64"}
    return real


def full_body(pod: dict[str, Any], node: dict[str, Any], n: int) -> bytes:
    items = []
    for i in range(n):
        item = copy.deepcopy(node)
        item["metadata"]["name"] = item["metadata"]["labels"]["kubernetes.io/hostname"] = f"node-{i:05d}"
        item["metadata"]["resourceVersion"] = str(1000 + i)
        items.append(item)
    return orjson.dumps({"Pod": pod, "Nodes": {"metadata": {}, "items": items}, "NodeNames": None})


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return round(int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024, 1)  # type: ignore[union-attr]


def worker_pid(master: int) -> int:
    return int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])


def now(master: int) -> str:
    """The current worker's RSS, after the master has replaced a retired one."""
    for _ in range(50):
        try:
            return f"{rss_mb(worker_pid(master))} (pid {worker_pid(master)})"
        except (OSError, IndexError, AttributeError):
            time.sleep(0.1)
    return "?"


def post(port: int, body: bytes, chunked: bool = False) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    try:
        _send(conn, body, chunked)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered (413) before the whole body was sent: read that answer
    try:
        resp = conn.getresponse()
        resp.read()
    except (ConnectionResetError, http.client.RemoteDisconnected):
        return 0, time.perf_counter() - started
    conn.close()
    return resp.status, time.perf_counter() - started


def _send(conn: http.client.HTTPConnection, body: bytes, chunked: bool) -> None:
    if chunked:
        conn.request("POST", "/filter", body=iter([body[i:i + (1 << 20)] for i in range(0, len(body), 1 << 20)]),
                     headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                     encode_chunked=True)
    else:
        conn.request("POST", "/filter", body=body, headers={"Content-Type": "application/json"})


def main(nodes: int = 15000, cap_mib: int = 64, max_worker_rss: int = 1024) -> None:
    doc = sample()
    pod, node = doc["Pod"], doc["Nodes"]["items"][0]
    captured = full_body(pod, node, nodes)
    real = kubelet_node(node)
    names = orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": [f"node-{i:05d}" for i in range(nodes)]})
    real_size = len(orjson.dumps(real))
    print(f"{nodes} nodes: full Node body {len(captured) / 2**20:.1f} MiB (captured v1.20 node, "
          f"{len(orjson.dumps(node))} B), {nodes * real_size / 2**20:.1f} MiB (kubelet node with 50 images, "
          f"{real_size} B); NodeNames body {len(names) / 2**10:.0f} KiB")
    fits = min(nodes, int(cap_mib * 2**20 * 0.95 / real_size))
    big = full_body(pod, real, fits)
    env = {"REDIS_EXTENDER_MAX_WORKER_RSS": str(max_worker_rss), "REDIS_EXTENDER_RETIRE_AFTER": "0"}
    with served(["--workers", "1"], env) as ext:
        post(ext.port, names)
        pid = worker_pid(ext.proc.pid)
        base = rss_mb(pid)
        status, seconds = post(ext.port, big)
        after = now(ext.proc.pid)
        status_c, seconds_c = post(ext.port, big, chunked=True)
        after_c = now(ext.proc.pid)
        over = big + b" " * (cap_mib * 2**20 - len(big) + 1)
        status_o, _ = post(ext.port, over, chunked=True)
        for _ in range(5):
            post(ext.port, names)
        time.sleep(3)  # a retired worker is replaced by the master
        new_pid = worker_pid(ext.proc.pid)
        settled = now(ext.proc.pid)
    print(f"{fits} kubelet nodes, {len(big) / 2**20:.1f} MiB: {status} in {seconds:.1f}s; chunked {status_c} in "
          f"{seconds_c:.1f}s; chunked over the {cap_mib} MiB cap: {status_o}")
    print(f"worker RSS MiB: baseline {base} (pid {pid}), after the body {after}, after it chunked {after_c}, "
          f"after 5 small requests {settled} ({'a fresh worker' if new_pid != pid else 'the same worker'}; "
          f"max_worker_rss {max_worker_rss} MiB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=15000)
    parser.add_argument("--cap-mib", type=int, default=64)
    parser.add_argument("--max-worker-rss", type=int, default=1024, help="MiB (service.max_worker_rss)")
    main(**vars(parser.parse_args()))
