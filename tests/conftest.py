"""Shared fixtures: a real redis-server (Debian's package), a fresh key prefix per test, and
the extender served by real gunicorn over loopback HTTP."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import redis as redis_py

from extender.localredis import LocalRedis, free_port

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed: run ./scripts/test, which installs it")
    with LocalRedis() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"rxtest:{{{uuid.uuid4().hex[:10]}}}:"


@pytest.fixture
def store(redis_server: LocalRedis, prefix: str):
    from extender.state.redis_store import RedisStore

    s = RedisStore.from_url(redis_server.url, prefix, timeout=5)
    yield s
    s.clear()


class Served:
    """`redis-extender serve` in a subprocess; stopped at teardown."""

    def __init__(self, env: dict[str, str], args: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(env.get("TMPDIR", "/tmp")) / f"extender-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "extender.cli", "serve", "--bind", f"127.0.0.1:{self.port}", *args],
            env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        import urllib.request

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"extender exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=0.5).read()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"extender did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def serve_extender(redis_server: LocalRedis, prefix: str):
    started: list[Served] = []

    def start(redis_url: str | None = None, workers: int = 1, **env_extra: str) -> Served:
        env = {**os.environ, "REDIS_URL": redis_url or redis_server.url,
               "REDIS_EXTENDER_KEY_PREFIX": prefix, **env_extra}
        served = Served(env, ["--workers", str(workers)])
        started.append(served)
        return served

    yield start
    for s in started:
        s.stop()
    redis_py.Redis.from_url(redis_server.url).close()
