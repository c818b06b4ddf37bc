"""Untrusted callers, second pass (issue 20), over real gunicorn against a real redis-server:
Kubernetes' rules for names, labels and quantities at every entry, /preempt's candidate cap
and int64 bounds, /explain?pod= errors that quote at most 40 characters, and an offline /bind
as strict as live about which pod it records where."""
from __future__ import annotations

import copy
import urllib.parse

import pytest

from extender.local.simulate import redis_labels

from extender.state.loader import load_list

from .test_http import ZONES, extender, get, loaded, post, redis_pod  # noqa: F401 (fixtures)
from .test_preempt_explain import IDENTIFIER, meta, pod_of
from .test_preempt_explain import world as preempt_world


@pytest.fixture
def preempting(store, serve_extender):
    """The world of test_preempt_explain (web pods to preempt), served."""
    load_list(store, preempt_world(), IDENTIFIER)
    return serve_extender()

BIND = {"PodName": "cache-a-2", "PodNamespace": "redis", "PodUID": "uid-redis-cache-a-2", "Node": "node-c"}


def with_requests(memory: str, cpu: str) -> dict:
    pod = redis_pod()
    pod["spec"]["containers"][0]["resources"]["requests"] = {"memory": memory, "cpu": cpu}
    return pod


def labelled(key: str, value: str) -> dict:
    pod = redis_pod()
    pod["metadata"]["labels"][key] = value
    return pod


def named(name: str = "cache-a-2", namespace: str = "redis") -> dict:
    pod = redis_pod()
    pod["metadata"]["name"], pod["metadata"]["namespace"] = name, namespace
    return pod


BAD_PODS = {
    "negative memory": (with_requests("-1", "1"), "greater than or equal to 0"),
    "negative cpu": (with_requests("1Gi", "-1"), "greater than or equal to 0"),
    "negative millicores": (with_requests("1Gi", "-5m"), "greater than or equal to 0"),
    "a name with a newline": (named("\n"), "DNS-1123 subdomain"),
    "a name '*'": (named("*"), "DNS-1123 subdomain"),
    "a name that is a key of the store": (named("rx:{main}:nodes"), "DNS-1123 subdomain"),
    "an upper-case name": (named("Cache-a-2"), "DNS-1123 subdomain"),
    "a namespace with a dot": (named(namespace="red.is"), "DNS-1123 label"),
    "a label key with two slashes": (labelled("a/b/c", "x"), "label key"),
    "a label key with a space": (labelled("app name", "x"), "label key"),
    "a label value ending in '-'": (labelled("tier", "cache-"), "label value"),
    "a label value with '/'": (labelled("tier", "a/b"), "label value"),
}


def test_kubernetes_rules_for_pods_at_every_entry(extender) -> None:
    """Every bad pod on every route that reads a pod (one server for all: a start is ~4 s)."""
    wrong = []
    for case, (pod, words) in BAD_PODS.items():
        for route in ("/filter", "/prioritize", "/explain", "/preempt"):
            body = {"/explain": pod, "/preempt": {"Pod": pod, "NodeNameToMetaVictims": {}}}.get(
                route, {"Pod": pod, "NodeNames": ["node-a", "node-c"]})
            status, reply = post(extender.url + route, body)
            if status != 400 or words not in reply["Error"] or len(reply["Error"]) >= 400:
                wrong.append((case, route, status, reply))
    assert not wrong, wrong


@pytest.mark.parametrize("names, words", [
    (["node-a", "\n"], "'NodeNames[1]' is not a DNS-1123 subdomain"),
    (["node-a", "rx:{main}:nodes"], "'NodeNames[1]' is not a DNS-1123 subdomain"),
    (["Node-A"], "'NodeNames[0]' is not a DNS-1123 subdomain"),
])
def test_candidate_names_follow_kubernetes_node_names(extender, names: list[str], words: str) -> None:
    status, reply = post(extender.url + "/filter", {"Pod": redis_pod(), "NodeNames": names})
    assert status == 400 and words in reply["Error"], reply


def test_a_node_with_negative_allocatable_is_a_400(extender) -> None:
    from extender.local.simulate import make_node

    node = make_node("node-a", "zone-a", "region-1", None, 8, 4)
    node["status"]["allocatable"]["memory"] = "-8Gi"
    status, reply = post(extender.url + "/filter", {"Pod": redis_pod(), "Nodes": {"items": [node]}})
    assert status == 400 and "status.allocatable.memory' must be greater than or equal to 0" in reply["Error"], reply


@pytest.mark.parametrize("field, value, words", [
    ("PodName", "\n", "'PodName' is not a DNS-1123 subdomain"),
    ("PodName", "*", "'PodName' is not a DNS-1123 subdomain"),
    ("PodName", "rx:{main}:nodes", "'PodName' is not a DNS-1123 subdomain"),
    ("PodNamespace", "Redis", "'PodNamespace' is not a DNS-1123 label"),
    ("Node", "node a", "'Node' is not a DNS-1123 subdomain"),
])
def test_bind_names_follow_kubernetes(extender, store, field: str, value: str, words: str) -> None:
    status, reply = post(extender.url + "/bind", {**BIND, field: value})
    assert status == 400 and words in reply["Error"], reply
    assert not [k for k in store.pod_keys() if k not in ("redis/cache-a-0", "redis/cache-a-1", "redis/cache-a-2")]


# --- offline /bind: as strict as live ----------------------------------------------------------

def test_offline_bind_never_moves_a_placed_pod(extender, store) -> None:
    status, reply = post(extender.url + "/bind", {**BIND, "PodName": "cache-a-1", "PodUID": "uid-redis-cache-a-1"})
    assert status == 200 and "already bound to node-b" in reply["Error"], reply
    assert store.pod("redis", "cache-a-1")["node"] == "node-b"


def test_offline_bind_never_overwrites_a_uid(extender, store) -> None:
    status, reply = post(extender.url + "/bind", {**BIND, "PodUID": "someone-else"})
    assert status == 200 and "another UID" in reply["Error"], reply
    stored = store.pod("redis", "cache-a-2")
    assert stored["uid"] == "uid-redis-cache-a-2" and stored["node"] == ""


def test_offline_bind_never_records_an_invented_pod(extender, store) -> None:
    invented = redis_pod("cache-a-9")  # a fourth copy of shard 3, unknown to the loaded state
    status, reply = post(extender.url + "/filter", {"Pod": invented, "NodeNames": list(ZONES)})
    assert status == 200 and reply["NodeNames"]  # its filter is answered (a hypothetical pod) ...
    status, reply = post(extender.url + "/bind", {**BIND, "PodName": "cache-a-9", "PodUID": "uid-redis-cache-a-9",
                                                  "Node": reply["NodeNames"][0]})
    assert status == 200 and "not in the extender's state" in reply["Error"], reply  # ... never recorded
    assert store.pod("redis", "cache-a-9") is None
    assert len(store.shard_state("redis/cache-a", "3").copies) == 2


def test_offline_bind_of_a_loaded_pending_pod_is_recorded_once(extender, store) -> None:
    assert post(extender.url + "/bind", BIND) == (200, {"Error": ""})
    assert store.pod("redis", "cache-a-2")["node"] == "node-c"
    assert post(extender.url + "/bind", BIND) == (200, {"Error": ""})  # the same bind again: nothing moves
    status, reply = post(extender.url + "/bind", {**BIND, "Node": "node-c2"})
    assert "already bound to node-c" in reply["Error"] and store.pod("redis", "cache-a-2")["node"] == "node-c"


# --- /preempt: the candidate cap and int64 ---------------------------------------------------

def test_preempt_has_the_candidate_cap_of_filter(preempting) -> None:
    extender = preempting
    many = {f"node-{i}": None for i in range(20_001)}
    status, reply = post(extender.url + "/preempt", {"Pod": pod_of("cache-a-2"), "NodeNameToMetaVictims": many})
    assert status == 400 and "over the cap of 20000" in reply["Error"], reply


@pytest.mark.parametrize("pdb", [2**64 - 1, 2**63, -1])
def test_preempt_num_pdb_violations_stay_within_int64(preempting, pdb: int) -> None:
    extender = preempting
    victims = meta(node_c2=["web-1"])
    victims["node-c2"]["NumPDBViolations"] = pdb
    status, reply = post(extender.url + "/preempt", {"Pod": pod_of("cache-a-2"), "NodeNameToMetaVictims": victims})
    assert status == 400 and "int64" in reply["Error"], reply


def test_preempt_echoes_the_largest_int64(preempting) -> None:
    extender = preempting
    victims = meta(node_c2=["web-1"])
    victims["node-c2"]["NumPDBViolations"] = 2**63 - 1
    status, reply = post(extender.url + "/preempt", {"Pod": pod_of("cache-a-2"), "NodeNameToMetaVictims": copy.deepcopy(victims)})
    assert status == 200 and reply["NodeNameToMetaVictims"]["node-c2"]["NumPDBViolations"] == 2**63 - 1, reply


# --- /explain?pod= ---------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["x" * 4000, "redis/" + "x" * 4000, "a" * 4000 + "/b", "redis/Cache-A", "re dis/x"])
def test_explain_errors_quote_at_most_40_characters(extender, key: str) -> None:
    status, body = get(extender.url + "/explain?pod=" + urllib.parse.quote(key))
    assert status == 400 and len(body) < 300, body
    assert "x" * 41 not in body.decode() and "a" * 41 not in body.decode()
