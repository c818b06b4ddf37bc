"""The command line against a real redis-server: simulate -> load, the embedded run, errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from extender.state.store import RedisStore


def cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "extender.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, input=stdin.decode() if stdin else None)


def test_simulate_then_load_fills_the_store(tmp_path: Path, redis_server, prefix: str) -> None:
    out = tmp_path / "cluster.json"
    done = cli("simulate", "--nodes", "12", "--zones", "3", "--clusters", "2", "--shards", "3",
               "--replicas", "2", "--placed", "1.0", "--filler-per-node", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    kinds = [i["kind"] for i in document["items"]]
    assert kinds.count("Node") == 12 and kinds.count("Pod") == 12 + 2 * 3 * 3

    done = cli("load", str(out), "--redis-url", redis_server.url, env={"REDIS_EXTENDER_KEY_PREFIX": prefix})
    assert done.returncode == 0, done.stderr
    assert "loaded 12 nodes and 30 pods" in done.stdout
    store = RedisStore.from_url(redis_server.url, prefix, timeout=5)
    assert len(store.node_names()) == 12
    assert store.clusters() == ["redis/cache-0", "redis/cache-1"]
    copies = store.shard_state("redis/cache-0", "0").copies
    assert len(copies) == 3 and len({c.node for c in copies}) == 3
    store.clear()


def test_load_reads_stdin_and_merges_when_asked(redis_server, prefix: str) -> None:
    env = {"REDIS_EXTENDER_KEY_PREFIX": prefix}
    node = {"kind": "Node", "metadata": {"name": "n1"}, "status": {"allocatable": {"memory": "1Gi"}}}
    other = {"kind": "Node", "metadata": {"name": "n2"}, "status": {}}
    assert cli("load", "-", "--redis-url", redis_server.url, env=env,
               stdin=json.dumps({"kind": "List", "items": [node]}).encode()).returncode == 0
    assert cli("load", "-", "--merge", "--redis-url", redis_server.url, env=env,
               stdin=json.dumps({"kind": "List", "items": [other]}).encode()).returncode == 0
    store = RedisStore.from_url(redis_server.url, prefix, timeout=5)
    assert sorted(store.node_names()) == ["n1", "n2"]
    store.clear()


def test_load_of_a_bad_file_is_a_clear_error(tmp_path: Path, redis_server, prefix: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"items": "nope"}')
    done = cli("load", str(bad), "--redis-url", redis_server.url)
    assert done.returncode == 1 and "expected a Kubernetes List" in done.stderr
    done = cli("load", str(tmp_path / "missing.json"), "--redis-url", redis_server.url)
    assert done.returncode == 1 and "cannot read" in done.stderr


def test_load_without_redis_says_where_it_looked(tmp_path: Path) -> None:
    from extender.local.processes import free_port

    f = tmp_path / "l.json"
    f.write_text('{"kind": "List", "items": []}')
    done = cli("load", str(f), "--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 1 and "Redis at redis://127.0.0.1:" in done.stderr


def test_every_configuration_problem_is_reported_at_once() -> None:
    done = cli("config", env={"REDIS_EXTENDER_ON_UNAVAILABLE": "maybe", "REDIS_EXTENDER_WORKERS": "0",
                              "REDIS_EXTENDER_BIND": "nowhere"})
    assert done.returncode == 2
    for text in ("$REDIS_EXTENDER_ON_UNAVAILABLE", "service.workers", "$REDIS_EXTENDER_BIND"):
        assert text in done.stderr


def test_the_embedded_default_starts_its_own_redis_and_explains_itself() -> None:
    done = cli("run", "--no-serve", "--nodes", "9", "--scheduler", "replay")
    assert done.returncode == 0, done.stderr
    assert "started redis-server on redis://127.0.0.1:" in done.stdout
    assert "loaded a simulated cluster: 9 nodes" in done.stdout
    assert "curl -s http://127.0.0.1:8888/filter" in done.stdout
    assert "filterVerb: filter" in done.stdout
