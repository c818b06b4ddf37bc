"""A Sentinel-managed Redis on loopback, shaped like the chart's `cache.mode=sentinel`: three
redis-server processes (one master, two replicas) and three Sentinels (`redis-server
--sentinel`, quorum 2) watching them, for the e2e tests. `kill_master` ends the current
master at once (SIGKILL: a crash, no shutdown handshake); the Sentinels then promote a replica
on their own, as they would for a cache pod that dies.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis as redis_py

from extender.local.localredis import LocalRedis
from extender.local.processes import free_port, stop_process, wait_until

MASTER_NAME = "cache"


class SentinelCache:
    def __init__(self, workdir: Path, down_after_ms: int = 1000, failover_timeout_ms: int = 5000):
        self.workdir, self.down_after_ms, self.failover_timeout_ms = workdir, down_after_ms, failover_timeout_ms
        self.servers: list[LocalRedis] = []
        self.sentinel_ports: list[int] = []
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.killed: list[int] = []

    @property
    def url(self) -> str:
        """What the extender's REDIS_URL is set to (as the chart's redis+sentinel:// URL)."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def start(self) -> "SentinelCache":
        try:
            master = LocalRedis(extra=("--repl-diskless-sync-delay", "0")).start()
            self.servers.append(master)
            for _ in range(2):
                self.servers.append(LocalRedis(extra=(
                    "--replicaof", "127.0.0.1", str(master.port), "--repl-diskless-sync-delay", "0",
                    "--replica-serve-stale-data", "no")).start())
            for i in range(3):
                port = free_port()
                conf = self.workdir / f"sentinel-{i}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {MASTER_NAME} 1\n")
                log = open(self.workdir / f"sentinel-{i}.log", "wb")
                self.sentinels.append(subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                                       stdout=log, stderr=subprocess.STDOUT))
                self.sentinel_ports.append(port)
            wait_until(self.settled, timeout=30, what="every Sentinel to know both replicas and the others",
                       error=AssertionError, interval=0.2)
        except BaseException:
            self.stop()
            raise
        return self

    def sentinel(self, i: int = 0) -> redis_py.Redis:
        return redis_py.Redis(host="127.0.0.1", port=self.sentinel_ports[i], socket_timeout=1, decode_responses=True)

    def master_port(self) -> int:
        """The master's port as a majority of the live Sentinels name it."""
        ports = []
        for i in range(len(self.sentinel_ports)):
            try:
                host, port = self.sentinel(i).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                ports.append(int(port))
            except (redis_py.RedisError, TypeError, ValueError):
                continue
        return max(set(ports), key=ports.count) if ports else 0

    def settled(self) -> bool:
        try:
            for i in range(len(self.sentinel_ports)):
                info = self.sentinel(i).execute_command("SENTINEL", "MASTER", MASTER_NAME)
                fields = dict(zip(info[::2], info[1::2])) if isinstance(info, list) else info
                if int(fields["num-slaves"]) < 2 or int(fields["num-other-sentinels"]) < 2:
                    return False
            replicas = [s for s in self.servers if s.port != self.master_port()]
            return all(redis_py.Redis(port=s.port, socket_timeout=1).info("replication")
                       .get("master_link_status") == "up" for s in replicas)
        except (redis_py.RedisError, KeyError, OSError):
            return False

    def kill_master(self) -> int:
        """SIGKILL the current master; its port."""
        port = self.master_port()
        server = next(s for s in self.servers if s.port == port)
        assert server.proc is not None
        server.proc.kill()
        server.proc.wait(10)
        self.killed.append(port)
        return port

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """The new master's port, once the Sentinels name another master that answers as one."""
        def promoted() -> int | None:
            port = self.master_port()
            if not port or port == old_port:
                return None
            try:
                role = redis_py.Redis(port=port, socket_timeout=1).info("replication")["role"]
            except redis_py.RedisError:
                return None
            return port if role == "master" else None
        started = time.monotonic()
        port = wait_until(promoted, timeout=timeout, what="the Sentinels' failover", error=AssertionError,
                          interval=0.1)
        self.failover_seconds = round(time.monotonic() - started, 2)
        return port

    def stop(self) -> None:
        for proc in self.sentinels:
            stop_process(proc)
        for server in self.servers:
            server.stop()
