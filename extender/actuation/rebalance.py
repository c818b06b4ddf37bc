"""Execute a failover plan against live Redis, one step at a time, stopping at the first surprise.

Per step, all checked right before acting, on the nodes themselves (not the seed's gossip):
1. the replica answers ROLE as a replica of the master the plan names (same ip:port), with its
   replication link `connected`;
2. the master answers ROLE as master, and the replica trails its offset by <= max_lag bytes;
3. the master's own cluster view lists the replica as its replica (waited for: after a recent
   failover that news travels by gossip, and a master ignores a failover request from a node
   it does not see as its replica);
4. `CLUSTER FAILOVER` (the coordinated kind: the master pauses writers until the replica has
   caught up, so no acknowledged write is lost) is sent to the replica;
5. both ROLEs are polled until the replica is master and the old master its replica, up to
   `timeout` seconds.
Anything else (a pod missing from the topology, another master, a lagging or disconnected
replica, an error, a timeout) stops the run: the next steps were planned for a state that no
longer holds, so they are reported as skipped and nothing more is touched.
Without `apply` nothing is sent: every step is returned as "planned".

The checks and the stopping rule live here; the commands reach the nodes through
actuation/nodes.py's NodeClient (ROLE, CLUSTER NODES, CLUSTER FAILOVER), so this module
never imports redis.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from extender.core.model import Role
from extender.state.connect import StoreError
from extender.actuation.nodes import NodeClient, OpenNode, node_opener
from extender.analysis.advice import Plan, Step
from extender.analysis.topology import LiveNode, LiveTopology, myself, parse_cluster_nodes

PLANNED, DONE, FAILED, SKIPPED = "planned", "done", "failed", "skipped"


@dataclass(frozen=True)
class StepResult:
    step: Step
    status: str  # planned | done | failed | skipped
    detail: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**self.step.to_json(), "status": self.status, "detail": self.detail,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class RebalanceResult:
    plan: Plan
    applied: bool
    results: tuple[StepResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(r.status in (PLANNED, DONE) for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.plan.cluster, "applied": self.applied, "ok": self.ok,
                "plan": self.plan.to_json(), "results": [r.to_json() for r in self.results]}


class Surprise(RuntimeError):
    """The live state is not what the plan assumed: stop."""


def rebalance(plan: Plan, topology: LiveTopology, apply: bool = False, max_lag: int = 1 << 20,
              timeout: float = 10.0, open_node: OpenNode | None = None,
              log: Callable[[str], None] = lambda _: None, poll: float = 0.05) -> RebalanceResult:
    if not apply:
        return RebalanceResult(plan, False, tuple(StepResult(s, PLANNED) for s in plan.steps))
    open_node = open_node or node_opener()
    by_pod = topology.by_pod()
    results: list[StepResult] = []
    for i, step in enumerate(plan.steps):
        started = time.monotonic()
        try:
            detail = _execute(step, by_pod, max_lag, timeout, open_node, poll)
        except (Surprise, StoreError, OSError) as exc:
            results.append(StepResult(step, FAILED, str(exc), time.monotonic() - started))
            log(f"step {step.order}: stopped: {exc}")
            results.extend(StepResult(s, SKIPPED, f"not attempted after step {step.order} failed")
                           for s in plan.steps[i + 1:])
            break
        results.append(StepResult(step, DONE, detail, time.monotonic() - started))
        log(f"step {step.order}: {detail}")
    return RebalanceResult(plan, True, tuple(results))


def _execute(step: Step, by_pod: dict[str, LiveNode], max_lag: int, timeout: float, open_node: OpenNode,
             poll: float) -> str:
    replica_node, master_node = by_pod.get(step.promote), by_pod.get(step.demote)
    if replica_node is None or master_node is None:
        missing = step.promote if replica_node is None else step.demote
        raise Surprise(f"{missing} is not in the live topology")
    replica = open_node(replica_node.ip, replica_node.port)
    master = open_node(master_node.ip, master_node.port)
    try:
        role = replica.role()
        if Role.parse(role[0]) is not Role.REPLICA:
            raise Surprise(f"{step.promote} is {role[0]}, not a replica")
        state, offset = role[3], int(role[4])
        follows = _master_id(replica)
        if follows != master_node.node_id:
            raise Surprise(f"{step.promote} replicates node {follows or '?'}, not {step.demote} "
                           f"({master_node.node_id})")
        if state != "connected":
            raise Surprise(f"{step.promote}: replication link is {state}")
        mrole = master.role()
        if Role.parse(mrole[0]) is not Role.MASTER:
            raise Surprise(f"{step.demote} is {mrole[0]}, not a master")
        lag = int(mrole[1]) - offset
        if lag > max_lag:
            raise Surprise(f"{step.promote} trails {step.demote} by {lag} bytes (> {max_lag})")
        deadline = time.monotonic() + timeout
        if not wait_master_knows(master, replica_node.node_id, timeout, poll):
            raise Surprise(f"{step.demote} does not list {step.promote} as its replica after {timeout:g}s")
        replica.failover()
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            new, old = Role.parse(replica.role()[0]), Role.parse(master.role()[0])
            seen = seen + 1 if new is Role.MASTER and old is Role.REPLICA else 0
            if seen >= 3:  # held over three polls: a replica that won an election shortly before
                # may "win" again with its stale epoch and be reverted a moment later
                return f"{step.promote} is master of shard {step.shard}, {step.demote} its replica (lag was {lag})"
            time.sleep(poll)
        raise Surprise(f"{step.promote} did not become master within {timeout:g}s (Redis refuses a new election "
                       f"by a node for 4 x cluster-node-timeout after its last one)")
    finally:
        replica.close()
        master.close()


def wait_master_knows(master: NodeClient, replica_id: str, timeout: float, poll: float = 0.05) -> bool:
    """Wait until the master's own cluster view lists the replica as its replica. A master
    ignores a manual-failover request (MFSTART) from a node it does not see as its replica, and
    right after a failover the demoted node's new role reaches its master only by gossip (up to
    half the node timeout): without this wait, failing back a fresh failover times out."""
    deadline = time.monotonic() + timeout
    while True:
        reply = master.cluster_nodes()
        me = myself(reply)
        replica = next((n for n in parse_cluster_nodes(reply) if n.node_id == replica_id), None)
        if me is not None and replica is not None and replica.role == "replica" and replica.master_id == me.node_id:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def _master_id(client: NodeClient) -> str:
    """The node id this replica follows, from its own CLUSTER NODES line ("myself,slave <id>"):
    ids survive address changes (pod restarts, announce-ip) where ip:port comparisons do not."""
    me = myself(client.cluster_nodes())
    return me.master_id if me is not None else ""


def wait_converged(fetch: Callable[[], LiveTopology], promoted: list[str], timeout: float = 10.0,
                   poll: float = 0.1) -> LiveTopology:
    """Re-read the topology until the seed's view shows every promoted pod as master (gossip
    takes a moment), or the timeout passes; returns the last view either way."""
    deadline = time.monotonic() + timeout
    while True:
        topology = fetch()
        roles = {n.pod: n.role for n in topology.nodes}
        if all(roles.get(p) == "master" for p in promoted) or time.monotonic() >= deadline:
            return topology
        time.sleep(poll)
