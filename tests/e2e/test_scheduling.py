"""The real kube-scheduler (the current release; v1.20.2 in the compatibility run) calling the extender (filter, prioritize, bind), against a
real kube-apiserver, with the extender's state synced from that API server into a real Redis.

Fake Nodes (no kubelet) in zones; pods created as a StatefulSet controller with
podManagementPolicy Parallel would create them (named <sts>-<ordinal>, all at once).
"""
from __future__ import annotations

import os
import urllib.request
from collections import defaultdict
from typing import Any, Iterator

import pytest

from extender.local.processes import free_port
from extender.state.store import RedisStore

from harness.controlplane import scheduler_config
from ..support import keeperworld
from ..support.serving import Served, live_extender

pytestmark = pytest.mark.e2e

NS = "redis"
SCHED = "redis-scheduler"
ZONE = "topology.kubernetes.io/zone"

@pytest.fixture(scope="module")
def live(control_plane, redis_server, tmp_path_factory) -> Iterator[tuple[Any, Served, RedisStore]]:
    prefix = f"rxe2e:{{{os.getpid()}-{free_port()}}}:"
    with live_extender(control_plane, redis_server.url, prefix, tmp_path_factory.mktemp("ext"),
                       NS) as (extender, store):
        yield control_plane, extender, store


@pytest.fixture
def world(live) -> Iterator[dict[str, Any]]:
    """Nodes and pods of one test; all deleted afterwards (and the cache must follow)."""
    made: dict[str, Any] = {"nodes": [], "pods": []}
    yield made
    cleanup(live[0], made)


def make_nodes(cp, made, zones: int, per_zone: int, tag: str) -> dict[str, str]:
    return keeperworld.make_nodes(cp, tag, zones, per_zone, made["nodes"])


def shard_pod(cluster: str, shard: int, copy: int, native: bool = False) -> dict[str, Any]:
    labels = {"redis-extender.io/cluster": cluster, "redis-extender.io/shard": str(shard),
              "redis-extender.io/role": "master" if copy == 0 else "replica"}
    spec: dict[str, Any] = {
        "schedulerName": SCHED,
        "containers": [{"name": "redis", "image": "redis:7",
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}}],
    }
    if native:  # the best the default scheduler can be told: per-shard hard rules
        selector = {"matchLabels": {"redis-extender.io/cluster": cluster, "redis-extender.io/shard": str(shard)}}
        spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}]}}
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": ZONE,
                                              "whenUnsatisfiable": "DoNotSchedule", "labelSelector": selector}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{cluster}-shard{shard}-{copy}", "namespace": NS, "labels": labels},
            "spec": spec}


def create_burst(cp, made, cluster: str, shards: int, copies: int, native: bool = False) -> list[str]:
    """Every pod at once, interleaved across shards as parallel StatefulSets would."""
    names = []
    for copy in range(copies):
        for shard in range(shards):
            pod = shard_pod(cluster, shard, copy, native)
            cp.create_pod(pod)
            names.append(pod["metadata"]["name"])
    made["pods"].extend(names)
    return names


def wait_bound(cp, names: list[str], timeout: float = 120) -> dict[str, str]:
    def bound() -> dict[str, str] | None:
        pods = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in cp.list_pods(NS)}
        return pods if all(pods.get(n) for n in names) else None

    try:
        return cp.wait_for(bound, timeout=timeout, interval=0.25, what="all pods bound")
    except Exception:
        pods = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in cp.list_pods(NS)}
        pending = sorted(n for n in names if not pods.get(n))
        raise AssertionError(f"{len(pending)} pods left Pending: {pending[:10]}")


def violations(placement: dict[str, str], zone_of: dict[str, str]) -> dict[str, int]:
    """Node violations: copies of a shard sharing a node. Zone violations: shards using fewer
    zones than min(copies, zones)."""
    shards: dict[str, list[str]] = defaultdict(list)
    for pod, node in placement.items():
        shards[pod.rsplit("-", 1)[0]].append(node)
    zones = len(set(zone_of.values()))
    node_v = sum(len(nodes) - len(set(nodes)) for nodes in shards.values())
    zone_v = sum(1 for nodes in shards.values() if len({zone_of[n] for n in nodes}) < min(len(nodes), zones))
    return {"node": node_v, "zone": zone_v, "shards": len(shards)}


def test_a_pod_the_watch_saw_pending_binds_without_a_get_only_where_the_api_checks_the_uid(live, world) -> None:
    """A bind skips asking the API about its pod when the store holds what the API's watch
    said (that UID, unbound, its scheduler) and the apiserver itself refuses a Binding under
    another UID. Whether it does is read from its version: checked here against what this
    apiserver really does (v1.20.2 binds the pod anyway; current releases refuse). A second
    bind of the bound pod is refused either way."""
    import json

    from harness.controlplane import ApiError
    from extender.state.k8s_sync import api_client, binding_checks_uid

    cp, extender, store = live
    zone_of = make_nodes(cp, world, 3, 1, "watched")
    cp.wait_for(lambda: set(zone_of) <= set(store.node_names()), timeout=20, what="nodes synced")
    taken, first, second = list(zone_of)  # one node a zone
    uids = {}
    for copy in (0, 1):
        name = f"watched-shard{copy}-0"
        uids[name] = cp.create_pod(shard_pod("watched", copy, 0))["metadata"]["uid"]
        world["pods"].append(name)
    for name in uids:
        cp.wait_for(lambda: (store.pod(NS, name) or {}).get("sched") == SCHED, timeout=20, what="pod synced")
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "watched-shard1-0", "uid": "not-its-uid"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": taken}}
    try:
        cp.request("POST", f"/api/v1/namespaces/{NS}/pods/watched-shard1-0/binding", binding)
        refused = False
    except ApiError:
        refused = True
    assert binding_checks_uid(api_client(str(cp.kubeconfig))) is refused
    assert bool(cp.get_pod("watched-shard1-0", NS)["spec"].get("nodeName")) is not refused

    name = "watched-shard0-0"

    def bind(node: str) -> str:
        body = {"PodName": name, "PodNamespace": NS, "PodUID": uids[name], "Node": node}
        req = urllib.request.Request(f"{extender.url}/bind", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=5).read())["Error"]

    assert bind(first) == ""
    assert cp.get_pod(name, NS)["spec"]["nodeName"] == first
    assert "already" in bind(second)  # by the store or, while the watch lags, by the API
    cp.wait_for(lambda: (store.pod(NS, name) or {}).get("node") == first, timeout=20, what="record kept")
    assert cp.get_pod(name, NS)["spec"]["nodeName"] == first


def run_workload(live, world, tag: str, zones: int, per_zone: int, shards: int, copies: int,
                 native: bool = False) -> tuple[dict[str, int], int]:
    """Nodes, a scheduler, a burst of pods; returns (violations, pods left Pending) and cleans up."""
    cp, extender, store = live
    zone_of = make_nodes(cp, world, zones, per_zone, tag)
    if native:
        cp.start_scheduler(scheduler_config(SCHED))
    else:
        # the cache must know the nodes before the first pod: the sync is live
        cp.wait_for(lambda: set(zone_of) <= set(store.node_names()), timeout=20, what="nodes synced")
        cp.start_scheduler(scheduler_config(SCHED, extender.port))
    names = create_burst(cp, world, tag, shards, copies, native)
    try:
        placement = wait_bound(cp, names, timeout=60 if native else 120)
        pending = 0
    except AssertionError:
        placement = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in cp.list_pods(NS)}
        pending = sum(1 for n in names if not placement.get(n))
    placement = {n: node for n, node in placement.items() if n in names and node}
    cleanup(cp, world)
    return violations(placement, zone_of), pending


def cleanup(cp, made: dict[str, Any]) -> None:
    cp.stop_scheduler()
    for name in made["pods"]:
        cp.delete(f"/api/v1/namespaces/{NS}/pods/{name}")
    for name in made["nodes"]:
        cp.delete(f"/api/v1/nodes/{name}")
    made["pods"].clear()
    made["nodes"].clear()
    cp.wait_for(lambda: not cp.list_pods(NS), timeout=30, what="pods deleted")


EXTENDER_RESULTS: dict[str, tuple[dict[str, int], int]] = {}
WORKLOADS = {
    "8 shards x 3 copies, 3 zones x 3 nodes": ("spread", 3, 3, 8, 3),
    "4 shards x 3 copies, 2 zones x 3 nodes": ("twozone", 2, 3, 4, 3),
    "burst: 20 shards x 3 copies, 3 zones x 3 nodes": ("burst", 3, 3, 20, 3),
}


@pytest.mark.parametrize("workload", list(WORKLOADS), ids=["8x3-on-3x3", "4x3-on-2x3", "burst-20x3-on-3x3"])
def test_extender_spreads_every_shard_with_no_pod_pending(live, world, workload: str) -> None:
    result, pending = EXTENDER_RESULTS[workload] = run_workload(live, world, *WORKLOADS[workload])
    print(f"\nextender, {workload}: {result}, pending={pending}")
    assert pending == 0
    assert result["node"] == 0  # never two copies of a shard on one node
    assert result["zone"] == 0  # every shard in min(copies, zones) zones


def test_native_rules_side_by_side(live, world) -> None:
    """The same workloads under the default scheduler with per-shard required hostname
    anti-affinity and a zone topologySpreadConstraint (maxSkew 1, DoNotSchedule): the best
    native rules, printed beside the extender's."""
    rows = []
    for workload, (tag, *shape) in WORKLOADS.items():
        native, native_pending = run_workload(live, world, f"n{tag}", *shape, native=True)
        if workload not in EXTENDER_RESULTS:  # this test run alone
            EXTENDER_RESULTS[workload] = run_workload(live, world, f"x{tag}", *shape)
        ours, our_pending = EXTENDER_RESULTS[workload]
        rows.append((workload, native, native_pending, ours, our_pending))
    print("\nworkload                                          | native rules (node/zone viol., pending) | extender")
    for workload, native, np_, ours, op in rows:
        print(f"{workload:50}| {native['node']}/{native['zone']}, {np_:<33} | {ours['node']}/{ours['zone']}, {op}")
    assert all(native["node"] == 0 for _, native, *_ in rows)  # required anti-affinity holds natively too
def test_cache_follows_nodes_and_pods(live, world) -> None:
    cp, extender, store = live
    cp.create_node("follow-1", {ZONE: "zone-a"})
    world["nodes"].append("follow-1")
    cp.wait_for(lambda: "follow-1" in store.node_names(), timeout=10, what="node added")
    cp.patch_node_labels("follow-1", {ZONE: "zone-b"})
    cp.wait_for(lambda: store.nodes()[1]["follow-1"].labels.get(ZONE) == "zone-b", timeout=10,
                what="node relabelled")
    pod = shard_pod("follow", 0, 0)
    pod["spec"]["nodeName"] = "follow-1"  # bound at creation, as a kubelet-less test may
    cp.create_pod(pod)
    world["pods"].append(pod["metadata"]["name"])
    cp.wait_for(lambda: (store.pod(NS, "follow-shard0-0") or {}).get("node") == "follow-1", timeout=10,
                what="pod synced")
    assert store.usage()[0].get("follow-1") == 256 * 2**20
    cp.delete(f"/api/v1/namespaces/{NS}/pods/follow-shard0-0")
    cp.wait_for(lambda: store.pod(NS, "follow-shard0-0") is None, timeout=10, what="pod deleted")
    assert store.usage()[0].get("follow-1", 0) == 0
    cp.delete("/api/v1/nodes/follow-1")
    cp.wait_for(lambda: "follow-1" not in store.node_names(), timeout=10, what="node deleted")


def test_a_binding_the_api_refuses_is_an_error_and_leaves_no_record(live, world) -> None:
    """The scheduler's filter saw a pod that is gone by bind time: the API refuses the Binding,
    the extender answers Error (the scheduler retries) and undoes its record."""
    import json

    cp, extender, store = live
    zone_of = make_nodes(cp, world, 3, 1, "refused")
    cp.wait_for(lambda: set(zone_of) <= set(store.node_names()), timeout=20, what="nodes synced")
    ghost = shard_pod("refused", 0, 1)
    ghost["metadata"]["uid"] = "ghost-uid"

    def post(verb: str, body: dict) -> dict:
        req = urllib.request.Request(f"{extender.url}/{verb}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=5).read())

    assert post("filter", {"Pod": ghost, "NodeNames": list(zone_of)})["NodeNames"] == list(zone_of)
    node = list(zone_of)[0]
    reply = post("bind", {"PodName": "refused-shard0-1", "PodNamespace": NS, "PodUID": "ghost-uid", "Node": node})
    assert "pod redis/refused-shard0-1 does not exist in the API; not bound" in reply["Error"], reply
    record = store.pod(NS, "refused-shard0-1")
    assert record is None or record["node"] == ""
    assert all(c.node != node or c.reserved for c in store.shard_state(f"{NS}/refused", "0").copies)
    # a pod the API has, under another UID, or bound already: refused before anything is recorded
    real = shard_pod("refused", 0, 2)
    cp.create_pod(real)
    world["pods"].append("refused-shard0-2")
    reply = post("bind", {"PodName": "refused-shard0-2", "PodNamespace": NS, "PodUID": "not-its-uid", "Node": node})
    assert "has UID" in reply["Error"] and "not not-its-uid" in reply["Error"], reply
    assert (store.pod(NS, "refused-shard0-2") or {}).get("node", "") == ""
