"""The cachetools layer in front of a real Redis: TTL hits, own-write invalidation, and the
behaviour when Redis goes away (last known state while young, then StateUnavailable)."""
from __future__ import annotations

import time

import pytest

from extender.local.localredis import LocalRedis
from extender.local.processes import wait_until
from extender.core.settings import DEFAULT_LEVELS
from extender.state.cache import StateCache, StateUnavailable, StoreFailed
from extender.state.records import FilterMemory, NodeRecord, PodRecord
from extender.state.store import RedisStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pod(name: str, node: str) -> PodRecord:
    return PodRecord("redis", name, f"u-{name}", node, 1, 1, "Running", "redis/c", "0", "replica")


@pytest.fixture
def own_redis():
    """A redis-server of this test's own, so the test may stop it."""
    server = LocalRedis().start()
    yield server
    server.stop()


def make_cache(store: RedisStore, clock: Clock, **kw) -> StateCache:
    return StateCache(store, DEFAULT_LEVELS, ttl=1.0, node_ttl=2.0, max_staleness=30.0,
                      retry_after=1.0, clock=clock, **kw)


def test_usage_within_the_ttl_comes_from_memory_then_reloads_in_the_background(store: RedisStore) -> None:
    clock = Clock()
    cache = make_cache(store, clock)
    store.upsert_pod(pod("a", "n1"))
    assert cache.usage()[0] == {"n1": 1}
    store.upsert_pod(pod("b", "n2"))  # another replica writes
    assert cache.usage()[0] == {"n1": 1}  # still the cached view
    clock.now += 1.5
    assert cache.usage()[0] == {"n1": 1}  # past the TTL: served while one reload runs
    wait_until(lambda: cache.usage()[0] == {"n1": 1, "n2": 1})


def test_shards_are_read_fresh_by_default_so_siblings_are_seen_at_once(store: RedisStore) -> None:
    cache = make_cache(store, Clock())
    store.upsert_pod(pod("a", "n1"))
    assert len(cache.shard("redis/c", "0").copies) == 1
    store.upsert_pod(pod("b", "n2"))  # another worker or replica writes
    assert len(cache.shard("redis/c", "0").copies) == 2


def test_a_shard_ttl_serves_shards_from_memory(store: RedisStore) -> None:
    clock = Clock()
    cache = make_cache(store, clock, shard_ttl=1.0)
    store.upsert_pod(pod("a", "n1"))
    assert len(cache.shard("redis/c", "0").copies) == 1
    store.upsert_pod(pod("b", "n2"))
    assert len(cache.shard("redis/c", "0").copies) == 1
    clock.now += 1.5
    assert len(cache.shard("redis/c", "0").copies) == 2


def test_own_placement_is_in_the_served_usage_at_once(store: RedisStore) -> None:
    """Usage reloads in the background (served stale meanwhile): this process's own record is
    applied to what it serves, moves included, so its next decision sees the pod it placed."""
    cache = make_cache(store, Clock())
    store.upsert_pod(pod("a", "n1"))
    assert cache.usage()[0] == {"n1": 1}
    moved = PodRecord("redis", "b", "u-b", "n2", 5, 3, "Pending", "redis/c", "1", "replica")
    assert cache.record_placement(moved).ok
    assert cache.usage() == ({"n1": 1, "n2": 5}, {"n1": 1, "n2": 3})  # before any reload
    assert cache.record_placement(PodRecord("redis", "b", "u-b", "n1", 5, 3, "Pending", "redis/c", "1",
                                            "replica")).ok
    mem, cpu = cache.usage()
    assert (mem.get("n1"), mem.get("n2", 0), cpu.get("n1"), cpu.get("n2", 0)) == (6, 0, 4, 0)
    wait_until(lambda: cache.usage()[0].get("n1") == 6 and not cache.usage()[0].get("n2"))  # the reload agrees


def test_own_placements_do_not_reload_usage_before_its_ttl(store: RedisStore) -> None:
    """A burst records a placement per pod: each used to drop the served usage and start a
    reload of every node's requests; the own record is applied to it instead, and the usage
    is read again only once the last read is older than the TTL."""
    clock = Clock()
    cache = make_cache(store, clock)
    store.upsert_pod(pod("a", "n1"))
    assert cache.usage()[0] == {"n1": 1}
    misses = cache.stats.misses
    store.upsert_pod(pod("other", "n3"))  # another replica writes meanwhile
    for i, node in enumerate(("n2", "n2", "n4")):
        own = PodRecord("redis", f"b{i}", f"u-b{i}", node, 1, 1, "Running", "redis/c", str(i + 1), "replica")
        assert cache.record_placement(own).ok
        assert cache.usage()[0] == {"n1": 1, "n2": min(i + 1, 2), **({"n4": 1} if i == 2 else {})}
    assert cache.stats.misses == misses  # no read of the usage: served from the last one
    clock.now += 1.5  # past the TTL: read again (served stale while the reload runs)
    wait_until(lambda: cache.usage()[0] == {"n1": 1, "n2": 2, "n3": 1, "n4": 1})


def test_own_placement_invalidates_the_cached_shard(store: RedisStore) -> None:
    clock = Clock()
    cache = make_cache(store, clock)
    assert cache.shard("redis/c", "0").copies == ()
    store.record_placement(pod("a", "n1"))
    cache.invalidate_shard("redis/c", "0")
    assert [c.node for c in cache.shard("redis/c", "0").copies] == ["n1"]


def test_node_table_reloads_only_when_its_generation_moves(store: RedisStore) -> None:
    clock = Clock()
    cache = make_cache(store, clock)
    store.put_nodes([NodeRecord("n1", {"topology.kubernetes.io/zone": "a"}, 10, 10)])
    first = cache.node_table()
    clock.now += 3
    assert cache.node_table() is first  # generation unchanged: same object, no reload
    store.put_nodes([NodeRecord("n2", {}, 10, 10)])
    clock.now += 3
    assert cache.node_table() is first  # changed: served while it reloads in the background
    wait_until(lambda: set(cache.node_table().nodes) == {"n1", "n2"})
    table = cache.node_table()
    assert table.nodes["n2"].domains == ("n2", None, None)  # hostname falls back to the node name
    assert table.unknown_by_level == (0, 1, 2)


def test_a_missing_candidate_reloads_the_node_table_at_once(store: RedisStore) -> None:
    clock = Clock()
    cache = make_cache(store, clock)
    store.put_nodes([NodeRecord("n1", {}, 10, 10)])
    cache.node_table()
    store.put_nodes([NodeRecord("n2", {}, 10, 10)])  # a node just added, already a candidate
    clock.now += 0.5
    assert "n2" in cache.node_table(revalidate=True).nodes


def test_redis_down_serves_last_known_state_fast_then_gives_up(own_redis: LocalRedis) -> None:
    store = RedisStore.from_url(own_redis.url, "rx:{t}:", timeout=0.05)
    clock = Clock()
    cache = make_cache(store, clock)
    store.put_nodes([NodeRecord("n1", {}, 10, 10)])
    store.upsert_pod(pod("a", "n1"))
    assert len(cache.shard("redis/c", "0").copies) == 1
    cache.node_table()
    own_redis.stop()

    clock.now += 5  # TTL expired: the cache must ask Redis, which is gone
    started = time.perf_counter()
    assert len(cache.shard("redis/c", "0").copies) == 1  # last known state
    assert "n1" in cache.node_table().nodes
    assert time.perf_counter() - started < 0.1
    assert cache.redis_down and cache.stats.stale_served == 2 and cache.stats.redis_errors == 1

    clock.now += 60  # older than max_staleness: no more answers from memory
    with pytest.raises(StateUnavailable, match="no state for shard younger than 30s"):
        cache.shard("redis/c", "0")
    with pytest.raises(StateUnavailable):
        cache.usage()  # never read while Redis was up: nothing to fall back on


def test_after_retry_after_redis_is_tried_again(own_redis: LocalRedis) -> None:
    port = own_redis.port
    store = RedisStore.from_url(own_redis.url, "rx:{t}:", timeout=0.05)
    clock = Clock()
    cache = make_cache(store, clock)
    own_redis.stop()
    with pytest.raises(StateUnavailable):
        cache.usage()
    errors = cache.stats.redis_errors
    with pytest.raises(StateUnavailable):
        cache.usage()  # inside retry_after: Redis is not even tried
    assert cache.stats.redis_errors == errors
    revived = LocalRedis(port=port).start()
    try:
        clock.now += 2
        assert cache.usage() == ({}, {})
    finally:
        revived.stop()


def test_a_failed_write_opens_the_breaker_for_reads_and_writes(own_redis: LocalRedis) -> None:
    port = own_redis.port
    store = RedisStore.from_url(own_redis.url, "rx:{t}:", timeout=0.05)
    clock = Clock()
    cache = make_cache(store, clock)
    memory = FilterMemory("redis/c", "0", "replica", "u-a", 1, 1, [(None, "zone-a", None)])
    cache.remember_filter("redis/a", memory)
    assert cache.bind_reads("redis", "a")[1:] == (memory, None)
    own_redis.stop()

    with pytest.raises(StoreFailed):  # the client's own error text, for the reply
        cache.reserve("redis/a", "redis/c", "0", "n1", "replica", 30)
    assert cache.redis_down and cache.stats.redis_errors == 1
    with pytest.raises(StoreFailed, match="^Redis unavailable$"):  # not even tried: no wait
        cache.bind_reads("redis", "a")
    with pytest.raises(StateUnavailable):  # a read with nothing to fall back on
        cache.usage()
    assert cache.stats.redis_errors == 1

    revived = LocalRedis(port=port).start()
    try:
        clock.now += 2  # past retry_after
        assert cache.bind_reads("redis", "a")[1:] == (None, None)  # (a new server: empty)
        assert not cache.redis_down
    finally:
        revived.stop()


def test_the_readiness_probe_asks_redis_whatever_the_breaker(own_redis: LocalRedis) -> None:
    port = own_redis.port
    store = RedisStore.from_url(own_redis.url, "rx:{t}:", timeout=0.05)
    clock = Clock()
    cache = make_cache(store, clock)
    store.mark_loaded("test", nodes=0)
    assert cache.probe()["source"] == "test"
    own_redis.stop()
    with pytest.raises(StoreFailed):
        cache.probe()
    assert not cache.redis_down  # the probe leaves the breaker alone
    with pytest.raises(StoreFailed):
        cache.shard_now("redis/c", "0")
    assert cache.redis_down
    revived = LocalRedis(port=port).start()
    try:
        assert "loaded_at" not in cache.probe()  # a new, empty server, while the breaker is still open
    finally:
        revived.stop()


def test_record_and_unrecord_drop_the_cached_shard(store: RedisStore) -> None:
    cache = make_cache(store, Clock(), shard_ttl=60.0)
    assert cache.shard("redis/c", "0").copies == ()
    placed = pod("a", "n1")
    assert cache.record_placement(placed).ok
    assert [c.node for c in cache.shard("redis/c", "0").copies] == ["n1"]  # not the cached ()
    assert cache.unrecord(placed)
    assert cache.shard("redis/c", "0").copies == ()
    assert store.pod_record("redis", "a").node == ""
    store.upsert_pod(pod("a", "n2"), source="watch")  # the API's truth since
    assert not cache.unrecord(pod("a", "n2"))  # not ours to undo
    assert store.pod_record("redis", "a").node == "n2"


def test_staleness_is_the_age_of_the_state_last_confirmed_current_not_of_its_reload(own_redis: LocalRedis) -> None:
    """A node table loaded long ago but whose generation was checked a moment ago is young: a
    Redis wedged (SIGSTOP, a real server) then serves it for max_staleness from that check."""
    import os
    import signal

    store = RedisStore.from_url(own_redis.url, "rx:{t}:", timeout=0.05)
    store.put_nodes([NodeRecord("n1", {}, 1, 1)])
    clock = Clock()
    cache = make_cache(store, clock)
    assert set(cache.node_table().nodes) == {"n1"}  # read at t0
    for _ in range(20):  # 40 s of generation checks, every node_ttl: the table never reloads
        clock.now += 2.0
        cache.node_table()
    assert cache.stats.redis_errors == 0
    assert own_redis.proc is not None
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:
        clock.now += 2.5
        started = time.monotonic()
        assert set(cache.node_table().nodes) == {"n1"}  # 42.5 s after the reload, 2.5 s after a check
        assert time.monotonic() - started < 1.0 and cache.stats.stale_served == 1
        clock.now += 27.0  # 29.5 s since the last confirmation: still within max_staleness (30)
        assert set(cache.node_table().nodes) == {"n1"}
        clock.now += 1.0  # 30.5 s
        with pytest.raises(StateUnavailable):
            cache.node_table()
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    clock.now += 2.0  # past retry_after: Redis answers again and confirms the table
    assert set(cache.node_table().nodes) == {"n1"}


def test_an_outage_is_aged_from_its_first_failure_not_from_an_earlier_one(own_redis: LocalRedis) -> None:
    store = RedisStore.from_url(own_redis.url, "rx:{t}:", timeout=0.05)
    clock = Clock()
    cache = make_cache(store, clock)
    assert cache.outage_age() is None
    own_redis.stop()
    with pytest.raises(StoreFailed):
        cache.shard_now("redis/c", "0")
    clock.now += 1.5
    assert cache.outage_age() == 1.5
    with pytest.raises(StoreFailed):
        cache.shard_now("redis/c", "0")  # the same outage, tried again after retry_after
    clock.now += 60.0  # no call for a minute (an idle worker), then a failure: a new outage
    with pytest.raises(StoreFailed):
        cache.shard_now("redis/c", "0")
    assert cache.outage_age() == 0.0
