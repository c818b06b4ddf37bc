"""The report's read of the store (state/inventory.py) and the stored live topology
(actuation/nodes.py's store_live/load_live), against a real redis-server."""
from __future__ import annotations

import time

from extender.core.model import Role
from extender.analysis.topology import KIND_CLUSTER, LiveNode, LiveTopology
from extender.core.settings import DEFAULT_LEVELS
from extender.state.inventory import read_inventory
from extender.state.records import NodeRecord, PodRecord
from extender.state.schema import Keys
from extender.state.store import RedisStore
from extender.state.live import load_live, store_live

GI = 2**30
ZONE = "topology.kubernetes.io/zone"


def copy(name: str, node: str, role: str, shard: str = "0") -> PodRecord:
    return PodRecord(namespace="redis", name=name, uid=f"uid-{name}", node=node, memory=GI, cpu=500,
                     phase="Running", cluster="redis/cache", shard=shard, role=role)


def test_placements_are_read_and_reservations_skipped(store: RedisStore) -> None:
    store.put_nodes([NodeRecord(f"n{i}", {ZONE: f"z{i}"}, 8 * GI, 4000) for i in (1, 2, 3)])
    store.upsert_pod(copy("cache-0", "n1", "master"))
    store.upsert_pod(copy("cache-1", "n2", "replica"))
    store.upsert_pod(copy("cache-2", "", "replica"))  # pending: only a reservation names a node
    store.reserve("redis/cache-2", "redis/cache", "0", "n3", "replica", ttl=30)
    store.mark_loaded("test")
    inv = read_inventory(store, DEFAULT_LEVELS, clock=lambda: 1e10)
    assert inv.read_at == 1e10 and inv.loaded_at is not None and inv.loaded_at <= time.time()
    assert {(c.pod, c.node, c.role) for c in inv.shards["redis/cache"]["0"]} == {
        ("redis/cache-0", "n1", Role.MASTER), ("redis/cache-1", "n2", Role.REPLICA)}
    assert inv.pod_memory == {"redis/cache-0": GI, "redis/cache-1": GI}
    assert inv.requested_memory == {"n1": GI, "n2": GI}
    assert inv.nodes["n3"].domains[list(DEFAULT_LEVELS).index(ZONE)] == "z3"
    assert inv.live == {}


def test_a_stored_live_topology_is_read_back_and_sets_live_roles(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-0", "n1", "master"))
    store.upsert_pod(copy("cache-1", "n2", "replica"))
    nodes = (LiveNode("a", "10.0.0.1", 6379, "replica", pod="redis/cache-0"),
             LiveNode("b", "10.0.0.2", 6379, "master", pod="redis/cache-1"))
    topology = LiveTopology("redis/cache", KIND_CLUSTER, 123.0, "10.0.0.1:6379", nodes, "CLUSTER SHARDS")
    store_live(store, topology)
    assert load_live(store, "redis/cache") == topology
    assert store.r.exists(Keys(store.p).live("redis/cache"))
    inv = read_inventory(store, DEFAULT_LEVELS)
    assert inv.live == {"redis/cache": topology}
    roles = {c.pod: c.role for c in inv.shards["redis/cache"]["0"]}  # live roles override the labels
    assert roles == {"redis/cache-0": Role.REPLICA, "redis/cache-1": Role.MASTER}


def test_a_corrupt_live_entry_is_as_good_as_none(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-0", "n1", "master"))
    store.r.set(Keys(store.p).live("redis/cache"), b"{not json")
    assert read_inventory(store, DEFAULT_LEVELS).live == {}
