"""The keeper's decisions: is a cluster's placement drifting, what is the next step, is it safe now.

Pure (no Redis, no API, no clock): `decide` reads the merged Placement (analysis/placement.py),
the facts the API gives about the cluster's pods, the keeper's memory of this cluster (what it
last did, since when the drift lasts) and `now`, and returns one Decision. The I/O (reading,
acting, Events, metrics) is actuation's keeper; it calls `decide` again on a fresh view right
before acting, so a step is never taken on an old picture, and a new leader starts from what it
observes plus the memory stored in Redis (a step recorded as pending is checked, never resent).

Drift, at the top active level, over the domains still alive (a domain all of whose nodes are
NotReady counts as gone: its dead nodes are tolerated, its copies are not candidates):
- masters: skew > 1 between domains, or (three or more domains) one domain holds
  ceil(M/2) masters or more (losing it loses the quorum);
- copies: a shard with two copies on one node, or two in one domain while a live domain holds
  none of its copies (the filter's rules would have given another).

A step is taken only when the drift has lasted `settle` seconds (Redis finishes its own
failover first; a zone flapping for less triggers nothing), the cooldown since the last step
has passed, the global rate allows, the last step has settled, the live view is fresh, every
slot is served, and no Redis node of the cluster is failing outside the lost domains. Masters
first (one CLUSTER FAILOVER of the advice's plan, reports/advice.py, whose replica must be in
sync), then copies (evict one replica of one shard, only when the shard keeps its master and
another in-sync replica, the pod is recreated by a controller, and its volume can move).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from extender.analysis.advice import Plan, Step, plan_cluster
from extender.analysis.placement import UNKNOWN_DOMAIN, ClusterView, CopyView, Placement, ShardView, natural_key
from extender.analysis.topology import KIND_CLUSTER, KIND_SENTINEL
from extender.core.model import Role

OFF, ADVISE, ACT = "off", "advise", "act"
MODES = (OFF, ADVISE, ACT)
SLOTS = 16384

# Decision.action
NONE, WAIT, FAILOVER, EVICT, BLOCKED = "none", "wait", "failover", "evict", "blocked"


@dataclass(frozen=True)
class KeeperPolicy:
    """The bounds an SRE sets (settings.KeeperSettings carries them from the one table)."""

    mode: str = ADVISE
    settle: float = 30.0  # seconds a drift must last before a step
    cooldown: float = 10.0  # seconds between two steps on one cluster
    rate: int = 6  # steps per minute over all clusters
    max_lag: int = 1 << 20  # bytes a replica may trail and still be promoted / count as in sync
    step_timeout: float = 30.0  # seconds a failover has to show in the live view
    evict_timeout: float = 300.0  # seconds an evicted copy has to come back in sync
    stale_after: float = 10.0  # seconds: an older live view is not acted upon
    delete_pvc: bool = False  # evict a replica bound to a zonal volume with its PVC


@dataclass(frozen=True)
class PodFacts:
    """What the API says about a Redis pod that the store does not keep."""

    uid: str = ""
    controlled: bool = True  # a controller (StatefulSet...) recreates it when evicted
    zonal_volume: str = ""  # a PVC bound to a volume pinned to a zone or node ("" when none)
    deleting: bool = False
    ready: bool = True


@dataclass(frozen=True)
class Memory:
    """The keeper's memory of one cluster, stored in Redis by the leader (survives a new leader)."""

    drift_since: float | None = None
    pending: Mapping[str, Any] | None = None  # the step taken whose effect is not seen yet
    last: Mapping[str, Any] | None = None  # the last step, with its outcome
    steps: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Memory:
        if not data:
            return cls()
        return cls(drift_since=data.get("drift_since"), pending=data.get("pending"), last=data.get("last"),
                   steps=int(data.get("steps") or 0))


@dataclass(frozen=True)
class Eviction:
    pod: str  # "ns/name"
    shard: str
    node: str
    domain: str
    why: str
    delete_pvc: str = ""  # the PVC to delete with it (opt-in), "" when none

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Drift:
    level: str | None = None
    masters: Mapping[str, int] = field(default_factory=dict)  # live domains only
    lost: tuple[str, ...] = ()  # domains all of whose nodes are NotReady
    skew: int = 0
    quorum_unsafe: bool = False
    misplaced: tuple[str, ...] = ()  # shards whose copies share a node or an avoidable domain

    @property
    def masters_drift(self) -> bool:
        return self.skew > 1 or self.quorum_unsafe

    @property
    def any(self) -> bool:
        return self.masters_drift or bool(self.misplaced)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "masters_drift": self.masters_drift}


@dataclass(frozen=True)
class Decision:
    cluster: str
    action: str  # none | wait | failover | evict | blocked
    reason: str
    drift: Drift = field(default_factory=Drift)
    memory: Memory = field(default_factory=Memory)  # to store back (drift_since, pending settled...)
    step: Step | None = None
    eviction: Eviction | None = None
    settled: Mapping[str, Any] | None = None  # a pending step seen done (or given up) this round

    @property
    def acts(self) -> bool:
        return self.action in (FAILOVER, EVICT)

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "action": self.action, "reason": self.reason,
                "drift": self.drift.to_json(), "step": self.step.to_json() if self.step else None,
                "eviction": self.eviction.to_json() if self.eviction else None,
                "memory": self.memory.to_json()}


# --- drift ---------------------------------------------------------------------------------------

def lost_domains(placement: Placement, top: int) -> tuple[str, ...]:
    """Domains of the top level whose every known node is NotReady (they count as gone)."""
    level = placement.levels[top]
    nodes = placement.inventory.nodes
    ready: dict[str, bool] = {}
    for name, node in nodes.items():
        domain = name if level.index is None else (
            node.domains[level.index] if level.index < len(node.domains) and node.domains[level.index] else "")
        if domain:
            ready[domain] = ready.get(domain, False) or node.ready
    return tuple(sorted((d for d, r in ready.items() if not r), key=natural_key))


def measure_drift(placement: Placement, cv: ClusterView, plan: Plan) -> Drift:
    top = placement.top_level
    if top is None:
        return Drift()
    lost = lost_domains(placement, top)
    masters = {d: n for d, n in plan.before.items() if d not in lost and d != UNKNOWN_DOMAIN}
    total = sum(masters.values())
    skew = max(masters.values()) - min(masters.values()) if masters else 0
    quorum_unsafe = (cv.quorum_applies and len(masters) >= 3 and total > 0
                     and max(masters.values()) >= math.ceil(total / 2))
    alive = _alive_domains(placement, top, lost)
    misplaced = tuple(s.shard for s in cv.shards if _misplacement(s, top, alive, lost))
    return Drift(placement.levels[top].name, masters, lost, skew, quorum_unsafe, misplaced)


def _alive_domains(placement: Placement, top: int, lost: tuple[str, ...]) -> frozenset[str]:
    return frozenset(d for d in placement.levels[top].domains if d not in lost and d != UNKNOWN_DOMAIN)


def _misplacement(shard: ShardView, top: int, alive: frozenset[str], lost: tuple[str, ...]) -> str:
    """Why a shard's copies are misplaced ("" when they are not): two on one node, or two in
    one domain while a live domain holds none (copies in lost domains are left out)."""
    copies = [c for c in shard.copies if c.domains[top] not in lost]
    nodes = Counter(c.node for c in copies)
    shared = sorted(n for n, k in nodes.items() if k > 1)
    if shared:
        return f"copies share node {shared[0]}"
    domains = Counter(c.domains[top] for c in copies)
    crowded = sorted((d for d, k in domains.items() if k > 1), key=natural_key)
    free = sorted(alive - set(domains), key=natural_key)
    if crowded and free:
        return f"copies share {crowded[0]} while {free[0]} holds none"
    return ""


# --- the decision --------------------------------------------------------------------------------

def decide(placement: Placement, cv: ClusterView, memory: Memory, now: float, policy: KeeperPolicy,
           facts: Mapping[str, PodFacts] | None = None, recent_steps: tuple[float, ...] = ()) -> Decision:
    """The next thing to do about one cluster. `recent_steps` are the times of every cluster's
    steps (the global rate); `facts` by pod "ns/name" (missing: assumed controlled, no volume)."""
    facts = facts if facts is not None else {}  # (never asked for its length: read when needed)
    if policy.mode == OFF:
        return Decision(cv.id, NONE, "keeper off", memory=memory)
    plan = plan_cluster(placement, cv)
    drift = measure_drift(placement, cv, plan)
    live = cv.live
    if live is None:
        return Decision(cv.id, WAIT, "no live topology yet", drift, memory)
    if live.error:
        return Decision(cv.id, WAIT, f"live topology unreadable: {live.error}", drift, memory)
    if now - live.fetched_at > policy.stale_after:
        return Decision(cv.id, WAIT, f"live topology {now - live.fetched_at:.0f}s old", drift, memory)

    settled = None
    if memory.pending:
        state, why = pending_state(memory.pending, cv, placement, facts, now, policy)
        if state == "waiting":
            return Decision(cv.id, WAIT, why, drift, memory)
        outcome = "done" if state == "done" else "failed"
        settled = {**memory.pending, "outcome": outcome, "detail": why}
        memory = replace(memory, pending=None, last=settled)
        if state == "failed":  # the first surprise: stop and report (the drift clock restarts)
            return Decision(cv.id, BLOCKED, why, drift, replace(memory, drift_since=None), settled=settled)

    if not drift.any:
        return Decision(cv.id, NONE, "balanced", drift, replace(memory, drift_since=None), settled=settled)
    since = memory.drift_since if memory.drift_since is not None else now
    memory = replace(memory, drift_since=since)
    if now - since < policy.settle:
        return Decision(cv.id, WAIT, f"drift for {now - since:.0f}s of the {policy.settle:g}s settle time",
                        drift, memory, settled=settled)
    if cv.kind == KIND_SENTINEL:
        return Decision(cv.id, BLOCKED, "Sentinel deployment: advice only (Sentinel picks the replica it "
                        "promotes; steer it with replica-priority)", drift, memory, settled=settled)
    if cv.kind != KIND_CLUSTER:
        return Decision(cv.id, WAIT, "no live Redis Cluster topology", drift, memory, settled=settled)
    unseen = [c.pod for s in cv.shards for c in s.copies if c.live_role is None]
    if unseen:  # a pod not (yet) in the cluster: a replacement joining, or the view incomplete
        return Decision(cv.id, WAIT, f"{unseen[0]} is not in the live topology yet"
                        + (f" (and {len(unseen) - 1} more)" if len(unseen) > 1 else ""), drift, memory,
                        settled=settled)
    unsafe = cluster_unsafe(cv, placement, drift.lost)
    if unsafe:
        return Decision(cv.id, WAIT, unsafe, drift, memory, settled=settled)
    step, eviction, why, waiting = next_step(placement, cv, plan, drift, facts, policy)
    if step is None and eviction is None:
        return Decision(cv.id, WAIT if waiting else BLOCKED, why, drift, memory, settled=settled)
    action = FAILOVER if step is not None else EVICT
    last_at = float((memory.last or {}).get("at") or 0)
    if now - last_at < policy.cooldown:
        return Decision(cv.id, WAIT, f"cooldown: last step {now - last_at:.0f}s ago (< {policy.cooldown:g}s)",
                        drift, memory, step, eviction, settled)
    if sum(1 for t in recent_steps if now - t < 60) >= policy.rate:
        return Decision(cv.id, WAIT, f"global rate: {policy.rate} steps in the last minute", drift, memory,
                        step, eviction, settled)
    return Decision(cv.id, action, why, drift, memory, step, eviction, settled)


def cluster_unsafe(cv: ClusterView, placement: Placement, lost: tuple[str, ...]) -> str:
    """Why no step may be taken now ("" when it may): a slot not served by a healthy master,
    or a Redis node failing outside the lost domains."""
    live = cv.live
    assert live is not None
    served = sum(n.slot_count for n in live.nodes if n.role == "master" and n.health == "online")
    if served < SLOTS:
        return f"{SLOTS - served} slots not served by a healthy master (Redis is failing over)"
    top = placement.top_level
    domain_of = {c.pod: c.domains[top] for s in cv.shards for c in s.copies} if top is not None else {}
    for node in live.nodes:
        if node.health == "online":
            continue
        if node.pod and domain_of.get(node.pod) in lost:
            continue  # its domain is gone: counted as gone, not as a surprise
        return f"Redis node {node.pod or node.address} is {node.health}"
    return ""


def next_step(placement: Placement, cv: ClusterView, plan: Plan, drift: Drift, facts: Mapping[str, PodFacts],
              policy: KeeperPolicy) -> tuple[Step | None, Eviction | None, str, bool]:
    """Masters first (the plan's first failover), then copies (one eviction); else why neither,
    and whether that is a wait (a copy still settling) rather than a block."""
    notes: list[str] = []
    if drift.masters_drift:
        step = next((s for s in plan.steps if s.from_domain not in drift.lost and s.to_domain not in drift.lost),
                    None)
        if step is not None and (step.lag is None or step.lag <= policy.max_lag):
            counts = ", ".join(f"{d} {n}" for d, n in drift.masters.items())
            return step, None, (f"masters per {drift.level}: {counts}: promote {step.promote} "
                                f"({step.to_domain}) over {step.demote} ({step.from_domain})"), False
        notes.append("masters out of balance, no failover possible: " + ("; ".join(plan.notes) or "no in-sync replica"))
    waiting = False
    if drift.misplaced:
        eviction, why, waiting = choose_eviction(placement, cv, drift, facts, policy)
        if eviction is not None:
            return None, eviction, why, False
        notes.append(why)
    return None, None, "; ".join(notes) or "nothing to do", waiting


def choose_eviction(placement: Placement, cv: ClusterView, drift: Drift, facts: Mapping[str, PodFacts],
                    policy: KeeperPolicy) -> tuple[Eviction | None, str, bool]:
    """One replica to evict, of the first misplaced shard where it is safe; else why none and
    whether to wait (a shard not whole or not in sync: one shard per cluster at a time)."""
    top = placement.top_level
    assert top is not None
    expected = max((len(s.copies) for s in cv.shards), default=0)
    for s in cv.shards:  # one shard per cluster at a time: all whole and in sync first
        incomplete = _incomplete(s, expected, policy.max_lag, facts)
        if incomplete:
            return None, f"shard {s.shard}: {incomplete}: waiting before moving any copy", True
    alive = _alive_domains(placement, top, drift.lost)
    reasons = []
    for s in sorted((s for s in cv.shards if s.shard in drift.misplaced), key=lambda s: natural_key(s.shard)):
        why = _misplacement(s, top, alive, drift.lost)
        victim, refusal = _victim(s, top, facts, policy)
        if victim is None:
            reasons.append(f"shard {s.shard}: {refusal}")
            continue
        claim = facts.get(victim.pod, PodFacts()).zonal_volume
        return Eviction(victim.pod, s.shard, victim.node, victim.domains[top], f"shard {s.shard}: {why}",
                        claim if policy.delete_pvc else ""), f"shard {s.shard}: {why}: evict {victim.pod}", False
    return None, "; ".join(reasons), False


def _incomplete(s: ShardView, expected: int, max_lag: int, facts: Mapping[str, PodFacts]) -> str:
    if len(s.copies) < expected:
        return f"{len(s.copies)} of {expected} copies placed"
    for c in s.copies:
        f = facts.get(c.pod, PodFacts())
        if f.deleting or not f.ready:
            return f"{c.pod} is {'being deleted' if f.deleting else 'not ready'}"
        if c.role is Role.REPLICA and not c.in_sync(max_lag):
            return f"{c.pod} is not an in-sync replica"
    return ""


def _victim(s: ShardView, top: int, facts: Mapping[str, PodFacts], policy: KeeperPolicy
            ) -> tuple[CopyView | None, str]:
    master = s.master
    if master is None or not master.healthy:
        return None, "no healthy master"
    nodes = Counter(c.node for c in s.copies)
    domains = Counter(c.domains[top] for c in s.copies)
    crowded = [c for c in s.copies if nodes[c.node] > 1] or [c for c in s.copies if domains[c.domains[top]] > 1]
    replicas = [c for c in crowded if c is not master and c.role is Role.REPLICA]
    if not replicas:
        return None, f"the misplaced copy is the master {master.pod}: fail it over first"
    refusals = []
    for c in sorted(replicas, key=lambda c: (c.lag is None, -(c.lag or 0), natural_key(c.pod)), reverse=True):
        f = facts.get(c.pod, PodFacts())
        others = [o for o in s.copies if o is not c and o is not master and o.in_sync(policy.max_lag)
                  and o.replicates == master.pod]
        if not others:
            refusals.append(f"{c.pod}: no other in-sync replica would remain")
        elif not f.controlled:
            refusals.append(f"{c.pod}: no controller recreates it")
        elif f.zonal_volume and not policy.delete_pvc:
            refusals.append(f"{c.pod}: blocked by volume topology (PVC {f.zonal_volume} is bound to a zonal "
                            "volume; opt in to delete it with REDIS_EXTENDER_KEEPER_DELETE_PVC)")
        else:
            return c, ""
    return None, "; ".join(refusals)


# --- a step taken: has it settled? ---------------------------------------------------------------

def pending_state(pending: Mapping[str, Any], cv: ClusterView, placement: Placement,
                  facts: Mapping[str, PodFacts], now: float, policy: KeeperPolicy) -> tuple[str, str]:
    """("done" | "waiting" | "failed", why) for the recorded step, from the observed state only."""
    age = now - float(pending.get("at") or 0)
    copies = {c.pod: c for s in cv.shards for c in s.copies}
    if pending.get("kind") == FAILOVER:
        new, old = copies.get(str(pending.get("promote"))), copies.get(str(pending.get("demote")))
        if new is not None and new.live_role is Role.MASTER and new.serves_slots and new.healthy and (
                old is None or old.live_role is Role.REPLICA):
            return "done", f"{new.pod} is master"
        if age > policy.step_timeout:
            return "failed", (f"failover of shard {pending.get('shard')} to {pending.get('promote')} not seen "
                              f"after {age:.0f}s")
        return "waiting", f"waiting for {pending.get('promote')} to show as master ({age:.0f}s)"
    if pending.get("kind") == EVICT:
        pod = str(pending.get("pod"))
        f = facts.get(pod)
        c = copies.get(pod)
        if (f is not None and f.uid and f.uid != pending.get("uid") and f.ready and c is not None
                and c.in_sync(policy.max_lag)):
            return "done", f"{pod} recreated on {c.node} and in sync"
        if age > policy.evict_timeout:
            return "failed", f"{pod} not back in sync {age:.0f}s after its eviction"
        return "waiting", f"waiting for {pod} to be recreated and in sync ({age:.0f}s)"
    return "done", "unknown pending step dropped"


def pending_record(decision: Decision, now: float, uid: str = "") -> dict[str, Any]:
    """What to store, before acting, so that a new leader checks the step instead of resending it."""
    if decision.step is not None:
        s = decision.step
        return {"kind": FAILOVER, "at": now, "shard": s.shard, "promote": s.promote, "demote": s.demote,
                "from": s.from_domain, "to": s.to_domain}
    e = decision.eviction
    assert e is not None
    return {"kind": EVICT, "at": now, "shard": e.shard, "pod": e.pod, "uid": uid, "node": e.node,
            "from": e.domain, "pvc": e.delete_pvc}
