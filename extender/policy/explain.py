"""Why this node? Every candidate with its filter verdict, the reason, each score term and
the final score, exactly as filter and prioritize would answer for the same pod and state.

The filter runs over every candidate; prioritize, as kube-scheduler calls it, over the nodes
the filter accepted only, so rejected nodes have no score. Pure: the decider hands in the
snapshot it reads for the verbs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from extender.core.domains import level_title
from extender.core.model import PodRequest, Snapshot
from extender.core.settings import Settings
from extender.policy.candidates import Tables
from extender.policy.filter import Outcome, filter_nodes
from extender.policy.score import score_terms

ACCEPTED, FAILED, UNRESOLVABLE = "accepted", "failed", "unresolvable"


@dataclass
class NodeExplanation:
    node: str
    verdict: str  # accepted | failed (preemption may help) | unresolvable
    reason: str = ""
    terms: dict[str, float] = field(default_factory=dict)  # "<term> (<level>)" -> weight x value
    score: int | None = None  # None when rejected (prioritize never sees the node)


@dataclass
class Explanation:
    pod: str
    member: str  # "cluster shard role", or "" for a pod that is not a Redis pod
    outcome: str
    nodes: list[NodeExplanation]

    def to_json(self) -> dict[str, Any]:
        return {"pod": self.pod, "member": self.member, "outcome": self.outcome,
                "nodes": [{"node": n.node, "verdict": n.verdict, "reason": n.reason, "terms": n.terms,
                           "score": n.score} for n in self.nodes]}


def term_label(name: str, level: str) -> str:
    """"shard spread (zone)": the term and the level it counts at, by its short title."""
    return f"{name} ({level_title(level)})" if level else name


def explain(pod: PodRequest, candidates: list[str], snapshot: Snapshot, settings: Settings,
            own_node: str | None = None, tables: Tables | None = None) -> Explanation:
    verdict = filter_nodes(pod, candidates, snapshot, own_node, tables)
    accepted = verdict.accepted
    scored = score_terms(pod, accepted, snapshot, settings, own_node)  # a subset: no shared rows
    position = {name: i for i, name in enumerate(accepted)}
    nodes = []
    for name in candidates:
        if name in position:
            i = position[name]
            terms = {term_label(t.name, t.level): round(float(t.weight * t.values[i]), 4) for t in scored.terms}
            nodes.append(NodeExplanation(name, ACCEPTED, terms=terms, score=scored.scores[i]))
        elif name in verdict.unresolvable:
            nodes.append(NodeExplanation(name, UNRESOLVABLE, verdict.unresolvable[name]))
        else:
            nodes.append(NodeExplanation(name, FAILED, verdict.failed.get(name, "")))
    nodes.sort(key=lambda n: (n.score is None, -(n.score or 0), n.verdict, n.node))
    member = ""
    if pod.member is not None:
        member = f"{pod.member.cluster} shard {pod.member.shard or '?'} {pod.member.role.value}"
    outcome = verdict.outcome.value if verdict.outcome is not Outcome.PASSTHROUGH else "passthrough"
    return Explanation(pod.key, member, outcome, nodes)


def render_table(explanation: Explanation) -> str:
    """A plain-text table: one line per node, best first; reasons in full."""
    term_names: list[str] = []
    for n in explanation.nodes:
        for t in n.terms:
            if t not in term_names:
                term_names.append(t)
    head = [f"pod {explanation.pod}: {explanation.member or 'not a Redis pod (passes through)'}; "
            f"filter outcome {explanation.outcome}"]
    columns = ["NODE", "VERDICT", "SCORE", *term_names, "REASON"]
    rows = [[n.node, n.verdict, "" if n.score is None else str(n.score),
             *[f"{n.terms[t]:.3f}" if t in n.terms else "" for t in term_names], n.reason]
            for n in explanation.nodes]
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns) - 1)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in [columns, *rows]]
    return "\n".join(head + [line.rstrip() for line in lines])
