"""The node table a process holds (read whole from P nodes, compiled once per generation and
epoch), and the one predicate of a whole state. Re-exported by state/cache.py, which keeps it."""
from __future__ import annotations

from dataclasses import dataclass

from extender.core.domains import domain_path
from extender.core.model import Node
from extender.policy.candidates import NodeArrays
from extender.state.records import NodeRecord


@dataclass(frozen=True)
class NodeTable:
    generation: int
    nodes: dict[str, Node]
    level_domains: tuple[frozenset[str], ...]
    unknown_by_level: tuple[int, ...]  # nodes with an unknown domain per level (hygiene)
    arrays: NodeArrays  # the same, as arrays for the policy's fast path
    epoch: str = ""  # the state's epoch when it was read ("" none: Redis emptied or not loaded)


def build_node_table(generation: int, records: dict[str, NodeRecord], levels: tuple[str, ...],
                     epoch: str = "") -> NodeTable:
    nodes = {}
    values: list[set[str]] = [set() for _ in levels]
    unknown = [0] * len(levels)
    for name, rec in records.items():
        path = domain_path(name, rec.labels, levels)
        nodes[name] = Node(name=name, domains=path, allocatable_memory=rec.memory,
                           allocatable_cpu=rec.cpu, ready=rec.ready)
        for i, value in enumerate(path):
            if value is None:
                unknown[i] += 1
            else:
                values[i].add(value)
    return NodeTable(generation, nodes, tuple(frozenset(v) for v in values), tuple(unknown),
                     NodeArrays.build(nodes, len(levels)), epoch)


def epoch_problem(current: str, table: NodeTable | None) -> str | None:
    """The one predicate of a whole state, for the verbs and /readyz alike: None when the
    epoch read now is present and is the one `table` was built with, else why not."""
    if not current:
        return ("the state is not whole: no epoch in Redis (emptied, replaced, or never loaded; "
                "waiting for `load` or the syncer's relist)")
    if table is None or table.epoch != current:
        return "the state was replaced since this process read it (a new epoch): reloading"
    return None
