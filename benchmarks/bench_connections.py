"""Slow, idle and half-TLS clients must not starve the scheduler.

    python -m benchmarks.bench_connections [--hold 64] [--requests 150] [-- serve args...]

Serves HTTPS (a throw-away self-signed certificate, openssl CLI) on 127.0.0.1 with a
synthetic 500-node cluster loaded, then measures a real filter (a pending Redis pod, 500
candidate names, one keep-alive connection as kube-scheduler keeps one) side by side:
with no other connections, and while --hold connections are held open that
  slow:      send a request line and then a header byte a second,
  idle:      connect and send nothing,
  half-tls:  send half a TLS ClientHello and nothing more.
Prints p50/p99/max per case and how many filters took over kube-scheduler's 5 s extender
timeout. Bounded: each case lasts at most --requests filters or 60 s.
"""
from __future__ import annotations

import argparse
import http.client
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import orjson

from benchmarks.serving import served
from extender.commands.bench import percentiles, synthetic
from extender.core.identity import Identifier
from extender.core.settings import IdentitySettings
from extender.state.loader import load_list
from extender.state.store import RedisStore


def self_signed(directory: Path) -> tuple[str, str]:
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class Holder:
    """`count` connections of one kind, held open by one thread until stopped."""

    def __init__(self, port: int, kind: str, count: int):
        self.port, self.kind, self.count = port, kind, count
        self.stop = threading.Event()
        self.socks: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket | None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        except OSError:
            return None
        try:
            if self.kind == "slow":  # a TLS client that then writes its request a byte a second
                s = ssl._create_unverified_context().wrap_socket(s, server_hostname="127.0.0.1")
                s.sendall(b"POST /filter HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            elif self.kind == "half-tls":
                hello = client_hello()
                s.sendall(hello[: len(hello) // 2])
        except OSError:
            pass
        return s

    def _run(self) -> None:
        self.socks = [s for s in (self._open() for _ in range(self.count)) if s is not None]
        while not self.stop.wait(1.0):
            for i, s in enumerate(self.socks):
                if self.kind == "slow":
                    try:
                        s.send(b"X")
                    except OSError:  # the server gave up on it: a new one takes its place
                        s.close()
                        self.socks[i] = self._open() or s
        for s in self.socks:
            s.close()

    def __enter__(self) -> "Holder":
        self.thread.start()
        time.sleep(1.5)  # all held before the first filter
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(10)


def probe(port: int, body: bytes, requests: int, budget: float = 60) -> dict[str, Any]:
    context = ssl._create_unverified_context()
    conn: http.client.HTTPSConnection | None = None
    times, errors = [], 0
    deadline = time.monotonic() + budget
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
            conn.request("POST", "/filter", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn = None
        times.append(time.perf_counter() - started)
    stats = percentiles(times) if times else {}
    return {"n": len(times), "errors": errors, "over_5s": sum(t > 5 for t in times),
            "max_ms": round(max(times) * 1000, 1) if times else None, **stats}


def main(hold: int = 64, requests: int = 150, serve_args: list[str] | None = None,
         kinds: tuple[str, ...] = ("slow", "idle", "half-tls")) -> list[tuple[str, dict[str, Any]]]:
    document = synthetic(500, 100)
    nodes = [i["metadata"]["name"] for i in document["items"] if i["kind"] == "Node"]
    pending = next({k: v for k, v in i.items() if k not in ("apiVersion", "kind")} for i in document["items"]
                   if i["kind"] == "Pod" and "nodeName" not in i["spec"] and i["metadata"]["namespace"] == "redis")
    body = orjson.dumps({"Pod": pending, "Nodes": None, "NodeNames": nodes})
    results: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed(Path(tmp))
        args = ["--certfile", cert, "--keyfile", key, *(serve_args or [])]
        with served(args, on_redis=lambda url: load_list(RedisStore.from_url(url, "rx:{main}:", timeout=60),
                                                           document, Identifier(IdentitySettings()))) as ext:
            probe(ext.port, body, 20)  # warm: the worker's cache and the candidate memo
            results.append(("no other connections", probe(ext.port, body, requests)))
            for kind in kinds:
                with Holder(ext.port, kind, hold):
                    results.append((f"{hold} {kind} connections held", probe(ext.port, body, requests)))
            results.append(("after they closed", probe(ext.port, body, requests)))
    print(f"filter of a Redis pod, 500 candidates, HTTPS keep-alive; serve {' '.join(serve_args or []) or '(defaults)'}")
    print(f"{'case':36} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>9} {'>5 s':>5} {'errors':>6}")
    for name, r in results:
        print(f"{name:36} {r['n']:4} {r.get('p50', 0):8.2f} {r.get('p99', 0):8.2f} {r['max_ms'] or 0:9.1f}"
              f" {r['over_5s']:5} {r['errors']:6}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hold", type=int, default=64)
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if any filter failed or took over 5 s (the CI's connection-exhaustion check)")
    parser.add_argument("serve_args", nargs="*", help="extra `serve` arguments (after --)")
    ns = parser.parse_args()
    outcome = main(ns.hold, ns.requests, ns.serve_args)
    if ns.check and any(r["over_5s"] or r["errors"] for _, r in outcome):
        print("connection-exhaustion check FAILED: a filter failed or waited past 5 s", file=sys.stderr)
        raise SystemExit(1)
