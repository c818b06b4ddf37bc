"""Half-open TLS handshakes and connection floods from one address (issue 20, item 1), against
real `serve` processes with mTLS: a handshake holds no thread (the worker's poller drives it),
one that does not finish in service.handshake_timeout is closed, and one address holds at
most service.connections_per_address connections per worker. The flood comes from 127.0.0.2,
the scheduler's requests from 127.0.0.1 (both to the server on 127.0.0.1)."""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from benchmarks.bench_connections import client_hello
from extender.local.processes import free_port, http_ok, stop_process, wait_until
from tests.support.certs import make_certs

from .test_mtls import context, post

FLOOD_FROM = "127.0.0.2"


@pytest.fixture
def mtls_serve(tmp_path, redis_server, prefix):
    """start(**env): serve with mTLS (one worker) and the given settings; (certs, port)."""
    certs = make_certs(tmp_path / "certs")
    procs = []

    def start(client_ca: Path | None = None, **extra: str):
        port, public = free_port(), free_port()
        env = {**os.environ, "REDIS_URL": redis_server.url, "REDIS_EXTENDER_KEY_PREFIX": prefix, **extra}
        log = tmp_path / f"serve-{port}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "extender.cli", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--certfile", str(certs.server[0]), "--keyfile", str(certs.server[1]),
             "--client-ca-file", str(client_ca or certs.ca), "--public-bind", f"127.0.0.1:{public}"],
            env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        procs.append(proc)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{public}/healthz", timeout=0.5), timeout=30,
                   what="the public listener", proc=proc, log=log, interval=0.1)
        return certs, port

    yield start
    for proc in procs:
        stop_process(proc, grace=10)


def half_hello() -> bytes:
    hello = client_hello()
    return hello[: len(hello) // 2]


def held(stack: ExitStack, port: int, count: int, payload: bytes = b"") -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5,
                                                         source_address=(FLOOD_FROM, 0)))
        if payload:
            s.sendall(payload)
        socks.append(s)
    return socks


def closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:  # reset: closed too
        return True


def timed_filters(certs, port: int, count: int) -> list[float]:
    """`count` filters, each on a new mTLS connection (a scheduler reconnecting); their times."""
    times = []
    for _ in range(count):
        started = time.monotonic()
        try:
            status, _ = post(port, context(certs, certs.client))
        except (OSError, ssl.SSLError):
            status = 0
        times.append(time.monotonic() - started if status == 200 else float("inf"))
    return times


def test_held_half_handshakes_do_not_hold_the_threads_that_serve_the_scheduler(mtls_serve) -> None:
    # 4 threads, no deadline to speak of, no per-address bound: only where the handshake runs helps
    certs, port = mtls_serve(REDIS_EXTENDER_THREADS="4", REDIS_EXTENDER_HANDSHAKE_TIMEOUT="60",
                             REDIS_EXTENDER_CONNECTIONS_PER_ADDRESS="10000")
    with ExitStack() as stack:
        held(stack, port, 300, half_hello())
        time.sleep(0.5)
        times = timed_filters(certs, port, 10)
    assert max(times) < 2.0, times  # before: every new connection waited for a free thread (none came)


def test_a_handshake_that_does_not_finish_is_closed_at_its_deadline(mtls_serve) -> None:
    certs, port = mtls_serve(REDIS_EXTENDER_HANDSHAKE_TIMEOUT="1")
    with ExitStack() as stack:
        stalled, silent = held(stack, port, 1, half_hello()) + held(stack, port, 1)
        started = time.monotonic()
        assert closed_by_server(stalled, within=5) and closed_by_server(silent, within=5)
        assert time.monotonic() - started < 4  # the deadline (1 s) plus the poller's 1 s tick
        assert timed_filters(certs, port, 1)[0] < 2.0


def test_one_address_holds_at_most_its_share_of_connections(mtls_serve) -> None:
    certs, port = mtls_serve(REDIS_EXTENDER_CONNECTIONS_PER_ADDRESS="8", REDIS_EXTENDER_HANDSHAKE_TIMEOUT="60")
    with ExitStack() as stack:
        first = held(stack, port, 8)
        time.sleep(0.3)
        assert not any(closed_by_server(s, within=0.2) for s in first)  # within the bound: kept
        extra = held(stack, port, 3)
        assert all(closed_by_server(s, within=2) for s in extra)  # past it: closed at accept
        assert max(timed_filters(certs, port, 3)) < 2.0  # another address is served meanwhile


def test_a_new_client_ca_is_taken_without_a_restart(mtls_serve, tmp_path) -> None:
    """Rotation: the worker builds its TLS context again when the client CA file changes (a
    Secret's files are swapped, so the file is a new one), as gunicorn did per connection."""
    client_ca = tmp_path / "client-ca.crt"
    client_ca.write_bytes((tmp_path / "certs" / "extender-ca.crt").read_bytes())
    certs, port = mtls_serve(client_ca=client_ca)
    assert post(port, context(certs, certs.client))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
        post(port, context(certs, certs.stranger))
    rotated = tmp_path / "client-ca.new"
    rotated.write_bytes((tmp_path / "certs" / "other-ca.crt").read_bytes())
    rotated.replace(client_ca)
    assert post(port, context(certs, certs.stranger))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
        post(port, context(certs, certs.client))
