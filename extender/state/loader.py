"""Kubernetes objects (Nodes, Pods) -> store records: what `load` reads from a List and the
syncer (k8s_sync.py) from its lists and watch events."""
from __future__ import annotations

from typing import Any, Mapping

from extender.core.identity import Identifier
from extender.protocol import ProtocolError, node_from_object, pod_requests
from extender.core.quantity import QuantityError
from extender.state.records import NodeRecord, PodRecord
from extender.state.store import RedisStore


class LoadError(ValueError):
    pass


def node_record(obj: Mapping[str, Any]) -> NodeRecord:
    node = node_from_object(obj, ())
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return NodeRecord(name=node.name, labels=dict(labels), memory=node.allocatable_memory,
                      cpu=node.allocatable_cpu, ready=node.ready)


def pod_record(obj: Mapping[str, Any], identifier: Identifier) -> PodRecord:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    namespace, name = meta.get("namespace") or "default", meta.get("name") or ""
    try:
        memory, cpu = pod_requests(spec)
    except (QuantityError, TypeError, AttributeError, ProtocolError):
        memory = cpu = 0
    member = identifier.member(namespace, name, meta.get("labels"))
    return PodRecord(
        namespace=namespace, name=name, uid=str(meta.get("uid") or ""), node=spec.get("nodeName") or "",
        memory=memory, cpu=cpu, phase=(obj.get("status") or {}).get("phase") or "Pending",
        cluster=member.cluster if member else "", shard=(member.shard or "") if member else "",
        role=member.role.value if member else "", ip=(obj.get("status") or {}).get("podIP") or "",
        scheduler=str(spec.get("schedulerName") or ""))


def split_list(document: Any) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Nodes and Pods of a Kubernetes List (what `kubectl get nodes,pods -A -o json` prints)."""
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise LoadError("expected a Kubernetes List: a JSON object with an 'items' array")
    nodes: list[Mapping[str, Any]] = []
    pods: list[Mapping[str, Any]] = []
    for i, item in enumerate(document["items"]):
        kind = item.get("kind") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not (item.get("metadata") or {}).get("name"):
            raise LoadError(f"items[{i}] has no metadata.name")
        if kind == "Node":
            nodes.append(item)
        elif kind == "Pod":
            pods.append(item)
    return nodes, pods


def load_list(store: RedisStore, document: Any, identifier: Identifier, replace: bool = True,
              source: str = "load") -> tuple[int, int]:
    nodes, pods = split_list(document)
    if replace:
        store.clear()
    store.put_nodes(node_record(n) for n in nodes)
    count = store.upsert_pods((pod_record(p, identifier) for p in pods), source=source)
    store.mark_loaded(source, nodes=len(nodes), pods=count)
    if replace or not store.epoch():  # last: the state is whole (a merge keeps the epoch it adds to)
        store.mark_epoch(source, nodes=len(nodes), pods=count)
    return len(nodes), count

