"""Reports against a REAL Redis Cluster on loopback: Debian's redis-server 7.0 in cluster mode,
3 shards x 3 copies (9 processes), each announcing its pod name as hostname, mapped to
simulated pods on 9 simulated nodes in 3 zones. A forced failover piles two masters into one
zone; the report flags it, the advice names the replica to promote, `rebalance --apply`
(a real subprocess of the CLI) performs it, and the report is clean again.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from extender.core.identity import Identifier
from extender.local.localredis import LocalRedis
from extender.local.processes import free_port
from extender.actuation.rebalance import FAILED, SKIPPED, rebalance, wait_master_knows
from extender.reports.render import compose, document
from extender.analysis.topology import LiveTopology, parse_cluster_nodes
from extender.core.settings import DEFAULT_LEVELS, IdentitySettings
from extender.local.simulate import make_node, make_pod, redis_labels
from extender.state.inventory import read_inventory
from extender.state.loader import load_list
from extender.state.schema import Keys
from extender.actuation.nodes import NodeClient, fetch, fetch_cluster
from extender.state.live import load_live, store_live

from ..support.rediscluster import RedisCluster, wait_for

CLUSTER = "redis/cache"
ZONES = ("zone-a", "zone-b", "zone-c")
FAIL_ON = "spof=0,master_skew=1,quorum_unsafe=0"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        pytest.fail("redis-server and redis-cli are needed: run ./scripts/test, which installs them")
    rc = RedisCluster().start()
    try:
        yield rc
    finally:
        rc.stop()


def shard_layout(topology: LiveTopology) -> list[list[str]]:
    """Pods per shard (by first slot), master first then replicas by name."""
    nodes = topology.by_id()
    masters = sorted((n for n in topology.nodes if n.role == "master"), key=lambda n: n.slots[0][0])
    return [[m.pod] + sorted((n.pod for n in nodes.values() if n.master_id == m.node_id), key=_ordinal)
            for m in masters]


def _ordinal(pod: str) -> int:
    return int(pod.rsplit("-", 1)[1])


def world(layout: list[list[str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Nine nodes in three zones; shard k's copy j on zone (k + j) % 3: one master per zone."""
    items: list[dict[str, Any]] = []
    where: dict[str, str] = {}
    for z in ZONES:
        for k in range(3):
            items.append(make_node(f"node-{z[-1]}{k + 1}", z, "region-1", None, 8, 4))
    for k, pods in enumerate(layout):
        for j, pod in enumerate(pods):
            zone = ZONES[(k + j) % 3]
            node = f"node-{zone[-1]}{k + 1}"
            where[pod] = zone
            ns, name = pod.split("/")
            role = "master" if j == 0 else "replica"
            items.append(make_pod(ns, name, redis_labels("cache", k, role), "1Gi", "500m", node))
    return {"kind": "List", "items": items}, where


@pytest.fixture
def loaded(cluster: RedisCluster, store, prefix: str) -> dict[str, Any]:
    """The cluster as the store knows it, roles as created; live topology stored too."""
    _restore_layout(cluster)
    topology = fetch_cluster(cluster.seed, CLUSTER)
    assert topology.error == "" and topology.source == "CLUSTER SHARDS"
    layout = shard_layout(topology)
    assert [len(p) for p in layout] == [3, 3, 3]
    document_, zone_of = world(layout)
    load_list(store, document_, Identifier(IdentitySettings()))
    store_live(store, topology)
    return {"layout": layout, "zone_of": zone_of, "topology": topology}


def _restore_layout(cluster: RedisCluster) -> None:
    """Tests share the module's cluster: put the masters back where redis-cli created them (a
    previous test may have stopped between its failover and its rebalance)."""
    by_pod = fetch_cluster(cluster.seed, CLUSTER).by_pod()
    for pod in cluster.initial_masters:
        if by_pod[pod].role != "master":
            force_failover(cluster, pod)
    wait_for(cluster.settled, what="every replica linked")


def cli(prefix: str, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "REDIS_EXTENDER_KEY_PREFIX": prefix}
    return subprocess.run([sys.executable, "-m", "extender.commands.report", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def report_doc(store, prefix: str) -> dict[str, Any]:
    report, plans = compose(read_inventory(store, DEFAULT_LEVELS))
    return document(report, plans)


def refresh(cluster: RedisCluster, store, prefix: str) -> LiveTopology:
    topology = fetch_cluster(cluster.seed, CLUSTER)
    store_live(store, topology)
    return topology


def force_failover(cluster: RedisCluster, pod: str) -> None:
    """CLUSTER FAILOVER on the pod's Redis, as an operator (or a crash) would, once its master
    knows it as its replica; waits for the role change."""
    by_pod = fetch_cluster(cluster.seed, CLUSTER).by_pod()
    node = by_pod[pod]
    master = next(n for n in by_pod.values() if n.node_id == node.master_id)
    c = cluster.client(node.port)
    wait_for(lambda: c.info("replication").get("master_link_status") == "up", what=f"{pod} link up")
    assert wait_master_knows(NodeClient(cluster.client(master.port)), node.node_id, 10)
    old = cluster.client(master.port)

    def promoted() -> bool:  # the old master demoted too: a flapping "win" is not a failover
        return c.execute_command("ROLE")[0] == "master" and old.execute_command("ROLE")[0] == "slave"
    for _ in range(3):  # a node re-elected soon after its last election may need another try
        assert c.execute_command("CLUSTER", "FAILOVER") == "OK"
        try:
            wait_for(promoted, timeout=6, what=f"{pod} promoted")
            return
        except AssertionError:
            continue
    raise AssertionError(f"{pod} could not be promoted")


def test_live_topology_maps_every_redis_node_to_its_pod(cluster: RedisCluster, loaded, store, prefix: str) -> None:
    topology = load_live(store, CLUSTER)
    assert topology is not None and topology.kind == "cluster"
    assert sorted(n.pod for n in topology.nodes) == sorted(f"redis/cache-{i}" for i in range(9))
    masters = [n for n in topology.nodes if n.role == "master"]
    assert sum(m.slot_count for m in masters) == 16384
    replicas = [n for n in topology.nodes if n.role == "replica"]
    assert all(r.link_up is True and r.offset is not None and r.health == "online" for r in replicas)
    assert all(n.maxmemory == 100 * 2**20 for n in topology.nodes)
    # CLUSTER NODES (the fallback for Redis < 7) tells the same roles and slots
    text = cluster.client(cluster.servers[0].port).execute_command("CLUSTER", "NODES")
    fallback = {n.hostname: (n.role, n.slots) for n in parse_cluster_nodes(text)}
    assert fallback == {n.hostname: (n.role, n.slots) for n in topology.nodes}


def test_clean_placement_reports_clean(loaded, store, prefix: str) -> None:
    doc = report_doc(store, prefix)
    s = doc["summary"]
    assert (s["spof"], s["quorum_unsafe"], s["worst_loss"], s["surviving_copies"]) == (0, 0, 0.0, 2)
    assert doc["clusters"][0]["levels"]["zone"]["masters_per_domain"] == {z: 1 for z in ZONES}
    assert (s["live_mismatch"], s["advice_steps"], s["maxmemory_issues"], s["risky_shards"]) == (0, 0, 0, 0)
    assert doc["clusters"][0]["shard_list"][0]["slots"] == 5461  # slot weights from live topology


def test_piled_masters_are_flagged_advised_and_rebalanced(cluster: RedisCluster, loaded, store, prefix: str,
                                                          redis_server: LocalRedis) -> None:
    layout, zone_of = loaded["layout"], loaded["zone_of"]
    # shard 1's master is in zone-b; its replica copy 2 sits in zone-a, next to shard 0's master
    intruder, home = layout[1][2], layout[1][0]
    assert (zone_of[intruder], zone_of[home], zone_of[layout[0][0]]) == ("zone-a", "zone-b", "zone-a")
    ok = cli(prefix, redis_server.url, "report", "--fail-on", FAIL_ON, "--refresh-live", f"{CLUSTER}={cluster.seed}")
    assert ok.returncode == 0, ok.stdout + ok.stderr

    force_failover(cluster, intruder)

    def advised() -> dict[str, Any] | None:  # the demoted master resyncs before it is in sync
        refresh(cluster, store, prefix)
        doc = report_doc(store, prefix)
        return doc if doc["advice"][0]["steps"] else None
    doc = wait_for(advised, what="the demoted master back in sync")
    zone = doc["clusters"][0]["levels"]["zone"]
    assert zone["masters_per_domain"] == {"zone-a": 2, "zone-b": 0, "zone-c": 1}
    # the decisions see the promoted replica as a master too (live roles beat labels)
    node_of = {pod: store.pod(*pod.split("/"))["node"] for pod in (intruder, home)}
    live_masters = store.shard_state(CLUSTER, "1").counts.masters_per_node
    assert live_masters.get(node_of[intruder]) == 1 and not live_masters.get(node_of[home])
    assert {c.pod: c.role.value for c in store.shard_state(CLUSTER, "1").copies}[intruder] == "master"
    assert (zone["master_skew"], zone["quorum_safe"], zone["quorum_limit"]) == (2, False, 2)
    s = doc["summary"]
    # live_mismatch 0: refreshing the live topology made the cache adopt the live roles
    assert (s["quorum_unsafe"], s["master_skew"], s["live_mismatch"], s["risky_shards"]) == (1, 2, 0, 2)
    risks = {sh["shard"]: sh["risks"] for sh in doc["clusters"][0]["shard_list"]}
    assert risks == {"0": ["master in crowded zone zone-a"], "1": ["master in crowded zone zone-a"], "2": []}
    steps = doc["advice"][0]["steps"]
    assert [(st["shard"], st["promote"], st["demote"], st["to_domain"]) for st in steps] == \
        [("1", home, intruder, "zone-b")]

    failing = cli(prefix, redis_server.url, "report", "--fail-on", FAIL_ON)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "QUORUM UNSAFE (limit 2)" in failing.stdout and f"CLUSTER FAILOVER on {home}" in failing.stdout

    dry = cli(prefix, redis_server.url, "rebalance", "--cluster", CLUSTER, "--seed", cluster.seed)
    assert dry.returncode == 0 and f"CLUSTER FAILOVER on {home}" in dry.stdout and "--apply" in dry.stdout
    assert refresh(cluster, store, prefix).by_pod()[intruder].role == "master"  # nothing was touched

    applied = cli(prefix, redis_server.url, "rebalance", "--cluster", CLUSTER, "--seed", cluster.seed, "--apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"step 1: {home} is master of shard 1" in applied.stdout
    assert "now masters per zone: zone-a=1 zone-b=1 zone-c=1 (skew 0, quorum safe)" in applied.stdout

    clean = cli(prefix, redis_server.url, "report", "--json", "--fail-on", FAIL_ON)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    after = json.loads(clean.stdout)
    assert after["breaches"] == []
    assert after["summary"]["live_mismatch"] == 0 and after["summary"]["advice_steps"] == 0, after["hygiene"]["mismatches"]
    assert after["clusters"][0]["levels"]["zone"]["masters_per_domain"] == {z: 1 for z in ZONES}


def test_rebalance_stops_at_the_first_surprise(cluster: RedisCluster, loaded, store, prefix: str) -> None:
    # shard 2 (master in zone-c): its copy 1 sits in zone-a. Nodes of shard 1 were just elected
    # by the previous test, and Redis holds off a node's next election for a while.
    layout, zone_of = loaded["layout"], loaded["zone_of"]
    intruder, home = layout[2][1], layout[2][0]
    assert (zone_of[intruder], zone_of[home]) == ("zone-a", "zone-c")
    force_failover(cluster, intruder)
    topology, plan = wait_for(lambda: _in_sync_plan(cluster, store, prefix), what="an in-sync plan")
    assert [s.promote for s in plan.steps] == [home]
    force_failover(cluster, home)  # someone else acts first: the plan is stale
    result = rebalance(plan, topology, apply=True, timeout=5)
    assert [r.status for r in result.results] == [FAILED]
    assert f"{home} is master, not a replica" in result.results[0].detail and not result.ok
    # a plan of two steps stops after its first failed step; the second is skipped, not tried
    two = type(plan)(plan.cluster, plan.level, plan.steps * 2, plan.before, plan.after, plan.quorum_limit)
    result = rebalance(two, topology, apply=True, timeout=5)
    assert [r.status for r in result.results] == [FAILED, SKIPPED]


def _in_sync_plan(cluster: RedisCluster, store, prefix: str):
    topology = refresh(cluster, store, prefix)
    report, plans = compose(read_inventory(store, DEFAULT_LEVELS))
    return (topology, plans[0]) if plans[0].steps else None


def test_unreachable_seed_is_recorded_not_raised(cluster: RedisCluster, store, prefix: str) -> None:
    failed = fetch(CLUSTER, f"127.0.0.1:{free_port()}")
    assert failed.nodes == () and "Connection" in failed.error
    store_live(store, failed)
    stored = load_live(store, CLUSTER)
    assert stored is not None and stored.error == failed.error and stored.nodes == ()
    good = fetch_cluster(cluster.seed, CLUSTER)
    store_live(store, good)
    store_live(store, failed)  # the last good view is kept, with the error beside it
    stored = load_live(store, CLUSTER)
    assert stored is not None and stored.nodes == good.nodes and stored.fetched_at == good.fetched_at
    assert stored.error == failed.error


def test_sentinel_topology(tmp_path: Path) -> None:
    """A real Sentinel watching one master and one replica (Sentinel mode of redis-server)."""
    master = LocalRedis()
    replica = LocalRedis(extra=("--replicaof", "127.0.0.1", str(master.port), "--repl-diskless-sync-delay", "0"))
    sentinel_port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor cache 127.0.0.1 {master.port} 1\n")
    proc: subprocess.Popen[bytes] | None = None
    try:
        master.start()
        replica.start()
        proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        def linked() -> LiveTopology | None:
            try:
                t = fetch("redis/sess", f"sentinel://127.0.0.1:{sentinel_port}/cache",
                          ip_map={f"127.0.0.1:{master.port}": "sess-0", f"127.0.0.1:{replica.port}": "sess-1"})
            except Exception:
                return None
            return t if len(t.nodes) == 2 and all(n.link_up for n in t.nodes if n.role == "replica") else None
        topology = wait_for(linked, timeout=20, what="sentinel to discover the replica")
        assert topology.kind == "sentinel" and topology.source == "SENTINEL"
        roles = {n.pod: (n.role, n.health) for n in topology.nodes}
        assert roles == {"redis/sess-0": ("master", "online"), "redis/sess-1": ("replica", "online")}
        rep = next(n for n in topology.nodes if n.role == "replica")
        assert rep.master_id == next(n.node_id for n in topology.nodes if n.role == "master")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        replica.stop()
        master.stop()


def test_the_refresher_finds_a_cluster_through_its_pods_ips(cluster: RedisCluster, loaded, store, prefix: str) -> None:
    from dataclasses import replace as dc_replace

    from extender.core import settings as settings_mod
    from extender.actuation.refresher import discovered_seeds, refresh_all
    from extender.state.records import PodRecord

    for pods in loaded["layout"]:  # as the watch stores them: with status.podIP
        for pod in pods:
            ns, name = pod.split("/")
            r = store.pod(ns, name)
            store.upsert_pod(PodRecord(ns, name, r["uid"], r["node"], int(r["mem"]), int(r["cpu"]), r["phase"],
                                       r["cluster"], r["shard"], r["role"], ip="127.0.0.1"))
    assert set(store.cluster_pod_ips(CLUSTER).values()) == {"127.0.0.1"}
    assert discovered_seeds({"a/x": "10.0.0.2", "a/w": "10.0.0.1", "a/y": "10.0.0.2"}, 6379) == \
        ["10.0.0.1:6379", "10.0.0.2:6379"]
    store.r.delete(Keys(prefix).live(CLUSTER))
    base = settings_mod.load(env={"REDIS_EXTENDER_KEY_PREFIX": prefix})
    port = cluster.servers[0].port
    settings = dc_replace(base, live=dc_replace(base.live, redis_port=port))
    assert refresh_all(store, settings) == {CLUSTER: ""}
    topology = load_live(store, CLUSTER)
    assert topology is not None and len(topology.nodes) == 9 and topology.seed == f"127.0.0.1:{port}"
    wrong = dc_replace(base, live=dc_replace(base.live, redis_port=1))
    assert "Error" in refresh_all(store, wrong)[CLUSTER]  # recorded, never raised
