"""The extender wire protocol <-> the model. Pure: bytes in, objects out, bytes back.

Upstream types: k8s.io/kube-scheduler/extender/v1/types.go (ExtenderArgs, ExtenderFilterResult,
HostPriorityList, ExtenderBindingArgs, ExtenderPreemptionArgs/Result with Victims and
MetaVictims). The Go structs have no json tags, so top-level keys
are capitalized field names; Go decodes case-insensitively, so we accept any case and always
send the capitalized form. Lists in replies are never null.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from . import quantity
from .domains import domain_path
from .identity import Identifier
from .model import Node, PodRequest, Victim, VictimSet


class ProtocolError(ValueError):
    """A request the extender cannot read: answered 400 with this message, which names the
    field path and quotes at most a short prefix of the bad value."""


# Kubernetes' own lengths (k8s.io/apimachinery/pkg/util/validation): a DNS-1123 subdomain
# (pod and node names) is at most 253 characters, a DNS-1123 label (namespaces) and a label
# value 63, a qualified label key a 253-character prefix, "/", and a 63-character name.
MAX_NAME = 253
MAX_LABEL = 63
MAX_LABEL_KEY = 253 + 1 + 63
MAX_UID = 128  # a UUID is 36; generous for other UID shapes, still bounded
MAX_CANDIDATES = 20_000
"""Most candidates in one request (NodeNames or Nodes.items). Kubernetes supports clusters of
5,000 nodes; 20,000 leaves room for larger ones while bounding the work of one request."""


def _kind(value: Any) -> str:
    """A JSON type name for messages (never a Python one)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unexpected value"


def _check_name(value: str, field: str, limit: int = MAX_NAME) -> None:
    if len(value) > limit:
        raise ProtocolError(f"'{field}' is longer than {limit} characters: {quantity.prefix(value)}")


def _check_labels(labels: Mapping[str, Any], field: str) -> None:
    for key, value in labels.items():
        if not isinstance(value, str):
            raise ProtocolError(f"'{field}' values must be strings: {quantity.prefix(key)} is {_kind(value)}")
        if len(key) > MAX_LABEL_KEY:
            raise ProtocolError(f"'{field}' has a key longer than {MAX_LABEL_KEY} characters: {quantity.prefix(key)}")
        if len(value) > MAX_LABEL:
            raise ProtocolError(f"'{field}.{key[:40]}{'...' if len(key) > 40 else ''}' is longer than {MAX_LABEL} characters: "
                                f"{quantity.prefix(value)}")


@dataclass
class ExtenderArgs:
    pod: PodRequest
    node_names: list[str]
    nodes: list[dict[str, Any]] | None  # full Node objects (nodeCacheCapable=false), else None
    names_mode: bool  # the request carried NodeNames: reply with NodeNames
    candidates: "CandidateList | None" = None  # shared by requests with the same NodeNames
    node_objects: list[Node] | None = None  # `nodes` read into the model (full Node bodies)
    nodes_key: tuple[Any, ...] | None = None  # names and resourceVersions of `nodes`, when all known


class CandidateList:
    """One NodeNames list, shared by every request that sends the same bytes, with what was
    derived from it: state/snapshot.py keeps the list's rows in the node table here, per
    table generation (opaque to the protocol)."""

    __slots__ = ("names", "derived")

    def __init__(self, names: list[str]):
        self.names = names
        self.derived: tuple[Any, Any] | None = None  # ((node table generation, epoch), rows): one atomic swap


class NamesMemo:
    """kube-scheduler sends the same candidate list for pod after pod while nothing changes:
    5,000 names are ~60 KB whose parsing and hashing cost ~1 ms a call. Keyed by the raw
    bytes of the list (compared, not trusted: a miss parses everything)."""

    def __init__(self, size: int = 8):
        self.size = size
        self._entries: dict[bytes, CandidateList] = {}
        self._lock = threading.Lock()  # gthread workers share one memo between threads
        self.hits = self.misses = 0

    def get(self, tail: bytes) -> CandidateList | None:
        entry = self._entries.get(tail)
        if entry is not None:
            self.hits += 1
        else:
            self.misses += 1
        return entry

    def put(self, tail: bytes, names: list[str]) -> CandidateList:
        entry = CandidateList(names)
        with self._lock:
            while len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[tail] = entry
        return entry


class NodeMemo:
    """Full Node bodies repeat the same nodes call after call: a node already read at the same
    resourceVersion is not validated and converted again (quantities, labels, conditions)."""

    def __init__(self, levels: tuple[str, ...], size: int = 20000):
        self.levels = levels
        self.size = size
        self._nodes: dict[tuple[str, str], Node] = {}
        self._lock = threading.Lock()

    def read(self, items: list[Any]) -> tuple[list[Node], tuple[Any, ...] | None]:
        """The nodes, and a key of the whole body (each node's name and resourceVersion) when
        every node has one, so what is derived from the body can be memoised too."""
        try:  # the common case, every node seen before: two comprehensions, no checks to redo
            keys = tuple((obj["metadata"]["name"], obj["metadata"]["resourceVersion"]) for obj in items)
            known = self._nodes
            return [known[key] for key in keys], keys
        except (KeyError, TypeError):
            pass  # a new node or version, or a malformed one: the careful path below
        nodes = []
        keys: list[Any] | None = []
        for i, obj in enumerate(items):
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            version = meta.get("resourceVersion") if isinstance(meta, dict) else None
            name = meta.get("name") if isinstance(meta, dict) else None
            key = (name, version) if isinstance(name, str) and isinstance(version, str) and version else None
            node = self._nodes.get(key) if key else None  # type: ignore[arg-type]
            if node is None:
                _check_node(obj, i)
                node = node_from_object(obj, self.levels)
                if key:
                    with self._lock:
                        if len(self._nodes) >= self.size:
                            self._nodes.clear()
                        self._nodes[key] = node  # type: ignore[index]
            nodes.append(node)
            if keys is not None:
                if key is None:
                    keys = None
                else:
                    keys.append(key)
        return nodes, tuple(keys) if keys is not None else None


_NAMES_KEY = b'"NodeNames":'


def _names_tail(data: bytes) -> tuple[int, bytes] | None:
    """Where the top-level NodeNames list starts, when it is the body's last member, as Go's
    encoder writes ExtenderArgs (Pod, Nodes, NodeNames)."""
    start = data.rfind(_NAMES_KEY)
    if start < 0 or not data.rstrip().endswith(b"]}"):
        return None
    return start, data[start:]


@dataclass
class BindingArgs:
    pod_name: str
    pod_namespace: str
    pod_uid: str
    node: str


def _fold(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {_kind(body)}")
    return {str(k).lower(): v for k, v in body.items()}


def loads(data: bytes) -> Any:
    if not data:
        raise ProtocolError("empty request body: expected a JSON object")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"malformed JSON: {str(exc)[:120]}") from exc


def parse_extender_args(data: bytes, identifier: Identifier, memo: NamesMemo | None = None,
                        node_memo: NodeMemo | None = None) -> ExtenderArgs:
    found = _names_tail(data) if memo is not None else None
    if found is not None:
        start, tail = found
        entry = memo.get(tail)  # type: ignore[union-attr]
        if entry is not None:
            head = data[:start].rstrip()
            if head.endswith(b","):
                try:
                    args = _parse_body(orjson.loads(head[:-1] + b"}"), identifier, node_memo, entry.names)
                    args.candidates = entry
                    return args
                except (orjson.JSONDecodeError, ProtocolError):
                    pass  # fall through to the full parse, which names the problem
    args = _parse_body(loads(data), identifier, node_memo)
    if found is not None and args.names_mode:
        try:
            same = orjson.loads(b"{" + found[1]) == {"NodeNames": args.node_names}
        except orjson.JSONDecodeError:
            same = False
        if same:
            args.candidates = memo.put(found[1], args.node_names)  # type: ignore[union-attr]
    return args


def _parse_body(raw: Any, identifier: Identifier, node_memo: NodeMemo | None = None,
                known_names: list[str] | None = None) -> ExtenderArgs:
    body = _fold(raw, "request body")
    if known_names is not None:
        if "nodenames" in body or body.get("nodes") is not None:
            raise ProtocolError("unexpected layout")  # not the body the memo describes
        body["nodenames"] = known_names
    pod = body.get("pod")
    if pod is None:
        raise ProtocolError("missing 'Pod': ExtenderArgs must carry the pod being scheduled")
    pod_request = parse_pod(pod, identifier)

    names = body.get("nodenames")
    nodes_list = body.get("nodes")
    if names is None and nodes_list is None:
        raise ProtocolError("missing candidates: one of 'Nodes' or 'NodeNames' must be given")
    full_nodes: list[dict[str, Any]] | None = None
    node_objects: list[Node] | None = None
    nodes_key: tuple[Any, ...] | None = None
    if nodes_list is not None:
        items = _fold(nodes_list, "'Nodes'").get("items")
        if items is None:
            items = []
        if not isinstance(items, list):
            raise ProtocolError("'Nodes.items' must be a list of Node objects")
        if len(items) > MAX_CANDIDATES:
            raise ProtocolError(f"'Nodes.items' has {len(items)} nodes, over the cap of {MAX_CANDIDATES}")
        if node_memo is not None:
            node_objects, nodes_key = node_memo.read(items)
        else:
            for i, node in enumerate(items):
                _check_node(node, i)
        full_nodes = items
    if names is not None:
        if names is not known_names and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise ProtocolError("'NodeNames' must be a list of strings")
        if names is not known_names:
            if len(names) > MAX_CANDIDATES:
                raise ProtocolError(f"'NodeNames' has {len(names)} names, over the cap of {MAX_CANDIDATES}")
            for i, name in enumerate(names):
                if len(name) > MAX_NAME:
                    _check_name(name, f"NodeNames[{i}]")
        node_names = list(names)
    else:
        node_names = [n["metadata"]["name"] for n in full_nodes or []]
    return ExtenderArgs(pod=pod_request, node_names=node_names,
                        nodes=full_nodes, names_mode=names is not None, node_objects=node_objects,
                        nodes_key=nodes_key)


def _check_node(node: Any, i: int) -> None:
    """The shape node_from_object relies on; a wrong type is the sender's error (400)."""
    if not isinstance(node, dict) or not isinstance(node.get("metadata"), dict) \
            or not isinstance(node["metadata"].get("name"), str):
        raise ProtocolError(f"'Nodes.items[{i}]' is not a Node with metadata.name")
    _check_name(node["metadata"]["name"], f"Nodes.items[{i}].metadata.name")
    where = f"'Nodes.items[{i}]'"
    for path, value, kind in (
        ("metadata.labels", node["metadata"].get("labels"), dict),
        ("spec", node.get("spec"), dict),
        ("status", node.get("status"), dict),
        ("status.allocatable", (node.get("status") or {}).get("allocatable") if isinstance(node.get("status"), dict) else None, dict),
        ("status.capacity", (node.get("status") or {}).get("capacity") if isinstance(node.get("status"), dict) else None, dict),
        ("status.conditions", (node.get("status") or {}).get("conditions") if isinstance(node.get("status"), dict) else None, list),
    ):
        if value is not None and not isinstance(value, kind):
            raise ProtocolError(f"{where}.{path} must be {'an object' if kind is dict else 'a list'}")
    labels = node["metadata"].get("labels") or {}
    if not all(isinstance(v, str) for v in labels.values()):
        raise ProtocolError(f"{where}.metadata.labels values must be strings")
    _check_labels(labels, f"Nodes.items[{i}].metadata.labels")
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
    _check_name(name, "Pod.metadata.name")
    _check_name(namespace, "Pod.metadata.namespace", MAX_LABEL)
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ProtocolError("'Pod.metadata.labels' must be an object of strings")
    _check_labels(labels, "Pod.metadata.labels")
    spec = pod.get("spec") or {}
    if not isinstance(spec, dict):
        raise ProtocolError("'Pod.spec' must be an object")
    memory, cpu = pod_requests(spec)
    member = identifier.member(namespace, name, labels)
    uid = meta.get("uid") or ""
    if not isinstance(uid, str):
        raise ProtocolError(f"'Pod.metadata.uid' must be a string, got {_kind(uid)}")
    _check_name(uid, "Pod.metadata.uid", MAX_UID)
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
            raise ProtocolError(f"'{field}' must be an object, got {_kind(requests)}")
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
            raise ProtocolError(f"'{where}.{key}' is a bad resource request: must be an array, got {_kind(listed)}")
        out = []
        for i, container in enumerate(listed):
            field = f"{where}.{key}[{i}]"
            if not isinstance(container, dict):
                raise ProtocolError(f"'{field}' is a bad resource request: must be an object, got {_kind(container)}")
            resources = container.get("resources") or {}
            if not isinstance(resources, dict):
                raise ProtocolError(f"'{field}.resources' is a bad resource request: must be an object, "
                                    f"got {_kind(resources)}")
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


def parse_binding(data: bytes) -> BindingArgs:
    body = _fold(loads(data), "request body")
    values = {}
    for key in ("podname", "podnamespace", "poduid", "node"):
        value = body.get(key)
        if not isinstance(value, str) or (key != "poduid" and not value):
            raise ProtocolError(f"ExtenderBindingArgs needs a string '{_CAPS[key]}'")
        if key in ("podname", "podnamespace") and "/" in value:
            raise ProtocolError(f"'{_CAPS[key]}' is not a Kubernetes name: {quantity.prefix(value)}")
        _check_name(value, _CAPS[key], {"podnamespace": MAX_LABEL, "poduid": MAX_UID}.get(key, MAX_NAME))
        values[key] = value
    return BindingArgs(values["podname"], values["podnamespace"], values["poduid"], values["node"])


_CAPS = {"podname": "PodName", "podnamespace": "PodNamespace", "poduid": "PodUID", "node": "Node"}


def filter_reply(args: ExtenderArgs, accepted: list[str], failed: Mapping[str, str],
                 unresolvable: Mapping[str, str], error: str = "", unresolvable_in_failed: bool = True) -> bytes:
    """ExtenderFilterResult. With `unresolvable_in_failed`, nodes rejected as unresolvable are
    listed in FailedNodes too: kube-scheduler up to v1.20 knows only FailedNodes (so its event
    shows the reason), and newer ones let FailedAndUnresolvableNodes take precedence for a node
    found in both. On 1.21+ it may be turned off to halve large replies."""
    keep = set(accepted)
    nodes = None
    if args.nodes is not None:
        nodes = {"metadata": {}, "items": [n for n in args.nodes if n["metadata"]["name"] in keep]}
    reply = {
        "Nodes": nodes,
        "NodeNames": [n for n in args.node_names if n in keep],
        "FailedNodes": {**failed, **unresolvable} if unresolvable_in_failed else dict(failed),
        "FailedAndUnresolvableNodes": dict(unresolvable),
        "Error": error,
    }
    return orjson.dumps(reply)


def prioritize_reply(node_names: list[str], scores: list[int]) -> bytes:
    """HostPriorityList: a bare array, one entry per candidate, in the candidates' order."""
    if len(scores) != len(node_names):  # an internal inconsistency is an error, never a pass
        raise ValueError(f"{len(scores)} scores for {len(node_names)} hosts")
    return orjson.dumps([{"Host": n, "Score": s} for n, s in zip(node_names, scores)])


def bind_reply(error: str = "") -> bytes:
    return orjson.dumps({"Error": error})


@dataclass
class PreemptionArgs:
    """ExtenderPreemptionArgs: the preemptor and, per candidate node, the victims the
    scheduler chose. `meta` is True when they came as NodeNameToMetaVictims (UIDs only,
    nodeCacheCapable), False for NodeNameToVictims (full pods, whose labels identify them)."""

    pod: PodRequest
    victims: dict[str, VictimSet]
    meta: bool


def parse_preemption_args(data: bytes, identifier: Identifier) -> PreemptionArgs:
    body = _fold(loads(data), "request body")
    pod = body.get("pod")
    if pod is None:
        raise ProtocolError("missing 'Pod': ExtenderPreemptionArgs must carry the preemptor")
    preemptor = parse_pod(pod, identifier)
    # "nodeToVictims": the json tag of the full form in the scheduler's older, tagged copy of
    # these types (pkg/scheduler/api/v1); current ones are untagged ("NodeNameToVictims")
    full = body.get("nodenametovictims", body.get("nodetovictims"))
    meta = body.get("nodenametometavictims")
    if full is None and meta is None:
        raise ProtocolError("missing candidates: one of 'NodeNameToVictims' or 'NodeNameToMetaVictims' must be given")
    field_name = "NodeNameToMetaVictims" if meta is not None else "NodeNameToVictims"
    mapping = meta if meta is not None else full
    if not isinstance(mapping, dict):
        raise ProtocolError(f"'{field_name}' must be an object of node name -> victims")
    victims: dict[str, VictimSet] = {}
    for node, entry in mapping.items():
        where = f"'{field_name}.{node}'"
        if entry is None:  # a nil *Victims: nothing to evict
            victims[node] = VictimSet(node)
            continue
        folded = _fold(entry, where)
        pods = folded.get("pods")
        pods = [] if pods is None else pods
        if not isinstance(pods, list):
            raise ProtocolError(f"{where}.Pods must be a list")
        pdb = folded.get("numpdbviolations") or 0
        if not isinstance(pdb, int) or isinstance(pdb, bool):
            raise ProtocolError(f"{where}.NumPDBViolations must be an integer")
        found = []
        for i, item in enumerate(pods):
            if meta is not None:
                uid = _fold(item, f"{where}.Pods[{i}]").get("uid")
                if not isinstance(uid, str) or not uid:
                    raise ProtocolError(f"{where}.Pods[{i}] needs a string 'UID'")
                found.append(Victim(uid=uid, node=node))
            else:
                victim = parse_pod(item, identifier) if isinstance(item, dict) else None
                if victim is None:
                    raise ProtocolError(f"{where}.Pods[{i}] must be a Pod object")
                if not victim.uid:
                    raise ProtocolError(f"{where}.Pods[{i}] needs metadata.uid")
                found.append(Victim(uid=victim.uid, node=node, pod=victim.key, member=victim.member))
        victims[node] = VictimSet(node, tuple(found), pdb)
    return PreemptionArgs(preemptor, victims, meta is not None)


def preemption_reply(kept: Mapping[str, VictimSet]) -> bytes:
    """ExtenderPreemptionResult: the kept nodes with their victims unchanged, as UIDs (the
    scheduler maps them back to its pods on that node). Pods is never null: the scheduler
    ranges over it."""
    return orjson.dumps({"NodeNameToMetaVictims": {
        node: {"Pods": [{"UID": v.uid} for v in victims.victims], "NumPDBViolations": victims.pdb_violations}
        for node, victims in kept.items()}})
