"""Candidates as arrays: the per-request view the filter and the score work on.

kube-scheduler asks about every feasible node for every pod: thousands of candidates a
call. Per-candidate Python (a dict lookup and a few comparisons per node and level) costs
~1 µs each, so the verdicts and scores are computed on numpy arrays instead: domains become
integer codes per level, and "copies in this candidate's zone" is one gather from a small
per-zone table.

NodeArrays is built once per node-table generation (the cache keeps it) and UsageArrays once
per usage read; state/snapshot.py hands both to the policy as Tables, beside the Snapshot,
and a request only gathers the candidates' rows. Without them (unit tests, the bind-time
re-check) the same view is built from Snapshot.node() one candidate at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from extender.core.model import Node, Snapshot

UNKNOWN_CODE = -1  # indexes the last slot of every per-code table: the pessimistic value

np.unique(np.zeros(2, dtype=np.int64))
"""numpy imports numpy.ma at the first unique(): ~0.4 s of a worker's first filter on a busy
machine (7 % of a 300-pod benchmark's profile). Done at import, before any request."""


def _float(value: int | None) -> float:
    """Unknown figures are nan: comparisons with nan are False, so they never reject."""
    return np.nan if value is None else float(value)


@dataclass(frozen=True)
class NodeArrays:
    names: list[str]
    index: dict[str, int]
    codes: np.ndarray  # (levels, nodes) int64, UNKNOWN_CODE where unknown
    values: tuple[tuple[str, ...], ...]  # per level: code -> value
    value_codes: tuple[dict[str, int], ...]  # per level: value -> code
    alloc_mem: np.ndarray  # float64, nan = unknown
    alloc_cpu: np.ndarray
    ready: np.ndarray  # bool

    @classmethod
    def build(cls, nodes: Mapping[str, Node], levels: int) -> "NodeArrays":
        names = list(nodes)
        values: list[dict[str, int]] = [{} for _ in range(levels)]
        codes = np.full((levels, len(names)), UNKNOWN_CODE, dtype=np.int64)
        for row, name in enumerate(names):
            for level, value in enumerate(nodes[name].domains):
                if value is not None:
                    codes[level, row] = values[level].setdefault(value, len(values[level]))
        return cls(
            names=names, index={n: i for i, n in enumerate(names)}, codes=codes,
            values=tuple(tuple(v) for v in values), value_codes=tuple(values),
            alloc_mem=np.array([_float(nodes[n].allocatable_memory) for n in names], dtype=np.float64),
            alloc_cpu=np.array([_float(nodes[n].allocatable_cpu) for n in names], dtype=np.float64),
            ready=np.array([nodes[n].ready for n in names], dtype=bool))

    def rows(self, names: Sequence[str]) -> np.ndarray:
        """Each name's row, -1 for a name not in the table (one C-speed pass over thousands)."""
        return np.fromiter(map(self.index.get, names, repeat(-1)), dtype=np.int64, count=len(names))


FAST_COUNTS_FROM = 64  # nodes with a count, from which level_counts is worth its numpy calls
LevelCounts = list[tuple[dict[str, int], int]]  # per level: count per known domain, count unknown


def level_counts(arrays: NodeArrays, per_node: Mapping[str, int]) -> LevelCounts | None:
    """Nodes' counts (a cluster's pods or masters per node) summed per domain at every level:
    one bincount per level instead of a dict update per node and level (hundreds of nodes a
    call). None when a node is not in `arrays` (the caller counts node by node instead)."""
    names = [n for n, c in per_node.items() if c]
    levels = arrays.codes.shape[0]
    if not names:
        return [({}, 0) for _ in range(levels)]
    if len(names) < FAST_COUNTS_FROM:
        return None  # a few nodes: numpy's fixed cost per call is more than the dict updates
    rows = np.fromiter(map(arrays.index.get, names, repeat(-1)), dtype=np.int64, count=len(names))
    if (rows < 0).any():
        return None
    weights = np.fromiter((per_node[n] for n in names), dtype=np.int64, count=len(names))
    out: LevelCounts = []
    for level in range(levels):
        codes = arrays.codes[level, rows]
        known = codes >= 0
        sums = np.bincount(codes[known], weights=weights[known])
        values = arrays.values[level]
        out.append(({values[c]: int(sums[c]) for c in np.flatnonzero(sums).tolist()}, int(weights[~known].sum())))
    return out


def fast_counts(tables: "Tables | None") -> "Callable[[Mapping[str, int]], LevelCounts | None] | None":
    """level_counts over the tables' nodes (they hold the snapshot's nodes, row for row), for
    policy/spread.build; None without tables."""
    if tables is None:
        return None
    arrays = tables.nodes
    return lambda per_node: level_counts(arrays, per_node)


@dataclass(frozen=True)
class UsageArrays:
    """Requested memory and CPU per row of a NodeArrays."""

    req_mem: np.ndarray
    req_cpu: np.ndarray

    @classmethod
    def build(cls, arrays: NodeArrays, mem: Mapping[str, int], cpu: Mapping[str, int]) -> "UsageArrays":
        return cls(_by_row(arrays, mem), _by_row(arrays, cpu))

    def with_changes(self, arrays: NodeArrays, changes: Mapping[str, tuple[int, int]]) -> "UsageArrays":
        """These requests plus (memory, CPU) per node: the few placements recorded since the
        read these arrays were built from, without rebuilding thousands of rows."""
        req_mem, req_cpu = self.req_mem.copy(), self.req_cpu.copy()
        for name, (memory, cpu) in changes.items():
            row = arrays.index.get(name)
            if row is not None:
                req_mem[row] += memory
                req_cpu[row] += cpu
        return UsageArrays(req_mem, req_cpu)


def _by_row(arrays: NodeArrays, values: Mapping[str, int]) -> np.ndarray:
    """`values` by node name as an array aligned to `arrays` (0 where absent), at C speed:
    rebuilt after every placement this process records (its usage changes), thousands a call."""
    out = np.zeros(len(arrays.names))
    if not values:
        return out
    rows = np.fromiter(map(arrays.index.get, values.keys(), repeat(-1)), dtype=np.int64, count=len(values))
    amounts = np.fromiter(values.values(), dtype=np.float64, count=len(values))
    known = rows >= 0
    out[rows[known]] = amounts[known]
    return out


@dataclass(frozen=True)
class Tables:
    """The snapshot's nodes and their requests as arrays: the fast path of `view`.

    `nodes` must hold every node of Snapshot.nodes that a candidate may name, and `usage` the
    same requests as Snapshot.requested_*, row for row; `rows` are the request's candidates'
    rows in `nodes` (-1 when absent), when known ahead (shared by requests with one list).
    """

    nodes: NodeArrays
    usage: UsageArrays
    rows: np.ndarray | None = None


class Coder:
    """Domain value <-> integer code per level, for one request: the table's codes (shared,
    never copied), extended by values the table lacks (full Node bodies, uncached nodes)."""

    def __init__(self, levels: int, arrays: NodeArrays | None):
        self._base: tuple[dict[str, int], ...] = arrays.value_codes if arrays else tuple({} for _ in range(levels))
        self._base_values: tuple[tuple[str, ...], ...] = arrays.values if arrays else tuple(() for _ in range(levels))
        self._extra: list[dict[str, int]] = [{} for _ in range(levels)]
        self._extra_values: list[list[str]] = [[] for _ in range(levels)]

    def code(self, level: int, value: str | None) -> int:
        if value is None:
            return UNKNOWN_CODE
        found = self._base[level].get(value)
        if found is None:
            extra = self._extra[level]
            found = extra.get(value)
            if found is None:
                found = extra[value] = len(self._base_values[level]) + len(extra)
                self._extra_values[level].append(value)
        return found

    def value(self, level: int, code: int) -> str | None:
        if code == UNKNOWN_CODE:
            return None
        base = self._base_values[level]
        return base[code] if code < len(base) else self._extra_values[level][code - len(base)]

    def size(self, level: int) -> int:
        return len(self._base_values[level]) + len(self._extra_values[level])

    def table(self, level: int, counts: Mapping[str, float], unknown: float) -> np.ndarray:
        """counts by code, plus the unknown slot last (UNKNOWN_CODE == -1 indexes it)."""
        codes = {self.code(level, value): count for value, count in counts.items()}
        table = np.zeros(self.size(level) + 1)
        for code, count in codes.items():
            table[code] = count
        table[-1] = unknown
        return table


@dataclass
class Candidates:
    names: list[str]
    rows: np.ndarray  # row in NodeArrays, -1 when not there
    codes: np.ndarray  # (levels, n)
    known: np.ndarray  # bool: the node is cached (or came in the body)
    alloc_mem: np.ndarray
    alloc_cpu: np.ndarray
    req_mem: np.ndarray
    req_cpu: np.ndarray
    ready: np.ndarray
    coder: Coder
    index: Mapping[str, int] | None = None  # name -> row, when `rows` index a NodeArrays
    _names_array: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def names_at(self, positions: np.ndarray) -> list[str]:
        """Names at many positions at C speed (thousands of rejected nodes a call)."""
        if self._names_array is None:
            self._names_array = np.array(self.names, dtype=object)
        return self._names_array[positions].tolist()

    def positions(self, wanted: Iterable[str]) -> list[int]:
        """Positions of the candidates named in `wanted` (a handful: the copies' nodes)."""
        wanted = set(wanted)
        if not wanted:
            return []
        if self.index is None:
            return [i for i, name in enumerate(self.names) if name in wanted]
        rows = [self.index[n] for n in wanted if n in self.index]
        found = np.flatnonzero(np.isin(self.rows, rows)) if rows else np.empty(0, dtype=np.int64)
        strays = [i for i in np.flatnonzero(self.rows < 0).tolist() if self.names[i] in wanted]
        return sorted(found.tolist() + strays)


def view(snapshot: Snapshot, names: Sequence[str], tables: Tables | None = None) -> Candidates:
    """The candidates as arrays: gathered from `tables` when given, else node by node."""
    levels = len(snapshot.level_names)
    arrays = tables.nodes if tables is not None else None
    coder = Coder(levels, arrays)
    if tables is not None and arrays is not None and arrays.names:
        rows = tables.rows
        if rows is None or len(rows) != len(names):
            rows = arrays.rows(names)
        codes = arrays.codes[:, rows]
        alloc_mem, alloc_cpu = arrays.alloc_mem[rows], arrays.alloc_cpu[rows]
        req_mem, req_cpu = tables.usage.req_mem[rows], tables.usage.req_cpu[rows]
        ready = arrays.ready[rows]
        known = rows >= 0
        if not known.all():  # rows of -1 gathered the last node's data: redo them one by one
            for i in np.flatnonzero(~known).tolist():
                node = snapshot.node(names[i])
                codes[:, i] = [coder.code(level, v) for level, v in enumerate(node.domains)]
                alloc_mem[i] = alloc_cpu[i] = np.nan
                req_mem[i] = req_cpu[i] = 0.0
                ready[i] = True
        return Candidates(list(names), rows, codes, known, alloc_mem, alloc_cpu, req_mem, req_cpu, ready,
                          coder, arrays.index)

    nodes = [snapshot.node(n) for n in names]
    codes = np.array([[coder.code(level, node.domains[level]) for node in nodes] for level in range(levels)],
                     dtype=np.int64).reshape(levels, len(nodes))
    return Candidates(
        names=list(names), rows=np.full(len(nodes), -1, dtype=np.int64), codes=codes,
        known=np.array([n.known for n in nodes], dtype=bool),
        alloc_mem=np.array([_float(n.allocatable_memory) for n in nodes], dtype=np.float64),
        alloc_cpu=np.array([_float(n.allocatable_cpu) for n in nodes], dtype=np.float64),
        req_mem=np.array([snapshot.requested_memory.get(n, 0) for n in names], dtype=np.float64),
        req_cpu=np.array([snapshot.requested_cpu.get(n, 0) for n in names], dtype=np.float64),
        ready=np.array([n.ready for n in nodes], dtype=bool), coder=coder)
