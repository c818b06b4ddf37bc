"""The Decider against a real Redis: siblings in flight counted across replicas.

Two Deciders with caches of their own stand for two extender replicas (or two gunicorn
workers) sharing one Redis: what one reserves at prioritize, the other's filter counts.
"""
from __future__ import annotations

import orjson
import pytest

from extender.core.identity import Identifier
from extender.protocol import parse_extender_args
from extender.engine.decider import Decider
from extender.core.settings import DEFAULT_LEVELS, IdentitySettings, Settings
from extender.local.simulate import make_node, make_pod, redis_labels
from extender.state.cache import StateCache
from extender.state.loader import load_list
from extender.state.store import RedisStore

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
    there = [n for n in names if NODES[n] == NODES[first]]
    assert NODES[first] not in zone_of(result.accepted)
    reasons = [result.unresolvable[n] for n in there]
    assert all("masters" in r and "one zone at a time" not in r for r in reasons), reasons  # rule 4: it holds one
    store.r.delete(f"{store.p}creserve:redis/cache-a")
    result, _ = two.filter(parse_extender_args(body("cache-a-1", 1, "master", names), IDENTIFIER))
    # without it, that zone is as good as any (the master then goes to one zone: rule 5)
    assert all(n in result.accepted or "one zone at a time" in result.unresolvable[n] for n in there)


def bind(decider: Decider, name: str, node: str) -> str:
    return decider.bind("redis", name, f"uid-{name}", node, None)


def place(decider: Decider, name: str, shard: int, node: str, role: str = "master") -> str:
    """Filter (the bind needs to know the pod), then bind where the test says."""
    filtered(decider, name, shard, role)
    return bind(decider, name, node)


def filtered(decider: Decider, name: str, shard: int, role: str = "master") -> list[str]:
    result, error = decider.filter(parse_extender_args(body(name, shard, role, list(NODES)), IDENTIFIER))
    assert not error
    return result.accepted


def test_a_master_bound_outside_its_reserved_zone_makes_the_sibling_that_followed_its_reservation_retry(
        replicas) -> None:
    """The scheduler's own plugins may outweigh the extender's lead: master 1, reserved in one
    zone, is bound in another, where master 2 (whose filter counted master 1 in the reserved
    zone) is bound next. The bind re-check sees master 1 there and refuses: no zone holds two
    of the cluster's masters while another holds none."""
    one, two = replicas
    assert place(one, "cache-a-0", 0, "node-a1") == ""  # master 0 in zone-a
    accepted = filtered(one, "cache-a-1", 1)
    assert len(zone_of(accepted)) == 1 and zone_of(accepted) <= {"zone-b", "zone-c"}  # one zone (rule 5)
    scores = one.prioritize(parse_extender_args(body("cache-a-1", 1, "master", accepted), IDENTIFIER))
    reserved = NODES[accepted[scores.index(max(scores))]]
    elsewhere = "zone-c" if reserved == "zone-b" else "zone-b"
    second = filtered(two, "cache-a-2", 2)  # master 1 counted where it was reserved
    assert zone_of(second) == {elsewhere}
    landed = next(n for n in NODES if NODES[n] == elsewhere)
    assert bind(one, "cache-a-1", landed) == ""  # the scheduler's choice, not the reserved zone
    refused = bind(two, "cache-a-2", next(n for n in second if n != landed))
    assert "masters" in refused and "retry scheduling" in refused, refused
    # retried: its filter now sees master 1 where it really is
    assert zone_of(filtered(two, "cache-a-2", 2)) == {reserved}


def test_a_replica_is_not_held_to_the_masters_rule_at_bind(replicas) -> None:
    one, two = replicas
    assert place(one, "cache-a-0", 0, "node-a1") == ""
    assert place(one, "cache-a-1", 1, "node-b1") == ""
    assert place(two, "cache-a-5", 2, "node-a2", "replica") == ""  # beside master 0: no masters rule for a replica
    assert "masters" in place(two, "cache-a-3", 3, "node-a2")  # while a master of a new shard is refused there


def test_two_masters_recorded_from_one_stale_read_cannot_both_take_a_zone(replicas, store: RedisStore) -> None:
    """The record is atomic on the cluster's masters version: a master recorded between a
    sibling master's read and its write makes that write stale (then re-read, refused)."""
    one, _ = replicas
    pod = make_pod("redis", "cache-a-1", redis_labels("cache-a", 1, "master"), "1Gi", "500m")
    request = parse_extender_args(orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": ["node-b1"]}), IDENTIFIER).pod
    read = store.shard_state("redis/cache-a", "1")
    other = parse_extender_args(body("cache-a-2", 2, "master", ["node-b2"]), IDENTIFIER).pod
    assert one.record(other, "node-b2").ok  # a sibling master lands in zone-b meanwhile
    stale = one.record(request, "node-b1", read.version, read.masters_version)
    assert stale.status == "stale"
    fresh = store.shard_state("redis/cache-a", "1")
    assert fresh.masters_version != read.masters_version
    assert one.record(request, "node-b1", fresh.version, fresh.masters_version).ok


def test_the_masters_version_moves_only_when_a_master_appears_moves_or_goes(store: RedisStore, replicas) -> None:
    one, _ = replicas
    master = parse_extender_args(body("cache-a-0", 0, "master", ["node-a1"]), IDENTIFIER).pod
    replica = parse_extender_args(body("cache-a-3", 0, "replica", ["node-b1"]), IDENTIFIER).pod

    def version() -> str:
        return store.shard_state("redis/cache-a", "0").masters_version

    start = version()
    assert one.record(replica, "node-b1").ok
    assert version() == start  # a replica
    assert one.record(master, "node-a1").ok
    placed = version()
    assert placed != start
    assert one.record(master, "node-a1").ok
    assert version() == placed  # the same master again (a watch event of the bind)
    assert one.record(master, "node-a2").ok
    assert version() != placed
