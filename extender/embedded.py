"""`redis-extender run`: the embedded default a new user starts with.

Starts a private redis-server (unless --redis-url points at one). Without --kubeconfig it
generates a simulated cluster, loads it and places its pending Redis pods through the
extender as kube-scheduler would call it (extender/plan.py), showing each placement and the
placement quality before and after; with one, it serves in live mode (syncing that
cluster into the private Redis and binding in it). Prints how to call the extender and what
kube-scheduler needs, then serves.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from . import settings as settings_mod
from .identity import Identifier
from .localredis import LocalRedis
from .plan import Bar, Outcome, compare, place_all, summary_table
from .reports.html import comparison
from .simulate import Shape, generate
from .state.loader import load_list
from .state.redis_store import RedisStore


SHARDS = 6
"""Shards per simulated Redis cluster: 6 masters over 3 zones can keep a majority when any one
zone is lost (2 per zone < 3); 4 could not (one zone holds 2 = half)."""


def run(ns: argparse.Namespace) -> int:
    local = None
    url = ns.redis_url
    if not url:
        local = LocalRedis().start()
        url = local.url
        print(f"started redis-server on {url} (private, not persisted)")
    try:
        settings = settings_mod.load({"store.redis_url": url, "service.bind": ns.bind,
                                      "service.workers": ns.workers, "kube.kubeconfig": ns.kubeconfig},
                                     config_file=ns.config)
        if settings.kube.enabled:
            print(f"live mode: syncing {ns.kubeconfig} into {url}; binding there")
            print(KUBE_CONFIG.format(bind=settings.service.bind, bind_line="    bindVerb: bind\n"))
            if not ns.no_serve:
                from .service.server import serve

                serve(settings)
            return 0
        document = generate(Shape(nodes=ns.nodes, shards=SHARDS))
        store = RedisStore.from_url(url, settings.store.key_prefix, timeout=10)
        nodes, pods = load_list(store, document, Identifier(settings.identity), source="simulate")
        print(f"loaded a simulated cluster: {nodes} nodes in 3 zones, {pods} pods "
              f"(2 Redis clusters x {SHARDS} shards x 3 copies, about half of them placed, masters first)")
        sample = write_sample(document)  # before placing: a pod still pending
        if not ns.no_place:
            show_placement(settings, store, document)
        print(instructions(settings.service.bind, sample))
        if ns.no_serve:
            return 0
        from .service.server import serve

        serve(settings)
        return 0
    finally:
        if local:
            local.stop()


def show_placement(settings: settings_mod.Settings, store: RedisStore, document: dict) -> Outcome:
    """Place the simulated cluster's pending Redis pods through the extender's Decider, as
    kube-scheduler would call it (extender/plan.py), printing each placement with a progress
    bar, then the before/after summary and where the pages are."""
    from .service.decisions import Decider
    from .state.cache import open_cache

    cache = open_cache(settings)
    decider = Decider(settings, cache, Identifier(settings.identity))
    print("\nplacing the pending Redis pods as kube-scheduler would call the extender "
          "(filter -> prioritize -> bind on the best score, in its queue order):")
    outcome = place_all(decider, store, settings, document, progress=Bar())
    print(f"\nplaced {outcome.placed} of {len(outcome.steps)} pending Redis pods; placement quality:")
    print(summary_table(compare(outcome.before, outcome.after)))
    page = Path(tempfile.gettempdir()) / "redis-extender-before-after.html"
    page.write_text(comparison(outcome.before, outcome.after, compare(outcome.before, outcome.after),
                               [s.to_json() for s in outcome.steps]), encoding="utf-8")
    print(f"\nbefore/after page: file://{page}")
    print(f"live report (while serving): http://{settings.service.bind}/report.html "
          f"(JSON: /report; table: redis-extender report --redis-url {settings.store.redis_url})")
    return outcome


def write_sample(document: dict) -> Path:
    pending = next(i for i in document["items"]
                   if i["kind"] == "Pod" and "nodeName" not in i["spec"] and i["metadata"]["namespace"] == "redis")
    names = [i["metadata"]["name"] for i in document["items"] if i["kind"] == "Node"][:6]
    sample = Path(tempfile.gettempdir()) / "redis-extender-sample.json"
    sample.write_text(json.dumps({"Pod": pending, "NodeNames": names}))
    return sample


def instructions(bind: str, sample: Path) -> str:
    return f"""
Try it (another terminal); {sample} holds a Redis pod and 6 candidate nodes:
  curl -s http://{bind}/filter -H 'Content-Type: application/json' -d @{sample}
  curl -s http://{bind}/prioritize -H 'Content-Type: application/json' -d @{sample}
  curl -s http://{bind}/readyz ; curl -s http://{bind}/metrics | grep redis_extender_

{KUBE_CONFIG.format(bind=bind, bind_line="")}"""


KUBE_CONFIG = """kube-scheduler needs (KubeSchedulerConfiguration; scheduler-config/ has complete files):
  extenders:
  - urlPrefix: "http://{bind}"
    filterVerb: filter
    prioritizeVerb: prioritize
{bind_line}    weight: 12
    nodeCacheCapable: true
    httpTimeout: 2s
"""
