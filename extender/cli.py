"""redis-extender: serve | sync | load | explain | simulate | run | plan | bench | report | rebalance | keeper | config.

Every subcommand that talks to Redis takes --redis-url (default: $REDIS_URL, else the
settings' default). Configuration errors are printed together and exit with code 2.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import orjson

from extender.core import settings as settings_mod
from extender.commands.args import add_common, load_failed, load_settings
from extender.core.settings import DEFAULTS, SettingsError


def _kube(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--kubeconfig", help="live mode: sync from this cluster and bind in it")
    group.add_argument("--in-cluster", action="store_true", default=None,
                       help="live mode with the pod's service account")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redis-extender", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the extender verbs under gunicorn")
    add_common(serve)
    serve.add_argument("--bind", help=f"HOST:PORT (default {DEFAULTS.service.bind})")
    serve.add_argument("--workers", type=int, help=f"gunicorn workers (default {DEFAULTS.service.workers})")
    serve.add_argument("--threads", type=int, help=f"threads per worker (default {DEFAULTS.service.threads})")
    serve.add_argument("--certfile", help="TLS certificate: serve HTTPS")
    serve.add_argument("--keyfile", help="TLS private key")
    serve.add_argument("--client-ca-file", help="CA bundle: require client certificates (mTLS) for every request "
                                                "on --bind")
    serve.add_argument("--public-only", action="store_true", help=argparse.SUPPRESS)  # PublicChild
    serve.add_argument("--public-bind", help="HOST:PORT: plain listener for /healthz, /readyz, /metrics and "
                                             "reports (no verbs)")
    _kube(serve)

    sync = sub.add_parser("sync", help="list+watch Nodes and Pods into Redis (leader-elected)")
    add_common(sync)
    _kube(sync)

    load = sub.add_parser("load", help="load a Kubernetes List of Nodes and Pods into Redis")
    add_common(load)
    load.add_argument("file", help="JSON file ('-' for stdin), e.g. kubectl get nodes,pods -A -o json")
    load.add_argument("--merge", action="store_true", help="merge into the state instead of replacing it")

    explain = sub.add_parser(
        "explain", help="why this node? every candidate node of a Redis pod: verdict, reason, score terms, score",
        description="Every node of the state as a candidate for a pending (or hypothetical) Redis pod, with "
                    "the filter's verdict and reason, each score term and the final score, as filter and "
                    "prioritize would answer now. With --from it works offline on a dump, before any install.")
    add_common(explain)
    explain.add_argument("pod", nargs="?", metavar="NAMESPACE/POD", help="a pod of the state (synced or loaded)")
    explain.add_argument("--pod-file", metavar="FILE",
                         help="a Pod as JSON (kubectl get pod -o json, or a hypothetical one; '-' for stdin)")
    explain.add_argument("--from", dest="dump", metavar="DUMP",
                         help="offline: load this kubectl get nodes,pods -A -o json dump into a private "
                              "redis-server and explain against it (the state at --redis-url is not touched)")
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")

    sim = sub.add_parser("simulate", help="write a synthetic cluster as a Kubernetes List")
    for name, default in (("nodes", 30), ("zones", 3), ("regions", 1), ("racks-per-zone", 0),
                          ("clusters", 2), ("shards", 4), ("replicas", 2), ("filler-per-node", 2),
                          ("seed", 1)):
        sim.add_argument(f"--{name}", type=int, default=default)
    sim.add_argument("--placed", type=float, default=0.5, help="fraction of Redis pods already placed")
    sim.add_argument("--out", required=True, help="output file ('-' for stdout)")

    run = sub.add_parser("run", help="the embedded default: local Redis + simulated cluster + extender")
    add_common(run)
    run.add_argument("--bind", default=DEFAULTS.service.bind)
    run.add_argument("--nodes", type=int, default=30)
    run.add_argument("--workers", type=int, default=DEFAULTS.service.workers)
    run.add_argument("--no-serve", "--once", action="store_true",
                     help="load, place and print, then stop instead of serving")
    run.add_argument("--no-place", action="store_true", help="leave the pending pods pending (serve only)")
    run.add_argument("--scheduler", choices=("auto", "kube", "replay"), default="auto",
                     help="who places the pending pods: kube = the real kube-scheduler (needs a checkout and "
                          "the control-plane binaries), replay = its calls replayed in process, auto = kube "
                          "when possible (default)")
    run.add_argument("--kubeconfig", help="a real cluster instead of the simulation: sync from it and bind in it")

    plan = sub.add_parser("plan", help="place a dump's pending Redis pods as the extender would, offline",
                          description="Load a `kubectl get nodes,pods -A -o json` dump into a private "
                                      "redis-server (or --redis-url: its state is REPLACED), place the pending "
                                      "Redis pods as kube-scheduler would call the extender, and print where "
                                      "each goes, why, and the placement quality before and after. "
                                      "No cluster is touched.")
    add_common(plan)
    plan.add_argument("file", help="JSON file ('-' for stdin): kubectl get nodes,pods -A -o json")
    plan.add_argument("--json", action="store_true", help="print the result as JSON (schema redis-extender.commands.plan/v1)")
    plan.add_argument("--html", metavar="FILE", help="also write the before/after page to FILE")

    bench = sub.add_parser("bench", help="latency and throughput at scale over loopback HTTP")
    bench.add_argument("--nodes", type=int, default=5000)
    bench.add_argument("--shards", type=int, default=1000, help="shards in all (3 copies each)")
    bench.add_argument("--calls", type=int, default=300, help="filter+prioritize pairs a case")
    bench.add_argument("--workers", type=int, default=DEFAULTS.service.workers, help="gunicorn workers of the extender")
    bench.add_argument("--concurrency", type=int, default=4, help="clients of the concurrent case")
    bench.add_argument("--quick", action="store_true", help="skip full Node bodies at --nodes")
    bench.add_argument("--connections", action="store_true",
                       help="only the slow/idle/half-TLS connections benchmark (benchmarks/bench_connections.py of "
                            "a checkout)")
    bench.add_argument("--scheduler", action="store_true",
                       help="also schedule pods with the real kube-scheduler, with and without the extender "
                            "(needs a checkout of the repository and the control-plane binaries)")
    bench.add_argument("--placement", action="store_true",
                       help="only the placement quality of bursts through the real kube-scheduler, extender vs "
                            "native rules (benchmarks/bench_placement.py; a checkout and the control-plane binaries)")
    bench.add_argument("--runs", type=int, default=5, help="--placement: bursts per topology and mode")
    bench.add_argument("--out", help="also write the results as JSON")

    from extender.commands.report import add_parsers as add_report_parsers

    add_report_parsers(sub)  # report, rebalance

    from extender.commands.keeper import add_parser as add_keeper_parser

    add_keeper_parser(sub)

    config = sub.add_parser("config", help="validate the configuration, or print its documentation")
    add_common(config)
    config.add_argument("--markdown", action="store_true", help="print the README table of options")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(COMMANDS[ns.command](ns) or 0)
    except SettingsError as exc:
        print(f"redis-extender: {exc}", file=sys.stderr)
        return 2


def cmd_serve(ns: argparse.Namespace) -> int:
    from extender.service.server import serve

    settings = load_settings(ns, **{"service.bind": ns.bind, "service.workers": ns.workers,
                                    "service.threads": ns.threads, "service.certfile": ns.certfile,
                                    "service.keyfile": ns.keyfile, "service.client_ca_file": ns.client_ca_file,
                                    "service.public_bind": ns.public_bind, "kube.kubeconfig": ns.kubeconfig,
                                    "kube.in_cluster": ns.in_cluster})
    serve(settings, public_only=ns.public_only)
    return 0


def cmd_sync(ns: argparse.Namespace) -> int:
    import signal
    import threading

    from extender.core.identity import Identifier
    from extender.state.k8s_sync import run_sync
    from extender.state.store import RedisStore

    settings = load_settings(ns, **{"kube.kubeconfig": ns.kubeconfig, "kube.in_cluster": ns.in_cluster})
    if not settings.kube.enabled:
        print("redis-extender sync: give --kubeconfig PATH or --in-cluster", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    store = RedisStore.from_url(settings.store.redis_url, settings.store.key_prefix, settings.store.bulk_timeout)
    from extender.actuation.refresher import run_refresher

    def refresher(term: threading.Event) -> None:  # the leader also reads live topology, and keeps
        if settings.keeper.mode != "off":
            from extender.actuation.keeper import run_keeper
            from extender.actuation.kube import KubeActions
            from extender.state.k8s_sync import api_client

            kube = KubeActions(api_client(settings.kube.kubeconfig, settings.kube.in_cluster))
            threading.Thread(target=run_keeper, args=(store, settings, term, kube), name="keeper",
                             daemon=True).start()
        run_refresher(store, settings, term)

    run_sync(settings.kube.kubeconfig, settings.kube.in_cluster, store, Identifier(settings.identity),
             stop, settings.kube.lock_ttl, refresher if settings.live.refresh > 0 else None)
    return 0


def cmd_load(ns: argparse.Namespace) -> int:
    from extender.core.identity import Identifier
    from extender.state.loader import LoadError, load_list
    from extender.state.connect import StoreError
    from extender.state.store import RedisStore

    settings = load_settings(ns)
    try:
        data = sys.stdin.buffer.read() if ns.file == "-" else Path(ns.file).read_bytes()
        document = orjson.loads(data)
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"redis-extender load: cannot read {ns.file}: {exc}", file=sys.stderr)
        return 1
    store = RedisStore.from_url(settings.store.redis_url, settings.store.key_prefix, timeout=10)
    try:
        nodes, pods = load_list(store, document, Identifier(settings.identity), replace=not ns.merge)
    except (LoadError, StoreError) as exc:
        return load_failed("load", ns.file, settings.store.redis_url, exc, bad_dump=1, no_redis=1)
    print(f"loaded {nodes} nodes and {pods} pods into {settings.store.redis_url}")
    return 0


def cmd_explain(ns: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from extender.core.identity import Identifier
    from extender.local.localredis import LocalRedis
    from extender.policy.explain import render_table
    from extender.protocol import ProtocolError, parse_pod
    from extender.engine.decider import Decider
    from extender.state.cache import StateCache, StateUnavailable
    from extender.state.loader import LoadError, load_list
    from extender.state.connect import StoreError
    from extender.state.store import RedisStore

    if bool(ns.pod) == bool(ns.pod_file):
        print("redis-extender explain: give NAMESPACE/POD or --pod-file FILE (one of them)", file=sys.stderr)
        return 2
    settings = load_settings(ns)
    identifier = Identifier(settings.identity)
    pod_object = None
    if ns.pod_file:
        try:
            data = sys.stdin.buffer.read() if ns.pod_file == "-" else Path(ns.pod_file).read_bytes()
            pod_object = orjson.loads(data)
            pod = parse_pod(pod_object, identifier)
        except (OSError, orjson.JSONDecodeError, ProtocolError) as exc:
            print(f"redis-extender explain: cannot read the pod in {ns.pod_file}: {exc}", file=sys.stderr)
            return 1
    with ExitStack() as stack:
        url, prefix = settings.store.redis_url, settings.store.key_prefix
        try:
            if ns.dump:
                document = orjson.loads(Path(ns.dump).read_bytes())
                url = stack.enter_context(LocalRedis()).url
            store = RedisStore.from_url(url, prefix, timeout=settings.store.bulk_timeout)
            if ns.dump:
                load_list(store, document, identifier, source="explain")
        except (OSError, orjson.JSONDecodeError, LoadError, RuntimeError) as exc:
            print(f"redis-extender explain: cannot load {ns.dump}: {exc}", file=sys.stderr)
            return 1
        except StoreError as exc:
            print(f"redis-extender explain: Redis at {url}: {exc}", file=sys.stderr)
            return 1
        decider = Decider(settings, StateCache(store, settings.domains.levels), identifier)
        try:
            if ns.pod:
                namespace, sep, name = ns.pod.partition("/")
                found = decider.pod_from_store(namespace, name) if sep and namespace and name else None
                if found is None:
                    print(f"redis-extender explain: {ns.pod} is not a Redis pod of the state "
                          f"({'the dump' if ns.dump else url}); give NAMESPACE/POD of one, or --pod-file",
                          file=sys.stderr)
                    return 1
                pod = found
            explanation = decider.explain(pod)
        except StateUnavailable as exc:
            print(f"redis-extender explain: Redis at {url}: {exc}", file=sys.stderr)
            return 1
    if ns.json:
        print(orjson.dumps(explanation.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_table(explanation))
    return 0


def cmd_simulate(ns: argparse.Namespace) -> int:
    from extender.local.simulate import Shape, generate

    shape = Shape(nodes=ns.nodes, zones=ns.zones, regions=ns.regions, racks_per_zone=ns.racks_per_zone,
                  clusters=ns.clusters, shards=ns.shards, replicas=ns.replicas, placed=ns.placed,
                  filler_per_node=ns.filler_per_node, seed=ns.seed)
    data = orjson.dumps(generate(shape), option=orjson.OPT_INDENT_2)
    if ns.out == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(ns.out).write_bytes(data)
        print(f"wrote {ns.out}", file=sys.stderr)
    return 0


def cmd_run(ns: argparse.Namespace) -> int:
    from extender.commands.embedded import run

    return run(ns)


def cmd_plan(ns: argparse.Namespace) -> int:
    from extender.commands.plan import main as plan_main

    return plan_main(ns)


def cmd_bench(ns: argparse.Namespace) -> int:
    from extender.commands import bench

    needs_checkout = ns.scheduler or ns.placement or ns.connections
    root = bench.checkout() if needs_checkout else None
    if needs_checkout and root is None:  # said before the minutes of the extender-alone bench
        print(bench.scheduler_bench_needs(), file=sys.stderr)
        return 2
    if ns.placement:
        assert root is not None
        return bench.run_checkout_bench(root, "benchmarks.bench_placement",
                                        ["--runs", str(ns.runs), *(["--out", ns.out] if ns.out else [])])
    if ns.connections:
        assert root is not None
        return bench.run_checkout_bench(root, "benchmarks.bench_connections")
    bench.main(nodes=ns.nodes, shards=ns.shards, calls=ns.calls, workers=ns.workers,
               concurrency=ns.concurrency, out=ns.out, quick=ns.quick)
    if root is not None:
        return bench.run_scheduler_bench(root, ["--out", f"{ns.out}.scheduler.json"] if ns.out else [])
    return 0


def cmd_reports(ns: argparse.Namespace) -> int:
    from extender.commands.report import run as run_reports

    return run_reports(ns)


def cmd_keeper(ns: argparse.Namespace) -> int:
    from extender.commands.keeper import run as run_keeper

    return run_keeper(ns)


def cmd_config(ns: argparse.Namespace) -> int:
    if ns.markdown:
        print(settings_mod.markdown_table())
        return 0
    settings = load_settings(ns)
    print(orjson.dumps(settings, option=orjson.OPT_INDENT_2, default=_plain).decode())
    return 0


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, frozenset)):
        return list(value)
    if hasattr(value, "__dict__"):
        return vars(value)
    raise TypeError


COMMANDS = {"serve": cmd_serve, "sync": cmd_sync, "load": cmd_load, "explain": cmd_explain, "simulate": cmd_simulate,
            "run": cmd_run, "plan": cmd_plan,
            "bench": cmd_bench, "report": cmd_reports, "rebalance": cmd_reports, "keeper": cmd_keeper,
            "config": cmd_config}

if __name__ == "__main__":
    sys.exit(main())
