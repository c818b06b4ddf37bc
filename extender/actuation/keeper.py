"""The keeper: keeps every Redis cluster's placement right after failovers, zone losses and
placements the extender never saw, without a person. Run by the sync leader only (one actor
across extender replicas), every keeper.interval seconds, beside the live-topology refresher.

Each round, per cluster: read the state and the stored live topology, the pods' facts from the
API and the keeper's memory (state/keeper_store.py), and ask the pure analysis/keeping.decide
what is next. Before acting (mode `act`) the live topology is read again from the Redis nodes
and the decision taken again on that fresh view; the step is recorded as pending before it is
sent, so a leader killed mid-step leaves a record that the next leader checks against what it
observes, and never resends. Then:
- failover: actuation/rebalance.py executes the one step with its own checks on the nodes
  themselves (roles, link, lag bound, the master knows its replica; coordinated CLUSTER
  FAILOVER, so no acknowledged write is lost); a surprise stops the cluster and is reported;
- evict: the Eviction API (a 429 from a PodDisruptionBudget waits for the next round), with the
  replica's PVC deleted only when opted in; the StatefulSet recreates the pod, the scheduler
  places it through the extender, and the next step waits until it is back in sync.
Every action and refusal becomes a Kubernetes Event on a pod (RedisKeeperFailover,
RedisKeeperEvict, RedisKeeperBlocked; RedisKeeperAdvice in `advise`), counted in Prometheus
metrics; the memory and the last decision are stored for /report.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from functools import partial
from collections.abc import Iterator, Mapping
from typing import Any, Callable

from extender.actuation.kube import EVICTED, GONE, PDB, KubeActions
from extender.actuation.nodes import OpenNode
from extender.actuation.rebalance import DONE, rebalance
from extender.actuation.refresher import refresh_cluster
from extender.analysis.advice import Plan
from extender.analysis.keeping import (ACT, BLOCKED, EVICT, FAILOVER, OFF, WAIT, Decision,
                                       KeeperPolicy, PodFacts, decide, pending_record)
from extender.analysis.placement import ClusterView, Placement, place
from extender.core.metrics import KEEPER_ACTIONS as ACTIONS
from extender.core.metrics import KEEPER_OUT_OF_BALANCE as OUT_OF_BALANCE
from extender.core.metrics import KEEPER_SECONDS_OUT as SECONDS_OUT
from extender.core.settings import Settings
from extender.state.inventory import read_inventory
from extender.state.keeper_store import load_all, load_memory, recent_steps, record_step, save
from extender.state.live import load_lives
from extender.state.store import RedisStore

log = logging.getLogger(__name__)

REASON = {FAILOVER: "RedisKeeperFailover", EVICT: "RedisKeeperEvict", BLOCKED: "RedisKeeperBlocked"}
ADVICE = "RedisKeeperAdvice"


def policy_of(settings: Settings) -> KeeperPolicy:
    k = settings.keeper
    stale = max(10.0, 3 * settings.live.refresh, 3 * k.interval)
    return KeeperPolicy(mode=k.mode, settle=k.settle, cooldown=k.cooldown, rate=k.rate, max_lag=k.max_lag,
                        step_timeout=k.step_timeout, evict_timeout=k.evict_timeout, stale_after=stale,
                        delete_pvc=k.delete_pvc)


class Keeper:
    def __init__(self, store: RedisStore, settings: Settings, kube: KubeActions | None = None,
                 open_node: OpenNode | None = None, clock: Callable[[], float] = time.time,
                 may_act: Callable[[], bool] = lambda: True):
        self.store, self.settings, self.kube = store, settings, kube
        self.may_act = may_act  # still the leader? (checked right before every step)
        self.policy = policy_of(settings)
        self.open_node = open_node
        self.clock = clock
        self._last: tuple[Any, Placement] | None = None  # (what it was read at, the placement)

    # ---- one round ------------------------------------------------------------------------

    def round(self, dry_run: bool = False) -> list[Decision]:
        """Decide (and, in act mode and not dry_run, act) once for every cluster."""
        if self.policy.mode == OFF:
            return []
        for cluster in self.store.clusters():  # a step in flight: look at it now, not a refresh later
            if load_memory(self.store, cluster).pending:
                refresh_cluster(self.store, cluster, self.settings)
        placement = self._placement()
        previous = load_all(self.store, [cv.id for cv in placement.clusters])
        decisions = []
        facts: dict[str, LazyFacts] = {}  # per namespace, listed at most once a round
        for cv in placement.clusters:
            try:
                namespace = cv.id.split("/", 1)[0]
                known = facts.setdefault(namespace, self._facts(cv.id))
                decisions.append(self._cluster(placement, cv, previous.get(cv.id, {}), dry_run, known))
            except Exception as exc:  # one cluster's trouble never stops the others
                log.warning("keeper: %s: %s", cv.id, exc)
        self._gauges(decisions)
        return decisions

    def _placement(self) -> Placement:
        """The placement, read again only when the state moved (inventory_stamp) or a live
        topology was stored since the last round: at 5,000 nodes and 23,000 pods a full read
        and place() cost ~0.3-0.5 s of CPU, every keeper.interval (2 s) on the sync leader.
        Time-driven decisions (settle, cooldown, staleness) are still taken every round."""
        stamp = self.store.inventory_stamp()
        last = self._last
        if last is None or last[0] != stamp:
            inventory = read_inventory(self.store, self.settings.domains.levels)
        else:
            inventory = last[1].inventory
            lives = load_lives(self.store, inventory.shards)
            if lives == inventory.live:
                return last[1]
            inventory = replace(inventory, live=lives, read_at=self.clock())
        placement = place(inventory, self.policy.max_lag)
        self._last = (stamp, placement)
        return placement

    def _facts(self, cluster: str) -> "LazyFacts":
        """The pods' facts of the cluster's namespace, listed from the API only when a decision
        looks at them (a step pending or an eviction to choose): a round about clusters that
        are fine, or have no live topology yet, lists nothing."""
        if self.kube is None:
            return LazyFacts(dict)
        return LazyFacts(partial(self.kube.pod_facts, cluster.split("/", 1)[0]))

    def _cluster(self, placement: Placement, cv: ClusterView, previous: dict[str, Any], dry_run: bool,
                 facts: Mapping[str, PodFacts]) -> Decision:
        now = self.clock()
        memory = load_memory(self.store, cv.id)
        d = decide(placement, cv, memory, now, self.policy, facts, recent_steps(self.store, now))
        if d.acts and self.policy.mode == ACT and not dry_run:
            d = self._fresh(cv.id, memory, now)  # never act on an old picture
            if d.acts and not self.may_act():
                return d  # the term ended meanwhile: the next leader decides
            if d.acts:
                d = self._act(d, now)
        if dry_run:
            return d
        if d.settled:
            self._settled(d)
        self._announce(d, previous.get("decision") or {}, cv)
        save(self.store, cv.id, d.memory, {**d.to_json(), "mode": self.policy.mode}, now)
        return d

    def _fresh(self, cluster: str, memory: Any, now: float) -> Decision:
        refresh_cluster(self.store, cluster, self.settings)
        placement = self._placement()
        cv = next((c for c in placement.clusters if c.id == cluster), None)
        if cv is None:
            return Decision(cluster, WAIT, "cluster gone from the state", memory=memory)
        return decide(placement, cv, memory, self.clock(), self.policy, self._facts(cluster),
                      recent_steps(self.store, now))

    # ---- acting ---------------------------------------------------------------------------

    def _act(self, d: Decision, now: float) -> Decision:
        uid = ""
        if d.eviction is not None:
            uid = self._facts(d.cluster).get(d.eviction.pod, PodFacts()).uid
        pending = pending_record(d, now, uid)
        memory = replace(d.memory, pending=pending, steps=d.memory.steps + 1)
        save(self.store, d.cluster, memory, {**d.to_json(), "memory": memory.to_json()}, now)  # first
        record_step(self.store, now)
        if d.step is not None:
            return self._failover(replace(d, memory=memory), pending)
        return self._evict(replace(d, memory=memory), pending)

    def _failover(self, d: Decision, pending: dict[str, Any]) -> Decision:
        step = d.step
        assert step is not None
        live = self._live_for(d.cluster)
        result = rebalance(Plan(d.cluster, d.drift.level, (replace(step, order=1),)), live, apply=True,
                           max_lag=self.policy.max_lag, timeout=self.policy.step_timeout, open_node=self.open_node)
        outcome = result.results[0]
        if outcome.status == DONE:
            ACTIONS.labels(FAILOVER, "done").inc()
            return replace(d, reason=outcome.detail)
        ACTIONS.labels(FAILOVER, "failed").inc()
        last = {**pending, "outcome": "failed", "detail": outcome.detail}
        memory = replace(d.memory, pending=None, last=last, drift_since=None)
        return replace(d, action=BLOCKED, reason=f"failover stopped: {outcome.detail}", memory=memory)

    def _live_for(self, cluster: str) -> Any:
        placement = self._placement()
        cv = next(c for c in placement.clusters if c.id == cluster)
        return cv.live

    def _evict(self, d: Decision, pending: dict[str, Any]) -> Decision:
        e = d.eviction
        assert e is not None and self.kube is not None
        namespace, name = e.pod.split("/", 1)
        status, detail = self.kube.evict(namespace, name, str(pending.get("uid") or ""))
        if status == EVICTED:
            ACTIONS.labels(EVICT, "done").inc()
            if e.delete_pvc:
                self.kube.delete_pvc(namespace, e.delete_pvc)
            return replace(d, reason=f"{e.why}: evicted {e.pod}" + (f" with PVC {e.delete_pvc}" if e.delete_pvc
                                                                     else ""))
        memory = replace(d.memory, pending=None, steps=d.memory.steps - 1)
        if status in (PDB, GONE):
            if status == GONE:
                ACTIONS.labels(EVICT, "gone").inc()
            why = f"PodDisruptionBudget refuses evicting {e.pod} now: {detail}" if status == PDB else \
                f"{e.pod} changed meanwhile: {detail}"
            return replace(d, action=WAIT, reason=why, memory=memory)
        ACTIONS.labels(EVICT, "failed").inc()
        return replace(d, action=BLOCKED, reason=f"eviction of {e.pod} failed: {detail}",
                       memory=replace(memory, drift_since=None))

    def _settled(self, d: Decision) -> None:
        s = d.settled or {}
        log.info("keeper: %s: %s step on shard %s %s: %s", d.cluster, s.get("kind"), s.get("shard"),
                 s.get("outcome"), s.get("detail"))

    # ---- telling --------------------------------------------------------------------------

    def _announce(self, d: Decision, before: dict[str, Any], cv: ClusterView) -> None:
        """An Event per action; per refusal (blocked, a PodDisruptionBudget's 429) and per advice
        (`advise`) only when it changes, never per round; waits (settle, cooldown) stay quiet."""
        if d.acts and self.policy.mode == ACT and d.memory.pending is not None:
            self._event(d, REASON[d.action], d.reason)
            log.info("keeper: %s: %s", d.cluster, d.reason)
            return
        if (before.get("action"), before.get("reason")) == (d.action, d.reason):
            return
        refused = d.action == BLOCKED or (d.action == WAIT and d.reason.startswith("PodDisruptionBudget"))
        if refused:
            ACTIONS.labels(_kind(d), "blocked" if d.action == BLOCKED else "pdb").inc()
            self._event(d, REASON[BLOCKED], d.reason, warning=True, fallback=_first_pod(cv, d))
        elif d.acts:  # advise: what act would do now
            ACTIONS.labels(_kind(d), "advised").inc()
            self._event(d, ADVICE, f"advise: would {d.action} (nothing done): {d.reason}")
        else:
            return
        log.info("keeper: %s: %s: %s", d.cluster, d.action, d.reason)

    def _event(self, d: Decision, reason: str, message: str, warning: bool = False, fallback: str = "") -> None:
        if self.kube is None:
            return
        pod = _subject(d) or fallback
        if not pod:
            return
        namespace, name = pod.split("/", 1)
        uid = self._facts(d.cluster).get(pod, PodFacts()).uid
        try:
            self.kube.event(namespace, name, uid, reason, message, warning)
        except Exception as exc:  # an Event lost is not worth stopping for
            log.warning("keeper: event %s on %s: %s", reason, pod, exc)

    def _gauges(self, decisions: list[Decision]) -> None:
        now = self.clock()
        drifting = [d for d in decisions if d.drift.any]
        OUT_OF_BALANCE.set(len(drifting))
        SECONDS_OUT.set(max((now - d.memory.drift_since for d in drifting if d.memory.drift_since), default=0))


def _kind(d: Decision) -> str:
    return EVICT if d.eviction is not None else FAILOVER


def _subject(d: Decision) -> str:
    """The pod an Event is about: the promoted replica, the evicted one, else a copy of the cluster."""
    if d.step is not None:
        return d.step.promote
    if d.eviction is not None:
        return d.eviction.pod
    pending = d.settled or {}
    return str(pending.get("promote") or pending.get("pod") or "")


def _first_pod(cv: ClusterView, d: Decision) -> str:
    """A pod to hang a cluster-wide refusal on: a copy of the first misplaced shard, else the
    first master."""
    for s in cv.shards:
        if s.shard in d.drift.misplaced and s.copies:
            return s.copies[0].pod
    return next((s.master.pod for s in cv.shards if s.master is not None), "")


class LazyFacts(Mapping[str, PodFacts]):
    """A namespace's pod facts, read on first use (then kept for the round)."""

    def __init__(self, load: Callable[[], Mapping[str, PodFacts]]):
        self._load = load
        self._facts: Mapping[str, PodFacts] | None = None

    def _get(self) -> Mapping[str, PodFacts]:
        if self._facts is None:
            self._facts = self._load()
        return self._facts

    def __getitem__(self, pod: str) -> PodFacts:
        return self._get()[pod]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    @property
    def loaded(self) -> bool:
        return self._facts is not None


def run_keeper(store: RedisStore, settings: Settings, stop: threading.Event, kube: KubeActions | None) -> None:
    """Until `stop` (the end of the leader's term): a round every keeper.interval seconds."""
    keeper = Keeper(store, settings, kube, may_act=lambda: not stop.is_set())
    log.info("keeper: %s (settle %gs)", settings.keeper.mode, settings.keeper.settle)
    while not stop.is_set():
        try:
            keeper.round()
        except Exception as exc:  # Redis or the API down: try again next round
            log.warning("keeper: round failed: %s", exc)
        stop.wait(settings.keeper.interval)
