"""Per request: the small snapshot one decision reads, assembled from the cache, and its memos.

A decision reads the pod's shard (copies, reservations, version), its cluster's counts per
node, the node table and the nodes' usage: one pipelined Redis read or the cache (cache.py).
The policy gets them twice: as records (model.Snapshot) and, for the thousands of candidates
of a call, as arrays (policy/candidates.py Tables). The arrays are derived once and kept:
the node table's with the table (per generation), its usage's per usage read, the rows of a
NodeNames list per list and generation, and what a full-Node body gives per body.
"""
from __future__ import annotations

import threading
from collections import ChainMap
from dataclasses import dataclass
from typing import Any

import numpy as np

from extender.core.model import Member, Node, PodRequest, Role, Snapshot
from extender.policy.candidates import NodeArrays, Tables, UsageArrays
from extender.protocol import ExtenderArgs, node_from_object
from extender.state.cache import NodeTable, StateCache, StateIncomplete, epoch_problem
from extender.state.records import FilterMemory, PodRecord

Usage = tuple[dict[str, int], dict[str, int]]  # (memory, CPU) requested per node


BODY_MEMO_SIZE = 4
"""Full-Node bodies kept derived: kube-scheduler resends one body for pod after pod while its
nodes do not change; a few cover the bodies of concurrent scheduling profiles."""


@dataclass
class Prepared:
    """What one decision reads: the snapshot, the same as arrays (None: build them from the
    snapshot), where the store still places the pod itself, and the shard's version."""

    snapshot: Snapshot
    tables: Tables | None
    own_node: str | None
    version: str
    masters_version: str = ""  # the cluster's masters version, read with the counts


class Snapshots:
    """Assembles a request's Prepared from the cache; one per process, shared by its threads."""

    def __init__(self, cache: StateCache, levels: tuple[str, ...]):
        self.cache = cache
        self.levels = levels
        self._bodies: dict[Any, BodyView] = {}
        self._bodies_lock = threading.Lock()
        self._usage: tuple[Any, UsageArrays, Any, Any] | None = None  # keeps the keyed objects alive
        self._base_usage: tuple[Any, UsageArrays, Any, Any] | None = None  # the same, of the last read

    def prepare(self, args: ExtenderArgs, fresh: bool = False, counts: bool = True) -> Prepared:
        """Raises StateUnavailable when Redis and the cache both fail. `fresh` reads the shard
        from Redis itself (bind), not from the cache, and no usage: room was judged at filter;
        `counts`: read the cluster's counts too (the masters rule's; prioritize's)."""
        member = args.pod.member
        assert member is not None
        table = self.cache.node_table()
        if fresh:
            shard = self.cache.shard_now(member.cluster, member.shard, counts=counts)
        else:
            shard = self.cache.shard(member.cluster, member.shard, counts)
        table = self.whole(table, shard.epoch)  # the shard's read carries the epoch
        rows = None
        if args.nodes is None:
            rows = self._rows(args, table)
            if (rows < 0).any():  # a node added since the last check?
                table = self.cache.node_table(revalidate=True)
                if table.epoch != shard.epoch:
                    raise StateIncomplete(epoch_problem(shard.epoch, table) or "the state's epoch moved")
                rows = self._rows(args, table)
        usage: Usage = ({}, {}) if fresh else self.cache.usage()
        nodes: ChainMap[str, Node] | dict[str, Node] = table.nodes
        level_domains = table.level_domains
        tables = None
        if args.nodes is None and not fresh:  # (bind asks about one node: no arrays needed)
            tables = Tables(table.arrays, self._usage_arrays(table, usage), rows)
        elif args.nodes is not None:  # full Node objects: fresher than the cache for candidates
            view = self._body_view(args, table)
            nodes, level_domains = ChainMap(view.body, table.nodes), view.level_domains
            if not fresh:
                tables = Tables(view.arrays, view.usage(usage), view.rows)
        own_node = next((c.node for c in shard.copies if c.pod == args.pod.key and not c.reserved), None)
        mem, cpu = usage
        snapshot = Snapshot(level_names=self.levels, nodes=nodes, copies=shard.copies,
                            cluster=shard.counts, level_domains=level_domains,
                            requested_memory=mem, requested_cpu=cpu)
        return Prepared(snapshot, tables, own_node, shard.version, shard.masters_version)

    def for_preempt(self, pod: PodRequest, names: list[str]) -> tuple[Snapshot, str | None]:
        """A preemptor's snapshot over the candidate nodes that have victims, and its own node:
        a Redis preemptor's shard without the cluster's counts (preemption judges spread and
        shards, not balance); for any other pod the nodes' domains alone, which is all its
        victims' copies are judged on."""
        if pod.member is not None:
            prepared = self.prepare(ExtenderArgs(pod, names, None, True), counts=False)
            return prepared.snapshot, prepared.own_node
        table = self.cache.node_table()
        return Snapshot(level_names=self.levels, nodes=table.nodes, level_domains=table.level_domains), None

    def whole(self, table: NodeTable, epoch: str) -> NodeTable:
        """`table` if the state is whole and of its epoch; the table of a new complete epoch
        (read now); else StateUnavailable: an emptied or half-written Redis is never read as
        "no copies here" (cache.epoch_problem, the predicate /readyz uses too)."""
        problem = epoch_problem(epoch, table)
        if problem is None:
            return table
        if not epoch:
            raise StateIncomplete(problem)
        table = self.cache.table_for_epoch(epoch)
        problem = epoch_problem(epoch, table)
        if problem is not None:
            raise StateIncomplete(problem)
        return table

    def check_whole(self, patient: bool = False) -> NodeTable:
        """Is the state whole now, as the verbs would find it? The node table if so; raises
        StateUnavailable (StoreFailed: Redis unreachable) with the reason otherwise.
        `patient` (/readyz): the epoch read past the breaker (cache.epoch_now)."""
        return self.whole(self.cache.node_table(), self.cache.epoch_now(patient))

    def bound_pod(self, namespace: str, name: str, uid: str, whole: bool = True
                  ) -> tuple[PodRequest | None, FilterMemory | None, PodRecord | None]:
        """The identity of a pod being bound: from the store (sync, load), else from its
        filter's memory; that memory; and the stored record. One round trip, which also
        checks (`whole`) that the state is whole (an emptied Redis knows no pod: never
        "unknown, so pass"). Raises StateUnavailable (StoreFailed included)."""
        epoch, memory, stored = self.cache.bind_reads(namespace, name)
        if whole:
            self.whole(self.cache.node_table(), epoch)
        if stored is not None and stored.cluster:
            member = Member(stored.cluster, stored.shard or None, Role.parse(stored.role))
            return PodRequest(namespace, name, uid or stored.uid, member, stored.memory, stored.cpu), memory, stored
        if memory is not None:
            member = Member(memory.cluster, memory.shard, Role.parse(memory.role))
            return PodRequest(namespace, name, uid or memory.uid, member, memory.memory, memory.cpu), memory, stored
        return None, None, stored

    def _usage_arrays(self, table: NodeTable, usage: Usage) -> UsageArrays:
        """`usage` as arrays aligned to `table`, rebuilt only when either changed."""
        key = (table.generation, id(table), id(usage))
        built = self._usage
        if built is None or built[0] != key:
            parts = self.cache.usage_parts(usage)
            if parts is None:
                arrays = UsageArrays.build(table.arrays, *usage)
            else:  # the last read plus this process's records since: the read's arrays, patched
                base, changes = parts
                arrays = self._base_usage_arrays(table, base).with_changes(table.arrays, changes)
            built = self._usage = (key, arrays, usage, table)
        return built[1]

    def _base_usage_arrays(self, table: NodeTable, base: Usage) -> UsageArrays:
        key = (table.generation, id(table), id(base))
        built = self._base_usage
        if built is None or built[0] != key:
            built = self._base_usage = (key, UsageArrays.build(table.arrays, *base), base, table)
        return built[1]

    def _body_view(self, args: ExtenderArgs, table: NodeTable) -> "BodyView":
        """What full Node bodies give, built once per body (the scheduler resends the same
        nodes pod after pod) and per node-table generation."""
        key = (args.nodes_key, table.generation, table.epoch) if args.nodes_key is not None else None
        with self._bodies_lock:
            found = self._bodies.get(key) if key is not None else None
        if found is not None:
            return found
        objects = args.node_objects or [node_from_object(n, self.levels) for n in args.nodes or []]
        view = BodyView.build(objects, args.node_names, table, len(self.levels))
        if key is not None:
            with self._bodies_lock:
                while len(self._bodies) >= BODY_MEMO_SIZE:
                    self._bodies.pop(next(iter(self._bodies)))
                self._bodies[key] = view
        return view

    @staticmethod
    def _rows(args: ExtenderArgs, table: NodeTable) -> np.ndarray:
        """The candidates' rows in the node table, shared by requests with the same list (kept
        on the protocol's CandidateList, per table generation)."""
        entry = args.candidates
        derived = entry.derived if entry is not None else None
        if derived is not None and derived[0] == (table.generation, table.epoch):
            return derived[1]
        rows = table.arrays.rows(args.node_names)
        if entry is not None:
            entry.derived = ((table.generation, table.epoch), rows)  # (a new epoch restarts generations)
        return rows


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
        rows = arrays.rows(names)
        domains = tuple(known | {d for n in objects if (d := n.domains[i]) is not None}
                        for i, known in enumerate(table.level_domains))
        return cls(body, arrays, rows, domains)

    def usage(self, usage: Usage) -> UsageArrays:
        built = self._usage
        if built is None or built[0] is not usage:
            built = self._usage = (usage, UsageArrays.build(self.arrays, *usage))
        return built[1]
