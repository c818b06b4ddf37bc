"""A private redis-server process on loopback: for `run`, the benchmark and the tests.

Uses the redis-server binary on PATH (Debian's package). No persistence, a free port.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from extender.local.processes import free_port, stop_process, wait_until


class LocalRedis:
    def __init__(self, port: int | None = None, binary: str | None = None, extra: tuple[str, ...] = ()):
        self.binary = binary or shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-extender-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "LocalRedis":
        if not Path(self.binary).exists():
            raise RuntimeError("redis-server not found: install it (apt-get install redis-server)")
        log = open(self.dir / "redis.log", "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no", *self.extra],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._pong, timeout=timeout, what=f"redis-server on port {self.port}",
                       proc=self.proc, log=self.dir / "redis.log")
        except BaseException:
            self.stop()
            raise
        return self

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
