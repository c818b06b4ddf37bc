"""A real Redis Cluster on loopback for the integration tests: Debian's redis-server 7.0 in
cluster mode, `shards` masters with `replicas` replicas each, created by `redis-cli --cluster
create`. Node i announces the hostname `<name>-i` (= its pod's name), so the live topology
maps every Redis node to a simulated pod. `kill` ends a node's process at once (SIGKILL, a
crash: no shutdown handshake), so the others detect the failure and fail over on their own.
"""
from __future__ import annotations

import subprocess
from typing import Any, Callable

import redis as redis_py

from extender.local.localredis import LocalRedis
from extender.local.processes import free_port, wait_until
from extender.analysis.topology import parse_cluster_nodes


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition", poll: float = 0.1) -> Any:
    return wait_until(check, timeout=timeout, what=what, error=AssertionError, interval=poll)


class RedisCluster:
    def __init__(self, shards: int = 3, replicas: int = 2, name: str = "cache", node_timeout_ms: int = 2000):
        self.shards, self.replicas, self.name = shards, replicas, name
        self.servers: list[LocalRedis] = []
        self.killed: set[int] = set()
        self.initial_masters: list[str] = []
        taken: set[int] = set()

        def port() -> int:  # ports picked before any server starts: keep them distinct
            while (p := free_port()) in taken:
                pass
            taken.add(p)
            return p
        for i in range(shards * (replicas + 1)):
            server = LocalRedis(port=port())
            server.extra = ("--cluster-enabled", "yes", "--cluster-config-file", str(server.dir / "nodes.conf"),
                            "--cluster-announce-hostname", f"{name}-{i}",  # = the pod name (7.0 option)
                            "--cluster-port", str(port()),  # bus port: port+10000 may not exist
                            "--cluster-node-timeout", str(node_timeout_ms), "--repl-diskless-sync-delay", "0",
                            "--maxmemory", "100mb")
            self.servers.append(server)

    def start(self, namespace: str = "redis") -> "RedisCluster":
        try:
            for server in self.servers:
                server.start()
            out = subprocess.run(["redis-cli", "--cluster", "create", *self.addresses, "--cluster-replicas",
                                  str(self.replicas), "--cluster-yes"], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
            wait_for(self.settled, what="cluster state ok and every replica linked")
            writer = redis_py.RedisCluster(host="127.0.0.1", port=self.servers[0].port)
            for i in range(20 * self.shards):  # some data, so replication offsets move
                writer.set(f"key-{i}", "x" * 100)
            writer.close()
            self.initial_masters = sorted(f"{namespace}/{n.hostname}" for n in self.nodes() if n.role == "master")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.servers]

    @property
    def seed(self) -> str:
        """A live node's address."""
        return next(a for i, a in enumerate(self.addresses) if i not in self.killed)

    @property
    def alive(self) -> list[LocalRedis]:
        return [s for i, s in enumerate(self.servers) if i not in self.killed]

    def client(self, port: int) -> redis_py.Redis:
        return redis_py.Redis(port=port, decode_responses=True, protocol=2, socket_timeout=5)

    def index(self, pod: str) -> int:
        """The server of a pod ("ns/name-i" or "name-i")."""
        return int(pod.rsplit("-", 1)[1])

    def nodes(self, port: int | None = None) -> list[Any]:
        """CLUSTER NODES of one node (default: the seed), parsed."""
        port = port or int(self.seed.rsplit(":", 1)[1])
        c = self.client(port)
        try:
            return parse_cluster_nodes(c.execute_command("CLUSTER", "NODES"))
        finally:
            c.close()

    def roles(self) -> dict[str, str]:
        """hostname -> "master" | "replica", each live node's own word (ROLE)."""
        result = {}
        for i, s in enumerate(self.servers):
            if i in self.killed:
                continue
            c = self.client(s.port)
            try:
                result[f"{self.name}-{i}"] = "master" if c.execute_command("ROLE")[0] == "master" else "replica"
            finally:
                c.close()
        return result

    def settled(self) -> bool:
        """Every live node sees the cluster ok and every slot served by a master it does not
        flag failed; every live replica's link is up; with nobody killed, the seed also sees
        `shards` shards of replicas+1 nodes (gossip caught up)."""
        if not self.killed:
            shards = self.client(self.servers[0].port).execute_command("CLUSTER", "SHARDS")
            sizes = sorted(len(dict(zip(sh[::2], sh[1::2]))["nodes"]) for sh in shards)
            if sizes != [self.replicas + 1] * self.shards:
                return False
        for i, s in enumerate(self.servers):
            if i in self.killed:
                continue
            c = self.client(s.port)
            try:
                info = c.execute_command("CLUSTER", "INFO")
                if "cluster_state:ok" not in info or f"cluster_known_nodes:{len(self.servers)}" not in info:
                    return False
                served = sum(n.slot_count for n in parse_cluster_nodes(c.execute_command("CLUSTER", "NODES"))
                             if n.role == "master" and n.health != "failed")
                if served != 16384:
                    return False
                repl = c.info("replication")
                if repl["role"] == "slave" and repl.get("master_link_status") != "up":
                    return False
            finally:
                c.close()
        return True

    def kill(self, index: int) -> None:
        """Crash node `index` (SIGKILL): no goodbye to the cluster."""
        proc = self.servers[index].proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self.killed.add(index)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
