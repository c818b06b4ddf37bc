"""The Flask app factory and its routes: capped read -> validate (400) -> core -> encode.

Routes:
  POST /filter, /prioritize, /bind   the extender verbs (extender-protocol)
  POST /preempt                      the preemption verb: candidate nodes whose victims spare shards
  GET  /explain?pod=NS/POD           every candidate node of a stored pod: verdict, reason, terms, score
  POST /explain                      the same for a hypothetical pod (a Pod JSON body)
  GET  /healthz                      the process answers
  GET  /readyz                       Redis reachable and the state whole, as the verbs find it (503 otherwise)
  GET  /metrics                      Prometheus
  GET  /openapi.yaml                 the HTTP API (extender/service/openapi.yaml)
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from pathlib import Path
from typing import Any

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

try:  # gunicorn's reader raises these on a malformed or cut-short body; absent under a test client
    from gunicorn.http.errors import NoMoreData as _CutShort
    from gunicorn.http.errors import ParseException as _ChunkError
except ImportError:  # pragma: no cover
    _ChunkError = _CutShort = ()

from extender.core.identity import Identifier
from extender.core.model import PodRequest
from extender.service.report_routes import register as register_reports
from extender.core.quantity import prefix
from extender.protocol import (MAX_LABEL, MAX_NAME, ExtenderArgs, NamesMemo, NodeMemo, ProtocolError, bind_reply, check_name,
                               filter_reply, loads, parse_binding, parse_extender_args, parse_pod, parse_preemption_args, preemption_reply, prioritize_reply)
from extender.core.settings import Settings
from extender.state.cache import StateCache, StateUnavailable, StoreFailed, open_cache
from extender.state.store import RedisStore
from extender.core import metrics
from extender.engine.decider import Binder, Decider, PendingCheck

log = logging.getLogger(__name__)
JSON = "application/json"
OPENAPI = Path(__file__).with_name("openapi.yaml")  # the HTTP API, shipped in the package
_READ = 1 << 16
LARGE_BODY = 8 << 20
"""After a request whose body was at least this large, the worker gives freed memory back to
the system (gc, then glibc's malloc_trim): a 60 MB Node list becomes ~1.5 GB of Python
objects, and without the trim the worker's RSS would stay at its peak."""


class BodyError(ValueError):
    """The body's framing itself is broken (e.g. a malformed chunk): a 400."""


def read_body(environ: dict[str, Any], cap: int) -> bytes:
    """The request body, read at most `cap` + 1 bytes into memory whatever its framing: the one
    reader of every route. Content-Length over the cap is refused before reading; a chunked
    body (no length) is read piece by piece and refused (413) as soon as it passes the cap,
    never silently cut; a malformed chunk, or a body that ends before its framing says (the
    client closed, a chunk or its terminator missing), is a BodyError (400)."""
    length = environ.get("CONTENT_LENGTH")
    try:
        expected = int(length) if length else None
    except ValueError as exc:
        raise BodyError("Content-Length is not a number") from exc
    if expected is not None and expected > cap:
        raise RequestEntityTooLarge()
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if expected is None and not (chunked or environ.get("wsgi.input_terminated")):
        return b""  # no length and no framing: nothing to read (a WSGI server without chunking)
    stream = environ["wsgi.input"]
    pieces: list[bytes] = []
    total = 0
    limit = cap + 1 if expected is None else expected
    try:
        while total < limit:
            piece = stream.read(min(_READ, limit - total))
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
    except _ChunkError as exc:
        raise BodyError(f"malformed request body framing: {type(exc).__name__}") from None
    except (_CutShort, ConnectionError, TimeoutError):
        raise BodyError("request body cut short: the connection ended inside it") from None
    if total > cap:
        raise RequestEntityTooLarge()
    if expected is not None and total < expected:
        raise BodyError(f"request body cut short: {total} of its {expected} bytes (Content-Length)")
    return b"".join(pieces)


def _trim_memory() -> None:
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _libc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: the worker recycling bounds memory instead
        return None


_MALLOC_TRIM = _libc_trim()


VERBS = ("/filter", "/prioritize", "/bind", "/preempt")
PRIVATE = (*VERBS, "/explain")
"""Routes only the main listener serves (behind the client certificate with mTLS): the verbs, and
/explain, which shows the placement and runs a full evaluation of any posted pod."""
POD_PARAM = MAX_LABEL + 1 + MAX_NAME
"""Longest ?pod=NAMESPACE/NAME: a namespace (DNS-1123 label), "/", a pod name (subdomain)."""


def create_app(settings: Settings, cache: StateCache | None = None, binder: Binder | None = None,
               pending: PendingCheck | None = None, public_only: bool = False,
               binding_checks_uid: bool = False) -> Flask:
    """The app; with `public_only` (the service.public_bind listener) the verbs answer 403;
    `pending` (live mode): does the API have this pod pending for us (checked at bind);
    `binding_checks_uid`: the apiserver refuses a Binding under another UID (Decider)."""
    app = Flask("redis-extender")
    app.config["MAX_CONTENT_LENGTH"] = settings.service.max_body_bytes
    if cache is None:
        cache = open_cache(settings)
        cache.warm()
    cache.stats.listeners.append(metrics.cache_listener)
    identifier = Identifier(settings.identity)
    decider = Decider(settings, cache, identifier, pending, binding_checks_uid)
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
            return parse_extender_args(capped_body(), identifier, memo, node_memo)

    def capped_body() -> bytes:
        data = read_body(request.environ, settings.service.max_body_bytes)
        if len(data) >= LARGE_BODY:
            g.trim = True
        return data

    @app.before_request
    def start_clock() -> Response | None:
        g.started = time.perf_counter()
        if public_only and request.path in PRIVATE:
            return bad(request.path.strip("/"), f"{request.path} is not served on the public listener "
                       "(service.public_bind); use the main, mTLS listener", 403)
        return None

    @app.after_request
    def give_back_memory(response: Response) -> Response:
        if g.pop("trim", False):  # after the reply is written, not before it
            response.call_on_close(_trim_memory)
        return response

    @app.errorhandler(BodyError)
    def body_error(exc: BodyError) -> Response:
        return bad(request.path.strip("/") or "other", str(exc))

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
            if args.names_mode and len(result.accepted) > 1:  # prioritize sends these next
                memo.expect(result.accepted)
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
        args = parse_binding(capped_body())
        error = decider.bind(args.pod_namespace, args.pod_name, args.pod_uid, args.node, binder)
        return reply(bind_reply(error), "bind")

    @app.post("/preempt")
    def preempt_route() -> Response:
        with metrics.PHASE.labels("parse").time():
            args = parse_preemption_args(capped_body(), identifier)
        result, error = decider.preempt(args)
        if error:
            return reply(orjson.dumps({"Error": error}), "preempt", 503)
        if result.passthrough:
            metrics.PREEMPT_NODES.labels("passthrough").inc(len(result.kept))
        else:
            metrics.PREEMPT_NODES.labels("kept").inc(len(result.kept))
            for kind in result.kinds.values():
                metrics.PREEMPT_NODES.labels(kind).inc()
        with metrics.PHASE.labels("encode").time():
            body = preemption_reply(result.kept)
        return reply(body, "preempt")

    @app.get("/explain")
    def explain_get() -> Response:
        key = request.args.get("pod", "")
        namespace, sep, name = key.partition("/")
        if len(key) > POD_PARAM or not sep or not namespace or not name or "/" in name:
            return bad("explain", f"'pod' must be NAMESPACE/NAME (at most {POD_PARAM} characters), got {prefix(key)}")
        check_name(namespace, "pod (its namespace)", MAX_LABEL)  # a ProtocolError: 400, quoting 40 characters
        check_name(name, "pod (its name)")
        try:
            pod = decider.pod_from_store(namespace, name)
        except StateUnavailable as exc:
            return bad("explain", f"placement state unavailable: {exc}", 503)
        if pod is None:
            return bad("explain", f"pod {key} is not a Redis pod the extender knows (sync or load it, "
                                  "or POST its Pod JSON to /explain)", 404)
        return explained(pod)

    @app.post("/explain")
    def explain_post() -> Response:
        return explained(parse_pod(loads(capped_body()), identifier))

    def explained(pod: PodRequest) -> Response:
        try:
            explanation = decider.explain(pod)
        except StateUnavailable as exc:
            return bad("explain", f"placement state unavailable: {exc}", 503)
        return reply(orjson.dumps(explanation.to_json()), "explain")

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
            decider.snapshots.check_whole(patient=True)  # one slow call is no outage (cache.probe)
        except StateUnavailable as exc:
            why = f" (the last epoch was taken away: {meta['invalidated']})" if meta.get("invalidated") else ""
            return Response(orjson.dumps({"status": "unready", "reason": f"{exc}{why}"}), status=503, mimetype=JSON)
        metrics.STATE_AGE.set(float(meta["loaded_at"]))
        return Response(orjson.dumps({"status": "ready", **meta}), mimetype=JSON)

    @app.get("/openapi.yaml")
    def openapi() -> Response:
        return Response(OPENAPI.read_bytes(), mimetype="application/yaml")

    @app.get("/metrics")
    def metrics_route() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        g.trim = True  # up to a cap's worth may have been read
        verb = request.path.strip("/") or "other"
        return bad(verb, f"request body over the {settings.service.max_body_bytes} byte cap", 413)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return Response(orjson.dumps({"Error": f"{exc.code} {exc.name}: {exc.description}"}),
                        status=exc.code or 500, mimetype=JSON)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.path)
        return Response(orjson.dumps({"Error": "internal error (logged by the extender)"}),
                        status=500, mimetype=JSON)

    # Reports read the whole placement: their own client, without the 30 ms decision timeout.
    register_reports(app, settings, RedisStore.from_url(settings.store.redis_url, settings.store.key_prefix,
                                                       timeout=settings.store.bulk_timeout))
    return app

