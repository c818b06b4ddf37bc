"""The placement view (analysis/placement.py): report levels, active levels, the top level.

Inventories are built from tokens (tests/unit/report_builders.py).
"""
from __future__ import annotations

from extender.analysis.placement import report_levels

from .report_builders import BALANCED, LEVELS, make_inventory, make_node, report_of


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
