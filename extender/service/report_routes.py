"""GET /report (JSON) and GET /report.html, and the report's Prometheus gauges.

Wiring: extender/service/app.py's create_app calls `register(app, settings, client)` with a
client of the state's Redis of its own, on purpose: the decisions' socket timeout (setting
store.socket_timeout) suits one small pipeline, not a read of every shard. The gauges are
refreshed whenever a report is computed (a scrape does not compute one: point a probe or a
cron at /report to keep them current).

Query parameters: `max_lag` (bytes, default 1 MiB), `fail_on` (as the CLI's --fail-on; the
document then lists its breaches and /report answers 200 either way).
"""
from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, request
from prometheus_client import Gauge

from extender.core.settings import Settings
from extender.state.inventory import read_inventory
from extender.state.keeper_store import load_all as load_keeper
from extender.state.connect import StoreError
from extender.state.store import RedisStore
from extender.reports.html import page
from extender.analysis.placement import DEFAULT_MAX_LAG
from extender.reports.render import compose, document, parse_fail_on

log = logging.getLogger(__name__)

_LEVEL = ["level"]
SPOF = Gauge("redis_extender_report_spof_shards", "Shards whose healthy copies sit in one domain", _LEVEL,
             multiprocess_mode="mostrecent")
WORST_LOSS = Gauge("redis_extender_report_worst_loss_ratio",
                   "Largest share of a cluster's data lost with one domain", _LEVEL, multiprocess_mode="mostrecent")
WRITE_DISRUPTION = Gauge("redis_extender_report_write_disruption_ratio",
                         "Largest share of a cluster's masters in one domain", _LEVEL, multiprocess_mode="mostrecent")
QUORUM_UNSAFE = Gauge("redis_extender_report_quorum_unsafe_clusters",
                      "Clusters where one domain holds ceil(M/2) masters or more", _LEVEL,
                      multiprocess_mode="mostrecent")
MASTER_SKEW = Gauge("redis_extender_report_master_skew", "Max - min masters per domain (worst cluster)", _LEVEL,
                    multiprocess_mode="mostrecent")
DIVERSITY_MIN = Gauge("redis_extender_report_diversity_min", "Lowest per-shard domain diversity (0..1)", _LEVEL,
                      multiprocess_mode="mostrecent")
SURVIVING = Gauge("redis_extender_report_surviving_copies_min",
                  "Fewest copies a shard keeps after its worst single-domain loss", _LEVEL,
                  multiprocess_mode="mostrecent")
HEADROOM = Gauge("redis_extender_report_failure_headroom_bytes",
                 "Free memory elsewhere minus memory requested on the worst domain", _LEVEL,
                 multiprocess_mode="mostrecent")
ADVICE_STEPS = Gauge("redis_extender_report_advice_steps", "Failovers the advice asks for",
                     multiprocess_mode="mostrecent")
MISMATCHES = Gauge("redis_extender_report_live_mismatches", "Differences between live topology and the cache",
                   multiprocess_mode="mostrecent")
_CLUSTER = ["cluster", "level"]
CLUSTER_MASTER_SKEW = Gauge("redis_extender_report_cluster_master_skew", "Max - min masters per domain, per cluster",
                            _CLUSTER, multiprocess_mode="mostrecent")
CLUSTER_SPOF = Gauge("redis_extender_report_cluster_spof_shards", "Shards whose healthy copies sit in one domain, "
                     "per cluster", _CLUSTER, multiprocess_mode="mostrecent")
CLUSTER_QUORUM_UNSAFE = Gauge("redis_extender_report_cluster_quorum_unsafe",
                              "1 when one domain holds ceil(M/2) of the cluster's masters or more", _CLUSTER,
                              multiprocess_mode="mostrecent")
CLUSTER_WORST_LOSS = Gauge("redis_extender_report_cluster_worst_loss_ratio",
                           "Share of the cluster's data lost with its worst domain", _CLUSTER,
                           multiprocess_mode="mostrecent")
COMPUTED = Gauge("redis_extender_report_computed_timestamp_seconds", "When the last report was computed",
                 multiprocess_mode="max")


def register(app: Flask, settings: Settings, store: RedisStore) -> None:
    levels = settings.domains.levels

    def build() -> dict[str, Any] | Response:
        try:
            max_lag = int(request.args.get("max_lag", DEFAULT_MAX_LAG))
            limits = parse_fail_on(request.args["fail_on"]) if "fail_on" in request.args else None
        except ValueError as exc:
            return _json({"Error": str(exc)}, 400)
        try:
            inventory = read_inventory(store, levels)
        except StoreError as exc:
            return _json({"Error": f"redis unreachable: {exc}"}, 503)
        report, plans = compose(inventory, max_lag)
        doc = document(report, plans, limits)
        try:  # the keeper's memory and last decision per cluster (written by the sync leader)
            doc["keeper"] = load_keeper(store, sorted(inventory.shards))
        except StoreError as exc:
            doc["keeper"] = {}
            log.warning("report: keeper state unreadable: %s", exc)
        update_gauges(doc)
        return doc

    @app.get("/report")
    def report_json() -> Response:
        doc = build()
        return doc if isinstance(doc, Response) else _json(doc, 200)

    @app.get("/report.html")
    def report_html() -> Response:
        doc = build()
        if isinstance(doc, Response):
            return doc
        return Response(page(doc), mimetype="text/html",
                        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


def update_gauges(doc: dict[str, Any]) -> None:
    for name, m in doc["per_level"].items():
        SPOF.labels(name).set(m["spof"])
        WORST_LOSS.labels(name).set(m["worst_loss"]["share"])
        WRITE_DISRUPTION.labels(name).set(m["write_disruption"]["share"])
        QUORUM_UNSAFE.labels(name).set(len(m["quorum_unsafe"]))
        MASTER_SKEW.labels(name).set(m["master_skew"])
        DIVERSITY_MIN.labels(name).set(m["diversity"]["min"])
        if m["surviving_copies"] is not None:
            SURVIVING.labels(name).set(m["surviving_copies"])
        HEADROOM.labels(name).set(m["headroom"]["margin"])
    for gauge in (CLUSTER_MASTER_SKEW, CLUSTER_SPOF, CLUSTER_QUORUM_UNSAFE, CLUSTER_WORST_LOSS):
        gauge.clear()  # a cluster that is gone leaves no series behind
    for cluster in doc["clusters"]:
        for name, lv in cluster["levels"].items():
            CLUSTER_MASTER_SKEW.labels(cluster["id"], name).set(lv["master_skew"])
            CLUSTER_SPOF.labels(cluster["id"], name).set(len(lv["spof"]))
            CLUSTER_QUORUM_UNSAFE.labels(cluster["id"], name).set(1 if lv["quorum_safe"] is False else 0)
            CLUSTER_WORST_LOSS.labels(cluster["id"], name).set(lv["worst_loss"]["share"])
    ADVICE_STEPS.set(doc["summary"]["advice_steps"])
    MISMATCHES.set(doc["summary"]["live_mismatch"])
    COMPUTED.set(doc["generated_at"])


def _json(body: Any, status: int) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")
