"""`redis-extender run`: the embedded default a new user starts with.

Starts a private redis-server (unless --redis-url points at one). Without --kubeconfig it
generates a simulated cluster and has its pending Redis pods placed through the extender,
showing each placement and the placement quality before and after: by the real kube-scheduler
when this package runs from a checkout and the control-plane binaries are there (--scheduler
auto, the default, or kube), else by replaying kube-scheduler's calls in process
(extender/commands/plan.py; --scheduler replay); with one, it serves in live mode (syncing that
cluster into the private Redis and binding in it). Prints how to call the extender and what
kube-scheduler needs, then serves.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from extender.core import settings as settings_mod
from extender.core.identity import Identifier
from extender.local.localredis import LocalRedis
from extender.commands.plan import Bar, Outcome, compare, place_all, summary_table
from extender.reports.html import comparison
from extender.local.simulate import Shape, generate
from extender.state.loader import load_list
from extender.state.store import RedisStore


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
                from extender.service.server import serve

                serve(settings)
            return 0
        document = generate(Shape(nodes=ns.nodes, shards=SHARDS))
        setup = None if ns.no_place or ns.scheduler == "replay" else kube_scheduler_setup()
        if ns.scheduler == "kube" and setup is None and not ns.no_place:
            print(KUBE_NEEDS, file=sys.stderr)
            return 2
        if setup is not None:
            return run_with_kube_scheduler(ns, settings, document, *setup)
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
        from extender.service.server import serve

        serve(settings)
        return 0
    finally:
        if local:
            local.stop()


PACKAGE_DIR = Path(__file__).resolve().parents[1]  # extender/
SIMCLUSTER = Path("harness") / "simcluster.py"  # of a checkout, beside extender/
HARNESS = Path("harness") / "controlplane.py"
KUBE_CACHE_ROOT = Path("/var/cache/redis-extender")  # where scripts/kube-binaries.sh caches builds
KUBE_CACHE = KUBE_CACHE_ROOT / "kube-v*"
KUBE_NEEDS = ("redis-extender run --scheduler kube: needs a checkout of the repository (its "
              f"{SIMCLUSTER} and {HARNESS}, development tools never installed with the package) and "
              "the control-plane binaries kube-apiserver, kube-scheduler and etcd ("
              f"KUBE_BIN_DIR, or the newest {KUBE_CACHE} as ./scripts/test builds them).")
WAIT_PLACED = 60.0
"""Seconds the real kube-scheduler gets to place the pending pods before the summary is shown."""


def newest_cached_kube(root: Path = KUBE_CACHE_ROOT) -> Path:
    """The cached build of the newest Kubernetes release (the current one, when both the
    current and the v1.20.2 compatibility build are cached)."""
    def release(path: Path) -> tuple[int, ...]:
        digits = path.name.removeprefix("kube-v").split(".")
        return tuple(int(d) for d in digits) if all(d.isdigit() for d in digits) else ()
    builds = [p for p in root.glob("kube-v*") if p.is_dir() and release(p)]
    return max(builds, key=release, default=root / "kube-none")


def kube_scheduler_setup(package_dir: Path = PACKAGE_DIR) -> tuple[Path, Path] | None:
    """(checkout root, binaries directory) when the real kube-scheduler can place the
    simulation: a checkout beside this package holding the control-plane harness, and
    kube-apiserver + kube-scheduler (+ etcd there or on PATH) in $KUBE_BIN_DIR or the cache."""
    root = package_dir.parent
    if not (root / SIMCLUSTER).is_file() or not (root / HARNESS).is_file():
        return None
    own = settings_mod.kube_bin_dir()
    bin_dir = Path(own) if own else newest_cached_kube()
    if not all((bin_dir / b).is_file() for b in ("kube-apiserver", "kube-scheduler")):
        return None
    if not (bin_dir / "etcd").is_file() and not shutil.which("etcd"):
        return None
    return root, bin_dir


def run_with_kube_scheduler(ns: argparse.Namespace, settings: settings_mod.Settings, document: dict,
                            root: Path, bin_dir: Path) -> int:
    """The simulation on a real etcd + kube-apiserver + kube-scheduler (the checkout's
    harness/simcluster.py, a child process), the extender served in live mode on it:
    kube-scheduler calls filter, prioritize and bind; a watcher thread shows each pod as the
    state records its placement, then the summary; --once stops serving after that."""
    from extender.local.processes import stop_process, wait_until
    from extender.service.server import serve

    workdir = Path(tempfile.mkdtemp(prefix="redis-extender-run-"))
    (workdir / "cluster.json").write_text(json.dumps(document))
    port = settings.service.bind.rsplit(":", 1)[1]
    log = workdir / "simcluster.log"
    print(f"starting etcd, kube-apiserver and kube-scheduler from {bin_dir} (the scheduler calls the "
          f"extender on {settings.service.bind}: filter, prioritize, bind) ...")
    proc = subprocess.Popen([sys.executable, "-m", "harness.simcluster", str(workdir / "cluster.json"),
                             str(workdir), port, str(bin_dir)], cwd=root, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (workdir / "ready").exists(), timeout=120, what="the control plane", proc=proc, log=log)
        kubeconfig = (workdir / "ready").read_text()
        settings = settings_mod.load({"store.redis_url": settings.store.redis_url, "service.bind": ns.bind,
                                      "service.workers": ns.workers, "kube.kubeconfig": kubeconfig},
                                     config_file=ns.config)
        nodes = sum(1 for i in document["items"] if i["kind"] == "Node")
        print(f"simulated cluster in kube-apiserver: {nodes} nodes in 3 zones, 2 Redis clusters x {SHARDS} "
              f"shards x 3 copies, about half placed; syncing it into {settings.store.redis_url}")
        watcher = threading.Thread(target=watch_kube_scheduler, args=(settings, document, workdir, ns.no_serve),
                                   name="placement-watcher", daemon=True)
        watcher.start()
        serve(settings)
        return 0
    finally:
        stop_process(proc, grace=15)
        shutil.rmtree(workdir, ignore_errors=True)


def watch_kube_scheduler(settings: settings_mod.Settings, document: dict, workdir: Path, once: bool) -> None:
    """Wait for the extender and its state, read "before", let the pending pods be created,
    show each as its placement is recorded (the extender's bind), then "after"."""
    from extender.commands.plan import Step, queue, read_document
    from extender.local.processes import http_ok
    from extender.state.inventory import read_inventory

    try:
        store = RedisStore.from_url(settings.store.redis_url, settings.store.key_prefix, timeout=10)
        ready = f"http://{settings.service.bind}/readyz"
        deadline = time.monotonic() + 60
        while not http_ok(ready, timeout=0.5):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready} did not answer 200 within 60 s")
            time.sleep(0.1)
        before = read_document(store, settings)
        identifier = Identifier(settings.identity)
        pending = [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                   for p in queue([i for i in document["items"] if i["kind"] == "Pod"], identifier)]
        labels = {i["metadata"]["name"]: i["metadata"]["labels"] for i in document["items"] if i["kind"] == "Node"}
        levels = [lv for lv in settings.domains.levels if lv != "kubernetes.io/hostname"]
        print(f"\nkube-scheduler places the {len(pending)} pending Redis pods through the extender:", flush=True)
        (workdir / "go").touch()
        bar, seen, steps = Bar(), set[str](), []
        wanted = set(pending)
        deadline = time.monotonic() + WAIT_PLACED
        while len(seen) < len(wanted) and time.monotonic() < deadline:
            inventory = read_inventory(store, settings.domains.levels)
            for shards in inventory.shards.values():
                for copies in shards.values():
                    for c in copies:
                        if c.pod in wanted and c.pod not in seen:
                            seen.add(c.pod)
                            step = Step(c.pod, c.node, None, len(labels), 0, "bound by kube-scheduler",
                                        {lv: labels.get(c.node, {}).get(lv, "?") for lv in levels})
                            steps.append(step)
                            bar(len(seen), len(wanted), step)
            time.sleep(0.2)
        steps += [Step(p, None, None, len(labels), 0, f"not bound within {WAIT_PLACED:.0f} s")
                  for p in pending if p not in seen]
        after = read_document(store, settings)
        print_outcome(settings, Outcome(tuple(steps), before, after))
        print(instructions(settings.service.bind, write_sample(document)), flush=True)
    except Exception as exc:  # shown, never a silent thread death
        print(f"redis-extender run: watching kube-scheduler failed: {exc}", file=sys.stderr, flush=True)
    if once:
        os.kill(os.getpid(), signal.SIGTERM)  # gunicorn's arbiter stops the workers and the syncer


def show_placement(settings: settings_mod.Settings, store: RedisStore, document: dict) -> Outcome:
    """Place the simulated cluster's pending Redis pods through the extender's Decider, as
    kube-scheduler would call it (extender/commands/plan.py), printing each placement with a progress
    bar, then the before/after summary and where the pages are."""
    from extender.engine.decider import Decider
    from extender.state.cache import open_cache

    cache = open_cache(settings)
    decider = Decider(settings, cache, Identifier(settings.identity))
    print("\nplacing the pending Redis pods as kube-scheduler would call the extender "
          "(filter -> prioritize -> bind on the best score, in its queue order):")
    outcome = place_all(decider, store, settings, document, progress=Bar())
    print_outcome(settings, outcome)
    return outcome


def print_outcome(settings: settings_mod.Settings, outcome: Outcome) -> None:
    print(f"\nplaced {outcome.placed} of {len(outcome.steps)} pending Redis pods; placement quality:")
    print(summary_table(compare(outcome.before, outcome.after)))
    page = Path(tempfile.gettempdir()) / "redis-extender-before-after.html"
    page.write_text(comparison(outcome.before, outcome.after, compare(outcome.before, outcome.after),
                               [s.to_json() for s in outcome.steps]), encoding="utf-8")
    print(f"\nbefore/after page: file://{page}")
    print(f"live report (while serving): http://{settings.service.bind}/report.html "
          f"(JSON: /report; table: redis-extender report --redis-url {settings.store.redis_url})", flush=True)


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
