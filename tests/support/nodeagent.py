"""A development-only node agent that plays kubelet for fake nodes, with real redis-servers.

For each pod bound to one of its nodes it gives the pod a loopback address of its own
(127.A.B.C, A fixed per agent), starts a redis-server in cluster mode there on the extender's
Redis port (REDIS_EXTENDER_REDIS_PORT's default, so the extender's refresher finds it at
podIP:port like in a real cluster) with `cluster-announce-hostname` = the pod's name and
`cluster-announce-ip` / `bind-source-addr` = that address, and reports the pod Running and
Ready with that podIP through the status subresource. A pod being deleted (a deletionTimestamp:
an eviction, a StatefulSet scale-down) has its server stopped and is then removed with grace
period 0, as kubelet does. A node marked lost has its servers killed (SIGKILL: a crash, no
goodbye to the cluster) and its pods reported not Ready; a node restored restarts them on the
same address and data directory (the pod and its emptyDir were never deleted).

Nothing here is product code: the extender only ever sees the API objects and the Redis nodes.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_py

from extender.local.processes import stop_process
from extender.core.settings import Settings
from harness.controlplane import ApiError, ControlPlane, _die_with_parent

REDIS_PORT = Settings().live.redis_port  # where the extender looks for a pod's Redis


@dataclass
class PodServer:
    """One pod's redis-server: its address, data directory and process."""

    namespace: str
    name: str
    uid: str
    node: str
    ip: str
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    reported_ready: bool | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def client(self, timeout: float = 2.0) -> redis_py.Redis:
        return redis_py.Redis(host=self.ip, port=REDIS_PORT, socket_timeout=timeout, socket_connect_timeout=timeout,
                              decode_responses=True, protocol=2)

    def answers(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            c = self.client(0.3)
            try:
                return bool(c.ping())
            finally:
                c.close()
        except (redis_py.RedisError, OSError):
            return False


class NodeAgent:
    """Kubelet for `nodes`, over the pods of `namespace`, with a poll loop in a thread."""

    _octets = itertools.count(1)

    def __init__(self, cp: ControlPlane, nodes: set[str] | list[str], namespace: str,
                 node_timeout_ms: int = 2000, poll: float = 0.2, first_octet: int | None = None):
        self.cp = cp
        self.nodes = set(nodes)
        self.namespace = namespace
        self.node_timeout_ms = node_timeout_ms
        self.poll = poll
        # 127.A.0.0/16 of our own: A from our pid, so two test sessions do not share addresses
        self.first_octet = first_octet or (100 + os.getpid() % 100)
        self.servers: dict[str, PodServer] = {}  # uid -> server
        self.lost: set[str] = set()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-extender-nodeagent-"))
        self._addresses = itertools.count(1)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nodeagent", daemon=True)
        self.errors: list[str] = []

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> NodeAgent:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._lock:
            for server in self.servers.values():
                stop_process(server.proc, grace=2)
            self.servers.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what tests do ----------------------------------------------------------------

    def lose_node(self, node: str) -> None:
        """The node goes dark: its servers crash, its pods are reported not Ready, the Node
        NotReady (what the node lifecycle controller would write after the grace period)."""
        with self._lock:
            self.lost.add(node)
            for server in self.servers.values():
                if server.node == node and server.proc is not None:
                    server.proc.kill()
                    server.proc.wait(10)
                    server.proc = None
        self._set_node_ready(node, False)

    def restore_node(self, node: str) -> None:
        """The node is back: Ready again, its pods' servers restart on their addresses."""
        self._set_node_ready(node, True)
        with self._lock:
            self.lost.discard(node)

    def server_of(self, pod: str) -> PodServer | None:
        """The live server of pod `name` (newest by start)."""
        with self._lock:
            found = [s for s in self.servers.values() if s.name == pod]
        return max(found, key=lambda s: s.started) if found else None

    def by_name(self) -> dict[str, PodServer]:
        with self._lock:
            return {s.name: s for s in sorted(self.servers.values(), key=lambda s: s.started)}

    # ---- the loop ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as exc:  # an API hiccup: try again next round, but keep a trace
                self.errors.append(f"{type(exc).__name__}: {exc}")
                del self.errors[:-20]
            self._stop.wait(self.poll)

    def _sync(self) -> None:
        pods = [p for p in self.cp.list_pods(self.namespace) if p["spec"].get("nodeName") in self.nodes]
        seen: set[str] = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(pod)
                continue
            with self._lock:
                server = self.servers.get(uid)
                if server is None:
                    server = self._new_server(pod)
                    self.servers[uid] = server
                lost = server.node in self.lost
                if not lost and (server.proc is None or server.proc.poll() is not None):
                    self._run(server)
            ready = not lost and server.answers()
            if ready != server.reported_ready or pod.get("status", {}).get("podIP") != server.ip:
                self._report(pod, server, ready)
        with self._lock:  # pods gone from the API (deleted at once): their servers go too
            for uid in [u for u in self.servers if u not in seen]:
                stop_process(self.servers.pop(uid).proc, grace=2)

    def _new_server(self, pod: dict[str, Any]) -> PodServer:
        n = next(self._addresses)
        ip = f"127.{self.first_octet}.{n // 250}.{n % 250 + 1}"
        meta = pod["metadata"]
        d = self.dir / f"{meta['name']}-{meta['uid'][:8]}"
        d.mkdir(parents=True)
        return PodServer(meta["namespace"], meta["name"], meta["uid"], pod["spec"]["nodeName"], ip, d)

    def _run(self, server: PodServer) -> None:
        log = open(server.dir / "redis.log", "ab")
        server.proc = subprocess.Popen([
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--bind", server.ip, "--port", str(REDIS_PORT), "--dir", str(server.dir), "--daemonize", "no",
            "--save", "", "--appendonly", "no", "--protected-mode", "no",
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-announce-hostname", server.name, "--cluster-announce-ip", server.ip,
            "--bind-source-addr", server.ip, "--cluster-preferred-endpoint-type", "ip",
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", "--maxmemory", "64mb",
            "--enable-debug-command", "local",  # tests make a replica resync (DEBUG CHANGE-REPL-ID)
        ], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)  # never outlive the test (it may be killed -9)
        log.close()
        server.started = time.monotonic()

    def _terminate(self, pod: dict[str, Any]) -> None:
        """What kubelet does for a pod being deleted: stop the container (SIGTERM: Redis
        shuts down), then remove the object with grace period 0."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            server = self.servers.pop(uid, None)
        if server is not None:
            stop_process(server.proc, grace=5)
        meta = pod["metadata"]
        try:
            self.cp.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                            {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                             "preconditions": {"uid": uid}})
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    def _report(self, pod: dict[str, Any], server: PodServer, ready: bool) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        flag = "True" if ready else "False"
        conditions = [{"type": t, "status": flag, "lastTransitionTime": now}
                      for t in ("Ready", "ContainersReady")]
        conditions += [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                       {"type": "Initialized", "status": "True", "lastTransitionTime": now}]
        containers = [{"name": c["name"], "image": c.get("image", "redis"), "imageID": "", "ready": ready,
                       "restartCount": 0, "started": ready,
                       "state": {"running": {"startedAt": now}} if ready else {"waiting": {"reason": "NodeLost"}}}
                      for c in pod["spec"]["containers"]]
        meta = pod["metadata"]
        try:
            self.cp.request("PATCH", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", {
                "status": {"phase": "Running", "podIP": server.ip, "podIPs": [{"ip": server.ip}],
                           "hostIP": "127.0.0.1", "startTime": pod.get("status", {}).get("startTime") or now,
                           "conditions": conditions, "containerStatuses": containers}},
                content_type="application/strategic-merge-patch+json")
        except ApiError as exc:
            if exc.status in (404, 409):  # gone or replaced meanwhile
                return
            raise
        server.reported_ready = ready

    def _set_node_ready(self, node: str, ready: bool) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.cp.request("PATCH", f"/api/v1/nodes/{node}/status", {"status": {"conditions": [
            {"type": "Ready", "status": "True" if ready else "False",
             "reason": "KubeletReady" if ready else "NodeStatusUnknown",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}},
            content_type="application/strategic-merge-patch+json")
