"""The failover plan (analysis/advice.py) on hand-made placements with known shortest answers.

Tokens as in report_builders: "<cached role>[<live role>]@<node>", the node's first letter
is its zone. Pods are named ns/c-<shard>-<index in the token list>.
"""
from __future__ import annotations

import random

import pytest

from extender.analysis.advice import Plan, plan_all, plan_cluster
from extender.analysis.placement import Inventory, place

from .report_builders import BALANCED, PILED, make_inventory, make_node


def plan_of(inv: Inventory, max_lag: int = 1 << 20) -> Plan:
    placement = place(inv, max_lag)
    return plan_cluster(placement, placement.clusters[0])


def promoted(plan: Plan) -> list[str]:
    return [s.promote for s in plan.steps]


def test_balanced_cluster_needs_no_step() -> None:
    plan = plan_of(make_inventory(BALANCED))
    assert plan.steps == () and plan.goal_met and plan.notes == ()
    assert dict(plan.before) == dict(plan.after) == {"za": 1, "zb": 1, "zc": 1}


def test_one_piled_master_is_undone_by_promoting_the_intended_master() -> None:
    plan = plan_of(make_inventory(PILED))
    assert promoted(plan) == ["ns/c-1-1"]  # the cache's master of shard 1, now a replica in zb
    step = plan.steps[0]
    assert (step.shard, step.demote, step.from_domain, step.to_domain, step.promote_node) == \
        ("1", "ns/c-1-0", "za", "zb", "b2")
    assert dict(plan.after) == {"za": 1, "zb": 1, "zc": 1}
    assert (plan.skew_before, plan.skew_after, plan.quorum_safe_before, plan.quorum_safe_after) == (2, 0, False, True)
    assert plan.goal_met


def test_three_masters_in_one_zone_take_two_steps_most_crowded_first() -> None:
    spec = {"0": ["M@a1", "R@b1", "R@c1"], "1": ["RM@a2", "MR@b2", "R@c2"], "2": ["RM@a3", "R@b3", "MR@c3"]}
    plan = plan_of(make_inventory(spec))
    assert promoted(plan) == ["ns/c-1-1", "ns/c-2-2"]
    assert [(s.order, s.from_domain, s.to_domain) for s in plan.steps] == [(1, "za", "zb"), (2, "za", "zc")]
    assert dict(plan.after) == {"za": 1, "zb": 1, "zc": 1}


def test_a_chain_of_failovers_is_found_when_no_direct_move_exists() -> None:
    # za holds 2 masters, zc none. Shard 0 (za) can only go to zb; shard 1 (zb) only to zc.
    # Moving "from the most to the least crowded" directly is impossible: the answer is a chain.
    spec = {"0": ["M@a1", "R@b1"], "1": ["M@b2", "R@c1"], "2": ["M@a2", "R@a3"]}
    plan = plan_of(make_inventory(spec))
    assert sorted(promoted(plan)) == ["ns/c-0-1", "ns/c-1-1"]
    assert dict(plan.after) == {"za": 1, "zb": 1, "zc": 1}
    assert plan.goal_met


def test_lagging_or_disconnected_replicas_are_never_promoted() -> None:
    lagging = plan_of(make_inventory(PILED, lag={"c-1-1": 5000}), max_lag=1000)
    assert promoted(lagging) == ["ns/c-0-1"]  # shard 0's replica in zb instead: same single step
    down = plan_of(make_inventory(PILED, link={"c-1-1": False}))
    assert promoted(down) == ["ns/c-0-1"]


def test_no_in_sync_replica_means_no_step_and_a_note_why() -> None:
    spec = {"0": ["M@a1", "R@b1"], "1": ["M@a2", "R@b2"], "2": ["M@c1", "R@a3"]}
    plan = plan_of(make_inventory(spec, link={"c-0-1": False, "c-1-1": False}))
    assert plan.steps == ()
    assert not plan.goal_met
    assert "shard 0: no in-sync replica outside zone za (ns/c-0-1: link down)" in plan.notes
    assert "shard 1: no in-sync replica outside zone za (ns/c-1-1: link down)" in plan.notes


def test_replicas_in_unknown_domains_are_not_candidates() -> None:
    nodes = {n: make_node(n) for n in ("a1", "a2", "b1", "c1")} | {"x1": make_node("x1", zone=None)}
    spec = {"0": ["M@a1", "R@x1"], "1": ["M@a2", "R@b1"], "2": ["M@c1", "R@b1"]}
    plan = plan_of(make_inventory(spec, nodes=nodes))
    assert promoted(plan) == ["ns/c-1-1"]


def test_quorum_that_no_plan_can_make_safe_is_explained() -> None:
    spec = {"0": ["M@a1", "R@b1"], "1": ["M@a2", "R@b2"], "2": ["M@b3", "R@a3"]}  # 3 masters, 2 zones
    plan = plan_of(make_inventory(spec))
    assert plan.steps == () and plan.skew_after == 1
    assert plan.quorum_safe_after is False and not plan.goal_met
    assert plan.notes[0] == "quorum cannot be safe: 3 masters over 2 zones put at least 2 in one (limit 1)"


def test_most_balanced_reachable_when_skew_one_is_out_of_reach() -> None:
    # 4 masters in za; only shards 0 and 1 have an in-sync replica elsewhere (zb, zc).
    spec = {"0": ["M@a1", "R@b1"], "1": ["M@a2", "R@c1"], "2": ["M@a3", "R@a4"], "3": ["M@a5", "R@a6"]}
    plan = plan_of(make_inventory(spec))
    assert sorted(promoted(plan)) == ["ns/c-0-1", "ns/c-1-1"]
    assert dict(plan.after) == {"za": 2, "zb": 1, "zc": 1}
    assert plan.skew_after == 1 and plan.quorum_safe_after is False


def test_prefers_a_replica_on_a_node_without_master() -> None:
    # za holds 3 masters (shards 0, 1, 4); one failover suffices: shard 0 to zb (b1 or b2) or
    # shard 1 to zc (c2). b1 and c2 already hold masters (shards 2 and 3): b2 is chosen.
    spec = {"0": ["M@a1", "R@b1", "R@b2"], "1": ["M@a2", "R@c2"], "2": ["M@b1", "R@a3"], "3": ["M@c2", "R@a4"],
            "4": ["M@a5", "R@a6"]}
    plan = plan_of(make_inventory(spec))
    assert promoted(plan) == ["ns/c-0-2"]
    assert dict(plan.after) == {"za": 2, "zb": 2, "zc": 1}


def test_sentinel_and_cache_only_clusters_get_notes_not_steps() -> None:
    sentinel = plan_of(make_inventory({"0": ["M@a1", "R@b1"]}, live="sentinel"))
    assert sentinel.steps == () and "Sentinel picks the replica" in sentinel.notes[0]
    cached = plan_of(make_inventory(PILED, live=False))
    assert cached.steps == () and "no live topology" in cached.notes[0]


def test_no_active_level_means_nothing_to_balance() -> None:
    plan = plan_of(make_inventory({"0": ["M@a1", "R@a1"]}))  # one node, one zone, one region
    assert plan.level is None and plan.steps == ()
    assert plan.notes == ("no level has two domains or more: nothing to balance",)


def test_plan_is_deterministic_whatever_the_input_order() -> None:
    spec = {str(i): [f"M@a{i}", f"R@b{i}", f"R@c{i}"] for i in range(12)}
    first = plan_of(make_inventory(spec))
    assert len(first.steps) == 8  # 12 masters in za -> 4/4/4
    rnd = random.Random(7)
    for _ in range(5):
        keys = list(spec)
        rnd.shuffle(keys)
        again = plan_of(make_inventory({k: spec[k] for k in keys}))
        assert [s.to_json() for s in again.steps] == [s.to_json() for s in first.steps]


@pytest.mark.parametrize("shards", [9, 30])
def test_steps_equal_the_masters_above_the_balanced_count(shards: int) -> None:
    # every shard has in-sync replicas in the two other zones: the lower bound is reachable
    spec = {str(i): [f"M@a{i}", f"R@b{i}", f"R@c{i}"] for i in range(shards)}
    plan = plan_of(make_inventory(spec))
    assert len(plan.steps) == shards - shards // 3
    assert set(plan.after.values()) == {shards // 3}


def test_plan_all_covers_every_cluster() -> None:
    spec = {**PILED, "ns/d|0": ["M@a1", "R@b1"], "ns/d|1": ["M@b2", "R@a2"]}
    plans = plan_all(place(make_inventory(spec)))
    assert [(p.cluster, len(p.steps)) for p in plans] == [("ns/c", 1), ("ns/d", 0)]
    assert plans[1].notes == ("quorum cannot be safe: 2 masters over 2 zones put at least 1 in one (limit 0)",)


def _brute_force(inv: Inventory) -> tuple[int | None, int, int]:
    """(fewest moves reaching the goal or None, smallest reachable max, largest reachable min)."""
    import itertools
    import math

    placement = place(inv)
    top = placement.top_level
    assert top is not None
    cv = placement.clusters[0]
    masters = [(s, s.master) for s in cv.shards if s.master is not None]
    domains = sorted({c.domains[top] for s in cv.shards for c in s.healthy} | {m.domains[top] for _, m in masters})
    choices = []
    for shard, master in masters:
        options = {master.domains[top]}
        options |= {c.domains[top] for c in shard.copies
                    if c.in_sync(placement.max_lag) and c.replicates == master.pod}
        choices.append([(d, d != master.domains[top]) for d in sorted(options)])
    limit = math.ceil(len(masters) / 2)
    best_moves, best_max, best_min = None, len(masters), 0
    for combo in itertools.product(*choices):
        counts = {d: 0 for d in domains}
        for d, _ in combo:
            counts[d] += 1
        moves = sum(moved for _, moved in combo)
        hi, lo = max(counts.values()), min(counts.values())
        best_max, best_min = min(best_max, hi), max(best_min, lo)
        if hi - lo <= 1 and hi < limit and (best_moves is None or moves < best_moves):
            best_moves = moves
    return best_moves, best_max, best_min


@pytest.mark.parametrize("seed", range(40))
def test_plan_matches_brute_force_on_random_placements(seed: int) -> None:
    rnd = random.Random(seed)
    zones = "abcd"[:rnd.choice([3, 4])]
    spec, links = {}, {}
    for s in range(rnd.randint(3, 7)):
        copies = rnd.randint(2, 3)
        homes = [rnd.choice(zones) for _ in range(copies)]
        spec[str(s)] = [("M" if i == 0 else "R") + f"@{z}{s}{i}" for i, z in enumerate(homes)]
        for i in range(1, copies):
            if rnd.random() < 0.25:
                links[f"c-{s}-{i}"] = False
    inv = make_inventory(spec, link=links)
    plan = plan_of(inv)
    fewest, best_max, best_min = _brute_force(inv)
    after = list(plan.after.values())
    if fewest is not None:
        assert plan.goal_met and len(plan.steps) == fewest, (spec, links, plan)
    else:
        assert not plan.goal_met
        assert max(after) == best_max and min(after) == best_min, (spec, links, plan)


def _failed_over(inv: Inventory, promoted_: dict[str, str]) -> Inventory:
    """The live topology after Redis failed shards over: each dead master (key) listed failed
    with no slots, its replicas following the promoted one (value), as CLUSTER SHARDS says."""
    from dataclasses import replace

    topology = inv.live["ns/c"]
    new_master = {f"ns/{dead}": f"id-ns/{up}" for dead, up in promoted_.items()}
    nodes = []
    for n in topology.nodes:
        if n.pod in new_master:
            n = replace(n, health="fail", slots=())
        elif n.role == "replica":
            dead = next((d for d in new_master if n.master_id == f"id-{d}"), None)
            n = replace(n, master_id=new_master[dead]) if dead else n
        else:
            n = replace(n, slots=((0, 99),))
        nodes.append(n)
    return replace(inv, live={"ns/c": replace(topology, nodes=tuple(nodes))})


def test_after_a_zone_is_lost_the_plan_balances_the_surviving_zones() -> None:
    # 4 zones; zd held the masters of shards 3 and 4, both promoted in za: 4-1-1 over the
    # survivors. The dead masters are still listed "master" (failed, slot-less) and sort
    # first by name: counting them would show zd with 2 masters and the cluster balanced.
    spec = {"0": ["M@a1", "R@b1", "R@d1"], "1": ["M@b2", "R@c1", "R@d2"], "2": ["M@c2", "R@a2", "R@d3"],
            "3": ["MM@d1", "RM@a3", "R@b3"], "4": ["MM@d2", "RM@a1", "R@c3"], "5": ["M@a2", "R@b1", "R@c2"]}
    nodes = {n: make_node(n, ready=not n.startswith("d"))
             for n in ("a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3", "d1", "d2", "d3")}
    inv = _failed_over(make_inventory(spec, nodes=nodes, health={f"c-{s}-2": "fail" for s in "012"}),
                       {"c-3-0": "c-3-1", "c-4-0": "c-4-1"})
    placement = place(inv)
    assert [s.master.pod for s in placement.clusters[0].shards if s.master] == \
        ["ns/c-0-0", "ns/c-1-0", "ns/c-2-0", "ns/c-3-1", "ns/c-4-1", "ns/c-5-0"]
    plan = plan_of(inv)
    assert dict(plan.before) == {"za": 4, "zb": 1, "zc": 1}
    assert (plan.skew_before, plan.quorum_limit, plan.quorum_safe_before) == (3, 3, False)
    assert dict(plan.after) == {"za": 2, "zb": 2, "zc": 2} and plan.goal_met and len(plan.steps) == 2
    assert all(s.from_domain == "za" and s.to_domain in ("zb", "zc") for s in plan.steps)
