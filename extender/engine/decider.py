"""One decision: protocol arguments -> the state's snapshot -> the pure policy -> writes.

This is the seam between I/O and the core: the Decider reads (state/snapshot.py), decides
(policy/), and writes what the decision implies (reservation, filter memory, placement)
through the cache, which owns the circuit breaker. A pod that is not a Redis pod never
touches Redis.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar


from extender.core.identity import Identifier
from extender.core.model import PodRequest, Role, Snapshot
from extender.policy.bindcheck import all_paths, recheck
from extender.policy.explain import Explanation, explain
from extender.policy.filter import NODE_HOLDS_COPY, FilterResult, Outcome, filter_nodes
from extender.policy.preempt import PreemptResult, preempt_nodes
from extender.policy.score import NEUTRAL_SCORE, score_list
from extender.protocol import ExtenderArgs, PreemptionArgs
from extender.core.settings import Settings
from extender.state.cache import StateCache, StateIncomplete, StateUnavailable, StoreFailed
from extender.state.records import FilterMemory, PodRecord, RecordResult
from extender.state.snapshot import Snapshots
from extender.core import metrics

T = TypeVar("T")
Binder = Callable[[str, str, str, str], None]
"""(namespace, name, uid, node) -> None; creates the Binding in the API (raises on failure)."""

PendingCheck = Callable[[str, str, str], str]
"""(namespace, name, uid) -> "" when the API has the pod pending for this scheduler, else why not
(live mode only: state/k8s_sync.make_pending_check)."""

log = logging.getLogger(__name__)

WHOLE_WAIT = 1.2
"""Seconds a decision waits, polling, for a state that is not whole (Redis emptied or replaced
and being relisted: ~1-2 s in live mode), or for a Redis that failed less than this ago (a
restart takes a fraction of a second), before applying the unavailable policy. Under the
shipped `httpTimeout: 2s` with room for the request itself: an answer after the scheduler's
deadline is lost (it reports a timeout, not our reason); an Error parks the pod in its
unschedulable queue for up to 60 s. Past
the outage's first WHOLE_WAIT seconds nothing waits: the breaker answers at once."""


class Decider:
    """The three verbs: read the snapshot (state), decide (policy), write what the decision
    implies through the cache; Redis failures arrive as StateUnavailable/StoreFailed."""

    def __init__(self, settings: Settings, cache: StateCache, identifier: Identifier,
                 pending: PendingCheck | None = None, binding_checks_uid: bool = False):
        self.settings = settings
        self.pending = pending
        self.binding_checks_uid = binding_checks_uid  # (k8s_sync.binding_checks_uid)
        self.cache = cache
        self.identifier = identifier
        self.snapshots = Snapshots(cache, settings.domains.levels)
        self.fail_open = settings.store.on_unavailable == "fail-open"

    def filter(self, args: ExtenderArgs) -> tuple[FilterResult, str]:
        """The verdicts, and an Error text ("" when fine) for the reply."""
        member = args.pod.member
        if member is None:
            return filter_nodes(args.pod, args.node_names, _EMPTY), ""
        try:
            with metrics.PHASE.labels("state").time():
                # the cluster's counts: for the masters rule only (copies come with the shard)
                prepared = self._whole(lambda: self.snapshots.prepare(
                    args, counts=member.role is Role.MASTER))
        except StateUnavailable as exc:
            if self.fail_open:
                log.warning("filter %s: %s; failing open (all nodes accepted)", args.pod.key, exc)
                return FilterResult(accepted=list(args.node_names), outcome=Outcome.PASSTHROUGH), ""
            log.error("filter %s: %s; failing closed", args.pod.key, exc)
            return FilterResult(accepted=[], outcome=Outcome.NO_FIT), f"redis-extender: placement state unavailable: {exc}"
        with metrics.PHASE.labels("policy").time():
            result = filter_nodes(args.pod, args.node_names, prepared.snapshot, prepared.own_node, prepared.tables)
        with metrics.PHASE.labels("record").time():
            self._remember(args.pod, result)
            if len(result.accepted) == 1:  # the scheduler skips prioritize: this is its choice
                self._reserve(args.pod, result.accepted[0])
        if result.unknown_domain_nodes:
            log.info("filter %s: %d candidate(s) with an unknown failure domain",
                     args.pod.key, result.unknown_domain_nodes)
        return result, ""

    def prioritize(self, args: ExtenderArgs) -> list[int]:
        """Scores in the order of args.node_names."""
        if args.pod.member is None:
            return [NEUTRAL_SCORE] * len(args.node_names)
        try:
            with metrics.PHASE.labels("state").time():
                prepared = self._whole(lambda: self.snapshots.prepare(args))
        except StateUnavailable as exc:
            log.warning("prioritize %s: %s; neutral scores", args.pod.key, exc)
            return [NEUTRAL_SCORE] * len(args.node_names)
        with metrics.PHASE.labels("policy").time():
            scores = score_list(args.pod, args.node_names, prepared.snapshot, self.settings, prepared.own_node,
                                prepared.tables)
        if scores:
            with metrics.PHASE.labels("record").time():
                self._reserve(args.pod, args.node_names[max(range(len(scores)), key=scores.__getitem__)])
        return scores

    def preempt(self, args: PreemptionArgs) -> tuple[PreemptResult, str]:
        """The candidate nodes to keep with their victims (never added to), and an Error text.
        A non-Redis preemptor whose victims are no Redis copies never needs the shards; while
        Redis is down, fail-open keeps the scheduler's choice and fail-closed answers an error
        (the scheduler then preempts nothing this cycle)."""
        victims = args.victims
        try:
            with metrics.PHASE.labels("state").time():
                victims, state = self.cache.victims(victims)
                snapshot, own = self.snapshots.for_preempt(args.pod, [n for n, v in victims.items() if v.victims])
        except StateUnavailable as exc:
            if self.fail_open:
                log.warning("preempt %s: %s; failing open (the scheduler's victims kept)", args.pod.key, exc)
                return PreemptResult(kept=dict(args.victims), passthrough=True), ""
            log.error("preempt %s: %s; failing closed", args.pod.key, exc)
            return PreemptResult(kept={}), f"redis-extender: placement state unavailable: {exc}"
        with metrics.PHASE.labels("policy").time():
            result = preempt_nodes(args.pod, victims, snapshot, state, own)
        for node, reason in result.dropped.items():
            log.info("preempt %s: node %s left out: %s", args.pod.key, node, reason)
        return result, ""

    def explain(self, pod: PodRequest, candidates: list[str] | None = None) -> Explanation:
        """Every candidate (default: every node of the node table) with its verdict, reason,
        score terms and score, from the current state. Raises StateUnavailable."""
        table = self.cache.node_table()
        names = list(candidates) if candidates is not None else sorted(table.nodes)
        if pod.member is None:
            return explain(pod, names, _EMPTY, self.settings)
        prepared = self.snapshots.prepare(ExtenderArgs(pod, names, None, True))
        return explain(pod, names, prepared.snapshot, self.settings, prepared.own_node, prepared.tables)

    def pod_from_store(self, namespace: str, name: str) -> PodRequest | None:
        """A pod known to the store (sync, load), as explain reads it; None when unknown."""
        return self.snapshots.bound_pod(namespace, name, "", whole=False)[0]  # (explain: a 404 if unknown)

    def _whole(self, read: Callable[[], T]) -> T:
        """`read`, retried for up to WHOLE_WAIT while the state is being written whole again."""
        deadline = time.monotonic() + WHOLE_WAIT
        while True:
            try:
                return read()
            except StateUnavailable as exc:
                outage = self.cache.outage_age()
                young = outage is not None and outage < WHOLE_WAIT
                if time.monotonic() >= deadline or not (isinstance(exc, StateIncomplete) or young):
                    raise
                time.sleep(0.1)

    def _reserve(self, pod: PodRequest, node: str) -> None:
        member = pod.member
        ttl = self.settings.store.reservation_ttl
        if member is None or member.shard is None or ttl <= 0:
            return
        try:
            self.cache.reserve(pod.key, member.cluster, member.shard, node, member.role.value, ttl)
        except StoreFailed as exc:
            log.debug("cannot reserve %s for %s: %s", node, pod.key, exc)

    def _remember(self, pod: PodRequest, result: FilterResult) -> None:
        """Keep what this filter saw for the bind-time re-check (best effort: a bind without it
        still checks the node rule atomically)."""
        member = pod.member
        if member is None or member.shard is None:
            return
        memory = FilterMemory(member.cluster, member.shard, member.role.value, pod.uid,
                              pod.memory_request, pod.cpu_request,
                              result.eligible_paths)
        try:
            self.cache.remember_filter(pod.key, memory)
        except StoreFailed as exc:
            log.debug("cannot remember the filter of %s: %s", pod.key, exc)

    def bind(self, namespace: str, name: str, uid: str, node: str, binder: Binder | None) -> str:
        """Re-check, record atomically, then create the Binding. Returns an Error text or "".
        While Redis is down nothing is tried (StoreFailed at once): the scheduler retries."""
        try:  # the epoch (whole?), the filter's memory and the stored pod: one round trip
            pod, memory, stored = self._whole(lambda: self.snapshots.bound_pod(namespace, name, uid))
            refused = self._not_pending(namespace, name, uid, node, stored)
            if refused is not None:
                metrics.PLACEMENTS.labels("not_pending").inc()
                return refused
            if pod is not None:
                error = self._check_and_record(pod, node, memory)
                if error:
                    self._release(pod)  # a refused pod must not block the sibling that won
                    return error
        except StateUnavailable as exc:  # (StoreFailed included)
            return f"redis-extender: cannot record the placement of {namespace}/{name}: {exc}"
        if binder is None:
            return ""
        try:
            binder(namespace, name, uid, node)
        except Exception as exc:  # the API said no: undo the record; the scheduler retries
            log.warning("binding %s/%s to %s failed: %s", namespace, name, node, exc)
            if pod is not None:
                self._unrecord(pod, node)
                self._release(pod)
            return f"redis-extender: binding {namespace}/{name} to {node} failed: {exc}"
        return ""

    def _not_pending(self, namespace: str, name: str, uid: str, node: str, stored: PodRecord | None) -> str | None:
        """Why the pod must not be bound, or None (go on; "" when offline's repeated bind is a
        no-op). Live mode: only a pod the API has, with that UID, unbound, for one of our
        schedulers. When the watch already wrote exactly that into the store (watched_pending)
        and the apiserver checks a Binding's UID (1.27 on), the API is not asked again: it
        refuses the Binding for another pod of that name, a pod bound or being deleted
        meanwhile (the record is undone then, as for any refused Binding); else the API is
        asked (PendingCheck) before anything is recorded. Offline the loaded state stands for
        the API (_offline_refusal)."""
        if self.pending is None:
            return self._offline_refusal(namespace, name, uid, node, stored)
        if self.binding_checks_uid and watched_pending(stored, uid, self.settings.kube.scheduler_names):
            return None
        refused = self.pending(namespace, name, uid)
        return f"redis-extender: {refused}; not bound" if refused else None

    @staticmethod
    def _offline_refusal(namespace: str, name: str, uid: str, node: str, stored: PodRecord | None) -> str | None:
        """Offline there is no API to ask (live mode's PendingCheck); the state loaded from it is
        asked instead, as strictly: only a pod it holds, with that UID, not placed on another
        node. "" when the pod is already recorded on `node` (a repeated bind); None: go on."""
        key = f"{namespace}/{name}"
        if stored is None:
            return (f"redis-extender: pod {key} is not in the extender's state (offline, only a pod "
                    f"`load`ed pending can be bound); not bound")
        if uid and stored.uid and stored.uid != uid:
            return f"redis-extender: pod {key} has another UID in the extender's state; not bound"
        if stored.node:  # as the API refuses a second Binding of a pod with a nodeName
            if stored.node == node and stored.phase not in ("Succeeded", "Failed"):
                return ""
            return f"redis-extender: pod {key} is already bound to {stored.node}; not bound"
        return None

    def _check_and_record(self, pod: PodRequest, node: str, memory: FilterMemory | None,
                          attempts: int = 5) -> str:
        """Every spread rule against fresh state, filter seen or not (without its memory, over
        every known domain: the choice the filter would have had), then the atomic record."""
        assert pod.member is not None
        master = pod.member.role is Role.MASTER and pod.member.shard is not None
        for _ in range(attempts):
            args = ExtenderArgs(pod=pod, node_names=[node], nodes=None, names_mode=True)
            prepared = self.snapshots.prepare(args, fresh=True, counts=master)
            if node not in prepared.snapshot.nodes:
                metrics.PLACEMENTS.labels("unknown_node").inc()
                return f"redis-extender: node {node} is not in the extender's state (unknown node); retry scheduling"
            version = masters = ""
            if pod.member.shard is not None:
                paths = memory.paths if memory is not None else all_paths(prepared.snapshot.nodes.values(),
                                                                          self.settings.domains.levels)
                reason = recheck(pod, node, paths, prepared.snapshot, prepared.own_node)
                if reason:
                    metrics.PLACEMENTS.labels("recheck_refused").inc()
                    return f"redis-extender: {reason}; retry scheduling"
                version = prepared.version
                masters = prepared.masters_version if master else ""
            result = self.record(pod, node, version, masters)
            metrics.PLACEMENTS.labels(result.status).inc()
            if result.ok:
                return ""
            if result.status == "conflict":
                other, _, role = result.detail.partition("\t")
                reason = NODE_HOLDS_COPY.format(node=node, shard=pod.member.shard, cluster=pod.member.cluster_name,
                                                copies=f"{other.split('/', 1)[-1]}, {role}")
                return f"redis-extender: {reason}; retry scheduling"
            # stale: a sibling was recorded between our read and our write; look again
        return f"redis-extender: shard {pod.member.shard} of {pod.member.cluster_name} kept changing; retry scheduling"

    def record(self, pod: PodRequest, node: str, expect_version: str = "", expect_masters: str = "") -> RecordResult:
        """Atomic check-and-record of a placement; invalidates this process's cached shard."""
        return self.cache.record_placement(PodRecord.of(pod, node), expect_version, expect_masters)

    def _release(self, pod: PodRequest) -> None:
        member = pod.member
        if member is None or member.shard is None:
            return
        try:
            self.cache.release_reservation(pod.key, member.cluster, member.shard)
        except StoreFailed as exc:  # it expires (reservation_ttl)
            log.debug("cannot release the reservation of %s: %s", pod.key, exc)

    def _unrecord(self, pod: PodRequest, node: str) -> None:
        try:
            self.cache.unrecord(PodRecord.of(pod, node))
        except StoreFailed as exc:  # the watch will report the truth and fix it
            log.warning("cannot undo the record of %s: %s", pod.key, exc)


def watched_pending(stored: PodRecord | None, uid: str, scheduler_names: tuple[str, ...]) -> bool:
    """Does the store, as the API's watch wrote it, say this pod is pending for us: that UID,
    on no node, not terminated, and (with scheduler names) for one of them? spec.schedulerName
    and the UID never change for a pod; nodeName is set once, by the Binding the API checks."""
    return (stored is not None and bool(uid) and stored.uid == uid and not stored.node
            and stored.phase == "Pending" and bool(stored.scheduler)
            and (not scheduler_names or stored.scheduler in scheduler_names))


_EMPTY = Snapshot(level_names=(), nodes={})
