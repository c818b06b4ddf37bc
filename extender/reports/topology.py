"""Live Redis topology: who is master now, who is healthy, in sync, serving which slots.

Keys (P = the store's key prefix, as in state/redis_store.py):

  P live:<cluster>   STRING JSON of metrics.LiveTopology.to_json():
                     {"cluster": "ns/name", "kind": "cluster"|"sentinel",
                      "fetched_at": unix seconds, "seed": "host:port" | "sentinel://host:port/name",
                      "source": "CLUSTER SHARDS"|"CLUSTER NODES"|"SENTINEL", "error": "",
                      "nodes": [{"id", "ip", "port", "role": "master"|"replica",
                                 "health": "online"|"failed"|"loading"|"unknown", "hostname",
                                 "master_id", "offset", "link_up", "slots": [[lo, hi], ...],
                                 "pod": "ns/name" or "", "maxmemory"}]}

One string per cluster, written whole, so a reader never sees half a refresh. No TTL: the
report shows its age (hygiene), and an old view is better evidence than none. A failed fetch
records its error next to the last good view (or alone, with no nodes, when there is none),
so the report says why live data is old or missing.

Sources: `CLUSTER SHARDS` (Redis 7+: roles, health, offsets, slots in one call) completed by
`CLUSTER NODES` (every node, even one SHARDS leaves out mid-failover), else `CLUSTER NODES`
alone (roles, fail flags, slots). Sentinel: `SENTINEL MASTERS` then
`SENTINEL REPLICAS <name>` per master, each master being a shard. With `probe`, every node is
also asked `INFO replication` (the replica's own master_link_status and offsets, which the
gossiped offsets of CLUSTER SHARDS only approximate) and `CONFIG GET maxmemory`.

Redis nodes map to pods by `cluster-announce-hostname` (= the pod name; the first DNS label
of an FQDN), else by IP through a mapping the caller gives ("ip:port" or "ip" -> pod).
"""
from __future__ import annotations

import ipaddress
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .metrics import KIND_CLUSTER, KIND_SENTINEL, LiveNode, LiveTopology

Connect = Callable[[str, int], redis.Redis]


def live_key(prefix: str, cluster: str) -> str:
    return f"{prefix}live:{cluster}"


def connector(timeout: float = 2.0, password: str | None = None, username: str | None = None) -> Connect:
    """A factory of short-lived clients of single Redis nodes (never cluster-aware: we talk to
    one node at a time on purpose)."""
    def connect(host: str, port: int) -> redis.Redis:
        return redis.Redis(host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
                           password=password, username=username, decode_responses=True, protocol=2,
                           retry=Retry(NoBackoff(), 0))  # a node that does not answer is news, not noise
    return connect


def parse_address(text: str) -> tuple[str, int]:
    """"host:port", "[v6]:port" or "redis://host:port" -> (host, port)."""
    text = text.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


# --- parsing (pure) ----------------------------------------------------------------------------

def _pairs(item: Any) -> dict[str, Any]:
    """RESP2 gives flat [k, v, k, v] lists, RESP3 maps: accept both."""
    if isinstance(item, dict):
        return {_text(k): v for k, v in item.items()}
    return {_text(item[i]): item[i + 1] for i in range(0, len(item) - 1, 2)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)


def parse_cluster_shards(reply: Sequence[Any]) -> list[LiveNode]:
    nodes: list[LiveNode] = []
    for raw_shard in reply:
        shard = _pairs(raw_shard)
        flat = [int(x) for x in shard.get("slots") or []]
        slots = tuple((flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2))
        members = [_pairs(n) for n in shard.get("nodes") or []]
        master_id = next((_text(m["id"]) for m in members if _text(m.get("role", "")) == "master"), "")
        for m in members:
            role = "master" if _text(m.get("role", "")) == "master" else "replica"
            nodes.append(LiveNode(
                node_id=_text(m.get("id", "")), ip=_text(m.get("ip") or m.get("endpoint") or ""),
                port=int(m.get("port") or m.get("tls-port") or 0), role=role,
                health=_text(m.get("health", "unknown")), hostname=_text(m.get("hostname") or ""),
                master_id="" if role == "master" else master_id,
                offset=int(m["replication-offset"]) if m.get("replication-offset") is not None else None,
                slots=slots if role == "master" else ()))
    return nodes


def parse_cluster_nodes(text: str) -> list[LiveNode]:
    """`<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`"""
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address, _, hostname = parts[1].partition(",")
        hostport = address.split("@", 1)[0]
        ip, _, port = hostport.rpartition(":")
        flags = set(parts[2].split(","))
        role = "master" if "master" in flags else "replica"
        if "fail" in flags:
            health = "failed"
        elif flags & {"fail?", "handshake", "noaddr"} or parts[7] != "connected":
            health = "unknown"
        else:
            health = "online"
        slots = []
        for token in parts[8:]:
            if token.startswith("["):
                continue  # a slot being migrated or imported
            lo, _, hi = token.partition("-")
            slots.append((int(lo), int(hi or lo)))
        nodes.append(LiveNode(node_id=parts[0], ip=ip, port=int(port or 0), role=role, health=health,
                              hostname=hostname, master_id="" if parts[3] == "-" else parts[3],
                              slots=tuple(slots)))
    return nodes


def map_pods(nodes: Sequence[LiveNode], cluster: str, ip_map: Mapping[str, str] | None = None) -> list[LiveNode]:
    """Name each node's pod: hostname first (pods are named by their hostname), then IP."""
    namespace = cluster.split("/", 1)[0] if "/" in cluster else "default"
    ip_map = ip_map or {}

    def qualify(pod: str) -> str:
        return pod if "/" in pod else f"{namespace}/{pod}"

    mapped = []
    for n in nodes:
        pod = ""
        if n.hostname:
            pod = qualify(n.hostname.split(".", 1)[0])
        elif f"{n.ip}:{n.port}" in ip_map:
            pod = qualify(ip_map[f"{n.ip}:{n.port}"])
        elif n.ip in ip_map:
            pod = qualify(ip_map[n.ip])
        mapped.append(replace(n, pod=pod))
    return mapped


# --- fetching (I/O) ----------------------------------------------------------------------------

def fetch_cluster(seed: str, cluster: str, ip_map: Mapping[str, str] | None = None, probe: bool = True,
                  connect: Connect | None = None, clock: Callable[[], float] = time.time) -> LiveTopology:
    """The live topology of a Redis Cluster, asked of `seed`. Never raises for Redis errors:
    the error is recorded in the result (and stored), so reports can say why."""
    connect = connect or connector()
    try:
        host, port = parse_address(seed)
        client = connect(host, port)
        try:
            listed = parse_cluster_nodes(_text(client.execute_command("CLUSTER", "NODES")))
            try:
                nodes, source = parse_cluster_shards(client.execute_command("CLUSTER", "SHARDS")), "CLUSTER SHARDS"
            except redis.ResponseError:  # Redis < 7: no CLUSTER SHARDS
                nodes, source = listed, "CLUSTER NODES"
        finally:
            client.close()
        # CLUSTER SHARDS lists masters and their replicas: mid-failover, a replica whose master
        # just became a replica itself is in no shard. CLUSTER NODES lists every node.
        known = {n.node_id for n in nodes}
        nodes += [n for n in listed if n.node_id not in known]
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
            masters = [_pairs(m) for m in client.execute_command("SENTINEL", "MASTERS")]
            for m in masters:
                name = _text(m.get("name", ""))
                if master_name and name != master_name:
                    continue
                master_id = _text(m.get("runid") or f"{m.get('ip')}:{m.get('port')}")
                flags = set(_text(m.get("flags", "")).split(","))
                nodes.append(_sentinel_node(m, "master", "", flags))
                for r in client.execute_command("SENTINEL", "REPLICAS", name):
                    rep = _pairs(r)
                    rflags = set(_text(rep.get("flags", "")).split(","))
                    node = _sentinel_node(rep, "replica", master_id, rflags)
                    link = _text(rep.get("master-link-status", ""))
                    offset = rep.get("slave-repl-offset")
                    nodes.append(replace(node, link_up=(link == "ok") if link else None,
                                         offset=int(offset) if offset is not None else None))
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        return LiveTopology(cluster, KIND_SENTINEL, clock(), seed, (), "SENTINEL", f"{type(exc).__name__}: {exc}")
    nodes = map_pods(nodes, cluster, ip_map)
    if probe:
        nodes = probe_nodes(nodes, connect)
    return LiveTopology(cluster, KIND_SENTINEL, clock(), seed, tuple(nodes), "SENTINEL")


def _sentinel_node(d: Mapping[str, Any], role: str, master_id: str, flags: set[str]) -> LiveNode:
    ip = _text(d.get("ip", ""))
    hostname = ""
    try:
        ipaddress.ip_address(ip)
    except ValueError:  # Sentinel announces hostnames when resolve-hostnames is on
        hostname = ip
    health = "failed" if flags & {"s_down", "o_down", "disconnected"} else "online"
    return LiveNode(node_id=_text(d.get("runid") or f"{ip}:{d.get('port')}"), ip=ip, port=int(d.get("port") or 0),
                    role=role, health=health, hostname=hostname, master_id=master_id)


def probe_nodes(nodes: Sequence[LiveNode], connect: Connect, workers: int = 16) -> list[LiveNode]:
    """Ask every node for its own replication state. A node's own word on its role wins over the
    seed's gossip (which lags a failover by a moment); a node that does not answer keeps what
    the seed said, with its link state unknown."""
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(nodes))) as pool:
        probed = list(pool.map(lambda n: _probe(n, connect), nodes))
    by_address = {f"{n.ip}:{n.port}": n.node_id for n in nodes}
    result = []
    for node, master_address in probed:
        if node.role == "replica" and master_address in by_address:
            node = replace(node, master_id=by_address[master_address])
        result.append(node)
    return result


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
        return replace(node, link_up=None), ""
    if info.get("role") == "master":
        own = int(info.get("master_repl_offset", node.offset or 0))
        return replace(node, role="master", master_id="", link_up=None, offset=own, maxmemory=maxmemory), ""
    offset: int | None = info.get("slave_repl_offset", node.offset)
    link_up = info.get("master_link_status") == "up"
    health = node.health
    if info.get("master_sync_in_progress"):
        health = "loading"
    elif link_up and health == "loading":  # CLUSTER SHARDS says "loading" while the offset is 0
        health = "online"
    return (replace(node, role="replica", link_up=link_up, health=health,
                    offset=int(offset) if offset is not None else None, maxmemory=maxmemory),
            f"{info.get('master_host', '')}:{info.get('master_port', '')}")


# --- storing -------------------------------------------------------------------------------------

def store_live(client: redis.Redis, prefix: str, topology: LiveTopology) -> None:
    """Store a fetched topology. A failed fetch keeps the last good view (with its own, older
    fetched_at, so its age shows) and only records the error next to it."""
    if topology.error and not topology.nodes:
        previous = load_live(client, prefix, topology.cluster)
        if previous is not None and previous.nodes:
            topology = replace(previous, error=topology.error)
    client.set(live_key(prefix, topology.cluster), orjson.dumps(topology.to_json()))
    if topology.nodes and not topology.error:  # the decisions use live roles from now on
        from ..state.redis_store import RedisStore

        roles = {n.pod: n.role for n in topology.nodes if n.pod and n.role in ("master", "replica")}
        RedisStore(client, prefix).set_live_roles(topology.cluster, roles)


def load_live(client: redis.Redis, prefix: str, cluster: str) -> LiveTopology | None:
    raw = client.get(live_key(prefix, cluster))
    return LiveTopology.from_json(orjson.loads(raw)) if raw else None


def parse_seed_spec(spec: str) -> tuple[str, str]:
    """"ns/name=host:port" or "ns/name=sentinel://host:port[/master]" -> (cluster, seed)."""
    cluster, sep, seed = spec.partition("=")
    if not sep or not cluster or not seed:
        raise ValueError(f"expected CLUSTER=HOST:PORT (or CLUSTER=sentinel://HOST:PORT/MASTER), got {spec!r}")
    if seed.startswith("sentinel://"):
        parse_address(seed[len("sentinel://"):])
    else:
        parse_address(seed)
    return cluster, seed


def fetch(cluster: str, seed: str, ip_map: Mapping[str, str] | None = None, probe: bool = True,
          connect: Connect | None = None) -> LiveTopology:
    """Dispatch on the seed: sentinel://host:port[/master] or a cluster node's host:port."""
    if seed.startswith("sentinel://"):
        rest = seed[len("sentinel://"):]
        address, _, master = rest.partition("/")
        return replace(fetch_sentinel(address, cluster, master or None, ip_map, probe, connect), seed=seed)
    return fetch_cluster(seed, cluster, ip_map, probe, connect)
