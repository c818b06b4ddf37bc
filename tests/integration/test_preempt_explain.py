"""/preempt and /explain against a real redis-server, over real gunicorn; `explain` offline.

explain must say what filter and prioritize say for the same pod and state: the same
accepted nodes, the same reasons, the same scores (prioritize asked about the accepted nodes,
as kube-scheduler asks)."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from extender.core.identity import Identifier
from extender.core.model import CopyHealth, Member, Role, Victim, VictimSet
from extender.analysis.topology import KIND_CLUSTER, LiveNode, LiveTopology
from extender.core.settings import IdentitySettings
from extender.local.simulate import make_node, make_pod, redis_labels
from extender.state.loader import load_list
from extender.state.store import RedisStore
from extender.state.live import store_live
from extender.state.victims import read_victims

from .test_http import ZONES, get, post

IDENTIFIER = Identifier(IdentitySettings())


def world() -> dict[str, Any]:
    """Six nodes in three zones. cache-a shard 3: master on node-a, replica on node-b, one
    replica pending. cache-b shard 1: master on node-c, replica on node-a2 (its only copies
    outside zone-a is the master). Plain pods web-1 on node-c2, web-2 on node-a, web-3 on node-b2."""
    items = [make_node(n, z, "region-1", None, 8, 4) for n, z in ZONES.items()]
    for name, node, role in (("cache-a-0", "node-a", "master"), ("cache-a-1", "node-b", "replica"),
                             ("cache-a-2", None, "replica")):
        items.append(make_pod("redis", name, redis_labels("cache-a", 3, role), "1Gi", "500m", node))
    for name, node, role in (("cache-b-0", "node-c", "master"), ("cache-b-1", "node-a2", "replica")):
        items.append(make_pod("redis", name, redis_labels("cache-b", 1, role), "1Gi", "500m", node))
    for name, node in (("web-1", "node-c2"), ("web-2", "node-a"), ("web-3", "node-b2")):
        items.append(make_pod("apps", name, {"app": "web"}, "6Gi", "100m", node))
    return {"kind": "List", "items": items}


def wire(pod: dict[str, Any]) -> dict[str, Any]:
    pod = dict(pod)
    pod.pop("apiVersion", None), pod.pop("kind", None)
    return pod


def pod_of(name: str) -> dict[str, Any]:
    return wire(next(i for i in world()["items"] if i["kind"] == "Pod" and i["metadata"]["name"] == name))


def uid(name: str) -> str:
    return pod_of(name)["metadata"]["uid"]


def meta(**nodes: list[str]) -> dict[str, Any]:
    return {node.replace("_", "-"): {"Pods": [{"UID": uid(p)} for p in pods], "NumPDBViolations": 0}
            for node, pods in nodes.items()}


@pytest.fixture
def loaded(store: RedisStore) -> RedisStore:
    load_list(store, world(), IDENTIFIER)
    return store


@pytest.fixture
def extender(loaded, serve_extender):
    return serve_extender()


# --- /preempt --------------------------------------------------------------------------------

def test_preempt_keeps_only_the_node_whose_victims_spare_every_shard(extender) -> None:
    victims = meta(node_c=["cache-b-0"], node_c2=["web-1"], node_a=["web-2"], node_b2=[])
    status, reply = post(extender.url + "/preempt", {"Pod": pod_of("cache-a-2"), "NodeNameToMetaVictims": victims})
    assert status == 200
    # node-a breaks the preemptor's node rule, node-b2 (no victims) stays rejected, and
    # evicting cache-b-0 would leave shard 1 of cache-b in zone-a only
    assert reply == {"NodeNameToMetaVictims": {"node-c2": {"Pods": [{"UID": uid("web-1")}], "NumPDBViolations": 0}}}


def test_a_node_the_filter_failed_sent_with_no_victims_is_left_out(store, serve_extender) -> None:
    """kubernetes#135486 (not in kube-scheduler v1.37.2, which drops such a node from the candidates
    itself): a node the filter rejected as FailedNodes (node-c, not Ready in the cache) where the
    scheduler's dry run, in-tree filters only, finds the preemptor fits with no victim comes to
    /preempt with an empty victim list. The body as Go encodes ExtenderPreemptionArgs for a
    nodeCacheCapable extender (untagged fields, a nil NodeNameToVictims, `Pods: []*MetaPod{}`)."""
    items = world()["items"]
    for item in items:
        if item["kind"] == "Node" and item["metadata"]["name"] == "node-c":
            item["status"]["conditions"] = [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]
    load_list(store, {"kind": "List", "items": items}, IDENTIFIER)
    extender = serve_extender()
    preemptor = pod_of("cache-a-2")
    status, filtered = post(extender.url + "/filter", {"Pod": preemptor, "NodeNames": list(ZONES)})
    assert status == 200 and filtered["FailedNodes"]["node-c"].startswith("node is not Ready")
    assert "node-c" not in filtered["FailedAndUnresolvableNodes"]  # Unschedulable: the dry run tries it
    body = (b'{"Pod":' + json.dumps(preemptor, separators=(",", ":")).encode() +
            b',"NodeNameToVictims":null,"NodeNameToMetaVictims":{"node-c":{"Pods":[],"NumPDBViolations":0},'
            b'"node-c2":{"Pods":[{"UID":"' + uid("web-1").encode() + b'"}],"NumPDBViolations":0}}}')
    status, reply = post(extender.url + "/preempt", body)
    assert status == 200
    assert reply == {"NodeNameToMetaVictims": {"node-c2": {"Pods": [{"UID": uid("web-1")}], "NumPDBViolations": 0}}}
    text = get(extender.url + "/metrics")[1].decode()
    assert 'redis_extender_preempt_nodes_total{result="no_victims"} 1.0' in text
    assert 'redis_extender_preempt_nodes_total{result="kept"} 1.0' in text


def test_preempt_leaves_nothing_when_every_victim_set_costs_a_shard(extender) -> None:
    status, reply = post(extender.url + "/preempt",
                         {"Pod": pod_of("cache-a-2"), "NodeNameToMetaVictims": meta(node_c=["cache-b-0"])})
    assert (status, reply) == (200, {"NodeNameToMetaVictims": {}})


def test_preempt_full_victims_form_and_a_non_redis_preemptor(extender) -> None:
    preemptor = wire(make_pod("apps", "big", {"app": "batch"}, "6Gi", "100m"))
    body = {"pod": preemptor, "nodeNameToVictims": {
        "node-c": {"pods": [pod_of("cache-b-0")], "numPDBViolations": 0},
        "node-b2": {"pods": [pod_of("web-3")], "numPDBViolations": 1}}}
    status, reply = post(extender.url + "/preempt", body)
    assert status == 200
    assert reply == {"NodeNameToMetaVictims": {"node-b2": {"Pods": [{"UID": uid("web-3")}], "NumPDBViolations": 1}}}
    plain = {"Pod": preemptor, "NodeNameToMetaVictims": meta(node_b2=["web-3"], node_c2=["web-1"], node_a=[])}
    status, reply = post(extender.url + "/preempt", plain)
    assert status == 200 and reply == {"NodeNameToMetaVictims": plain["NodeNameToMetaVictims"]}  # passes through


def test_preempt_bad_bodies_are_400_and_large_ones_413(loaded, serve_extender) -> None:
    extender = serve_extender(REDIS_EXTENDER_MAX_BODY="4096")
    status, reply = post(extender.url + "/preempt", {"Pod": pod_of("cache-a-2")})
    assert status == 400 and "NodeNameToMetaVictims" in reply["Error"]
    status, reply = post(extender.url + "/preempt", {"Pod": pod_of("cache-a-2"), "NodeNameToMetaVictims": {"n": {"Pods": 3}}})
    assert status == 400 and "Pods must be a list" in reply["Error"]
    big = meta(**{f"node_{i}": ["web-1"] for i in range(200)})
    status, reply = post(extender.url + "/preempt", {"Pod": pod_of("cache-a-2"), "NodeNameToMetaVictims": big})
    assert status == 413 and "4096 byte cap" in reply["Error"]
    status, body = get(extender.url + "/metrics")
    text = body.decode()
    assert 'redis_extender_requests_total{code="400",verb="preempt"}' in text


def test_preempt_metrics_count_nodes_by_result(extender) -> None:
    post(extender.url + "/preempt", {"Pod": pod_of("cache-a-2"),
                                     "NodeNameToMetaVictims": meta(node_c=["cache-b-0"], node_c2=["web-1"], node_b2=[])})
    text = get(extender.url + "/metrics")[1].decode()
    for result in ("kept", "shard", "no_victims"):
        assert f'redis_extender_preempt_nodes_total{{result="{result}"}} 1.0' in text


def test_read_victims_resolves_uids_roles_and_live_health(loaded: RedisStore) -> None:
    store_live(loaded, LiveTopology("redis/cache-b", KIND_CLUSTER, 1.0, "10.0.0.1:6379", nodes=(
        LiveNode("m", "10.0.0.1", 6379, "master", pod="redis/cache-b-0"),
        LiveNode("r", "10.0.0.2", 6379, "replica", health="online", master_id="m", link_up=False,
                 pod="redis/cache-b-1"))))
    sets = {"node-c": VictimSet("node-c", (Victim(uid("cache-b-0"), "node-c"), Victim(uid("web-1"), "node-c")))}
    resolved, state = read_victims(loaded, sets)
    first, second = resolved["node-c"].victims
    assert first.pod == "redis/cache-b-0" and first.member == Member("redis/cache-b", "1", Role.MASTER)
    assert second.member is None and second.pod == ""
    assert {c.pod for c in state.shards[("redis/cache-b", "1")]} == {"redis/cache-b-0", "redis/cache-b-1"}
    assert ("redis/cache-a", "3") not in state.shards  # only the victims' clusters
    assert state.health["redis/cache-b-1"] == CopyHealth(healthy=True, in_sync=False)


# --- /explain --------------------------------------------------------------------------------

def _agrees(explanation: dict[str, Any], filtered: dict[str, Any], scores: list[dict[str, Any]]) -> None:
    by_node = {n["node"]: n for n in explanation["nodes"]}
    assert set(by_node) == set(ZONES)
    accepted = [n for n, e in by_node.items() if e["verdict"] == "accepted"]
    assert sorted(accepted) == sorted(filtered["NodeNames"])
    for node, reason in filtered["FailedAndUnresolvableNodes"].items():
        assert (by_node[node]["verdict"], by_node[node]["reason"]) == ("unresolvable", reason)
    for node, reason in filtered["FailedNodes"].items():
        if node not in filtered["FailedAndUnresolvableNodes"]:
            assert (by_node[node]["verdict"], by_node[node]["reason"]) == ("failed", reason)
    assert {s["Host"]: s["Score"] for s in scores} == {n: by_node[n]["score"] for n in accepted}


@pytest.mark.parametrize("name", ["cache-a-2", "cache-b-1"])
def test_explain_agrees_with_filter_and_prioritize(extender, name: str) -> None:
    pod = pod_of(name)
    status, filtered = post(extender.url + "/filter", {"Pod": pod, "NodeNames": list(ZONES)})
    assert status == 200
    status, scores = post(extender.url + "/prioritize", {"Pod": pod, "NodeNames": filtered["NodeNames"]})
    assert status == 200
    status, body = get(extender.url + "/explain?pod=" + urllib.parse.quote(f"redis/{name}"))
    assert status == 200
    _agrees(json.loads(body), filtered, scores)
    status, posted = post(extender.url + "/explain", pod)  # the same pod, as a hypothetical one
    assert status == 200
    _agrees(posted, filtered, scores)


def test_explain_of_a_hypothetical_pod_and_bad_requests(extender) -> None:
    newcomer = wire(make_pod("redis", "cache-a-9", redis_labels("cache-a", 3, "replica"), "7Gi", "500m"))
    status, explanation = post(extender.url + "/explain", newcomer)
    assert status == 200
    by_node = {n["node"]: n for n in explanation["nodes"]}
    assert by_node["node-c2"]["verdict"] == "failed" and "headroom" in by_node["node-c2"]["reason"]
    assert by_node["node-c"]["verdict"] == "accepted" and by_node["node-c"]["score"] is not None
    assert get(extender.url + "/explain?pod=nope")[0] == 400
    assert get(extender.url + "/explain?pod=redis/unknown")[0] == 404
    assert post(extender.url + "/explain", [1])[0] == 400


def test_cli_explain_offline_on_a_dump_agrees_with_the_server(extender, tmp_path: Path) -> None:
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps(world()))
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-m", "extender.cli", "explain", "redis/cache-a-2", "--from", str(dump),
                          "--json"], capture_output=True, text=True, timeout=60, cwd=root,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin:/usr/sbin"})
    assert run.returncode == 0, run.stderr
    offline = json.loads(run.stdout)
    status, body = get(extender.url + "/explain?pod=redis/cache-a-2")
    assert status == 200 and offline == json.loads(body)
    pod_file = tmp_path / "pod.json"
    pod_file.write_text(json.dumps(pod_of("cache-a-2")))
    table = subprocess.run([sys.executable, "-m", "extender.cli", "explain", "--pod-file", str(pod_file),
                            "--from", str(dump)], capture_output=True, text=True, timeout=60, cwd=root,
                           env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin:/usr/sbin"})
    assert table.returncode == 0, table.stderr
    assert "node-a already holds shard 3 of cache-a" in table.stdout and "VERDICT" in table.stdout
    missing = subprocess.run([sys.executable, "-m", "extender.cli", "explain", "redis/nope", "--from", str(dump)],
                             capture_output=True, text=True, timeout=60, cwd=root,
                             env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin:/usr/sbin"})
    assert missing.returncode == 1 and "not a Redis pod" in missing.stderr
