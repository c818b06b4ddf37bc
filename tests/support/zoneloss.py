"""A zone lost and returned under a real Redis Cluster (keeperworld), timed: what the keeper's
e2e test asserts and what benchmarks/bench_keeper.py repeats for the README's figures."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .keeperworld import World, balanced, keeper_events
from .podcluster import Writer, settled, wait_for

LOST_ZONE = "zone-2"


@dataclass
class ZoneLossRun:
    keeper: str
    masters_before: dict[str, int] = field(default_factory=dict)
    masters_after_failover: dict[str, int] = field(default_factory=dict)  # survivors, once Redis failed over
    masters_while_lost: dict[str, int] = field(default_factory=dict)
    masters_after_return: dict[str, int] = field(default_factory=dict)
    loss_to_balanced: float | None = None  # seconds from the loss to masters balanced over the survivors
    return_to_balanced: float | None = None  # seconds from the return to 2-2-2
    steps: int = 0  # keeper failovers (Events)
    acked: int = 0
    lost_keys: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def survivors(counts: dict[str, int]) -> dict[str, int]:
    return {z: n for z, n in counts.items() if z != LOST_ZONE}


def run_zone_loss(world: World, keeper: str, lost_for: float = 40.0, watch: float = 60.0) -> ZoneLossRun:
    """Lose LOST_ZONE (servers crash, nodes NotReady), keep it away `lost_for` seconds at least
    (or until balanced over the survivors, waited up to `watch`), bring it back, wait up to
    `watch` seconds for 2-2-2. A writer writes throughout; every acknowledged key is read back."""
    run = ZoneLossRun(keeper)
    run.masters_before = world.masters_per_zone()
    before_events = len(_failovers(world))
    writer = world.writer = Writer(world.agent, world.pods).start()
    wait_for(lambda: len(writer.acked) >= 50, timeout=30, what="writes before the loss")
    lost_nodes = [n for n, z in world.zone_of.items() if z == LOST_ZONE]
    t0 = time.monotonic()
    for node in lost_nodes:
        world.agent.lose_node(node)
    alive = [s.ip for p in world.pods if (s := world.agent.server_of(p)) and world.zone_of[s.node] != LOST_ZONE]
    wait_for(lambda: _all_slots_served(alive), timeout=60, what="Redis to fail the lost zone's masters over")
    run.masters_after_failover = survivors(world.masters_per_zone())
    deadline = t0 + max(lost_for, watch)
    while time.monotonic() < deadline:
        counts = survivors(world.masters_per_zone())
        if run.loss_to_balanced is None and _all_slots_served(alive) and balanced(counts):
            run.loss_to_balanced = time.monotonic() - t0
        if run.loss_to_balanced is not None and time.monotonic() - t0 >= lost_for:
            break
        time.sleep(0.5)
    run.masters_while_lost = survivors(world.masters_per_zone())
    t1 = time.monotonic()
    for node in lost_nodes:
        world.agent.restore_node(node)
    ips = lambda: [s.ip for p in world.pods if (s := world.agent.server_of(p))]  # noqa: E731
    wait_for(lambda: settled(ips(), 6), timeout=90, what="the lost zone's nodes back in the cluster")
    deadline = t1 + watch
    while time.monotonic() < deadline:
        if sorted(world.masters_per_zone().values()) == [2, 2, 2] and settled(ips(), 6):
            run.return_to_balanced = time.monotonic() - t1
            break
        time.sleep(0.5)
    run.masters_after_return = world.masters_per_zone()
    writer.stop()
    run.acked = len(writer.acked)
    run.lost_keys = len(writer.lost())
    run.steps = len(_failovers(world)) - before_events
    return run


def _failovers(world: World) -> list[dict[str, str]]:
    return [e for e in keeper_events(world.cp) if e["reason"] == "RedisKeeperFailover"
            and e["pod"].startswith(world.name + "-")]


def _all_slots_served(ips: list[str]) -> bool:
    from extender.analysis.topology import parse_cluster_nodes

    from .podcluster import _call

    for ip in ips:
        try:
            nodes = parse_cluster_nodes(_call(ip, "CLUSTER", "NODES", timeout=1))
        except Exception:
            continue
        served = sum(n.slot_count for n in nodes if n.role == "master" and n.health == "online")
        return served == 16384
    return False
