"""The pure parts of extender/commands/plan.py: kube-scheduler's queue order, the offered nodes, the
before/after rows, the refusal summary and the progress bar (TTY or not)."""
from __future__ import annotations

import io

from extender.core.identity import Identifier
from extender.commands.plan import Bar, Step, _reasons, compare, queue, schedulable, step_line, summary_table
from extender.core.settings import IdentitySettings
from extender.local.simulate import make_node, make_pod, redis_labels


def pod(name: str, created: str, node: str | None = None, priority: int | None = None, phase: str | None = None,
        labels: dict[str, str] | None = None) -> dict:
    p = make_pod("redis", name, labels if labels is not None else redis_labels("c", 0, "replica"), "1Gi", "1", node)
    p["metadata"]["creationTimestamp"] = created
    if priority is not None:
        p["spec"]["priority"] = priority
    if phase:
        p["status"]["phase"] = phase
    return p


def test_queue_is_priority_then_creation_then_dump_order_and_only_pending_redis_pods() -> None:
    pods = [pod("late", "2026-01-02T00:00:00Z"), pod("early", "2026-01-01T00:00:00Z"),
            pod("urgent", "2026-01-03T00:00:00Z", priority=100), pod("twin-b", "2026-01-01T00:00:00Z"),
            pod("placed", "2026-01-01T00:00:00Z", node="n1"), pod("done", "2026-01-01T00:00:00Z", phase="Failed"),
            pod("web", "2026-01-01T00:00:00Z", labels={"app": "web"})]
    pods.append({**pod("going", "2026-01-01T00:00:00Z")})
    pods[-1]["metadata"]["deletionTimestamp"] = "2026-01-04T00:00:00Z"
    order = [p["metadata"]["name"] for p in queue(pods, Identifier(IdentitySettings()))]
    assert order == ["urgent", "early", "twin-b", "late"]


def test_cordoned_nodes_are_not_offered() -> None:
    nodes = [make_node(f"n{i}", "z", None, None, 8, 4) for i in range(3)]
    nodes[1]["spec"]["unschedulable"] = True
    assert schedulable(nodes) == ["n0", "n2"]


def test_refusals_group_by_reason_without_node_names() -> None:
    refused = {"n1": "n1 already holds shard 0 of c (c-0, master)", "n2": "zone-a already holds shard 0; x",
               "n3": "zone-a already holds shard 0; y", "n4": "node is not Ready (cached node status)"}
    text = _reasons(refused, shown=2)
    assert text.startswith("2 x zone-a already holds shard 0; ")
    assert text.endswith("; 1 for other reasons") and "n1" not in text and "1 x node already holds" in text


def doc(copies: int, spof: dict[str, int], worst: float) -> dict:
    return {"summary": {"copies": copies, "worst_loss": worst, "master_skew": 1, "quorum_unsafe": 0,
                        "risky_shards": sum(spof.values())},
            "levels": [{"name": n, "active": True} for n in spof] + [{"name": "region", "active": False}],
            "per_level": {n: {"spof": v} for n, v in spof.items()}}


def test_compare_rows_and_table() -> None:
    rows = compare(doc(10, {"node": 4, "zone": 3}, 0.5), doc(20, {"node": 0, "zone": 0}, 0.0))
    keys = [r["key"] for r in rows]
    assert keys == ["copies", "spof_node", "spof_zone", "worst_loss", "master_skew", "quorum_unsafe", "risky_shards"]
    table = summary_table(rows)
    cells = {line.split("  ")[1].strip(): line.split()[-2:] for line in table.splitlines()[1:]}
    assert cells["single-zone shards"] == ["3", "0"] and cells["single-node shards"] == ["4", "0"]
    assert cells["worst loss (one domain)"] == ["50%", "0%"]
    assert table.splitlines()[0].split() == ["before", "after"]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_redraws_in_place_on_a_terminal_and_writes_lines_otherwise() -> None:
    step = Step("redis/c-0", "n1", 10, 3, 2, "score 10/10", {"zone": "zone-a"})
    assert step_line(step) == "redis/c-0 -> n1 (zone-a): score 10/10"
    plain = io.StringIO()
    Bar(plain, width=4)(1, 2, step)
    assert plain.getvalue() == "[##..] 1/2 redis/c-0 -> n1 (zone-a): score 10/10\n"
    tty = Tty()
    bar = Bar(tty, width=4)
    bar(1, 2, step)
    bar(2, 2, step)
    assert tty.getvalue() == ("\r\033[K" + step_line(step) + "\n[##..] 1/2"
                              + "\r\033[K" + step_line(step) + "\n[####] 2/2\n")
    missing = Step("redis/c-1", None, None, 3, 0, "no node accepted: 3 x full")
    assert step_line(missing) == "redis/c-1: NOT PLACED: no node accepted: 3 x full"
