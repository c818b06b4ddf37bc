"""Full HTTP round trips: `redis-extender serve` (real gunicorn) against a real redis-server,
with the bodies a real kube-scheduler v1.20.2 sent and bodies of Redis pods of our own."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from extender.core.identity import Identifier
from extender.local.localredis import LocalRedis
from extender.core.settings import IdentitySettings
from extender.local.simulate import make_node, make_pod, redis_labels
from extender.engine.decider import WHOLE_WAIT
from extender.state.loader import load_list
from extender.state.store import RedisStore

DATA = Path(__file__).parents[1] / "data"


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"kube-scheduler-1.20-{name}.json").read_text())


def post(url: str, body: bytes | dict | list, timeout: float = 5) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


ZONES = {"node-a": "zone-a", "node-b": "zone-b", "node-c": "zone-c",
         "node-a2": "zone-a", "node-b2": "zone-b", "node-c2": "zone-c"}


def world(placed: dict[str, str | None]) -> dict[str, Any]:
    """Six nodes in three zones; shard 3 of cache-a with copies as given (pod -> node, None: Pending)."""
    items = [make_node(n, z, "region-1", None, 8, 4) for n, z in ZONES.items()]
    for name, node in placed.items():
        role = "master" if name.endswith("-0") else "replica"
        items.append(make_pod("redis", name, redis_labels("cache-a", 3, role), "1Gi", "500m", node))
    return {"kind": "List", "items": items}


def redis_pod(name: str = "cache-a-2", memory: str = "1Gi") -> dict[str, Any]:
    pod = make_pod("redis", name, redis_labels("cache-a", 3, "replica"), memory, "500m")
    pod.pop("apiVersion"), pod.pop("kind")  # as kube-scheduler sends it
    return pod


@pytest.fixture
def loaded(store: RedisStore):
    def load(placed: dict[str, str]) -> None:
        load_list(store, world(placed), Identifier(IdentitySettings()))
    return load


@pytest.fixture
def extender(serve_extender, loaded):
    loaded({"cache-a-0": "node-a", "cache-a-1": "node-b", "cache-a-2": None})
    return serve_extender()


@pytest.mark.parametrize("mode", ["ncc-true", "ncc-false"])
def test_captured_non_redis_pod_passes_through_untouched(extender, mode: str) -> None:
    body = sample(f"{mode}-filter")
    status, reply = post(extender.url + "/filter", body)
    assert status == 200
    names = body["NodeNames"] or [n["metadata"]["name"] for n in body["Nodes"]["items"]]
    assert reply["NodeNames"] == names
    assert reply["FailedNodes"] == {} and reply["FailedAndUnresolvableNodes"] == {} and reply["Error"] == ""
    if mode == "ncc-false":
        assert reply["Nodes"]["items"] == body["Nodes"]["items"]  # the full objects, unchanged
    else:
        assert reply["Nodes"] is None
    body = sample(f"{mode}-prioritize")
    names = body["NodeNames"] or [n["metadata"]["name"] for n in body["Nodes"]["items"]]
    status, scores = post(extender.url + "/prioritize", body)
    assert status == 200
    assert len({s["Score"] for s in scores}) == 1
    assert [s["Host"] for s in scores] == names


def test_redis_replica_avoids_the_zones_of_its_shard(extender) -> None:
    body = {"Pod": redis_pod(), "NodeNames": list(ZONES)}
    status, reply = post(extender.url + "/filter", body)
    assert status == 200
    assert reply["NodeNames"] == ["node-c", "node-c2"]
    assert reply["FailedAndUnresolvableNodes"]["node-a"] == \
        "node-a already holds shard 3 of cache-a (cache-a-0, master)"
    assert reply["FailedAndUnresolvableNodes"]["node-b2"].startswith(
        "zone-b already holds shard 3 of cache-a (cache-a-1, replica)")
    assert set(reply["FailedNodes"]) == {"node-a", "node-a2", "node-b", "node-b2"}


def test_full_node_bodies_use_the_labels_in_the_body(extender) -> None:
    nodes = [make_node(n, z, "region-1", None, 8, 4) for n, z in ZONES.items()]
    nodes[2]["metadata"]["labels"]["topology.kubernetes.io/zone"] = "zone-a"  # node-c moved to zone-a
    body = {"Pod": redis_pod(), "Nodes": {"items": nodes}}
    status, reply = post(extender.url + "/filter", body)
    assert status == 200
    assert [n["metadata"]["name"] for n in reply["Nodes"]["items"]] == ["node-c2"]
    assert reply["NodeNames"] == ["node-c2"]


def test_when_every_zone_holds_a_copy_the_least_crowded_are_accepted(serve_extender, loaded) -> None:
    loaded({"cache-a-0": "node-a", "cache-a-1": "node-b", "cache-a-2": "node-c", "cache-a-3": "node-a2"})
    extender = serve_extender()
    status, reply = post(extender.url + "/filter", {"Pod": redis_pod("cache-a-4"), "NodeNames": list(ZONES)})
    assert status == 200
    assert reply["NodeNames"] == ["node-b2", "node-c2"]  # zone-a holds two copies
    assert "zone-a holds 2 copies" in reply["FailedNodes"]["node-a2"] or \
        "already holds" in reply["FailedNodes"]["node-a2"]


def test_prioritize_prefers_the_copy_free_zone_with_full_range(extender) -> None:
    status, scores = post(extender.url + "/prioritize", {"Pod": redis_pod(), "NodeNames": list(ZONES)})
    assert status == 200
    by_host = {s["Host"]: s["Score"] for s in scores}
    assert max(by_host.values()) == 10 and min(by_host.values()) == 0
    # zone-c is copy-free; of its two equal nodes one is alone at 10 (the node it is reserved on)
    top, second = max(by_host["node-c"], by_host["node-c2"]), min(by_host["node-c"], by_host["node-c2"])
    assert top == 10 and second < 10
    assert all(by_host[n] < second for n in ("node-a", "node-b", "node-a2", "node-b2"))


def test_memory_headroom_rejects_with_a_readable_reason(extender) -> None:
    status, reply = post(extender.url + "/filter", {"Pod": redis_pod(memory="7Gi"), "NodeNames": ["node-c", "node-c2"]})
    assert reply["NodeNames"] == ["node-c", "node-c2"]  # 8Gi allocatable, nothing placed: fits
    status, reply = post(extender.url + "/filter", {"Pod": redis_pod(memory="8.5Gi"), "NodeNames": ["node-c", "node-a"]})
    assert reply["NodeNames"] == []
    assert reply["FailedNodes"]["node-c"] == \
        "memory headroom 8Gi < request 8.5Gi (allocatable 8Gi, requested 0)"
    assert "node-c" not in reply["FailedAndUnresolvableNodes"]  # preemption may help
    # node-a lacks room too, but it holds a copy: unresolvable, whatever its room
    assert reply["FailedAndUnresolvableNodes"]["node-a"].startswith("node-a already holds shard 3")


def test_any_key_case_is_accepted(extender) -> None:
    body = {"pod": redis_pod(), "nodenames": ["node-a", "node-c"]}
    status, reply = post(extender.url + "/filter", body)
    assert status == 200 and reply["NodeNames"] == ["node-c"]
    status, reply = post(extender.url + "/filter", {"POD": redis_pod(), "NODENAMES": ["node-c"]})
    assert status == 200 and reply["NodeNames"] == ["node-c"]


@pytest.mark.parametrize("body,message", [
    (b"{not json", "malformed JSON"),
    (b"", "empty request body"),
    (b"[1, 2]", "request body must be a JSON object"),
    (b'{"NodeNames": ["a"]}', "missing 'Pod'"),
    (b'{"Pod": "x", "NodeNames": ["a"]}', "'Pod' must be a JSON object"),
    (b'{"Pod": {"metadata": {"name": "p"}}, "NodeNames": "a"}', "'NodeNames' must be a list of strings"),
    (b'{"Pod": {"metadata": {"name": "p"}}}', "one of 'Nodes' or 'NodeNames'"),
    (b'{"Pod": {"metadata": {"name": "p"}}, "Nodes": {"items": [{}]}}', "'Nodes.items[0]' is not a Node"),
    (b'{"Pod": {"metadata": {"name": "p"}, "spec": {"containers": [{"resources": {"requests": {"memory": "lots"}}}]}}, '
     b'"NodeNames": []}', "bad resource request"),
], ids=["malformed", "empty", "array", "no-pod", "pod-string", "names-string", "no-candidates", "node-no-name",
        "bad-quantity"])
@pytest.mark.parametrize("verb", ["filter", "prioritize"])
def test_bad_input_is_a_400_naming_the_problem(extender, verb: str, body: bytes, message: str) -> None:
    status, reply = post(f"{extender.url}/{verb}", body)
    assert status == 400
    assert message in reply["Error"]


_BIG_MEMORY = ["1e999999", "1e20", 2**64, "9" * 300]


@pytest.mark.parametrize("memory", _BIG_MEMORY, ids=["1e999999", "1e20", "2^64", "300-nines"])
@pytest.mark.parametrize("verb", ["filter", "prioritize"])
def test_a_quantity_beyond_int64_is_a_fast_400_naming_the_field(extender, verb: str, memory: object) -> None:
    started = time.monotonic()
    status, reply = post(f"{extender.url}/{verb}", {"Pod": redis_pod(memory=memory), "NodeNames": ["node-c"]})
    assert (status, time.monotonic() - started < 1) == (400, True)
    assert "requests.memory'" in reply["Error"] and len(reply["Error"]) < 200


@pytest.mark.parametrize("allocatable", ["1e400", "1e50000"])
def test_node_allocatable_beyond_int64_is_a_400_in_prioritize(extender, allocatable: str) -> None:
    node = {"metadata": {"name": "node-c"}, "status": {"allocatable": {"memory": allocatable}}}
    status, reply = post(extender.url + "/prioritize", {"Pod": redis_pod(), "Nodes": {"items": [node]}})
    assert status == 400 and "'Nodes.items[0].status.allocatable.memory'" in reply["Error"]


def test_a_ten_million_character_pod_name_is_a_short_400_and_the_breaker_stays_closed(extender) -> None:
    pod = redis_pod()
    pod["metadata"]["name"] = "p" * 10**7
    status, reply = post(extender.url + "/filter", {"Pod": pod, "NodeNames": ["node-c"]}, timeout=30)
    assert status == 400 and len(reply["Error"]) < 200
    status, reply = post(extender.url + "/filter", {"Pod": redis_pod(), "NodeNames": ["node-c"]})
    assert status == 200 and reply["NodeNames"] == ["node-c"] and reply["Error"] == ""


def test_a_body_over_the_cap_is_a_413(serve_extender, loaded) -> None:
    loaded({})
    extender = serve_extender(REDIS_EXTENDER_MAX_BODY="4096")
    body = {"Pod": redis_pod(), "NodeNames": [f"node-{i}" for i in range(2000)]}
    status, reply = post(extender.url + "/filter", body)
    assert status == 413
    assert "4096 byte cap" in reply["Error"]


def test_health_readiness_and_metrics(extender) -> None:
    assert get(extender.url + "/healthz")[0] == 200
    status, body = get(extender.url + "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    post(extender.url + "/filter", {"Pod": redis_pod(), "NodeNames": list(ZONES)})
    post(extender.url + "/filter", b"{bad")
    status, text = get(extender.url + "/metrics")
    text = text.decode()
    assert status == 200
    assert 'redis_extender_requests_total{code="200",verb="filter"} 1.0' in text
    assert 'redis_extender_requests_total{code="400",verb="filter"} 1.0' in text
    assert 'redis_extender_decisions_total{outcome="spread"} 1.0' in text
    assert "redis_extender_request_seconds_bucket" in text
    assert 'redis_extender_cache_events_total{event="misses"}' in text


def test_readyz_is_503_before_any_state_is_loaded(serve_extender) -> None:
    extender = serve_extender()
    status, body = get(extender.url + "/readyz")
    assert status == 503 and b"no state loaded" in body


def test_bind_records_the_placement_so_the_next_sibling_sees_it(extender) -> None:
    status, reply = post(extender.url + "/bind", {"PodName": "cache-a-2", "PodNamespace": "redis",
                                                  "PodUID": "uid-redis-cache-a-2", "Node": "node-c"})
    assert (status, reply) == (200, {"Error": ""})
    sibling = redis_pod("cache-a-5")
    status, reply = post(extender.url + "/filter", {"Pod": sibling, "NodeNames": ["node-c", "node-c2"]})
    assert reply["FailedAndUnresolvableNodes"] == {
        "node-c": "node-c already holds shard 3 of cache-a (cache-a-2, replica)"}
    # every zone holds one copy now: the least crowded (all) stay, so the pod is not left Pending
    assert reply["NodeNames"] == ["node-c2"]


def test_offline_bind_of_a_pod_the_state_does_not_hold_is_refused(extender, store) -> None:
    # offline, the loaded state stands for the API: a pod it does not hold is not bound (live
    # mode asks the API, which refuses a pod it does not have pending); nothing is recorded
    status, reply = post(extender.url + "/bind", {"PodName": "web-1", "PodNamespace": "apps",
                                                  "PodUID": "u", "Node": "node-a"})
    assert status == 200 and "not in the extender's state" in reply["Error"], reply
    assert store.pod("apps", "web-1") is None


def test_bind_refuses_a_second_copy_on_one_node(extender) -> None:
    status, reply = post(extender.url + "/bind", {"PodName": "cache-a-2", "PodNamespace": "redis",
                                                  "PodUID": "uid-redis-cache-a-2", "Node": "node-a"})
    assert status == 200
    assert "node-a already holds shard 3 of cache-a (cache-a-0, master)" in reply["Error"]


@pytest.fixture
def lonely_redis():
    server = LocalRedis().start()
    yield server
    server.stop()


@pytest.mark.parametrize("policy", ["fail-closed", "fail-open"])
def test_redis_down_answers_fast_from_memory_then_by_policy(serve_extender, lonely_redis, prefix, policy) -> None:
    store = RedisStore.from_url(lonely_redis.url, prefix, timeout=5)
    load_list(store, world({"cache-a-0": "node-a", "cache-a-1": "node-b"}), Identifier(IdentitySettings()))
    extender = serve_extender(redis_url=lonely_redis.url, REDIS_EXTENDER_MAX_STALENESS="3",
                              REDIS_EXTENDER_ON_UNAVAILABLE=policy)
    body = {"Pod": redis_pod(), "NodeNames": list(ZONES)}
    assert post(extender.url + "/filter", body)[1]["NodeNames"] == ["node-c", "node-c2"]
    lonely_redis.stop()
    time.sleep(1.2)  # past the cache TTL: the next read has to go to Redis

    started = time.perf_counter()
    status, reply = post(extender.url + "/filter", body)
    assert time.perf_counter() - started < 0.1
    assert status == 200 and reply["NodeNames"] == ["node-c", "node-c2"]  # last known state

    time.sleep(3)  # past max_staleness
    for _ in range(3):
        started = time.perf_counter()
        status, reply = post(extender.url + "/filter", body)
        assert time.perf_counter() - started < 0.1
        assert status == 200
    if policy == "fail-closed":
        assert "placement state unavailable" in reply["Error"] and reply["NodeNames"] == []
    else:
        assert reply["Error"] == "" and reply["NodeNames"] == list(ZONES)
    status, scores = post(extender.url + "/prioritize", body)
    assert status == 200 and len({s["Score"] for s in scores}) == 1
    status, reply = post(extender.url + "/filter", sample("ncc-true-filter"))
    assert reply["NodeNames"] == ["node-a", "node-b", "node-c"]  # non-Redis pods never need Redis
    assert get(extender.url + "/readyz")[0] == 503


class WedgingProxy:
    """A TCP proxy to a real redis-server that can be wedged: from `wedge()` on it accepts and
    reads but never answers, like a Redis stuck in a long command or behind dropped packets."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self.target = port
        self.wedged = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[Any] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for end in (client, upstream):  # as redis-server and redis-py do: no Nagle delay
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                if not self.wedged.is_set():
                    dst.sendall(data)
        except OSError:
            pass

    def wedge(self) -> None:
        self.wedged.set()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_wedged_redis_never_makes_the_scheduler_wait(serve_extender, redis_server, store, prefix) -> None:
    load_list(store, world({"cache-a-0": "node-a", "cache-a-1": "node-b", "cache-a-2": None}),
              Identifier(IdentitySettings()))
    proxy = WedgingProxy(redis_server.port)
    try:
        extender = serve_extender(redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        body = {"Pod": redis_pod(), "NodeNames": list(ZONES)}
        assert post(extender.url + "/filter", body)[1]["NodeNames"] == ["node-c", "node-c2"]
        post(extender.url + "/prioritize", body)
        proxy.wedge()
        time.sleep(1.2)  # past the cache TTL: reads must go to Redis, which no longer answers
        bind = {"PodName": "cache-a-2", "PodNamespace": "redis", "PodUID": "u", "Node": "node-c"}
        for verb, payload in (("filter", body), ("prioritize", body), ("filter", body), ("bind", bind)):
            started = time.perf_counter()
            status, reply = post(f"{extender.url}/{verb}", payload)
            # reads, then writes, each could wait: never on the wedged Redis. The bind (off the
            # scheduler's loop) polls for up to WHOLE_WAIT for a Redis that failed just now
            limit = WHOLE_WAIT + 0.3 if verb == "bind" else 0.1
            assert time.perf_counter() - started < limit, verb
            assert status == 200
            if verb == "filter":
                assert reply["NodeNames"] == ["node-c", "node-c2"]  # from the last known state
    finally:
        proxy.close()
