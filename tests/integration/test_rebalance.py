"""A zone is lost under a REAL Redis Cluster, and `rebalance` restores master balance.

18 redis-server processes on loopback (6 shards x 3 copies, tests/support/rediscluster.py),
mapped onto simulated pods on 12 nodes in 4 zones; every shard spans 3 zones, 2-1-1-2 masters.
Zone d is lost: its 5 processes are killed (SIGKILL) and its nodes go NotReady in the state.
Redis Cluster fails its 2 masters over on its own; the replicas in zone b and c are told not
to run for election (cluster-replica-no-failover, an operator's setting), so both promotions
land in zone a: 4-1-1, skew 3, and zone a holds 4 of 6 masters (losing it next would leave no
majority to elect anyone). `rebalance` (the CLI, as an operator runs it) must then advise
CLUSTER FAILOVER steps that reach master skew <= 1 over the surviving zones with no zone at
half of the masters or more, first while the dead zone's nodes and pods are still in the
state (NotReady), then after they are deleted; `--apply` performs them and the real cluster's
own ROLE answers must meet the same goal.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from typing import Any, Iterator

import pytest

from extender.core.identity import Identifier
from extender.core.settings import IdentitySettings
from extender.local.simulate import make_node, make_pod, redis_labels
from extender.state.loader import load_list, node_record
from extender.actuation.nodes import fetch_cluster
from extender.state.live import store_live

from ..support.rediscluster import RedisCluster, wait_for

CLUSTER = "redis/cache"
ZONES = ("zone-a", "zone-b", "zone-c", "zone-d")
NODES_PER_ZONE = 3
LOST = "zone-d"
# shard k (by first slot): the zones of its master, first replica, second replica
SPAN = (("zone-a", "zone-b", "zone-d"), ("zone-b", "zone-c", "zone-d"), ("zone-c", "zone-a", "zone-d"),
        ("zone-d", "zone-a", "zone-b"), ("zone-d", "zone-a", "zone-c"), ("zone-a", "zone-b", "zone-c"))
# zone-d's masters (shards 3 and 4) must be replaced from zone a: their other replica may not run
NO_ELECTION = {3: "zone-b", 4: "zone-c"}


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        pytest.fail("redis-server and redis-cli are needed: run ./scripts/test, which installs them")
    rc = RedisCluster(shards=6, replicas=2).start()
    try:
        yield rc
    finally:
        rc.stop()


def layout_of(rc: RedisCluster) -> list[list[str]]:
    """Pods per shard (by first slot), master first then replicas by ordinal."""
    topology = fetch_cluster(rc.seed, CLUSTER, probe=False)
    masters = sorted((n for n in topology.nodes if n.role == "master"), key=lambda n: n.slots[0][0])
    return [[m.pod] + sorted((n.pod for n in topology.nodes if n.master_id == m.node_id), key=rc.index)
            for m in masters]


def world(layout: list[list[str]], lost: str | None = None, deleted: bool = False
          ) -> tuple[dict[str, Any], dict[str, str]]:
    """Nodes and pods as kubectl lists them: copy j of shard k in zone SPAN[k][j], round-robin
    over the zone's nodes; the `lost` zone's nodes NotReady, or (deleted) gone with its pods."""
    items: list[dict[str, Any]] = []
    zone_of: dict[str, str] = {}
    for z in ZONES:
        if z == lost and deleted:
            continue
        for i in range(NODES_PER_ZONE):
            node = make_node(f"node-{z[-1]}{i + 1}", z, "region-1", None, 16, 8)
            if z == lost:
                node["status"]["conditions"] = [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]
            items.append(node)
    used: Counter[str] = Counter()
    for k, pods in enumerate(layout):
        for j, pod in enumerate(pods):
            zone = SPAN[k][j]
            zone_of[pod] = zone
            if zone == lost and deleted:
                continue
            node = f"node-{zone[-1]}{used[zone] % NODES_PER_ZONE + 1}"
            used[zone] += 1
            ns, name = pod.split("/")
            items.append(make_pod(ns, name, redis_labels("cache", k, "master" if j == 0 else "replica"),
                                  "1Gi", "500m", node))
    return {"kind": "List", "items": items}, zone_of


def cli(prefix: str, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "REDIS_EXTENDER_KEY_PREFIX": prefix}
    return subprocess.run([sys.executable, "-m", "extender.commands.report", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def masters_per_zone(rc: RedisCluster, zone_of: dict[str, str]) -> dict[str, int]:
    """The real cluster's masters per zone, each live node's own ROLE."""
    counts = {z: 0 for z in ZONES if z != LOST}
    for host, role in rc.roles().items():
        if role == "master":
            counts[zone_of[f"redis/{host}"]] += 1
    return counts


def goal_met(counts: dict[str, int]) -> bool:
    """Skew <= 1 over the surviving zones and, with 3 or more, none at half of the masters."""
    total = sum(counts.values())
    return max(counts.values()) - min(counts.values()) <= 1 and max(counts.values()) < math.ceil(total / 2)


def test_zone_loss_piles_masters_and_rebalance_restores_balance(cluster: RedisCluster, store, prefix: str,
                                                                 redis_server) -> None:
    layout = layout_of(cluster)
    assert [len(p) for p in layout] == [3] * 6
    document, zone_of = world(layout)
    load_list(store, document, Identifier(IdentitySettings()))
    store_live(store, fetch_cluster(cluster.seed, CLUSTER))
    assert Counter(zone_of[p[0]] for p in layout) == {"zone-a": 2, "zone-b": 1, "zone-c": 1, "zone-d": 2}
    healthy = cli(prefix, redis_server.url, "report", "--json", "--fail-on", "master_skew=1,quorum_unsafe=0")
    assert healthy.returncode == 0, healthy.stdout[-2000:] + healthy.stderr

    for k, zone in NO_ELECTION.items():
        pod = next(p for p in layout[k] if zone_of[p] == zone)
        cluster.client(cluster.servers[cluster.index(pod)].port).config_set("cluster-replica-no-failover", "yes")
    for pod, zone in zone_of.items():  # the zone goes dark: processes crash, nodes stop reporting
        if zone == LOST:
            cluster.kill(cluster.index(pod))
    dark, _ = world(layout, lost=LOST)
    store.put_nodes(node_record(n) for n in dark["items"] if n["kind"] == "Node")
    wait_for(cluster.settled, timeout=40, poll=0.25, what="Redis Cluster to fail zone-d's masters over")
    piled = masters_per_zone(cluster, zone_of)
    assert piled == {"zone-a": 4, "zone-b": 1, "zone-c": 1}, piled
    store_live(store, fetch_cluster(cluster.seed, CLUSTER))
    roles = {k.decode(): v.decode() for k, v in store.r.hgetall(f"{prefix}liveroles:{CLUSTER}").items()}
    promoted = {next(p for p in layout[k] if zone_of[p] == "zone-a") for k in NO_ELECTION}
    assert {p for p, r in roles.items() if r == "master"} == {p[0] for p in layout if zone_of[p[0]] != LOST} | promoted
    assert not {p[0] for p in layout if zone_of[p[0]] == LOST} & set(roles)  # dead masters tell no role
    for k, zone in NO_ELECTION.items():  # back to the default: the plan must not rely on it
        pod = next(p for p in layout[k] if zone_of[p] == zone)
        cluster.client(cluster.servers[cluster.index(pod)].port).config_set("cluster-replica-no-failover", "no")

    def advised() -> dict[str, Any] | None:  # the surviving replicas re-attach to the new masters first
        out = cli(prefix, redis_server.url, "rebalance", "--cluster", CLUSTER, "--seed", cluster.seed, "--json")
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr
        result = json.loads(out.stdout)
        return result if result["plan"]["goal_met"] else None
    # while the dead zone is still in the state (NotReady nodes, its pods and dead masters listed)
    result = wait_for(advised, timeout=20, poll=0.5, what="a plan that meets the goal")
    plan = result["plan"]
    assert result["applied"] is False and all(r["status"] == "planned" for r in result["results"])
    assert plan["masters_before"] == {"zone-a": 4, "zone-b": 1, "zone-c": 1}, plan
    assert plan["skew_before"] == 3 and plan["quorum_safe_before"] is False and plan["quorum_limit"] == 3
    assert plan["masters_after"] == {"zone-a": 2, "zone-b": 2, "zone-c": 2}, plan
    assert plan["quorum_safe_after"] is True and len(plan["steps"]) == 2
    assert all(s["from_domain"] == "zone-a" and zone_of[s["promote"]] == s["to_domain"] != LOST
               for s in plan["steps"]), plan["steps"]
    assert masters_per_zone(cluster, zone_of) == piled  # a plan only: nothing was touched

    # the zone's nodes and pods deleted (their StatefulSets' replacements not yet placed)
    for pod, zone in zone_of.items():
        if zone == LOST:
            store.delete_pod(*pod.split("/"))
    for i in range(NODES_PER_ZONE):
        store.delete_node(f"node-{LOST[-1]}{i + 1}")
    applied = cli(prefix, redis_server.url, "rebalance", "--cluster", CLUSTER, "--seed", cluster.seed,
                  "--apply", "--json")
    assert applied.returncode == 0, applied.stdout[-2000:] + applied.stderr
    done = json.loads(applied.stdout)
    assert done["plan"]["masters_before"] == plan["masters_before"] and done["plan"]["goal_met"]
    assert [r["status"] for r in done["results"]] == ["done"] * len(done["plan"]["steps"]), done["results"]
    assert "now masters per zone: zone-a=2 zone-b=2 zone-c=2 (skew 0, quorum safe)" in applied.stderr

    after = masters_per_zone(cluster, zone_of)
    assert goal_met(after) and after == {"zone-a": 2, "zone-b": 2, "zone-c": 2}, after
    report = cli(prefix, redis_server.url, "report", "--json", "--fail-on", "master_skew=1,quorum_unsafe=0")
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr
    doc = json.loads(report.stdout)
    assert doc["clusters"][0]["levels"]["zone"]["masters_per_domain"] == after
    assert doc["summary"]["advice_steps"] == 0
