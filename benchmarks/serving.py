"""`redis-extender serve` on 127.0.0.1 against a private redis-server, for the benchmarks."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from extender.local.localredis import LocalRedis
from extender.local.processes import free_port, http_ok, stop_process, wait_until


def _up(url: str) -> bool:
    if url.startswith("http:"):
        return http_ok(url, timeout=0.5)
    import ssl
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=0.5, context=ssl._create_unverified_context()) as resp:
            return resp.status == 200
    except OSError:
        return False


class Extender:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def served(args: list[str] = [], env: dict[str, str] | None = None,  # noqa: B006
           on_redis: Callable[[str], object] | None = None) -> Iterator[Extender]:
    with LocalRedis() as server:
        if on_redis is not None:
            on_redis(server.url)
        port = free_port()
        log = Path(tempfile.NamedTemporaryFile(prefix="redis-extender-bench-", suffix=".log", delete=False).name)
        proc = subprocess.Popen(
            [sys.executable, "-m", "extender.cli", "serve", "--bind", f"127.0.0.1:{port}",
             "--redis-url", server.url, *args],
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            scheme = "https" if "--certfile" in args else "http"
            wait_until(lambda: _up(f"{scheme}://127.0.0.1:{port}/healthz"), timeout=60,
                       what="the extender's /healthz", proc=proc, log=log, interval=0.1)
            yield Extender(proc, port, log)
        finally:
            stop_process(proc, grace=15)
