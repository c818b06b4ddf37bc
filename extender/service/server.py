"""gunicorn, embedded: `redis-extender serve` runs the Flask app in N worker processes.

Worker class gthread (extended in worker.py: TLS handshakes in the poller with a deadline, a
per-address bound on connections): kube-scheduler's Go client keeps connections alive, and a
sync worker would close every one after a request. Threads: 128 a worker (service.threads),
chosen by benchmarks/bench_connections.py: a connection that is idle or sends a byte a second
holds one thread (gunicorn gives an idle one back after 5 s), so with 4 threads 64 such
connections stopped all answers for 30 s, and with 128 a real filter keeps its normal p99.
Idle threads cost no CPU; the throughput benchmark is unchanged within its noise. gunicorn sets TCP_NODELAY on its listening socket, so
replies are not held back by Nagle's algorithm (40 ms per request otherwise).
"""
from __future__ import annotations

import atexit
import dataclasses
import gc
import logging
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

from gunicorn.app.base import BaseApplication

from extender.local.processes import stop_process
from extender.core.settings import Settings, metrics_dir, set_metrics_dir

log = logging.getLogger(__name__)


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any], public_only: bool = False):
        self.settings = settings
        self.options = options
        self.public_only = public_only
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # e.g. control_socket_disable exists from gunicorn 24 on
                self.cfg.set(key, value)

    def load(self) -> Any:
        from extender.service.app import create_app

        binder = None
        if self.settings.kube.enabled and not self.public_only:  # one API client per worker, made after the fork
            from extender.state.k8s_sync import api_client, binding_checks_uid, make_binder, make_pending_check

            api = api_client(self.settings.kube.kubeconfig, self.settings.kube.in_cluster,
                             pool_size=self.settings.service.threads)
            binder = make_binder(api)
            pending = make_pending_check(api, self.settings.kube.scheduler_names)
            return create_app(self.settings, binder=binder, pending=pending,
                              binding_checks_uid=binding_checks_uid(api))
        return create_app(self.settings, public_only=self.public_only)


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    service = settings.service
    options: dict[str, Any] = {
        "bind": service.bind,
        "workers": service.workers,
        # gthread with the TLS handshake in the poller, a deadline and a per-address bound
        "worker_class": "extender.service.worker.GuardedWorker",
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
        "worker_tmp_dir": ram_dir(),  # the workers' heartbeat files (None: the temp directory)
    }
    if service.certfile:
        options.update(certfile=service.certfile, keyfile=service.keyfile)
    if service.client_ca_file:  # mTLS: the handshake fails without a certificate this CA signed
        options.update(cert_reqs=ssl.CERT_REQUIRED, ca_certs=service.client_ca_file)
    if service.max_worker_rss:
        options["post_request"] = _retire_if_large(service.max_worker_rss, service.retire_after)
    return options


def ram_dir() -> str | None:
    """/dev/shm where the system has it (tmpfs): the workers' heartbeat files and the metrics'
    mmapped files are written on every request, and a write to a page of a disk file that the
    kernel is writing back waits for the disk. (The chart mounts /tmp in RAM for the same reason.)"""
    return RAM_DIR if os.path.isdir(RAM_DIR) and os.access(RAM_DIR, os.W_OK | os.X_OK) else None


RAM_DIR = "/dev/shm"


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak instead of the current size
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _retire_if_large(limit_mib: int, retire_after: float) -> Any:
    """A worker whose RSS stays above `limit_mib` after a request (the app already gave back
    what it could, app.LARGE_BODY) finishes its in-flight requests and is replaced by a fresh
    one: the bound on a worker's memory is this limit plus one body's peak. A worker lives at
    least `retire_after` seconds (service.retire_after), so a steady state above the limit recycles a worker at most
    that often, never on every request."""
    def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
        born = worker.__dict__.setdefault("redis_extender_born", time.monotonic())
        if time.monotonic() - born < retire_after:
            return
        if worker.alive and _rss_mib() > limit_mib:
            log.warning("worker %s: RSS %.0f MiB over service.max_worker_rss %d MiB; replacing it",
                        os.getpid(), _rss_mib(), limit_mib)
            worker.alive = False
            handle_exit = getattr(worker, "handle_exit", None)
            if handle_exit is not None:  # gthread: wakes its poller so it stops accepting
                handle_exit(None, None)
    return post_request


def _quiet_gc(worker: Any) -> None:
    """A 5,000-name or 500-Node body makes tens of thousands of short-lived objects: with the
    default thresholds the collector runs several times a request and walks the long-lived
    state (node table, memos) each time. Freeze what start-up made and collect less often."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    if metrics_dir():
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
        config = ["--config", self.settings.source_file] if self.settings.source_file else []
        return [sys.executable, "-m", "extender.cli", "sync", *config, "--redis-url", self.settings.store.redis_url,
                *where]

    def _supervise(self) -> None:
        delay = 1.0
        while not self.stop.is_set():
            started = time.monotonic()
            # close_fds=False lets subprocess use posix_spawn (every fd Python opens is
            # non-inheritable anyway): a fork+exec here keeps an exec-error pipe open until
            # exec, and a gunicorn worker forked by the arbiter meanwhile inherited its write
            # end, so Popen never returned and a killed syncer was never restarted
            self.proc = subprocess.Popen(self.command(), close_fds=False)
            while self.proc.poll() is None:  # poll: the arbiter may reap the child (SIGCHLD)
                self.stop.wait(0.5)
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


class PublicChild(SyncChild):
    """The plain-HTTP listener of service.public_bind: `serve --public-only`, one worker, its
    own gunicorn, no TLS, the verbs refused (app.create_app(public_only=True)). /healthz,
    /readyz, /metrics and the reports are reachable there without a client certificate;
    nothing else is. Restarted when it exits, like the syncer."""

    def command(self) -> list[str]:
        config = ["--config", self.settings.source_file] if self.settings.source_file else []
        return [sys.executable, "-m", "extender.cli", "serve", "--public-only", *config,
                "--bind", self.settings.service.public_bind or "", "--redis-url", self.settings.store.redis_url]


def public_settings(settings: Settings) -> Settings:
    """The settings of the public listener (started with --bind PUBLIC): plain HTTP, one worker."""
    service = dataclasses.replace(settings.service, certfile=None, keyfile=None, client_ca_file=None, public_bind=None, workers=1)
    return dataclasses.replace(settings, service=service)


def _remove_in(pid: int, directory: str) -> None:
    """Remove the metrics directory when the master exits, never when a worker does: workers
    inherit atexit handlers through fork, and a retired or timed-out worker removing it made
    its replacement fail to boot (and gunicorn then shut the whole server down)."""
    if os.getpid() == pid:
        shutil.rmtree(directory, ignore_errors=True)


def _each(children: list[SyncChild], action: Callable[[SyncChild], None]) -> None:
    for child in children:
        action(child)


def serve(settings: Settings, public_only: bool = False) -> None:
    if public_only:  # the child of PublicChild: no syncer, no TLS, no verbs
        settings = public_settings(settings)
        options = gunicorn_options(settings)
        _Gunicorn(settings, options, public_only=True).run()
        return
    if not metrics_dir():
        directory = tempfile.mkdtemp(prefix="redis-extender-metrics-", dir=ram_dir())
        set_metrics_dir(directory)
        atexit.register(_remove_in, os.getpid(), directory)
    if settings.service.public_bind == settings.service.bind:  # checked here: the child has both equal
        raise SystemExit("service.public_bind must differ from service.bind")
    options = gunicorn_options(settings)
    children: list[SyncChild] = []
    if settings.kube.enabled and settings.kube.run_sync:
        children.append(SyncChild(settings))
    if settings.service.public_bind:
        children.append(PublicChild(settings))
    if children:
        options["when_ready"] = lambda server: _each(children, SyncChild.start)
        options["on_exit"] = lambda server: _each(children, SyncChild.terminate)
    _Gunicorn(settings, options).run()
