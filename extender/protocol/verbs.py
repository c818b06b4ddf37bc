"""filter, prioritize and bind on the wire: ExtenderArgs with its memos, ExtenderBindingArgs,
and the replies (ExtenderFilterResult, HostPriorityList, ExtenderBindingResult)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Mapping, cast

import orjson

from extender.core import quantity
from extender.core.identity import Identifier
from extender.core.model import Node, PodRequest
from extender.protocol.errors import (MAX_CANDIDATES, MAX_LABEL, MAX_NAME, MAX_UID, ProtocolError, check_name, check_names,
                                      fold, loads)
from extender.protocol.objects import check_node, node_from_object, parse_pod


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
            with self._lock:  # least recently used goes first: the full list stays while survivors churn
                if self._entries.pop(tail, None) is not None:
                    self._entries[tail] = entry
        else:
            self.misses += 1
        return entry

    def expect(self, names: list[str]) -> None:
        """The next call about the same pod (prioritize after filter) names the filter's
        survivors, in the filter's order: keyed by the bytes Go's encoder will send (compared
        when they come, so any other spelling is a plain miss)."""
        self.put(_NAMES_KEY + orjson.dumps(names) + b"}", names)

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
            every = tuple((obj["metadata"]["name"], obj["metadata"]["resourceVersion"]) for obj in items)
            known = self._nodes
            return [known[key] for key in every], every
        except (KeyError, TypeError):
            pass  # a new node or version, or a malformed one: the careful path below
        nodes = []
        keys: list[Any] | None = []
        for i, obj in enumerate(items):
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            version = meta.get("resourceVersion") if isinstance(meta, dict) else None
            name = meta.get("name") if isinstance(meta, dict) else None
            key = (name, version) if isinstance(name, str) and isinstance(version, str) and version else None
            node = self._nodes.get(key) if key else None
            if node is None:
                check_node(obj, i)
                node = node_from_object(obj, self.levels)
                if key:
                    with self._lock:
                        if len(self._nodes) >= self.size:
                            self._nodes.clear()
                        self._nodes[key] = node
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
    body = fold(raw, "request body")
    if known_names is not None:
        if "nodenames" in body or body.get("nodes") is not None:
            raise ProtocolError("unexpected layout")  # not the body the memo describes
        body["nodenames"] = known_names
    pod = body.get("pod")
    if pod is None:
        raise ProtocolError("missing 'Pod': ExtenderArgs must carry the pod being scheduled")
    pod_request = parse_pod(pod, identifier)

    names: Any = body.get("nodenames")
    nodes_list = body.get("nodes")
    if names is None and nodes_list is None:
        raise ProtocolError("missing candidates: one of 'Nodes' or 'NodeNames' must be given")
    full_nodes: list[dict[str, Any]] | None = None
    node_objects: list[Node] | None = None
    nodes_key: tuple[Any, ...] | None = None
    if nodes_list is not None:
        items = fold(nodes_list, "'Nodes'").get("items")
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
                check_node(node, i)
        full_nodes = items
    if names is not None:
        if names is not known_names and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise ProtocolError("'NodeNames' must be a list of strings")
        if names is not known_names:
            given = cast(list[str], names)
            if len(given) > MAX_CANDIDATES:
                raise ProtocolError(f"'NodeNames' has {len(given)} names, over the cap of {MAX_CANDIDATES}")
            check_names(given, "NodeNames")  # Kubernetes' node names: DNS-1123 subdomains
        node_names = list(cast(list[str], names))
    else:
        node_names = [n["metadata"]["name"] for n in full_nodes or []]
    return ExtenderArgs(pod=pod_request, node_names=node_names,
                        nodes=full_nodes, names_mode=names is not None, node_objects=node_objects,
                        nodes_key=nodes_key)


def parse_binding(data: bytes) -> BindingArgs:
    body = fold(loads(data), "request body")
    values = {}
    for key in ("podname", "podnamespace", "poduid", "node"):
        value = body.get(key)
        if not isinstance(value, str) or (key != "poduid" and not value):
            raise ProtocolError(f"ExtenderBindingArgs needs a string '{_CAPS[key]}'")
        if key in ("podname", "podnamespace") and "/" in value:
            raise ProtocolError(f"'{_CAPS[key]}' is not a Kubernetes name: {quantity.prefix(value)}")
        check_name(value, _CAPS[key], {"podnamespace": MAX_LABEL, "poduid": MAX_UID}.get(key, MAX_NAME))
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
