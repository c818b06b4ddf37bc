"""`redis-extender plan FILE` (extender/commands/plan.py) on a real redis-server, with a dump shaped as
`kubectl get nodes,pods -A -o json` prints it, pending pods included.

The choices must be the extender's: the same dump is loaded into another key prefix and the
extender is served (`redis-extender serve`, one worker); kube-scheduler's calls are replayed
over HTTP in the plan's queue order (filter on the schedulable nodes, prioritize on the accepted
ones, bind on the first best score) and every pod must land where the plan put it. The
before/after page the command writes is checked in headless Chromium: both panels are there,
"after" shows first, a click on "Before" switches.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from extender.core.identity import Identifier
from extender.core.settings import IdentitySettings
from extender.local.simulate import make_node, make_pod, redis_labels
from extender.state.loader import load_list
from tests.support.chromium import chromium

ZONES = ("zone-a", "zone-b", "zone-c")


def kubectl_dump() -> dict[str, Any]:
    """9 nodes in 3 zones (node-b2 cordoned), 2 Redis clusters x 3 shards x 3 copies with
    each shard's master placed and both replicas pending, a later-created pending master of a
    high priority, a pending web pod and a finished Redis pod (neither to place)."""
    items: list[dict[str, Any]] = []
    for z in ZONES:
        for i in range(3):
            node = make_node(f"node-{z[-1]}{i}", z, "region-1", None, 16, 8)
            node["metadata"]["uid"] = f"uid-node-{z[-1]}{i}"
            node["status"]["nodeInfo"] = {"kubeletVersion": "v1.20.2"}
            items.append(node)
    next(n for n in items if n["metadata"]["name"] == "node-b2")["spec"]["unschedulable"] = True
    t = 0

    def pod(namespace: str, name: str, labels: dict[str, str], node: str | None, **extra: Any) -> dict[str, Any]:
        nonlocal t
        t += 1
        p = make_pod(namespace, name, labels, "1Gi", "250m", node)
        p["metadata"]["creationTimestamp"] = f"2026-12-01T10:{t // 60:02d}:{t % 60:02d}Z"
        p["spec"].update({"schedulerName": "default-scheduler", "priority": 0, **extra})
        if node is None:
            p["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
        items.append(p)
        return p

    for c in ("cache", "sessions"):
        for s in range(3):
            master_node = f"node-{ZONES[s][-1]}{s % 2}"
            pod("redis", f"{c}-{s}-0", redis_labels(c, s, "master"), master_node)
            for k in (1, 2):
                pod("redis", f"{c}-{s}-{k}", redis_labels(c, s, "replica"), None)
    pod("redis", "queue-0-0", redis_labels("queue", 0, "master"), None, priority=1000)  # created last, goes first
    pod("redis", "queue-0-1", redis_labels("queue", 0, "replica"), None)
    pod("apps", "web-0", {"app": "web"}, None)
    done = pod("redis", "old-0-0", redis_labels("old", 0, "master"), None)
    done["status"]["phase"] = "Succeeded"
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def run_plan(dump: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "extender.cli", "plan", str(dump), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def post(url: str, body: Any) -> Any:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as reply:
        return json.loads(reply.read())


def test_plan_without_redis_says_where_it_looked_and_exits_3(tmp_path: Path) -> None:
    from extender.local.processes import free_port

    path = tmp_path / "dump.json"
    path.write_text(json.dumps(kubectl_dump()))
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = run_plan(path, "--redis-url", url)
    assert done.returncode == 3, done.stderr
    assert f"redis-extender plan: Redis at {url}: " in done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"items": "nope"}')
    done = run_plan(bad, "--redis-url", url)  # the dump is read first: no Redis needed to refuse it
    assert done.returncode == 2 and "expected a Kubernetes List" in done.stderr


def test_plan_places_the_pending_redis_pods_in_queue_order_off_any_cluster(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(kubectl_dump()))
    done = run_plan(path, "--json")  # no --redis-url: a private redis-server of its own
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    steps = result["steps"]
    pods = [s["pod"] for s in steps]
    assert pods[0] == "redis/queue-0-0"  # priority first, though created after the others
    assert len(pods) == 14 and "apps/web-0" not in pods and "redis/old-0-0" not in pods
    assert all(s["node"] and s["node"] != "node-b2" for s in steps)  # all placed; never the cordoned node
    assert all(s["why"] for s in steps)
    rows = {r["key"]: r for r in result["summary"]}
    assert rows["spof_node"]["before"] == 6 and rows["spof_zone"]["before"] == 6  # a master alone per shard
    assert rows["spof_node"]["after"] == 0 and rows["spof_zone"]["after"] == 0
    assert rows["copies"]["after"] == rows["copies"]["before"] + 14
    assert result["after"]["summary"]["worst_loss"] < result["before"]["summary"]["worst_loss"]

    text = run_plan(path)  # the human form: a line per pod, then the table
    assert text.returncode == 0, text.stderr
    assert "redis/queue-0-0 -> node-" in text.stdout and "placed 14 of 14" in text.stdout
    assert re.search(r"single-zone shards\s+6\s+0", text.stdout), text.stdout


def test_plan_choices_are_the_extenders_http_answers(tmp_path: Path, redis_server, prefix: str,
                                                      serve_extender) -> None:
    dump = kubectl_dump()
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(dump))
    env = {"REDIS_EXTENDER_KEY_PREFIX": prefix + "plan:"}
    done = run_plan(path, "--json", "--redis-url", redis_server.url, env=env)
    assert done.returncode == 0, done.stderr
    planned = [(s["pod"], s["node"]) for s in json.loads(done.stdout)["steps"]]

    from extender.state.store import RedisStore

    store = RedisStore.from_url(redis_server.url, prefix, timeout=10)
    load_list(store, dump, Identifier(IdentitySettings()))
    served = serve_extender()
    by_key = {f"{i['metadata']['namespace']}/{i['metadata']['name']}": i for i in dump["items"] if i["kind"] == "Pod"}
    names = [i["metadata"]["name"] for i in dump["items"]
             if i["kind"] == "Node" and not i["spec"].get("unschedulable")]
    answered = []
    for key, _ in planned:  # kube-scheduler's calls, over HTTP
        pod = by_key[key]
        accepted = post(served.url + "/filter", {"Pod": pod, "NodeNames": names})["NodeNames"]
        node = accepted[0]
        if len(accepted) > 1:
            scores = post(served.url + "/prioritize", {"Pod": pod, "NodeNames": accepted})
            best = max(s["Score"] for s in scores)
            node = next(s["Host"] for s in scores if s["Score"] == best)
        bound = post(served.url + "/bind", {"PodName": pod["metadata"]["name"], "PodNamespace": "redis",
                                            "PodUID": pod["metadata"]["uid"], "Node": node})
        assert bound["Error"] == ""
        answered.append((key, node))
    assert answered == planned, (answered, planned)
    store.clear()
    RedisStore.from_url(redis_server.url, prefix + "plan:", timeout=10).clear()


PROBE = """<script>
window.addEventListener('load', () => {
  const shown = () => [...document.querySelectorAll('.panel')].filter(p => getComputedStyle(p).display !== 'none')
    .map(p => p.dataset.view);
  const first = shown();
  document.querySelector('label[for=view-before]').click();
  const then = shown();
  const chips = v => document.querySelectorAll(`.panel[data-view=${v}] .copy[data-shard]`).length;
  document.body.setAttribute('data-probe', JSON.stringify({first, then, before: chips('before'),
    after: chips('after'), scroll: document.documentElement.scrollHeight, height: window.innerHeight}));
});
</script>"""


def test_the_before_after_page_in_headless_chromium(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(kubectl_dump()))
    page = tmp_path / "plan.html"
    done = run_plan(path, "--html", str(page))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert "<script" not in html and "live ?" not in html
    assert "no live topology read" in html
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium("--dump-dom", probed.as_uri(), tmp=tmp_path).stdout
    match = re.search(r'data-probe="([^"]*)"', dom)
    assert match, "the probe script did not run"
    probe = json.loads(match.group(1).replace("&quot;", '"'))
    assert probe["first"] == ["after"] and probe["then"] == ["before"], probe
    assert probe["before"] == 6 and probe["after"] == 20, probe  # placed copies drawn in each panel
    assert probe["scroll"] <= probe["height"], probe  # the page itself never scrolls
    assert re.search(r'data-key="spof_zone">single-zone shards <b class="better"><span class="b">6</span>'
                     r' (?:&rarr;|→) <span class="a">0</span>', dom)
    shot = tmp_path / "plan.png"
    chromium(f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("SAVE_ARTIFACTS") == "1":
        import shutil

        shutil.copy(shot, Path(__file__).parents[1] / "artifacts" / "plan.png")
