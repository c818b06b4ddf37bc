"""The state knows whether it is whole (the epoch, state/store.py): a Redis restarted
empty on the same port, served by real gunicorn workers, is never read as "no copies here";
/readyz and the verbs agree; a new `load` brings decisions back."""
from __future__ import annotations

import time

import pytest

from extender.core.identity import Identifier
from extender.local.localredis import LocalRedis
from extender.local.processes import wait_until
from extender.core.settings import IdentitySettings
from extender.state.loader import load_list
from extender.state.store import RedisStore

from .test_http import ZONES, get, post, redis_pod, world

IDENTIFIER = Identifier(IdentitySettings())


@pytest.fixture
def own_redis():
    """A redis-server of this test's own; `restart()` replaces it by an empty one on its port."""
    servers = [LocalRedis().start()]

    class Own:
        url = servers[0].url

        @staticmethod
        def restart() -> None:
            servers[-1].stop()
            servers.append(LocalRedis(port=servers[0].port).start())

    yield Own
    servers[-1].stop()


@pytest.mark.parametrize("policy", ["fail-closed", "fail-open"])
def test_redis_restarted_empty_is_unavailable_never_empty(serve_extender, own_redis, prefix, policy) -> None:
    store = RedisStore.from_url(own_redis.url, prefix, timeout=5)
    load_list(store, world({"cache-a-0": "node-a", "cache-a-1": "node-b"}), IDENTIFIER)
    extender = serve_extender(redis_url=own_redis.url, workers=2, REDIS_EXTENDER_ON_UNAVAILABLE=policy)
    body = {"Pod": redis_pod(), "NodeNames": list(ZONES)}
    assert post(extender.url + "/filter", body)[1]["NodeNames"] == ["node-c", "node-c2"]
    assert get(extender.url + "/readyz")[0] == 200

    own_redis.restart()  # the same port, nothing in it (no persistence), as a restarted cache pod
    outcomes: dict[str, int] = {}
    time.sleep(1.1)  # past every cache TTL
    for _ in range(6):  # both workers; each waits WHOLE_WAIT (2 s) for the state, then the policy
        status, reply = post(extender.url + "/filter", body)
        assert status == 200
        if reply["Error"]:
            outcome = "error"
        elif reply["NodeNames"] == list(ZONES):
            outcome = "all"  # fail-open: every node, and said so in the log, not "no copies"
        else:
            assert reply["NodeNames"] == ["node-c", "node-c2"], reply  # the last known state's answer
            outcome = "decided"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    expected = "error" if policy == "fail-closed" else "all"
    # never from the empty Redis; the first read on a connection the restart broke counts as
    # Redis down, and may be answered from the last known (whole) state, as documented
    assert outcomes.get(expected, 0) >= 4 and set(outcomes) <= {expected, "decided"}, outcomes
    status, ready = get(extender.url + "/readyz")
    assert status == 503, ready
    # the bind of the sibling onto its sibling's node is not taken as an unknown pod's
    status, reply = post(extender.url + "/bind", {"PodName": "cache-a-2", "PodNamespace": "redis",
                                                  "PodUID": "u", "Node": "node-a"})
    assert status == 200 and "not whole" in reply["Error"], reply
    assert store.pod("redis", "cache-a-2") is None

    # a new complete state: decisions come back, with its copies (the generation restarted lower)
    load_list(store, world({"cache-a-0": "node-c", "cache-a-1": "node-b"}), IDENTIFIER)
    wait_until(lambda: get(extender.url + "/readyz")[0] == 200, timeout=5, what="ready again")
    for _ in range(6):
        status, reply = post(extender.url + "/filter", body)
        assert reply["Error"] == "" and reply["NodeNames"] == ["node-a", "node-a2"], reply


def test_a_load_under_way_is_not_whole(store: RedisStore) -> None:
    load_list(store, world({}), IDENTIFIER)
    assert store.epoch()
    store.clear()  # what a replacing load does first
    assert store.epoch() == ""
    load_list(store, world({}), IDENTIFIER, replace=False)  # a merge into nothing marks it
    first = store.epoch()
    load_list(store, world({}), IDENTIFIER, replace=False)  # a merge into a whole state keeps it
    assert store.epoch() == first
