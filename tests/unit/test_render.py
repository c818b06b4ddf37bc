"""The report's pure outputs (reports/render.py): --fail-on parsing, breaches, the JSON document
and the terminal table."""
from __future__ import annotations

import pytest

from extender.reports import render
from extender.analysis.advice import plan_all

from .report_builders import PILED, make_inventory, report_of


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


def test_the_page_shows_the_keepers_state() -> None:
    from extender.analysis.keeping import ACT, KeeperPolicy, Memory, decide
    from extender.analysis.placement import place
    from extender.reports.html import page

    inv = make_inventory(PILED, slots={"0": 5462, "1": 5461, "2": 5461})
    report = report_of(inv)
    doc = render.document(report, plan_all(report.placement))
    assert "Keeper" not in page(doc)  # no keeper state stored: no section
    placement = place(inv)
    d = decide(placement, placement.clusters[0], Memory(drift_since=900.0), 1000.0, KeeperPolicy(mode=ACT))
    last = {"kind": "failover", "outcome": "done", "at": 990.0}
    doc["keeper"] = {"ns/c": {"memory": {**d.memory.to_json(), "last": last}, "decision": d.to_json(), "at": 1000.0}}
    html = page(doc)
    assert "<h3>Keeper</h3>" in html and 'data-keeper="ns/c"' in html
    assert "failover: masters per zone" in html and "next: ns/c-1-1" in html and "last: failover done" in html
