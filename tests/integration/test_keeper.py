"""The keeper's I/O on a REAL Redis Cluster (9 redis-servers, tests/support/rediscluster.py),
its pods simulated in the state (no Kubernetes: kube=None, so no Events or evictions):
masters 2-1-0 over three zones are drifting; after the settle time one keeper round in `act`
performs exactly one CLUSTER FAILOVER (the plan's first step) and records it as pending
before sending it; a second keeper (a new leader) that reads that memory does not resend
anything, and settles the step once the live view shows it. `advise` and --dry-run never
touch Redis."""
from __future__ import annotations

import shutil
from typing import Any, Iterator

import pytest

from extender.actuation.keeper import Keeper
from extender.core.identity import Identifier
from extender.core.settings import IdentitySettings, load
from extender.local.simulate import make_node, make_pod, redis_labels
from extender.state.keeper_store import load_memory
from extender.state.loader import load_list
from extender.actuation.nodes import fetch_cluster
from extender.state.live import store_live

from ..support.rediscluster import RedisCluster, wait_for

CLUSTER = "redis/cache"
# shard k (by first slot): zones of master, first replica, second replica. Masters a, a, b.
SPAN = (("zone-a", "zone-b", "zone-c"), ("zone-a", "zone-c", "zone-b"), ("zone-b", "zone-a", "zone-c"))


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        pytest.fail("redis-server and redis-cli are needed: run ./scripts/test, which installs them")
    rc = RedisCluster(shards=3, replicas=2).start()
    try:
        yield rc
    finally:
        rc.stop()


def load_world(store: Any, rc: RedisCluster) -> dict[str, str]:
    topology = fetch_cluster(rc.seed, CLUSTER, probe=False)
    masters = sorted((n for n in topology.nodes if n.role == "master"), key=lambda n: n.slots[0][0])
    layout = [[m.pod] + sorted((n.pod for n in topology.nodes if n.master_id == m.node_id), key=rc.index)
              for m in masters]
    items, zone_of = [], {}
    for z in ("a", "b", "c"):
        for i in range(3):
            items.append(make_node(f"node-{z}{i}", f"zone-{z}", "region-1", None, 16, 8))
    for k, pods in enumerate(layout):
        for j, pod in enumerate(pods):
            zone = SPAN[k][j]
            zone_of[pod] = zone
            ns, name = pod.split("/")
            items.append(make_pod(ns, name, redis_labels("cache", k, "master" if j == 0 else "replica"),
                                  "1Gi", "500m", f"node-{zone[-1]}{k}"))
    load_list(store, {"kind": "List", "items": items}, Identifier(IdentitySettings()))
    store_live(store, fetch_cluster(rc.seed, CLUSTER))
    return zone_of


def keeper(store: Any, rc: RedisCluster, prefix: str, url: str, mode: str = "act") -> Keeper:
    settings = load(env={"REDIS_URL": url, "REDIS_EXTENDER_KEY_PREFIX": prefix, "REDIS_EXTENDER_KEEPER": mode,
                         "REDIS_EXTENDER_KEEPER_SETTLE": "0", "REDIS_EXTENDER_KEEPER_COOLDOWN": "0",
                         "REDIS_EXTENDER_LIVE_SEEDS": f"{CLUSTER}={rc.seed}"})
    return Keeper(store, settings)


def masters(rc: RedisCluster, zone_of: dict[str, str]) -> dict[str, int]:
    counts = {"zone-a": 0, "zone-b": 0, "zone-c": 0}
    for host, role in rc.roles().items():
        if role == "master":
            counts[zone_of[f"redis/{host}"]] += 1
    return counts


def test_one_round_one_failover_recorded_first_and_a_new_leader_does_not_resend(
        cluster: RedisCluster, store, prefix: str, redis_server) -> None:
    zone_of = load_world(store, cluster)
    assert masters(cluster, zone_of) == {"zone-a": 2, "zone-b": 1, "zone-c": 0}
    before = cluster.roles()

    # advise and dry runs: the step is named, nothing is sent
    d = keeper(store, cluster, prefix, redis_server.url, "advise").round()[0]
    assert d.action == "failover" and d.step.to_domain == "zone-c"
    d = keeper(store, cluster, prefix, redis_server.url).round(dry_run=True)[0]
    assert d.action == "failover" and load_memory(store, CLUSTER).pending is None
    assert cluster.roles() == before

    acted = keeper(store, cluster, prefix, redis_server.url).round()[0]
    assert acted.action == "failover", acted
    memory = load_memory(store, CLUSTER)
    assert memory.pending and memory.pending["promote"] == acted.step.promote and memory.steps == 1
    wait_for(lambda: masters(cluster, zone_of) == {"zone-a": 1, "zone-b": 1, "zone-c": 1}, timeout=20,
             what="the failover")

    # a new leader (a fresh Keeper on the same store): it checks the pending step, sends nothing
    again = keeper(store, cluster, prefix, redis_server.url)
    d = wait_for(lambda: (r := again.round()[0]) and r.memory.pending is None and r, timeout=20,
                 what="the pending step settled from the live view")
    assert d.action == "none" and d.memory.last["outcome"] == "done" and d.memory.steps == 1
    assert masters(cluster, zone_of) == {"zone-a": 1, "zone-b": 1, "zone-c": 1}


def test_keeper_once_dry_run_says_what_it_would_do_and_does_nothing(cluster: RedisCluster, store, prefix: str,
                                                                     redis_server) -> None:
    import os
    import subprocess
    import sys

    zone_of = load_world(store, cluster)
    before = cluster.roles()
    env = {**os.environ, "REDIS_URL": redis_server.url, "REDIS_EXTENDER_KEY_PREFIX": prefix,
           "REDIS_EXTENDER_KEEPER": "act", "REDIS_EXTENDER_KEEPER_SETTLE": "0",
           "REDIS_EXTENDER_LIVE_SEEDS": f"{CLUSTER}={cluster.seed}"}
    out = subprocess.run([sys.executable, "-m", "extender.cli", "keeper", "--once", "--dry-run"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr  # a cluster drifts
    assert "masters per zone: zone-a 2, zone-b 1, zone-c 0" in out.stdout, out.stdout
    assert "failover: masters per zone" in out.stdout and "(zone-c)" in out.stdout, out.stdout
    assert cluster.roles() == before and load_memory(store, CLUSTER).pending is None
    assert masters(cluster, zone_of) == {"zone-a": 2, "zone-b": 1, "zone-c": 0}


def test_a_round_over_an_unchanged_state_does_not_read_it_again(store, prefix: str, redis_server,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The keeper runs every 2 s on the sync leader: the whole inventory is read again only when
    a pod or node write moved the state, and placed again when a live topology was stored."""
    from extender.actuation import keeper as keeper_mod
    from extender.state.records import PodRecord

    items = [make_node(f"node-{z}", f"zone-{z}", "region-1", None, 16, 8) for z in "abc"]
    items += [make_pod("redis", f"cache-{k}", redis_labels("cache", k, "master"), "1Gi", "500m", f"node-{z}")
              for k, z in enumerate("abc")]
    load_list(store, {"kind": "List", "items": items}, Identifier(IdentitySettings()))
    reads: list[int] = []
    real = keeper_mod.read_inventory
    monkeypatch.setattr(keeper_mod, "read_inventory", lambda *a, **kw: reads.append(1) or real(*a, **kw))
    settings = load(env={"REDIS_URL": redis_server.url, "REDIS_EXTENDER_KEY_PREFIX": prefix,
                         "REDIS_EXTENDER_KEEPER": "advise"})
    k = Keeper(store, settings)
    first = k.round()
    assert k.round() == first and len(reads) == 1
    store.upsert_pod(PodRecord("redis", "cache-0", uid="uid-redis-cache-0", node="node-b", memory=1 << 30,
                               cpu=500, phase="Running", cluster="redis/cache", shard="0", role="master"))
    k.round()
    assert len(reads) == 2 and k._placement().inventory.shards["redis/cache"]["0"][0].node == "node-b"
    from extender.analysis.topology import KIND_CLUSTER, LiveTopology

    assert k._placement().inventory.live == {}
    store_live(store, LiveTopology(CLUSTER, KIND_CLUSTER, 1.0, "seed:6379", error="unreachable"))
    k.round()
    assert len(reads) == 2  # placed again with the new live view, from the same inventory
    assert k._placement().inventory.live[CLUSTER].error == "unreachable"
