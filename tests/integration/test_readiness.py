"""Readiness tolerates one slow call, not an outage (issue 20, item 10): real gunicorn, a real
redis-server stopped (SIGSTOP) for a moment or for longer."""
from __future__ import annotations

import os
import signal
import time

import pytest

from extender.core.identity import Identifier
from extender.core.settings import IdentitySettings
from extender.local.localredis import LocalRedis
from extender.state.loader import load_list
from extender.state.store import RedisStore

from .test_http import ZONES, get, post, redis_pod, world


@pytest.fixture
def own_redis():
    server = LocalRedis().start()
    yield server
    os.kill(server.proc.pid, signal.SIGCONT)
    server.stop()


def test_one_slow_redis_call_does_not_make_the_extender_unready(serve_extender, own_redis, prefix) -> None:
    store = RedisStore.from_url(own_redis.url, prefix, timeout=5)
    load_list(store, world({"cache-a-0": "node-a", "cache-a-1": "node-b"}), Identifier(IdentitySettings()))
    extender = serve_extender(redis_url=own_redis.url, workers=1)
    body = {"Pod": redis_pod(), "NodeNames": list(ZONES)}
    assert post(extender.url + "/filter", body)[1]["NodeNames"] == ["node-c", "node-c2"]
    assert get(extender.url + "/readyz")[0] == 200

    os.kill(own_redis.proc.pid, signal.SIGSTOP)  # one slow moment: a decision's 30 ms read times out
    try:
        status, reply = post(extender.url + "/filter", body)
        assert status == 200 and reply["NodeNames"] == ["node-c", "node-c2"]  # from the last known state
        time.sleep(0.2)
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    # within the breaker's second (store.retry_after): Redis answers again, so the service is ready
    status, ready = get(extender.url + "/readyz")
    assert status == 200, ready  # before: 503 "Redis unavailable" for the breaker's second

    os.kill(own_redis.proc.pid, signal.SIGSTOP)  # an outage
    try:
        started = time.monotonic()
        status, ready = get(extender.url + "/readyz")
        assert status == 503 and b"redis unreachable" in ready, ready
        assert time.monotonic() - started < 2.5  # answered within the kubelet probe's 2 s (+ slack)
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    time.sleep(0.2)
    assert get(extender.url + "/readyz")[0] == 200
