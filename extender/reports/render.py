"""The report as a JSON document, as a terminal table, and checked against --fail-on thresholds.

Pure: reads measures.Report and advice.Plan values.

JSON document (GET /report, `redis-extender report --json`), schema "redis-extender.report/v1":

  schema         "redis-extender.report/v1"
  generated_at   unix seconds (when the state was read)
  top_level      name of the highest level with >= 2 domains (where advice balances), or null
  levels         [{name, key, domains: int, active: bool}]   node level first, then configured
  summary        the headline numbers, worst over the active levels (see SUMMARY_KEYS):
                 clusters, shards, copies, spof, down, worst_loss (0..1), write_disruption (0..1),
                 quorum_unsafe (clusters), master_skew, diversity_min, diversity_mean,
                 surviving_copies (int|null), headroom_short (levels), overcommitted_nodes,
                 maxmemory_issues, unknown_domain_copies, cache_age (s|null), live_age (s|null),
                 live_missing (clusters), live_mismatch, advice_steps, risky_shards
  per_level      {<level>: {domains, active, spof, spof_shards: ["cluster|shard"],
                 down, worst_loss: {share, domain, cluster}, write_disruption: {share, domain, cluster},
                 quorum_unsafe: [cluster], master_skew, diversity: {min, mean},
                 surviving_copies, headroom: {domain, failed_memory, rest_free_memory, margin,
                 absorbable}, unknown_nodes, unknown_copies}}
  clusters       [{id, kind: cluster|sentinel|unknown, shards, masters,
                   live: {fetched_at, age, seed, source, error} | null,
                   levels: {<level>: {masters_per_domain: {domain: n}, master_skew,
                            quorum_limit: int|null, quorum_safe: bool|null, worst_loss, write_disruption,
                            spof: [shard], crowded: [domain]}},
                   shard_list: [{shard, slots: int|null, risks: [text],
                                 copies: [{pod, node, domains: {level: value}, role, cached_role,
                                           live_role|null, healthy, link_up|null, lag|null}]}]}]
  resources      {max_utilization, overcommitted: [{node, allocatable_memory, requested_memory}],
                  maxmemory: [{pod, maxmemory, memory_request, reason}]}
  hygiene        {unknown_domain_nodes: {level: n}, unknown_domain_copies: {level: n},
                  copies_on_unknown_nodes: [pod], cache_age, live_age: {cluster: s|null},
                  live_errors: {cluster: text}, mismatches: [{cluster, pod, kind, cached, live}]}
  advice         [advice.Plan.to_json(): {cluster, level, steps: [{order, cluster, shard, promote,
                  demote, promote_node, from_domain, to_domain, lag}], masters_before, masters_after,
                  skew_before, skew_after, quorum_limit, quorum_safe_before, quorum_safe_after,
                  goal_met, notes}]
  breaches       [text] (only when thresholds were given)

Memory is in bytes, ages in seconds, shares in 0..1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from extender.analysis.advice import Plan, plan_all
from extender.analysis.measures import Report, compute
from extender.analysis.placement import DEFAULT_MAX_LAG, Inventory, place

SCHEMA = "redis-extender.report/v1"


@dataclass(frozen=True)
class Threshold:
    key: str
    direction: str  # "max": fail when value > limit; "min": fail when value < limit
    help: str


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("spof", "max", "shards whose healthy copies sit in one domain"),
    Threshold("down", "max", "shards with no healthy copy"),
    Threshold("worst_loss", "max", "largest share of data lost with one domain (0..1)"),
    Threshold("write_disruption", "max", "largest share of masters in one domain (0..1)"),
    Threshold("quorum_unsafe", "max", "clusters where one domain holds >= ceil(M/2) masters"),
    Threshold("master_skew", "max", "max - min masters per domain"),
    Threshold("diversity_min", "min", "lowest per-shard diversity (0..1)"),
    Threshold("surviving_copies", "min", "fewest copies a shard keeps after its worst domain loss"),
    Threshold("headroom_short", "max", "levels whose worst domain loss the rest cannot absorb"),
    Threshold("overcommitted_nodes", "max", "nodes with more memory requested than allocatable"),
    Threshold("maxmemory_issues", "max", "Redis pods whose maxmemory is unbounded or above the request"),
    Threshold("unknown_domain_copies", "max", "copies on nodes with an unknown domain"),
    Threshold("cache_age", "max", "seconds since the state was loaded (unknown fails)"),
    Threshold("live_age", "max", "seconds since the oldest live topology (unknown fails)"),
    Threshold("live_missing", "max", "clusters without live topology"),
    Threshold("live_mismatch", "max", "differences between live topology and cache"),
    Threshold("advice_steps", "max", "failovers the advice asks for"),
)
_THRESHOLDS = {t.key: t for t in THRESHOLDS}

EXIT_OK, EXIT_BREACH, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def parse_fail_on(text: str) -> dict[str, float]:
    """"spof=0,master_skew=1,quorum_unsafe=0" -> {key: limit}; every problem reported at once."""
    limits: dict[str, float] = {}
    problems = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            problems.append(f"{item!r}: expected KEY=NUMBER")
        elif key not in _THRESHOLDS:
            problems.append(f"{key!r}: unknown (known: {', '.join(_THRESHOLDS)})")
        else:
            try:
                limits[key] = float(value)
            except ValueError:
                problems.append(f"{item!r}: {value!r} is not a number")
    if problems:
        raise ValueError("invalid --fail-on: " + "; ".join(problems))
    return limits


def breaches(summary: Mapping[str, Any], limits: Mapping[str, float]) -> list[str]:
    """The thresholds the summary breaks, as readable lines (empty: all within limits)."""
    out = []
    for key, limit in limits.items():
        value = summary.get(key)
        t = _THRESHOLDS[key]
        if value is None:
            out.append(f"{key} unknown (limit {limit:g})")
        elif t.direction == "max" and value > limit:
            out.append(f"{key}={_num(value)} > {limit:g} ({t.help})")
        elif t.direction == "min" and value < limit:
            out.append(f"{key}={_num(value)} < {limit:g} ({t.help})")
    return out


def compose(inventory: Inventory, max_lag: int = DEFAULT_MAX_LAG) -> tuple[Report, tuple[Plan, ...]]:
    """Measures and advice of one inventory: what every output starts from."""
    placement = place(inventory, max_lag)
    return compute(placement), plan_all(placement)


def document(report: Report, plans: Sequence[Plan], limits: Mapping[str, float] | None = None) -> dict[str, Any]:
    p = report.placement
    top = p.top_level
    summary = report.summary.as_dict()
    summary["advice_steps"] = sum(len(pl.steps) for pl in plans)
    summary["risky_shards"] = len(report.risks)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "generated_at": p.inventory.read_at,
        "top_level": p.levels[top].name if top is not None else None,
        "levels": [{"name": lv.name, "key": lv.key, "domains": len(lv.domains), "active": lv.active}
                   for lv in p.levels],
        "summary": summary,
        "per_level": {m.level.name: {
            "domains": len(m.level.domains), "active": m.level.active, "spof": m.spof,
            "spof_shards": m.spof_shards, "down": sum(len(c.down) for c in m.clusters),
            "worst_loss": m.worst_loss.to_json(), "write_disruption": m.write_disruption.to_json(),
            "quorum_unsafe": m.quorum_unsafe, "master_skew": m.master_skew,
            "diversity": {"min": round(m.diversity_min, 4), "mean": round(m.diversity_mean, 4)},
            "surviving_copies": m.surviving_copies, "headroom": m.headroom.to_json(),
            "unknown_nodes": m.unknown_nodes, "unknown_copies": m.unknown_copies,
        } for m in report.levels},
        "clusters": [_cluster_json(report, i) for i in range(len(p.clusters))],
        "resources": {
            "max_utilization": round(report.max_utilization, 4) if report.max_utilization != float("inf") else None,
            "overcommitted": [{"node": f.node, "allocatable_memory": f.allocatable_memory,
                               "requested_memory": f.requested_memory} for f in report.overcommitted],
            "maxmemory": [{"pod": m.pod, "maxmemory": m.maxmemory, "memory_request": m.memory_request,
                           "reason": m.reason} for m in report.maxmemory],
        },
        "hygiene": {
            "unknown_domain_nodes": dict(report.hygiene.unknown_domain_nodes),
            "unknown_domain_copies": dict(report.hygiene.unknown_domain_copies),
            "copies_on_unknown_nodes": list(report.hygiene.copies_on_unknown_nodes),
            "cache_age": report.hygiene.cache_age,
            "live_age": dict(report.hygiene.live_age),
            "live_errors": dict(report.hygiene.live_errors),
            "mismatches": [{"cluster": m.cluster, "pod": m.pod, "kind": m.kind, "cached": m.cached,
                            "live": m.live} for m in report.hygiene.mismatches],
        },
        "advice": [pl.to_json() for pl in plans],
    }
    if limits is not None:
        doc["breaches"] = breaches(summary, limits)
    return doc


def _cluster_json(report: Report, index: int) -> dict[str, Any]:
    p = report.placement
    cv = p.clusters[index]
    live = None
    if cv.live is not None or cv.id in p.inventory.live:
        t = cv.live or p.inventory.live[cv.id]
        live = {"fetched_at": t.fetched_at, "age": round(p.inventory.read_at - t.fetched_at, 3),
                "seed": t.seed, "source": t.source, "error": t.error}
    levels = {}
    for m in report.levels:
        cl = m.clusters[index]
        levels[m.level.name] = {
            "masters_per_domain": dict(cl.masters_per_domain), "master_skew": cl.master_skew,
            "quorum_limit": cl.quorum_limit, "quorum_safe": cl.quorum_safe,
            "worst_loss": cl.worst_loss.to_json(), "write_disruption": cl.write_disruption.to_json(),
            "spof": list(cl.spof), "crowded": list(cl.crowded)}
    return {
        "id": cv.id, "kind": cv.kind, "shards": len(cv.shards),
        "masters": sum(1 for s in cv.shards if s.master is not None), "live": live, "levels": levels,
        "shard_list": [{
            "shard": s.shard, "slots": s.slots, "risks": list(report.risks.get(s.key, ())),
            "copies": [{"pod": c.pod, "node": c.node,
                        "domains": {lv.name: c.domains[i] for i, lv in enumerate(p.levels)},
                        "role": c.role.value, "cached_role": c.cached_role.value,
                        "live_role": c.live_role.value if c.live_role else None, "healthy": c.healthy,
                        "link_up": c.link_up, "lag": c.lag} for c in s.copies],
        } for s in cv.shards],
    }


# --- the terminal table ------------------------------------------------------------------------

def table(doc: Mapping[str, Any]) -> str:
    """A compact human summary of a document (what `redis-extender report` prints)."""
    s = doc["summary"]
    lines = [
        f"redis-extender report: {s['clusters']} cluster(s), {s['shards']} shards, {s['copies']} copies; "
        f"state {age_text(s['cache_age'])} old; {live_text(s)}",
        "",
    ]
    header = ["level", "domains", "spof", "worst-loss", "write-disr", "quorum-unsafe", "master-skew",
              "diversity", "survivors", "failure headroom"]
    rows = [header]
    for lv in doc["levels"]:
        m = doc["per_level"][lv["name"]]
        name = lv["name"] + ("" if lv["active"] else " (inactive)")
        h = m["headroom"]
        head = "-" if h["domain"] is None else (
            f"{'ok' if h['absorbable'] else 'SHORT'} {_bytes(h['margin'], signed=True)} (lose {h['domain']})")
        rows.append([name, str(m["domains"]), str(m["spof"]), _pct(m["worst_loss"]["share"]),
                     _pct(m["write_disruption"]["share"]), str(len(m["quorum_unsafe"])), str(m["master_skew"]),
                     f"{m['diversity']['min']:.2f}/{m['diversity']['mean']:.2f}",
                     "-" if m["surviving_copies"] is None else str(m["surviving_copies"]), head])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    top = doc["top_level"]
    lines.append("")
    for c in doc["clusters"]:
        live = c["live"]
        state = "no live topology" if live is None else (
            f"live error: {live['error']}" if live["error"] else f"live {age_text(live['age'])} old")
        lines.append(f"{c['id']} ({c['kind']}, {c['shards']} shards, {state})")
        if top:
            lv = c["levels"][top]
            per = " ".join(f"{d}={n}" for d, n in lv["masters_per_domain"].items())
            quorum = {True: "quorum safe", False: f"QUORUM UNSAFE (limit {lv['quorum_limit']})",
                      None: "quorum n/a"}[lv["quorum_safe"]]
            lines.append(f"  masters per {top}: {per}  skew {lv['master_skew']}  {quorum}")
        for sh in c["shard_list"]:
            if sh["risks"]:
                lines.append(f"  RISK shard {sh['shard']}: {', '.join(sh['risks'])}")
    hy = doc["hygiene"]
    issues = []
    for level, n in hy["unknown_domain_copies"].items():
        if n:
            issues.append(f"{n} copies on nodes with unknown {level}")
    if hy["copies_on_unknown_nodes"]:
        issues.append(f"{len(hy['copies_on_unknown_nodes'])} copies on nodes missing from the state")
    for m in hy["mismatches"]:
        issues.append(f"{m['pod']}: {m['kind']} (cache {m['cached'] or '-'}, live {m['live'] or '-'})")
    for cluster, error in hy["live_errors"].items():
        issues.append(f"{cluster}: live topology error: {error}")
    res = doc["resources"]
    for f in res["overcommitted"]:
        issues.append(f"{f['node']}: {_bytes(f['requested_memory'])} requested of {_bytes(f['allocatable_memory'])}")
    for m in res["maxmemory"]:
        issues.append(f"{m['pod']}: {m['reason']} ({_bytes(m['maxmemory'])} vs request {_bytes(m['memory_request'])})")
    if issues:
        lines.append("")
        lines.append("hygiene and resources:")
        lines.extend(f"  {i}" for i in issues)
    lines.append("")
    shown = [pl for pl in doc["advice"] if pl["steps"] or pl["notes"]]
    if not shown:
        lines.append("advice: no failover needed")
    for pl in shown:
        lines.append(f"advice for {pl['cluster']} ({len(pl['steps'])} step(s), {pl['level']} level, "
                     f"skew {pl['skew_before']} -> {pl['skew_after']}):")
        lines.extend("  " + plan_line(st, pl["level"]) for st in pl["steps"])
        lines.extend(f"  note: {n}" for n in pl["notes"])
    if doc.get("breaches"):
        lines.append("")
        lines.append("FAIL: " + "; ".join(doc["breaches"]))
    return "\n".join(lines)


def plan_line(step: Mapping[str, Any], level: str | None) -> str:
    return (f"{step['order']}. CLUSTER FAILOVER on {step['promote']} ({step['promote_node']}, {level} "
            f"{step['to_domain']}): master of shard {step['shard']} moves from {step['demote']} "
            f"({level} {step['from_domain']})")


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def live_text(summary: Mapping[str, Any]) -> str:
    """What the live topology (roles and health read from Redis itself) adds, for people:
    none read means roles come from the pods' labels."""
    missing, clusters = summary.get("live_missing") or 0, summary.get("clusters") or 0
    if summary.get("live_age") is None and (missing >= clusters or not clusters):
        return "no live topology read (roles from pod labels)"
    text = f"live topology {age_text(summary.get('live_age'))} old"
    return text + (f" ({missing} cluster(s) without: roles from pod labels)" if missing else "")


def age_text(seconds: float | None) -> str:
    """An age for people: "42s", "7m", "3.5h"; "?" when unknown."""
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _bytes(n: int | None, signed: bool = False) -> str:
    if n is None:
        return "?"
    sign = "-" if n < 0 else "+" if n > 0 and signed else ""
    value = float(abs(n))
    for unit in ("B", "Ki", "Mi", "Gi", "Ti"):
        if value < 1024 or unit == "Ti":
            return f"{sign}{value:.0f}{unit}" if unit == "B" else f"{sign}{value:.1f}{unit}"
        value /= 1024
    return f"{n}B"
