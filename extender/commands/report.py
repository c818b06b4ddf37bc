"""`redis-extender report` and `redis-extender rebalance`.

report     read the state (and, with --refresh-live, each cluster's live topology first) and
           print the measures table, or the JSON document (--json); --html FILE writes the page.
           Exit codes: 0 fine, 1 a --fail-on threshold is breached, 2 bad arguments or
           configuration, 3 the state's Redis cannot be read.
rebalance  refresh one cluster's live topology, print the failover plan, and with --apply
           execute it step by step (actuation/rebalance.py). Exit 0 when every step was done
           (or only planned), 1 when a step stopped the run, 2/3 as above.

Wiring (extender/cli.py): `add_parsers(sub)` in build_parser(), and `run` for the commands
"report" and "rebalance" in COMMANDS. `python -m extender.commands.report ...` works standalone.
The common options and the settings come from extender/commands/args.py, as for every command; the
state is read through extender.state (state/inventory.py, actuation/nodes.py).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

import orjson

from extender.commands.args import add_common, load_settings
from extender.core.settings import Settings, SettingsError, environment_secret
from extender.state.connect import StoreError
from extender.state.store import RedisStore
from extender.actuation.nodes import Connect, connector
from extender.analysis.placement import DEFAULT_MAX_LAG, place
from extender.reports.render import (EXIT_BREACH, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, THRESHOLDS, compose, document,
                     parse_fail_on, table)

COMMANDS = ("report", "rebalance")
REPORT_TIMEOUT = 10.0
"""Seconds a call to the state's Redis may take in these commands (they read every shard)."""


def add_parsers(subparsers: Any) -> None:
    """Add the `report` and `rebalance` subcommands to an argparse subparsers object."""
    report = subparsers.add_parser(
        "report", help="placement-quality report (table, --json, --fail-on for cron/CI)",
        description="Placement-quality measures per domain level, risky shards and failover advice.",
        epilog="--fail-on keys: " + ", ".join(f"{t.key} ({'min' if t.direction == 'min' else 'max'})"
                                             for t in THRESHOLDS),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(report)
    report.add_argument("--json", action="store_true", help="print the JSON document (schema redis-extender.report/v1)")
    report.add_argument("--fail-on", metavar="KEY=N,...",
                        help="exit 1 when a summary value is past its limit, e.g. spof=0,master_skew=1,quorum_unsafe=0")
    report.add_argument("--refresh-live", metavar="CLUSTER=SEED", action="append", default=[],
                        help="fetch and store a cluster's live topology first: ns/name=HOST:PORT "
                             "(a cluster node) or ns/name=sentinel://HOST:PORT[/MASTER]; repeatable")
    report.add_argument("--html", metavar="FILE", help="also write the HTML page to FILE")
    _live_options(report)

    reb = subparsers.add_parser(
        "rebalance", help="print (or --apply) the CLUSTER FAILOVER steps that balance masters",
        description="Refresh a cluster's live topology, print the failover plan; --apply runs it.")
    add_common(reb)
    reb.add_argument("--cluster", required=True, help="the cluster id in the state, ns/name")
    reb.add_argument("--seed", metavar="HOST:PORT",
                     help="a node of the Redis Cluster (default: the seed of the stored live topology)")
    reb.add_argument("--apply", action="store_true", help="execute the plan (default: only print it)")
    reb.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each role change (default 10)")
    reb.add_argument("--json", action="store_true", help="print the result as JSON")
    _live_options(reb)


def _live_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pod-ip", metavar="IP[:PORT]=POD", action="append", default=[],
                        help="map a Redis node without announced hostname to its pod (ns/name or name); repeatable")
    parser.add_argument("--max-lag", type=int, default=DEFAULT_MAX_LAG,
                        help="replication offset bytes a replica may trail and count as in sync "
                             f"(default {DEFAULT_MAX_LAG})")
    parser.add_argument("--node-password-env", metavar="VAR",
                        help="environment variable holding the Redis nodes' password (requirepass/ACL)")


def run(ns: argparse.Namespace) -> int:
    try:
        if ns.command == "report":
            return cmd_report(ns)
        if ns.command == "rebalance":
            return cmd_rebalance(ns)
    except SettingsError as exc:
        print(f"redis-extender: {exc}", file=sys.stderr)
        return EXIT_USAGE
    raise ValueError(f"not a reports command: {ns.command}")


def _store(settings: Settings) -> RedisStore:
    """A client of its own: a report reads much more than a decision, so the decisions' socket
    timeout (setting store.socket_timeout) does not fit."""
    return RedisStore.from_url(settings.store.redis_url, settings.store.key_prefix, timeout=REPORT_TIMEOUT)


def _ip_map(items: Sequence[str]) -> dict[str, str]:
    result = {}
    for item in items:
        ip, sep, pod = item.partition("=")
        if not sep or not ip or not pod:
            raise ValueError(f"--pod-ip expects IP[:PORT]=POD, got {item!r}")
        result[ip] = pod
    return result


def _connector(ns: argparse.Namespace) -> Connect:
    """Clients of the live Redis nodes, with the password of --node-password-env."""
    password = environment_secret(ns.node_password_env) if ns.node_password_env else None
    return connector(password=password)


def cmd_report(ns: argparse.Namespace) -> int:
    from extender.state.inventory import read_inventory
    from extender.actuation.nodes import fetch
    from extender.state.live import store_live
    from extender.reports.html import page
    from extender.analysis.topology import parse_seed_spec

    settings = load_settings(ns)
    try:
        limits = parse_fail_on(ns.fail_on) if ns.fail_on else None
        seeds = [parse_seed_spec(s) for s in ns.refresh_live]
        ip_map = _ip_map(ns.pod_ip)
    except ValueError as exc:
        print(f"redis-extender report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store = _store(settings)
    try:
        for cluster, seed in seeds:
            topology = fetch(cluster, seed, ip_map, connect=_connector(ns))
            store_live(store, topology)
            if topology.error:
                print(f"redis-extender report: {cluster}: live topology from {seed}: {topology.error}",
                      file=sys.stderr)
        inventory = read_inventory(store, settings.domains.levels)
    except StoreError as exc:
        print(f"redis-extender report: Redis at {settings.store.redis_url}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        store.close()
    report, plans = compose(inventory, ns.max_lag)
    doc = document(report, plans, limits)
    if ns.html:
        with open(ns.html, "w", encoding="utf-8") as out:
            out.write(page(doc))
    if ns.json:
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(table(doc))
    return EXIT_BREACH if doc.get("breaches") else EXIT_OK


def cmd_rebalance(ns: argparse.Namespace) -> int:
    from extender.state.inventory import read_inventory
    from extender.actuation.nodes import fetch, node_opener
    from extender.state.live import load_live, store_live
    from extender.analysis.advice import plan_cluster
    from extender.analysis.measures import compute
    from extender.actuation.rebalance import rebalance, wait_converged
    from extender.reports.render import plan_line

    settings = load_settings(ns)
    try:
        ip_map = _ip_map(ns.pod_ip)
    except ValueError as exc:
        print(f"redis-extender rebalance: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store = _store(settings)
    connect = _connector(ns)
    say = (lambda text: print(text, file=sys.stderr)) if ns.json else print
    try:
        seed = ns.seed
        if not seed:
            stored = load_live(store, ns.cluster)
            if stored is None or not stored.seed:
                print(f"redis-extender rebalance: no stored live topology for {ns.cluster}: give --seed HOST:PORT",
                      file=sys.stderr)
                return EXIT_USAGE
            seed = stored.seed
        topology = fetch(ns.cluster, seed, ip_map, connect=connect)
        store_live(store, topology)
        if topology.error:
            print(f"redis-extender rebalance: {ns.cluster}: {seed}: {topology.error}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        inventory = read_inventory(store, settings.domains.levels)
        placement = place(inventory, ns.max_lag)
        view = next((c for c in placement.clusters if c.id == ns.cluster), None)
        if view is None:
            print(f"redis-extender rebalance: {ns.cluster} has no copies in the state", file=sys.stderr)
            return EXIT_USAGE
        plan = plan_cluster(placement, view)
        say(f"{ns.cluster}: masters per {plan.level}: {_counts(plan.before)} (skew {plan.skew_before}); "
            f"{len(plan.steps)} step(s)")
        for step in plan.steps:
            say("  " + plan_line(step.to_json(), plan.level))
        for note in plan.notes:
            say(f"  note: {note}")
        result = rebalance(plan, topology, apply=ns.apply, max_lag=ns.max_lag, timeout=ns.timeout,
                           open_node=node_opener(connect), log=lambda text: say("  " + text))
        if ns.apply and plan.steps:
            promoted = [r.step.promote for r in result.results if r.status == "done"]
            after = wait_converged(lambda: fetch(ns.cluster, seed, ip_map, connect=connect), promoted, ns.timeout)
            store_live(store, after)
            inventory = read_inventory(store, settings.domains.levels)
            report = compute(place(inventory, ns.max_lag))
            top = report.placement.top_level
            if top is not None:
                idx = next(i for i, c in enumerate(report.placement.clusters) if c.id == ns.cluster)
                cl = report.levels[top].clusters[idx]
                say(f"{ns.cluster}: now masters per {plan.level}: {_counts(cl.masters_per_domain)} "
                    f"(skew {cl.master_skew}, quorum {'safe' if cl.quorum_safe is not False else 'UNSAFE'})")
        elif plan.steps:
            say("(plan only: run with --apply to execute it)")
    except StoreError as exc:
        print(f"redis-extender rebalance: Redis at {settings.store.redis_url}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        store.close()
    if ns.json:
        sys.stdout.buffer.write(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    return EXIT_OK if result.ok else EXIT_BREACH


def _counts(counts: Any) -> str:
    return " ".join(f"{d}={n}" for d, n in dict(counts).items()) or "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redis-extender", description="placement reports and failover advice")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
