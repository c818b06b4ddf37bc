"""Behaviour that differs on current kube-schedulers, exercised against the real one.

- FailedAndUnresolvableNodes (1.21+) is honoured: a node the extender rejects by the shard
  rule is never offered for preemption, even when it is the cheapest node to preempt on;
  the pod is nominated to (and bound on) the node where preemption can help.
- With REDIS_EXTENDER_UNRESOLVABLE_IN_FAILED=false (no duplicate FailedNodes entries) the
  extender's reasons still reach the pod's FailedScheduling event.
- A pod whose filter left one node (the scheduler then skips prioritize) and a pod with a
  nominated node (only that node is filtered, prioritize skipped) still get their
  reservation: it is noted at filter, where the extender sees the single candidate.
- A pod refused fail-closed while Redis is down is retried by the scheduler and bound soon
  after Redis returns.

Each test starts its own extender (environment of the test) and scheduler on the session's
apiserver, in its own namespace, and deletes what it made.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any, Iterator

import pytest

from extender.local.localredis import LocalRedis
from extender.state.store import RedisStore

from harness.controlplane import ApiError, ControlPlane, scheduler_config
from ..support.serving import Served

pytestmark = pytest.mark.e2e

NS = "behaviour"
SCHED = "redis-scheduler"
ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
HIGH, LOW, MIDDLE = "rx-behaviour-high", "rx-behaviour-low", "rx-behaviour-middle"


def needs_unresolvable(cp: ControlPlane) -> None:
    if cp.scheduler_version[:2] < (1, 21):
        pytest.skip("kube-scheduler < 1.21 ignores FailedAndUnresolvableNodes (added in 1.21)")


@pytest.fixture
def world(control_plane: ControlPlane) -> Iterator[dict[str, Any]]:
    """Namespace and priority classes in place; the test's nodes/pods deleted afterwards."""
    cp = control_plane
    for path, body in [
        ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        *[("/apis/scheduling.k8s.io/v1/priorityclasses",
           {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value})
          for name, value in ((HIGH, 1000), (MIDDLE, 100), (LOW, 1))],
    ]:
        try:
            cp.request("POST", path, body)
        except ApiError as exc:
            if exc.status != 409:
                raise
    made: dict[str, Any] = {"nodes": [], "tag": f"b{uuid.uuid4().hex[:6]}"}
    yield made
    cp.stop_scheduler()
    for pod in cp.list_pods(NS):
        cp.delete(f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}")
    for name in made["nodes"]:
        cp.delete(f"/api/v1/nodes/{name}")
    cp.wait_for(lambda: not cp.list_pods(NS), timeout=30, what="pods deleted")


def node(cp: ControlPlane, made: dict[str, Any], index: int, memory: str = "4Gi") -> str:
    name = f"{made['tag']}-n{index}"
    cp.create_node(name, {ZONE: f"zone-{index}", "topology.kubernetes.io/region": "region-1"},
                   cpu="8", memory=memory)
    made["nodes"].append(name)
    return name


def pod(name: str, memory: str = "256Mi", cluster: str | None = None, shard: int = 0,
        copy: int = 0, priority: str | None = None, node_name: str | None = None,
        node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """A Redis shard copy (cluster given) or a plain pod; node_name binds it directly."""
    labels = {} if cluster is None else {
        "redis-extender.io/cluster": cluster, "redis-extender.io/shard": str(shard),
        "redis-extender.io/role": "master" if copy == 0 else "replica"}
    spec: dict[str, Any] = {"schedulerName": SCHED, "containers": [
        {"name": "c", "image": "redis:7", "resources": {"requests": {"cpu": "100m", "memory": memory}}}]}
    if priority:
        spec["priorityClassName"] = priority
    if node_name:
        spec["nodeName"] = node_name
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels}, "spec": spec}


def extender(cp: ControlPlane, redis_url: str, tmp_path: Any, live: bool = True,
             **env: str) -> tuple[Served, RedisStore]:
    """`redis-extender serve` on a fresh key prefix; live: sync from and bind in this cluster."""
    prefix = f"rxbehaviour:{{{uuid.uuid4().hex[:10]}}}:"
    full_env = {**os.environ, "REDIS_URL": redis_url, "REDIS_EXTENDER_KEY_PREFIX": prefix,
                "REDIS_EXTENDER_LOCK_TTL": "3", **env}
    args = ["--workers", "1"] + (["--kubeconfig", str(cp.kubeconfig)] if live else [])
    served = Served(full_env, args, ready_path="/readyz" if live else "/healthz", log_dir=tmp_path)
    return served, RedisStore.from_url(redis_url, prefix, timeout=5)


def wait_synced(cp: ControlPlane, store: RedisStore, nodes: list[str]) -> None:
    cp.wait_for(lambda: set(nodes) <= set(store.node_names()), timeout=30, what="nodes synced")


def events(cp: ControlPlane, name: str, reason: str = "FailedScheduling") -> list[str]:
    """Messages of the pod's events (matched by uid: events outlive a deleted namesake)."""
    uid = cp.get_pod(name, NS)["metadata"]["uid"]
    items = cp.request("GET", f"/api/v1/namespaces/{NS}/events")["items"]
    return [e["message"] for e in items if e["involvedObject"].get("uid") == uid and e["reason"] == reason]


def bound_node(cp: ControlPlane, name: str) -> str | None:
    return cp.get_pod(name, NS)["spec"].get("nodeName")


# --------------------------------------------------------------------------------------------

def test_unresolvable_node_is_not_offered_for_preemption(control_plane, world, redis_server, tmp_path) -> None:
    """n0 holds the shard's master and has room, with only a priority-1 pod besides: the
    cheapest node to preempt on. n1 is full of priority-100 pods. The replica (priority 1000)
    must be nominated to n1, not n0: n0 is in FailedAndUnresolvableNodes."""
    cp = control_plane
    needs_unresolvable(cp)
    n0, n1 = node(cp, world, 0, memory="4Gi"), node(cp, world, 1, memory="1Gi")
    cluster = f"{world['tag']}-c"
    served, store = extender(cp, redis_server.url, tmp_path)
    try:
        cp.create_pod(pod("master", cluster=cluster, copy=0, priority=HIGH, node_name=n0))
        cp.create_pod(pod("cheap-on-n0", memory="256Mi", priority=LOW, node_name=n0))
        cp.create_pod(pod("fills-n1", memory="1Gi", priority=MIDDLE, node_name=n1))
        wait_synced(cp, store, [n0, n1])
        cp.wait_for(lambda: any(c.node == n0 for c in store.shard_state(f"{NS}/{cluster}", "0", counts=False).copies),
                    timeout=30, what="the master synced")
        cp.start_scheduler(scheduler_config(SCHED, served.port))
        cp.create_pod(pod("replica", cluster=cluster, copy=1, priority=HIGH))

        nominated = cp.wait_for(lambda: cp.get_pod("replica", NS)["status"].get("nominatedNodeName"),
                                timeout=60, what="the replica to be nominated (preemption)")
        assert nominated == n1
        assert not cp.get_pod("cheap-on-n0", NS)["metadata"].get("deletionTimestamp"), \
            "a pod on the unresolvable node was preempted"
        # Without a kubelet the victim stays Terminating: finish its deletion, then the
        # replica binds where it was nominated.
        cp.wait_for(lambda: cp.get_pod("fills-n1", NS)["metadata"].get("deletionTimestamp"),
                    timeout=30, what="the victim on n1 to be preempted")
        cp.delete(f"/api/v1/namespaces/{NS}/pods/fills-n1")
        assert cp.wait_for(lambda: bound_node(cp, "replica"), timeout=60,
                           what="the replica to bind after preemption") == n1
    finally:
        cp.stop_scheduler()
        served.stop()
        store.clear()


def test_reasons_reach_the_event_without_duplicate_failed_nodes(control_plane, world, redis_server,
                                                                tmp_path) -> None:
    """REDIS_EXTENDER_UNRESOLVABLE_IN_FAILED=false: unresolvable nodes only in
    FailedAndUnresolvableNodes, and the current scheduler still shows the reason."""
    cp = control_plane
    needs_unresolvable(cp)
    n0 = node(cp, world, 0)
    cluster = f"{world['tag']}-c"
    served, store = extender(cp, redis_server.url, tmp_path, REDIS_EXTENDER_UNRESOLVABLE_IN_FAILED="false")
    try:
        cp.create_pod(pod("master", cluster=cluster, copy=0, node_name=n0))
        wait_synced(cp, store, [n0])
        cp.wait_for(lambda: store.shard_state(f"{NS}/{cluster}", "0", counts=False).copies, timeout=30,
                    what="the master synced")
        cp.start_scheduler(scheduler_config(SCHED, served.port))
        cp.create_pod(pod("replica", cluster=cluster, copy=1))
        messages = cp.wait_for(lambda: events(cp, "replica"), timeout=60, what="FailedScheduling")
        assert any(f"{n0} already holds shard 0 of {cluster}" in m for m in messages), messages
        assert not bound_node(cp, "replica")
    finally:
        cp.stop_scheduler()
        served.stop()
        store.clear()


def load_nodes(cp: ControlPlane, redis_url: str, store: RedisStore, tmp_path: Any, names: list[str]) -> None:
    """The nodes into Redis with `redis-extender load` (no sync runs in these tests, so the
    reservation written at filter stays visible after the scheduler's own bind)."""
    nodes = [{"apiVersion": "v1", "kind": "Node", **n}  # list items carry no kind
             for n in cp.request("GET", "/api/v1/nodes")["items"] if n["metadata"]["name"] in names]
    listing = tmp_path / "nodes.json"
    listing.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
    env = {**os.environ, "REDIS_EXTENDER_KEY_PREFIX": store.p}
    subprocess.run([sys.executable, "-m", "extender.cli", "load", "--redis-url", redis_url, str(listing)],
                   env=env, check=True, timeout=60, stdin=subprocess.DEVNULL, capture_output=True)
    assert set(names) <= set(store.node_names())


def reservation(store: RedisStore, cluster: str, name: str) -> str | None:
    copies = store.shard_state(f"{NS}/{cluster}", "0", counts=False).copies
    return next((c.node for c in copies if c.pod == f"{NS}/{name}" and c.reserved), None)


@pytest.mark.parametrize("how", ["filter-left-one-node", "nominated-node"])
def test_single_candidate_pods_get_their_reservation(control_plane, world, redis_server, tmp_path,
                                                     how: str) -> None:
    """Three nodes; the pod is narrowed to one (a nodeSelector, or a nominated node that the
    scheduler evaluates alone): prioritize is skipped, yet the reservation is noted."""
    cp = control_plane
    names = [node(cp, world, i) for i in range(3)]
    cluster = f"{world['tag']}-c"
    # Not live: the scheduler binds itself and nothing replaces the reservation afterwards.
    served, store = extender(cp, redis_server.url, tmp_path, live=False,
                             REDIS_EXTENDER_RESERVATION_TTL="600")
    try:
        load_nodes(cp, redis_server.url, store, tmp_path, names)
        target = names[1]
        if how == "filter-left-one-node":
            cp.create_pod(pod("single", cluster=cluster, node_selector={HOSTNAME: target}))
        else:
            cp.create_pod(pod("single", cluster=cluster))  # no scheduler runs yet: it waits
            cp.request("PATCH", f"/api/v1/namespaces/{NS}/pods/single/status",
                       {"status": {"nominatedNodeName": target}},
                       content_type="application/merge-patch+json")
        config = scheduler_config(SCHED, served.port).replace("  bindVerb: bind\n", "")
        cp.start_scheduler(config)
        assert cp.wait_for(lambda: bound_node(cp, "single"), timeout=60, what="the pod bound") == target
        assert reservation(store, cluster, "single") == target
        metrics = served_metrics(served)
        assert 'verb="filter"' in metrics
        assert not any(line.startswith("redis_extender_requests_total") and 'verb="prioritize"' in line
                       and not line.rstrip().endswith(" 0.0") for line in metrics.splitlines()), \
            "prioritize was called: the scheduler had more than one candidate"
    finally:
        cp.stop_scheduler()
        served.stop()
        store.clear()


def served_metrics(served: Served) -> str:
    import urllib.request

    with urllib.request.urlopen(served.url + "/metrics", timeout=5) as resp:  # noqa: S310 - loopback
        return str(resp.read().decode())


def test_pod_refused_while_redis_is_down_is_bound_soon_after_it_returns(control_plane, world,
                                                                       tmp_path) -> None:
    """Fail-closed: with Redis stopped the filter answers Error (FailedScheduling names it);
    Redis back (empty: no persistence), the sync re-lists and the scheduler's retry binds."""
    cp = control_plane
    n0, n1 = node(cp, world, 0), node(cp, world, 1)
    redis = LocalRedis().start()
    served, store = extender(cp, redis.url, tmp_path, REDIS_EXTENDER_ON_UNAVAILABLE="fail-closed",
                             REDIS_EXTENDER_MAX_STALENESS="0", REDIS_EXTENDER_RETRY_AFTER="0.5")
    try:
        wait_synced(cp, store, [n0, n1])
        cp.start_scheduler(scheduler_config(SCHED, served.port))
        redis.stop()
        cp.create_pod(pod("refused", cluster=f"{world['tag']}-c"))
        messages = cp.wait_for(lambda: events(cp, "refused"), timeout=60, what="FailedScheduling")
        assert any("placement state unavailable" in m for m in messages), messages
        assert not bound_node(cp, "refused")
        redis = LocalRedis(port=redis.port).start()  # the same address, empty
        assert cp.wait_for(lambda: bound_node(cp, "refused"), timeout=60,
                           what="the refused pod bound after Redis returned") in (n0, n1)
    finally:
        cp.stop_scheduler()
        served.stop()
        redis.stop()
