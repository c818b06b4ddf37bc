"""ExtenderPreemptionArgs in both forms, any key case, and ExtenderPreemptionResult."""
from __future__ import annotations

import orjson
import pytest

from extender.core.identity import Identifier
from extender.core.model import Member, Role, Victim, VictimSet
from extender.protocol import ProtocolError, parse_preemption_args, preemption_reply
from extender.core.settings import IdentitySettings

IDENTIFIER = Identifier(IdentitySettings())


def pod(name: str = "cache-a-4", uid: str = "u-1", **labels: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "labels": labels},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": "1Gi"}}}]}}


REDIS = {"redis-extender.io/cluster": "cache-a", "redis-extender.io/shard": "3", "redis-extender.io/role": "master"}


def test_meta_victims_are_read_as_uids():
    body = {"Pod": pod(**REDIS), "NodeNameToMetaVictims": {
        "n1": {"Pods": [{"UID": "v1"}, {"UID": "v2"}], "NumPDBViolations": 1}, "n2": {"Pods": [], "NumPDBViolations": 0}}}
    args = parse_preemption_args(orjson.dumps(body), IDENTIFIER)
    assert args.meta and args.pod.member == Member("ns/cache-a", "3", Role.MASTER)
    assert args.victims["n1"] == VictimSet("n1", (Victim("v1", "n1"), Victim("v2", "n1")), 1)
    assert args.victims["n2"] == VictimSet("n2")


def test_full_victims_are_identified_from_their_labels():
    victim = pod("cache-b-1", "v9", **{**REDIS, "redis-extender.io/cluster": "cache-b", "redis-extender.io/role": "replica"})
    body = {"Pod": pod(), "NodeNameToVictims": {"n1": {"Pods": [victim, pod("web", "v3")], "NumPDBViolations": 0}}}
    args = parse_preemption_args(orjson.dumps(body), IDENTIFIER)
    assert not args.meta and args.pod.member is None
    first, second = args.victims["n1"].victims
    assert first == Victim("v9", "n1", "ns/cache-b-1", Member("ns/cache-b", "3", Role.REPLICA))
    assert second.pod == "ns/web" and second.member is None and not second.is_copy


@pytest.mark.parametrize("case", [str.lower, str.upper, lambda k: k[0].lower() + k[1:]])
def test_keys_are_accepted_in_any_case(case):
    body = {case("Pod"): pod(), case("NodeNameToMetaVictims"): {"n1": {case("Pods"): [{case("UID"): "v1"}],
                                                                       case("NumPDBViolations"): 0}}}
    args = parse_preemption_args(orjson.dumps(body), IDENTIFIER)
    assert args.victims["n1"].victims == (Victim("v1", "n1"),)


def test_a_null_victims_entry_is_an_empty_set():
    args = parse_preemption_args(orjson.dumps({"Pod": pod(), "NodeNameToMetaVictims": {"n1": None}}), IDENTIFIER)
    assert args.victims == {"n1": VictimSet("n1")}


@pytest.mark.parametrize("body, field", [
    (b"", "empty"),
    (b"{", "malformed"),
    ({"NodeNameToMetaVictims": {}}, "'Pod'"),
    ({"Pod": pod()}, "NodeNameToVictims"),
    ({"Pod": pod(), "NodeNameToMetaVictims": []}, "'NodeNameToMetaVictims' must be an object"),
    ({"Pod": pod(), "NodeNameToMetaVictims": {"n1": {"Pods": {}}}}, "'NodeNameToMetaVictims.n1'.Pods"),
    ({"Pod": pod(), "NodeNameToMetaVictims": {"n1": {"Pods": [{"UID": 3}]}}}, "Pods[0] needs a string 'UID'"),
    ({"Pod": pod(), "NodeNameToMetaVictims": {"n1": {"Pods": [], "NumPDBViolations": "x"}}}, "NumPDBViolations"),
    ({"Pod": pod(), "NodeNameToVictims": {"n1": {"Pods": ["x"]}}}, "Pods[0] must be a Pod"),
    ({"Pod": pod(), "NodeNameToVictims": {"n1": {"Pods": [{"metadata": {"name": "p"}}]}}}, "metadata.uid"),
    ({"Pod": 3, "NodeNameToMetaVictims": {}}, "'Pod' must be a JSON object"),
])
def test_bad_bodies_name_the_field(body, field):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(ProtocolError, match=None) as err:
        parse_preemption_args(data, IDENTIFIER)
    assert field.lower() in str(err.value).lower()


def test_reply_is_meta_victims_with_pods_never_null():
    kept = {"n1": VictimSet("n1", (Victim("v1", "n1", "ns/a"),), 2), "n2": VictimSet("n2")}
    assert orjson.loads(preemption_reply(kept)) == {"NodeNameToMetaVictims": {
        "n1": {"Pods": [{"UID": "v1"}], "NumPDBViolations": 2}, "n2": {"Pods": [], "NumPDBViolations": 0}}}
    assert orjson.loads(preemption_reply({})) == {"NodeNameToMetaVictims": {}}


def test_the_preemptors_nominated_node_is_read():
    body = {"Pod": {**pod(**REDIS), "status": {"nominatedNodeName": "n1"}}, "NodeNameToMetaVictims": {}}
    assert parse_preemption_args(orjson.dumps(body), IDENTIFIER).pod.nominated_node == "n1"
    assert parse_preemption_args(orjson.dumps({"Pod": pod(), "NodeNameToMetaVictims": {}}), IDENTIFIER).pod.nominated_node == ""


def test_the_older_tagged_name_of_the_full_form_is_read():
    body = {"pod": pod(), "nodeToVictims": {"n1": {"pods": [pod("web", "v3")], "numPDBViolations": 0}}}
    args = parse_preemption_args(orjson.dumps(body), IDENTIFIER)
    assert not args.meta and args.victims["n1"].victims[0].uid == "v3"
