"""`redis-extender run`: the embedded default a new user starts with.

Starts a private redis-server (unless --redis-url points at one). Without --kubeconfig it
generates a simulated cluster and loads it; with one, it serves in live mode (syncing that
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
from .simulate import Shape, generate
from .state.loader import load_list
from .state.redis_store import RedisStore


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
        document = generate(Shape(nodes=ns.nodes))
        store = RedisStore.from_url(url, settings.store.key_prefix, timeout=10)
        nodes, pods = load_list(store, document, Identifier(settings.identity), source="simulate")
        print(f"loaded a simulated cluster: {nodes} nodes in 3 zones, {pods} pods "
              f"(2 Redis clusters x 4 shards x 3 copies, half of them placed)")
        print(instructions(settings.service.bind, document))
        if ns.no_serve:
            return 0
        from .service.server import serve

        serve(settings)
        return 0
    finally:
        if local:
            local.stop()


def instructions(bind: str, document: dict) -> str:
    pending = next(i for i in document["items"]
                   if i["kind"] == "Pod" and "nodeName" not in i["spec"] and i["metadata"]["namespace"] == "redis")
    names = [i["metadata"]["name"] for i in document["items"] if i["kind"] == "Node"][:6]
    sample = Path(tempfile.gettempdir()) / "redis-extender-sample.json"
    sample.write_text(json.dumps({"Pod": pending, "NodeNames": names}))
    return f"""
Try it (another terminal); {sample} holds a pending Redis pod and 6 candidate nodes:
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
