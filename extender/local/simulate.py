"""Synthetic clusters as a Kubernetes List, for demos, tests and the benchmark.

Nodes are spread round-robin over zones (and regions, racks); every Redis cluster has
`shards` shards of 1 + `replicas` copies, labelled with the default convention. A fraction of
the copies is already placed (spread over zones as a careful operator would; a shard's master,
ordinal 0, first, as a StatefulSet starts its pods), the rest is Pending; filler pods of other apps use some of every node.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

LABEL = "redis-extender.io"


@dataclass(frozen=True)
class Shape:
    nodes: int = 30
    zones: int = 3
    regions: int = 1
    racks_per_zone: int = 0
    clusters: int = 2
    shards: int = 4
    replicas: int = 2
    placed: float = 0.5
    filler_per_node: int = 2
    node_memory_gi: int = 32
    node_cpu: int = 8
    pod_memory_mi: int = 1024
    pod_cpu_m: int = 500
    namespace: str = "redis"
    seed: int = 1


def zone_name(i: int) -> str:
    return "zone-" + (string.ascii_lowercase[i] if i < 26 else str(i))


def make_node(name: str, zone: str | None, region: str | None, rack: str | None,
              memory_gi: int, cpu: int) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    if region:
        labels["topology.kubernetes.io/region"] = region
    if rack:
        labels["topology.kubernetes.io/rack"] = rack
    size = {"cpu": str(cpu), "memory": f"{memory_gi}Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels, "resourceVersion": "1"},  # as the API serves it
            "spec": {}, "status": {"capacity": dict(size), "allocatable": dict(size),
                                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


def make_pod(namespace: str, name: str, labels: dict[str, str], memory: str, cpu: str,
             node: str | None = None, uid: str | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "uid": uid or f"uid-{namespace}-{name}"},
        "spec": {"containers": [{"name": "redis", "image": "redis:7",
                                 "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        "status": {"phase": "Running" if node else "Pending"},
    }
    if node:
        pod["spec"]["nodeName"] = node
    return pod


def redis_labels(cluster: str, shard: int, role: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "redis", f"{LABEL}/cluster": cluster,
            f"{LABEL}/shard": str(shard), f"{LABEL}/role": role}


def _created(index: int) -> str:
    """A creationTimestamp in the order the items are made (kube-scheduler's queue order)."""
    return f"2026-01-01T{index // 3600 % 24:02d}:{index // 60 % 60:02d}:{index % 60:02d}Z"


def generate(shape: Shape) -> dict[str, Any]:
    rnd = random.Random(shape.seed)
    zones = [zone_name(z) for z in range(max(1, shape.zones))]
    items: list[dict[str, Any]] = []
    by_zone: dict[str, list[str]] = {z: [] for z in zones}
    for i in range(shape.nodes):
        zone = zones[i % len(zones)]
        region = f"region-{(zones.index(zone) % max(1, shape.regions)) + 1}"
        rack = f"{zone}-rack-{(i // len(zones)) % shape.racks_per_zone}" if shape.racks_per_zone else None
        name = f"node-{i:04d}"
        items.append(make_node(name, zone, region, rack, shape.node_memory_gi, shape.node_cpu))
        by_zone[zone].append(name)
    for i in range(shape.nodes):
        for f in range(shape.filler_per_node):
            items.append(make_pod("apps", f"web-{i:04d}-{f}", {"app": "web"}, "2Gi", "500m",
                                  node=f"node-{i:04d}"))
    memory, cpu = f"{shape.pod_memory_mi}Mi", f"{shape.pod_cpu_m}m"
    for c in range(shape.clusters):
        cluster = f"cache-{c}"
        for s in range(shape.shards):
            first_zone = (c + s) % len(zones)  # masters round-robin over the zones
            copies = 1 + shape.replicas
            # as a StatefulSet starts them: ordinal 0 (the master) first, so a shard with any
            # copy placed has its master placed and the report knows its role
            placed = sum(1 for _ in range(copies) if rnd.random() < shape.placed)
            for k in range(copies):
                role = "master" if k == 0 else "replica"
                node = None
                if k < placed:
                    zone = zones[(first_zone + k) % len(zones)]
                    node = rnd.choice(by_zone[zone]) if by_zone[zone] else None
                name = f"{cluster}-shard{s}-{k}"
                pod = make_pod(shape.namespace, name, redis_labels(cluster, s, role), memory, cpu, node)
                pod["metadata"]["creationTimestamp"] = _created(len(items))
                items.append(pod)
    return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}
