"""The keeper's pure decisions (reports/keeping.py): when a cluster drifts, what the next step
is, and every condition that holds it back. Placements are report_builders' tokens
("<cached role>[<live role>]@<node>", a node's first letter is its zone)."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings, strategies as st

from extender.analysis.keeping import (ACT, ADVISE, BLOCKED, EVICT, FAILOVER, NONE, OFF, WAIT, KeeperPolicy, Memory,
                                      PodFacts, decide, pending_record)
from extender.analysis.placement import Inventory, place

from .report_builders import BALANCED, PILED, make_inventory, make_node

NOW = 1000.0
ACTING = KeeperPolicy(mode=ACT, settle=30, cooldown=10, rate=6)
SLOTS3 = {"0": 5462, "1": 5461, "2": 5461}
SETTLED = Memory(drift_since=NOW - 60)  # a drift seen for longer than the settle time


def decision(inv: Inventory, memory: Memory = SETTLED, policy: KeeperPolicy = ACTING, now: float = NOW,
             facts=None, recent=()):
    placement = place(inv, policy.max_lag)
    return decide(placement, placement.clusters[0], memory, now, policy, facts, tuple(recent))


def piled(**kw):
    return make_inventory(PILED, slots=SLOTS3, **kw)


def test_balanced_cluster_nothing_moves_and_the_drift_clock_is_cleared() -> None:
    d = decision(make_inventory(BALANCED, slots=SLOTS3), memory=Memory(drift_since=NOW - 99))
    assert (d.action, d.reason) == (NONE, "balanced")
    assert d.memory.drift_since is None and d.step is None and d.eviction is None
    assert d.drift.skew == 0 and not d.drift.any


def test_piled_masters_after_the_settle_time_fail_over_the_plans_first_step() -> None:
    d = decision(piled())
    assert d.action == FAILOVER and d.acts
    assert (d.step.promote, d.step.demote, d.step.from_domain, d.step.to_domain) == \
        ("ns/c-1-1", "ns/c-1-0", "za", "zb")
    assert d.drift.skew == 2 and d.drift.quorum_unsafe


def test_a_drift_younger_than_the_settle_time_waits_and_starts_the_clock() -> None:
    d = decision(piled(), memory=Memory())
    assert d.action == WAIT and "settle" in d.reason
    assert d.memory.drift_since == NOW
    d2 = decision(piled(), memory=d.memory, now=NOW + 29)
    assert d2.action == WAIT and d2.memory.drift_since == NOW
    d3 = decision(piled(), memory=d2.memory, now=NOW + 31, policy=replace(ACTING, stale_after=60))
    assert d3.action == FAILOVER


def test_a_flap_shorter_than_the_settle_time_resets_the_clock() -> None:
    started = decision(piled(), memory=Memory())
    back = decision(make_inventory(BALANCED, slots=SLOTS3, fetched_at=NOW + 5), memory=started.memory, now=NOW + 5)
    assert back.action == NONE and back.memory.drift_since is None
    again = decision(piled(fetched_at=NOW + 40), memory=back.memory, now=NOW + 40)
    assert again.action == WAIT and again.memory.drift_since == NOW + 40


def test_advise_mode_names_the_step_but_the_decision_is_the_same_for_the_io_to_hold_back() -> None:
    # the pure decision is mode-agnostic except off; the I/O acts only in act mode
    d = decision(piled(), policy=replace(ACTING, mode=ADVISE))
    assert d.action == FAILOVER and d.step is not None


def test_off_decides_nothing() -> None:
    d = decision(piled(), policy=replace(ACTING, mode=OFF))
    assert d.action == NONE and d.step is None


LAGGING = {"c-0-1": 5 << 20, "c-0-2": 5 << 20, "c-1-1": 5 << 20, "c-1-2": 5 << 20}


def test_a_lagging_replica_is_never_promoted() -> None:
    # every replica of za's two masters trails by more than max_lag: no failover at all
    d = decision(piled(lag=LAGGING))
    assert d.action == BLOCKED and d.step is None
    assert "lag" in d.reason
    # one of them in sync again: it is the one promoted
    d = decision(piled(lag={**LAGGING, "c-1-2": 0}))
    assert d.action == FAILOVER and d.step.promote == "ns/c-1-2"


def test_a_replica_with_its_link_down_is_never_promoted() -> None:
    d = decision(piled(link={k: False for k in LAGGING}))
    assert d.step is None and d.action == BLOCKED and "link down" in d.reason


def test_slots_not_all_served_wait_for_redis_to_fail_over_first() -> None:
    d = decision(make_inventory(PILED, slots={"0": 5462, "1": 5461}))
    assert d.action == WAIT and "slots not served" in d.reason


def test_a_failing_node_outside_the_lost_domains_holds_everything() -> None:
    d = decision(piled(health={"c-2-0": "failed"}, slots=None) if False else
                 make_inventory(PILED, slots=SLOTS3, health={"c-0-2": "failed"}))
    assert d.action == WAIT and "c-0-2" in d.reason and "failed" in d.reason


def test_a_lost_zone_counts_as_gone_its_failed_nodes_are_tolerated_and_survivors_are_balanced() -> None:
    # zone c lost (its nodes NotReady, its Redis nodes failed); shard 2 failed over to zb:
    # masters za 1, zb 2 over the survivors: skew 1, balanced as well as two zones allow
    spec = {"0": ["M@a1", "R@b1", "R@c1"], "1": ["R@a2", "M@b2", "R@c2"], "2": ["R@a3", "RM@b3", "MR@c3"]}
    nodes = {n: make_node(n, ready=not n.startswith("c")) for n in ("a1", "a2", "a3", "b1", "b2", "b3",
                                                                    "c1", "c2", "c3")}
    inv = make_inventory(spec, nodes=nodes, slots=SLOTS3,
                         health={"c-0-2": "failed", "c-1-2": "failed", "c-2-2": "failed"})
    d = decision(inv)
    assert d.drift.lost == ("zc",)
    assert dict(d.drift.masters) == {"za": 1, "zb": 2}
    assert d.action == NONE


def test_a_lost_zone_with_three_masters_left_on_one_survivor_is_rebalanced_over_the_survivors() -> None:
    spec = {"0": ["RM@a1", "M@b1", "R@c1"], "1": ["R@a2", "M@b2", "R@c2"], "2": ["R@a3", "RM@b3", "MR@c3"],
            "3": ["M@a4", "R@b4", "R@c4"]}
    nodes = {f"{z}{i}": make_node(f"{z}{i}", ready=z != "c") for z in "abc" for i in range(1, 5)}
    slots = {"0": 4096, "1": 4096, "2": 4096, "3": 4096}
    inv = make_inventory({k: [t.replace("RM@a1", "R@a1") for t in v] for k, v in spec.items()},
                         nodes=nodes, slots=slots, health={f"c-{s}-2": "failed" for s in "0123"})
    d = decision(inv)
    assert dict(d.drift.masters) == {"za": 1, "zb": 3} and d.drift.skew == 2
    assert d.action == FAILOVER and d.step.to_domain == "za" and d.step.from_domain == "zb"


def test_a_copy_missing_from_the_live_topology_waits_for_it() -> None:
    d = decision(make_inventory(PILED, slots=SLOTS3, drop_live=["ns/c-2-1"]))
    assert d.action == WAIT and "ns/c-2-1 is not in the live topology" in d.reason and d.step is None


def test_cooldown_and_global_rate_hold_the_step_back_but_name_it() -> None:
    last = Memory(drift_since=NOW - 60, last={"kind": FAILOVER, "at": NOW - 3, "outcome": "done"})
    d = decision(piled(), memory=last)
    assert d.action == WAIT and "cooldown" in d.reason and d.step is not None
    d = decision(piled(), recent=[NOW - i for i in range(6)])
    assert d.action == WAIT and "rate" in d.reason
    d = decision(piled(), recent=[NOW - 61 - i for i in range(6)])
    assert d.action == FAILOVER


def test_a_stale_live_view_is_not_acted_upon() -> None:
    d = decision(piled(fetched_at=NOW - 60))
    assert d.action == WAIT and "old" in d.reason


def test_a_pending_failover_is_checked_not_resent_and_settles_when_seen() -> None:
    first = decision(piled())
    pending = pending_record(first, NOW)
    memory = replace(first.memory, pending=pending)
    # not seen yet: wait (a new leader reads the same memory and waits too)
    d = decision(piled(), memory=memory, now=NOW + 1, policy=replace(ACTING, stale_after=60))
    assert d.action == WAIT and "show as master" in d.reason
    # seen: the promoted replica is master, serving slots
    done = make_inventory(BALANCED, slots=SLOTS3)
    spec = {"0": ["M@a1", "R@b1", "R@c1"], "1": ["RR@a2", "MM@b2", "R@c2"], "2": ["R@a3", "R@b3", "M@c3"]}
    done = make_inventory({"0": spec["0"], "1": ["MR@a2", "RM@b2", "R@c2"], "2": spec["2"]}, slots=SLOTS3,
                          fetched_at=NOW + 2)
    d = decision(done, memory=memory, now=NOW + 2)
    assert d.settled and d.settled["outcome"] == "done"
    assert d.memory.pending is None and d.memory.last["outcome"] == "done"
    assert d.action == NONE


def test_a_pending_failover_never_seen_stops_and_reports() -> None:
    first = decision(piled())
    memory = replace(first.memory, pending=pending_record(first, NOW))
    d = decision(piled(fetched_at=NOW + 40), memory=memory, now=NOW + 40)
    assert d.action == BLOCKED and "not seen" in d.reason and d.settled["outcome"] == "failed"


# --- copies ----------------------------------------------------------------------------------------

SHARING = {"0": ["M@a1", "R@a1", "R@b1"], "1": ["R@a2", "M@b2", "R@c2"], "2": ["R@a3", "R@b3", "M@c3"]}


def test_copies_sharing_a_node_evict_a_replica_of_that_node() -> None:
    d = decision(make_inventory(SHARING, slots=SLOTS3))
    assert d.drift.misplaced == ("0",) and not d.drift.masters_drift
    assert d.action == EVICT and d.eviction.pod == "ns/c-0-1" and d.eviction.node == "a1"


def test_copies_sharing_a_zone_while_another_holds_none_evict_the_replica() -> None:
    spec = {"0": ["M@a1", "R@a2", "R@b1"], "1": ["R@a3", "M@b2", "R@c2"], "2": ["R@a4", "R@b3", "M@c3"]}
    d = decision(make_inventory(spec, slots=SLOTS3))
    assert d.action == EVICT and d.eviction.pod == "ns/c-0-1" and "share za while zc holds none" in d.eviction.why


def test_copies_sharing_a_zone_when_no_other_zone_is_alive_are_not_misplaced() -> None:
    spec = {"0": ["M@a1", "R@a2", "R@b1"], "1": ["R@a3", "M@b2", "R@b4"]}
    d = decision(make_inventory(spec, slots={"0": 8192, "1": 8192}))
    assert d.drift.misplaced == () and d.action == NONE


def test_eviction_needs_another_in_sync_replica_a_controller_and_a_movable_volume() -> None:
    inv = make_inventory(SHARING, slots=SLOTS3, lag={"c-0-2": 5 << 20})
    d = decision(inv)
    assert d.action == WAIT and "not an in-sync replica" in d.reason  # the cluster waits for it first
    d = decision(make_inventory(SHARING, slots=SLOTS3), facts={"ns/c-0-1": PodFacts(controlled=False)})
    assert d.action == BLOCKED and "no controller" in d.reason
    d = decision(make_inventory(SHARING, slots=SLOTS3), facts={"ns/c-0-1": PodFacts(zonal_volume="data-c-0-1")})
    assert d.action == BLOCKED and "blocked by volume topology" in d.reason
    d = decision(make_inventory(SHARING, slots=SLOTS3), facts={"ns/c-0-1": PodFacts(zonal_volume="data-c-0-1")},
                 policy=replace(ACTING, delete_pvc=True))
    assert d.action == EVICT and d.eviction.delete_pvc == "data-c-0-1"


def test_a_master_sharing_only_with_another_master_position_is_never_evicted() -> None:
    # two copies on a1: the master and a replica; evicting is of the replica, never the master
    spec = {"0": ["R@b1", "M@a1", "R@a1"], "1": ["R@a2", "M@b2", "R@c2"], "2": ["R@a3", "R@b3", "M@c3"]}
    d = decision(make_inventory(spec, slots=SLOTS3))
    assert d.action == EVICT and d.eviction.pod == "ns/c-0-2"


def test_one_shard_at_a_time_a_copy_in_flight_holds_other_evictions() -> None:
    d = decision(make_inventory(SHARING, slots=SLOTS3), facts={"ns/c-1-0": PodFacts(ready=False)})
    assert d.action == WAIT and "not ready" in d.reason


def test_a_pending_eviction_settles_when_the_new_pod_is_in_sync() -> None:
    first = decision(make_inventory(SHARING, slots=SLOTS3))
    memory = replace(first.memory, pending=pending_record(first, NOW, uid="old"))
    moved = {"0": ["M@a1", "R@c1", "R@b1"], "1": SHARING["1"], "2": SHARING["2"]}
    d = decision(make_inventory(moved, slots=SLOTS3), memory=memory, now=NOW,
                 facts={"ns/c-0-1": PodFacts(uid="old")})
    assert d.action == WAIT and "recreated" in d.reason
    d = decision(make_inventory(moved, slots=SLOTS3), memory=memory, now=NOW,
                 facts={"ns/c-0-1": PodFacts(uid="new")})
    assert d.settled["outcome"] == "done" and d.action == NONE


def test_masters_first_then_copies() -> None:
    spec = {"0": ["M@a1", "R@a1", "R@b1"], "1": ["RM@a2", "MR@b2", "R@c2"], "2": ["R@a3", "R@b3", "M@c3"]}
    d = decision(make_inventory(spec, slots=SLOTS3))
    assert d.action == FAILOVER and d.drift.misplaced == ("0",)


def test_sentinel_is_advice_only() -> None:
    d = decision(make_inventory(PILED, live="sentinel", slots=SLOTS3))
    assert d.action == BLOCKED and "Sentinel" in d.reason


# --- properties ----------------------------------------------------------------------------------

ZONES = "abc"


@st.composite
def clusters(draw):
    shards = draw(st.integers(2, 5))
    spec, lag = {}, {}
    for s in range(shards):
        zones = draw(st.permutations(ZONES))
        master = draw(st.integers(0, 2))
        spec[str(s)] = [f"{'M' if i == master else 'R'}@{z}{s + 1}" for i, z in enumerate(zones)]
        for i in range(3):
            if i != master and draw(st.booleans()):
                lag[f"c-{s}-{i}"] = draw(st.sampled_from([0, 5 << 20]))
    return spec, lag


@settings(max_examples=150, deadline=None)
@given(clusters(), st.floats(0, 100), st.booleans())
def test_every_failover_promotes_an_in_sync_replica_of_another_domain_and_reduces_the_crowding(
        case, age, stale) -> None:
    spec, lag = case
    per = 16384 // len(spec)
    slots = {s: per + (16384 - per * len(spec) if s == "0" else 0) for s in spec}
    inv = make_inventory(spec, slots=slots, lag=lag, fetched_at=NOW - (60 if stale else 1))
    d = decision(inv, memory=Memory(drift_since=NOW - age))
    if stale or age < ACTING.settle:
        assert not d.acts
    if d.action == FAILOVER:
        placement = place(inv)
        copies = {c.pod: c for s in placement.clusters[0].shards for c in s.copies}
        promoted = copies[d.step.promote]
        assert promoted.in_sync(ACTING.max_lag) and promoted.replicates == d.step.demote
        assert d.drift.masters[d.step.from_domain] > d.drift.masters[d.step.to_domain] + 0 or d.drift.quorum_unsafe
        assert d.drift.masters_drift
    if not d.drift.any and not stale:
        assert d.action == NONE


@settings(max_examples=100, deadline=None)
@given(clusters())
def test_balanced_by_construction_means_no_action(case) -> None:
    spec, lag = case
    # one master per zone over the first three shards only when the drawn layout is balanced
    per = 16384 // len(spec)
    slots = {s: per + (16384 - per * len(spec) if s == "0" else 0) for s in spec}
    d = decision(make_inventory(spec, slots=slots, lag=lag))
    masters = sorted(d.drift.masters.values())
    if masters and masters[-1] - masters[0] <= 1 and not d.drift.quorum_unsafe:
        assert d.action in (NONE,) or d.drift.misplaced


def test_the_refresher_tries_the_last_good_seed_first_and_moves_on_after_a_failed_round() -> None:
    from extender.actuation.refresher import seed_order

    seeds = ["a:1", "b:1", "c:1", "d:1", "e:1"]
    assert seed_order(seeds, None, 0)[:3] == ["a:1", "b:1", "c:1"]
    assert seed_order(seeds, "d:1", 0)[:3] == ["d:1", "a:1", "b:1"]
    assert seed_order(seeds, None, 3)[:3] == ["d:1", "e:1", "a:1"]  # the first three failed last round
    assert seed_order(seeds, "gone:1", 0)[:1] == ["a:1"]
    assert sorted(seed_order(seeds, "c:1", 7)) == sorted(seeds)


def test_the_pods_facts_are_listed_only_when_a_decision_looks_at_them() -> None:
    """The keeper lists a namespace's pods (the API's most expensive read it makes) lazily:
    a balanced cluster, or one whose masters alone drift, never needs them; choosing an
    eviction does, once."""
    from extender.actuation.keeper import LazyFacts

    lists = []

    def listed() -> dict[str, PodFacts]:
        lists.append(1)
        return {"ns/c-0-1": PodFacts(uid="u-1")}

    for inventory in (make_inventory(BALANCED, slots=SLOTS3), piled()):
        facts = LazyFacts(listed)
        decision(inventory, facts=facts)
        assert not facts.loaded and lists == []
    facts = LazyFacts(listed)
    d = decision(make_inventory(SHARING, slots=SLOTS3), facts=facts)
    assert d.action == EVICT and facts.loaded and lists == [1]
    assert facts.get("ns/c-0-1") == PodFacts(uid="u-1") and lists == [1]  # kept for the round
