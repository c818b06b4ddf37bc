"""Real kube-scheduler throughput with and without the extender, measured in one run.

One control plane (etcd + kube-apiserver, harness/controlplane.py), `nodes` fake Ready Nodes
over 3 zones and one private redis-server; then, per mode, a fresh kube-scheduler (and, for the
extender modes, a fresh `redis-extender serve --kubeconfig` in live mode: it syncs Nodes/Pods
into Redis under its own key prefix and binds) schedules the same burst of Redis pods
(`pods` = shards x 3 copies, created from a few threads as parallel StatefulSets would):

- ``none``:          the scheduler alone (plain profile ``redis-scheduler``);
- ``extender-ncc``:  filter + prioritize + bind through the extender, nodeCacheCapable true;
- ``extender-full``: the same with nodeCacheCapable false (full Node bodies in every call).

"none" is measured again after the extender modes (the machine is noisy); ratios use the mean.

Time is measured from the first pod create to the last pod seen bound by one API watch
(no polling). Per mode it also records: CPU seconds of every process of the run (apiserver,
etcd, scheduler, extender workers, sync child, redis, this client) from /proc; the extender's
own /metrics (per-verb latency histogram, placements, decisions, cache events); the
scheduler's /metrics (schedule attempts by result, algorithm/e2e latency); Redis commands by
name (INFO commandstats, Lua-internal calls included); and node/zone violations of the placement.
The printed "ms/pod" lines split an extender mode's time per pod (see `summarize`).

From the repository root (the harness lives in tests/support, outside the package), or as
`redis-extender bench --scheduler` from a checkout:

    python -c "from benchmarks.bench_scheduler import run; run()"
    python -m benchmarks.bench_scheduler --nodes 500 --pods 300 --out sched.json
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from extender.commands.bench import Sample, metric_samples
from extender.local.localredis import LocalRedis
from extender.local.processes import free_port, http_ok, wait_until
from harness import controlplane
from harness.controlplane import ApiError, ControlPlane, kube_bin_dir

MODES = ("none", "extender-ncc", "extender-full")
NAMESPACE = "redis-bench"
SCHEDULER_NAME = "redis-scheduler"
ZONE = "topology.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"
ZONES = 3
COPIES = 3
CLIENT_THREADS = 4  # pod/node creators: enough to outrun the scheduler, sane on 2 cores
LABEL_CLUSTER = "redis-extender.io/cluster"
PROFILE_GIL = False  # --profile-gil: py-spy samples only the GIL holder (CPU), not waits

def scheduler_config(extender_port: int | None = None, node_cache_capable: bool = True) -> str:
    """The scheduler's /metrics is read through ControlPlane.scheduler_get (either version)."""
    return controlplane.scheduler_config(SCHEDULER_NAME, extender_port, node_cache_capable)


# --------------------------------------------------------------------------------------------
# Workload

def shard_pods(cluster: str, pods: int, copies: int = COPIES) -> list[dict[str, Any]]:
    """`pods` Redis pods of one cluster, copy-major (copy 0 of every shard first), as parallel
    StatefulSets (one per copy) would create them."""
    shards = math.ceil(pods / copies)
    out = []
    for copy in range(copies):
        for shard in range(shards):
            if len(out) == pods:
                break
            out.append({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{cluster}-shard{shard}-{copy}", "namespace": NAMESPACE,
                             "labels": {LABEL_CLUSTER: cluster,
                                        "redis-extender.io/shard": str(shard),
                                        "redis-extender.io/role": "master" if copy == 0 else "replica"}},
                "spec": {"schedulerName": SCHEDULER_NAME,
                         "containers": [{"name": "redis", "image": "redis:7", "resources": {
                             "requests": {"cpu": "100m", "memory": "256Mi"}}}]},
            })
    return out


def violations(placement: dict[str, str], zone_of: dict[str, str]) -> dict[str, int]:
    """node: copies beyond the first of a shard on one node (the extender's hard rule);
    zone: shards using fewer zones than min(copies, zones)."""
    shards: dict[str, list[str]] = defaultdict(list)
    for pod, node in placement.items():
        shards[pod.rsplit("-", 1)[0]].append(node)
    zones = len(set(zone_of.values())) or 1
    node_v = sum(len(nodes) - len(set(nodes)) for nodes in shards.values())
    zone_v = sum(1 for nodes in shards.values()
                 if len({zone_of.get(n) for n in nodes}) < min(len(nodes), zones))
    return {"node": node_v, "zone": zone_v, "shards": len(shards)}


def _parallel(fn: Callable[[Any], Any], items: Sequence[Any], threads: int = CLIENT_THREADS) -> None:
    """fn over items from a few threads, round-robin so the order stays roughly the same."""
    lanes = [items[i::threads] for i in range(threads)]

    def lane(chunk: Sequence[Any]) -> None:
        for item in chunk:
            fn(item)

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(lane, chunk) for chunk in lanes if chunk]:
            future.result()


# --------------------------------------------------------------------------------------------
# Observing binds: one watch stream, no polling

class BindWatch(threading.Thread):
    """Watches the pods of one cluster label; notes when each is first seen with a nodeName."""

    def __init__(self, cp: ControlPlane, cluster: str, expected: Iterable[str]):
        super().__init__(name=f"bind-watch-{cluster}", daemon=True)
        self.cp = cp
        self.selector = f"{LABEL_CLUSTER}={cluster}"
        self.expected = set(expected)
        self.bound_at: dict[str, float] = {}
        self.node_of: dict[str, str] = {}
        self.done = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._conn: http.client.HTTPSConnection | None = None
        self.resumed = 0  # watch streams the apiserver closed and this watch resumed from a list

    def start_and_wait(self, timeout: float = 10.0) -> None:
        self.start()
        if not self.ready.wait(timeout):
            raise RuntimeError(f"watch not established: {self.error}")
        if self.error:
            raise RuntimeError(f"watch failed: {self.error}")

    def run(self) -> None:
        try:
            for attempt in range(20):  # a watch the apiserver closes (a starved reader) is resumed
                if self._watch(attempt):
                    break
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            if not self.done.is_set():
                self.error = exc
        finally:
            self.ready.set()
            self.done.set()

    def _watch(self, attempt: int) -> bool:
        """One watch stream, from a fresh list (whose bound pods count as bound now); True when
        every expected pod was seen bound or the watch was closed on purpose."""
        query = urllib.parse.urlencode({"labelSelector": self.selector})
        listed = self.cp.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?{query}")
        rv = listed["metadata"]["resourceVersion"]
        if attempt:
            self.resumed = attempt
            for obj in listed.get("items") or []:
                self._seen(obj, time.perf_counter())
            if self.done.is_set():
                return True
        path = (f"/api/v1/namespaces/{NAMESPACE}/pods?{query}&watch=1&resourceVersion={rv}"
                "&timeoutSeconds=3600")
        ctx = ssl.create_default_context(cafile=str(self.cp.ca_file))
        self._conn = conn = http.client.HTTPSConnection(
            "127.0.0.1", self.cp.apiserver_port, context=ctx, timeout=None)
        conn.request("GET", path, headers={"Authorization": f"Bearer {self.cp.token}"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"watch: HTTP {resp.status}: {resp.read()[:300]!r}")
        self.ready.set()
        while not self.done.is_set():
            line = resp.readline()
            if not line:
                return self.done.is_set()
            now = time.perf_counter()
            event = json.loads(line)
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                raise RuntimeError(f"watch error: {obj.get('message')}")
            self._seen(obj, now)
        return True

    def _seen(self, obj: dict[str, Any], now: float) -> None:
        name = (obj.get("metadata") or {}).get("name")
        node = (obj.get("spec") or {}).get("nodeName")
        if node and name in self.expected and name not in self.bound_at:
            self.bound_at[name] = now
            self.node_of[name] = node
            if len(self.bound_at) == len(self.expected):
                self.done.set()

    def close(self) -> None:
        self.done.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self.join(5)


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, float, list[str]]]:
    """pid -> (ppid, cpu seconds, argv) of every process we can read."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK,
                             [a.decode(errors="replace") for a in argv if a])
    return table


def cpu_by_component() -> dict[str, float]:
    """CPU seconds so far of this process and its descendants, grouped by what they are."""
    table = _proc_table()
    me = os.getpid()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _, _) in table.items():
        children[ppid].append(pid)
    out: dict[str, float] = defaultdict(float)
    out["(machine busy)"] = _machine_busy()
    times = os.times()
    out["bench-client"] = times.user + times.system
    stack = list(children[me])
    while stack:
        pid = stack.pop()
        stack.extend(children[pid])
        ppid, cpu, argv = table[pid]
        out[_component(argv, table.get(ppid, (0, 0.0, []))[2])] += cpu
    return dict(out)


def _machine_busy() -> float:
    """CPU seconds every process of the machine spent (user + nice + system). Interrupt time
    is left out: loopback traffic of this very run is partly accounted there."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system = (int(f) for f in fields[:3])
    return (user + nice + system) / _TICK


def _component(argv: list[str], parent_argv: list[str]) -> str:
    exe = Path(argv[0].split(" ")[0]).name if argv else "?"  # redis-server sets "name host:port"
    if exe in ("etcd", "kube-apiserver", "kube-scheduler", "redis-server"):
        return exe
    joined = " ".join(argv)
    if "extender.cli" in joined:
        if " sync " in f"{joined} ":
            return "extender-sync"
        if "extender.cli" in " ".join(parent_argv) and " serve " in " ".join(parent_argv) + " ":
            return "extender-workers"
        return "extender-master"
    return exe


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per component over the window, plus "(other processes)": what the rest of
    the machine used meanwhile (another test run on the same cores makes a figure noisy)."""
    keys = (set(before) | set(after)) - {"(machine busy)"}
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
    busy = after.get("(machine busy)", 0.0) - before.get("(machine busy)", 0.0)
    delta["(other processes)"] = max(0.0, busy - sum(delta.values()))
    return dict(sorted(((k, round(v, 2)) for k, v in delta.items() if v > 0.005), key=lambda kv: -kv[1]))


def redis_commandstats(url: str) -> dict[str, tuple[int, int]]:
    """command -> (calls, usec) so far, from INFO commandstats (all clients, all prefixes)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=5)
        try:
            info = client.info("commandstats")
        finally:
            client.close()
    except redis.RedisError:
        return {}
    return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in info.items()
            if isinstance(v, dict)}


def _redis_delta(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Redis commands run during the measurement, by command (the `info` calls excluded)."""
    out = {k: calls - before.get(k, (0, 0))[0] for k, (calls, _) in after.items() if k != "info"}
    return dict(sorted(((k, v) for k, v in out.items() if v > 0), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------------------------
# Prometheus text: parsed by extender.commands.bench.metric_samples

def histograms(samples: list[Sample], name: str,
               by: str | None = None, where: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
    """Per value of label `by` (or "all"): count, mean_ms and bucket-bound p50/p90/p99 ms."""
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, float] = defaultdict(float)
    for metric, labels, value in samples:
        if where and any(labels.get(k) != v for k, v in where.items()):
            continue
        key = labels.get(by, "") if by else "all"
        if metric == f"{name}_bucket":
            buckets[key][float(labels["le"])] += value
        elif metric == f"{name}_sum":
            sums[key] += value
        elif metric == f"{name}_count":
            counts[key] += value
    out = {}
    for key, count in counts.items():
        if not count:
            continue
        row = {"count": int(count), "mean_ms": round(sums[key] / count * 1000, 3)}
        ordered = sorted(buckets[key].items())
        for q in (50, 90, 99):
            bound = next((le for le, c in ordered if c >= count * q / 100), math.inf)
            row[f"p{q}_le_ms"] = bound * 1000 if bound != math.inf else math.inf
        out[key] = row
    return out


def counters(samples: list[Sample], name: str, by: str) -> dict[str, int]:
    out: dict[str, float] = defaultdict(float)
    for metric, labels, value in samples:
        if metric == name:
            out[labels.get(by, "")] += value
    return {k: int(v) for k, v in out.items()}


def _get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return resp.read().decode(errors="replace")


def scheduler_metrics(cp: ControlPlane) -> dict[str, Any]:
    try:
        samples = metric_samples(cp.scheduler_get("/metrics"))
    except OSError as exc:
        return {"error": str(exc)}
    out: dict[str, Any] = {
        "attempts": counters(samples, "scheduler_schedule_attempts_total", "result"),
        "algorithm": histograms(samples, "scheduler_scheduling_algorithm_duration_seconds").get("all"),
        "e2e": histograms(samples, "scheduler_e2e_scheduling_duration_seconds").get("all"),
        "pod_scheduling": histograms(samples, "scheduler_pod_scheduling_duration_seconds").get("all"),
        "extension_points": histograms(samples, "scheduler_framework_extension_point_duration_seconds",
                                       by="extension_point"),
    }
    return {k: v for k, v in out.items() if v}


def extender_metrics(port: int) -> dict[str, Any]:
    try:
        samples = metric_samples(_get(f"http://127.0.0.1:{port}/metrics"))
    except OSError as exc:
        return {"error": str(exc)}
    return {
        "latency": histograms(samples, "redis_extender_request_seconds", by="verb"),
        "requests": {f"{labels.get('verb')}/{labels.get('code')}": int(v)
                     for m, labels, v in samples if m == "redis_extender_requests_total"},
        "decisions": counters(samples, "redis_extender_decisions_total", "outcome"),
        "placements": counters(samples, "redis_extender_placements_total", "status"),
        "cache": counters(samples, "redis_extender_cache_events_total", "event"),
    }


# --------------------------------------------------------------------------------------------
# The extender in live mode

class LiveExtender:
    """`redis-extender serve --kubeconfig` (gunicorn workers + sync child) in its own session."""

    def __init__(self, cp: ControlPlane, redis_url: str, prefix: str, workers: int, log: Path,
                 env_extra: dict[str, str] | None = None, code: Path | None = None, cpus: str | None = None):
        """`code`: a directory holding another `extender` package to run (a baseline, measured
        side by side in one run); `cpus`: pin the whole extender (taskset -c)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "REDIS_EXTENDER_KEY_PREFIX": prefix, "REDIS_URL": redis_url, **(env_extra or {})}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # serve makes a fresh one
        if code is not None:
            env["PYTHONPATH"] = str(code)
        pin = ["taskset", "-c", cpus] if cpus else []
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [*pin, sys.executable, "-m", "extender.cli", "serve", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", str(workers), "--kubeconfig", str(cp.kubeconfig),
                 "--redis-url", redis_url],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=str(code) if code is not None else None)

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(lambda: http_ok(self.url + "/readyz", timeout=1), timeout=timeout,
                   what="the live extender's /readyz", proc=self.proc, log=self.log, interval=0.1)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()  # the master stops its workers and the sync child
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            # a master that ignores SIGTERM: kill its session (workers, sync child) with it;
            # the group is the one this object started (start_new_session), while its leader lives
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------------------------
# One mode

def _ensure_namespace(cp: ControlPlane, name: str = NAMESPACE) -> None:
    try:
        cp.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": name}})
    except ApiError as exc:
        if exc.status != 409:
            raise


def _create_nodes(cp: ControlPlane, nodes: int, tag: str) -> dict[str, str]:
    zone_of = {f"{tag}-z{i % ZONES}-n{i}": f"zone-{i % ZONES}" for i in range(nodes)}
    _parallel(lambda name: cp.create_node(name, {ZONE: zone_of[name], REGION: "region-1"},
                                          cpu="16", memory="64Gi"), list(zone_of))
    return zone_of


def _delete_pods(cp: ControlPlane, names: Sequence[str], cluster: str, timeout: float = 120) -> None:
    _parallel(lambda n: cp.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/{n}"), list(names))
    cp.wait_for(lambda: not cp.list_pods(NAMESPACE, f"{LABEL_CLUSTER}={cluster}"), timeout=timeout,
                interval=0.2, what=f"pods of {cluster} to be gone")


def _count_lines(path: Path | None, *needles: str) -> dict[str, int]:
    counts = dict.fromkeys(needles, 0)
    if path is None:
        return counts
    try:
        with open(path, errors="replace") as f:
            for line in f:
                for n in needles:
                    if n in line:
                        counts[n] += 1
    except OSError:
        pass
    return counts


def parse_mode(mode: str) -> tuple[str, Path | None, bool]:
    """"extender-ncc[+pin][@DIR]": the kind, another checkout's code to run the extender from
    (a baseline measured side by side in one run), and whether the extender is pinned to a
    core of its own (taskset: the last core; this run's other processes on the rest)."""
    kind, _, code = mode.partition("@")
    pinned = kind.endswith("+pin")
    return kind.removesuffix("+pin"), Path(code) if code else None, pinned


def _pin_run(cpus: str) -> None:
    """Pin this run's processes other than the extender (control plane, scheduler, Redis, this
    client) to `cpus`, every thread (taskset -a)."""
    table = _proc_table()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _, _) in table.items():
        children[ppid].append(pid)
    stack = [os.getpid()]
    while stack:
        pid = stack.pop()
        argv = " ".join(table.get(pid, (0, 0.0, []))[2])
        if "extender.cli" in argv or "taskset" in argv or "py-spy" in argv:
            continue  # the extender keeps its own core (its children with it)
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        stack.extend(children[pid])


def run_mode(cp: ControlPlane, mode: str, index: int, pods: int, zone_of: dict[str, str],
             redis_url: str, workers: int, logdir: Path, timeout: float,
             profile: Path | None = None) -> dict[str, Any]:
    cluster = f"b{index}-{parse_mode(mode)[0].replace('extender-', 'x')}"[:40]
    bodies = shard_pods(cluster, pods)
    names = [b["metadata"]["name"] for b in bodies]
    kind, code, _ = parse_mode(mode)
    shown = kind + ("+pin" if "+pin" in mode else "") + (f"@{code.name}" if code else "")
    result: dict[str, Any] = {"mode": shown, "pods": len(bodies)}
    extender: LiveExtender | None = None
    spy = None
    pinned = False
    try:
        kind, code, pinned = parse_mode(mode)
        if kind == "none":
            config = scheduler_config()
        elif kind in ("extender-ncc", "extender-full"):
            from extender.state.store import RedisStore

            prefix = f"rxbench:{{{os.getpid()}-{index}}}:"
            t0 = time.perf_counter()
            if pinned:  # the extender on the last core, everything else of the run on the others
                cores = os.cpu_count() or 1
                _pin_run(f"0-{cores - 2}" if cores > 2 else "0")
            extender = LiveExtender(cp, redis_url, prefix, workers,
                                    logdir / f"extender-{index}-{mode.replace('/', '_')}.log",
                                    code=code, cpus=str((os.cpu_count() or 1) - 1) if pinned else None)
            extender.wait_ready()
            store = RedisStore.from_url(redis_url, prefix, timeout=5)
            cp.wait_for(lambda: set(zone_of) <= set(store.node_names()), timeout=60, interval=0.1,
                        what="nodes synced into Redis")
            result["extender_ready_s"] = round(time.perf_counter() - t0, 2)
            config = scheduler_config(extender.port, node_cache_capable=kind == "extender-ncc")
        else:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        cp.start_scheduler(config)
        if pinned:
            _pin_run(f"0-{(os.cpu_count() or 2) - 2}" if (os.cpu_count() or 1) > 2 else "0")
        scheduler_log = cp.scheduler_log
        time.sleep(0.5)  # informers synced and the queue idle before the burst

        watch = BindWatch(cp, cluster, names)
        watch.start_and_wait()
        if profile is not None and extender is not None:
            from benchmarks.pyspy import Profile

            profile.mkdir(parents=True, exist_ok=True)
            spy = Profile(extender.proc.pid, profile / f"{index}-{shown.replace('/', '_')}.txt", gil=PROFILE_GIL)
            time.sleep(1.0)  # attached to every worker before the burst
        redis_before = redis_commandstats(redis_url)
        cpu_before = cpu_by_component()
        started = time.perf_counter()
        _parallel(cp.create_pod, bodies)
        created = time.perf_counter()
        finished = watch.done.wait(timeout)
        end = max(watch.bound_at.values(), default=time.perf_counter())
        cpu_after = cpu_by_component()
        redis_after = redis_commandstats(redis_url)
        watch.close()
        if spy is not None:
            from benchmarks.pyspy import format_summary, summarize

            spy.stop()
            result["profile"] = summarize(spy.out)
            print(format_summary(result["profile"], f"py-spy, {mode} ({spy.out})"), file=sys.stderr)
        # The scheduler counts a pod as scheduled after its bind returns, which can come a
        # moment after the watch saw the binding: give its counters a moment to catch up.
        sched = scheduler_metrics(cp)
        deadline = time.monotonic() + 3
        while sched.get("attempts", {}).get("scheduled", 0) < len(watch.bound_at) and time.monotonic() < deadline:
            time.sleep(0.1)
            sched = scheduler_metrics(cp)
        if watch.error:
            raise RuntimeError(f"bind watch failed: {watch.error}")

        bound = len(watch.bound_at)
        elapsed = end - started
        times = sorted(watch.bound_at.values())
        result.update({
            "bound": bound,
            "complete": finished and bound == len(bodies),
            "seconds": round(elapsed, 3),
            "pods_per_s": round(bound / elapsed, 1) if elapsed > 0 and bound else 0.0,
            "create_s": round(created - started, 3),
            "first_bind_s": round(times[0] - started, 3) if times else None,
            # the rate once the queue is full: 10th to 90th percentile bind, creation excluded
            "steady_pods_per_s": _steady_rate(times),
            "violations": violations(watch.node_of, zone_of),
            "watch_resumed": watch.resumed,  # binds seen late through a list (the stream was closed)
            "cpu_s": _cpu_delta(cpu_before, cpu_after),
            "redis_calls": _redis_delta(redis_before, redis_after),
            "scheduler": sched,
        })
        if extender is not None:
            result["extender"] = extender_metrics(extender.port)
            result["extender"]["log"] = _count_lines(extender.log, "WARNING", "ERROR", "Traceback")
        result["scheduler_log"] = _count_lines(scheduler_log, "redis-extender:", "rror")
        result["logs"] = {"scheduler": str(scheduler_log),
                          **({"extender": str(extender.log)} if extender else {})}
    finally:
        if spy is not None:
            spy.stop()
        if pinned:
            _pin_run(f"0-{(os.cpu_count() or 1) - 1}")
        cp.stop_scheduler()
        if extender is not None:
            extender.stop()
        _delete_pods(cp, names, cluster)
    return result


def _steady_rate(times: list[float]) -> float | None:
    if len(times) < 10:
        return None
    lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10]
    span = hi - lo
    return round(((len(times) * 9) // 10 - len(times) // 10) / span, 1) if span > 0 else None


# --------------------------------------------------------------------------------------------
# The run

@contextmanager
def bench_world(control_plane: ControlPlane | None, redis_url: str | None, kube_version: str,
                workdir: Path) -> Iterator[tuple[ControlPlane, str]]:
    """The control plane (without a scheduler) and the Redis a benchmark runs on: the ones
    given, else private ones started here and stopped on the way out; the bench namespace
    exists. The ControlPlane object stays readable after (its versions)."""
    cp = control_plane
    redis: LocalRedis | None = None
    try:
        if cp is None:
            bin_dir = kube_bin_dir(kube_version)
            if bin_dir is None:
                raise RuntimeError(f"kube binaries unavailable (scripts/kube-binaries.sh {kube_version} failed)")
            cp = ControlPlane(bin_dir, workdir / "cp", with_scheduler=False).start()
        if redis_url is None:
            redis = LocalRedis().start()
            redis_url = redis.url
        _ensure_namespace(cp)
        yield cp, redis_url
    finally:
        if control_plane is None and cp is not None:
            cp.stop()
        if redis is not None:
            redis.stop()


def run(nodes: int = 500, pods: int = 300, modes: Sequence[str] = MODES, workers: int = 1,
        out: str | Path | None = None, control_plane: ControlPlane | None = None,
        redis_url: str | None = None, keep: bool = False, quiet: bool = False, profile: str | Path | None = None,
        timeout: float | None = None, kube_version: str = controlplane.CURRENT) -> dict[str, Any]:
    """Measure pods/s of the real scheduler per mode; print a table; return (and write) a dict.

    `control_plane`: a started ControlPlane without a running scheduler (e.g. the e2e
    session's) instead of a private one; its bench nodes are deleted again at the end.
    `kube_version`: CURRENT or LEGACY, for a private control plane ($KUBE_BIN_DIR wins).
    `redis_url`: an existing Redis instead of a private redis-server (keys use a fresh prefix).
    `keep`: keep the work directory (configs and logs of every process).
    """
    unknown = [m for m in modes if parse_mode(m)[0] not in MODES]
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; expected some of {MODES}")
    order = list(modes)
    if "none" in order and len(order) > 1:
        order.append("none")  # again at the end: noisy machines drift
    timeout = timeout or max(120.0, pods * 1.0)
    t_start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="redis-extender-bench-sched-"))
    tag = f"bench{os.getpid() % 10000}"
    zone_of: dict[str, str] = {}
    node_bytes = 0
    runs: list[dict[str, Any]] = []
    try:
        with bench_world(control_plane, redis_url, kube_version, workdir) as (cp, redis_url):
            try:
                t0 = time.perf_counter()
                zone_of = _create_nodes(cp, nodes, tag)
                nodes_s = time.perf_counter() - t0
                node_bytes = len(json.dumps(cp.request("GET", f"/api/v1/nodes/{next(iter(zone_of))}"),
                                            separators=(",", ":"))) if zone_of else 0
                if not quiet:
                    print(f"control plane up, {nodes} nodes created in {nodes_s:.1f} s; modes: {', '.join(order)}",
                          file=sys.stderr)
                for index, mode in enumerate(order):
                    try:
                        r = run_mode(cp, mode, index, pods, zone_of, redis_url, workers, workdir, timeout,
                                     Path(profile) if profile else None)
                    except Exception as exc:  # one broken mode must not cost the others' figures
                        r = {"mode": mode, "pods": pods, "bound": 0, "complete": False, "seconds": 0.0,
                             "pods_per_s": 0.0, "error": f"{type(exc).__name__}: {exc}"[:2000]}
                    runs.append(r)
                    if not quiet and "error" in r:
                        print(f"  {mode:14} failed: {r['error'][:300]}", file=sys.stderr)
                    elif not quiet:
                        print(f"  {mode:14} {r['pods_per_s']:7.1f} pods/s ({r['bound']}/{r['pods']} bound in "
                              f"{r['seconds']:.2f} s)", file=sys.stderr)
            finally:
                if control_plane is not None and zone_of:  # a shared control plane: its nodes go again
                    _parallel(lambda n: cp.delete(f"/api/v1/nodes/{n}"), list(zone_of))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "config": {"nodes": nodes, "pods": pods, "shards": math.ceil(pods / COPIES), "copies": COPIES,
                   "zones": ZONES, "extender_workers": workers, "client_threads": CLIENT_THREADS,
                   "node_json_bytes": node_bytes,
                   "kube_scheduler": controlplane.version_text(cp.scheduler_version) if cp else None},
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0],
                    "host": socket.gethostname()},
        "runs": runs,
        "summary": summarize(runs),
        "total_s": round(time.perf_counter() - t_start, 1),
        **({"workdir": str(workdir)} if keep else {}),
    }
    if not quiet:
        print(format_table(result))
    if out:
        Path(out).write_text(json.dumps(result, indent=2, default=_jsonable) + "\n")
    return result


def _jsonable(value: Any) -> Any:
    return None if isinstance(value, float) and math.isinf(value) else str(value)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """pods/s per mode (mean over repeats), each mode's ratio to the mean of "none", and where
    an extender mode's extra time per pod goes (all means, in ms per pod):

    - added: wall time per pod minus that of "none";
    - algorithm: kube-scheduler's scheduling_algorithm_duration (its serial part: own plugins
      plus the extender's filter and prioritize round trips);
    - handler: the extender's own filter + prioritize latency (Flask view, /metrics);
    - outside_handler: algorithm - handler - the scheduler's Filter/Score plugins, i.e. HTTP,
      request encoding in the scheduler, body reading in gunicorn/werkzeug, GIL waits;
    - bind: the extender's bind latency (asynchronous in the scheduler, but it shares the
      workers' CPU and GIL with filter/prioritize);
    - cpu: CPU seconds per pod of the extender workers and of kube-scheduler.
    """
    by_mode: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        by_mode[r["mode"]].append(r["pods_per_s"])
    none = [rate for rate in by_mode.get("none", []) if rate > 0]
    baseline = sum(none) / len(none) if none else None
    summary: dict[str, Any] = {}
    for mode, rates in by_mode.items():
        mean = sum(rates) / len(rates)
        summary[mode] = {"pods_per_s": round(mean, 1), "runs": rates,
                         "ratio": round(mean / baseline, 3) if baseline else None}
    for r in runs:
        if r["mode"] != "none" and r["pods_per_s"] > 0:
            r["per_pod_ms"] = _breakdown(r, baseline)
    return summary


def _breakdown(r: dict[str, Any], baseline: float | None) -> dict[str, float]:
    sched = r.get("scheduler") or {}
    lat = (r.get("extender") or {}).get("latency") or {}
    points = sched.get("extension_points") or {}
    pods = max(1, r["bound"])

    def mean(hist: dict[str, Any] | None) -> float:
        return float((hist or {}).get("mean_ms") or 0.0)

    def per_pod(hist: dict[str, Any] | None) -> float:  # calls can differ from pods (retries)
        return mean(hist) * (hist or {}).get("count", 0) / pods

    wall = 1000.0 / r["pods_per_s"]
    handler = per_pod(lat.get("filter")) + per_pod(lat.get("prioritize"))
    algorithm = mean(sched.get("algorithm"))
    plugins = mean(points.get("Filter")) + mean(points.get("Score"))
    out = {"wall": wall, "algorithm": algorithm, "handler": handler,
           "outside_handler": algorithm - handler - plugins, "scheduler_plugins": plugins,
           "bind": per_pod(lat.get("bind")),
           "cpu_extender": 1000.0 * sum(v for k, v in r["cpu_s"].items() if k.startswith("extender-w")) / pods,
           "cpu_scheduler": 1000.0 * r["cpu_s"].get("kube-scheduler", 0.0) / pods,
           "cpu_all": 1000.0 * sum(v for k, v in r["cpu_s"].items() if not k.startswith("(")) / pods,
           "cpu_other_processes": 1000.0 * r["cpu_s"].get("(other processes)", 0.0) / pods,
           "redis_calls": sum((r.get("redis_calls") or {}).values()) / pods}
    if baseline:
        out["added"] = wall - 1000.0 / baseline
    return {k: round(v, 1) for k, v in out.items()}


def format_table(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [f"kube-scheduler {cfg.get('kube_scheduler') or '?'}, {cfg['nodes']} nodes / {cfg['zones']} zones, {cfg['pods']} pods "
             f"({cfg['shards']} shards x {cfg['copies']}), extender workers {cfg['extender_workers']}, "
             f"{result['machine']['cores']} cores, python {result['machine']['python']}",
             f"{'mode':18} {'pods/s':>7} {'ratio':>6} {'steady':>7} {'wall s':>7} {'create s':>8} "
             f"{'bound':>7} {'node/zone viol.':>15} {'attempts':>9} {'others%':>7}  extender mean ms f/p/b"]
    baseline = result["summary"].get("none", {}).get("pods_per_s")
    for r in result["runs"]:
        if "error" in r:
            lines.append(f"{r['mode']:18} failed: {r['error'][:200]}")
            continue
        ratio = f"{r['pods_per_s'] / baseline:6.2f}" if baseline else "     -"
        v = r["violations"]
        attempts = r.get("scheduler", {}).get("attempts", {})
        att = sum(attempts.values()) if attempts else "-"
        lat = (r.get("extender") or {}).get("latency") or {}
        verbs = "/".join(f"{lat[v]['mean_ms']:.1f}" if v in lat else "-" for v in ("filter", "prioritize", "bind"))
        steady = r.get("steady_pods_per_s")
        # CPU used by processes outside this run, as a share of the machine: noise indicator
        other = r.get("cpu_s", {}).get("(other processes)", 0.0) / max(1e-9, r["seconds"] * (result["machine"]["cores"] or 1))
        lines.append(f"{r['mode']:18} {r['pods_per_s']:7.1f} {ratio} {steady if steady else '-':>7} "
                     f"{r['seconds']:7.2f} {r['create_s']:8.2f} {r['bound']:>3}/{r['pods']:<3} "
                     f"{v['node']:>7}/{v['zone']:<7} {att:>9} {100 * other:6.0f}%  {verbs if lat else '-'}")
    lines.append("summary: " + "; ".join(
        f"{m} {s['pods_per_s']:.1f} pods/s" + (f" ({s['ratio'] * 100:.0f} %)" if s["ratio"] and m != "none" else "")
        for m, s in result["summary"].items()) + "  [ratio to the mean of the 'none' runs]")
    cores = result["machine"]["cores"] or 1
    noisy = [r["mode"] for r in result["runs"]
             if r.get("cpu_s", {}).get("(other processes)", 0.0) > 0.1 * r["seconds"] * cores]
    if noisy:
        lines.append(f"note: processes outside this run used over 10 % of the machine during: {', '.join(noisy)} "
                     "(others% column); those figures are low")
    if cfg.get("node_json_bytes"):
        lines.append(f"full Node bodies: ~{cfg['node_json_bytes'] * cfg['nodes'] / 1024:.0f} KB per filter/prioritize "
                     f"call ({cfg['node_json_bytes']} B a Node as the API serves it)")
    for r in result["runs"]:
        b = r.get("per_pod_ms")
        if not b:
            continue
        lines.append(
            f"{r['mode']} ms/pod: wall {b['wall']:.1f}" + (f" (+{b['added']:.1f} vs none)" if "added" in b else "") +
            "; scheduler algorithm "
            f"{b['algorithm']:.1f} = extender handlers {b['handler']:.1f} + outside handlers {b['outside_handler']:.1f}"
            f" + own plugins {b['scheduler_plugins']:.1f}; bind {b['bind']:.1f} (async); "
            f"CPU extender {b['cpu_extender']:.1f}, scheduler {b['cpu_scheduler']:.1f}, all {b['cpu_all']:.1f}"
            f" (of {cores * b['wall']:.0f} on {cores} cores); Redis commands {b['redis_calls']:.1f}")
        ext = r.get("extender") or {}
        refused = {k: v for k, v in (ext.get("placements") or {}).items() if k != "ok"}
        attempts = (r.get("scheduler") or {}).get("attempts") or {}
        retries = sum(attempts.values()) - attempts.get("scheduled", 0)
        if refused or retries:
            lines.append(f"  {r['mode']}: scheduler retries {retries} {attempts}; bind refusals {refused}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redis-extender bench-scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods", type=int, default=300)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--workers", type=int, default=1, help="extender gunicorn workers")
    parser.add_argument("--out", help="also write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep configs and logs")
    parser.add_argument("--profile", metavar="DIR",
                        help="profile the extender's workers with py-spy (pip install py-spy) into DIR; "
                             "its top entries are printed and kept in the JSON")
    parser.add_argument("--kube-version", choices=controlplane.KUBE_VERSIONS, default=None,
                        help="kube-apiserver/kube-scheduler version (default: $REDIS_EXTENDER_KUBE_VERSION, "
                             "else current); $KUBE_BIN_DIR wins")
    parser.add_argument("--profile-gil", action="store_true",
                        help="with --profile: sample only the thread holding the GIL (where the CPU goes)")
    ns = parser.parse_args(argv)
    global PROFILE_GIL
    PROFILE_GIL = ns.profile_gil
    result = run(nodes=ns.nodes, pods=ns.pods, modes=tuple(m.strip() for m in ns.modes.split(",") if m.strip()),
                 workers=ns.workers, out=ns.out, keep=ns.keep, profile=ns.profile,
                 kube_version=ns.kube_version or controlplane.requested_version())
    return 0 if all(r["complete"] for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
