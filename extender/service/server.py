"""gunicorn, embedded: `redis-extender serve` runs the Flask app in N worker processes.

Worker class gthread: kube-scheduler's Go client keeps connections alive, and a sync worker
would close every one after a request. gunicorn sets TCP_NODELAY on its listening socket, so
replies are not held back by Nagle's algorithm (40 ms per request otherwise).
"""
from __future__ import annotations

import atexit
import gc
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from gunicorn.app.base import BaseApplication

from ..processes import stop_process
from ..settings import Settings

log = logging.getLogger(__name__)


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]):
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # e.g. control_socket_disable exists from gunicorn 24 on
                self.cfg.set(key, value)

    def load(self) -> Any:
        from .app import create_app

        binder = None
        if self.settings.kube.enabled:  # one API client per worker, made after the fork
            from ..state.k8s_sync import api_client, make_binder, make_pending_check

            api = api_client(self.settings.kube.kubeconfig, self.settings.kube.in_cluster)
            binder = make_binder(api)
            pending = make_pending_check(api, self.settings.kube.scheduler_names)
            return create_app(self.settings, binder=binder, pending=pending)
        return create_app(self.settings)


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    service = settings.service
    options: dict[str, Any] = {
        "bind": service.bind,
        "workers": service.workers,
        "worker_class": "gthread",
        "threads": service.threads,
        # Longer than the Go client's idle timeout (90 s): the client, not us, closes idle
        # connections, so it never writes a POST into a connection we just closed.
        "keepalive": 120,
        "timeout": 30,
        "graceful_timeout": 10,
        "loglevel": service.log_level,
        "accesslog": None,
        "child_exit": _child_exit,
        "post_worker_init": _quiet_gc,
        "control_socket_disable": True,  # one per user home: several instances would collide
    }
    if service.certfile:
        options.update(certfile=service.certfile, keyfile=service.keyfile)
    return options


def _quiet_gc(worker: Any) -> None:
    """A 5,000-name or 500-Node body makes tens of thousands of short-lived objects: with the
    default thresholds the collector runs several times a request and walks the long-lived
    state (node table, memos) each time. Freeze what start-up made and collect less often."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


class SyncChild:
    """`redis-extender sync` as a child of the gunicorn master, restarted when it exits.

    A separate process keeps watch traffic off the workers' GIL; the leader lock inside it
    makes exactly one syncer write across all replicas."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.stop = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.thread = threading.Thread(target=self._supervise, name="sync-supervisor", daemon=True)

    def command(self) -> list[str]:
        kube = self.settings.kube
        where = ["--kubeconfig", kube.kubeconfig] if kube.kubeconfig else ["--in-cluster"]
        return [sys.executable, "-m", "extender.cli", "sync", "--redis-url", self.settings.store.redis_url, *where]

    def _supervise(self) -> None:
        delay = 1.0
        while not self.stop.is_set():
            started = time.monotonic()
            self.proc = subprocess.Popen(self.command())
            self.proc.wait()
            if self.stop.is_set():
                break
            delay = 1.0 if time.monotonic() - started > 60 else min(30.0, delay * 2)
            log.warning("sync child exited with %s; restarting in %.0fs", self.proc.returncode, delay)
            self.stop.wait(delay)

    def start(self) -> None:
        self.thread.start()

    def terminate(self) -> None:
        self.stop.set()
        stop_process(self.proc, grace=10)


def serve(settings: Settings) -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        directory = tempfile.mkdtemp(prefix="redis-extender-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    options = gunicorn_options(settings)
    if settings.kube.enabled and settings.kube.run_sync:
        child = SyncChild(settings)
        options["when_ready"] = lambda server: child.start()
        options["on_exit"] = lambda server: child.terminate()
    _Gunicorn(settings, options).run()
