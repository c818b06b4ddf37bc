"""The Redis nodes themselves: their live topology read, and commands sent to one node.

Sources: `CLUSTER SHARDS` (Redis 7+: roles, health, offsets, slots in one call) completed by
`CLUSTER NODES` (every node, even one SHARDS leaves out mid-failover), else `CLUSTER NODES`
alone (roles, fail flags, slots). Sentinel: `SENTINEL MASTERS` then
`SENTINEL REPLICAS <name>` per master, each master being a shard. With `probe`, every node is
also asked `INFO replication` (the replica's own master_link_status and offsets, which the
gossiped offsets of CLUSTER SHARDS only approximate) and `CONFIG GET maxmemory`. The replies
are read by the pure analysis/topology.py; this module only asks.

What is fetched is stored by state/live.py. NodeClient is the small interface through which
actuation/rebalance.py commands live nodes.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from extender.analysis.topology import (KIND_CLUSTER, KIND_SENTINEL, SENTINEL_SEED, LiveNode, LiveTopology, complete,
                                follow_masters, map_pods, pairs, parse_address, parse_cluster_nodes,
                                parse_cluster_shards, probed, sentinel_master_id, sentinel_node, text)

Connect = Callable[[str, int], redis.Redis]


def connector(timeout: float = 2.0, password: str | None = None, username: str | None = None) -> Connect:
    """A factory of short-lived clients of single Redis nodes (never cluster-aware: we talk to
    one node at a time on purpose)."""
    def connect(host: str, port: int) -> redis.Redis:
        return redis.Redis(host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
                           password=password, username=username, decode_responses=True, protocol=2,
                           retry=Retry(NoBackoff(), 0))  # a node that does not answer is news, not noise
    return connect


# --- fetching ------------------------------------------------------------------------------------

def fetch(cluster: str, seed: str, ip_map: Mapping[str, str] | None = None, probe: bool = True,
          connect: Connect | None = None) -> LiveTopology:
    """Dispatch on the seed: sentinel://host:port[/master] or a cluster node's host:port."""
    if seed.startswith(SENTINEL_SEED):
        address, _, master = seed[len(SENTINEL_SEED):].partition("/")
        return replace(fetch_sentinel(address, cluster, master or None, ip_map, probe, connect), seed=seed)
    return fetch_cluster(seed, cluster, ip_map, probe, connect)


def fetch_cluster(seed: str, cluster: str, ip_map: Mapping[str, str] | None = None, probe: bool = True,
                  connect: Connect | None = None, clock: Callable[[], float] = time.time) -> LiveTopology:
    """The live topology of a Redis Cluster, asked of `seed`. Never raises for Redis errors:
    the error is recorded in the result (and stored), so reports can say why."""
    connect = connect or connector()
    try:
        host, port = parse_address(seed)
        client = connect(host, port)
        try:
            listed = parse_cluster_nodes(text(client.execute_command("CLUSTER", "NODES")))
            try:
                nodes, source = parse_cluster_shards(client.execute_command("CLUSTER", "SHARDS")), "CLUSTER SHARDS"
            except redis.ResponseError:  # Redis < 7: no CLUSTER SHARDS
                nodes, source = listed, "CLUSTER NODES"
        finally:
            client.close()
        nodes = complete(nodes, listed)
    except (redis.RedisError, ValueError, OSError) as exc:
        return LiveTopology(cluster, KIND_CLUSTER, clock(), seed, (), "", f"{type(exc).__name__}: {exc}")
    nodes = map_pods(nodes, cluster, ip_map)
    if probe:
        nodes = probe_nodes(nodes, connect)
    return LiveTopology(cluster, KIND_CLUSTER, clock(), seed, tuple(nodes), source)


def fetch_sentinel(seed: str, cluster: str, master_name: str | None = None,
                   ip_map: Mapping[str, str] | None = None, probe: bool = True,
                   connect: Connect | None = None, clock: Callable[[], float] = time.time) -> LiveTopology:
    """A Sentinel deployment: every monitored master (or `master_name`) is a shard."""
    connect = connect or connector()
    nodes: list[LiveNode] = []
    try:
        host, port = parse_address(seed)
        client = connect(host, port)
        try:
            for m in (pairs(m) for m in client.execute_command("SENTINEL", "MASTERS")):
                name = text(m.get("name", ""))
                if master_name and name != master_name:
                    continue
                nodes.append(sentinel_node(m, "master", ""))
                master_id = sentinel_master_id(m)
                nodes += [sentinel_node(pairs(r), "replica", master_id)
                          for r in client.execute_command("SENTINEL", "REPLICAS", name)]
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        return LiveTopology(cluster, KIND_SENTINEL, clock(), seed, (), "SENTINEL", f"{type(exc).__name__}: {exc}")
    nodes = map_pods(nodes, cluster, ip_map)
    if probe:
        nodes = probe_nodes(nodes, connect)
    return LiveTopology(cluster, KIND_SENTINEL, clock(), seed, tuple(nodes), "SENTINEL")


def probe_nodes(nodes: Sequence[LiveNode], connect: Connect, workers: int = 16) -> list[LiveNode]:
    """Ask every node for its own replication state (reports.topology.probed reads it); a node
    that does not answer keeps what the seed said, with its link state unknown."""
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(nodes))) as pool:
        answers = list(pool.map(lambda n: _probe(n, connect), nodes))
    return follow_masters(nodes, answers)


def _probe(node: LiveNode, connect: Connect) -> tuple[LiveNode, str]:
    if not node.ip or not node.port:
        return node, ""
    try:
        client = connect(node.ip, node.port)
        try:
            info = client.info("replication")
            try:
                maxmemory: int | None = int(client.config_get("maxmemory").get("maxmemory") or 0)
            except redis.ResponseError:  # CONFIG renamed or forbidden (ACLs): not essential
                maxmemory = None
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return probed(node, None, None)
    return probed(node, info, maxmemory)


# --- commanding a node (actuation/rebalance.py) ------------------------------------------------------

class NodeClient:
    """The commands a failover plan sends to one Redis node, replies as text."""

    def __init__(self, client: redis.Redis):
        self._client = client

    def role(self) -> list[Any]:
        """ROLE: ["master", offset, replicas] or ["slave", host, port, state, offset]."""
        return [text(v) if isinstance(v, (bytes, bytearray)) else v for v in self._client.execute_command("ROLE")]

    def cluster_nodes(self) -> str:
        return text(self._client.execute_command("CLUSTER", "NODES"))

    def failover(self) -> None:
        """CLUSTER FAILOVER, the coordinated kind (sent to the replica to promote)."""
        self._client.execute_command("CLUSTER", "FAILOVER")

    def close(self) -> None:
        self._client.close()


OpenNode = Callable[[str, int], NodeClient]


def node_opener(connect: Connect | None = None) -> OpenNode:
    """Open NodeClients of single nodes through `connect` (default: connector())."""
    connect = connect or connector()
    return lambda host, port: NodeClient(connect(host, port))
