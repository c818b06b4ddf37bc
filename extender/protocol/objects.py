"""Kubernetes objects in a request (Pods, Nodes) -> the model: identities, requests, domains."""
from __future__ import annotations

from typing import Any, Mapping

from extender.core import quantity
from extender.core.domains import domain_path
from extender.core.identity import Identifier
from extender.core.model import Node, PodRequest
from extender.protocol.errors import MAX_LABEL, MAX_UID, ProtocolError, check_labels, check_name, kind


def check_node(node: Any, i: int) -> None:
    """The shape node_from_object relies on; a wrong type is the sender's error (400)."""
    if not isinstance(node, dict) or not isinstance(node.get("metadata"), dict) \
            or not isinstance(node["metadata"].get("name"), str):
        raise ProtocolError(f"'Nodes.items[{i}]' is not a Node with metadata.name")
    check_name(node["metadata"]["name"], f"Nodes.items[{i}].metadata.name")
    where = f"'Nodes.items[{i}]'"
    for path, value, expected in (
        ("metadata.labels", node["metadata"].get("labels"), dict),
        ("spec", node.get("spec"), dict),
        ("status", node.get("status"), dict),
        ("status.allocatable", (node.get("status") or {}).get("allocatable") if isinstance(node.get("status"), dict) else None, dict),
        ("status.capacity", (node.get("status") or {}).get("capacity") if isinstance(node.get("status"), dict) else None, dict),
        ("status.conditions", (node.get("status") or {}).get("conditions") if isinstance(node.get("status"), dict) else None, list),
    ):
        if value is not None and not isinstance(value, expected):
            raise ProtocolError(f"{where}.{path} must be {'an object' if expected is dict else 'a list'}")
    labels = node["metadata"].get("labels") or {}
    if not all(isinstance(v, str) for v in labels.values()):
        raise ProtocolError(f"{where}.metadata.labels values must be strings")
    check_labels(labels, f"Nodes.items[{i}].metadata.labels")
    for j, condition in enumerate((node.get("status") or {}).get("conditions") or []):
        if not isinstance(condition, dict):
            raise ProtocolError(f"{where}.status.conditions[{j}] must be an object")
    status = node.get("status") or {}
    for field in ("allocatable", "capacity"):
        for key, convert in (("memory", quantity.to_bytes), ("cpu", quantity.to_millicores)):
            value = (status.get(field) or {}).get(key)
            if value is None:
                continue
            try:
                convert(value)
            except quantity.QuantityRange as exc:  # well-formed but beyond int64: the sender's error
                raise ProtocolError(f"'Nodes.items[{i}].status.{field}.{key}' is {exc}") from exc
            except quantity.QuantityError:
                pass  # unreadable: the node's allocatable is unknown (node_from_object, documented)


def parse_pod(pod: Any, identifier: Identifier) -> PodRequest:
    if not isinstance(pod, dict):
        raise ProtocolError(f"'Pod' must be a JSON object, got {type(pod).__name__}")
    meta = pod.get("metadata")
    if not isinstance(meta, dict):
        raise ProtocolError("'Pod.metadata' must be an object")
    name, namespace = meta.get("name"), meta.get("namespace") or "default"
    if not isinstance(name, str) or not name:
        raise ProtocolError("'Pod.metadata.name' must be a non-empty string")
    if not isinstance(namespace, str):
        raise ProtocolError("'Pod.metadata.namespace' must be a string")
    check_name(name, "Pod.metadata.name")
    check_name(namespace, "Pod.metadata.namespace", MAX_LABEL)
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ProtocolError("'Pod.metadata.labels' must be an object of strings")
    check_labels(labels, "Pod.metadata.labels")
    spec = pod.get("spec") or {}
    if not isinstance(spec, dict):
        raise ProtocolError("'Pod.spec' must be an object")
    memory, cpu = pod_requests(spec)
    member = identifier.member(namespace, name, labels)
    uid = meta.get("uid") or ""
    if not isinstance(uid, str):
        raise ProtocolError(f"'Pod.metadata.uid' must be a string, got {kind(uid)}")
    check_name(uid, "Pod.metadata.uid", MAX_UID)
    status = pod.get("status")
    nominated = status.get("nominatedNodeName") if isinstance(status, dict) else None
    return PodRequest(namespace=namespace, name=name, uid=str(uid), member=member,
                      memory_request=memory, cpu_request=cpu,
                      nominated_node=nominated if isinstance(nominated, str) else "")


def pod_requests(spec: Mapping[str, Any], where: str = "Pod.spec") -> tuple[int, int]:
    """Effective (memory bytes, CPU millicores) as the scheduler computes it:
    max(sum of containers, largest init container) + pod overhead. A wrong shape or a bad
    quantity is a ProtocolError naming its path; the total stays within int64."""
    def amounts(requests: Any, field: str) -> tuple[int, int]:
        if requests is None:
            return 0, 0
        if not isinstance(requests, dict):
            raise ProtocolError(f"'{field}' must be an object, got {kind(requests)}")
        values = []
        for key, convert in (("memory", quantity.to_bytes), ("cpu", quantity.to_millicores)):
            if key not in requests:
                values.append(0)
                continue
            try:
                values.append(convert(requests[key]))
            except quantity.QuantityError as exc:
                raise ProtocolError(f"'{field}.{key}' is a bad resource request: {exc}") from exc
        return values[0], values[1]

    def containers(key: str) -> list[tuple[int, int]]:
        listed = spec.get(key) or []
        if not isinstance(listed, list):
            raise ProtocolError(f"'{where}.{key}' is a bad resource request: must be an array, got {kind(listed)}")
        out = []
        for i, container in enumerate(listed):
            field = f"{where}.{key}[{i}]"
            if not isinstance(container, dict):
                raise ProtocolError(f"'{field}' is a bad resource request: must be an object, got {kind(container)}")
            resources = container.get("resources") or {}
            if not isinstance(resources, dict):
                raise ProtocolError(f"'{field}.resources' is a bad resource request: must be an object, "
                                    f"got {kind(resources)}")
            out.append(amounts(resources.get("requests"), f"{field}.resources.requests"))
        return out

    mem = cpu = 0
    for m, c in containers("containers"):
        mem, cpu = mem + m, cpu + c
    for m, c in containers("initContainers"):
        mem, cpu = max(mem, m), max(cpu, c)
    m, c = amounts(spec.get("overhead"), f"{where}.overhead")
    mem, cpu = mem + m, cpu + c
    if abs(mem) > quantity.INT64_MAX or abs(cpu) > quantity.INT64_MAX:
        raise ProtocolError(f"'{where}' is a bad resource request: the pod's total request exceeds int64")
    return mem, cpu


def node_from_object(obj: Mapping[str, Any], levels: tuple[str, ...]) -> Node:
    """A Node from its API object (domains, allocatable, readiness); requests come from the store."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    ready = True
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            ready = condition.get("status") == "True"
    try:
        memory = quantity.to_bytes(allocatable["memory"]) if "memory" in allocatable else None
        cpu = quantity.to_millicores(allocatable["cpu"]) if "cpu" in allocatable else None
    except quantity.QuantityError:  # unreadable: the node's allocatable is unknown (documented)
        memory = cpu = None
    name = meta.get("name", "")
    return Node(name=name, domains=domain_path(name, meta.get("labels"), levels),
                allocatable_memory=memory, allocatable_cpu=cpu,
                ready=ready and not spec.get("unschedulable", False))
