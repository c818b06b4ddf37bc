"""Shared fixtures: a real redis-server (Debian's package), a fresh key prefix per test, and
the extender served by real gunicorn over loopback HTTP."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import redis as redis_py

from extender.local.localredis import LocalRedis

from .support.serving import Served

DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/e2e/conftest.py: options must be known before e2e's conftest loads.
    parser.addoption(
        "--kube-version", default=None, choices=("current", "1.20.2"),
        help="Kubernetes version of the e2e control plane: current (the release required in "
             "harness/kube/go.mod, default) or 1.20.2 (the compatibility version); "
             "default from $REDIS_EXTENDER_KUBE_VERSION. $KUBE_BIN_DIR, if set, wins.")


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
    from extender.state.store import RedisStore

    s = RedisStore.from_url(redis_server.url, prefix, timeout=5)
    yield s
    s.clear()


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
