"""`serve`'s sync child under the real gunicorn master: a killed syncer comes back.

The kubeconfig points at a closed port, so the syncer only retries (no control plane is
needed to see it supervised). Before the fix, the supervisor's fork+exec raced the
arbiter's worker fork: the worker inherited the exec-error pipe, Popen never returned, and a
SIGKILLed syncer was never restarted.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from extender.local.processes import wait_until
from tests.support.serving import Served

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def sync_children(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "extender.cli sync" in line]


def test_a_killed_sync_child_is_restarted(redis_server, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    env = {**os.environ, "REDIS_URL": redis_server.url, "REDIS_EXTENDER_KEY_PREFIX": "rxserver:{t}:"}
    served = Served(env, ["--workers", "1", "--kubeconfig", str(kubeconfig)], log_dir=tmp_path)
    try:
        master = served.proc.pid
        for _ in range(2):  # twice: the restarted child is supervised too
            wait_until(lambda: sync_children(master), timeout=20, what="a sync child")
            (child,) = sync_children(master)
            os.kill(child, signal.SIGKILL)
            wait_until(lambda: sync_children(master) and sync_children(master) != [child], timeout=20,
                       what=f"the sync child restarted after SIGKILL of {child}")
            time.sleep(0.2)
    finally:
        served.stop()
    assert "sync child exited with -9" in served.log.read_text()
