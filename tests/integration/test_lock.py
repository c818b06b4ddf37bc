"""The syncers' leader lock against a real Redis: one holder, renewal by the holder only,
expiry of a holder that stops renewing, release by the holder only."""
from __future__ import annotations

import time

from extender.state.lock import LeaderLock
from extender.state.store import RedisStore


def test_one_holder_at_a_time_and_only_it_renews_or_releases(store: RedisStore) -> None:
    first, second = LeaderLock(store, ttl=5, identity="a"), LeaderLock(store, ttl=5, identity="b")
    assert first.acquire()
    assert not second.acquire()
    assert second.holder() == "a"
    assert first.renew() and not second.renew()
    second.release()  # not its lock: nothing happens
    assert first.holder() == "a"
    first.release()
    assert first.holder() is None
    assert second.acquire() and first.holder() == "b"


def test_a_holder_that_stops_renewing_loses_the_lock(store: RedisStore) -> None:
    stale, fresh = LeaderLock(store, ttl=0.2, identity="paused"), LeaderLock(store, ttl=5, identity="next")
    assert stale.acquire()
    time.sleep(0.3)
    assert fresh.acquire()
    assert not stale.renew()  # it learns it lost, and stops writing
    assert fresh.holder() == "next"


def test_the_lock_lives_under_the_prefix(store: RedisStore, prefix: str) -> None:
    assert LeaderLock(store, identity="x").acquire()
    assert store.r.get(f"{prefix}sync:leader") == b"x"
    store.clear()
    assert store.lock_holder() is None
