"""The syncer against the real API server: one writer among several, takeover when it dies,
and the watch's answers to what the API server says (410 Gone, deletes while away)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from extender.core.identity import Identifier
from extender.core.settings import IdentitySettings
from extender.state.k8s_sync import POD_SELECTOR, Gone, Reflector, api_client
from extender.state.lock import LeaderLock
from extender.state.loader import node_record, pod_record
from extender.state.records import NodeRecord
from extender.state.store import RedisStore

pytestmark = pytest.mark.e2e
ZONE = "topology.kubernetes.io/zone"


def start_sync(kubeconfig: Path, redis_url: str, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": redis_url, "REDIS_EXTENDER_KEY_PREFIX": prefix,
           "REDIS_EXTENDER_LOCK_TTL": "2"}
    return subprocess.Popen([sys.executable, "-m", "extender.cli", "sync", "--kubeconfig", str(kubeconfig)],
                            env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def test_one_syncer_writes_and_another_takes_over_when_it_dies(control_plane, store: RedisStore, prefix,
                                                               redis_server, tmp_path) -> None:
    cp = control_plane
    procs = [start_sync(cp.kubeconfig, redis_server.url, prefix, tmp_path / f"sync-{i}.log") for i in range(2)]
    lock = LeaderLock(store)
    try:
        holder = cp.wait_for(lambda: lock.holder(), timeout=15, what="a leader")
        leader = next(p for p in procs if f"/{p.pid}/" in holder)
        follower = next(p for p in procs if p is not leader)
        cp.create_node("sync-a", {ZONE: "zone-a"})
        cp.wait_for(lambda: "sync-a" in store.node_names(), timeout=10, what="node synced by the leader")
        assert f"/{follower.pid}/" not in lock.holder()

        leader.send_signal(signal.SIGKILL)  # no release: the lock must expire
        leader.wait()
        cp.wait_for(lambda: f"/{follower.pid}/" in (lock.holder() or ""), timeout=10, what="takeover")
        cp.create_node("sync-b", {ZONE: "zone-b"})
        cp.delete("/api/v1/nodes/sync-a")
        cp.wait_for(lambda: {"sync-b"} <= set(store.node_names()) and "sync-a" not in store.node_names(),
                    timeout=10, what="the new leader syncs")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        cp.delete("/api/v1/nodes/sync-a")
        cp.delete("/api/v1/nodes/sync-b")
    assert lock.holder() is None  # a clean stop releases the lock


def test_a_relist_deletes_what_the_api_deleted_while_away(control_plane, store: RedisStore) -> None:
    cp = control_plane
    store.put_nodes([NodeRecord("ghost", {}, 1, 1)])  # deleted while no syncer ran
    cp.create_node("present", {ZONE: "zone-a"})
    try:
        api = api_client(str(cp.kubeconfig))
        from kubernetes import client

        stop = threading.Event()
        nodes = Reflector("nodes", client.CoreV1Api(api).list_node, store, node_record, stop)
        nodes.relist()
        assert "ghost" not in store.node_names() and "present" in store.node_names()
        assert nodes.resource_version
    finally:
        cp.delete("/api/v1/nodes/present")


def test_an_expired_resource_version_means_relist(control_plane, store: RedisStore) -> None:
    from kubernetes import client

    api = api_client(str(control_plane.kubeconfig))
    nodes = Reflector("nodes", client.CoreV1Api(api).list_node, store, node_record, threading.Event())
    with pytest.raises(Gone):
        nodes.on_event({"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}})
    nodes.on_event({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}})
    assert nodes.resource_version == "42"


def test_pods_of_every_kind_count_toward_usage_only_redis_pods_carry_identity(control_plane, store) -> None:
    from kubernetes import client

    cp = control_plane
    cp.create_node("usage-1", {ZONE: "zone-a"})
    web = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "default"},
           "spec": {"nodeName": "usage-1", "containers": [
               {"name": "c", "image": "x", "resources": {"requests": {"memory": "1Gi", "cpu": "1"}}}]}}
    cp.create_pod(web)
    try:
        api = api_client(str(cp.kubeconfig))
        identifier = Identifier(IdentitySettings())
        pods = Reflector("pods", client.CoreV1Api(api).list_pod_for_all_namespaces, store,
                         lambda obj: pod_record(obj, identifier), threading.Event(), selector=POD_SELECTOR)
        pods.relist()
        assert store.usage() == ({"usage-1": 2**30}, {"usage-1": 1000})
        assert store.pod("default", "web-1")["cluster"] == ""
    finally:
        cp.delete("/api/v1/namespaces/default/pods/web-1")
        cp.delete("/api/v1/nodes/usage-1")


def test_a_relist_keeps_a_placement_recorded_after_it_began(control_plane, store: RedisStore) -> None:
    """/bind recorded a pod while the list was being read: the list cannot know it yet, and
    deleting it would hide the copy from its siblings until the watch replays it."""
    import time

    from kubernetes import client

    from extender.state.records import PodRecord

    api = api_client(str(control_plane.kubeconfig))
    pods = Reflector("pods", client.CoreV1Api(api).list_pod_for_all_namespaces, store,
                     lambda obj: pod_record(obj, Identifier(IdentitySettings())), threading.Event())
    began = time.time()
    bound = PodRecord("redis", "just-bound", "u1", "n1", 1, 1, "Pending", "redis/c", "0", "replica")
    assert store.record_placement(bound).ok
    pods._apply_list({}, began)
    assert store.pod("redis", "just-bound") is not None
    pods._apply_list({}, time.time() + 2)  # a later list that still lacks it: really gone
    assert store.pod("redis", "just-bound") is None


def test_the_main_job_with_a_kubeconfig_serves_the_live_cluster(control_plane, tmp_path) -> None:
    """`redis-extender run --kubeconfig`: its own Redis, the cluster synced into it, ready."""
    import json
    import urllib.request

    from extender.local.processes import free_port, stop_process, wait_until

    control_plane.create_node("main-job-node", {ZONE: "zone-a"})
    port = free_port()
    log = tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-m", "extender.cli", "run", "--kubeconfig",
                             str(control_plane.kubeconfig), "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                            env={**os.environ, "REDIS_EXTENDER_LOCK_TTL": "2"}, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)

    def synced() -> bool:
        try:
            ready = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).read())
        except OSError:
            return False
        return ready["status"] == "ready" and ready["source"].startswith("kubernetes")

    try:
        wait_until(synced, timeout=40, what="the main job ready on the live cluster", proc=proc, log=log,
                   interval=0.3)
        body = json.dumps({"Pod": {"metadata": {"name": "p", "namespace": "redis", "labels": {
            "redis-extender.io/cluster": "c", "redis-extender.io/shard": "0"}}},
            "NodeNames": ["main-job-node"]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/filter", data=body)
        try:
            reply = json.loads(urllib.request.urlopen(req, timeout=5).read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(log.read_text()[-4000:]) from exc
        assert reply["NodeNames"] == ["main-job-node"]
        assert "live mode: syncing" in log.read_text()
    finally:
        stop_process(proc, grace=15)
        control_plane.delete("/api/v1/nodes/main-job-node")
