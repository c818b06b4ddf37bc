"""The per-request snapshot against a real Redis: what it holds, its array view (the same
verdicts and scores as the records alone), its memos, the bind's fresh read, and the
identity of a pod being bound."""
from __future__ import annotations

from typing import Any

import orjson
import pytest

from extender.core.identity import Identifier
from extender.core.model import Role
from extender.policy.filter import filter_nodes
from extender.policy.score import score_list
from extender.protocol import NamesMemo, NodeMemo, parse_extender_args
from extender.core.settings import DEFAULT_LEVELS, IdentitySettings, Settings
from extender.local.simulate import make_node, make_pod, redis_labels
from extender.state.cache import REVALIDATE_EVERY, StateCache
from extender.state.loader import load_list
from extender.state.records import FilterMemory, PodRecord
from extender.state.store import RedisStore
from extender.state.snapshot import Snapshots

IDENTIFIER = Identifier(IdentitySettings())
ZONES = {"node-a": "zone-a", "node-b": "zone-b", "node-c": "zone-c",
         "node-a2": "zone-a", "node-b2": "zone-b", "node-c2": "zone-c"}


def world(placed: dict[str, str]) -> dict[str, Any]:
    items = [make_node(n, z, "region-1", None, 8, 4) for n, z in ZONES.items()]
    for name, node in placed.items():
        items.append(make_pod("redis", name, redis_labels("cache-a", 3, "replica"), "1Gi", "500m", node))
    return {"kind": "List", "items": items}


def names_body(names: list[str], pod_name: str = "cache-a-2") -> bytes:
    pod = make_pod("redis", pod_name, redis_labels("cache-a", 3, "replica"), "1Gi", "500m")
    return orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": names})


def nodes_body(nodes: list[dict[str, Any]], pod_name: str = "cache-a-2") -> bytes:
    pod = make_pod("redis", pod_name, redis_labels("cache-a", 3, "replica"), "1Gi", "500m")
    return orjson.dumps({"Pod": pod, "Nodes": {"items": nodes}, "NodeNames": None})


@pytest.fixture
def snapshots(store: RedisStore) -> Snapshots:
    load_list(store, world({"cache-a-0": "node-a", "cache-a-1": "node-b"}), IDENTIFIER)
    return Snapshots(StateCache(store, DEFAULT_LEVELS), DEFAULT_LEVELS)


def test_the_snapshot_holds_the_shard_the_nodes_and_their_usage(snapshots: Snapshots) -> None:
    args = parse_extender_args(names_body(list(ZONES)), IDENTIFIER)
    prepared = snapshots.prepare(args)
    snap = prepared.snapshot
    assert sorted((c.pod, c.node) for c in snap.copies) == [("redis/cache-a-0", "node-a"), ("redis/cache-a-1", "node-b")]
    assert set(snap.nodes) == set(ZONES)
    assert snap.requested_memory["node-a"] == 2**30 and "node-c" not in snap.requested_memory
    assert snap.cluster.pods_per_node == {"node-a": 1, "node-b": 1}
    assert prepared.own_node is None and prepared.version
    tables = prepared.tables
    assert tables is not None and [tables.nodes.names[r] for r in tables.rows] == list(ZONES)


@pytest.mark.parametrize("full_nodes", [False, True])
def test_the_array_view_gives_the_verdicts_and_scores_of_the_records(snapshots: Snapshots, full_nodes: bool) -> None:
    names = list(ZONES)
    body = (nodes_body([make_node(n, z, "region-1", None, 8, 4) for n, z in ZONES.items()]) if full_nodes
            else names_body(names))
    args = parse_extender_args(body, IDENTIFIER, NamesMemo(), NodeMemo(DEFAULT_LEVELS))
    prepared = snapshots.prepare(args)
    assert prepared.tables is not None
    fast = filter_nodes(args.pod, names, prepared.snapshot, prepared.own_node, prepared.tables)
    slow = filter_nodes(args.pod, names, prepared.snapshot, prepared.own_node)
    assert fast.accepted == slow.accepted == ["node-c", "node-c2"]
    assert (fast.failed, fast.unresolvable, fast.eligible_paths) == (slow.failed, slow.unresolvable, slow.eligible_paths)
    settings = Settings()
    assert score_list(args.pod, names, prepared.snapshot, settings, None, prepared.tables) == \
        score_list(args.pod, names, prepared.snapshot, settings)


def test_rows_are_derived_once_per_list_and_generation(snapshots: Snapshots, store: RedisStore) -> None:
    memo = NamesMemo()
    body = names_body(["node-a", "node-b"])
    parse_extender_args(body, IDENTIFIER, memo)  # the second sight of a list is memoised
    first = parse_extender_args(body, IDENTIFIER, memo)
    rows = snapshots.prepare(first).tables.rows
    again = parse_extender_args(body, IDENTIFIER, memo)
    assert again.candidates is first.candidates and snapshots.prepare(again).tables.rows is rows


def test_a_candidate_missing_from_the_table_reloads_it_soon(snapshots: Snapshots, store: RedisStore) -> None:
    now = [1000.0]
    snapshots = Snapshots(StateCache(store, DEFAULT_LEVELS, node_ttl=60.0, clock=lambda: now[0]), DEFAULT_LEVELS)
    snapshots.prepare(parse_extender_args(names_body(["node-a"]), IDENTIFIER))  # table cached for a minute
    load_list(store, {"kind": "List", "items": [make_node("node-d", "zone-d", "region-1", None, 8, 4)]},
              IDENTIFIER, replace=False)
    args = parse_extender_args(names_body(["node-a", "node-d"]), IDENTIFIER)
    assert "node-d" not in snapshots.prepare(args).snapshot.nodes  # checked a moment ago: not again yet
    now[0] += REVALIDATE_EVERY
    prepared = snapshots.prepare(args)
    assert "node-d" in prepared.snapshot.nodes and (prepared.tables.rows >= 0).all()


def test_full_node_bodies_are_fresher_than_the_cache_and_derived_once(snapshots: Snapshots) -> None:
    moved = make_node("node-a", "zone-c", "region-1", None, 8, 4)  # relabelled since the sync
    node_memo = NodeMemo(DEFAULT_LEVELS)
    body = nodes_body([moved, make_node("node-b2", "zone-b", "region-1", None, 8, 4)])
    first = snapshots.prepare(parse_extender_args(body, IDENTIFIER, node_memo=node_memo))
    assert first.snapshot.node("node-a").domains[1] == "zone-c"
    assert first.snapshot.node("node-c").domains[1] == "zone-c"  # the rest from the cache
    again = snapshots.prepare(parse_extender_args(body, IDENTIFIER, node_memo=node_memo))
    assert again.tables.nodes is first.tables.nodes  # one BodyView per body and generation


def test_the_bind_reads_the_shard_fresh_and_no_usage(store: RedisStore) -> None:
    load_list(store, world({"cache-a-0": "node-a"}), IDENTIFIER)
    snapshots = Snapshots(StateCache(store, DEFAULT_LEVELS, shard_ttl=60.0), DEFAULT_LEVELS)
    args = parse_extender_args(names_body(["node-b"]), IDENTIFIER)
    assert len(snapshots.prepare(args).snapshot.copies) == 1  # now cached for a minute
    store.upsert_pod(PodRecord("redis", "cache-a-1", "u1", "node-b", 1, 1, "Running", "redis/cache-a", "3",
                               "replica"))  # another replica's bind
    assert len(snapshots.prepare(args).snapshot.copies) == 1
    fresh = snapshots.prepare(args, fresh=True)
    assert len(fresh.snapshot.copies) == 2 and fresh.tables is None
    assert fresh.snapshot.requested_memory == {}


def test_a_bound_pod_is_known_from_the_store_else_from_its_filter(snapshots: Snapshots, store: RedisStore) -> None:
    pod, memory, stored = snapshots.bound_pod("redis", "cache-a-0", "")
    assert stored is not None and stored.uid == "uid-redis-cache-a-0"
    assert pod is not None and pod.member.cluster == "redis/cache-a" and pod.member.shard == "3"
    assert pod.member.role is Role.REPLICA and pod.memory_request == 2**30 and pod.uid == "uid-redis-cache-a-0"
    assert memory is None

    remembered = FilterMemory("redis/cache-a", "3", "master", "u-new", 5, 6, [(None, "zone-c", "region-1")])
    store.remember_filter("redis/cache-a-9", remembered)
    pod, memory, stored = snapshots.bound_pod("redis", "cache-a-9", "u-given")
    assert stored is None
    assert memory == remembered
    assert (pod.uid, pod.member.role, pod.memory_request, pod.cpu_request) == ("u-given", Role.MASTER, 5, 6)

    assert snapshots.bound_pod("redis", "web-0", "u") == (None, None, None)


def test_the_filters_survivors_are_parsed_from_the_memo_when_prioritize_sends_them() -> None:
    """The survivors are keyed by the bytes Go's encoder sends after the pod (compared, so a
    different list or spelling is a plain parse)."""
    memo = NamesMemo()
    memo.expect(["node-c", "node-a"])
    body = names_body(["node-c", "node-a"])
    args = parse_extender_args(body, IDENTIFIER, memo)
    assert memo.hits == 1 and args.node_names == ["node-c", "node-a"] and args.candidates is not None
    args = parse_extender_args(names_body(["node-a", "node-c"]), IDENTIFIER, memo)  # another order
    assert memo.hits == 1 and args.node_names == ["node-a", "node-c"]


def test_usage_arrays_after_own_placements_are_the_read_patched(snapshots: Snapshots) -> None:
    """Every placement this process records changes the usage it serves: the arrays of the
    last read are patched with those placements instead of rebuilt, and equal a rebuild."""
    from extender.policy.candidates import UsageArrays

    cache = snapshots.cache
    args = parse_extender_args(names_body(list(ZONES)), IDENTIFIER)
    first = snapshots.prepare(args).tables
    for i, node in enumerate(("node-c", "node-c2", "node-a")):
        record = PodRecord("redis", f"cache-b-{i}", f"u{i}", node, 2**20 * (i + 1), 100, "Pending", "redis/cache-b",
                           str(i), "replica")
        assert cache.record_placement(record).ok
        tables = snapshots.prepare(args).tables
        assert cache.usage_parts(cache.usage()) is not None  # served as the read plus own records
        table = cache.node_table()
        rebuilt = UsageArrays.build(table.arrays, *cache.usage())
        assert (tables.usage.req_mem == rebuilt.req_mem).all() and (tables.usage.req_cpu == rebuilt.req_cpu).all()
    assert tables.usage.req_mem[table.arrays.index["node-c"]] == first.usage.req_mem[table.arrays.index["node-c"]] + 2**20
