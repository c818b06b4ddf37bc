"""Preemption through the extender (`preemptVerb: preempt`) with the real kube-scheduler.

A full cluster: six fake nodes in three zones, every one filled by low-priority pods (Redis
copies and plain fillers, bound at creation as a kubelet-less test may). High-priority pods
(PriorityClasses) then fit only by preempting, and the extender keeps the candidates whose
victims and whose own placement respect the shards:

1. a high-priority Redis pod preempts only in a zone its shard does not use (the scheduler
   alone would pick the cheapest victims, in a zone that already holds a copy);
2. a victim that is its shard's last copy outside one zone is never evicted while another
   victim set exists (the scheduler alone prefers it: its priority is the lowest);
3. a node the extender's filter rejected while the pod fit (not Ready in the extender's view;
   the scheduler sees no taint), holding a lower-priority pod, is never nominated: v1.37 drops
   it from the candidates itself (no victims), schedulers with kubernetes#135486 send it to
   /preempt with no victims, where it is left out (tests/integration/test_preempt_explain.py
   posts that body);
4. when that node is the only one left (the others hold pods of the preemptor's priority),
   nobody is preempted or nominated: v1.37 fails the preemption ("expected at least one victim
   pod on node"), schedulers with kubernetes#135486 send it to /preempt, which leaves it out.

kube-scheduler v1.20.2 never calls extenders when preempting (kubernetes#102971, fixed in
1.21): the tests skip on a scheduler older than 1.21, with the version found in the reason.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from extender.local.processes import free_port
from extender.state.store import RedisStore

from harness.controlplane import ApiError, scheduler_config
from ..support.serving import Served

pytestmark = pytest.mark.e2e

NS = "preempt"
SCHED = "redis-scheduler"
ZONE = "topology.kubernetes.io/zone"
LOW, MID, HIGH = "rx-e2e-low", "rx-e2e-mid", "rx-e2e-high"
PRIORITIES = {LOW: 0, MID: 100, HIGH: 1_000_000}
NODE_MEMORY, FILL_MEMORY, WANT_MEMORY = "2Gi", "1800Mi", "1Gi"
MINIMUM = (1, 21)


def scheduler_version(cp: Any, kube_bin: Path) -> tuple[int, int]:
    """(major, minor) of the harness's kube-scheduler: its attribute when the harness has one,
    else what the binary says of itself."""
    for attr in ("scheduler_version", "version"):
        value = getattr(cp, attr, None) if cp is not None else None
        if value:
            found = re.search(r"(\d+)\.(\d+)", str(value))
            if found:
                return int(found.group(1)), int(found.group(2))
    out = subprocess.run([str(kube_bin / "kube-scheduler"), "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    found = re.search(r"v(\d+)\.(\d+)", out)
    if not found:
        raise RuntimeError(f"cannot tell the version of {kube_bin / 'kube-scheduler'}: {out!r}")
    return int(found.group(1)), int(found.group(2))


@pytest.fixture(scope="module")
def version(kube_bin: Path) -> tuple[int, int]:
    """Asked of the binary before the control plane starts, so a skip costs nothing."""
    found = scheduler_version(None, kube_bin)
    if found < MINIMUM:
        pytest.skip(f"kube-scheduler v{found[0]}.{found[1]} in {kube_bin} does not call extenders when "
                    f"preempting (kubernetes#102971, fixed in 1.21): run with KUBE_BIN_DIR of a current "
                    f"kube-scheduler")
    return found


def config_for(version: tuple[int, int], extender_port: int) -> str:
    """The harness's extender config with the preempt verb, under the apiVersion `version` reads."""
    text = scheduler_config(SCHED, extender_port).replace("  bindVerb: bind\n",
                                                          "  bindVerb: bind\n  preemptVerb: preempt\n")
    api = "v1" if version >= (1, 25) else "v1beta3" if version >= (1, 23) else "v1beta1"
    return text.replace("kubescheduler.config.k8s.io/v1beta1", f"kubescheduler.config.k8s.io/{api}")


def ensure(cp: Any, path: str, body: dict[str, Any]) -> None:
    try:
        cp.request("POST", path, body)
    except ApiError as exc:
        if exc.status != 409:  # already there (another run of this module): kept, as namespaces are
            raise


class Reaper:
    """The kubelet's part of a deletion: a pod marked for deletion is removed at once, so a
    preemptor does not wait for victims that no kubelet will ever stop."""

    def __init__(self, cp: Any):
        self.cp = cp
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.errors: list[str] = []  # anything but a pod already gone: the fixture fails on it

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                for pod in self.cp.list_pods(NS):
                    if pod["metadata"].get("deletionTimestamp"):
                        self._delete(pod["metadata"]["name"])
            except Exception as exc:  # kept, and the next round tries again
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _delete(self, name: str) -> None:
        try:
            self.cp.delete(f"/api/v1/namespaces/{NS}/pods/{name}")
        except ApiError as exc:
            if exc.status != 404:  # deleted meanwhile (by the test itself): nothing to do
                raise


@pytest.fixture(scope="module")
def live(version, control_plane, redis_server, tmp_path_factory) -> Iterator[tuple[Any, Served, RedisStore]]:
    cp = control_plane
    if scheduler_version(cp, cp.bin_dir) < MINIMUM:  # the harness's own word, when it has one
        pytest.skip(f"the harness's kube-scheduler is older than {MINIMUM[0]}.{MINIMUM[1]}")
    ensure(cp, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    for name, value in PRIORITIES.items():
        ensure(cp, "/apis/scheduling.k8s.io/v1/priorityclasses",
               {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                "value": value, "globalDefault": False})
    prefix = f"rxe2e:{{{os.getpid()}-{free_port()}}}:"
    env = {**os.environ, "REDIS_URL": redis_server.url, "REDIS_EXTENDER_KEY_PREFIX": prefix,
           "REDIS_EXTENDER_LOCK_TTL": "3", "REDIS_EXTENDER_RESERVATION_TTL": "0",
           "REDIS_EXTENDER_NODE_CACHE_TTL": "0.1"}  # a node turned not Ready is seen at once
    extender = Served(env, ["--workers", "1", "--kubeconfig", str(cp.kubeconfig)], ready_path="/readyz",
                      log_dir=tmp_path_factory.mktemp("ext"))
    store = RedisStore.from_url(redis_server.url, prefix, timeout=5)
    reaper = Reaper(cp)
    reaper.thread.start()
    yield cp, extender, store
    reaper.stop.set()
    reaper.thread.join(timeout=5)
    extender.stop()
    store.clear()
    assert not reaper.thread.is_alive(), "the kubelet stand-in did not stop"
    assert reaper.errors == [], f"the kubelet stand-in failed: {reaper.errors[:5]}"


@pytest.fixture
def world(live) -> Iterator[dict[str, list[str]]]:
    made: dict[str, list[str]] = {"nodes": [], "pods": []}
    yield made
    cp, _, store = live
    cp.stop_scheduler()
    for name in made["pods"]:
        cp.delete(f"/api/v1/namespaces/{NS}/pods/{name}")
    for name in made["nodes"]:
        cp.delete(f"/api/v1/nodes/{name}")
    cp.wait_for(lambda: not cp.list_pods(NS), timeout=30, what="pods deleted")
    # the next test reuses the names: its waits must not be satisfied by this test's records
    cp.wait_for(lambda: not set(made["nodes"]) & set(store.node_names()) and
                not any(store.pod_record(NS, n) for n in made["pods"]), timeout=30, what="state synced")


def node(cp: Any, made: dict[str, list[str]], name: str, zone: str, ready: bool = True) -> None:
    if ready:
        cp.create_node(name, {ZONE: zone, "topology.kubernetes.io/region": "region-1"}, cpu="2", memory=NODE_MEMORY)
    else:  # Not Ready in its status, and no taint: only the extender's filter knows
        resources = {"cpu": "2", "memory": NODE_MEMORY, "pods": "110"}
        stamp = "2026-01-01T00:00:00Z"
        cp.request("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, ZONE: zone,
                                                  "topology.kubernetes.io/region": "region-1"}},
            "spec": {}, "status": {"capacity": resources, "allocatable": resources, "conditions": [
                {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                 "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}})
    made["nodes"].append(name)


def pod(made: dict[str, list[str]], name: str, priority: str, on: str | None = None,
        memory: str = FILL_MEMORY, redis: tuple[str, int, str] | None = None) -> dict[str, Any]:
    labels = {"app": "filler"}
    if redis is not None:
        cluster, shard, role = redis
        labels = {"redis-extender.io/cluster": cluster, "redis-extender.io/shard": str(shard),
                  "redis-extender.io/role": role}
    spec: dict[str, Any] = {
        "schedulerName": SCHED, "priorityClassName": priority, "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "redis:7", "resources": {"requests": {"cpu": "100m", "memory": memory}}}]}
    if on is not None:
        spec["nodeName"] = on
    made["pods"].append(name)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": spec}


def create(cp: Any, body: dict[str, Any]) -> None:
    created = cp.create_pod(body)
    want = PRIORITIES[body["spec"]["priorityClassName"]]
    assert created["spec"].get("priority") == want, "the Priority admission plugin must resolve priorityClassName"


def fill(cp: Any, made: dict[str, list[str]], store: RedisStore, nodes: dict[str, str],
         pods: list[dict[str, Any]]) -> None:
    """Nodes (name -> zone) and bound pods, then wait until the extender's state holds them all."""
    for name, zone in nodes.items():
        node(cp, made, name, zone)
    for body in pods:
        create(cp, body)
    names = {p["metadata"]["name"] for p in pods}
    cp.wait_for(lambda: set(nodes) <= set(store.node_names()) and
                all((store.pod_record(NS, n) or _UNPLACED).node for n in names),
                timeout=30, what="nodes and pods synced")


class _Unplaced:
    node = ""


_UNPLACED = _Unplaced()


def start(live: tuple[Any, Served, RedisStore], version: tuple[int, int]) -> None:
    cp, extender, _ = live
    cp.start_scheduler(config_for(version, extender.port))


def bound_node(cp: Any, name: str, timeout: float = 90) -> str:
    def where() -> str | None:
        return cp.get_pod(name, NS)["spec"].get("nodeName")
    try:
        return cp.wait_for(where, timeout=timeout, interval=0.25, what=f"{name} bound")
    except TimeoutError:
        status = cp.get_pod(name, NS).get("status", {})
        raise AssertionError(f"{name} not bound: {status}")


def alive(cp: Any) -> dict[str, str]:
    """Pods of the namespace not being deleted: name -> node."""
    return {p["metadata"]["name"]: p["spec"].get("nodeName") or "" for p in cp.list_pods(NS)
            if not p["metadata"].get("deletionTimestamp")}


def explained(extender: Served, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """POST /explain of a hypothetical pod: node -> its verdict, reason and score."""
    request = urllib.request.Request(extender.url + "/explain", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return {n["node"]: n for n in json.loads(resp.read())["nodes"]}


def preempt_metric(extender: Served, result: str) -> float:
    with urllib.request.urlopen(extender.url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(rf'^redis_extender_preempt_nodes_total{{result="{result}"}} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


SIX = {"za-1": "zone-a", "za-2": "zone-a", "zb-1": "zone-b", "zb-2": "zone-b", "zc-1": "zone-c", "zc-2": "zone-c"}


def test_redis_preemptor_preempts_only_where_its_spread_rules_hold(live, world, version) -> None:
    cp, extender, store = live
    # shard 0 of "pc" has copies in zone-a and zone-b; the cheapest victims (LOW) are there too
    pods = [pod(world, "pc-0", LOW, "za-1", redis=("pc", 0, "master")),
            pod(world, "pc-1", LOW, "zb-1", redis=("pc", 0, "replica")),
            pod(world, "fill-za-2", LOW, "za-2"), pod(world, "fill-zb-2", LOW, "zb-2"),
            pod(world, "fill-zc-1", MID, "zc-1"), pod(world, "fill-zc-2", MID, "zc-2")]
    fill(cp, world, store, SIX, pods)
    start(live, version)
    create(cp, pod(world, "pc-2", HIGH, memory=WANT_MEMORY, redis=("pc", 0, "replica")))
    where = bound_node(cp, "pc-2")
    assert SIX[where] == "zone-c", f"pc-2 preempted in {SIX[where]}, a zone that already holds shard 0"
    left = alive(cp)
    assert {"fill-za-2", "fill-zb-2", "pc-0", "pc-1"} <= set(left), "a victim outside zone-c was evicted"
    assert len([n for n in ("fill-zc-1", "fill-zc-2") if n in left]) == 1  # exactly the one making room
    assert preempt_metric(extender, "rules") >= 2  # za-2 and zb-2 were candidates, left out


def test_a_shards_last_copy_outside_one_zone_is_not_evicted_while_other_victims_exist(live, world, version) -> None:
    cp, extender, store = live
    # shard 0 of "vic": two copies in zone-a, its only other copy (the cheapest victim) in zone-b
    pods = [pod(world, "vic-0", LOW, "za-1", redis=("vic", 0, "master")),
            pod(world, "vic-1", LOW, "za-2", redis=("vic", 0, "replica")),
            pod(world, "vic-2", LOW, "zb-1", redis=("vic", 0, "replica")),
            pod(world, "fill-zb-2", MID, "zb-2"), pod(world, "fill-zc-1", MID, "zc-1"),
            pod(world, "fill-zc-2", MID, "zc-2")]
    fill(cp, world, store, SIX, pods)
    start(live, version)
    create(cp, pod(world, "batch", HIGH, memory=WANT_MEMORY))  # not a Redis pod: its victims decide
    where = bound_node(cp, "batch")
    left = alive(cp)
    assert {"vic-0", "vic-1", "vic-2"} <= set(left), f"a Redis copy was evicted (batch on {where})"
    assert where in ("zb-2", "zc-1", "zc-2")
    assert preempt_metric(extender, "shard") >= 1  # zb-1: evicting vic-2 strands the shard in zone-a


# kube-scheduler v1.37 leaves a zero-victim node out of the preemption candidates itself:
# DryRunPreemption (pkg/scheduler/framework/preemption/preemption.go) keeps a node only when
# SelectVictimsOnNode returned victims and turns "fits with no victims" into an error status
# ("expected at least one victim pod on node"), ignored while other candidates exist; callExtenders
# refuses an extender's reply with an empty victim list. kubernetes#135486 (not in v1.37.2) sends
# such nodes to /preempt with "Pods": []. Versions known not to send them:
SENDS_NO_EMPTY_VICTIMS = (1, 37)
SMALL_MEMORY = "200Mi"  # leaves 1848Mi of zc-2's 2Gi: em-0's 1Gi fits beside it


def extender_lines(extender: Served, pattern: str) -> list[str]:
    return [line for line in extender.log.read_text(errors="replace").splitlines() if re.search(pattern, line)]


def scheduler_lines(cp: Any, pattern: str) -> list[str]:
    return [line for line in Path(cp.scheduler_log).read_text(errors="replace").splitlines()
            if re.search(pattern, line)]


def rejected_node_world(live: tuple[Any, Served, RedisStore], made: dict[str, list[str]],
                        fillers: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The case of kubernetes#135486: zc-2 is Ready to the scheduler but not to the extender,
    whose filter rejects it as FailedNodes (preemption may help, so the scheduler's dry run
    tries it); it holds a lower-priority pod (without one the dry run stops at "No preemption
    victims found", UnschedulableAndUnresolvable) that leaves room for the preemptor, so the
    dry run, which runs the in-tree filters only, finds the pod fits there with no victim.
    The five other nodes are full of `fillers` pods. Returns them and em-0 (not created)."""
    cp, extender, store = live
    nodes = {k: v for k, v in SIX.items() if k != "zc-2"}
    pods = [pod(made, f"fill-{n}", fillers, n) for n in nodes]
    fill(cp, made, store, nodes, pods)
    node(cp, made, "zc-2", "zone-c", ready=False)  # the scheduler sees no taint: only the extender rejects it
    create(cp, pod(made, "small-zc-2", LOW, "zc-2", memory=SMALL_MEMORY))
    cp.wait_for(lambda: "zc-2" in store.nodes()[1] and not store.nodes()[1]["zc-2"].ready and
                (store.pod_record(NS, "small-zc-2") or _UNPLACED).node == "zc-2", timeout=30,
                what="zc-2 synced, not Ready, with small-zc-2 on it")
    em = pod(made, "em-0", HIGH, memory=WANT_MEMORY, redis=("em", 0, "master"))
    cp.wait_for(lambda: explained(extender, em).get("zc-2", {}).get("verdict") == "failed",
                timeout=30, what="the extender to reject zc-2 as FailedNodes (not Ready)")
    verdict = explained(extender, em)["zc-2"]
    # failed, not unresolvable: a node the scheduler's dry run tries
    assert verdict["reason"].startswith("node is not Ready"), verdict
    return pods, em


def watch_nominations(cp: Any, name: str, seen: set[str]) -> Any:
    def bound() -> str | None:
        got = cp.get_pod(name, NS)
        nominated = (got.get("status") or {}).get("nominatedNodeName")
        if nominated:
            seen.add(nominated)
        return got["spec"].get("nodeName")
    return bound


def assert_dry_run_found_no_victim_on_zc2(cp: Any) -> None:
    """The scenario happened: the extender's filter rejected zc-2, the dry run tried it (it was
    Unschedulable, not Unresolvable) and found no victim there (V(5) logs every node's victims)."""
    assert scheduler_lines(cp, r'no fit.*1 node is not Ready \(cached node status\)'), "zc-2 not rejected by filter"
    assert scheduler_lines(cp, r'"Check the potential node for preemption".*node="zc-2"'), \
        "the scheduler's dry run never tried zc-2: the scenario did not happen"
    assert not scheduler_lines(cp, r'"Pods are potential preemption victims on node".*node="zc-2"')


def assert_zc2_sent_as_the_version_does(extender: Served, version: tuple[int, int], before: float) -> None:
    sent = preempt_metric(extender, "no_victims") - before
    left_out = extender_lines(extender, r"preempt preempt/em-0: node zc-2 left out")
    if version <= SENDS_NO_EMPTY_VICTIMS:
        assert sent == 0 and not left_out, (
            f"kube-scheduler v{version[0]}.{version[1]} sent zc-2 to /preempt ({sent:.0f} with no victims; "
            f"{left_out}): it now has kubernetes#135486; update scheduler-config/README.md and "
            f"SENDS_NO_EMPTY_VICTIMS, and require it here")
    else:  # with kubernetes#135486 zc-2 comes with no victims: /preempt must have left it out as such
        assert all("no victims" in line for line in left_out) and sent >= len(left_out), (sent, left_out)


def test_a_node_the_filter_rejected_while_the_pod_fit_stays_rejected(live, world, version) -> None:
    cp, extender, _ = live
    pods, em = rejected_node_world(live, world, LOW)  # the five other nodes hold victims
    cp.start_scheduler(config_for(version, extender.port), args=["--v=5"])  # V(5): the dry run's per-node lines
    before, kept_before = preempt_metric(extender, "no_victims"), preempt_metric(extender, "kept")
    create(cp, em)
    seen: set[str] = set()
    try:
        where = cp.wait_for(watch_nominations(cp, "em-0", seen), timeout=90, interval=0.1, what="em-0 bound")
    except TimeoutError:
        raise AssertionError(f"em-0 not bound (nominated {seen}): {cp.get_pod('em-0', NS).get('status')}")
    assert where != "zc-2" and "zc-2" not in seen, f"em-0 went to the rejected node (nominated {seen})"
    left = alive(cp)
    assert "small-zc-2" in left, "the pod on the rejected node was evicted"
    assert len([p for p in pods if p["metadata"]["name"] in left]) == len(pods) - 1  # one victim, elsewhere
    assert_dry_run_found_no_victim_on_zc2(cp)
    assert scheduler_lines(cp, r'"Pods are potential preemption victims on node"')  # the lines exist at V(5)
    assert preempt_metric(extender, "kept") - kept_before >= 1, "/preempt was not called"
    assert_zc2_sent_as_the_version_does(extender, version, before)


def test_when_only_the_rejected_node_could_take_the_pod_nobody_is_preempted(live, world, version) -> None:
    """The five other nodes are full of pods of the preemptor's own priority: no victims there
    (UnschedulableAndUnresolvable), so zc-2, with no victim, is the only node left. v1.37 fails
    the whole preemption ("expected at least one victim pod on node", the bug kubernetes#135486
    fixes); with the fix zc-2 goes to /preempt with no victims and is left out. Either way em-0
    stays Pending, nominated nowhere, and nothing is evicted."""
    cp, extender, _ = live
    pods, em = rejected_node_world(live, world, HIGH)
    cp.start_scheduler(config_for(version, extender.port), args=["--v=5"])
    before = preempt_metric(extender, "no_victims")
    create(cp, em)
    failed = r'PostFilter.*expected at least one victim pod on node \\?"zc-2'
    cp.wait_for(lambda: scheduler_lines(cp, failed) or preempt_metric(extender, "no_victims") > before,
                timeout=60, what="the preemption to fail on zc-2 (v1.37) or zc-2 sent to /preempt")
    seen: set[str] = set()
    watching = watch_nominations(cp, "em-0", seen)
    for _ in range(20):  # 2 s more of scheduling attempts: still nowhere
        assert watching() is None, f"em-0 was bound (nominated {seen})"
        threading.Event().wait(0.1)
    assert not seen, f"em-0 was nominated to {seen}"
    left = alive(cp)
    assert {"small-zc-2", *(p["metadata"]["name"] for p in pods)} <= set(left), f"a pod was evicted: {left}"
    assert_dry_run_found_no_victim_on_zc2(cp)
    assert_zc2_sent_as_the_version_does(extender, version, before)
