"""One decision: protocol arguments + cached state -> Snapshot -> the pure policy.

This is the seam between I/O and the core: everything above it is HTTP, everything below it
is a dictionary lookup. A pod that is not a Redis pod never touches Redis.
"""
from __future__ import annotations

import logging
from collections import ChainMap
from itertools import repeat
from dataclasses import dataclass
import threading
from typing import Any, Callable

import numpy as np
import orjson
import redis

from ..identity import Identifier
from ..model import Member, Node, PodRequest, Role, Snapshot
from ..policy.bindcheck import recheck
from ..policy.candidates import NodeArrays, UsageArrays
from ..policy.filter import FilterResult, Outcome, filter_nodes
from ..policy.score import NEUTRAL_SCORE, score_list
from ..protocol import ExtenderArgs, node_from_object
from ..settings import Settings
from ..state.cache import NodeTable, StateCache, StateUnavailable
from ..state.redis_store import PodRecord, RecordResult
from . import metrics

Binder = Callable[[str, str, str, str], None]
"""(namespace, name, uid, node) -> None; creates the Binding in the API (raises on failure)."""

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    snapshot: Snapshot
    own_node: str | None
    version: str


class Decider:
    def __init__(self, settings: Settings, cache: StateCache, identifier: Identifier):
        self.settings = settings
        self.cache = cache
        self.identifier = identifier
        self.levels = settings.domains.levels
        self.fail_open = settings.store.on_unavailable == "fail-open"
        self._bodies: dict[Any, BodyView] = {}
        self._bodies_lock = threading.Lock()

    def prepare(self, args: ExtenderArgs, fresh: bool = False, counts: bool = True) -> Prepared:
        """Build the snapshot; raises StateUnavailable when Redis and the cache both fail.
        `fresh` reads the shard and usage from Redis itself (bind), not from the TTL cache."""
        member = args.pod.member
        assert member is not None
        table = self.cache.node_table()
        rows = None
        if args.nodes is None:
            rows = self._rows(args, table)
            if (rows < 0).any():  # a node added since the last check?
                table = self.cache.node_table(revalidate=True)
                rows = self._rows(args, table)
        if fresh:  # bind re-checks the spread rules only (room was judged): no usage read
            usage: tuple[dict[str, int], dict[str, int]] = ({}, {})
            shard = self.cache.store.shard_state(member.cluster, member.shard, counts=False)
        else:
            usage = self.cache.usage()
            shard = self.cache.shard(member.cluster, member.shard, counts)
        mem, cpu = usage
        nodes: ChainMap[str, Node] | dict[str, Node] = table.nodes
        level_domains = table.level_domains
        arrays = usage_arrays = None
        if args.nodes is None and not fresh:  # (bind asks about one node: no arrays needed)
            arrays, usage_arrays = table.arrays, self.cache.usage_arrays(table, usage)
        elif args.nodes is not None:  # full Node objects: fresher than the cache for candidates
            view = self._body_view(args, table)
            nodes, level_domains = ChainMap(view.body, table.nodes), view.level_domains
            if not fresh:
                arrays, usage_arrays = view.arrays, view.usage(usage)
                rows = view.rows
        own_node = next((c.node for c in shard.copies if c.pod == args.pod.key and not c.reserved), None)
        snapshot = Snapshot(level_names=self.levels, nodes=nodes, copies=shard.copies,
                            cluster=shard.counts, level_domains=level_domains,
                            requested_memory=mem, requested_cpu=cpu, arrays=arrays, usage_arrays=usage_arrays,
                            candidate_rows=rows if arrays is not None else None)
        return Prepared(snapshot, own_node, shard.version)

    def _body_view(self, args: ExtenderArgs, table: NodeTable) -> "BodyView":
        """What full Node bodies give, built once per body (the scheduler resends the same
        nodes pod after pod) and per node-table generation."""
        key = (args.nodes_key, table.generation) if args.nodes_key is not None else None
        with self._bodies_lock:
            found = self._bodies.get(key) if key is not None else None
        if found is not None:
            return found
        objects = args.node_objects or [node_from_object(n, self.levels) for n in args.nodes or []]
        view = BodyView.build(objects, args.node_names, table, len(self.levels))
        if key is not None:
            with self._bodies_lock:
                while len(self._bodies) >= 4:
                    self._bodies.pop(next(iter(self._bodies)))
                self._bodies[key] = view
        return view

    @staticmethod
    def _rows(args: ExtenderArgs, table: NodeTable) -> np.ndarray:
        """The candidates' rows in the node table, shared by requests with the same list."""
        entry = args.candidates
        derived = entry.derived if entry is not None else None
        if derived is not None and derived[0] == table.generation:
            return derived[1]
        index = table.arrays.index
        rows = np.fromiter(map(index.get, args.node_names, repeat(-1)), dtype=np.int64, count=len(args.node_names))
        if entry is not None:
            entry.derived = (table.generation, rows)
        return rows

    def filter(self, args: ExtenderArgs) -> tuple[FilterResult, str]:
        """The verdicts, and an Error text ("" when fine) for the reply."""
        if args.pod.member is None:
            return filter_nodes(args.pod, args.node_names, _EMPTY), ""
        try:
            with metrics.PHASE.labels("state").time():
                prepared = self.prepare(args, counts=False)  # filter spreads copies; counts only score
        except StateUnavailable as exc:
            if self.fail_open:
                log.warning("filter %s: %s; failing open (all nodes accepted)", args.pod.key, exc)
                return FilterResult(accepted=list(args.node_names), outcome=Outcome.PASSTHROUGH), ""
            log.error("filter %s: %s; failing closed", args.pod.key, exc)
            return FilterResult(accepted=[], outcome=Outcome.NO_FIT), f"redis-extender: placement state unavailable: {exc}"
        with metrics.PHASE.labels("policy").time():
            result = filter_nodes(args.pod, args.node_names, prepared.snapshot, prepared.own_node)
        with metrics.PHASE.labels("record").time():
            self._remember(args.pod, result)
            if len(result.accepted) == 1:  # the scheduler skips prioritize: this is its choice
                self._reserve(args.pod, result.accepted[0])
        if result.unknown_domain_nodes:
            log.info("filter %s: %d candidate(s) with an unknown failure domain",
                     args.pod.key, result.unknown_domain_nodes)
        return result, ""

    def prioritize(self, args: ExtenderArgs) -> list[int]:
        """Scores in the order of args.node_names."""
        if args.pod.member is None:
            return [NEUTRAL_SCORE] * len(args.node_names)
        try:
            with metrics.PHASE.labels("state").time():
                prepared = self.prepare(args)
        except StateUnavailable as exc:
            log.warning("prioritize %s: %s; neutral scores", args.pod.key, exc)
            return [NEUTRAL_SCORE] * len(args.node_names)
        with metrics.PHASE.labels("policy").time():
            scores = score_list(args.pod, args.node_names, prepared.snapshot, self.settings, prepared.own_node)
        if scores:
            with metrics.PHASE.labels("record").time():
                self._reserve(args.pod, args.node_names[int(np.argmax(scores))])
        return scores

    def _reserve(self, pod: PodRequest, node: str) -> None:
        member = pod.member
        ttl = self.settings.store.reservation_ttl
        if member is None or member.shard is None or ttl <= 0 or self.cache.redis_down:
            return
        try:
            self.cache.store.reserve(pod.key, member.cluster, member.shard, node, member.role.value, ttl)
        except redis.RedisError as exc:
            self.cache.note_failure()  # the next calls skip Redis instead of waiting on it
            log.debug("cannot reserve %s for %s: %s", node, pod.key, exc)

    def _remember(self, pod: PodRequest, result: FilterResult) -> None:
        """Keep what this filter saw for the bind-time re-check (best effort: a bind without it
        still checks the node rule atomically)."""
        member = pod.member
        if member is None or member.shard is None or self.cache.redis_down:
            return
        memory = FilterMemory(member.cluster, member.shard, member.role.value, pod.uid,
                              pod.memory_request, pod.cpu_request,
                              result.eligible_paths)
        try:
            self.cache.store.remember_filter(pod.key, memory.encode())
        except redis.RedisError as exc:
            self.cache.note_failure()
            log.debug("cannot remember the filter of %s: %s", pod.key, exc)

    def bind(self, namespace: str, name: str, uid: str, node: str, binder: Binder | None) -> str:
        """Re-check, record atomically, then create the Binding. Returns an Error text or ""."""
        if self.cache.redis_down:  # never wait on a Redis that just failed: the scheduler retries
            return f"redis-extender: cannot record the placement of {namespace}/{name}: Redis unavailable"
        try:
            pod, memory = self._bound_pod(namespace, name, uid)
            if pod is not None:
                error = self._check_and_record(pod, node, memory)
                if error:
                    return error
        except (redis.RedisError, StateUnavailable) as exc:
            self.cache.note_failure()
            return f"redis-extender: cannot record the placement of {namespace}/{name}: {exc}"
        if binder is None:
            return ""
        try:
            binder(namespace, name, uid, node)
        except Exception as exc:  # the API said no: undo the record; the scheduler retries
            log.warning("binding %s/%s to %s failed: %s", namespace, name, node, exc)
            if pod is not None:
                self._unrecord(pod, node)
            return f"redis-extender: binding {namespace}/{name} to {node} failed: {exc}"
        return ""

    def _bound_pod(self, namespace: str, name: str, uid: str) -> tuple[PodRequest | None, FilterMemory | None]:
        """The pod's identity: from the store (sync/load), else from its filter's memory."""
        key = f"{namespace}/{name}"
        raw = self.cache.store.filter_memory(key)
        memory = FilterMemory.decode(raw) if raw else None
        stored = self.cache.store.pod(namespace, name)
        if stored and stored.get("cluster"):
            member = Member(stored["cluster"], stored.get("shard") or None, _role(stored.get("role")))
            return PodRequest(namespace, name, uid or stored.get("uid", ""), member,
                              int(stored.get("mem") or 0), int(stored.get("cpu") or 0)), memory
        if memory is not None:
            member = Member(memory.cluster, memory.shard, _role(memory.role))
            return PodRequest(namespace, name, uid or memory.uid, member, memory.memory, memory.cpu), memory
        return None, None

    def _check_and_record(self, pod: PodRequest, node: str, memory: FilterMemory | None,
                          attempts: int = 3) -> str:
        assert pod.member is not None
        for _ in range(attempts):
            version = ""
            if memory is not None and pod.member.shard is not None:
                args = ExtenderArgs(pod=pod, node_names=[node], nodes=None, names_mode=True)
                prepared = self.prepare(args, fresh=True)
                reason = recheck(pod, node, memory.paths, prepared.snapshot, prepared.own_node)
                if reason:
                    metrics.PLACEMENTS.labels("recheck_refused").inc()
                    return f"redis-extender: {reason}; retry scheduling"
                version = prepared.version
            result = self.record(pod, node, version)
            metrics.PLACEMENTS.labels(result.status).inc()
            if result.ok:
                return ""
            if result.status == "conflict":
                other, _, role = result.detail.partition("\t")
                return (f"redis-extender: {node} already holds shard {pod.member.shard} of "
                        f"{pod.member.cluster_name} ({other.split('/', 1)[-1]}, {role}); retry scheduling")
            # stale: a sibling was recorded between our read and our write; look again
        return f"redis-extender: shard {pod.member.shard} of {pod.member.cluster_name} kept changing; retry scheduling"

    def record(self, pod: PodRequest, node: str, expect_version: str = "") -> RecordResult:
        """Atomic check-and-record of a placement; invalidates this process's cached shard."""
        try:
            return self.cache.store.record_placement(_record(pod, node), expect_version)
        finally:
            if pod.member:
                self.cache.invalidate_shard(pod.member.cluster, pod.member.shard)

    def _unrecord(self, pod: PodRequest, node: str) -> None:
        try:
            stored = self.cache.store.pod(pod.namespace, pod.name)
            if stored and stored.get("node") == node and stored.get("source") == "placement":
                self.cache.store.upsert_pod(_record(pod, ""), source="unbind")
        except redis.RedisError as exc:  # the watch will report the truth and fix it
            log.warning("cannot undo the record of %s: %s", pod.key, exc)
        finally:
            if pod.member:
                self.cache.invalidate_shard(pod.member.cluster, pod.member.shard)


@dataclass
class BodyView:
    """The nodes of a full-Node request as the policy's arrays, with their usage per read."""

    body: dict[str, Node]
    arrays: NodeArrays
    rows: np.ndarray
    level_domains: tuple[frozenset[str], ...]
    _usage: tuple[Any, UsageArrays] | None = None

    @classmethod
    def build(cls, objects: list[Node], names: list[str], table: NodeTable, levels: int) -> "BodyView":
        body = {n.name: n for n in objects}
        arrays = NodeArrays.build(body, levels)
        rows = np.fromiter(map(arrays.index.get, names, repeat(-1)), dtype=np.int64, count=len(names))
        domains = tuple(known | {n.domains[i] for n in objects if n.domains[i] is not None}
                        for i, known in enumerate(table.level_domains))
        return cls(body, arrays, rows, domains)

    def usage(self, usage: tuple[dict[str, int], dict[str, int]]) -> UsageArrays:
        built = self._usage
        if built is None or built[0] is not usage:
            built = self._usage = (usage, UsageArrays.build(self.arrays, *usage))
        return built[1]


@dataclass(frozen=True)
class FilterMemory:
    cluster: str
    shard: str
    role: str
    uid: str
    memory: int
    cpu: int
    paths: list[tuple[str | None, ...]]

    def encode(self) -> bytes:
        return orjson.dumps({"cluster": self.cluster, "shard": self.shard, "role": self.role, "uid": self.uid,
                             "mem": self.memory, "cpu": self.cpu, "paths": self.paths})

    @classmethod
    def decode(cls, raw: bytes) -> "FilterMemory":
        v = orjson.loads(raw)
        return cls(v["cluster"], v["shard"], v["role"], v.get("uid", ""), int(v.get("mem", 0)),
                   int(v.get("cpu", 0)), [tuple(p) for p in v.get("paths", [])])


def _role(value: str | None) -> Role:
    try:
        return Role(value or "unknown")
    except ValueError:
        return Role.UNKNOWN


def _record(pod: PodRequest, node: str) -> PodRecord:
    member = pod.member
    return PodRecord(namespace=pod.namespace, name=pod.name, uid=pod.uid, node=node,
                     memory=pod.memory_request, cpu=pod.cpu_request, phase="Pending",
                     cluster=member.cluster if member else "",
                     shard=(member.shard or "") if member else "",
                     role=member.role.value if member else "")


_EMPTY = Snapshot(level_names=(), nodes={})
