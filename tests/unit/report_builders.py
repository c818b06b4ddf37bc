"""Hand-made inventories for the report tests (placement, measures, advice, render).

Placements are written as tokens "<cached role>[<live role>]@<node>": "M@a1" is a master on
node a1, "RM@b2" a replica by the cache that live Redis reports as master. A node's first
letter is its zone ("a1" is in zone za); every node is in region r1.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from extender.core.model import Copy, Node, Role
from extender.analysis.measures import Report, compute
from extender.analysis.placement import Inventory, place
from extender.analysis.topology import KIND_CLUSTER, KIND_SENTINEL, LiveNode, LiveTopology

LEVELS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region")
Gi = 2**30
CLUSTER = "ns/c"
_ROLE = {"M": Role.MASTER, "R": Role.REPLICA, "?": Role.UNKNOWN}


def make_node(name: str, *, zone: str | None | bool = True, memory: int | None = 16 * Gi,
              ready: bool = True) -> Node:
    z = f"z{name[0]}" if zone is True else (zone or None)
    return Node(name=name, domains=(name, z, "r1"), allocatable_memory=memory, allocatable_cpu=8000, ready=ready)


def pod_name(cluster: str, shard: str, i: int) -> str:
    ns, name = cluster.split("/")
    return f"{ns}/{name}-{shard}-{i}"


def make_inventory(spec: Mapping[str, Sequence[str]], *, live: bool | str = True,
                   nodes: Mapping[str, Node] | None = None, extra_nodes: Sequence[str] = (),
                   slots: Mapping[str, int] | None = None, lag: Mapping[str, int] | None = None,
                   link: Mapping[str, bool] | None = None, health: Mapping[str, str] | None = None,
                   maxmemory: int | None = None, pod_memory: int = 0,
                   requested: Mapping[str, int] | None = None, loaded_at: float | None = 900.0,
                   fetched_at: float = 990.0, read_at: float = 1000.0, unmapped: int = 0,
                   drop_live: Sequence[str] = ()) -> Inventory:
    """Build an inventory from tokens. Keys are shard ids of CLUSTER, or "ns/x|shard".

    live=True: a live Redis Cluster with the live roles of the tokens, every replica linked
    and in sync (lag 0), slot counts from `slots`; live="sentinel" for a Sentinel; False none.
    `lag`, `link`, `health` override per pod (short names "c-0-1" or "ns/c-0-1").
    """
    shards: dict[str, dict[str, tuple[Copy, ...]]] = {}
    live_nodes: dict[str, list[LiveNode]] = {}
    table = dict(nodes or {})
    lags, links, healths = _qualify(lag), _qualify(link), _qualify(health)
    for key, tokens in spec.items():
        cluster, _, shard = key.rpartition("|")
        cluster = cluster or CLUSTER
        copies, members = [], []
        for i, token in enumerate(tokens):
            roles, _, node = token.partition("@")
            cached, current = _ROLE[roles[0]], _ROLE[roles[-1]]
            pod = pod_name(cluster, shard, i)
            copies.append(Copy(pod=pod, node=node, role=cached))
            if nodes is None:
                table.setdefault(node, make_node(node))
            members.append((pod, current))
        shards.setdefault(cluster, {})[shard] = tuple(copies)
        master = next((p for p, r in members if r is Role.MASTER), None)
        for pod, role in members:
            if pod in drop_live:
                continue
            is_master = role is Role.MASTER
            span = (slots or {}).get(shard)
            live_nodes.setdefault(cluster, []).append(LiveNode(
                node_id=f"id-{pod}", ip="10.0.0.1", port=6379, role="master" if is_master else "replica",
                health=str(healths.get(pod, "online")), hostname=pod.split("/")[1],
                master_id="" if is_master or master is None else f"id-{master}",
                offset=1000 - int(lags.get(pod, 0)), link_up=None if is_master else bool(links.get(pod, True)),
                slots=((0, span - 1),) if is_master and span else (), pod=pod, maxmemory=maxmemory))
    for name in extra_nodes:
        table.setdefault(name, make_node(name))
    topologies = {}
    if live:
        kind = KIND_SENTINEL if live == "sentinel" else KIND_CLUSTER
        for cluster, members_ in live_nodes.items():
            extra = tuple(LiveNode(f"stray-{k}", "10.9.9.9", 7000 + k, "master") for k in range(unmapped))
            topologies[cluster] = LiveTopology(cluster, kind, fetched_at, "10.0.0.1:6379", tuple(members_) + extra)
    memory = {c.pod: pod_memory for s in shards.values() for cs in s.values() for c in cs}
    return Inventory(levels=LEVELS, nodes=table, shards=shards,
                     requested_memory=dict(requested if requested is not None else {n: Gi for n in table}),
                     pod_memory=memory, live=topologies, loaded_at=loaded_at, read_at=read_at)


def _qualify(values: Mapping[str, Any] | None) -> dict[str, Any]:
    return {(k if "/" in k else f"ns/{k}"): v for k, v in (values or {}).items()}


def report_of(inv: Inventory, max_lag: int = 1 << 20) -> Report:
    return compute(place(inv, max_lag))


BALANCED = {"0": ["M@a1", "R@b1", "R@c1"], "1": ["R@a2", "M@b2", "R@c2"], "2": ["R@a3", "R@b3", "M@c3"]}
PILED = {"0": ["M@a1", "R@b1", "R@c1"], "1": ["RM@a2", "MR@b2", "R@c2"], "2": ["R@a3", "R@b3", "M@c3"]}
