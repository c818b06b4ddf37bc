"""The Flask app factory and its routes: capped read -> validate (400) -> core -> encode.

Routes:
  POST /filter, /prioritize, /bind   the extender verbs (extender-protocol)
  GET  /healthz                      the process answers
  GET  /readyz                       Redis reachable and the state whole, as the verbs find it (503 otherwise)
  GET  /metrics                      Prometheus
"""
from __future__ import annotations

import logging
import time

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..identity import Identifier
from ..reports.routes import register as register_reports
from ..protocol import (ExtenderArgs, NamesMemo, NodeMemo, ProtocolError, bind_reply, filter_reply, parse_binding, parse_extender_args,
                        prioritize_reply)
from ..settings import Settings
from ..state.cache import StateCache, StateUnavailable, StoreFailed, open_cache
from ..state.redis_store import connect
from . import metrics
from .decisions import Binder, Decider, PendingCheck

log = logging.getLogger(__name__)
JSON = "application/json"


def create_app(settings: Settings, cache: StateCache | None = None, binder: Binder | None = None,
               pending: PendingCheck | None = None) -> Flask:
    app = Flask("redis-extender")
    app.config["MAX_CONTENT_LENGTH"] = settings.service.max_body_bytes
    if cache is None:
        cache = open_cache(settings)
        cache.warm()
    cache.stats.listeners.append(metrics.cache_listener)
    identifier = Identifier(settings.identity)
    decider = Decider(settings, cache, identifier, pending)
    memo = NamesMemo()
    node_memo = NodeMemo(settings.domains.levels)
    app.extensions["redis_extender"] = decider

    def reply(body: bytes, verb: str, code: int = 200) -> Response:
        metrics.REQUESTS.labels(verb, str(code)).inc()
        metrics.LATENCY.labels(verb).observe(time.perf_counter() - g.started)
        return Response(body, status=code, mimetype=JSON)

    def bad(verb: str, message: str, code: int = 400) -> Response:
        return reply(orjson.dumps({"Error": message}), verb, code)

    def read_args() -> ExtenderArgs:
        """The request's ExtenderArgs; a ProtocolError becomes a 400 (handler below)."""
        with metrics.PHASE.labels("parse").time():
            return parse_extender_args(request.get_data(cache=False), identifier, memo, node_memo)

    @app.before_request
    def start_clock() -> None:
        g.started = time.perf_counter()

    @app.errorhandler(ProtocolError)
    def protocol_error(exc: ProtocolError) -> Response:
        return bad(request.path.strip("/") or "other", str(exc))

    @app.post("/filter")
    def filter_route() -> Response:
        args = read_args()
        result, error = decider.filter(args)
        metrics.DECISIONS.labels("error" if error else result.outcome.value).inc()
        if result.unknown_domain_nodes:
            metrics.UNKNOWN_DOMAIN.inc(result.unknown_domain_nodes)
        with metrics.PHASE.labels("encode").time():
            body = filter_reply(args, result.accepted, result.failed, result.unresolvable, error,
                                settings.service.unresolvable_in_failed)
        return reply(body, "filter")

    @app.post("/prioritize")
    def prioritize_route() -> Response:
        args = read_args()
        scores = decider.prioritize(args)
        with metrics.PHASE.labels("encode").time():
            body = prioritize_reply(args.node_names, scores)
        return reply(body, "prioritize")

    @app.post("/bind")
    def bind_route() -> Response:
        args = parse_binding(request.get_data(cache=False))
        error = decider.bind(args.pod_namespace, args.pod_name, args.pod_uid, args.node, binder)
        return reply(bind_reply(error), "bind")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"ok"}', mimetype=JSON)

    @app.get("/readyz")
    def readyz() -> Response:
        try:
            meta = cache.probe()
        except StoreFailed as exc:
            return Response(orjson.dumps({"status": "unready", "reason": f"redis unreachable: {exc}"}),
                            status=503, mimetype=JSON)
        if "loaded_at" not in meta:
            return Response(orjson.dumps({"status": "unready", "reason": "no state loaded yet"}),
                            status=503, mimetype=JSON)
        try:  # the verbs' own predicate: an epoch present and the one the tables were built with
            decider.snapshots.check_whole()
        except StateUnavailable as exc:
            return Response(orjson.dumps({"status": "unready", "reason": str(exc)}), status=503, mimetype=JSON)
        metrics.STATE_AGE.set(float(meta["loaded_at"]))
        return Response(orjson.dumps({"status": "ready", **meta}), mimetype=JSON)

    @app.get("/metrics")
    def metrics_route() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        verb = request.path.strip("/") or "other"
        return bad(verb, f"request body over the {settings.service.max_body_bytes} byte cap", 413)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return Response(orjson.dumps({"Error": f"{exc.code} {exc.name}: {exc.description}"}),
                        status=exc.code or 500, mimetype=JSON)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.path)
        return Response(orjson.dumps({"Error": f"internal error: {type(exc).__name__}"}),
                        status=500, mimetype=JSON)

    # Reports read the whole placement: their own client, without the 30 ms decision timeout.
    register_reports(app, settings, connect(settings.store.redis_url, timeout=settings.store.bulk_timeout))
    return app

