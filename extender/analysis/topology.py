"""The live topology of a Redis deployment, and its reading from Redis replies (pure).

Who is master now, who is healthy, in sync, serving which slots: what the Redis processes
say of themselves, as plain records the placement view (analysis/placement.py) merges with
the cache. Fetching it from the nodes and storing it is actuation/nodes.py's work; this
module only reads replies already received, so the unit tests feed it hand-written ones.

Stored form (`LiveTopology.to_json()`, under the store's `live:<cluster>` key):
  {"cluster": "ns/name", "kind": "cluster"|"sentinel",
   "fetched_at": unix seconds, "seed": "host:port" | "sentinel://host:port/name",
   "source": "CLUSTER SHARDS"|"CLUSTER NODES"|"SENTINEL", "error": "",
   "nodes": [{"id", "ip", "port", "role": "master"|"replica",
              "health": "online"|"failed"|"loading"|"unknown", "hostname",
              "master_id", "offset", "link_up", "slots": [[lo, hi], ...],
              "pod": "ns/name" or "", "maxmemory"}]}

Redis nodes map to pods by `cluster-announce-hostname` (= the pod name; the first DNS label
of an FQDN), else by IP through a mapping the caller gives ("ip:port" or "ip" -> pod).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from extender.core.model import Role

KIND_CLUSTER, KIND_SENTINEL, KIND_UNKNOWN = "cluster", "sentinel", "unknown"
SENTINEL_SEED = "sentinel://"


@dataclass(frozen=True)
class LiveNode:
    """One Redis process as the live topology reports it, mapped to its pod when possible.

    `offset` is the replication offset (the master's own, or how far a replica has read);
    `link_up` is the replica's master_link_status (None for masters, or when not probed);
    `slots` are inclusive ranges served by a master.
    """

    node_id: str
    ip: str
    port: int
    role: str  # "master" | "replica"
    health: str = "online"  # online | failed | loading | unknown
    hostname: str = ""
    master_id: str = ""
    offset: int | None = None
    link_up: bool | None = None
    slots: tuple[tuple[int, int], ...] = ()
    pod: str = ""  # "ns/name"; "" when it could not be mapped
    maxmemory: int | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def slot_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.slots)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.node_id, "ip": self.ip, "port": self.port, "role": self.role,
                "health": self.health, "hostname": self.hostname, "master_id": self.master_id,
                "offset": self.offset, "link_up": self.link_up, "slots": [list(s) for s in self.slots],
                "pod": self.pod, "maxmemory": self.maxmemory}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "LiveNode":
        return cls(node_id=str(d.get("id", "")), ip=str(d.get("ip", "")), port=int(d.get("port") or 0),
                   role=str(d.get("role", "")), health=str(d.get("health", "unknown")),
                   hostname=str(d.get("hostname") or ""), master_id=str(d.get("master_id") or ""),
                   offset=_opt_int(d.get("offset")), link_up=d.get("link_up"),
                   slots=tuple((int(a), int(b)) for a, b in d.get("slots") or ()),
                   pod=str(d.get("pod") or ""), maxmemory=_opt_int(d.get("maxmemory")))


@dataclass(frozen=True)
class LiveTopology:
    """What one Redis deployment said about itself at `fetched_at` (unix seconds)."""

    cluster: str  # the store's cluster id, "ns/name"
    kind: str  # KIND_CLUSTER | KIND_SENTINEL
    fetched_at: float
    seed: str  # host:port asked (sentinel: sentinel://host:port/master)
    nodes: tuple[LiveNode, ...] = ()
    source: str = ""  # "CLUSTER SHARDS" | "CLUSTER NODES" | "SENTINEL"
    error: str = ""

    def by_id(self) -> dict[str, LiveNode]:
        return {n.node_id: n for n in self.nodes}

    def by_pod(self) -> dict[str, LiveNode]:
        return {n.pod: n for n in self.nodes if n.pod}

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "kind": self.kind, "fetched_at": self.fetched_at,
                "seed": self.seed, "source": self.source, "error": self.error,
                "nodes": [n.to_json() for n in self.nodes]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "LiveTopology":
        return cls(cluster=str(d.get("cluster", "")), kind=str(d.get("kind", KIND_CLUSTER)),
                   fetched_at=float(d.get("fetched_at") or 0.0), seed=str(d.get("seed", "")),
                   nodes=tuple(LiveNode.from_json(n) for n in d.get("nodes") or ()),
                   source=str(d.get("source", "")), error=str(d.get("error", "")))



def _opt_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)

def text(value: Any) -> str:
    """A reply value as text (clients may or may not decode responses)."""
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)


def pairs(item: Any) -> dict[str, Any]:
    """RESP2 gives flat [k, v, k, v] lists, RESP3 maps: accept both."""
    if isinstance(item, dict):
        return {text(k): v for k, v in item.items()}
    return {text(item[i]): item[i + 1] for i in range(0, len(item) - 1, 2)}


def parse_address(address: str) -> tuple[str, int]:
    """"host:port", "[v6]:port" or "redis://host:port" -> (host, port)."""
    address = address.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def parse_seed_spec(spec: str) -> tuple[str, str]:
    """"ns/name=host:port" or "ns/name=sentinel://host:port[/master]" -> (cluster, seed)."""
    cluster, sep, seed = spec.partition("=")
    if not sep or not cluster or not seed:
        raise ValueError(f"expected CLUSTER=HOST:PORT (or CLUSTER=sentinel://HOST:PORT/MASTER), got {spec!r}")
    if seed.startswith(SENTINEL_SEED):
        parse_address(seed[len(SENTINEL_SEED):])
    else:
        parse_address(seed)
    return cluster, seed


def _live_role(word: Any) -> str:
    """A reply's role word as a LiveNode role: "master", or "replica" for anything else."""
    return "master" if Role.parse(text(word)) is Role.MASTER else "replica"


def parse_cluster_shards(reply: Sequence[Any]) -> list[LiveNode]:
    nodes: list[LiveNode] = []
    for raw_shard in reply:
        shard = pairs(raw_shard)
        flat = [int(x) for x in shard.get("slots") or []]
        slots = tuple((flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2))
        members = [pairs(n) for n in shard.get("nodes") or []]
        master_id = next((text(m["id"]) for m in members if _live_role(m.get("role", "")) == "master"), "")
        for m in members:
            role = _live_role(m.get("role", ""))
            nodes.append(LiveNode(
                node_id=text(m.get("id", "")), ip=text(m.get("ip") or m.get("endpoint") or ""),
                port=int(m.get("port") or m.get("tls-port") or 0), role=role,
                health=text(m.get("health", "unknown")), hostname=text(m.get("hostname") or ""),
                master_id="" if role == "master" else master_id,
                offset=int(m["replication-offset"]) if m.get("replication-offset") is not None else None,
                slots=slots if role == "master" else ()))
    return nodes


def parse_cluster_nodes(reply: str) -> list[LiveNode]:
    """`<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`"""
    nodes = []
    for line in reply.splitlines():
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


def myself(reply: str) -> LiveNode | None:
    """The node that answered a CLUSTER NODES (its line is flagged "myself")."""
    for line in reply.splitlines():
        parts = line.split()
        if len(parts) > 2 and "myself" in parts[2].split(","):
            return next(iter(parse_cluster_nodes(line)), None)
    return None


def complete(shards: list[LiveNode], listed: Sequence[LiveNode]) -> list[LiveNode]:
    """CLUSTER SHARDS lists masters and their replicas: mid-failover, a replica whose master
    just became a replica itself is in no shard. CLUSTER NODES lists every node."""
    known = {n.node_id for n in shards}
    return shards + [n for n in listed if n.node_id not in known]


def sentinel_node(entry: Mapping[str, Any], role: str, master_id: str) -> LiveNode:
    """One entry of SENTINEL MASTERS or SENTINEL REPLICAS (already `pairs`)."""
    flags = set(text(entry.get("flags", "")).split(","))
    ip = text(entry.get("ip", ""))
    hostname = ""
    try:
        ipaddress.ip_address(ip)
    except ValueError:  # Sentinel announces hostnames when resolve-hostnames is on
        hostname = ip
    health = "failed" if flags & {"s_down", "o_down", "disconnected"} else "online"
    node = LiveNode(node_id=text(entry.get("runid") or f"{ip}:{entry.get('port')}"), ip=ip,
                    port=int(entry.get("port") or 0), role=role, health=health, hostname=hostname,
                    master_id=master_id)
    if role == "master":
        return node
    link = text(entry.get("master-link-status", ""))
    offset = entry.get("slave-repl-offset")
    return replace(node, link_up=(link == "ok") if link else None,
                   offset=int(offset) if offset is not None else None)


def sentinel_master_id(entry: Mapping[str, Any]) -> str:
    return text(entry.get("runid") or f"{entry.get('ip')}:{entry.get('port')}")


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


def probed(node: LiveNode, info: Mapping[str, Any] | None, maxmemory: int | None) -> tuple[LiveNode, str]:
    """A node with its own answer to INFO replication (None: it did not answer) applied, and
    the "host:port" of the master it says it follows ("" for a master or no answer). A node's
    own word on its role wins over the seed's gossip, which lags a failover by a moment."""
    if info is None:
        return replace(node, link_up=None), ""
    if Role.parse(text(info.get("role", ""))) is Role.MASTER:
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


def follow_masters(nodes: Sequence[LiveNode], answers: Sequence[tuple[LiveNode, str]]) -> list[LiveNode]:
    """The probed nodes, each replica's master_id taken from the master address it named."""
    by_address = {f"{n.ip}:{n.port}": n.node_id for n in nodes}
    result = []
    for node, master_address in answers:
        if node.role == "replica" and master_address in by_address:
            node = replace(node, master_id=by_address[master_address])
        result.append(node)
    return result
