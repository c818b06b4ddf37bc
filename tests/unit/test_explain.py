"""policy/explain.py: every candidate's verdict, reason, terms and score agree with filter and score."""
from __future__ import annotations

import pytest

from extender.core.model import Role
from extender.policy.explain import ACCEPTED, FAILED, UNRESOLVABLE, explain, render_table
from extender.policy.filter import filter_nodes
from extender.policy.score import score_list, score_terms

from .builders import Gi, make_copy, make_node, make_pod, make_settings, make_snapshot

NODES = [make_node("a1", "zone-a", "r"), make_node("a2", "zone-a", "r"), make_node("b1", "zone-b", "r"),
         make_node("b2", "zone-b", "r", memory=2 * Gi), make_node("c1", "zone-c", "r"), make_node("c2", "zone-c", "r")]
NAMES = [n.name for n in NODES]


def world():
    return make_snapshot(NODES, [make_copy("cache-a-0", "a1", Role.MASTER)],
                         pods_per_node={"a1": 1, "c1": 2}, masters_per_node={"a1": 1},
                         requested_memory={"b2": 2 * Gi - 1, "c2": 8 * Gi})


@pytest.mark.parametrize("role", [Role.REPLICA, Role.MASTER])
def test_explain_agrees_with_filter_and_prioritize(role):
    pod, snapshot, settings = make_pod(role=role, memory=Gi), world(), make_settings()
    out = explain(pod, NAMES, snapshot, settings)
    verdict = filter_nodes(pod, NAMES, snapshot)
    scores = dict(zip(verdict.accepted, score_list(pod, verdict.accepted, snapshot, settings)))
    by_node = {n.node: n for n in out.nodes}
    assert set(by_node) == set(NAMES)
    for name in NAMES:
        n = by_node[name]
        if name in verdict.accepted:
            assert (n.verdict, n.score, n.reason) == (ACCEPTED, scores[name], "")
        elif name in verdict.unresolvable:
            assert (n.verdict, n.reason, n.score) == (UNRESOLVABLE, verdict.unresolvable[name], None)
        else:
            assert (n.verdict, n.reason, n.score) == (FAILED, verdict.failed[name], None)
    assert by_node["b2"].verdict == FAILED and "headroom" in by_node["b2"].reason
    assert by_node["a2"].verdict == UNRESOLVABLE


def test_terms_sum_to_the_raw_score_and_name_their_level():
    pod, snapshot, settings = make_pod(role=Role.MASTER), world(), make_settings()
    accepted = filter_nodes(pod, NAMES, snapshot).accepted
    terms = score_terms(pod, accepted, snapshot, settings)
    out = {n.node: n for n in explain(pod, NAMES, snapshot, settings).nodes}
    labels = set(out[accepted[0]].terms)
    assert "headroom" in labels and any(label.startswith("master balance (") for label in labels)
    for i, name in enumerate(accepted):
        assert sum(out[name].terms.values()) == pytest.approx(terms.raw[i], abs=1e-3)


def test_nodes_are_listed_best_first_then_rejected():
    out = explain(make_pod(), NAMES, world(), make_settings())
    scores = [n.score for n in out.nodes if n.score is not None]
    assert scores == sorted(scores, reverse=True)
    assert all(n.score is None for n in out.nodes[len(scores):])


def test_non_redis_pod_passes_through_with_neutral_scores():
    out = explain(make_pod(cluster=None), NAMES, world(), make_settings())
    assert out.outcome == "passthrough" and out.member == ""
    assert {n.verdict for n in out.nodes} == {ACCEPTED} and {n.score for n in out.nodes} == {0}


def test_table_has_one_line_per_node_with_reasons():
    out = explain(make_pod(), NAMES, world(), make_settings())
    text = render_table(out)
    lines = text.splitlines()
    assert len(lines) == 2 + len(NAMES) and "VERDICT" in lines[1]
    assert any("already holds shard 3" in line for line in lines)
    assert out.to_json()["nodes"][0]["verdict"] == ACCEPTED
