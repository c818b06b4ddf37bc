"""Fuzzing the HTTP API with generated bodies (hypothesis): whatever arrives, the answer is a
200, or a JSON 400/413 naming the problem, never a 5xx, and within the shipped 2 s httpTimeout.

Volume runs in process (Flask's test client over the real app, a real redis-server behind
it): 10,400 generated bodies across /filter, /prioritize (both nodeCacheCapable forms) and
/bind, mutations of real bodies and raw bytes, plus the cases of issue 11. A smaller set
goes over real HTTP to gunicorn (`serve`), framing included. Seeds are derandomized so CI
runs are reproducible; the runtime is kept under a minute."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from extender.core import settings as settings_mod
from extender.core.identity import Identifier
from extender.service.app import create_app
from extender.local.simulate import make_node, make_pod, redis_labels
from extender.state.loader import load_list

def dumps(value: Any) -> bytes:
    """JSON as a client may write it: integers of any size (orjson refuses over 64 bits)."""
    return json.dumps(value).encode()


FAST = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
NODES = ["node-a", "node-b", "node-c"]
ISSUE_QUANTITIES = ["1e999999", "1e200000", "1e400", "1e20", 2**64, "9" * 300, "1e50000", "x" * 100_000,
                    -1, 1.5, None, [], {}, True, "", " ", "1e-999999", "8Ei", "7Ei", "1.", ".5", "1e3Mi"]


def load_world(redis_url: str, prefix: str) -> Any:
    """Three nodes and two placed copies, loaded whole (with its epoch): the verbs decide."""
    from extender.state.store import RedisStore

    store = RedisStore.from_url(redis_url, prefix, timeout=5)
    items = [make_node(n, f"zone-{n[-1]}", "region-1", None, 8, 4) for n in NODES]
    items += [make_pod("redis", f"cache-a-{i}", redis_labels("cache-a", 1, "master" if i == 0 else "replica"),
                       "1Gi", "500m", NODES[i]) for i in range(2)]
    load_list(store, {"kind": "List", "items": items}, Identifier(settings_mod.Settings().identity))
    return store


@pytest.fixture(scope="module")
def client(redis_server):
    prefix = "rxfuzz:{fuzz}:"
    # a busy machine must not turn a 30 ms Redis timeout into an outage (and its wait for a
    # whole state) that the answer bound then reports: bad input is measured here, not Redis
    conf = settings_mod.load({"store.redis_url": redis_server.url, "store.key_prefix": prefix,
                              "store.socket_timeout": 0.5})
    store = load_world(redis_server.url, prefix)
    app = create_app(conf)
    yield app.test_client()
    store.clear()


ANSWER_BOUND_S = 2.0
"""Every answer within the shipped httpTimeout (2 s), whatever the body: the issue's bodies
took 1 to 26 s of parsing. Not tighter: a Redis call slowed by a loaded machine past the 0.5 s
socket timeout makes a decision wait up to WHOLE_WAIT (1.2 s) for the state, by design."""


def check(resp: Any, elapsed: float) -> None:
    assert elapsed < ANSWER_BOUND_S, f"answered in {elapsed:.2f} s"
    assert resp.status_code in (200, 400, 413), (resp.status_code, resp.get_data()[:300])
    body = json.loads(resp.get_data())
    if resp.status_code != 200:
        assert isinstance(body.get("Error"), str) and body["Error"], body
        assert len(body["Error"]) < 400
        assert "Traceback" not in body["Error"]


def call(client: Any, path: str, data: bytes) -> None:
    started = time.perf_counter()
    resp = client.post(path, data=data, content_type="application/json")
    check(resp, time.perf_counter() - started)


# --- strategies ------------------------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                      st.floats(allow_nan=False), st.text(max_size=30))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                          max_leaves=5)
quantity = st.one_of(
    st.sampled_from(ISSUE_QUANTITIES),
    st.builds(lambda n, s: f"{n}{s}", st.integers(min_value=0, max_value=10**30),
              st.sampled_from(["", "Ki", "Mi", "Gi", "Ei", "m", "k", "G", "E", "e3", "e-3", "e99999", "x"])),
    st.from_regex(r"[+-]?[0-9.]{0,12}([eE][+-]?[0-9]{1,7}|[KMGTPE]i?|[mun])?", fullmatch=True),
    json_leaf,
)
name = st.one_of(st.sampled_from(["cache-a-2", "web-1", ""]), st.text(max_size=20),
                 st.integers(min_value=1, max_value=400).map(lambda n: "p" * n), json_leaf)
labels = st.one_of(
    st.just(redis_labels("cache-a", 1, "replica")),
    st.dictionaries(st.sampled_from(["redis-extender.io/cluster", "redis-extender.io/shard", "redis-extender.io/role",
                                     "app", "k" * 300]),
                    st.one_of(st.text(max_size=70), st.sampled_from(["cache-a", "1", "master", "replica", "v" * 64]),
                              json_leaf), max_size=4),
    json_value,
)


@st.composite
def pod(draw: Any) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(json_value)
    requests = draw(st.dictionaries(st.sampled_from(["memory", "cpu", "pods"]), quantity, max_size=3))
    container = {"name": "c", "resources": draw(st.one_of(st.just({"requests": requests}), json_value))
                 if draw(st.integers(0, 10)) == 0 else {"requests": requests}}
    spec: Any = {"containers": draw(st.one_of(st.just([container]), st.just([container, container]), json_value))
                 if draw(st.integers(0, 10)) == 0 else [container]}
    if draw(st.booleans()):
        spec["overhead"] = draw(st.dictionaries(st.sampled_from(["memory", "cpu"]), quantity, max_size=2))
    if draw(st.integers(0, 10)) == 0:
        spec["initContainers"] = draw(json_value)
    meta = {"name": draw(name), "namespace": draw(st.one_of(st.just("redis"), name)), "labels": draw(labels),
            "uid": draw(st.one_of(st.just("u-1"), name))}
    return {"metadata": meta, "spec": draw(st.one_of(st.just(spec), json_value)) if draw(st.integers(0, 15)) == 0
            else spec}


@st.composite
def node(draw: Any) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(json_value)
    status = {"allocatable": draw(st.dictionaries(st.sampled_from(["memory", "cpu"]), quantity, max_size=2)),
              "conditions": draw(st.one_of(st.just([{"type": "Ready", "status": "True"}]), json_value))}
    return {"metadata": {"name": draw(st.one_of(st.sampled_from(NODES), name)), "labels": draw(labels),
                         "resourceVersion": draw(st.one_of(st.just("1"), st.text(max_size=4)))},
            "status": draw(st.one_of(st.just(status), json_value)) if draw(st.integers(0, 10)) == 0 else status}


names_body = st.builds(lambda p, n, k: dumps({k: p, "NodeNames": n}),
                       pod(), st.one_of(st.lists(st.one_of(st.sampled_from(NODES), name), max_size=6), json_value),
                       st.sampled_from(["Pod", "pod", "POD"]))
nodes_body = st.builds(lambda p, items: dumps({"Pod": p, "Nodes": {"items": items}, "NodeNames": None}),
                       pod(), st.one_of(st.lists(node(), max_size=5), json_value))
bind_body = st.builds(lambda d: dumps(d), st.one_of(
    st.fixed_dictionaries({"PodName": name, "PodNamespace": name, "PodUID": name,
                           "Node": st.one_of(st.sampled_from(NODES), name)}),
    json_value))
raw_bytes = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode))


@st.composite
def mutated(draw: Any, bodies: Any) -> bytes:
    """A generated body, cut, spliced or with bytes flipped."""
    data = draw(bodies)
    how = draw(st.integers(0, 3))
    if how == 1 and data:
        return data[: draw(st.integers(0, len(data) - 1))]
    if how == 2 and data:
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
    return data


# --- in process: volume ----------------------------------------------------------------------

@pytest.mark.parametrize("verb", ["filter", "prioritize"])
@settings(FAST, max_examples=1800)
@given(data=mutated(names_body))
def test_generated_names_bodies(client, verb: str, data: bytes) -> None:
    call(client, f"/{verb}", data)


@pytest.mark.parametrize("verb", ["filter", "prioritize"])
@settings(FAST, max_examples=1200)
@given(data=mutated(nodes_body))
def test_generated_full_node_bodies(client, verb: str, data: bytes) -> None:
    call(client, f"/{verb}", data)


@settings(FAST, max_examples=1400)
@given(data=mutated(bind_body))
def test_generated_binding_bodies(client, data: bytes) -> None:
    call(client, "/bind", data)


@pytest.mark.parametrize("verb", ["filter", "prioritize", "bind"])
@settings(FAST, max_examples=800)
@given(data=raw_bytes)
def test_raw_bytes(client, verb: str, data: bytes) -> None:
    call(client, f"/{verb}", data)


# Examples per parametrized case: 2x1800 + 2x1200 + 1400 + 3x800 = 9,800, plus the issue's
# 90 cases below (x 3 verbs, and once over HTTP) and 150 generated over HTTP: 10,400 bodies.


def _issue_bodies() -> list[tuple[str, bytes]]:
    out = []
    for q in ISSUE_QUANTITIES:
        base = make_pod("redis", "cache-a-2", redis_labels("cache-a", 1, "replica"), "1Gi", "500m")
        for where in ("memory", "cpu"):
            p = json.loads(json.dumps(base))
            p["spec"]["containers"][0]["resources"]["requests"][where] = q
            out.append(("names", dumps({"Pod": p, "NodeNames": NODES})))
            items = [make_node(n, "zone-a", "region-1", None, 8, 4) for n in NODES]
            items[0]["status"]["allocatable"][where] = q
            out.append(("nodes", dumps({"Pod": base, "Nodes": {"items": items}})))
    long = make_pod("redis", "p" * 10**6, redis_labels("cache-a", 1, "replica"), "1Gi", "500m")
    out.append(("names", dumps({"Pod": long, "NodeNames": NODES})))
    out.append(("names", dumps({"Pod": make_pod("redis", "x", {}, "1Gi", "1"),
                                       "NodeNames": [f"n{i}" for i in range(30_000)]})))
    return out


ISSUE_BODIES = _issue_bodies()


@pytest.mark.parametrize("verb", ["filter", "prioritize", "bind"])
def test_the_issue_cases(client, verb: str) -> None:
    for _form, data in ISSUE_BODIES:
        call(client, f"/{verb}", data)


# --- over real HTTP to gunicorn ---------------------------------------------------------------

@pytest.fixture(scope="module")
def served(redis_server):
    import os

    from tests.support.serving import Served

    store = load_world(redis_server.url, "rxfuzz:{http}:")
    env = {**os.environ, "REDIS_URL": redis_server.url, "REDIS_EXTENDER_KEY_PREFIX": "rxfuzz:{http}:",
           "REDIS_EXTENDER_MAX_BODY": str(1 << 20), "REDIS_EXTENDER_REDIS_TIMEOUT": "0.5"}
    s = Served(env, ["--workers", "1"])
    yield s
    s.stop()
    store.clear()


def http_call(url: str, data: bytes) -> None:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    elapsed = time.perf_counter() - started
    assert elapsed < ANSWER_BOUND_S and status in (200, 400, 413), (status, body[:300], elapsed)
    reply = json.loads(body)
    if status != 200:
        assert reply["Error"] and len(reply["Error"]) < 400


@settings(FAST, max_examples=150)
@given(data=st.one_of(mutated(names_body), mutated(nodes_body), mutated(bind_body)),
       verb=st.sampled_from(["filter", "prioritize", "bind"]))
def test_generated_bodies_over_http(served, data: bytes, verb: str) -> None:
    http_call(f"{served.url}/{verb}", data)


def test_the_issue_cases_over_http(served) -> None:
    for _form, data in ISSUE_BODIES:
        http_call(f"{served.url}/filter", data)
    http_call(f"{served.url}/filter", b"{" + b" " * (2 << 20) + b"}")  # over the 1 MiB cap: 413
