"""`redis-extender serve` as a subprocess, for the integration and end-to-end tests."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from extender.local.processes import free_port, http_ok, stop_process, wait_until
from extender.state.store import RedisStore


class Served:
    """`redis-extender serve` in a subprocess, waited for until `ready_path` answers 200."""

    def __init__(self, env: dict[str, str], args: list[str], ready_path: str = "/healthz",
                 log_dir: Path | None = None, timeout: float = 30):
        self.env = env  # what it runs with: a second replica may be started on it
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


@contextmanager
def live_extender(cp: Any, redis_url: str, prefix: str, log_dir: Path, namespace: str,
                  extra_env: Mapping[str, str] | None = None, store_timeout: float = 5,
                  clear_store: bool = True) -> Iterator[tuple[Served, RedisStore]]:
    """`redis-extender serve` in live mode against the control plane `cp` (2 workers, the sync
    child and the binder, lock TTL 3 s unless extra_env says otherwise; ready once the first
    list is stored), its state under `prefix` in the Redis at `redis_url`, and a store on that
    state. `namespace` is created first unless it is there already (from another module).
    On exit the extender is stopped, then, with clear_store, its state is deleted."""
    try:
        cp.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": namespace}})
    except Exception as exc:  # already there from another module
        if "AlreadyExists" not in str(exc) and "409" not in str(exc):
            raise
    env = {**os.environ, "REDIS_URL": redis_url, "REDIS_EXTENDER_KEY_PREFIX": prefix,
           "REDIS_EXTENDER_LOCK_TTL": "3", **(extra_env or {})}
    extender = Served(env, ["--workers", "2", "--kubeconfig", str(cp.kubeconfig)], ready_path="/readyz",
                      log_dir=log_dir)
    try:
        store = RedisStore.from_url(redis_url, prefix, timeout=store_timeout)
        yield extender, store
    finally:
        extender.stop()
    if clear_store:
        store.clear()
