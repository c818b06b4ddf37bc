"""The report page (reports/html.py) rendered by a real headless Chromium (Debian's chromium),
and GET /report, /report.html, /metrics served by the Flask app against a real redis-server.

The page is checked by its content, not only by loading: the DOM Chromium builds must mark the
risky shard's copies, the masters, the crowded zone; hostile text must stay text; and at
1600x1000 nothing may need scrolling (measured inside Chromium by a probe script that the
test, not the page, adds). The screenshot is kept in the pytest tmp dir, and copied to
tests/artifacts/report.png when SAVE_ARTIFACTS=1.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from extender.core.model import Copy, Node, Role
from extender.reports.html import page
from extender.analysis.placement import Inventory
from extender.reports.render import compose, document
from extender.analysis.topology import KIND_CLUSTER, LiveTopology
from tests.support.chromium import chromium

LEVELS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region")
ZONES = ("zone-a", "zone-b", "zone-c")
HOSTILE = "<script>alert('x')</script>&<b>"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"


def risky_inventory(shards: int = 32, nodes_per_zone: int = 10) -> Inventory:
    """3 zones x 10 nodes, 32 shards x 3 copies spread over the zones, except: shard 5 has all
    its copies in zone-b (a zone SPOF), and shards 0-3 have their masters in zone-a (crowded)."""
    nodes = {f"node-{z[-1]}{i:02d}": Node(f"node-{z[-1]}{i:02d}", (f"node-{z[-1]}{i:02d}", z, "region-1"),
                                          64 * 2**30, 16000)
             for z in ZONES for i in range(nodes_per_zone)}
    table: dict[str, tuple[Copy, ...]] = {}
    for k in range(shards):
        first = 0 if k < 4 else k % 3
        zones = [ZONES[(first + j) % 3] for j in range(3)]
        if k == 5:
            zones = ["zone-b"] * 3
        table[str(k)] = tuple(
            Copy(pod=f"redis/cache-{k}-{j}", node=f"node-{zones[j][-1]}{(k + 3 * j) % nodes_per_zone:02d}",
                 role=Role.MASTER if j == 0 else Role.REPLICA) for j in range(3))
    live = {"redis/cache": LiveTopology("redis/cache", KIND_CLUSTER, 990.0, "10.0.0.1:6379", (), "",
                                        f"ConnectionError: {HOSTILE}")}
    return Inventory(levels=LEVELS, nodes=nodes, shards={"redis/cache": table},
                     requested_memory={n: 8 * 2**30 for n in nodes}, live=live, loaded_at=940.0, read_at=1000.0)


PROBE = """<script>
window.addEventListener('load', () => {
  const d = document.documentElement, b = document.body;
  const chips = [...document.querySelectorAll('.copy[data-shard]')];
  const clipped = chips.filter(c => { const r = c.getBoundingClientRect();
    return r.bottom > window.innerHeight || r.right > window.innerWidth || r.width === 0; });
  b.setAttribute('data-probe', JSON.stringify({
    viewport: [window.innerWidth, window.innerHeight], scroll: [d.scrollWidth, d.scrollHeight],
    chips: chips.length, clipped: clipped.length,
    font: Math.min(...chips.map(c => parseFloat(getComputedStyle(c).fontSize)))}));
});
</script>"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("report-html")
    report, plans = compose(risky_inventory())
    doc = document(report, plans)
    html = page(doc)
    path = tmp / "report.html"
    path.write_text(html, encoding="utf-8")
    shot = tmp / "report.png"
    chromium(f"--screenshot={shot}", path.as_uri(), tmp=tmp)
    if os.environ.get("SAVE_ARTIFACTS") == "1":
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(shot, ARTIFACTS / "report.png")
    dom = chromium("--dump-dom", path.as_uri(), tmp=tmp).stdout
    probed = tmp / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    probe_dom = chromium("--dump-dom", probed.as_uri(), tmp=tmp).stdout
    match = re.search(r'data-probe="([^"]*)"', probe_dom)
    assert match, "the probe script did not run"
    probe = json.loads(match.group(1).replace("&quot;", '"'))
    return {"doc": doc, "html": html, "dom": dom, "shot": shot, "probe": probe}


def chips(dom: str, shard: str) -> list[str]:
    return re.findall(rf'<span class="([^"]*)"[^>]*data-shard="redis/cache\|{shard}"', dom)


def test_the_screenshot_is_a_1600x1000_png(rendered: dict[str, Any]) -> None:
    data = rendered["shot"].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1600, 1000)
    assert len(data) > 20_000  # a picture, not a blank page


def test_the_zone_spof_shard_is_marked_risky_in_the_rendered_dom(rendered: dict[str, Any]) -> None:
    dom = rendered["dom"]
    spof = chips(dom, "5")
    assert len(spof) == 3 and all("risky" in c for c in spof)
    assert re.search(r'data-shard="redis/cache\|5"[^>]*data-risk="single zone', dom)
    assert 'data-shard="redis/cache|5">redis/cache|5: single zone' in dom  # the side list
    assert all("risky" not in c for c in chips(dom, "7"))  # a healthy shard is not


def test_masters_are_marked_and_the_crowded_zone_is_flagged(rendered: dict[str, Any]) -> None:
    dom = rendered["dom"]
    placed = re.findall(r'<span class="(copy [^"]*)" style="[^"]*" data-shard=', dom)
    assert len(placed) == 96 and sum(1 for c in placed if " master" in c) == 32
    assert chips(dom, "0") == ["copy master crowded", "copy replica", "copy replica"]  # zone-a crowded
    assert re.search(r'<div class="domain crowded" data-domain="zone-a">', dom)
    assert '<div class="domain" data-domain="zone-b">' in dom
    assert rendered["doc"]["clusters"][0]["levels"]["zone"]["masters_per_domain"]["zone-a"] > 11


def test_every_copy_is_placed_in_its_zone_column(rendered: dict[str, Any]) -> None:
    dom = rendered["dom"]
    columns = re.split(r'<div class="domain[^"]*" data-domain="', dom)[1:]
    by_zone = {col.split('"', 1)[0]: col for col in columns}
    assert set(by_zone) == set(ZONES)
    copy = re.compile(r'<span class="copy[^"]*" style="[^"]*" data-shard="([^"]*)"')
    placed = {zone: copy.findall(col) for zone, col in by_zone.items()}
    assert sum(len(v) for v in placed.values()) == 96
    assert placed["zone-b"].count("redis/cache|5") == 3
    assert [len(placed[z]) for z in ZONES] == [31, 34, 31]  # one copy of each shard per zone, but shard 5


def test_hostile_text_stays_text(rendered: dict[str, Any]) -> None:
    dom = rendered["dom"]
    assert "<script>" not in rendered["html"] and "<script" not in dom
    assert "ConnectionError: &lt;script&gt;alert('x')&lt;/script&gt;&amp;&lt;b&gt;" in dom


def test_page_fits_1600x1000_without_scrolling_and_stays_readable(rendered: dict[str, Any]) -> None:
    probe = rendered["probe"]
    width, height = probe["viewport"]  # --dump-dom's viewport is the window minus (hidden) browser UI
    assert width == 1600 and 800 <= height <= 1000, probe
    assert probe["scroll"][0] <= width and probe["scroll"][1] <= height, probe
    assert probe["chips"] == 96
    assert probe["clipped"] == 0 and probe["font"] >= 11, probe


def test_no_external_assets(rendered: dict[str, Any]) -> None:
    html = rendered["html"]
    assert not re.search(r'(src|href)\s*=|@import|url\(', html)


# --- served by the app ---------------------------------------------------------------------------

def test_report_routes_and_gauges(redis_server, store, prefix: str) -> None:
    from extender.core import settings as settings_mod
    from extender.core.identity import Identifier
    from extender.service.app import create_app
    from extender.core.settings import IdentitySettings
    from extender.local.simulate import make_node, make_pod, redis_labels
    from extender.state.loader import load_list

    items = [make_node(f"node-{z}", f"zone-{z}", "region-1", None, 8, 4) for z in "abc"]
    items += [make_pod("redis", f"cache-{i}", redis_labels("cache", 0, "master" if i == 0 else "replica"),
                       "1Gi", "500m", node) for i, node in enumerate(["node-a", "node-a", "node-b"])]
    load_list(store, {"kind": "List", "items": items}, Identifier(IdentitySettings()))
    settings = settings_mod.load(env={"REDIS_URL": redis_server.url, "REDIS_EXTENDER_KEY_PREFIX": prefix})
    app = create_app(settings)  # registers /report and /report.html
    client = app.test_client()

    reply = client.get("/report")
    assert reply.status_code == 200 and reply.mimetype == "application/json"
    doc = reply.get_json()
    assert doc["schema"] == "redis-extender.report/v1"
    assert doc["per_level"]["node"]["spof_shards"] == []
    assert doc["summary"]["spof"] == 0 and doc["per_level"]["zone"]["spof"] == 0
    assert doc["clusters"][0]["shard_list"][0]["copies"][0]["pod"] == "redis/cache-0"

    breached = client.get("/report?fail_on=worst_loss=0.1").get_json()["breaches"]
    assert breached == []
    assert client.get("/report?fail_on=bogus=1").status_code == 400

    html = client.get("/report.html")
    assert html.status_code == 200 and html.mimetype == "text/html"
    assert b'data-shard="redis/cache|0"' in html.data
    assert "default-src 'none'" in html.headers["Content-Security-Policy"]

    metrics = client.get("/metrics").data.decode()
    assert 'redis_extender_report_spof_shards{level="zone"} 0.0' in metrics
    assert 'redis_extender_report_master_skew{level="zone"} 1.0' in metrics
    assert "redis_extender_report_advice_steps 0.0" in metrics
    # per cluster: shard 0's copies sit on node-a (2) and node-b, all in region-1: a SPOF of the
    # region only; its one master makes a skew of 1 between nodes and zones
    for level, spof, skew, loss in (("node", 0, 1, 0), ("zone", 0, 1, 0), ("region", 1, 0, 1)):
        where = f'{{cluster="redis/cache",level="{level}"}}'
        assert f"redis_extender_report_cluster_spof_shards{where} {spof:.1f}" in metrics
        assert f"redis_extender_report_cluster_master_skew{where} {skew:.1f}" in metrics
        assert f"redis_extender_report_cluster_worst_loss_ratio{where} {loss:.1f}" in metrics
        assert f"redis_extender_report_cluster_quorum_unsafe{where} 0.0" in metrics


def test_report_route_answers_503_when_redis_is_down(redis_server, prefix: str) -> None:
    from extender.core import settings as settings_mod
    from extender.local.processes import free_port
    from extender.service.app import create_app

    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_mod.load(env={"REDIS_URL": dead, "REDIS_EXTENDER_KEY_PREFIX": prefix})
    reply = create_app(settings).test_client().get("/report")
    assert reply.status_code == 503 and "redis unreachable" in reply.get_json()["Error"]
