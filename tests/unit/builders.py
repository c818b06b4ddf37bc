"""Small builders of model objects for the pure-policy unit tests.

Everything here is plain data: no Redis, no HTTP. Memory is in bytes, CPU in millicores,
as in extender.core.model.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from extender.core.model import ClusterCounts, Copy, Member, Node, PodRequest, Role, Snapshot
from extender.core.settings import DEFAULT_LEVELS, Settings

HOSTNAME, ZONE, REGION = DEFAULT_LEVELS
LEVELS = DEFAULT_LEVELS
Gi = 2**30
Mi = 2**20

_UNSET = object()


def make_node(name: str, zone: str | None = None, region: str | None = None, *,
              memory: int | None = 16 * Gi, cpu: int | None = 8000, ready: bool = True,
              extra: Iterable[str | None] = ()) -> Node:
    """A node with the default levels (hostname, zone, region); None is an unknown domain.

    `extra` appends values for additional levels (use with make_snapshot(levels=...)).
    """
    return Node(name=name, domains=(name, zone, region, *extra), allocatable_memory=memory,
                allocatable_cpu=cpu, ready=ready)


def make_copy(pod: str, node: str, role: Role | str = Role.REPLICA, namespace: str = "ns") -> Copy:
    """A placed copy of the shard; `pod` may be a bare name (namespace added) or ns/name."""
    key = pod if "/" in pod else f"{namespace}/{pod}"
    return Copy(pod=key, node=node, role=Role(role))


def make_snapshot(nodes: Iterable[Node], copies: Iterable[Copy] = (), *,
                  levels: tuple[str, ...] = LEVELS,
                  pods_per_node: Mapping[str, int] | None = None,
                  masters_per_node: Mapping[str, int] | None = None,
                  reserved: Iterable[Copy] = (),
                  requested_memory: Mapping[str, int] | None = None,
                  requested_cpu: Mapping[str, int] | None = None,
                  level_domains: tuple[frozenset[str], ...] | None = None) -> Snapshot:
    """A Snapshot whose level_domains are computed from the nodes, as the node table does."""
    table = {n.name: n for n in nodes}
    if level_domains is None:
        level_domains = tuple(
            frozenset(n.domains[i] for n in table.values() if i < len(n.domains) and n.domains[i] is not None)
            for i in range(len(levels)))
    return Snapshot(
        level_names=levels, nodes=table, copies=tuple(copies),
        cluster=ClusterCounts(pods_per_node=dict(pods_per_node or {}),
                              masters_per_node=dict(masters_per_node or {}),
                              reserved=tuple(reserved)),
        level_domains=level_domains,
        requested_memory=dict(requested_memory or {}), requested_cpu=dict(requested_cpu or {}))


def make_pod(name: str = "cache-a-1", *, namespace: str = "ns", cluster: str | None = "cache-a",
             shard: str | None = "3", role: Role | str = Role.REPLICA, memory: int = 0, cpu: int = 0,
             member: object = _UNSET) -> PodRequest:
    """A pod being scheduled. cluster=None makes a non-Redis pod (member None)."""
    if member is _UNSET:
        member = None if cluster is None else Member(cluster=f"{namespace}/{cluster}", shard=shard, role=Role(role))
    return PodRequest(namespace=namespace, name=name, uid=f"uid-{name}", member=member,  # type: ignore[arg-type]
                      memory_request=memory, cpu_request=cpu)


def make_settings(**score: object) -> Settings:
    """Default settings, with score weights overridden (shard=, cluster=, masters=, headroom=)."""
    from dataclasses import replace

    base = Settings()
    return replace(base, score=replace(base.score, **score))
