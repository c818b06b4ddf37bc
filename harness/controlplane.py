"""A throwaway Kubernetes control plane on 127.0.0.1, for the end-to-end tests and the benchmark.

Runs the real etcd + kube-apiserver + kube-scheduler (no kubelet; kube-controller-manager only
on request, with the controllers a test names), so tests can create fake Ready nodes and pods
through the API and watch the real scheduler bind them, with or without our extender. Stdlib only, so it works before any test dependency is
installed. Binaries come from ``scripts/kube-binaries.sh`` (see :func:`kube_bin_dir`), of
one of two versions: CURRENT (the release harness/kube/go.mod requires, built from Go
modules) or LEGACY (v1.20.2, the oldest the README claims). The version-specific flags and
config rewrites below are decided by the version the binaries report, never assumed.

Run ``python -m harness.controlplane`` from the repository root for a self-check.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from extender.local.processes import http_ok, stop_process, wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]  # this file is harness/controlplane.py
KUBE_BINARIES_SCRIPT = REPO_ROOT / "scripts" / "kube-binaries.sh"

#: Minimal config for the stock scheduler. ``{kubeconfig}`` is optional: the harness always
#: points ``clientConnection.kubeconfig`` at its own kubeconfig (see render_scheduler_config).
DEFAULT_SCHEDULER_CONFIG = """\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: "{kubeconfig}"
profiles:
- schedulerName: default-scheduler
"""

T = TypeVar("T")

#: Names kube-binaries.sh takes. CURRENT is what tests run on unless told otherwise
#: (pytest --kube-version / REDIS_EXTENDER_KUBE_VERSION).
CURRENT = "current"
LEGACY = "1.20.2"
KUBE_VERSIONS = (CURRENT, LEGACY)
KUBE_VERSION_ENV = "REDIS_EXTENDER_KUBE_VERSION"


class ControlPlaneError(RuntimeError):
    """A component failed to start; the message carries the tail of its log."""


class ApiError(RuntimeError):
    """Non-2xx answer from kube-apiserver; ``status`` and the decoded ``body`` are kept."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{method} {path} -> {status}: {message}")
        self.status = status
        self.body = body


# --------------------------------------------------------------------------------------------
# Binaries

def requested_version() -> str:
    """The version asked for by $REDIS_EXTENDER_KUBE_VERSION (CURRENT when unset)."""
    version = os.environ.get(KUBE_VERSION_ENV, "").strip() or CURRENT
    if version.lstrip("v") == LEGACY:
        return LEGACY
    if version != CURRENT:
        raise ValueError(f"{KUBE_VERSION_ENV}={version!r}: expected one of {', '.join(KUBE_VERSIONS)}")
    return version


@functools.cache
def kube_bin_dir(version: str = CURRENT) -> Path | None:
    """Directory with etcd/kube-apiserver/kube-scheduler of ``version`` (CURRENT or LEGACY),
    building them once if needed ($KUBE_BIN_DIR, if set, wins for any version).

    Returns None (so callers can skip tests) when the script fails, e.g. without root or
    registry access. Cached per process because the script's answer cannot change.
    """
    try:
        out = subprocess.run(
            ["bash", str(KUBE_BINARIES_SCRIPT), version], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True, timeout=3600, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.strip().splitlines()
    path = Path(lines[-1]) if lines else None
    return path if path is not None and (path / "kube-apiserver").is_file() else None


@functools.cache
def binary_version(binary: Path) -> tuple[int, int, int]:
    """(major, minor, patch) that a kube-apiserver/kube-scheduler binary reports with
    --version ("Kubernetes v1.37.2")."""
    out = subprocess.run([str(binary), "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, text=True, timeout=60, check=False).stdout
    match = re.search(r"\bv(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        raise ControlPlaneError(f"{binary} --version gave no version: {out.strip()[:200]!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def version_text(version: tuple[int, int, int]) -> str:
    return "v{}.{}.{}".format(*version)


# --------------------------------------------------------------------------------------------
# Scheduler config

def as_v1beta1(config_text: str) -> str:
    """Rewrite a ``kubescheduler.config.k8s.io/v1`` config for kube-scheduler < 1.25
    (v1 is GA since 1.25; v1.20 knows only v1beta1). Never done for the current version.

    The ``extenders``/``profiles`` schema we use is identical.
    """
    return re.sub(r"kubescheduler\.config\.k8s\.io/v1\b(?!beta)",
                  "kubescheduler.config.k8s.io/v1beta1", config_text)


def _set_block_keys(text: str, block: str, force: Mapping[str, str],
                    defaults: Mapping[str, str]) -> str:
    """Set scalar keys of a top-level block mapping in YAML text without a YAML parser.

    ``force`` values replace existing ones, ``defaults`` are only added when missing.
    Only block style is supported (a flow-style ``block: {...}`` raises ValueError).
    """
    lines = text.rstrip("\n").split("\n")
    header = re.compile(rf"^{re.escape(block)}:\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        if any(line.startswith(f"{block}:") for line in lines):
            raise ValueError(f"top-level {block!r} must be a block mapping")
        lines.append(f"{block}:")
        start, end, indent = len(lines) - 1, len(lines), "  "
    else:
        end = start + 1
        while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t"):
            end += 1
        body = [line for line in lines[start + 1:end] if line.strip()]
        indent = re.match(r"^\s*", body[0]).group(0) if body else "  "  # type: ignore[union-attr]
    present: dict[str, int] = {}
    for i in range(start + 1, end):
        m = re.match(rf"^{indent}(\w+):", lines[i])
        if m:
            present[m.group(1)] = i
    new: list[str] = []
    for key, value in {**defaults, **force}.items():
        if key in present:
            if key in force:
                lines[present[key]] = f"{indent}{key}: {value}"
        else:
            new.append(f"{indent}{key}: {value}")
    lines[start + 1:start + 1] = new
    return "\n".join(lines) + "\n"


def render_scheduler_config(config_text: str, kubeconfig: Path) -> str:
    """Make a KubeSchedulerConfiguration runnable against this control plane.

    - ``clientConnection.kubeconfig`` is always set to ``kubeconfig`` (a ``{kubeconfig}``
      placeholder is replaced too), so a shipped config with a real path can be reused;
    - ``clientConnection.qps``/``burst`` default to 1000: the client-side rate limit
      (default 50/100) would otherwise cap pods/s in throughput tests;
    - ``leaderElection.leaderElect`` defaults to false: a restarted scheduler would otherwise
      wait up to 15 s for its predecessor's lease;
    - v1beta1 configs without them get ``healthzBindAddress``/``metricsBindAddress`` on
      127.0.0.1 and a free port: schedulers before 1.23 otherwise serve plain HTTP on
      0.0.0.0:10251 even with --port=0, and two test sessions on one machine collide.
    """
    text = config_text.replace("{kubeconfig}", str(kubeconfig))
    if "kubescheduler.config.k8s.io/v1beta1" in text and "BindAddress" not in text:
        # (v1 has no such fields: healthz and metrics are served on the secure port only.)
        insecure = f"127.0.0.1:{_free_ports(1)[0]}"
        text = text.rstrip("\n") + f"\nhealthzBindAddress: {insecure}\nmetricsBindAddress: {insecure}\n"
    text = _set_block_keys(text, "clientConnection", {"kubeconfig": json.dumps(str(kubeconfig))},
                           {"qps": "1000", "burst": "1000"})
    return _set_block_keys(text, "leaderElection", {}, {"leaderElect": "false"})


# --------------------------------------------------------------------------------------------
# Process helpers

_live: set[ControlPlane] = set()  # strong refs: a dropped plane must still be stopped


@atexit.register
def _stop_all() -> None:
    """Last resort if a test forgot stop(): never leave an apiserver running."""
    for plane in list(_live):
        plane.stop()


try:  # resolved in the parent: no dlopen between fork and exec
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """Child-side: get SIGKILL if the starting thread dies (e.g. pytest killed with -9)."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _free_ports(n: int) -> list[int]:
    """Ask the kernel for n distinct free ports (sockets held together so none repeat)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


_DATA_DIR_PREFIX = "redis-extender-etcd-"


def _remove_orphaned_data_dirs(base: Path) -> None:
    """Drop etcd data dirs of test processes that died without stop() (e.g. kill -9):
    /dev/shm is RAM, and nothing else would ever clean them up."""
    for path in base.glob(f"{_DATA_DIR_PREFIX}*-*"):
        pid = path.name[len(_DATA_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# --------------------------------------------------------------------------------------------

class ControlPlane:
    """etcd + kube-apiserver (+ kube-scheduler) on loopback, with tiny REST helpers.

    Everything listens on 127.0.0.1 on ports picked at run time; certs, tokens, kubeconfig,
    configs and logs live in ``workdir``; etcd data lives under /dev/shm for speed. Auth is a
    static bearer token (group system:masters) under the real Node,RBAC authorizer with the
    built-in roles, and the ServiceAccount/TaintNodesByCondition admission plugins are off so
    fake nodes and bare pods just work.

    ``version`` / ``scheduler_version`` are what the binaries report; flags that a version
    no longer knows (--insecure-port < 1.24, the scheduler's --port < 1.23) are only passed
    to the versions that have them, and scheduler configs written as v1 are rewritten to
    v1beta1 only for a kube-scheduler < 1.25.

    Child processes are started from the calling thread and die with it (PR_SET_PDEATHSIG).
    """

    def __init__(self, bin_dir: Path, workdir: Path, scheduler_config: str | None = None, *,
                 with_scheduler: bool = True, apiserver_args: Sequence[str] = (),
                 start_timeout: float = 60.0) -> None:
        self.bin_dir = Path(bin_dir)
        self.version = binary_version(Path(self._binary("kube-apiserver")))
        self.scheduler_version = binary_version(Path(self._binary("kube-scheduler")))
        self.scheduler_insecure: str | None = None  # host:port of a < 1.23 scheduler's plain HTTP
        self.workdir = Path(workdir).resolve()
        self.scheduler_config = scheduler_config or DEFAULT_SCHEDULER_CONFIG
        self.with_scheduler = with_scheduler
        self.apiserver_args = list(apiserver_args)
        self.start_timeout = start_timeout
        self.token = secrets.token_hex(16)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.ca_file = self.workdir / "pki" / "ca.crt"
        self.etcd_port = self.apiserver_port = self.scheduler_port = 0
        self.etcd_data_dir: Path | None = None
        self.scheduler_log: Path | None = None
        self.scheduler_config_file: Path | None = None  # what the running scheduler reads
        self.timings: dict[str, float] = {}
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._scheduler: subprocess.Popen[bytes] | None = None
        self._scheduler_runs = 0
        self._controller_manager: subprocess.Popen[bytes] | None = None
        self.controller_manager_log: Path | None = None
        self._ssl: ssl.SSLContext | None = None
        self._local = threading.local()

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def start(self) -> ControlPlane:
        """Start etcd, kube-apiserver and (unless with_scheduler=False) the scheduler.

        Anything already started is stopped again if a later step fails.
        """
        _live.add(self)
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            self._make_certs()
            self.timings["certs"] = time.monotonic() - t0
            self._start_etcd()
            self._start_apiserver()
            if self.with_scheduler:
                self.start_scheduler(self.scheduler_config)
            self.timings["total"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything (SIGTERM, SIGKILL after 5 s) and drop etcd's data. Idempotent."""
        self.stop_controller_manager()
        self.stop_scheduler()
        stop_process(self._apiserver)
        stop_process(self._etcd)
        self._apiserver = self._etcd = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self.etcd_data_dir is not None:
            shutil.rmtree(self.etcd_data_dir, ignore_errors=True)
            self.etcd_data_dir = None
        _live.discard(self)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def scheduler_config_text(self, config_text: str) -> str:
        """A config as this kube-scheduler reads it: v1 -> v1beta1 below 1.25 only."""
        if self.scheduler_version[:2] < (1, 25):
            return as_v1beta1(config_text)
        return config_text

    def start_scheduler(self, config_text: str | None = None,
                        args: Sequence[str] = ()) -> None:
        """(Re)start kube-scheduler with a config (v1, or v1beta1 for an old scheduler);
        see scheduler_config_text and render_scheduler_config.

        Each run gets its own sched-N.yaml and scheduler-N.log in workdir.
        """
        if self._scheduler is not None:
            raise ControlPlaneError("scheduler already running; call stop_scheduler() first")
        t0 = time.monotonic()
        self._scheduler_runs += 1
        n = self._scheduler_runs
        config = self.workdir / f"sched-{n}.yaml"
        rendered = render_scheduler_config(
            self.scheduler_config_text(config_text or self.scheduler_config), self.kubeconfig)
        config.write_text(rendered)
        self.scheduler_config_file = config
        insecure_at = re.search(r"^metricsBindAddress:\s*\"?([\d.]+:\d+)", rendered, re.M)
        self.scheduler_insecure = insecure_at.group(1) if insecure_at else None
        (self.scheduler_port,) = _free_ports(1)
        self.scheduler_log = self.workdir / f"scheduler-{n}.log"
        old_flags = ["--port=0"] if self.scheduler_version[:2] < (1, 23) else []
        self._scheduler = self._spawn("kube-scheduler", self.scheduler_log, [
            f"--config={config}", "--bind-address=127.0.0.1",
            f"--secure-port={self.scheduler_port}", *old_flags,
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}", *args,
        ])
        healthz = f"https://127.0.0.1:{self.scheduler_port}/healthz"
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # the scheduler serves a throwaway self-signed cert
        try:
            self._wait_ready("kube-scheduler", self._scheduler, self.scheduler_log,
                             lambda: http_ok(healthz, insecure))
        except BaseException:
            self.stop_scheduler()
            raise
        self.timings[f"scheduler-{n}"] = time.monotonic() - t0

    def stop_scheduler(self) -> None:
        stop_process(self._scheduler)
        self._scheduler = None

    #: The controllers the keeper's tests need: a StatefulSet recreates an evicted pod, the
    #: disruption controller keeps a PDB's status (the Eviction API answers 429 from it), the
    #: garbage collector deletes a StatefulSet's pods with it.
    KEEPER_CONTROLLERS = ("statefulset", "disruption", "garbagecollector")

    def start_controller_manager(self, controllers: Sequence[str] = KEEPER_CONTROLLERS,
                                 args: Sequence[str] = ()) -> None:
        """Start kube-controller-manager with only ``controllers`` (--controllers), no leader
        election, on loopback. Needs the binary next to kube-apiserver (scripts/kube-binaries.sh
        current builds it; the v1.20.2 build has none: ControlPlaneError then)."""
        if self._controller_manager is not None:
            raise ControlPlaneError("kube-controller-manager already running")
        binary = self.bin_dir / "kube-controller-manager"
        if not os.access(binary, os.X_OK):
            raise ControlPlaneError(f"no kube-controller-manager in {self.bin_dir} (built for current only: "
                                    "scripts/kube-binaries.sh current)")
        t0 = time.monotonic()
        (port,) = _free_ports(1)
        self.controller_manager_log = self.workdir / "controller-manager.log"
        self._controller_manager = self._spawn("kube-controller-manager", self.controller_manager_log, [
            f"--kubeconfig={self.kubeconfig}", f"--controllers={','.join(controllers)}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={port}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--kube-api-qps=1000", "--kube-api-burst=1000", *args,
        ])
        healthz = f"https://127.0.0.1:{port}/healthz"
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its throwaway self-signed serving cert
        try:
            self._wait_ready("kube-controller-manager", self._controller_manager, self.controller_manager_log,
                             lambda: http_ok(healthz, insecure))
        except BaseException:
            self.stop_controller_manager()
            raise
        self.timings["controller-manager"] = time.monotonic() - t0

    def stop_controller_manager(self) -> None:
        stop_process(self._controller_manager)
        self._controller_manager = None

    def scheduler_get(self, path: str, timeout: float = 10.0) -> str:
        """GET ``path`` (/metrics, /healthz) of the running kube-scheduler: over its plain
        HTTP port when an old (v1beta1) config gave it one, else over the secure port with
        the admin token (delegated authentication and authorization by this apiserver)."""
        if self.scheduler_insecure:
            url = f"http://{self.scheduler_insecure}{path}"
            context = None
            headers = {}
        else:
            url = f"https://127.0.0.1:{self.scheduler_port}{path}"
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the scheduler's throwaway self-signed cert
            headers = {"Authorization": f"Bearer {self.token}"}
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return str(resp.read().decode())

    # ---- REST helpers ------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> dict[str, Any]:
        """One API call with the admin token over a kept-alive, CA-verified connection.

        Raises ApiError on non-2xx; returns {} for an empty body.
        """
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in range(2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", self.apiserver_port,
                                                   context=self._ssl, timeout=30)
                self._local.conn = conn
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest):
                conn.close()  # stale keep-alive connection: reconnect once
                self._local.conn = None
                if attempt:
                    raise
        decoded: dict[str, Any] = json.loads(raw) if raw else {}
        if not 200 <= resp.status < 300:
            raise ApiError(method, path, resp.status, decoded)
        return decoded

    def create_node(self, name: str, labels: Mapping[str, str] | None = None, cpu: str = "4",
                    memory: str = "8Gi", pods: str = "110") -> dict[str, Any]:
        """A fake node that stays Ready: no controller-manager runs to notice no kubelet."""
        resources = {"cpu": cpu, "memory": memory, "pods": pods}
        stamp = "2026-01-01T00:00:00Z"
        labels = {"kubernetes.io/hostname": name, **(labels or {})}
        return self.request("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {},
            "status": {
                "capacity": resources, "allocatable": resources,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            },
        })

    def create_pod(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a pod in its metadata.namespace (default "default")."""
        namespace = body.get("metadata", {}).get("namespace", "default")
        return self.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)

    def get_pod(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")

    def list_pods(self, namespace: str | None = None,
                  label_selector: str | None = None) -> list[dict[str, Any]]:
        """Pod items, all namespaces when namespace is None."""
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        if label_selector:
            path += "?" + urllib.parse.urlencode({"labelSelector": label_selector})
        return list(self.request("GET", path).get("items") or [])

    def delete(self, path: str, missing_ok: bool = True) -> dict[str, Any]:
        """Delete at once (grace period 0): without a kubelet, a bound pod deleted
        gracefully would stay Terminating forever."""
        try:
            return self.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1",
                                                 "gracePeriodSeconds": 0})
        except ApiError as exc:
            if missing_ok and exc.status == 404:
                return {}
            raise

    def patch_node_labels(self, name: str, labels: Mapping[str, str | None]) -> dict[str, Any]:
        """Merge-patch node labels (None removes one). Also the way to requeue pods that wait
        in backoff: a node update makes the scheduler retry unschedulable pods."""
        return self.request("PATCH", f"/api/v1/nodes/{name}", {"metadata": {"labels": labels}},
                            content_type="application/merge-patch+json")

    @staticmethod
    def wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05,
                 what: str = "condition") -> T:
        """Poll until predicate() is truthy and return its value; TimeoutError otherwise."""
        return wait_until(predicate, timeout=timeout, interval=interval, what=what, error=TimeoutError)

    # ---- internals ---------------------------------------------------------------------

    def _binary(self, name: str) -> str:
        """bin_dir first; PATH as fallback (etcd usually comes from the etcd-server package)."""
        candidate = self.bin_dir / name
        found = str(candidate) if os.access(candidate, os.X_OK) else shutil.which(name)
        if not found:
            raise ControlPlaneError(f"{name} not found in {self.bin_dir} or on PATH")
        return found

    def _spawn(self, name: str, log: Path, args: list[str]) -> subprocess.Popen[bytes]:
        # etcd reads every ETCD_* variable as a flag: never pass ours through.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        binary = self._binary(name)
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            return subprocess.Popen([binary, *args], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                                    preexec_fn=_die_with_parent)

    def _wait_ready(self, name: str, proc: subprocess.Popen[bytes], log: Path,
                    ready: Callable[[], bool]) -> None:
        wait_until(ready, timeout=self.start_timeout, what=name, proc=proc, log=log,
                   error=ControlPlaneError)

    def _make_certs(self) -> None:
        """CA, apiserver serving cert, service-account key pair and token file.

        P-256 keys: RSA key generation took ~1 s of every start; both are accepted alike.
        """
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
        _openssl("req", "-x509", *ec, "-keyout", "ca.key",
                 "-out", "ca.crt", "-days", "3650", "-subj", "/CN=redis-extender-test-ca", cwd=pki)
        (pki / "apiserver.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
            "extendedKeyUsage=serverAuth\n")
        _openssl("req", *ec, "-keyout", "apiserver.key",
                 "-out", "apiserver.csr", "-subj", "/CN=kube-apiserver", cwd=pki)
        _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "apiserver.crt", "-days", "3650",
                 "-extfile", "apiserver.ext", cwd=pki)
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", "sa.key", cwd=pki)
        _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
        (pki / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.write_text(f"""\
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {self.server}
    certificate-authority: {self.ca_file}
users:
- name: admin
  user:
    token: {self.token}
contexts:
- name: test
  context:
    cluster: test
    user: admin
current-context: test
""")

    def _start_etcd(self) -> None:
        t0 = time.monotonic()
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() else self.workdir
        _remove_orphaned_data_dirs(base)
        self.etcd_data_dir = Path(tempfile.mkdtemp(
            prefix=f"{_DATA_DIR_PREFIX}{os.getpid()}-", dir=base))
        self.etcd_port, peer = _free_ports(2)
        client, peer_url = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer}"
        log = self.workdir / "etcd.log"
        self._etcd = self._spawn("etcd", log, [
            "--name", "t", "--data-dir", str(self.etcd_data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"t={peer_url}",
        ])
        self._wait_ready("etcd", self._etcd, log, lambda: http_ok(f"{client}/health"))
        self.timings["etcd"] = time.monotonic() - t0

    def restart_apiserver(self, down: float = 0.0) -> None:
        """Stop kube-apiserver (SIGTERM), wait `down` seconds, start it again on the same port
        with the same etcd (clients reconnect; watches resume or relist)."""
        stop_process(self._apiserver)
        self._apiserver = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        time.sleep(down)
        self._start_apiserver(port=self.apiserver_port)

    def _start_apiserver(self, port: int | None = None) -> None:
        t0 = time.monotonic()
        (self.apiserver_port,) = (port,) if port else _free_ports(1)
        self._write_kubeconfig()
        pki = self.workdir / "pki"
        log = self.workdir / "apiserver.log"
        self._apiserver = self._spawn("kube-apiserver", log, [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            *(["--insecure-port=0"] if self.version[:2] < (1, 24) else []),
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}", f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24", "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
            f"--cert-dir={pki}", *self.apiserver_args,
        ])
        auth = {"Authorization": f"Bearer {self.token}"}
        self._wait_ready("kube-apiserver", self._apiserver, log,
                         lambda: http_ok(f"{self.server}/readyz", self._ssl, auth))
        # /readyz can pass before the bootstrap controller has created "default".
        self._wait_ready("kube-apiserver", self._apiserver, log, lambda: http_ok(
            f"{self.server}/api/v1/namespaces/default", self._ssl, auth))
        self.timings["apiserver"] = time.monotonic() - t0


def scheduler_config(profile: str = "redis-scheduler", extender_port: int | None = None,
                     node_cache_capable: bool = True, extra: str = "") -> str:
    """A v1 KubeSchedulerConfiguration with one profile, and with the extender on
    127.0.0.1:`extender_port` (filter, prioritize, bind) when given; ``extra`` lines go into
    the extender entry. ControlPlane.start_scheduler rewrites it for an old scheduler."""
    text = ("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
            'clientConnection:\n  kubeconfig: "{kubeconfig}"\npercentageOfNodesToScore: 100\n')
    text += f"profiles:\n- schedulerName: {profile}\n"
    if extender_port is not None:
        text += (f'extenders:\n- urlPrefix: "http://127.0.0.1:{extender_port}"\n  filterVerb: filter\n'
                 "  prioritizeVerb: prioritize\n  bindVerb: bind\n  weight: 12\n"
                 f"  nodeCacheCapable: {'true' if node_cache_capable else 'false'}\n  httpTimeout: 2s\n"
                 + extra)
    return text


# --------------------------------------------------------------------------------------------
# Self-check

EXTENDER_CONFIG_TEMPLATE = """\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: /etc/kubernetes/scheduler.conf
percentageOfNodesToScore: 100
profiles:
- schedulerName: default-scheduler
extenders:
- urlPrefix: "http://127.0.0.1:{port}/"
  filterVerb: filter
  nodeCacheCapable: true
  ignorable: false
  httpTimeout: 2s
"""


def _self_check(keep: bool) -> int:
    """Default scheduler binds a pod; an extender config is accepted and actually used."""
    t0 = time.monotonic()
    bin_dir = kube_bin_dir(requested_version())
    if bin_dir is None:
        print("kube binaries unavailable (scripts/kube-binaries.sh failed)", file=sys.stderr)
        return 1
    print(f"binaries: {bin_dir} ({time.monotonic() - t0:.1f} s)")
    workdir = Path(tempfile.mkdtemp(prefix="redis-extender-cp-"))
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "smoke-0", "labels": {"app": "smoke"}},
           "spec": {"containers": [{"name": "redis", "image": "redis:7", "resources": {
               "requests": {"cpu": "500m", "memory": "256Mi"}}}]}}
    try:
        with ControlPlane(bin_dir, workdir) as cp:
            print(f"apiserver {version_text(cp.version)}, scheduler {version_text(cp.scheduler_version)}")
            print("started:", ", ".join(f"{k} {v:.2f} s" for k, v in cp.timings.items()))
            for zone in "abc":
                cp.create_node(f"node-{zone}", {"topology.kubernetes.io/zone": f"zone-{zone}"})
            t1 = time.monotonic()
            cp.create_pod(pod)
            node = cp.wait_for(lambda: cp.get_pod("smoke-0")["spec"].get("nodeName"),
                               what="smoke-0 to be bound")
            print(f"smoke-0 bound to {node} in {time.monotonic() - t1:.2f} s")
            assert len(cp.list_pods("default", "app=smoke")) == 1

            # The same apiserver with a scheduler that must ask an (absent) extender.
            cp.stop_scheduler()
            (port,) = _free_ports(1)
            cp.start_scheduler(EXTENDER_CONFIG_TEMPLATE.replace("{port}", str(port)))
            print(f"scheduler with extender config healthy in {cp.timings['scheduler-2']:.2f} s")
            cp.create_pod({**pod, "metadata": {"name": "smoke-1", "labels": {"app": "smoke"}}})
            event = cp.wait_for(lambda: [
                e for e in cp.request("GET", "/api/v1/namespaces/default/events")["items"]
                if e["involvedObject"]["name"] == "smoke-1" and e["reason"] == "FailedScheduling"
            ], what="FailedScheduling for smoke-1")[0]
            print(f"smoke-1 not scheduled as expected: {event['message'][:160]}")
            assert not cp.get_pod("smoke-1")["spec"].get("nodeName")
            cp.delete("/api/v1/namespaces/default/pods/smoke-0")
            cp.wait_for(lambda: len(cp.list_pods("default")) == 1, timeout=10,
                        what="smoke-0 to be gone")
            cp.patch_node_labels("node-a", {"example.com/touched": "yes"})
        print(f"OK in {time.monotonic() - t0:.1f} s" + (f"; logs in {workdir}" if keep else ""))
        return 0
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(_self_check(keep="--keep" in sys.argv[1:]))
