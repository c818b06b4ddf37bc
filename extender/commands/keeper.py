"""`redis-extender keeper --once [--dry-run]`: what the keeper would do now, and (without
--dry-run, in `act` mode) one round of it.

Reads the state, refreshes every cluster's live topology from its pods (as the sync leader's
refresher does), and prints one line per cluster: its drift, the next step and why it is held
back or blocked. With --dry-run nothing is sent and nothing stored. Without it, the round is
the sync leader's: refused while a sync leader holds the lock (that leader's keeper acts; two
actors would be one too many). Exit 0 when every cluster is balanced, 1 when one drifts, 2 bad
arguments or configuration, 3 the state's Redis cannot be read.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from extender.analysis.keeping import NONE, Decision
from extender.commands.args import add_common, load_settings

# The keeper's modules are imported when the command runs, never when the parser is built:
# the CLI builds every parser before `serve`, and the keeper's metrics (core/metrics.py) must
# not be created before serve points prometheus_client at its multiprocess directory.


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("keeper", help="what the keeper would do now (--once [--dry-run])",
                              description=__doc__.splitlines()[0])
    add_common(p)
    p.add_argument("--once", action="store_true", required=True, help="one round (the only way to run it by hand)")
    p.add_argument("--dry-run", action="store_true", help="decide only: send nothing, store nothing")
    p.add_argument("--kubeconfig", help="the cluster whose pods the keeper evicts and annotates with Events")
    p.add_argument("--in-cluster", action="store_true", default=None, help="with the pod's service account")
    p.add_argument("--json", action="store_true", help="print the decisions as JSON")


def run(ns: argparse.Namespace) -> int:
    from extender.actuation.keeper import Keeper
    from extender.actuation.refresher import refresh_all
    from extender.state.connect import StoreError, connect
    from extender.state.store import RedisStore

    settings = load_settings(ns, **{"kube.kubeconfig": ns.kubeconfig, "kube.in_cluster": ns.in_cluster})
    client = connect(settings.store.redis_url, timeout=10)
    store = RedisStore(client, settings.store.key_prefix)
    try:
        if not ns.dry_run and store.lock_holder():
            print(f"redis-extender keeper: the sync leader {store.lock_holder()} runs the keeper; "
                  "use --dry-run to see what it would do", file=sys.stderr)
            return 2
        kube = None
        if settings.kube.enabled:
            from extender.actuation.kube import KubeActions
            from extender.state.k8s_sync import api_client

            kube = KubeActions(api_client(settings.kube.kubeconfig, settings.kube.in_cluster))
        refresh_all(store, settings)
        decisions = Keeper(store, settings, kube).round(dry_run=ns.dry_run)
    except StoreError as exc:
        print(f"redis-extender keeper: Redis at {settings.store.redis_url}: {exc}", file=sys.stderr)
        return 3
    finally:
        client.close()
    if ns.json:
        sys.stdout.buffer.write(orjson.dumps([d.to_json() for d in decisions], option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(f"keeper mode {settings.keeper.mode}{' (dry run)' if ns.dry_run else ''}")
        for d in decisions:
            print(line(d))
    return 0 if all(not d.drift.any for d in decisions) else 1


def line(d: Decision) -> str:
    masters = ", ".join(f"{k} {v}" for k, v in d.drift.masters.items())
    lost = f"; lost: {', '.join(d.drift.lost)}" if d.drift.lost else ""
    misplaced = f"; misplaced shards: {', '.join(d.drift.misplaced)}" if d.drift.misplaced else ""
    head = f"{d.cluster}: masters per {d.drift.level or '-'}: {masters or '-'}{lost}{misplaced}"
    return head + ("" if d.action == NONE and d.reason == "balanced" else f"\n  {d.action}: {d.reason}")
