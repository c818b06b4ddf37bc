"""Faults injected while the real kube-scheduler v1.20.2 schedules a burst of Redis pods
through the extender in live mode (sync + binder, 2 workers), against a real kube-apiserver:
the cache Redis restarted empty mid-burst, wedged (SIGSTOP) for less and for more than the
staleness allowance, the sync leader killed while another replica runs, the apiserver
restarted, an extender worker killed (gunicorn starts another). Each: 0 copies sharing a node, 0 excess per zone,
every pod bound within a stated time after the fault ends, and the state equal to the API's
(what a fresh relist would store).

Figures are printed (run with -s): decisions by outcome during the fault, time to recover.
"""
from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from typing import Any, Iterator

import pytest

from extender.local.localredis import LocalRedis
from extender.local.processes import free_port
from extender.state.store import RedisStore

from harness.controlplane import scheduler_config
from ..support.serving import Served, live_extender
from .test_scheduling import NS, SCHED, cleanup, create_burst, make_nodes, violations

pytestmark = pytest.mark.e2e

BOUND_AFTER_FAULT = 20.0
"""Seconds within which every pod is bound once the fault ends. Decisions wait up to
WHOLE_WAIT (2 s) for a state being relisted or a Redis that failed just now, so no filter
answers Error for a short fault: a pod answered Error would wait in kube-scheduler 1.20's
unschedulable queue for up to 60 s."""


STALENESS = 4.0
"""max_staleness of this module's extender (30 s by default): the wedges stay short."""


class OwnRedis:
    """A redis-server of this module's own, restarted empty on the same port."""

    def __init__(self) -> None:
        self.server = LocalRedis().start()
        self.port = self.server.port
        self.url = self.server.url

    def restart_empty(self) -> None:
        self.server.stop()
        self.server = LocalRedis(port=self.port).start()

    def wedge(self, seconds: float) -> None:
        """SIGSTOP the server for `seconds`, then SIGCONT (always)."""
        assert self.server.proc is not None
        os.kill(self.server.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(self.server.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def faulty(control_plane, tmp_path_factory) -> Iterator[tuple[Any, Served, RedisStore, OwnRedis]]:
    redis = OwnRedis()
    prefix = f"rxfault:{{{os.getpid()}-{free_port()}}}:"
    with live_extender(control_plane, redis.url, prefix, tmp_path_factory.mktemp("ext"), NS,
                       {"REDIS_EXTENDER_MAX_STALENESS": str(STALENESS)}, store_timeout=2,
                       clear_store=False) as (extender, store):  # the Redis goes with its state
        yield control_plane, extender, store, redis
    redis.stop()


@pytest.fixture
def world(faulty) -> Iterator[dict[str, Any]]:
    made: dict[str, Any] = {"nodes": [], "pods": []}
    yield made
    cleanup(faulty[0], made)


def decisions(url: str) -> dict[str, float]:
    """The extender's filter decisions by outcome (this worker's /metrics; summed over reads)."""
    text = urllib.request.urlopen(url + "/metrics", timeout=2).read().decode()
    out: dict[str, float] = {}
    for outcome, value in re.findall(r'redis_extender_decisions_total\{outcome="([^"]+)"\} ([0-9.e+]+)', text):
        out[outcome] = out.get(outcome, 0) + float(value)
    return out


def placements(cp, names: list[str]) -> dict[str, str]:
    return {p["metadata"]["name"]: p["spec"].get("nodeName") or "" for p in cp.list_pods(NS)
            if p["metadata"]["name"] in names}


def assert_state_equals_the_api(cp, store: RedisStore, names: list[str], nodes: list[str]) -> None:
    api = placements(cp, names)
    stored = {n: (store.pod(NS, n) or {}).get("node", "missing") for n in names}
    assert stored == api, {n: (stored[n], api[n]) for n in names if stored[n] != api[n]}
    assert set(nodes) <= set(store.node_names())
    assert store.epoch(), "the state is not whole after the fault"


def test_cache_redis_restarted_empty_mid_burst(faulty, world) -> None:
    cp, extender, store, redis = faulty
    zone_of = make_nodes(cp, world, 3, 3, "empty")
    cp.wait_for(lambda: set(zone_of) <= set(store.node_names()) and store.epoch(), timeout=20, what="nodes synced")
    cp.start_scheduler(scheduler_config(SCHED, extender.port))
    names = create_burst(cp, world, "empty", 10, 3)
    cp.wait_for(lambda: sum(1 for v in placements(cp, names).values() if v) >= 6, timeout=30, what="a few bound")
    before = decisions(extender.url)
    fault = time.monotonic()
    redis.restart_empty()
    restarted = time.monotonic()
    cp.wait_for(lambda: store.epoch(), timeout=20, interval=0.05, what="the relist's epoch")
    whole = time.monotonic()
    cp.wait_for(lambda: all(placements(cp, names).values()) and len(placements(cp, names)) == len(names),
                timeout=BOUND_AFTER_FAULT - (time.monotonic() - restarted), interval=0.25, what="every pod bound")
    bound = time.monotonic()
    after = decisions(extender.url)
    placement = placements(cp, names)
    result = violations(placement, zone_of)
    during = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    print(f"\nempty restart: restart {restarted - fault:.2f}s, state whole again {whole - restarted:.2f}s "
          f"after, all {len(names)} bound {bound - restarted:.1f}s after; filter outcomes meanwhile "
          f"(one worker): {during}; violations {result}")
    assert result["node"] == 0 and result["zone"] == 0, result
    assert whole - restarted < 5.0
    assert_state_equals_the_api(cp, store, names, list(zone_of))


def burst_with_fault(faulty, world, tag: str, fault, shards: int = 10) -> dict[str, Any]:
    """Nodes, the scheduler, a burst; `fault()` once a few pods are bound; then every pod bound
    within BOUND_AFTER_FAULT (or the returned figures say how long it took), the checks."""
    cp, extender, store, redis = faulty
    zone_of = make_nodes(cp, world, 3, 3, tag)
    cp.wait_for(lambda: set(zone_of) <= set(store.node_names()) and store.epoch(), timeout=20, what="nodes synced")
    cp.start_scheduler(scheduler_config(SCHED, extender.port))
    names = create_burst(cp, world, tag, shards, 3)
    cp.wait_for(lambda: sum(1 for v in placements(cp, names).values() if v) >= 6, timeout=30, what="a few bound")
    before = decisions(extender.url)
    started = time.monotonic()
    fault()
    ended = time.monotonic()
    cp.wait_for(lambda: store.epoch(), timeout=20, interval=0.05, what="the state whole")
    whole = time.monotonic()
    cp.wait_for(lambda: len(placements(cp, names)) == len(names) and all(placements(cp, names).values()),
                timeout=BOUND_AFTER_FAULT + 70, interval=0.25, what="every pod bound")
    bound = time.monotonic()
    during = {k: v - before.get(k, 0) for k, v in decisions(extender.url).items()}
    result = violations(placements(cp, names), zone_of)
    figures = {"fault_s": round(ended - started, 2), "whole_after_s": round(whole - ended, 2),
               "all_bound_after_s": round(bound - ended, 1), "filter_outcomes": during, **result}
    print(f"\n{tag}: {figures}")
    assert result["node"] == 0 and result["zone"] == 0, result
    assert_state_equals_the_api(cp, store, names, list(zone_of))
    return figures


def test_redis_wedged_shorter_than_the_staleness_allowance(faulty, world) -> None:
    """Reads come from the last known state; writes (reservations, binds) wait or fail."""
    figures = burst_with_fault(faulty, world, "wedge-short", lambda: faulty[3].wedge(STALENESS / 2))
    assert figures["all_bound_after_s"] < BOUND_AFTER_FAULT, figures


def test_redis_wedged_longer_than_the_staleness_allowance(faulty, world) -> None:
    """Past the allowance filter fails closed: those pods wait in the scheduler's unschedulable
    queue (up to 60 s in 1.20) and are then placed from the whole state, without violation."""
    figures = burst_with_fault(faulty, world, "wedge-long", lambda: faulty[3].wedge(STALENESS + 3))
    assert figures["all_bound_after_s"] < BOUND_AFTER_FAULT + 70, figures


def test_the_apiserver_restarted_mid_burst(faulty, world) -> None:
    """Watches break; the syncer relists or resumes; the scheduler reconnects; binds meanwhile
    fail at the API and are undone (the watch reconciles the rest)."""
    figures = burst_with_fault(faulty, world, "apiserver", lambda: faulty[0].restart_apiserver(down=1.0))
    assert figures["all_bound_after_s"] < BOUND_AFTER_FAULT + 70, figures


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def test_an_extender_worker_killed_mid_burst(faulty, world) -> None:
    """SIGKILL of one gunicorn worker (a child of the extender we started; not the sync child):
    the master starts another, the scheduler's next calls reach a live worker."""
    extender = faulty[1]

    def kill_worker() -> None:
        workers = [p for p in children(extender.proc.pid)
                   if b"sync" not in open(f"/proc/{p}/cmdline", "rb").read()]
        assert workers
        os.kill(workers[0], signal.SIGKILL)
        def replaced() -> bool:
            return len([p for p in children(extender.proc.pid) if p != workers[0]]) >= len(workers)

        faulty[0].wait_for(replaced, timeout=15, what="a new worker")

    figures = burst_with_fault(faulty, world, "worker-kill", kill_worker)
    assert figures["all_bound_after_s"] < BOUND_AFTER_FAULT + 70, figures


def test_the_sync_leader_killed_another_replica_takes_over(faulty, world, tmp_path) -> None:
    # last of the module: the killed leader may be the module's own syncer, and the stand-in
    # replica stops at the end of this test, so nothing syncs for the tests after it
    cp, extender, store, redis = faulty
    other = Served(extender.env, ["--workers", "1", "--kubeconfig", str(cp.kubeconfig)], ready_path="/readyz",
                   log_dir=tmp_path)
    try:
        first = store.lock_holder()
        assert first

        def kill_leader() -> None:
            holder = store.lock_holder() or ""
            pid = int(holder.split("/")[1])  # host/pid/nonce (state/lock.py): a sync child we started
            os.kill(pid, signal.SIGKILL)
            cp.wait_for(lambda: (store.lock_holder() or holder) != holder, timeout=15, what="a new leader")

        figures = burst_with_fault(faulty, world, "leader-kill", kill_leader)
        assert store.lock_holder() != first
        late = "leader-kill-late"  # the new leader syncs: a node added after the takeover is stored
        cp.create_node(late, {"topology.kubernetes.io/zone": "zone-0"}, cpu="16", memory="32Gi")
        world["nodes"].append(late)
        cp.wait_for(lambda: late in store.node_names(), timeout=10, what="the new leader's sync")
        assert figures["all_bound_after_s"] < BOUND_AFTER_FAULT, figures
    finally:
        other.stop()
