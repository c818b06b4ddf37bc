"""Child processes on loopback: stop one, pick a free port, wait until one is ready.

The one home of these for the product (the local Redis of `run`, the sync child of `serve`,
the `bench` command) and for the development harness (tests/support, benchmarks/), so that
every child is started, waited for and stopped the same way.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class NotReady(RuntimeError):
    """A child exited before it was ready, or did not get ready in time; the message carries
    the tail of its log."""


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds: never leave a child behind."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The last `lines` lines of a child's log, for an error message."""
    if path is None:
        return ""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<no log: {exc}>"


def http_ok(url: str, context: ssl.SSLContext | None = None,
            headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> bool:
    """True if GET url answers 200; any error means "not yet". http.client, not urllib: no
    proxy from the environment may stand between us and a loopback child."""
    parts = urllib.parse.urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                           context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        target = parts.path or "/"
        conn.request("GET", f"{target}?{parts.query}" if parts.query else target,
                     headers=dict(headers or {}))
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_until(check: Callable[[], T], *, timeout: float = 30.0, what: str = "condition",
               proc: subprocess.Popen[bytes] | None = None, log: Path | None = None,
               interval: float = 0.05, error: type[Exception] = NotReady) -> T:
    """Poll `check` until it returns a truthy value, and return that value.

    With `proc`, a child that exits first is an error at once (no point waiting out the
    timeout). Errors are `error` (NotReady unless the caller has its own) naming `what`, with
    the tail of `log`; the child is left to the caller, who knows how to clean up after it.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        where = f"; {log}:\n{log_tail(log)}" if log is not None else ""
        if proc is not None and proc.poll() is not None:
            raise error(f"{what}: the process exited with {proc.returncode}{where}")
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g} s waiting for {what}{where}")
        time.sleep(interval)
