"""gunicorn, embedded: `redis-extender serve` runs the Flask app in N worker processes.

Worker class gthread: kube-scheduler's Go client keeps connections alive, and a sync worker
would close every one after a request. gunicorn sets TCP_NODELAY on its listening socket, so
replies are not held back by Nagle's algorithm (40 ms per request otherwise).
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from ..settings import Settings


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
        "control_socket_disable": True,  # one per user home: several instances would collide
    }
    if service.certfile:
        options.update(certfile=service.certfile, keyfile=service.keyfile)
    return options


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


def serve(settings: Settings) -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        directory = tempfile.mkdtemp(prefix="redis-extender-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    _Gunicorn(settings, gunicorn_options(settings)).run()
