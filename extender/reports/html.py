"""GET /report.html: the placement as a picture, one self-contained page (no script, no asset).

Domains of the top active level (zones, usually) are columns; the nodes holding copies are
cards inside them; every copy is a chip named by its shard, filled when it is the master,
outlined when a replica; every chip of a shard whose data is at risk (a single-domain shard,
no healthy copy, a copy in an unknown domain) is red; a master in a crowded domain (more
masters than a balanced spread, or a quorum at risk) is orange, and its domain's header red.
A side panel lists the risky shards and the failover advice. Sized for 1600x1000: 3 zones x
10 nodes x 32 shards (96 chips) fit without scrolling; bigger clusters and longer side lists
scroll inside their panel, never the page.

comparison() puts two documents on one page, before and after placing pending pods (plan.py):
a bar with the headline numbers "before -> after" (green better, red worse) and two tabs made
of CSS radio buttons (still no script), "after" shown first.

Pure: renders render.document() dicts. Every text and attribute goes through html.escape.
"""
from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any, Mapping, Sequence

from extender.analysis.placement import natural_key
from extender.reports.render import age_text, live_text, plan_line

PALETTE = ("#1f6fb4", "#2a9d55", "#8a4fbf", "#c07a12", "#0f8b8d", "#b4456e", "#5b6b2f", "#3f51b5")
MAX_SIDE_ITEMS = 40
CROWDED = "master in crowded"

CSS = """
*{box-sizing:border-box}
body{margin:0;font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232b;background:#f4f6f8;
 height:100vh;display:flex;flex-direction:column;overflow:hidden}
header{padding:8px 14px;background:#1d232b;color:#fff;display:flex;align-items:center;gap:14px;flex-wrap:wrap}
header h1{font-size:17px;margin:0 8px 0 0}
.badge{padding:2px 8px;border-radius:10px;background:#33404d;font-size:12px}
.badge.bad{background:#c62828}.badge.ok{background:#2e7d32}
.meta{margin-left:auto;font-size:12px;color:#c9d1d9}
main{flex:1;display:grid;grid-template-columns:1fr 310px;min-height:0}
.domains{display:grid;gap:8px;padding:8px;min-height:0;overflow:auto}
.domain{background:#fff;border:1px solid #d5dbe1;border-radius:6px;display:flex;flex-direction:column;min-width:0}
.domain h2{margin:0;padding:5px 8px;font-size:14px;background:#e8edf2;border-radius:6px 6px 0 0;display:flex;
 justify-content:space-between;gap:6px}
.domain.crowded h2{background:#c62828;color:#fff}
.domain h2 small{font-weight:400;font-size:12px}
.nodes{display:grid;grid-template-columns:repeat(auto-fill,minmax(132px,1fr));gap:5px;padding:6px;align-content:start}
.node{border:1px solid #d5dbe1;border-radius:4px;padding:3px 4px;background:#fbfcfd;min-width:0}
.node.notready{background:#fff3e0}
.nname{font-size:11px;color:#57606a;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.copy{display:inline-block;min-width:26px;margin:1px;padding:0 4px;border:2px solid var(--c);border-radius:4px;
 font:12px/17px ui-monospace,"DejaVu Sans Mono",monospace;text-align:center;color:var(--c);background:#fff}
.copy.master{background:var(--c);color:#fff;font-weight:700}
.copy.master::before{content:"\\2605";margin-right:2px;font-size:10px}
.copy.risky{border-color:#d50000;background:#ffcdd2;color:#b71c1c}
.copy.risky.master{background:#d50000;color:#fff}
.copy.crowded{border-color:#e65100;background:#ef6c00;color:#fff}
.copy.unhealthy{border-style:dashed;opacity:.6}
aside{border-left:1px solid #d5dbe1;background:#fff;padding:8px 10px;overflow:auto;min-height:0}
aside h3{margin:10px 0 4px;font-size:13px}aside h3:first-child{margin-top:0}
aside ul,aside ol{margin:0;padding-left:18px}aside li{margin:2px 0}
.legend span{margin-right:8px;white-space:nowrap}
.risk{color:#b71c1c}.risk.writes{color:#e65100}.note{color:#57606a}
"""


def page(doc: Mapping[str, Any], title: str = "Redis placement") -> str:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{_body(doc, title)}</body></html>\n")


def _body(doc: Mapping[str, Any], title: str) -> str:
    """The header and the picture of one document."""
    top = doc.get("top_level")
    clusters = doc["clusters"]
    colors = {c["id"]: PALETTE[i % len(PALETTE)] for i, c in enumerate(clusters)}
    risky = {f"{c['id']}|{s['shard']}": s["risks"] for c in clusters for s in c["shard_list"] if s["risks"]}
    # domain -> node -> chips
    columns: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    masters: dict[str, int] = defaultdict(int)
    crowded: set[str] = set()
    multi = len(clusters) > 1
    for c in clusters:
        if top:
            crowded.update(c["levels"][top]["crowded"])
        for s in c["shard_list"]:
            key = f"{c['id']}|{s['shard']}"
            for cp in s["copies"]:
                domain = cp["domains"].get(top) if top else "all nodes"
                if cp["role"] == "master":
                    masters[domain] += 1
                label = (f"{_short(c['id'])}:" if multi else "") + str(s["shard"])
                columns[domain][cp["node"]].append(_chip(key, label, cp, risky.get(key, []), colors[c["id"]]))
    order = sorted(columns, key=natural_key)
    cols = "".join(_column(d, columns[d], masters[d], d in crowded, top) for d in order)
    width = max(1, len(order))
    return (f"{_header(doc, title)}<main>"
            f"<section class=\"domains\" style=\"grid-template-columns:repeat({width},minmax(0,1fr))\">{cols}</section>"
            f"{_side(doc, colors, risky)}</main>")


def comparison(before: Mapping[str, Any], after: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
               steps: Sequence[Mapping[str, Any]], title: str = "Redis placement") -> str:
    """Before and after placing pending pods, one page: a bar with the headline numbers side
    by side and two tabs (CSS radio buttons, no script), "after" shown first. `rows` are
    plan.compare() rows, `steps` plan.Step.to_json() dicts."""
    placed = sum(1 for st in steps if st["node"])

    def value(key: str, v: Any) -> str:
        return f"{v * 100:.0f}%" if key == "worst_loss" else escape(str(v))

    cells = "".join(
        f"<span class=\"cmp\" data-key=\"{escape(r['key'])}\">{escape(r['label'])} "
        f"<b class=\"{'worse' if _worse(r) else 'same' if r['before'] == r['after'] else 'better'}\">"
        f"<span class=\"b\">{value(r['key'], r['before'])}</span> &rarr; "
        f"<span class=\"a\">{value(r['key'], r['after'])}</span></b></span>" for r in rows)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}: before and after</title><style>{CSS}{COMPARE_CSS}</style></head><body>"
        "<input type=\"radio\" name=\"view\" id=\"view-after\" checked>"
        "<input type=\"radio\" name=\"view\" id=\"view-before\">"
        f"<nav class=\"compare\"><label for=\"view-before\" class=\"tab before\">Before ({len(steps)} pending)</label>"
        f"<label for=\"view-after\" class=\"tab after\">After ({placed} of {len(steps)} placed)</label>"
        f"<span class=\"cmps\">{cells}</span></nav>"
        f"<div class=\"panel before\" data-view=\"before\">{_body(before, title + ': before')}</div>"
        f"<div class=\"panel after\" data-view=\"after\">{_body(after, title + ': after')}</div>"
        "</body></html>\n")


def _worse(row: Mapping[str, Any]) -> bool:
    return row["key"] != "copies" and row["after"] > row["before"]


COMPARE_CSS = """
body>input{position:absolute;opacity:0;pointer-events:none}
nav.compare{display:flex;align-items:center;gap:6px;padding:6px 10px;background:#e8edf2;border-bottom:1px solid #d5dbe1;
 flex-wrap:wrap}
.tab{padding:4px 12px;border:1px solid #8b98a5;border-radius:14px;cursor:pointer;background:#fff;font-weight:600}
#view-before:checked~nav .tab.before,#view-after:checked~nav .tab.after{background:#1d232b;color:#fff;border-color:#1d232b}
.cmps{margin-left:auto;display:flex;gap:12px;flex-wrap:wrap}
.cmp{font-size:12px;white-space:nowrap}.cmp b.better{color:#2e7d32}.cmp b.worse{color:#c62828}.cmp b.same{color:#57606a}
.panel{display:none;flex:1;flex-direction:column;min-height:0}
#view-before:checked~.panel.before,#view-after:checked~.panel.after{display:flex}
"""


def _chip(key: str, label: str, cp: Mapping[str, Any], risks: list[str], color: str) -> str:
    classes = ["copy", "master" if cp["role"] == "master" else "replica"]
    if any(not r.startswith(CROWDED) for r in risks):
        classes.append("risky")  # data at risk: every copy of the shard is marked
    elif cp["role"] == "master" and risks:
        classes.append("crowded")  # only writes at risk: the master alone is marked
    if not cp["healthy"]:
        classes.append("unhealthy")
    tip = f"{cp['pod']} ({cp['role']}" + (f", cached {cp['cached_role']}" if cp["cached_role"] != cp["role"] else "")
    tip += ")" + (": " + "; ".join(risks) if risks else "")
    return (f"<span class=\"{' '.join(classes)}\" style=\"--c:{color}\" data-shard=\"{escape(key)}\" "
            f"data-pod=\"{escape(cp['pod'])}\" data-role=\"{escape(cp['role'])}\" "
            f"data-risk=\"{escape('; '.join(risks))}\" title=\"{escape(tip)}\">{escape(label)}</span>")


def _column(domain: str, nodes: Mapping[str, list[str]], masters: int, crowded: bool, top: str | None) -> str:
    cards = "".join(f"<div class=\"node\" data-node=\"{escape(n)}\"><div class=\"nname\" title=\"{escape(n)}\">"
                    f"{escape(n)}</div>{''.join(nodes[n])}</div>" for n in sorted(nodes, key=natural_key))
    return (f"<div class=\"domain{' crowded' if crowded else ''}\" data-domain=\"{escape(domain)}\">"
            f"<h2><span title=\"{escape(top or 'level')}\">{escape(domain)}</span>"
            f"<small>{len(nodes)} nodes &middot; {masters} masters"
            f"{' &middot; crowded' if crowded else ''}</small></h2><div class=\"nodes\">{cards}</div></div>")


def _header(doc: Mapping[str, Any], title: str) -> str:
    s = doc["summary"]

    def badge(text: str, bad: bool) -> str:
        return f"<span class=\"badge {'bad' if bad else 'ok'}\">{escape(text)}</span>"

    badges = "".join([
        badge(f"SPOF shards {s['spof']}", s["spof"] > 0),
        badge(f"quorum unsafe {s['quorum_unsafe']}", s["quorum_unsafe"] > 0),
        badge(f"master skew {s['master_skew']}", s["master_skew"] > 1),
        badge(f"worst loss {s['worst_loss'] * 100:.0f}%", s["worst_loss"] > 0),
        badge(f"write disruption {s['write_disruption'] * 100:.0f}%", False),
        badge(f"failovers advised {s['advice_steps']}", s["advice_steps"] > 0),
    ])
    meta = (f"{s['clusters']} cluster(s) &middot; {s['shards']} shards &middot; {s['copies']} copies &middot; "
            f"level {escape(str(doc.get('top_level') or '-'))} &middot; state {age_text(s['cache_age'])} old &middot; "
            f"{escape(live_text(s))}")
    return f"<header><h1>{escape(title)}</h1>{badges}<span class=\"meta\">{meta}</span></header>"


def _side(doc: Mapping[str, Any], colors: Mapping[str, str], risky: Mapping[str, list[str]]) -> str:
    parts = ["<aside><h3>Legend</h3><div class=\"legend\">"]
    parts += [f"<span><span class=\"copy master\" style=\"--c:{c}\">{escape(_short(cid))}</span> {escape(cid)}</span>"
              for cid, c in colors.items()]
    parts.append("<span><span class=\"copy master\" style=\"--c:#555\">3</span> master</span>"
                 "<span><span class=\"copy replica\" style=\"--c:#555\">3</span> replica</span>"
                 "<span><span class=\"copy risky\" style=\"--c:#555\">3</span> data at risk</span>"
                 "<span><span class=\"copy master crowded\" style=\"--c:#555\">3</span> master in crowded domain</span>"
                 "</div>")
    parts.append(f"<h3>Risky shards ({len(risky)})</h3>")
    if risky:
        items = sorted(risky.items(), key=lambda kv: natural_key(kv[0]))
        parts.append("<ul>" + "".join(f"<li class=\"{_risk_class(v)}\" data-shard=\"{escape(k)}\">{escape(k)}: "
                                      f"{escape(', '.join(v))}</li>" for k, v in items[:MAX_SIDE_ITEMS]) + "</ul>")
        if len(items) > MAX_SIDE_ITEMS:
            parts.append(f"<p class=\"note\">and {len(items) - MAX_SIDE_ITEMS} more</p>")
    else:
        parts.append("<p class=\"note\">none</p>")
    parts.append("<h3>Failover advice</h3>")
    any_step = False
    for pl in doc["advice"]:
        if pl["steps"]:
            any_step = True
            parts.append(f"<p>{escape(pl['cluster'])}: {len(pl['steps'])} step(s), skew "
                         f"{pl['skew_before']} &rarr; {pl['skew_after']}</p><ol class=\"advice\">")
            parts += [f"<li data-promote=\"{escape(st['promote'])}\">"
                      f"{escape(plan_line(st, pl['level']).split('. ', 1)[1])}</li>" for st in pl["steps"]]
            parts.append("</ol>")
    notes: dict[str, list[str]] = {}  # one line per note, naming every cluster it is about
    for pl in doc["advice"]:
        for n in pl["notes"]:
            notes.setdefault(n, []).append(pl["cluster"])
    parts += [f"<p class=\"note\">{escape(', '.join(cs))}: {escape(n)}</p>" for n, cs in notes.items()]
    if not any_step and not any(pl["notes"] for pl in doc["advice"]):
        parts.append("<p class=\"note\">no failover needed</p>")
    keeper = doc.get("keeper") or {}
    if keeper:
        parts.append("<h3>Keeper</h3><ul>")
        for cluster, k in sorted(keeper.items()):
            d, last = k.get("decision") or {}, (k.get("memory") or {}).get("last") or {}
            step = d.get("step") or d.get("eviction") or {}
            nxt = step.get("promote") or step.get("pod") or ""
            parts.append(f"<li data-keeper=\"{escape(cluster)}\">{escape(_short(cluster))}: "
                         f"{escape(d.get('action', '?'))}: {escape(d.get('reason', ''))}"
                         + (f"; next: {escape(nxt)}" if nxt else "")
                         + (f"; last: {escape(str(last.get('kind')))} {escape(str(last.get('outcome')))}"
                            if last else "") + "</li>")
        parts.append("</ul>")
    hy = doc["hygiene"]
    if hy["mismatches"] or hy["copies_on_unknown_nodes"] or hy["live_errors"]:
        parts.append("<h3>Hygiene</h3><ul>")
        parts += [f"<li>{escape(m['pod'])}: {escape(m['kind'])} (cache {escape(m['cached'] or '-')}, "
                  f"live {escape(m['live'] or '-')})</li>" for m in hy["mismatches"][:MAX_SIDE_ITEMS]]
        parts += [f"<li>{escape(p)}: node not in the state</li>"
                  for p in hy["copies_on_unknown_nodes"][:MAX_SIDE_ITEMS]]
        parts += [f"<li>{escape(c)}: {escape(e)}</li>" for c, e in hy["live_errors"].items()]
        parts.append("</ul>")
    parts.append("</aside>")
    return "".join(parts)


def _risk_class(risks: list[str]) -> str:
    return "risk" if any(not r.startswith(CROWDED) for r in risks) else "risk writes"


def _short(cluster: str) -> str:
    return cluster.split("/", 1)[-1]

