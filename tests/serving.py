"""`redis-extender serve` as a subprocess, for the integration and end-to-end tests."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from extender.localredis import free_port, stop_process


class Served:
    """`redis-extender serve` in a subprocess, waited for until `ready_path` answers 200."""

    def __init__(self, env: dict[str, str], args: list[str], ready_path: str = "/healthz",
                 log_dir: Path | None = None, timeout: float = 30):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (log_dir or Path(env.get("TMPDIR", "/tmp"))) / f"extender-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "extender.cli", "serve", "--bind", f"127.0.0.1:{self.port}", *args],
            env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"extender exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url + ready_path, timeout=0.5).read()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"extender did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        stop_process(self.proc, grace=10)
