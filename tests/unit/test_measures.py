"""Every placement-quality measure on small hand-made placements with known answers
(analysis/measures.py). Inventories are built from tokens (tests/unit/report_builders.py).
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from extender.analysis.measures import failure_headroom
from extender.analysis.placement import UNKNOWN_DOMAIN, place
from extender.analysis.topology import KIND_CLUSTER, LiveTopology

from .report_builders import BALANCED, PILED, Gi, make_inventory, make_node, report_of


# --- SPOF, loss, survivors --------------------------------------------------------------------------

def test_balanced_placement_has_no_spof_and_two_survivors() -> None:
    s = report_of(make_inventory(BALANCED)).summary
    assert (s.spof, s.down, s.worst_loss, s.surviving_copies) == (0, 0, 0.0, 2)
    assert (s.quorum_unsafe, s.diversity_min, s.diversity_mean) == (0, 1.0, 1.0)
    # one master per zone; at the node level three nodes hold one and six none
    assert s.master_skew == 1 and report_of(make_inventory(BALANCED)).level("zone").master_skew == 0


def test_shard_with_all_copies_in_one_zone_is_a_zone_spof_but_not_a_node_spof() -> None:
    r = report_of(make_inventory({**BALANCED, "3": ["M@a1", "R@a2"]}))
    assert r.level("node").spof == 0
    assert r.level("zone").spof == 1 and r.level("zone").spof_shards == ["ns/c|3"]
    assert r.summary.spof == 1
    assert r.risks["ns/c|3"][0] == "single zone"


def test_worst_loss_counts_shards_without_copy_after_one_domain_and_is_shard_weighted_without_slots() -> None:
    inv = make_inventory({"0": ["M@a1", "R@a2"], "1": ["M@a3", "R@b1"], "2": ["M@b2", "R@c1"],
                          "3": ["M@c2", "R@c3"]})
    zone = report_of(inv).level("zone")
    assert zone.worst_loss.share == pytest.approx(0.25)  # za loses shard 0; zc loses shard 3: tie -> za
    assert zone.worst_loss.domain == "za"


def test_worst_loss_is_slot_weighted_when_live_slots_are_known() -> None:
    spec = {"0": ["M@a1", "R@a2"], "1": ["M@b1", "R@c1"], "2": ["M@c2", "R@c3"]}
    inv = make_inventory(spec, slots={"0": 1000, "1": 5000, "2": 10384})
    zone = report_of(inv).level("zone")
    assert zone.worst_loss.share == pytest.approx(10384 / 16384)
    assert zone.worst_loss.domain == "zc"


def test_surviving_copies_is_fewest_left_after_the_domain_holding_most() -> None:
    inv = make_inventory({"0": ["M@a1", "R@a2", "R@b1"], "1": ["M@a3", "R@b2", "R@c1"]})
    zone = report_of(inv).level("zone")
    assert dict(zone.clusters[0].surviving) == {"0": 1, "1": 2}
    assert zone.surviving_copies == 1


def test_failed_copies_do_not_count_as_healthy_and_a_shard_without_healthy_copy_is_down() -> None:
    inv = make_inventory({"0": ["M@a1", "R@b1"], "1": ["M@a2", "R@b2"]},
                         health={"c-0-1": "failed", "c-1-0": "failed", "c-1-1": "failed"})
    r = report_of(inv)
    zone = r.level("zone")
    assert zone.clusters[0].spof == ("0", "1")
    assert zone.clusters[0].down == ("1",)
    assert r.summary.down == 1
    assert zone.worst_loss.share == pytest.approx(1.0)  # shard 0 in za + shard 1 already down
    assert r.risks["ns/c|1"] == ("no healthy copy",)


def test_copies_on_notready_nodes_are_not_healthy() -> None:
    nodes = {"a1": make_node("a1"), "b1": make_node("b1", ready=False)}
    r = report_of(make_inventory({"0": ["M@a1", "R@b1"]}, nodes=nodes))
    assert r.level("zone").spof == 1


# --- masters: write disruption, quorum, skew --------------------------------------------------------

def test_write_disruption_is_the_largest_share_of_masters_in_one_domain() -> None:
    r = report_of(make_inventory(PILED))
    assert r.level("zone").write_disruption.share == pytest.approx(2 / 3)
    assert r.level("zone").write_disruption.domain == "za"
    assert r.level("node").write_disruption.share == pytest.approx(1 / 3)


def test_write_disruption_is_slot_weighted() -> None:
    r = report_of(make_inventory(PILED, slots={"0": 2000, "1": 4000, "2": 10384}))
    assert r.level("zone").write_disruption.share == pytest.approx(10384 / 16384)
    assert r.level("zone").write_disruption.domain == "zc"


def test_live_roles_override_cached_roles() -> None:
    cl = report_of(make_inventory(PILED)).level("zone").clusters[0]
    assert dict(cl.masters_per_domain) == {"za": 2, "zb": 0, "zc": 1}
    cached_only = report_of(make_inventory(PILED, live=False)).level("zone").clusters[0]
    assert dict(cached_only.masters_per_domain) == {"za": 1, "zb": 1, "zc": 1}


def test_two_of_three_masters_in_one_zone_is_quorum_unsafe() -> None:
    r = report_of(make_inventory(PILED))
    cl = r.level("zone").clusters[0]
    assert (cl.masters, cl.quorum_limit, cl.quorum_safe) == (3, 2, False)
    assert r.level("zone").quorum_unsafe == ["ns/c"]
    assert r.level("node").quorum_unsafe == []
    assert r.summary.quorum_unsafe == 1


@pytest.mark.parametrize("masters_in_a,safe", [(1, True), (2, True), (3, False)], ids=["1of5", "2of5", "3of5"])
def test_quorum_limit_is_ceil_half_of_masters(masters_in_a: int, safe: bool) -> None:
    homes = ["a"] * masters_in_a + ["b", "c", "b", "c"][:5 - masters_in_a]
    spec = {str(i): [f"M@{z}{i}", f"R@{'b' if z != 'b' else 'c'}{i + 5}"] for i, z in enumerate(homes)}
    cl = report_of(make_inventory(spec)).level("zone").clusters[0]
    assert cl.quorum_limit == 3 and cl.quorum_safe is safe


def test_quorum_does_not_apply_to_sentinel_or_single_shard_deployments_of_unknown_kind() -> None:
    sentinel = report_of(make_inventory({"0": ["M@a1", "R@b1"]}, live="sentinel")).level("zone").clusters[0]
    assert sentinel.quorum_safe is None and sentinel.quorum_limit is None
    unknown = report_of(make_inventory({"0": ["M@a1", "R@b1"]}, live=False)).level("zone").clusters[0]
    assert unknown.quorum_safe is None
    cached_two_shards = report_of(make_inventory({"0": ["M@a1", "R@b1"], "1": ["M@a2", "R@b2"]}, live=False))
    assert cached_two_shards.level("zone").clusters[0].quorum_safe is False  # 2 masters: limit 1


def test_master_skew_is_max_minus_min_over_domains_holding_the_cluster() -> None:
    r = report_of(make_inventory(PILED))
    assert r.level("zone").master_skew == 2
    assert r.level("node").master_skew == 1
    # a zone holding no copy of the cluster does not count as "0 masters"
    r2 = report_of(make_inventory({"0": ["M@a1", "R@b1"], "1": ["M@b2", "R@a2"]}, extra_nodes=["c9"]))
    assert r2.level("zone").master_skew == 0


def test_crowded_domain_marks_its_masters_risky() -> None:
    r = report_of(make_inventory(PILED))
    assert r.level("zone").clusters[0].crowded == ("za",)
    assert r.risks == {"ns/c|0": ("master in crowded zone za",), "ns/c|1": ("master in crowded zone za",)}


def test_masters_in_unknown_domain_count_for_quorum_but_not_skew() -> None:
    nodes = {"a1": make_node("a1"), "x1": make_node("x1", zone=None), "x2": make_node("x2", zone=None),
             "b1": make_node("b1"), "b2": make_node("b2"), "a2": make_node("a2")}
    spec = {"0": ["M@x1", "R@a1"], "1": ["M@x2", "R@b1"], "2": ["M@a2", "R@b2"]}
    cl = report_of(make_inventory(spec, nodes=nodes)).level("zone").clusters[0]
    assert dict(cl.masters_per_domain) == {UNKNOWN_DOMAIN: 2, "za": 1, "zb": 0}
    assert cl.master_skew == 1
    assert cl.quorum_safe is False


# --- diversity -----------------------------------------------------------------------------------------

def test_diversity_is_distinct_domains_over_min_of_copies_and_domains() -> None:
    spec = {"0": ["M@a1", "R@a2", "R@b1"],  # 2 zones of min(3, 3): 2/3
            "1": ["M@a3", "R@b2"],  # 2 of min(2, 3): 1
            "2": ["M@c1", "R@c2", "R@c3", "R@a4"]}  # 2 of min(4, 3): 2/3
    zone = report_of(make_inventory(spec)).level("zone")
    assert dict(zone.clusters[0].diversity) == pytest.approx({"0": 2 / 3, "1": 1.0, "2": 2 / 3})
    assert zone.diversity_min == pytest.approx(2 / 3)
    assert zone.diversity_mean == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)


def test_unknown_domains_are_one_domain() -> None:
    nodes = {n: make_node(n, zone=None) for n in ("x1", "x2")} | {"a1": make_node("a1"), "b1": make_node("b1")}
    r = report_of(make_inventory({"0": ["M@x1", "R@x2"], "1": ["M@a1", "R@b1"]}, nodes=nodes))
    zone = r.level("zone")
    assert zone.clusters[0].spof == ("0",)
    assert zone.unknown_nodes == 2 and zone.unknown_copies == 2
    assert r.summary.unknown_domain_copies == 2
    assert "copy in unknown zone" in r.risks["ns/c|0"]


# --- resources ---------------------------------------------------------------------------------------

def test_failure_headroom_compares_the_worst_domain_with_free_memory_elsewhere() -> None:
    nodes = {n: make_node(n, memory=10 * Gi) for n in ("a1", "a2", "b1", "c1")}
    requested = {"a1": 8 * Gi, "a2": 6 * Gi, "b1": 2 * Gi, "c1": 1 * Gi}
    inv = make_inventory({"0": ["M@a1", "R@b1", "R@c1"]}, nodes=nodes, requested=requested)
    zone = report_of(inv).level("zone")
    # za fails: 14Gi must move; free in zb + zc = 8 + 9 = 17Gi -> margin +3Gi (the worst domain)
    h = zone.headroom
    assert (h.domain, h.failed_memory, h.rest_free_memory) == ("za", 14 * Gi, 17 * Gi)
    assert zone.headroom.absorbable
    node = report_of(inv).level("node")
    assert node.headroom.domain == "a1" and node.headroom.margin == (2 + 4 + 8 + 9) * Gi - 8 * Gi - 2 * Gi


def test_failure_headroom_short_when_the_rest_cannot_absorb() -> None:
    nodes = {n: make_node(n, memory=10 * Gi) for n in ("a1", "b1", "c1")}
    inv = make_inventory({"0": ["M@a1", "R@b1", "R@c1"]}, nodes=nodes,
                         requested={"a1": 9 * Gi, "b1": 6 * Gi, "c1": 6 * Gi})
    r = report_of(inv)
    assert not r.level("zone").headroom.absorbable
    assert r.level("zone").headroom.margin == 8 * Gi - 9 * Gi
    assert r.summary.headroom_short == 2  # node and zone levels


def test_notready_nodes_offer_no_free_memory() -> None:
    nodes = {"a1": make_node("a1", memory=10 * Gi), "b1": make_node("b1", memory=10 * Gi, ready=False)}
    inv = make_inventory({"0": ["M@a1"]}, nodes=nodes, requested={"a1": 1 * Gi, "b1": 0})
    zone = next(lv for lv in place(inv).levels if lv.name == "zone")
    headroom = failure_headroom(inv, zone)
    assert (headroom.domain, headroom.failed_memory, headroom.rest_free_memory) == ("za", 1 * Gi, 0)
    assert not headroom.absorbable


def test_overcommitted_nodes_and_maxmemory_issues() -> None:
    nodes = {"a1": make_node("a1", memory=4 * Gi), "b1": make_node("b1", memory=4 * Gi)}
    inv = make_inventory({"0": ["M@a1", "R@b1"]}, nodes=nodes, requested={"a1": 5 * Gi, "b1": 1 * Gi},
                         maxmemory=0, pod_memory=1 * Gi)
    r = report_of(inv)
    assert [f.node for f in r.overcommitted] == ["a1"]
    assert r.max_utilization == pytest.approx(1.25)
    assert [(m.pod, m.reason) for m in r.maxmemory] == [("ns/c-0-0", "maxmemory 0: unbounded"),
                                                        ("ns/c-0-1", "maxmemory 0: unbounded")]
    above = report_of(make_inventory({"0": ["M@a1"]}, maxmemory=2 * Gi, pod_memory=1 * Gi))
    assert above.maxmemory[0].reason == "maxmemory above the memory request"
    fine = report_of(make_inventory({"0": ["M@a1"]}, maxmemory=Gi // 2, pod_memory=1 * Gi))
    assert fine.maxmemory == () and fine.summary.maxmemory_issues == 0


# --- hygiene ----------------------------------------------------------------------------------------

def test_cache_and_live_ages() -> None:
    r = report_of(make_inventory(BALANCED, loaded_at=900.0, fetched_at=970.0, read_at=1000.0))
    assert r.hygiene.cache_age == 100.0
    assert dict(r.hygiene.live_age) == {"ns/c": 30.0}
    assert (r.summary.cache_age, r.summary.live_age, r.summary.live_missing) == (100.0, 30.0, 0)
    none = report_of(make_inventory(BALANCED, live=False, loaded_at=None))
    assert (none.summary.cache_age, none.summary.live_age, none.summary.live_missing) == (None, None, 1)


def test_live_roles_differing_from_cache_are_mismatches() -> None:
    r = report_of(make_inventory(PILED))
    assert [(m.pod, m.kind, m.cached, m.live) for m in r.hygiene.mismatches] == [
        ("ns/c-1-0", "role", "replica", "master"), ("ns/c-1-1", "role", "master", "replica")]
    assert r.summary.live_mismatch == 2


def test_pods_missing_from_live_and_unmapped_live_nodes_are_mismatches() -> None:
    r = report_of(make_inventory(BALANCED, drop_live=["ns/c-2-0"], unmapped=1))
    kinds = sorted((m.kind, m.pod) for m in r.hygiene.mismatches)
    assert kinds == [("not_live", "ns/c-2-0"), ("unmapped", "10.9.9.9:7000")]


def test_replica_following_another_shards_master_is_a_shard_mismatch() -> None:
    inv = make_inventory(BALANCED)
    topo = inv.live["ns/c"]
    moved = tuple(replace(n, master_id="id-ns/c-1-1") if n.pod == "ns/c-0-1" else n for n in topo.nodes)
    inv = replace(inv, live={"ns/c": replace(topo, nodes=moved)})
    r = report_of(inv)
    assert [(m.pod, m.kind, m.cached, m.live) for m in r.hygiene.mismatches] == [("ns/c-0-1", "shard", "0", "1")]


def test_copies_on_nodes_missing_from_the_state_have_unknown_domains() -> None:
    nodes = {"a1": make_node("a1"), "b1": make_node("b1")}
    r = report_of(make_inventory({"0": ["M@a1", "R@b1", "R@ghost"]}, nodes=nodes))
    assert r.hygiene.copies_on_unknown_nodes == ("ns/c-0-2",)
    assert r.hygiene.unknown_domain_copies["zone"] == 1
    assert r.hygiene.unknown_domain_copies["node"] == 0  # the node level knows every node's name


def test_failed_live_fetch_is_reported_and_ignored() -> None:
    inv = make_inventory(BALANCED, live=False)
    failed = LiveTopology("ns/c", KIND_CLUSTER, 990.0, "x:1", (), "", "ConnectionError: refused")
    inv = replace(inv, live={"ns/c": failed})
    r = report_of(inv)
    assert dict(r.hygiene.live_errors) == {"ns/c": "ConnectionError: refused"}
    assert r.placement.clusters[0].live is None


# --- several clusters ---------------------------------------------------------------------------------

def test_summary_is_the_worst_over_clusters_and_active_levels() -> None:
    spec = {**BALANCED, "ns/d|0": ["M@a1", "R@a2"], "ns/d|1": ["M@b1", "R@c1"]}
    r = report_of(make_inventory(spec))
    assert [c.id for c in r.placement.clusters] == ["ns/c", "ns/d"]
    assert r.summary.clusters == 2 and r.summary.shards == 5 and r.summary.copies == 13
    assert r.summary.spof == 1 and r.level("zone").spof_shards == ["ns/d|0"]
    assert r.summary.worst_loss == 0.5  # half of ns/d is in za only
    assert r.level("zone").worst_loss.cluster == "ns/d"


def test_pure_modules_import_neither_redis_nor_flask() -> None:
    code = ("import sys; import extender.analysis.topology, extender.analysis.placement, "
            "extender.analysis.measures, extender.analysis.advice, extender.reports.render, "
            "extender.reports.html; bad = [m for m in ('redis', 'flask') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
