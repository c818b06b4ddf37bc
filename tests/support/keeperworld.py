"""One Redis Cluster as a user runs it, for the keeper's end-to-end tests: a StatefulSet of
6 shards x 3 pods (ordinal rule: shard = ordinal % 6, ordinals < 6 masters) on 3 zones x 3
nodes, its pods scheduled by the real kube-scheduler through the live extender, made Running
and Ready by the node agent (a real redis-server per pod on its own loopback address), formed
into a real Redis Cluster, with a writer keeping count of acknowledged writes.

Needs the `controller_manager` fixture (the StatefulSet controller creates the pods).
"""
from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from extender.local.processes import free_port
from extender.state.store import RedisStore
from benchmarks.bench_scheduler import _ensure_namespace
from harness.controlplane import ApiError, ControlPlane, scheduler_config

from .nodeagent import NodeAgent
from .podcluster import Operator, Writer, form, roles, wait_for
from .serving import Served, live_extender

NAMESPACE = "keeper"
SCHEDULER = "redis-scheduler"
ZONE = "topology.kubernetes.io/zone"
CLUSTER_LABEL = "redis-extender.io/cluster"
SHARDS, COPIES = 6, 3


@dataclass
class World:
    cp: ControlPlane
    extender: Served
    store: RedisStore
    agent: NodeAgent
    name: str  # the StatefulSet, also the Redis cluster's name
    zone_of: dict[str, str]
    pods: list[str] = field(default_factory=list)
    writer: Writer | None = None
    operator: Operator | None = None
    replicas: list[Served] = field(default_factory=list)

    @property
    def cluster(self) -> str:
        return f"{NAMESPACE}/{self.name}"

    def pod_objects(self) -> list[dict[str, Any]]:
        return self.cp.list_pods(NAMESPACE, f"app={self.name}")

    def node_of(self) -> dict[str, str]:
        return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in self.pod_objects()}

    def roles(self) -> dict[str, str]:
        return roles(self.agent, self.pods)

    def masters_per_zone(self) -> dict[str, int]:
        """Zone -> masters of the cluster, from the servers' own ROLE (all zones listed)."""
        node_of = self.node_of()
        counts = Counter(self.zone_of[node_of[p]] for p, r in self.roles().items() if r == "master")
        return {z: counts.get(z, 0) for z in sorted(set(self.zone_of.values()))}

    def shards_sharing(self) -> tuple[int, int]:
        """(shards with two copies on one node, shards with two copies in one zone); a shard
        with a copy not bound yet (evicted, recreated, pending) counts in both: not repaired."""
        node_of = self.node_of()
        if not all(node_of.values()):
            pending = {int(p.rsplit("-", 1)[1]) % SHARDS for p, n in node_of.items() if not n}
            return len(pending), len(pending)
        by_shard: dict[int, list[str]] = {}
        for pod, node in node_of.items():
            by_shard.setdefault(int(pod.rsplit("-", 1)[1]) % SHARDS, []).append(node)
        nodes = sum(1 for ns in by_shard.values() if len(set(ns)) < len(ns))
        zones = sum(1 for ns in by_shard.values() if len({self.zone_of[n] for n in ns}) < len(ns))
        return nodes, zones


def statefulset(name: str, replicas: int = SHARDS * COPIES, scheduler: str = SCHEDULER,
                extra_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": name, CLUSTER_LABEL: name, "redis-extender.io/shards": str(SHARDS), **(extra_labels or {})}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "serviceName": name, "replicas": replicas, "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"schedulerName": scheduler, "terminationGracePeriodSeconds": 5,
                         "containers": [{"name": "redis", "image": "redis:7",
                                         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            },
        },
    }


def make_nodes(cp: ControlPlane, tag: str, zones: int = 3, per_zone: int = 3,
               made: list[str] | None = None) -> dict[str, str]:
    """Nodes <tag>-z<zone>-n<i>, each named into `made` as soon as it exists (for cleanup)."""
    zone_of = {}
    for z in range(zones):
        for i in range(per_zone):
            name = f"{tag}-z{z}-n{i}"
            cp.create_node(name, {ZONE: f"zone-{z}", "topology.kubernetes.io/region": "region-1"},
                           cpu="16", memory="32Gi")
            if made is not None:
                made.append(name)
            zone_of[name] = f"zone-{z}"
    return zone_of


@contextlib.contextmanager
def keeper_world(cp: ControlPlane, redis_url: str, log_dir: Path, env: Mapping[str, str] | None = None,
                 scheduler: str = SCHEDULER, form_cluster: bool = True,
                 extra_labels: Mapping[str, str] | None = None,
                 bind: Mapping[int, tuple[int, int]] | None = None, replicas: int = 1,
                 node_timeout_ms: int = 2000) -> Iterator[World]:
    """Nodes, live extender (+ `env`; `replicas` of it), kube-scheduler, node agent,
    StatefulSet, the formed cluster; torn down in reverse. With `bind` (ordinal -> (zone,
    node index)) the StatefulSet's pods are bound there by hand before kube-scheduler starts:
    a placement the extender never saw (as by another scheduler, or before it was installed);
    the pods it recreates later are scheduled through the extender."""
    _ensure_namespace(cp, NAMESPACE)
    tag = f"kp{os.getpid() % 1000}x{free_port() % 1000}"
    name = f"cache-{tag}"
    zone_of = make_nodes(cp, tag)
    prefix = f"rxkeeper:{{{tag}}}:"
    env = {"REDIS_EXTENDER_LIVE_REFRESH": "1", **(env or {})}
    try:
        with live_extender(cp, redis_url, prefix, log_dir, NAMESPACE, extra_env=env) as (extender, store):
            more = [Served(extender.env, ["--workers", "1", "--kubeconfig", str(cp.kubeconfig)], ready_path="/readyz",
                           log_dir=log_dir) for _ in range(replicas - 1)]
            if not bind:
                cp.start_scheduler(scheduler_config(SCHEDULER, extender.port))
            agent = NodeAgent(cp, set(zone_of), NAMESPACE, node_timeout_ms=node_timeout_ms).start()
            world = World(cp, extender, store, agent, name, zone_of)
            world.replicas = [extender, *more]
            try:
                cp.request("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets",
                           statefulset(name, scheduler=scheduler, extra_labels=extra_labels))
                world.pods = [f"{name}-{i}" for i in range(SHARDS * COPIES)]
                if bind:
                    _bind_by_hand(cp, world, tag, bind)
                    cp.start_scheduler(scheduler_config(SCHEDULER, extender.port))
                wait_for(lambda: len([p for p in world.pod_objects() if _ready(p)]) == len(world.pods),
                         timeout=120, what="every pod Running and Ready")
                if form_cluster:
                    form(agent, world.pods, SHARDS)
                yield world
            finally:
                if world.writer is not None:
                    world.writer.stop()
                if world.operator is not None:
                    world.operator.stop()
                with contextlib.suppress(ApiError):
                    cp.request("DELETE", f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/{name}",
                               {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
                with contextlib.suppress(AssertionError):
                    wait_for(lambda: not world.pod_objects(), timeout=60, what="pods gone")
                agent.stop()
                cp.stop_scheduler()
                for served in more:
                    served.stop()
    finally:
        for node in zone_of:
            cp.delete(f"/api/v1/nodes/{node}")


def _bind_by_hand(cp: ControlPlane, world: World, tag: str, bind: Mapping[int, tuple[int, int]]) -> None:
    wait_for(lambda: len(world.pod_objects()) == len(world.pods), timeout=60, what="the StatefulSet's pods")
    for ordinal, (zone, index) in bind.items():
        name = f"{world.name}-{ordinal}"
        cp.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": f"{tag}-z{zone}-n{index}"}})


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def keeper_events(cp: ControlPlane) -> list[dict[str, str]]:
    """The keeper's Events in the namespace (reason, pod, message), oldest first."""
    items = cp.request("GET", f"/api/v1/namespaces/{NAMESPACE}/events")["items"]
    mine = [e for e in items if (e.get("source") or {}).get("component") == "redis-extender-keeper"
            or e.get("reportingComponent") == "redis-extender-keeper"]
    mine.sort(key=lambda e: e.get("firstTimestamp") or e["metadata"].get("creationTimestamp") or "")
    return [{"reason": e["reason"], "pod": e["involvedObject"]["name"], "message": e.get("message", "")}
            for e in mine]


def keeper_state(world: World) -> dict[str, Any]:
    """The keeper's stored memory and last decision for the world's cluster ({} before any)."""
    import orjson

    raw = world.store.keeper([world.cluster]).get(world.cluster)
    return orjson.loads(raw) if raw else {}


def balanced(counts: Mapping[str, int]) -> bool:
    """Masters one apart at most, and (three zones or more) no zone with half of them or more."""
    values = list(counts.values())
    if not values:
        return False
    total = sum(values)
    return max(values) - min(values) <= 1 and (len(values) < 3 or max(values) < -(-total // 2))
