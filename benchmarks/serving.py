"""`redis-extender serve` on 127.0.0.1 against a private redis-server, for the benchmarks."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from extender.localredis import LocalRedis
from extender.processes import free_port, http_ok, stop_process, wait_until


class Extender:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def served(args: list[str] = [], env: dict[str, str] | None = None) -> Iterator[Extender]:  # noqa: B006
    with LocalRedis() as server:
        port = free_port()
        log = Path(tempfile.NamedTemporaryFile(prefix="redis-extender-bench-", suffix=".log", delete=False).name)
        proc = subprocess.Popen(
            [sys.executable, "-m", "extender.cli", "serve", "--bind", f"127.0.0.1:{port}",
             "--redis-url", server.url, *args],
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz", timeout=0.5), timeout=60,
                       what="the extender's /healthz", proc=proc, log=log, interval=0.1)
            yield Extender(proc, port, log)
        finally:
            stop_process(proc, grace=15)
