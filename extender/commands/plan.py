"""Placing pending Redis pods as kube-scheduler would call the extender, in process.

One engine for `redis-extender run` (the simulated cluster's pending pods, placed before the
user's eyes) and `redis-extender plan FILE` (a `kubectl get nodes,pods -A -o json` dump):

- the queue: pending Redis pods (no nodeName, not finished, not deleting) in kube-scheduler's
  queue order, higher spec.priority first, then older creationTimestamp, then dump order;
- each pod: filter over the schedulable nodes -> prioritize over the accepted ones (skipped
  when one is accepted, as kube-scheduler skips it) -> bind on the best-scored node (the
  first of equal best scores, the node prioritize reserves) -> the next pod sees it.

The calls go through the Decider (engine/decider.py), the code path of the HTTP verbs, so
a choice here is the extender's answer over HTTP for the same state. What it does not replay:
kube-scheduler's own plugins (taints, affinity, its resource fit and scores, which it adds
to the extender's weighted score) and its random choice among equal totals.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, TextIO

from extender.core.identity import Identifier
from extender.protocol import CandidateList, ExtenderArgs, ProtocolError, parse_pod
from extender.engine.decider import Decider
from extender.core.settings import Settings
from extender.state.inventory import read_inventory
from extender.state.loader import split_list
from extender.state.store import RedisStore
from extender.reports.render import compose, document

FINISHED = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Step:
    """Where one pod went, and why."""

    pod: str  # namespace/name
    node: str | None  # None: no node accepted it, or the bind was refused
    score: int | None
    candidates: int
    accepted: int
    why: str
    domains: Mapping[str, str] = field(default_factory=dict)  # level label -> value of the chosen node
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"pod": self.pod, "node": self.node, "score": self.score, "candidates": self.candidates,
                "accepted": self.accepted, "why": self.why, "domains": dict(self.domains), "error": self.error}


@dataclass(frozen=True)
class Outcome:
    steps: tuple[Step, ...]
    before: dict[str, Any]  # render.document() of the state before the first pod
    after: dict[str, Any]  # ... and after the last

    @property
    def placed(self) -> int:
        return sum(1 for s in self.steps if s.node)

    def to_json(self) -> dict[str, Any]:
        return {"schema": "redis-extender.commands.plan/v1", "placed": self.placed, "pending": len(self.steps),
                "steps": [s.to_json() for s in self.steps], "summary": compare(self.before, self.after),
                "before": self.before, "after": self.after}


def queue(pods: Iterable[Mapping[str, Any]], identifier: Identifier) -> list[Mapping[str, Any]]:
    """The pending Redis pods in kube-scheduler's queue order."""
    found = []
    for index, pod in enumerate(pods):
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if spec.get("nodeName") or meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in FINISHED:
            continue
        labels = meta.get("labels") or {}
        if identifier.member(meta.get("namespace") or "default", meta.get("name") or "", labels) is None:
            continue
        given = spec.get("priority")
        priority = given if isinstance(given, int) else 0
        found.append((-priority, str(meta.get("creationTimestamp") or ""), index, pod))
    return [entry[3] for entry in sorted(found, key=lambda e: e[:3])]


def schedulable(nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Node names kube-scheduler would offer (cordoned nodes left out; readiness is the
    extender's filter's to judge, from its state)."""
    return [n["metadata"]["name"] for n in nodes if not (n.get("spec") or {}).get("unschedulable")]


Progress = Callable[[int, int, Step], None]


def place_all(decider: Decider, store: RedisStore, settings: Settings, dump: Any,
              progress: Progress | None = None) -> Outcome:
    """Place the dump's pending Redis pods, one after another, on the state already loaded
    into `store` (state/loader.load_list of the same dump)."""
    nodes, pods = split_list(dump)
    labels = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in nodes}
    names = CandidateList(schedulable(nodes))
    pending = queue(pods, decider.identifier)
    before = read_document(store, settings)
    steps = []
    for i, pod in enumerate(pending):
        step = place_one(decider, pod, names, labels, settings.domains.levels)
        steps.append(step)
        if progress is not None:
            progress(i + 1, len(pending), step)
    return Outcome(tuple(steps), before, read_document(store, settings))


def place_one(decider: Decider, pod: Mapping[str, Any], names: CandidateList,
              labels: Mapping[str, Mapping[str, str]], levels: Sequence[str]) -> Step:
    meta = pod.get("metadata") or {}
    key = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
    try:
        request = parse_pod(pod, decider.identifier)
    except ProtocolError as exc:
        return Step(key, None, None, len(names.names), 0, f"not placed: {exc}", error=str(exc))
    args = ExtenderArgs(pod=request, node_names=names.names, nodes=None, names_mode=True, candidates=names)
    result, error = decider.filter(args)
    refused = {**result.failed, **result.unresolvable}
    if error or not result.accepted:
        why = error or "no node accepted: " + _reasons(refused)
        return Step(key, None, None, len(names.names), 0, why, error=error)
    accepted = list(result.accepted)
    if len(accepted) == 1:  # kube-scheduler skips prioritize; the filter reserved it
        node, score, why = accepted[0], None, "the only node the filter accepted"
    else:
        scores = decider.prioritize(ExtenderArgs(pod=request, node_names=accepted, nodes=None, names_mode=True))
        best = max(range(len(scores)), key=lambda j: (scores[j], -j))  # the first best, as prioritize reserves
        node, score = accepted[best], scores[best]
        ties = sum(1 for s in scores if s == score)
        why = f"score {score}/10, best of {len(accepted)} accepted" + (f" ({ties} tied: first)" if ties > 1 else "")
    if refused:
        why += f"; refused {len(refused)}: " + _reasons(refused)
    error = decider.bind(request.namespace, request.name, request.uid, node, None)
    domains = {lv: labels.get(node, {}).get(lv, "?") for lv in levels if lv != "kubernetes.io/hostname"}
    if error:
        return Step(key, None, score, len(names.names), len(accepted), f"bind refused: {error}", domains, error)
    return Step(key, node, score, len(names.names), len(accepted), why, domains)


def _reasons(refused: Mapping[str, str], shown: int = 2) -> str:
    """The commonest refusal texts (their first clause, node names taken out so that equal
    reasons group), with how many nodes each refused."""
    counts: dict[str, int] = {}
    for node, reason in refused.items():
        text = reason.split(";", 1)[0].replace(node, "node")
        counts[text] = counts.get(text, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:shown]
    more = sum(counts.values()) - sum(n for _, n in top)
    return "; ".join(f"{n} x {text}" for text, n in top) + (f"; {more} for other reasons" if more > 0 else "")


def read_document(store: RedisStore, settings: Settings) -> dict[str, Any]:
    report, plans = compose(read_inventory(store, settings.domains.levels))
    return document(report, plans)


# --- the before/after summary ------------------------------------------------------------------

def compare(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The headline rows, before and after: single-domain shards per active level, worst
    loss, master skew, quorum-unsafe clusters, placed copies."""
    rows = [{"key": "copies", "label": "placed Redis copies",
             "before": before["summary"]["copies"], "after": after["summary"]["copies"]}]
    for lv in after["levels"]:
        if lv["active"]:
            name = lv["name"]
            rows.append({"key": f"spof_{name}", "label": f"single-{name} shards",
                         "before": before["per_level"].get(name, {}).get("spof", 0),
                         "after": after["per_level"][name]["spof"]})
    for key, label in (("worst_loss", "worst loss (one domain)"), ("master_skew", "master skew"),
                       ("quorum_unsafe", "quorum-unsafe clusters"), ("risky_shards", "risky shards")):
        rows.append({"key": key, "label": label, "before": before["summary"][key], "after": after["summary"][key]})
    return rows


def summary_table(rows: Sequence[Mapping[str, Any]]) -> str:
    def cell(key: str, value: Any) -> str:
        return f"{value * 100:.0f}%" if key == "worst_loss" else str(value)

    width = max(len(r["label"]) for r in rows)
    lines = [f"  {'':{width}}  {'before':>7}  {'after':>7}"]
    for r in rows:
        lines.append(f"  {r['label']:{width}}  {cell(r['key'], r['before']):>7}  {cell(r['key'], r['after']):>7}")
    return "\n".join(lines)


def step_line(step: Step) -> str:
    where = ", ".join(step.domains.values())
    if step.node is None:
        return f"{step.pod}: NOT PLACED: {step.why}"
    return f"{step.pod} -> {step.node}" + (f" ({where})" if where else "") + f": {step.why}"


class Bar:
    """A plain-text progress bar: redrawn in place on a terminal, a line per pod otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 30, lines: bool = True):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.width = width
        self.lines = lines

    def __call__(self, done: int, total: int, step: Step) -> None:
        filled = self.width * done // max(1, total)
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"
        if self.tty:
            self.stream.write("\r\033[K")
            if self.lines:
                self.stream.write(step_line(step) + "\n")
            self.stream.write(bar + ("\n" if done == total else ""))
        else:
            self.stream.write(f"{bar} {step_line(step) if self.lines else step.pod}\n")
        self.stream.flush()


# --- `redis-extender plan FILE` ------------------------------------------------------------------

def main(ns: Any) -> int:
    """Exit 0 when every pending Redis pod found a node, 1 when some did not, 2 bad input or
    configuration, 3 Redis unreachable."""
    import orjson

    from extender.commands.args import load_failed, load_settings
    from extender.local.localredis import LocalRedis
    from extender.reports.html import comparison
    from extender.engine.decider import Decider
    from extender.state.cache import open_cache
    from extender.state.loader import LoadError, load_list
    from extender.state.connect import StoreError

    try:
        data = sys.stdin.buffer.read() if ns.file == "-" else open(ns.file, "rb").read()
        dump = orjson.loads(data)
        split_list(dump)
    except (OSError, orjson.JSONDecodeError, LoadError) as exc:
        print(f"redis-extender plan: cannot read {ns.file}: {exc}", file=sys.stderr)
        return 2
    local = None if ns.redis_url else LocalRedis().start()
    try:
        settings = load_settings(ns, **({"store.redis_url": local.url} if local else {}))
        say = sys.stderr if ns.json else sys.stdout
        try:
            store = RedisStore.from_url(settings.store.redis_url, settings.store.key_prefix, timeout=10)
            load_list(store, dump, Identifier(settings.identity), source="plan")
            decider = Decider(settings, open_cache(settings), Identifier(settings.identity))
            outcome = place_all(decider, store, settings, dump, progress=Bar(say, lines=not ns.json))
        except (LoadError, StoreError) as exc:
            return load_failed("plan", ns.file, settings.store.redis_url, exc, bad_dump=2, no_redis=3)
    finally:
        if local:
            local.stop()
    rows = compare(outcome.before, outcome.after)
    if ns.html:
        with open(ns.html, "w", encoding="utf-8") as out:
            out.write(comparison(outcome.before, outcome.after, rows, [s.to_json() for s in outcome.steps]))
    if ns.json:
        sys.stdout.buffer.write(orjson.dumps(outcome.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(f"\nplaced {outcome.placed} of {len(outcome.steps)} pending Redis pods; placement quality:")
        print(summary_table(rows))
        if ns.html:
            print(f"before/after page: {ns.html}")
    return 0 if outcome.placed == len(outcome.steps) else 1
