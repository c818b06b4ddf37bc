"""The extender wire protocol (extender.protocol): requests captured from a real
kube-scheduler v1.20.2 in both modes, any key case, bad input, and the exact reply shapes."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from extender.core.identity import Identifier
from extender.core.model import Member, Role
from extender.protocol import (ProtocolError, filter_reply, node_from_object, parse_binding,
                               parse_extender_args, pod_requests, prioritize_reply)
from extender.core.settings import DEFAULT_LEVELS, IdentitySettings

from .builders import Gi, Mi

DATA = Path(__file__).resolve().parent.parent / "data"
IDENTIFIER = Identifier(IdentitySettings())
NAMES = ["node-a", "node-b", "node-c"]


def captured(mode: str, verb: str) -> bytes:
    return (DATA / f"kube-scheduler-1.20-ncc-{mode}-{verb}.json").read_bytes()


def body(**top) -> bytes:
    return orjson.dumps(top)


def redis_pod(**labels) -> dict:
    return {"metadata": {"name": "cache-a-4", "namespace": "ns", "uid": "u-1",
                         "labels": {"redis-extender.io/cluster": "cache-a", "redis-extender.io/shard": "3",
                                    "redis-extender.io/role": "master", **labels}},
            "spec": {"containers": [{"name": "redis", "resources": {"requests": {"memory": "1Gi", "cpu": "500m"}}}]}}


# --- the captured bodies ------------------------------------------------------------------

@pytest.mark.parametrize("verb, names", [
    pytest.param("filter", NAMES, id="filter-all-three-nodes"),
    pytest.param("prioritize", ["node-b", "node-c"], id="prioritize-filter-survivors"),
])
def test_nodes_mode_capture_is_parsed_with_full_node_objects(verb, names):
    args = parse_extender_args(captured("false", verb), IDENTIFIER)
    assert args.names_mode is False
    assert args.node_names == names
    assert [n["metadata"]["name"] for n in args.nodes] == names
    assert args.pod.key == "default/probe-pod"
    assert args.pod.member is None  # labels app=probe: not a Redis pod
    assert (args.pod.memory_request, args.pod.cpu_request) == (64 * Mi, 100)


@pytest.mark.parametrize("verb, names", [
    pytest.param("filter", NAMES, id="filter-all-three-names"),
    pytest.param("prioritize", ["node-b", "node-c"], id="prioritize-filter-survivors"),
])
def test_names_mode_capture_is_parsed_with_names_only(verb, names):
    args = parse_extender_args(captured("true", verb), IDENTIFIER)
    assert args.names_mode is True
    assert args.node_names == names
    assert args.nodes is None
    assert args.pod.key == "default/probe-pod-ncc"
    assert args.pod.uid == "1174ee01-caf2-4953-9e7a-dfc1bae279fb"


def recase(obj, how):
    """Top-level keys and the Nodes object's keys in another case; Pod/Node bodies keep theirs."""
    out = {how(k): v for k, v in obj.items()}
    nodes_key = how("Nodes")
    if isinstance(out.get(nodes_key), dict):
        out[nodes_key] = {how(k): v for k, v in out[nodes_key].items()}
    return out


@pytest.mark.parametrize("mode", [pytest.param("true", id="names-mode"), pytest.param("false", id="nodes-mode")])
@pytest.mark.parametrize("how", [pytest.param(str.lower, id="lowercase"), pytest.param(str.upper, id="UPPERCASE"),
                                 pytest.param(str.swapcase, id="sWAPPED")])
def test_top_level_keys_are_accepted_in_any_case(mode, how):
    original = json.loads(captured(mode, "filter"))
    args = parse_extender_args(orjson.dumps(recase(original, how)), IDENTIFIER)
    assert args.node_names == NAMES
    assert args.names_mode is (mode == "true")
    assert args.pod.name.startswith("probe-pod")


def test_redis_pod_is_identified_from_its_labels():
    args = parse_extender_args(body(Pod=redis_pod(), NodeNames=["n1"]), IDENTIFIER)
    assert args.pod.member == Member("ns/cache-a", "3", Role.MASTER)
    assert (args.pod.memory_request, args.pod.cpu_request) == (1 * Gi, 500)


def test_pod_without_namespace_is_in_default():
    pod = redis_pod()
    del pod["metadata"]["namespace"]
    args = parse_extender_args(body(Pod=pod, NodeNames=[]), IDENTIFIER)
    assert args.pod.key == "default/cache-a-4"
    assert args.pod.member.cluster == "default/cache-a"


def test_empty_nodenames_list_is_valid():
    args = parse_extender_args(body(Pod=redis_pod(), NodeNames=[]), IDENTIFIER)
    assert args.node_names == [] and args.names_mode


def test_nodes_with_null_items_means_no_candidates():
    args = parse_extender_args(body(Pod=redis_pod(), Nodes={"metadata": {}, "items": None}), IDENTIFIER)
    assert args.node_names == [] and args.nodes == [] and not args.names_mode


# --- bad requests -------------------------------------------------------------------------

@pytest.mark.parametrize("data, words", [
    pytest.param(b"", "empty request body", id="empty-body"),
    pytest.param(b"{not json", "malformed JSON", id="malformed-json"),
    pytest.param(b"[1, 2]", "request body must be a JSON object", id="body-is-an-array"),
    pytest.param(b'{"NodeNames": ["n1"]}', "missing 'Pod'", id="missing-pod"),
    pytest.param(b'{"Pod": null, "NodeNames": ["n1"]}', "missing 'Pod'", id="pod-null"),
    pytest.param(b'{"Pod": [], "NodeNames": ["n1"]}', "'Pod' must be a JSON object", id="pod-is-a-list"),
    pytest.param(b'{"Pod": "p", "NodeNames": ["n1"]}', "'Pod' must be a JSON object", id="pod-is-a-string"),
    pytest.param(b'{"Pod": {"metadata": {"name": "p"}}}', "one of 'Nodes' or 'NodeNames'",
                 id="neither-nodes-nor-nodenames"),
    pytest.param(b'{"Pod": {"metadata": {"name": "p"}}, "Nodes": null, "NodeNames": null}',
                 "one of 'Nodes' or 'NodeNames'", id="both-null"),
    pytest.param(b'{"Pod": {"metadata": {"name": "p"}}, "NodeNames": "n1"}', "'NodeNames' must be a list of strings",
                 id="nodenames-is-a-string"),
    pytest.param(b'{"Pod": {"metadata": {"name": "p"}}, "NodeNames": ["n1", 2]}',
                 "'NodeNames' must be a list of strings", id="nodenames-holds-a-number"),
    pytest.param(b'{"Pod": {"metadata": {"name": "p"}}, "Nodes": []}', "'Nodes' must be a JSON object",
                 id="nodes-is-a-list"),
    pytest.param(b'{"Pod": {"metadata": {"name": "p"}}, "Nodes": {"items": {}}}', "'Nodes.items' must be a list",
                 id="nodes-items-not-a-list"),
    pytest.param(b'{"Pod": {"metadata": {"name": "p"}}, "Nodes": {"items": [{"metadata": {}}]}}',
                 "'Nodes.items[0]' is not a Node with metadata.name", id="node-without-name"),
    pytest.param(b'{"Pod": {"spec": {}}, "NodeNames": []}', "'Pod.metadata' must be an object",
                 id="pod-without-metadata"),
    pytest.param(b'{"Pod": {"metadata": {"name": ""}}, "NodeNames": []}',
                 "'Pod.metadata.name' must be a non-empty string", id="pod-with-empty-name"),
    pytest.param(b'{"Pod": {"metadata": {"name": "p", "labels": ["app=x"]}}, "NodeNames": []}',
                 "'Pod.metadata.labels' must be an object", id="labels-not-an-object"),
    pytest.param(b'{"Pod": {"metadata": {"name": "p"}, "spec": "x"}, "NodeNames": []}', "'Pod.spec' must be an object",
                 id="spec-not-an-object"),
    pytest.param(b'{"Pod": {"metadata": {"name": "p"}, "spec": {"containers": [{"resources": {"requests": '
                 b'{"memory": "lots"}}}]}}, "NodeNames": []}', "bad resource request", id="bad-memory-quantity"),
])
def test_bad_request_raises_protocol_error_naming_the_problem(data, words):
    with pytest.raises(ProtocolError) as caught:
        parse_extender_args(data, IDENTIFIER)
    assert words in str(caught.value)


@pytest.mark.parametrize("containers", [
    pytest.param('"x"', id="containers-is-a-string"),
    pytest.param('["x"]', id="container-is-a-string"),
    pytest.param('[{"resources": "x"}]', id="resources-is-a-string"),
    pytest.param('[{"resources": {"requests": {"cpu": true}}}]', id="cpu-is-a-boolean"),
])
def test_wrong_typed_containers_are_a_protocol_error(containers):
    data = ('{"Pod": {"metadata": {"name": "p"}, "spec": {"containers": %s}}, "NodeNames": []}' % containers).encode()
    with pytest.raises(ProtocolError, match="bad resource request"):
        parse_extender_args(data, IDENTIFIER)


@pytest.mark.parametrize("node, message", [
    pytest.param({"metadata": {"name": "n", "labels": ["zone=a"]}}, "'Nodes.items[0]'.metadata.labels must be an object",
                 id="labels-is-a-list"),
    pytest.param({"metadata": {"name": "n"}, "status": "Ready"}, "'Nodes.items[0]'.status must be an object",
                 id="status-is-a-string"),
    pytest.param({"metadata": {"name": "n"}, "status": {"conditions": ["Ready"]}},
                 "'Nodes.items[0]'.status.conditions[0] must be an object", id="condition-is-a-string"),
    pytest.param({"metadata": {"name": "n"}, "status": {"allocatable": 5}},
                 "'Nodes.items[0]'.status.allocatable must be an object", id="allocatable-is-a-number"),
    pytest.param({"metadata": {"name": "n"}, "spec": "x"}, "'Nodes.items[0]'.spec must be an object",
                 id="spec-is-a-string"),
])
def test_wrong_typed_node_object_is_rejected_as_a_protocol_error_naming_the_field(node, message):
    data = orjson.dumps({"Pod": redis_pod(), "Nodes": {"items": [node]}})
    with pytest.raises(ProtocolError) as caught:
        parse_extender_args(data, IDENTIFIER)
    assert str(caught.value) == message


def test_protocol_error_is_a_value_error():
    assert issubclass(ProtocolError, ValueError)


# --- filter replies -----------------------------------------------------------------------

def reply(data: bytes):
    return json.loads(data)


def test_filter_reply_keys_are_capitalized_and_lists_never_null_when_nothing_is_accepted():
    args = parse_extender_args(captured("true", "filter"), IDENTIFIER)
    out = reply(filter_reply(args, [], {}, {}))
    assert list(out) == ["Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"]
    assert out["NodeNames"] == []
    assert out["FailedNodes"] == {} and out["FailedAndUnresolvableNodes"] == {}
    assert out["Error"] == ""
    assert out["Nodes"] is None  # names mode: the scheduler reads NodeNames


def test_names_mode_reply_is_a_subset_of_the_input_in_input_order():
    args = parse_extender_args(captured("true", "filter"), IDENTIFIER)
    out = reply(filter_reply(args, ["node-c", "node-a", "node-z"], {"node-b": "full"}, {}))
    assert out["NodeNames"] == ["node-a", "node-c"]


def test_nodes_mode_reply_returns_the_full_node_objects_of_accepted_nodes():
    args = parse_extender_args(captured("false", "filter"), IDENTIFIER)
    original = {n["metadata"]["name"]: n for n in json.loads(captured("false", "filter"))["Nodes"]["items"]}
    out = reply(filter_reply(args, ["node-c", "node-b"], {}, {"node-a": "zone-a already holds shard 3"}))
    assert [n["metadata"]["name"] for n in out["Nodes"]["items"]] == ["node-b", "node-c"]
    assert out["Nodes"]["items"] == [original["node-b"], original["node-c"]]
    assert out["NodeNames"] == ["node-b", "node-c"]


def test_nodes_mode_reply_with_nothing_accepted_has_empty_items_not_null():
    args = parse_extender_args(captured("false", "filter"), IDENTIFIER)
    out = reply(filter_reply(args, [], {"node-a": "x"}, {}))
    assert out["Nodes"]["items"] == [] and out["NodeNames"] == []


def test_unresolvable_reasons_appear_in_both_failed_maps():
    args = parse_extender_args(captured("true", "filter"), IDENTIFIER)
    out = reply(filter_reply(args, ["node-c"], {"node-b": "memory headroom 0 < request 1Gi"},
                             {"node-a": "node-a already holds shard 3 of cache-a (cache-a-4, master)"}))
    assert out["FailedNodes"] == {"node-b": "memory headroom 0 < request 1Gi",
                                  "node-a": "node-a already holds shard 3 of cache-a (cache-a-4, master)"}
    assert out["FailedAndUnresolvableNodes"] == {
        "node-a": "node-a already holds shard 3 of cache-a (cache-a-4, master)"}


def test_filter_reply_carries_the_error():
    args = parse_extender_args(captured("true", "filter"), IDENTIFIER)
    assert reply(filter_reply(args, [], {}, {}, error="state unavailable"))["Error"] == "state unavailable"


# --- prioritize replies -------------------------------------------------------------------

def test_prioritize_reply_is_a_bare_array_of_host_and_integer_score_in_input_order():
    out = reply(prioritize_reply(["node-b", "node-c", "node-a"], [0, 7, 10]))
    assert out == [{"Host": "node-b", "Score": 0}, {"Host": "node-c", "Score": 7}, {"Host": "node-a", "Score": 10}]
    assert all(type(e["Score"]) is int for e in out)


def test_prioritize_reply_refuses_scores_that_do_not_match_the_hosts():
    with pytest.raises(ValueError, match="2 scores for 1 hosts"):
        prioritize_reply(["node-a"], [6, 0])


def test_prioritize_reply_for_no_nodes_is_an_empty_array():
    assert reply(prioritize_reply([], [])) == []


# --- pod requests -------------------------------------------------------------------------

def container(memory=None, cpu=None):
    requests = {k: v for k, v in (("memory", memory), ("cpu", cpu)) if v is not None}
    return {"name": "c", "resources": {"requests": requests}}


@pytest.mark.parametrize("spec, expected", [
    pytest.param({"containers": [container("1Gi", "500m"), container("512Mi", "250m")]}, (Gi + 512 * Mi, 750),
                 id="containers-are-summed"),
    pytest.param({"containers": [container("1Gi", "500m")], "initContainers": [container("2Gi", "100m")]},
                 (2 * Gi, 500), id="init-container-larger-wins-per-resource"),
    pytest.param({"containers": [container("1Gi", "500m")],
                  "initContainers": [container("256Mi", "2"), container("512Mi", "1")]},
                 (Gi, 2000), id="largest-init-container-not-their-sum"),
    pytest.param({"containers": [container("1Gi", "500m")], "overhead": {"memory": "128Mi", "cpu": "100m"}},
                 (Gi + 128 * Mi, 600), id="overhead-is-added"),
    pytest.param({"containers": [container("1Gi", "1")], "initContainers": [container("2Gi")],
                  "overhead": {"memory": "1Gi"}}, (3 * Gi, 1000), id="overhead-added-after-init-max"),
    pytest.param({"containers": [{"name": "c"}, {"name": "d", "resources": {}},
                                 {"name": "e", "resources": {"requests": None}}]}, (0, 0),
                 id="no-requests-is-zero"),
    pytest.param({}, (0, 0), id="empty-spec"),
])
def test_pod_requests(spec, expected):
    assert pod_requests(spec) == expected


# --- nodes from API objects ---------------------------------------------------------------

def test_node_from_a_captured_node_object():
    item = json.loads(captured("false", "filter"))["Nodes"]["items"][0]
    node = node_from_object(item, DEFAULT_LEVELS)
    assert node.name == "node-a"
    assert node.domains == ("node-a", "zone-a", None)  # no region label: unknown
    assert (node.allocatable_memory, node.allocatable_cpu) == (8 * Gi, 4000)
    assert node.ready


@pytest.mark.parametrize("status, spec, ready", [
    pytest.param({"conditions": [{"type": "Ready", "status": "True"}]}, {}, True, id="ready-true"),
    pytest.param({"conditions": [{"type": "Ready", "status": "False"}]}, {}, False, id="ready-false"),
    pytest.param({"conditions": [{"type": "Ready", "status": "Unknown"}]}, {}, False, id="ready-unknown"),
    pytest.param({"conditions": [{"type": "Ready", "status": "True"}]}, {"unschedulable": True}, False,
                 id="cordoned-is-not-ready"),
    pytest.param({}, {}, True, id="no-conditions-assumed-ready"),
])
def test_node_readiness(status, spec, ready):
    node = node_from_object({"metadata": {"name": "n"}, "status": status, "spec": spec}, DEFAULT_LEVELS)
    assert node.ready is ready


@pytest.mark.parametrize("status, expected", [
    pytest.param({"capacity": {"memory": "4Gi", "cpu": "2"}}, (4 * Gi, 2000), id="capacity-when-no-allocatable"),
    pytest.param({"allocatable": {"memory": "lots", "cpu": "2"}}, (None, None), id="bad-quantity-is-unknown"),
    pytest.param({}, (None, None), id="no-figures-unknown"),
])
def test_node_allocatable(status, expected):
    node = node_from_object({"metadata": {"name": "n"}, "status": status}, DEFAULT_LEVELS)
    assert (node.allocatable_memory, node.allocatable_cpu) == expected


# --- binding ------------------------------------------------------------------------------

@pytest.mark.parametrize("how", [pytest.param(lambda k: k, id="Capitalized"), pytest.param(str.lower, id="lowercase")])
def test_parse_binding(how):
    data = orjson.dumps({how(k): v for k, v in
                         {"PodName": "cache-a-4", "PodNamespace": "ns", "PodUID": "u-1", "Node": "node-a"}.items()})
    b = parse_binding(data)
    assert (b.pod_name, b.pod_namespace, b.pod_uid, b.node) == ("cache-a-4", "ns", "u-1", "node-a")


def test_binding_accepts_an_empty_uid():
    b = parse_binding(b'{"PodName": "p", "PodNamespace": "ns", "PodUID": "", "Node": "n"}')
    assert b.pod_uid == ""


@pytest.mark.parametrize("data, missing", [
    pytest.param(b'{"PodNamespace": "ns", "PodUID": "u", "Node": "n"}', "PodName", id="no-pod-name"),
    pytest.param(b'{"PodName": "p", "PodUID": "u", "Node": "n"}', "PodNamespace", id="no-namespace"),
    pytest.param(b'{"PodName": "p", "PodNamespace": "ns", "Node": "n"}', "PodUID", id="no-uid"),
    pytest.param(b'{"PodName": "p", "PodNamespace": "ns", "PodUID": "u", "Node": ""}', "Node", id="empty-node"),
    pytest.param(b'{"PodName": 1, "PodNamespace": "ns", "PodUID": "u", "Node": "n"}', "PodName",
                 id="name-not-a-string"),
])
def test_bad_binding_names_the_field(data, missing):
    with pytest.raises(ProtocolError, match=f"'{missing}'"):
        parse_binding(data)


@pytest.mark.parametrize("data", [pytest.param(b"", id="empty"), pytest.param(b"{", id="malformed"),
                                  pytest.param(b"[]", id="not-an-object")])
def test_unreadable_binding_is_a_protocol_error(data):
    with pytest.raises(ProtocolError):
        parse_binding(data)


# --- memos of repeated candidate lists and Node bodies --------------------------------------

def test_a_repeated_candidate_list_is_shared_and_gives_the_same_arguments():
    from extender.protocol import NamesMemo

    memo = NamesMemo()
    body = json.dumps({"Pod": {"metadata": {"name": "p", "labels": {"NodeNames": "x"}}},
                       "Nodes": None, "NodeNames": ["n1", "n2"]}).encode()
    first = parse_extender_args(body, IDENTIFIER, memo)
    second = parse_extender_args(body, IDENTIFIER, memo)
    assert second.node_names == ["n1", "n2"] and second.candidates is first.candidates
    assert second.pod.name == "p" and (memo.hits, memo.misses) == (1, 1)
    other = parse_extender_args(body.replace(b'"n2"', b'"n3"'), IDENTIFIER, memo)
    assert other.node_names == ["n1", "n3"] and other.candidates is not first.candidates


def test_a_memo_hit_never_hides_a_bad_pod():
    from extender.protocol import NamesMemo

    memo = NamesMemo()
    good = b'{"Pod":{"metadata":{"name":"p"}},"Nodes":null,"NodeNames":["n1"]}'
    parse_extender_args(good, IDENTIFIER, memo)
    with pytest.raises(ProtocolError, match="Pod.metadata.name"):
        parse_extender_args(b'{"Pod":{"metadata":{}},"Nodes":null,"NodeNames":["n1"]}', IDENTIFIER, memo)


def test_node_bodies_are_read_once_per_resource_version():
    from extender.protocol import NodeMemo

    memo = NodeMemo(("kubernetes.io/hostname", "topology.kubernetes.io/zone"))
    node = {"metadata": {"name": "n1", "resourceVersion": "7", "labels": {"topology.kubernetes.io/zone": "a"}},
            "status": {"allocatable": {"memory": "1Gi"}}}
    nodes, key = memo.read([node])
    first = nodes[0]
    assert memo.read([node])[0][0] is first and first.domains == ("n1", "a")
    assert key == (("n1", "7"),)
    assert memo.read([node, {"metadata": {"name": "n9"}}])[1] is None  # no resourceVersion: no key
    moved = {**node, "metadata": {**node["metadata"], "resourceVersion": "8",
                                  "labels": {"topology.kubernetes.io/zone": "b"}}}
    assert memo.read([moved])[0][0].domains == ("n1", "b")
    with pytest.raises(ProtocolError, match="metadata.labels must be an object"):
        memo.read([{"metadata": {"name": "n2", "resourceVersion": "1", "labels": []}}])


@pytest.mark.parametrize("body", [
    b'{"Pod":{"metadata":{"name":"p"}},"Nodes":{"items":[{"metadata":{"name":["x"],"resourceVersion":"1"}}]}}',
    b'{"Pod":{"metadata":{"name":"p","labels":{"redis-extender.io/cluster":"c","redis-extender.io/role":1}}},"NodeNames":[]}',
    b'{"Pod":{"metadata":{"name":"p","labels":{"redis-extender.io/cluster":"c","redis-extender.io/shard":["0"]}}},"NodeNames":[]}',
], ids=["node-name-a-list", "role-label-a-number", "shard-label-a-list"])
def test_wrongly_typed_names_and_labels_are_protocol_errors(body):
    from extender.protocol import NodeMemo

    with pytest.raises(ProtocolError):
        parse_extender_args(body, IDENTIFIER, node_memo=NodeMemo(("kubernetes.io/hostname",)))


def test_binding_names_with_a_slash_are_refused():
    with pytest.raises(ProtocolError, match="not a Kubernetes name"):
        parse_binding(b'{"PodName":"a/b","PodNamespace":"ns","PodUID":"u","Node":"n"}')


# --- untrusted input: issue 11 -------------------------------------------------------------

def _pod_body(memory: object = "1Gi", name: str = "p", **extra: object) -> bytes:
    pod = {"metadata": {"name": name, "namespace": "ns"},
           "spec": {"containers": [{"resources": {"requests": {"memory": memory}}}]}}
    return orjson.dumps({"Pod": pod, "NodeNames": ["n1"], **extra})


@pytest.mark.parametrize("memory", ["1e999999", "1e20", "9" * 300, 2**63, "1e400"])
def test_a_quantity_kubernetes_cannot_hold_is_a_protocol_error_naming_the_field(memory):
    import time as _time

    started = _time.perf_counter()
    with pytest.raises(ProtocolError) as caught:
        parse_extender_args(_pod_body(memory), IDENTIFIER)
    assert _time.perf_counter() - started < 0.5  # microseconds in fact; bounded before the work
    message = str(caught.value)
    assert "'Pod.spec.containers[0].resources.requests.memory'" in message and len(message) < 200


def test_a_ten_megabyte_bad_quantity_is_quoted_by_a_short_prefix():
    with pytest.raises(ProtocolError) as caught:
        parse_extender_args(_pod_body("x" * 10**7), IDENTIFIER)
    assert len(str(caught.value)) < 200


def test_the_sum_of_requests_stays_within_int64():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"resources": {"requests": {"memory": "7Ei"}}}] * 2}}
    with pytest.raises(ProtocolError, match="exceeds int64"):
        parse_extender_args(orjson.dumps({"Pod": pod, "NodeNames": []}), IDENTIFIER)


@pytest.mark.parametrize("spec", [
    {"containers": 1.5}, {"containers": [1.5]}, {"containers": [{"resources": 1.5}]},
    {"containers": [{"resources": {"requests": 1.5}}]}, {"overhead": 1.5}, {"initContainers": "x"},
])
def test_wrong_shapes_name_the_field_without_python_internals(spec):
    body = orjson.dumps({"Pod": {"metadata": {"name": "p"}, "spec": spec}, "NodeNames": []})
    with pytest.raises(ProtocolError) as caught:
        parse_extender_args(body, IDENTIFIER)
    message = str(caught.value)
    assert "'Pod.spec." in message
    for internal in ("float", "object is not", "NoneType", "Traceback", "dict", "list"):
        assert internal not in message


@pytest.mark.parametrize("pod, field", [
    ({"metadata": {"name": "p" * 254}}, "Pod.metadata.name"),
    ({"metadata": {"name": "p", "namespace": "n" * 64}}, "Pod.metadata.namespace"),
    ({"metadata": {"name": "p", "labels": {"app": "v" * 64}}}, "Pod.metadata.labels.app"),
    ({"metadata": {"name": "p", "labels": {"k" * 400: "v"}}}, "Pod.metadata.labels"),
    ({"metadata": {"name": "p", "uid": "u" * 200}}, "Pod.metadata.uid"),
])
def test_names_and_labels_are_held_to_kubernetes_lengths(pod, field):
    with pytest.raises(ProtocolError, match=f"'{field}"):
        parse_extender_args(orjson.dumps({"Pod": pod, "NodeNames": []}), IDENTIFIER)


def test_a_ten_million_character_pod_name_is_refused_before_any_write():
    with pytest.raises(ProtocolError) as caught:
        parse_extender_args(_pod_body(name="p" * 10**7), IDENTIFIER)
    assert "longer than 253" in str(caught.value) and len(str(caught.value)) < 200


def test_candidates_are_capped():
    from extender.protocol import MAX_CANDIDATES

    body = orjson.dumps({"Pod": {"metadata": {"name": "p"}}, "NodeNames": [f"n{i}" for i in range(MAX_CANDIDATES + 1)]})
    with pytest.raises(ProtocolError, match="'NodeNames' has .* over the cap"):
        parse_extender_args(body, IDENTIFIER)
    items = [{"metadata": {"name": f"n{i}"}} for i in range(MAX_CANDIDATES + 1)]
    with pytest.raises(ProtocolError, match="'Nodes.items' has .* over the cap"):
        parse_extender_args(orjson.dumps({"Pod": {"metadata": {"name": "p"}}, "Nodes": {"items": items}}), IDENTIFIER)


def test_an_overlong_candidate_name_is_refused():
    with pytest.raises(ProtocolError, match=r"'NodeNames\[1\]' is longer than 253"):
        parse_extender_args(orjson.dumps({"Pod": {"metadata": {"name": "p"}}, "NodeNames": ["a", "b" * 300]}),
                            IDENTIFIER)


@pytest.mark.parametrize("allocatable", ["1e400", "1e50000", "1e20"])
def test_node_allocatable_beyond_int64_is_a_protocol_error_naming_the_node_field(allocatable):
    items = [{"metadata": {"name": "n1"}, "status": {"allocatable": {"memory": allocatable}}}]
    body = orjson.dumps({"Pod": {"metadata": {"name": "p"}}, "Nodes": {"items": items}})
    with pytest.raises(ProtocolError, match=r"'Nodes.items\[0\].status.allocatable.memory' is out of range"):
        parse_extender_args(body, IDENTIFIER)


def test_binding_names_are_held_to_kubernetes_lengths():
    with pytest.raises(ProtocolError, match="'PodName' is longer than 253"):
        parse_binding(orjson.dumps({"PodName": "p" * 10**6, "PodNamespace": "ns", "PodUID": "u", "Node": "n"}))
    with pytest.raises(ProtocolError, match="'PodNamespace' is longer than 63"):
        parse_binding(orjson.dumps({"PodName": "p", "PodNamespace": "n" * 64, "PodUID": "u", "Node": "n"}))


def test_type_names_in_messages_are_json_ones():
    with pytest.raises(ProtocolError, match="got an array"):
        parse_extender_args(b"[1]", IDENTIFIER)
