"""A real Redis Cluster on the pods of a StatefulSet (servers run by tests/support/nodeagent.py),
the small part of an operator the keeper's tests need, and a writer with acknowledged-write
bookkeeping.

- `form`: masters are the pods the extender's identity calls masters (the StatefulSet ordinal
  rule: ordinal < shards, or a role label), each gets an even range of slots; every other pod
  replicates the master of its shard (ordinal % shards). Done with CLUSTER ADDSLOTSRANGE, MEET
  and REPLICATE, as `redis-cli --cluster create` does, but with the roles the labels give.
- `Operator`: joins a recreated pod (an empty node knowing only itself) as a replica of its
  shard's current master, and forgets the dead node whose pod it replaced: what every Redis
  operator does for a pod that comes back without its data.
- `Writer`: writes unique keys in a loop; a write counts as acknowledged when SET answered OK
  and WAIT 1 confirmed a replica has it (so a crash of the master alone cannot lose it);
  `lost()` reads every acknowledged key back.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import redis as redis_py
from redis.crc import key_slot

from extender.local.processes import wait_until
from extender.analysis.topology import parse_cluster_nodes

from .nodeagent import REDIS_PORT, NodeAgent, PodServer

SLOTS = 16384


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition", poll: float = 0.2) -> Any:
    return wait_until(check, timeout=timeout, what=what, error=AssertionError, interval=poll)


def ordinal(pod: str) -> int:
    return int(pod.rsplit("-", 1)[1])


def _client(ip: str, timeout: float = 2.0) -> redis_py.Redis:
    return redis_py.Redis(host=ip, port=REDIS_PORT, socket_timeout=timeout, socket_connect_timeout=timeout,
                          decode_responses=True, protocol=2)


def _call(ip: str, *args: Any, timeout: float = 2.0) -> Any:
    c = _client(ip, timeout)
    try:
        return c.execute_command(*args)
    finally:
        c.close()


def node_id(ip: str) -> str:
    return str(_call(ip, "CLUSTER", "MYID"))


def form(agent: NodeAgent, pods: list[str], shards: int, timeout: float = 60.0) -> dict[str, str]:
    """Form the cluster from the running servers of `pods` (names `<sts>-<ordinal>`); returns
    pod -> node id. Masters: ordinal < shards; replicas follow master ordinal % shards."""
    servers = {p: wait_for(lambda p=p: agent.server_of(p) if (s := agent.server_of(p)) and s.answers() else None,
                           timeout=timeout, what=f"redis-server of {p}") for p in pods}
    ids = {p: node_id(s.ip) for p, s in servers.items()}
    masters = sorted((p for p in pods if ordinal(p) < shards), key=ordinal)
    per = SLOTS // len(masters)
    for i, p in enumerate(masters):
        lo, hi = i * per, SLOTS - 1 if i == len(masters) - 1 else (i + 1) * per - 1
        _call(servers[p].ip, "CLUSTER", "ADDSLOTSRANGE", lo, hi)
    first = servers[masters[0]]
    for p, s in servers.items():
        if s is not first:
            _call(s.ip, "CLUSTER", "MEET", first.ip, REDIS_PORT)
    wait_for(lambda: all(_known(s.ip) >= len(servers) for s in servers.values()), timeout=timeout,
             what="every node to know every other")
    master_of = {ordinal(p): p for p in masters}
    for p, s in servers.items():
        if ordinal(p) >= shards:
            _call(s.ip, "CLUSTER", "REPLICATE", ids[master_of[ordinal(p) % shards]])
    wait_for(lambda: settled([s.ip for s in servers.values()], shards), timeout=timeout,
             what="cluster ok with every replica linked")
    return ids


def _known(ip: str) -> int:
    info = _call(ip, "CLUSTER", "INFO")
    return int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("cluster_known_nodes")))


def settled(ips: list[str], shards: int) -> bool:
    """Every node answers with cluster_state ok, all slots served by masters it sees healthy,
    `shards` masters holding slots, and every replica's link up."""
    try:
        for ip in ips:
            c = _client(ip)
            try:
                if "cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                    return False
                nodes = parse_cluster_nodes(c.execute_command("CLUSTER", "NODES"))
                serving = [n for n in nodes if n.role == "master" and n.slots and n.health == "online"]
                if len(serving) != shards or sum(n.slot_count for n in serving) != SLOTS:
                    return False
                repl = c.info("replication")
                if repl["role"] == "slave" and repl.get("master_link_status") != "up":
                    return False
            finally:
                c.close()
    except (redis_py.RedisError, OSError):
        return False
    return True


def roles(agent: NodeAgent, pods: list[str]) -> dict[str, str]:
    """pod -> "master" | "replica" by each live server's own ROLE (pods without one left out)."""
    result = {}
    for p in pods:
        s = agent.server_of(p)
        if s is None or not s.answers():
            continue
        try:
            result[p] = "master" if _call(s.ip, "ROLE")[0] == "master" else "replica"
        except (redis_py.RedisError, OSError):
            continue
    return result


class Operator:
    """Rejoin recreated pods (empty nodes) as replicas of their shard; forget the nodes they replaced."""

    def __init__(self, agent: NodeAgent, statefulset: str, shards: int, poll: float = 0.5):
        self.agent, self.statefulset, self.shards, self.poll = agent, statefulset, shards, poll
        self.joined: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="operator", daemon=True)

    def start(self) -> Operator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.reconcile()
            except (redis_py.RedisError, OSError, StopIteration):
                pass

    def reconcile(self) -> None:
        servers = [s for s in self.agent.by_name().values()
                   if s.name.startswith(f"{self.statefulset}-") and s.answers()]
        members = [s for s in servers if _known(s.ip) > 1]
        if not members:
            return
        for s in servers:
            if s in members:
                continue
            self._join(s, members)

    def _join(self, server: PodServer, members: list[PodServer]) -> None:
        seed = members[0]
        nodes = parse_cluster_nodes(_call(seed.ip, "CLUSTER", "NODES"))
        shard = ordinal(server.name) % self.shards
        mine = {ordinal(m.name): m for m in members}
        masters = [n for n in nodes if n.role == "master" and n.slots and n.health == "online"
                   and n.hostname and ordinal(n.hostname) % self.shards == shard]
        if not masters:
            return
        _call(server.ip, "CLUSTER", "MEET", seed.ip, REDIS_PORT)
        wait_for(lambda: any(n.node_id == masters[0].node_id
                             for n in parse_cluster_nodes(_call(server.ip, "CLUSTER", "NODES"))),
                 timeout=20, what=f"{server.name} to learn its master")
        _call(server.ip, "CLUSTER", "REPLICATE", masters[0].node_id)
        my_id = node_id(server.ip)
        for stale in [n for n in nodes if n.hostname == server.name and n.node_id != my_id]:
            for m in list(mine.values()) + [server]:  # FORGET on every node, else gossip brings it back
                try:
                    _call(m.ip, "CLUSTER", "FORGET", stale.node_id)
                except redis_py.ResponseError:
                    pass
        self.joined.append(server.name)


class Writer:
    """Unique keys written throughout; acknowledged = SET OK and WAIT 1 >= 1 on the key's master."""

    def __init__(self, agent: NodeAgent, pods: list[str], interval: float = 0.02, prefix: str = "k"):
        self.agent, self.pods, self.interval, self.prefix = agent, pods, interval, prefix
        self.acked: dict[str, str] = {}
        self.attempts = self.failures = 0
        self._slots: dict[int, str] = {}  # slot -> master ip
        self._clients: dict[str, redis_py.Redis] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="writer", daemon=True)

    def start(self) -> Writer:
        self._refresh()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _ips(self) -> list[str]:
        return [s.ip for p in self.pods if (s := self.agent.server_of(p)) is not None and s.proc is not None]

    def _refresh(self) -> None:
        for ip in self._ips():
            try:
                slots = _call(ip, "CLUSTER", "SLOTS", timeout=0.5)
            except (redis_py.RedisError, OSError):
                continue
            table = {}
            for entry in slots:
                lo, hi, master = int(entry[0]), int(entry[1]), entry[2]
                for slot in range(lo, hi + 1):
                    table[slot] = str(master[0])
            if len(table) == SLOTS:
                self._slots = table
                return

    def _conn(self, ip: str) -> redis_py.Redis:
        if ip not in self._clients:
            self._clients[ip] = _client(ip, timeout=1.0)
        return self._clients[ip]

    def write_one(self, i: int) -> bool:
        key, value = f"{self.prefix}:{{{i}}}", str(i)
        self.attempts += 1
        ip = self._slots.get(key_slot(key.encode()))
        if ip is None:
            self._refresh()
            return False
        try:
            pipe = self._conn(ip).pipeline(transaction=False)
            pipe.set(key, value)
            pipe.execute_command("WAIT", 1, 500)
            ok, replicas = pipe.execute()
        except (redis_py.RedisError, OSError):
            self.failures += 1
            self._clients.pop(ip, None)
            self._refresh()
            return False
        if ok and int(replicas) >= 1:
            self.acked[key] = value
            return True
        self.failures += 1
        return False

    def _loop(self) -> None:
        for i in range(10**9):
            if self._stop.is_set():
                return
            self.write_one(i)
            time.sleep(self.interval)

    def lost(self, timeout: float = 30.0) -> list[str]:
        """Acknowledged keys that do not read back with their value (after the cluster settles)."""
        missing = []
        for key, value in self.acked.items():
            deadline = time.monotonic() + timeout
            while True:
                ip = self._slots.get(key_slot(key.encode()))
                try:
                    got = self._conn(ip).get(key) if ip else None
                    break
                except (redis_py.RedisError, OSError) as exc:
                    self._clients.pop(ip or "", None)
                    self._refresh()
                    if time.monotonic() > deadline:
                        raise AssertionError(f"cannot read {key}: {exc}") from exc
                    time.sleep(0.2)
            if got != value:
                missing.append(key)
        return missing
