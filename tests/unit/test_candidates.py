"""The array fast paths of policy/candidates.py give what the record paths give: the cluster's
counts per domain (spread.build's tallies) and the usage aligned to the node table."""
from __future__ import annotations

import random

from extender.core.model import Role
from extender.policy import spread
from extender.policy.candidates import FAST_COUNTS_FROM, NodeArrays, Tables, UsageArrays, fast_counts, level_counts

from tests.unit.builders import make_copy, make_node, make_pod, make_snapshot


def _world(seed: int, nodes: int = 300):
    rng = random.Random(seed)
    table = [make_node(f"n{i}", rng.choice(["zone-a", "zone-b", "zone-c", None]), rng.choice(["r1", None]))
             for i in range(nodes)]
    names = [n.name for n in table]
    pods = {n: rng.randint(0, 3) for n in rng.sample(names, nodes // 2)}
    pods["not-in-the-table"] = 0  # a zero count is no node at all
    masters = {n: rng.randint(1, 2) for n in rng.sample(names, nodes // 3)}
    return table, pods, masters


def test_level_counts_sum_each_nodes_count_into_its_domain_at_every_level() -> None:
    table, pods, _ = _world(1)
    snapshot = make_snapshot(table, pods_per_node=pods)
    counts = level_counts(NodeArrays.build(snapshot.nodes, 3), pods)
    assert counts is not None
    for level in range(3):
        known: dict[str, int] = {}
        unknown = 0
        for node, count in pods.items():
            if count:
                value = snapshot.node(node).domains[level]
                if value is None:
                    unknown += count
                else:
                    known[value] = known.get(value, 0) + count
        assert counts[level] == (known, unknown)


def test_spread_tallies_are_the_same_through_the_arrays() -> None:
    for seed in range(5):
        table, pods, masters = _world(seed)
        reserved = [make_copy("sib-1", "n7", Role.MASTER), make_copy("sib-2", "n9")]
        snapshot = make_snapshot(table, [make_copy("cache-a-0", "n3", Role.MASTER)], pods_per_node=pods,
                                 masters_per_node=masters, reserved=reserved)
        arrays = NodeArrays.build(snapshot.nodes, 3)
        tables = Tables(arrays, UsageArrays.build(arrays, {}, {}))
        pod = make_pod(role=Role.MASTER)
        assert pod.member is not None
        slow = spread.build(pod.member, snapshot, pod.key, "n5")
        fast = spread.build(pod.member, snapshot, pod.key, "n5", fast_counts(tables))
        assert fast == slow
        assert sum(slow.levels[1].cluster_pods.known.values()) > 0


def test_a_node_missing_from_the_arrays_or_a_few_nodes_take_the_record_path() -> None:
    table, pods, _ = _world(2)
    arrays = NodeArrays.build({n.name: n for n in table}, 3)
    assert level_counts(arrays, {**pods, "elsewhere": 1}) is None
    few = dict(list((n, c) for n, c in pods.items() if c)[: FAST_COUNTS_FROM - 1])
    assert level_counts(arrays, few) is None


def test_usage_arrays_align_requests_to_the_table_rows() -> None:
    table, _, _ = _world(3, nodes=50)
    arrays = NodeArrays.build({n.name: n for n in table}, 3)
    mem = {"n4": 5, "n0": 7, "gone": 9}
    usage = UsageArrays.build(arrays, mem, {"n49": 3})
    assert usage.req_mem[arrays.index["n4"]] == 5 and usage.req_mem[arrays.index["n0"]] == 7
    assert usage.req_mem.sum() == 12 and usage.req_cpu.sum() == 3 and usage.req_cpu[arrays.index["n49"]] == 3
