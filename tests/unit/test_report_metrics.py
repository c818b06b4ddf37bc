"""Every placement metric on small hand-made placements with known answers (reports/metrics.py),
plus the pure edges around it: --fail-on parsing, the JSON document, live topology parsing.

Placements are written as tokens "<cached role>[<live role>]@<node>": "M@a1" is a master on
node a1, "RM@b2" a replica by the cache that live Redis reports as master. A node's first
letter is its zone ("a1" is in zone za); every node is in region r1.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from typing import Any, Mapping, Sequence

import pytest

from extender.model import Copy, Node, Role
from extender.reports import render
from extender.reports.metrics import (KIND_CLUSTER, KIND_SENTINEL, UNKNOWN_DOMAIN, Inventory, LiveNode,
                                      LiveTopology, Report, compute, failure_headroom, place, report_levels)
from extender.reports.topology import map_pods, parse_cluster_nodes, parse_cluster_shards

LEVELS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region")
Gi = 2**30
CLUSTER = "ns/c"
_ROLE = {"M": Role.MASTER, "R": Role.REPLICA, "?": Role.UNKNOWN}


def make_node(name: str, *, zone: str | None | bool = True, memory: int | None = 16 * Gi,
              ready: bool = True) -> Node:
    z = f"z{name[0]}" if zone is True else (zone or None)
    return Node(name=name, domains=(name, z, "r1"), allocatable_memory=memory, allocatable_cpu=8000, ready=ready)


def pod_name(cluster: str, shard: str, i: int) -> str:
    ns, name = cluster.split("/")
    return f"{ns}/{name}-{shard}-{i}"


def make_inventory(spec: Mapping[str, Sequence[str]], *, live: bool | str = True,
                   nodes: Mapping[str, Node] | None = None, extra_nodes: Sequence[str] = (),
                   slots: Mapping[str, int] | None = None, lag: Mapping[str, int] | None = None,
                   link: Mapping[str, bool] | None = None, health: Mapping[str, str] | None = None,
                   maxmemory: int | None = None, pod_memory: int = 0,
                   requested: Mapping[str, int] | None = None, loaded_at: float | None = 900.0,
                   fetched_at: float = 990.0, read_at: float = 1000.0, unmapped: int = 0,
                   drop_live: Sequence[str] = ()) -> Inventory:
    """Build an inventory from tokens. Keys are shard ids of CLUSTER, or "ns/x|shard".

    live=True: a live Redis Cluster with the live roles of the tokens, every replica linked
    and in sync (lag 0), slot counts from `slots`; live="sentinel" for a Sentinel; False none.
    `lag`, `link`, `health` override per pod (short names "c-0-1" or "ns/c-0-1").
    """
    shards: dict[str, dict[str, tuple[Copy, ...]]] = {}
    live_nodes: dict[str, list[LiveNode]] = {}
    table = dict(nodes or {})
    lags, links, healths = _qualify(lag), _qualify(link), _qualify(health)
    for key, tokens in spec.items():
        cluster, _, shard = key.rpartition("|")
        cluster = cluster or CLUSTER
        copies, members = [], []
        for i, token in enumerate(tokens):
            roles, _, node = token.partition("@")
            cached, current = _ROLE[roles[0]], _ROLE[roles[-1]]
            pod = pod_name(cluster, shard, i)
            copies.append(Copy(pod=pod, node=node, role=cached))
            if nodes is None:
                table.setdefault(node, make_node(node))
            members.append((pod, current))
        shards.setdefault(cluster, {})[shard] = tuple(copies)
        master = next((p for p, r in members if r is Role.MASTER), None)
        for pod, role in members:
            if pod in drop_live:
                continue
            is_master = role is Role.MASTER
            span = (slots or {}).get(shard)
            live_nodes.setdefault(cluster, []).append(LiveNode(
                node_id=f"id-{pod}", ip="10.0.0.1", port=6379, role="master" if is_master else "replica",
                health=str(healths.get(pod, "online")), hostname=pod.split("/")[1],
                master_id="" if is_master or master is None else f"id-{master}",
                offset=1000 - int(lags.get(pod, 0)), link_up=None if is_master else bool(links.get(pod, True)),
                slots=((0, span - 1),) if is_master and span else (), pod=pod, maxmemory=maxmemory))
    for name in extra_nodes:
        table.setdefault(name, make_node(name))
    topologies = {}
    if live:
        kind = KIND_SENTINEL if live == "sentinel" else KIND_CLUSTER
        for cluster, members_ in live_nodes.items():
            extra = tuple(LiveNode(f"stray-{k}", "10.9.9.9", 7000 + k, "master") for k in range(unmapped))
            topologies[cluster] = LiveTopology(cluster, kind, fetched_at, "10.0.0.1:6379", tuple(members_) + extra)
    memory = {c.pod: pod_memory for s in shards.values() for cs in s.values() for c in cs}
    return Inventory(levels=LEVELS, nodes=table, shards=shards,
                     requested_memory=dict(requested if requested is not None else {n: Gi for n in table}),
                     pod_memory=memory, live=topologies, loaded_at=loaded_at, read_at=read_at)


def _qualify(values: Mapping[str, Any] | None) -> dict[str, Any]:
    return {(k if "/" in k else f"ns/{k}"): v for k, v in (values or {}).items()}


def report_of(inv: Inventory, max_lag: int = 1 << 20) -> Report:
    return compute(place(inv, max_lag))


BALANCED = {"0": ["M@a1", "R@b1", "R@c1"], "1": ["R@a2", "M@b2", "R@c2"], "2": ["R@a3", "R@b3", "M@c3"]}
PILED = {"0": ["M@a1", "R@b1", "R@c1"], "1": ["RM@a2", "MR@b2", "R@c2"], "2": ["R@a3", "R@b3", "M@c3"]}


# --- levels ---------------------------------------------------------------------------------------

def test_levels_are_node_then_configured_levels_and_single_domain_levels_are_inactive() -> None:
    r = report_of(make_inventory(BALANCED))
    assert [(lv.name, len(lv.domains), lv.active) for lv in r.placement.levels] == \
        [("node", 9, True), ("zone", 3, True), ("region", 1, False)]
    assert r.placement.top_level == 1
    assert r.placement.active_levels == (0, 1)


def test_node_level_is_used_alone_when_no_level_has_two_domains() -> None:
    r = report_of(make_inventory({"0": ["M@a1", "R@a1"]}))
    assert r.placement.top_level is None
    assert r.placement.active_levels == (0,)
    assert r.summary.spof == 1


def test_hostname_level_is_not_repeated() -> None:
    nodes = {"a1": make_node("a1")}
    levels = report_levels(LEVELS, nodes)
    assert [lv.name for lv in levels] == ["node", "zone", "region"]


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


# --- render: --fail-on and the document --------------------------------------------------------------

def test_fail_on_parses_and_reports_every_problem_at_once() -> None:
    assert render.parse_fail_on("spof=0, master_skew=1,quorum-unsafe=0") == \
        {"spof": 0.0, "master_skew": 1.0, "quorum_unsafe": 0.0}
    with pytest.raises(ValueError) as err:
        render.parse_fail_on("spof,bogus=1,master_skew=x")
    assert "'spof': expected KEY=NUMBER" in str(err.value)
    assert "'bogus': unknown" in str(err.value) and "is not a number" in str(err.value)


def test_breaches_respect_direction_and_unknown_values_fail() -> None:
    summary = {"spof": 0, "master_skew": 2, "surviving_copies": 1, "cache_age": None}
    limits = {"spof": 0, "master_skew": 1, "surviving_copies": 2, "cache_age": 60}
    out = render.breaches(summary, limits)
    assert [line.split(" ")[0] for line in out] == ["master_skew=2", "surviving_copies=1", "cache_age"]


def test_document_has_the_documented_top_level_keys_and_breaches() -> None:
    report = report_of(make_inventory(PILED))
    from extender.reports.advice import plan_all
    doc = render.document(report, plan_all(report.placement), render.parse_fail_on("master_skew=1,spof=0"))
    assert set(doc) == {"schema", "generated_at", "top_level", "levels", "summary", "per_level", "clusters",
                        "resources", "hygiene", "advice", "breaches"}
    assert doc["schema"] == "redis-extender.report/v1" and doc["top_level"] == "zone"
    assert doc["summary"]["advice_steps"] == 1 and doc["summary"]["risky_shards"] == 2
    assert doc["breaches"] == ["master_skew=2 > 1 (max - min masters per domain)"]
    assert doc["clusters"][0]["levels"]["zone"]["masters_per_domain"] == {"za": 2, "zb": 0, "zc": 1}
    copy = doc["clusters"][0]["shard_list"][1]["copies"][0]
    assert copy == {"pod": "ns/c-1-0", "node": "a2", "domains": {"node": "a2", "zone": "za", "region": "r1"},
                    "role": "master", "cached_role": "replica", "live_role": "master", "healthy": True,
                    "link_up": None, "lag": None}
    text = render.table(doc)
    assert "QUORUM UNSAFE (limit 2)" in text and "CLUSTER FAILOVER on ns/c-1-1" in text
    assert text.rstrip().endswith("FAIL: master_skew=2 > 1 (max - min masters per domain)")


# --- live topology parsing (pure parts of reports/topology.py) -----------------------------------------

NODES_TEXT = """\
07c3 10.0.0.1:6379@16379,cache-0 myself,master - 0 0 1 connected 0-5460
e1a2 10.0.0.2:6379@16379,cache-1 slave 07c3 0 1 1 connected
9f00 10.0.0.3:6379@16379 master,fail - 0 1 2 disconnected 5461-10922 [5462->-e1a2]
"""


def test_cluster_nodes_parsing() -> None:
    nodes = parse_cluster_nodes(NODES_TEXT)
    assert [(n.node_id, n.role, n.health, n.hostname, n.master_id, n.slots) for n in nodes] == [
        ("07c3", "master", "online", "cache-0", "", ((0, 5460),)),
        ("e1a2", "replica", "online", "cache-1", "07c3", ()),
        ("9f00", "master", "failed", "", "", ((5461, 10922),))]


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2-flat-lists", "resp3-maps"])
def test_cluster_shards_parsing(resp3: bool) -> None:
    master = {"id": "m1", "port": 7000, "ip": "10.0.0.1", "endpoint": "10.0.0.1", "hostname": "cache-0",
              "role": "master", "replication-offset": 420, "health": "online"}
    replica = {**master, "id": "r1", "hostname": "cache-3", "role": "replica", "replication-offset": 400,
               "health": "loading"}
    shard = {"slots": [0, 100, 200, 300], "nodes": [master, replica]}

    def flat(d: dict) -> list:
        return [x for k, v in d.items() for x in (k, v)]
    reply = [shard] if resp3 else [["slots", shard["slots"], "nodes", [flat(master), flat(replica)]]]
    nodes = parse_cluster_shards(reply)
    assert [(n.node_id, n.role, n.master_id, n.offset, n.health, n.slots, n.slot_count) for n in nodes] == [
        ("m1", "master", "", 420, "online", ((0, 100), (200, 300)), 202),
        ("r1", "replica", "m1", 400, "loading", (), 0)]


def test_pods_map_by_hostname_then_ip_port_then_ip() -> None:
    nodes = [LiveNode("a", "10.0.0.1", 6379, "master", hostname="cache-0.cache-headless.ns.svc"),
             LiveNode("b", "10.0.0.2", 6379, "replica"), LiveNode("c", "10.0.0.3", 6380, "replica"),
             LiveNode("d", "10.0.0.4", 6379, "replica")]
    mapped = map_pods(nodes, "ns/cache", {"10.0.0.2": "cache-1", "10.0.0.3:6380": "other/cache-2"})
    assert [n.pod for n in mapped] == ["ns/cache-0", "ns/cache-1", "other/cache-2", ""]


def test_live_topology_round_trips_through_json() -> None:
    topo = make_inventory(PILED, slots={"0": 5, "1": 5, "2": 5}).live["ns/c"]
    assert LiveTopology.from_json(topo.to_json()) == topo


def test_pure_modules_import_neither_redis_nor_flask() -> None:
    code = ("import sys; import extender.reports.metrics, extender.reports.advice, extender.reports.render, "
            "extender.reports.html; bad = [m for m in ('redis', 'flask') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
