"""The Decider against a real Redis: siblings in flight counted across replicas.

Two Deciders with caches of their own stand for two extender replicas (or two gunicorn
workers) sharing one Redis: what one reserves at prioritize, the other's filter counts.
"""
from __future__ import annotations

import orjson
import pytest

from extender.identity import Identifier
from extender.protocol import parse_extender_args
from extender.service.decisions import Decider
from extender.settings import DEFAULT_LEVELS, IdentitySettings, Settings
from extender.simulate import make_node, make_pod, redis_labels
from extender.state.cache import StateCache
from extender.state.loader import load_list
from extender.state.redis_store import RedisStore

IDENTIFIER = Identifier(IdentitySettings())
NODES = {f"node-{z}{i}": f"zone-{z}" for z in "abc" for i in (1, 2)}


def body(name: str, shard: int, role: str, names: list[str]) -> bytes:
    pod = make_pod("redis", name, redis_labels("cache-a", shard, role), "1Gi", "500m")
    return orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": names})


@pytest.fixture
def replicas(store: RedisStore) -> tuple[Decider, Decider]:
    load_list(store, {"kind": "List", "items": [make_node(n, z, "region-1", None, 8, 4) for n, z in NODES.items()]},
              IDENTIFIER)
    settings = Settings()
    return tuple(Decider(settings, StateCache(RedisStore(store.r, store.p), DEFAULT_LEVELS), IDENTIFIER)
                 for _ in range(2))  # type: ignore[return-value]


def zone_of(names: list[str]) -> set[str]:
    return {NODES[n] for n in names}


def test_masters_in_flight_on_another_replica_are_counted_by_the_filter(replicas) -> None:
    one, two = replicas
    names = list(NODES)
    zones = []
    for shard in range(3):  # three masters of three shards, alternately on the two replicas
        decider = (one, two)[shard % 2]
        args = parse_extender_args(body(f"cache-a-{shard}", shard, "master", names), IDENTIFIER)
        result, error = decider.filter(args)
        assert not error
        scores = decider.prioritize(parse_extender_args(body(f"cache-a-{shard}", shard, "master",
                                                             result.accepted), IDENTIFIER))
        chosen = result.accepted[scores.index(max(scores))]
        zones.append(NODES[chosen])
    assert sorted(zones) == ["zone-a", "zone-b", "zone-c"]  # none bound yet: only reservations


def test_a_replica_in_flight_counts_toward_the_cluster_spread_of_another_shard(replicas) -> None:
    one, two = replicas
    names = list(NODES)
    args = parse_extender_args(body("cache-a-3", 0, "replica", names), IDENTIFIER)
    scores = one.prioritize(args)
    first = names[scores.index(max(scores))]
    other = two.prioritize(parse_extender_args(body("cache-a-4", 1, "replica", names), IDENTIFIER))
    assert other[names.index(first)] < max(other)  # its node (and zone) holds a pod of the cluster now


def test_without_the_reservation_the_second_master_could_share_the_zone(replicas, store: RedisStore) -> None:
    """The check above can fail: with the cluster's reservations removed, the filter of the
    second master keeps the first one's zone."""
    one, two = replicas
    names = list(NODES)
    scores = one.prioritize(parse_extender_args(body("cache-a-0", 0, "master", names), IDENTIFIER))
    first = names[scores.index(max(scores))]
    result, _ = two.filter(parse_extender_args(body("cache-a-1", 1, "master", names), IDENTIFIER))
    assert NODES[first] not in zone_of(result.accepted)
    store.r.delete(f"{store.p}creserve:redis/cache-a")
    result, _ = two.filter(parse_extender_args(body("cache-a-1", 1, "master", names), IDENTIFIER))
    assert NODES[first] in zone_of(result.accepted)
