"""The keeper repairs a placement it never made: a StatefulSet whose pods were bound by hand
(as by another scheduler, or before the extender was installed) with copies sharing nodes and
zones and masters 4-1-1. In `act` the keeper fails masters over to 2-2-2 and evicts misplaced
replicas one at a time through the Eviction API (a PodDisruptionBudget with maxUnavailable 1
in force); kube-controller-manager's StatefulSet controller recreates each, kube-scheduler places
it through the extender, the test's operator rejoins it as a replica. A poller checks
throughout that every shard keeps a master serving its slots and a linked replica, and at
most one pod is unavailable; the writer's acknowledged keys are all read back.

The second test kills the sync leader (its process, SIGKILL) right after the keeper's first
eviction: the other replica's syncer takes the lock, its keeper finds the step recorded as
pending, checks it against what it observes instead of resending it, and finishes the repair.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from ..support.keeperworld import NAMESPACE, SHARDS, World, balanced, keeper_events, keeper_state, keeper_world
from ..support.podcluster import Operator, Writer, _client, wait_for

pytestmark = pytest.mark.e2e

# ordinal -> (zone, node): shard = ordinal % 6, ordinals < 6 masters.
# masters 4-1-1; shard 0 all in zone 0 (two on one node), shard 1 two in zone 0, shard 3 two on
# one node of zone 1, shard 5 two on one node of zone 2.
BAD = {0: (0, 0), 6: (0, 0), 12: (0, 1),
       1: (0, 1), 7: (0, 2), 13: (1, 0),
       2: (0, 2), 8: (1, 1), 14: (2, 0),
       3: (0, 0), 9: (1, 2), 15: (1, 2),
       4: (1, 0), 10: (2, 1), 16: (0, 1),
       5: (2, 2), 11: (2, 2), 17: (1, 1)}
ENV = {"REDIS_EXTENDER_KEEPER": "act", "REDIS_EXTENDER_KEEPER_SETTLE": "5", "REDIS_EXTENDER_KEEPER_INTERVAL": "1",
       "REDIS_EXTENDER_KEEPER_COOLDOWN": "2", "REDIS_EXTENDER_LIVE_REFRESH": "1"}


def pdb(name: str) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": name}}}}


class Poller(threading.Thread):
    """Every 0.25 s: shards without a master serving, shards whose replicas are all unlinked
    (how long), pods not Ready."""

    def __init__(self, world: World):
        super().__init__(daemon=True)
        self.world = world
        self.stop_event = threading.Event()
        self.no_master = 0
        self.unlinked_since: dict[int, float] = {}
        self.longest_unlinked = 0.0
        self.max_unavailable = 0
        self.polls = 0

    def run(self) -> None:
        while not self.stop_event.wait(0.25):
            try:
                self.poll()
            except Exception:
                continue

    def poll(self) -> None:
        now = time.monotonic()
        masters, linked = set(), set()
        for name, server in self.world.agent.by_name().items():
            if server.proc is None:
                continue
            shard = int(name.rsplit("-", 1)[1]) % SHARDS  # every copy's shard, by the ordinal rule
            c = _client(server.ip, 0.5)
            try:
                info = c.info("replication")
            except Exception:
                continue
            finally:
                c.close()
            if info["role"] == "master":
                masters.add(shard)
                if int(info.get("connected_slaves", 0)) >= 1:
                    linked.add(shard)
        self.polls += 1
        self.no_master += sum(1 for s in range(SHARDS) if s not in masters)
        for s in range(SHARDS):
            if s in linked:
                self.unlinked_since.pop(s, None)
            else:
                start = self.unlinked_since.setdefault(s, now)
                self.longest_unlinked = max(self.longest_unlinked, now - start)
        pods = self.world.pod_objects()
        ready = sum(1 for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                           for c in p.get("status", {}).get("conditions", [])))
        self.max_unavailable = max(self.max_unavailable, len(self.world.pods) - ready)


def _repaired(world: World) -> bool:
    return world.shards_sharing() == (0, 0) and sorted(world.masters_per_zone().values()) == [2, 2, 2] \
        and keeper_state(world).get("memory", {}).get("pending") is None


def _repair(world: World, kill_leader_after_first_eviction: bool = False) -> dict[str, Any]:
    world.cp.request("POST", f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets", pdb(world.name))
    assert world.masters_per_zone() == {"zone-0": 4, "zone-1": 1, "zone-2": 1}
    assert world.shards_sharing() == (3, 4)
    world.operator = Operator(world.agent, world.name, SHARDS).start()
    writer = world.writer = Writer(world.agent, world.pods).start()
    poller = Poller(world)
    poller.start()
    killed = None
    t0 = time.monotonic()
    try:
        if kill_leader_after_first_eviction:
            wait_for(lambda: [e for e in keeper_events(world.cp) if e["reason"] == "RedisKeeperEvict"
                              and e["pod"].startswith(world.name + "-")], timeout=180, poll=0.1,
                     what="the keeper's first eviction")
            holder = world.store.lock_holder() or ""
            killed = int(holder.split("/")[1])  # hostname/pid/uuid: the sync process of one replica
            os.kill(killed, signal.SIGKILL)
        wait_for(lambda: _repaired(world), timeout=400, poll=1, what="the placement repaired")
    finally:
        poller.stop_event.set()
        poller.join(5)
        writer.stop()
    seconds = time.monotonic() - t0
    events = [e for e in keeper_events(world.cp) if e["pod"].startswith(world.name + "-")]
    return {"seconds": seconds, "events": events, "poller": poller, "lost": writer.lost(), "acked": len(writer.acked),
            "killed": killed, "state": keeper_state(world)}


def _check(world: World, result: dict[str, Any]) -> None:
    poller = result["poller"]
    assert world.shards_sharing() == (0, 0)
    counts = world.masters_per_zone()
    assert balanced(counts) and sorted(counts.values()) == [2, 2, 2], counts
    assert poller.polls > 20 and poller.no_master == 0, vars(poller)
    assert poller.longest_unlinked < 3.0, vars(poller)  # a failover's handshake, never a resync window
    assert poller.max_unavailable <= 1, vars(poller)  # the PDB's maxUnavailable 1
    assert result["acked"] > 100 and result["lost"] == [], result["lost"][:5]
    failovers = [e for e in result["events"] if e["reason"] == "RedisKeeperFailover"]
    evictions = [e for e in result["events"] if e["reason"] == "RedisKeeperEvict"]
    assert len(failovers) >= 2 and len(evictions) >= 4, result["events"]
    # one step per Event, each counted once in the keeper's memory: nothing repeated
    assert result["state"]["memory"]["steps"] == len(failovers) + len(evictions), result
    assert all(e["pod"] for e in evictions)
    # the keeper's metrics reach /metrics (the sync child shares the workers' metrics directory)
    import re
    import urllib.request

    with urllib.request.urlopen(world.extender.url + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    done = re.search(r'redis_extender_keeper_actions_total\{kind="evict",outcome="done"\} ([0-9.]+)', metrics)
    assert done and float(done.group(1)) >= 1, [m for m in metrics.splitlines() if "keeper" in m]
    assert "redis_extender_keeper_clusters_out_of_balance" in metrics


def test_a_bad_placement_is_repaired_with_the_pdb_honoured_and_no_key_lost(controller_manager, redis_server,
                                                                           tmp_path) -> None:
    with keeper_world(controller_manager, redis_server.url, tmp_path, ENV, bind=BAD) as world:
        result = _repair(world)
        print({k: v for k, v in result.items() if k not in ("poller", "state")}, vars(result["poller"]))
        _check(world, result)


def test_the_sync_leader_killed_mid_repair_the_next_one_finishes(controller_manager, redis_server,
                                                                 tmp_path) -> None:
    with keeper_world(controller_manager, redis_server.url, tmp_path, ENV, bind=BAD, replicas=2) as world:
        result = _repair(world, kill_leader_after_first_eviction=True)
        print({k: v for k, v in result.items() if k not in ("poller", "state")}, vars(result["poller"]))
        assert result["killed"]
        assert (world.store.lock_holder() or "").split("/")[1] != str(result["killed"])  # another leads now
        _check(world, result)
