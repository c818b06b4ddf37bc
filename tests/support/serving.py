"""`redis-extender serve` as a subprocess, for the integration and end-to-end tests."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from extender.processes import free_port, http_ok, stop_process, wait_until


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
        try:
            wait_until(lambda: http_ok(self.url + ready_path, timeout=0.5), timeout=timeout,
                       what=f"the extender's {ready_path}", proc=self.proc, log=self.log, interval=0.1)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.proc, grace=10)
