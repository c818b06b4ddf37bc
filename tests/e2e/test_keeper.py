"""The keeper in live mode, end to end, on a real Redis Cluster whose pods the real
kube-scheduler placed through the extender (tests/support/keeperworld.py): kube-controller-
manager runs the StatefulSet, the node agent runs a redis-server per pod, a writer counts
acknowledged writes.

- a zone lost then returned: masters balanced over the survivors while it is gone, 2-2-2
  after it returns, without a person, no acknowledged write lost;
- nothing moves while the placement is balanced, nor for a drift shorter than the settle time;
- in `advise` the keeper says what it would do (Event, /report) and does nothing;
- a lagging replica is never promoted: the only replicas that could restore balance are
  stopped (SIGSTOP: alive for Redis Cluster, whose node timeout is longer, but trailing their
  masters and not answering), and the keeper holds back until they have caught up.
"""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from extender.actuation.nodes import fetch_cluster

from ..support.keeperworld import NAMESPACE, World, balanced, keeper_events, keeper_state, keeper_world
from ..support.nodeagent import REDIS_PORT
from ..support.podcluster import Writer, _call, node_id, wait_for
from ..support.zoneloss import LOST_ZONE, run_zone_loss

pytestmark = pytest.mark.e2e

FAST = {"REDIS_EXTENDER_KEEPER_INTERVAL": "1", "REDIS_EXTENDER_KEEPER_COOLDOWN": "2",
        "REDIS_EXTENDER_LIVE_REFRESH": "1"}


def test_zone_lost_then_returned_is_rebalanced_without_a_person(controller_manager, redis_server, tmp_path) -> None:
    env = {**FAST, "REDIS_EXTENDER_KEEPER": "act", "REDIS_EXTENDER_KEEPER_SETTLE": "8"}
    with keeper_world(controller_manager, redis_server.url, tmp_path, env) as world:
        assert sorted(world.masters_per_zone().values()) == [2, 2, 2]
        run = run_zone_loss(world, "act", lost_for=30, watch=90)
        print(json.dumps(run.to_json()))
        assert run.loss_to_balanced is not None, run.to_json()
        assert balanced(run.masters_while_lost), run.to_json()  # over the two survivors
        assert run.return_to_balanced is not None and run.masters_after_return == \
            {"zone-0": 2, "zone-1": 2, "zone-2": 2}, run.to_json()
        assert run.steps >= 2, run.to_json()  # the returned zone got two masters back from the keeper
        assert run.acked > 100 and run.lost_keys == 0, run.to_json()
        state = wait_for(lambda: (k := keeper_state(world)) and k["decision"]["reason"] == "balanced" and k,
                         timeout=30, what="the keeper's verdict: balanced")
        assert state["memory"]["pending"] is None and state["memory"]["last"]["outcome"] == "done"


def _person_fails_over(world: World, replica: str) -> None:
    """What `redis-cli CLUSTER FAILOVER` by a person (or Redis after a blip) does."""
    ip = world.agent.server_of(replica).ip
    for attempt in range(6):  # right after the cluster forms, a master may not list its replica
        _call(ip, "CLUSTER", "FAILOVER")  # yet (gossip) and ignores the request: ask again
        try:
            wait_for(lambda: _call(ip, "ROLE")[0] == "master", timeout=10, what=f"{replica} master")
            return
        except AssertionError:
            if attempt == 5:
                raise


def _skew_three_one_two(world: World) -> tuple[str, str]:
    """Promote shard 1's replica in zone-0 (its master is in zone-1): masters 3-1-2. Returns
    (promoted, demoted)."""
    node_of = world.node_of()
    zone = {p: world.zone_of[n] for p, n in node_of.items()}
    master = next(p for p, r in world.roles().items() if r == "master" and zone[p] == "zone-1")
    master_id = node_id(world.agent.server_of(master).ip)
    roles = world.roles()
    replica = next(p for p in world.pods if zone[p] == "zone-0" and roles.get(p) == "replica"
                   and _follows(world, p, master_id))
    _person_fails_over(world, replica)
    wait_for(lambda: world.masters_per_zone() == {"zone-0": 3, "zone-1": 1, "zone-2": 2}, timeout=20,
             what="masters 3-1-2")
    return replica, master


def _follows(world: World, pod: str, master_id: str) -> bool:
    for line in _call(world.agent.server_of(pod).ip, "CLUSTER", "NODES").splitlines():
        parts = line.split()
        if "myself" in parts[2]:
            return parts[3] == master_id
    return False


def test_nothing_moves_while_balanced_nor_for_a_drift_shorter_than_the_settle_time(
        controller_manager, redis_server, tmp_path) -> None:
    env = {**FAST, "REDIS_EXTENDER_KEEPER": "act", "REDIS_EXTENDER_KEEPER_SETTLE": "20"}
    with keeper_world(controller_manager, redis_server.url, tmp_path, env) as world:
        roles = world.roles()
        time.sleep(8)  # balanced: several keeper rounds
        assert world.roles() == roles
        wait_for(lambda: keeper_state(world).get("decision", {}).get("reason") == "balanced", timeout=20,
                 what="the keeper's verdict: balanced")

        # a drift (masters 3-1-2) undone after 8 s, well within the 20 s settle time
        promoted, demoted = _skew_three_one_two(world)
        wait_for(lambda: "settle" in keeper_state(world).get("decision", {}).get("reason", ""), timeout=10,
                 what="the keeper to see the drift and wait for the settle time")
        time.sleep(6)
        _person_fails_over(world, demoted)
        wait_for(lambda: sorted(world.masters_per_zone().values()) == [2, 2, 2], timeout=20, what="2-2-2 again")
        time.sleep(25)  # past the settle time of the first sighting: nothing may happen now
        assert world.roles() == roles
        assert not [e for e in keeper_events(world.cp) if e["pod"].startswith(world.name + "-")
                    and e["reason"] in ("RedisKeeperFailover", "RedisKeeperEvict")]
        assert keeper_state(world)["memory"]["steps"] == 0


def test_advise_mode_tells_and_does_nothing(controller_manager, redis_server, tmp_path) -> None:
    env = {**FAST, "REDIS_EXTENDER_KEEPER": "advise", "REDIS_EXTENDER_KEEPER_SETTLE": "3"}
    with keeper_world(controller_manager, redis_server.url, tmp_path, env) as world:
        promoted, _ = _skew_three_one_two(world)
        roles = world.roles()
        advice = wait_for(lambda: [e for e in keeper_events(world.cp) if e["reason"] == "RedisKeeperAdvice"
                                   and e["pod"].startswith(world.name + "-")], timeout=40,
                          what="the keeper's advice Event")
        assert "advise: would" in advice[0]["message"] and "promote" in advice[0]["message"]
        time.sleep(10)
        assert world.roles() == roles and world.masters_per_zone() == {"zone-0": 3, "zone-1": 1, "zone-2": 2}
        with urllib.request.urlopen(world.extender.url + "/report", timeout=10) as resp:
            report = json.loads(resp.read())
        mine = report["keeper"][world.cluster]
        assert mine["decision"]["action"] == "failover" and mine["decision"]["step"]["to_domain"] == "zone-1"
        assert mine["memory"]["steps"] == 0
        assert LOST_ZONE  # (same module constants as the zone-loss test)


def test_a_lagging_replica_is_never_promoted(controller_manager, redis_server, tmp_path) -> None:
    env = {**FAST, "REDIS_EXTENDER_KEEPER": "act", "REDIS_EXTENDER_KEEPER_SETTLE": "3"}
    with keeper_world(controller_manager, redis_server.url, tmp_path, env) as world:
        writer = world.writer = Writer(world.agent, world.pods).start()
        # masters 3-1-2 by a person's failover; balance needs a zone-1 replica promoted
        node_of = world.node_of()
        _skew_three_one_two(world)
        zone1 = [p for p in world.pods if world.zone_of[node_of[p]] == "zone-1"]
        roles = wait_for(lambda: (r := world.roles()) and all(p in r for p in zone1) and r, timeout=20,
                         what="every zone-1 server's ROLE")  # (one left out under load would stay live)
        zone1_replicas = [p for p in zone1 if roles[p] == "replica"]
        assert len(zone1_replicas) == 5
        # Redis reports a replica "loading" until its offset is gossiped: stopped before that
        # (the one just demoted, under load), the keeper rightly waits on it instead of blocking
        seed = f"{world.agent.server_of(next(p for p in world.pods if p not in zone1)).ip}:{REDIS_PORT}"

        def gossiped() -> bool:
            health = {n.pod: n.health for n in fetch_cluster(seed, world.cluster, probe=False).nodes}
            return all(health.get(f"{NAMESPACE}/{p}") == "online" for p in zone1_replicas)
        wait_for(gossiped, timeout=30, what="every zone-1 replica online in CLUSTER SHARDS")
        stopped = [world.agent.server_of(p) for p in zone1_replicas]
        _node_timeout(world, 60000)  # stopped 15 s and more, yet not failed for Redis Cluster
        for s in stopped:
            os.kill(s.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            seen: list[str] = []

            def refused() -> dict | None:
                d = keeper_state(world).get("decision", {})
                seen.append(f"{d.get('action')}: {d.get('reason')}")
                return d if d.get("action") == "blocked" else None
            try:
                blocked = wait_for(refused, timeout=30, what="the keeper to refuse")
            except AssertionError:
                raise AssertionError("keeper decisions: " + " | ".join(dict.fromkeys(seen)))
            while time.monotonic() - t0 < 15:  # lagging all along: nothing promoted
                assert world.masters_per_zone() == {"zone-0": 3, "zone-1": 1, "zone-2": 2}
                time.sleep(0.5)
            assert not [e for e in keeper_events(world.cp) if e["reason"] == "RedisKeeperFailover"
                        and e["pod"].startswith(world.name + "-")]
        finally:
            for s in stopped:
                os.kill(s.proc.pid, signal.SIGCONT)
            _node_timeout(world, 2000)
        assert "no failover possible" in blocked["reason"], blocked
        # caught up: now the keeper restores 2-2-2
        wait_for(lambda: sorted(world.masters_per_zone().values()) == [2, 2, 2], timeout=60, what="2-2-2")
        promoted = wait_for(lambda: [e["pod"] for e in keeper_events(world.cp) if e["reason"] == "RedisKeeperFailover"
                                     and e["pod"].startswith(world.name + "-")], timeout=20,
                            what="the keeper's failover Event (posted after the failover is seen)")
        assert set(promoted) <= set(zone1_replicas)
        writer.stop()
        assert writer.lost() == []


def _node_timeout(world: World, ms: int) -> None:
    for p in world.pods:
        server = world.agent.server_of(p)
        if server is not None:
            _call(server.ip, "CONFIG", "SET", "cluster-node-timeout", str(ms), timeout=30)
