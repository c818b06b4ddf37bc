"""The Decider against a real redis-server: the bind re-checks every spread rule whether or not
a filter was seen, refuses unknown nodes, and two siblings that reserved the same domain never
refuse each other (one proceeds, the refused one's reservation is released; no livelock
under immediate retries)."""
from __future__ import annotations

from typing import Any

import orjson

from extender.core.identity import Identifier
from extender.protocol import parse_extender_args
from extender.core.settings import DEFAULT_LEVELS, IdentitySettings, Settings
from extender.local.simulate import make_node, make_pod, redis_labels
from extender.state.cache import StateCache
from extender.state.loader import load_list
from extender.state.store import RedisStore
from extender.engine.decider import Decider

IDENTIFIER = Identifier(IdentitySettings())
ZONES = {"node-a": "zone-a", "node-b": "zone-b", "node-c": "zone-c",
         "node-a2": "zone-a", "node-b2": "zone-b", "node-c2": "zone-c"}


def world(shards: int, placed: dict[str, str], pending: list[str]) -> dict[str, Any]:
    items = [make_node(n, z, "region-1", None, 64, 32) for n, z in ZONES.items()]
    for s in range(shards):
        for name, node in placed.items():
            items.append(make_pod("redis", f"{name}-{s}", redis_labels(f"c{s}", 0, "replica"), "1Gi", "500m", node))
        for name in pending:
            items.append(make_pod("redis", f"{name}-{s}", redis_labels(f"c{s}", 0, "replica"), "1Gi", "500m"))
    return {"kind": "List", "items": items}


def decider(store: RedisStore) -> Decider:
    return Decider(Settings(), StateCache(store, DEFAULT_LEVELS), IDENTIFIER)


def body(name: str, shard: int, names: list[str]) -> bytes:
    pod = make_pod("redis", name, redis_labels(f"c{shard}", 0, "replica"), "1Gi", "500m")
    return orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": names})


def schedule(d: Decider, name: str, shard: int) -> str:
    """One scheduling cycle as kube-scheduler runs it: filter, prioritize, pick the best."""
    args = parse_extender_args(body(name, shard, list(ZONES)), IDENTIFIER)
    result, error = d.filter(args)
    assert not error and result.accepted
    args = parse_extender_args(body(name, shard, result.accepted), IDENTIFIER)
    scores = d.prioritize(args)
    return result.accepted[max(range(len(scores)), key=lambda i: scores[i])]


def zone_of(store: RedisStore, name: str) -> str:
    return ZONES[store.pod("redis", name)["node"]]


def test_bind_without_a_filter_checks_every_spread_rule_and_known_nodes(store: RedisStore) -> None:
    load_list(store, world(1, {"a": "node-a", "b": "node-b"}, ["c"]), IDENTIFIER)
    d = decider(store)
    error = d.bind("redis", "c-0", "uid-redis-c-0", "node-a2", None)  # zone-a holds a-0; zone-c is free
    assert "zone-a already holds" in error, error
    error = d.bind("redis", "c-0", "uid-redis-c-0", "node-zz", None)
    assert "node node-zz is not in the extender's state" in error, error
    assert store.pod("redis", "c-0")["node"] == ""  # nothing recorded
    assert d.bind("redis", "c-0", "uid-redis-c-0", "node-c2", None) == ""
    assert store.pod("redis", "c-0")["node"] == "node-c2"


def test_siblings_reserving_one_zone_never_block_each_other(store: RedisStore) -> None:
    """Per shard, x and y both reserved a node of zone-b (two scheduler cycles at once): exactly
    one bind proceeds, the other is refused and its reservation released, and its immediate
    retry is placed. 20 shards, both orders of the binds."""
    shards = 20
    load_list(store, world(shards, {"a": "node-a"}, ["x", "y"]), IDENTIFIER)
    d = decider(store)
    first_round_ok = 0
    attempts_needed = []
    for s in range(shards):
        x, y = f"x-{s}", f"y-{s}"
        d.cache.reserve(f"redis/{x}", f"redis/c{s}", "0", "node-b", "replica", 30.0)
        d.cache.reserve(f"redis/{y}", f"redis/c{s}", "0", "node-b2", "replica", 30.0)
        order = [(x, "node-b"), (y, "node-b2")] if s % 2 else [(y, "node-b2"), (x, "node-b")]
        errors = {pod: d.bind("redis", pod, f"uid-redis-{pod}", node, None) for pod, node in order}
        assert sum(1 for e in errors.values() if e == "") == 1, errors  # one always proceeds
        first_round_ok += 1
        winner = next(p for p, e in errors.items() if e == "")
        assert winner == x  # x reserved first (the earlier expiry), whatever the order of binds
        loser = y
        shard = d.cache.shard_now(f"redis/c{s}", "0")
        assert not [c for c in shard.copies if c.pod == f"redis/{loser}"]  # its reservation released
        for attempt in range(1, 4):  # immediate retries: filter, prioritize, bind
            node = schedule(d, loser, s)
            if d.bind("redis", loser, f"uid-redis-{loser}", node, None) == "":
                attempts_needed.append(attempt)
                break
        else:
            raise AssertionError(f"{loser} unplaced after 3 retries")
        zones = [zone_of(store, f"{n}-{s}") for n in ("a", "x", "y")]
        assert len(set(zones)) == 3, zones  # 0 copies sharing a zone
    assert first_round_ok == shards and max(attempts_needed) == 1


def test_a_pod_the_watch_recorded_pending_for_us_is_not_asked_about_again(store: RedisStore) -> None:
    """Live mode asks the API (PendingCheck) before recording a bind, unless the store already
    holds what the API's watch said (that UID, unbound, for one of our schedulers) and the
    apiserver checks the Binding's UID itself (1.27 on). Anything less is asked."""
    import dataclasses

    from extender.core.settings import KubeSettings

    items = world(2, {}, ["c", "d", "e"])["items"]
    items.append(make_pod("redis", "f-0", redis_labels("c5", 0, "replica"), "1Gi", "500m", uid="uid-f"))
    for item in items:
        if item["kind"] == "Pod" and item["metadata"]["name"] not in ("e-0", "f-0"):  # a dump without it
            item["spec"]["schedulerName"] = "redis-scheduler"
    load_list(store, {"kind": "List", "items": items}, IDENTIFIER)
    asked: list[str] = []

    def pending(namespace: str, name: str, uid: str) -> str:
        asked.append(name)
        return ""

    def decider_for(names: tuple[str, ...], checks_uid: bool = True) -> Decider:
        settings = dataclasses.replace(Settings(), kube=KubeSettings(scheduler_names=names))
        return Decider(settings, StateCache(store, DEFAULT_LEVELS), IDENTIFIER, pending, checks_uid)

    # an apiserver that does not check a Binding's UID (before 1.27): always asked
    assert decider_for(("redis-scheduler",), False).bind("redis", "c-1", "uid-redis-c-1", "node-a", None) == ""
    assert asked == ["c-1"]
    asked.clear()
    d = decider_for(("redis-scheduler",))
    assert d.bind("redis", "c-0", "uid-redis-c-0", "node-a", None) == "" and asked == []
    assert store.pod("redis", "c-0")["sched"] == "redis-scheduler"  # the bind's record kept it
    assert d.bind("redis", "c-0", "uid-redis-c-0", "node-a", None) == "" and asked == ["c-0"]  # placed now
    assert d.bind("redis", "d-0", "another-uid", "node-b", None) == "" and asked == ["c-0", "d-0"]
    assert d.bind("redis", "e-0", "uid-redis-e-0", "node-c", None) == "" and asked == ["c-0", "d-0", "e-0"]
    asked.clear()
    assert decider_for(("other",)).bind("redis", "d-1", "uid-redis-d-1", "node-b", None) == "" and asked == ["d-1"]
    assert decider_for(()).bind("redis", "e-1", "uid-redis-e-1", "node-c", None) == "" and asked == ["d-1"]
    asked.clear()
    assert "sched" not in store.pod("redis", "f-0")  # no scheduler known: none stored
    assert decider_for(()).bind("redis", "f-0", "uid-f", "node-c2", None) == "" and asked == ["f-0"]
