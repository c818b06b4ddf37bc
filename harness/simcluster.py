"""The simulated cluster on a real control plane, for `redis-extender run` with the real
kube-scheduler (extender/commands/embedded.py starts this from a checkout; development only).

    python -m harness.simcluster DOCUMENT.json WORKDIR EXTENDER_PORT BIN_DIR

Starts etcd + kube-apiserver + kube-scheduler (v1beta1 config: the extender on
127.0.0.1:EXTENDER_PORT with filter, prioritize and bind), creates the document's namespaces,
Nodes and already-placed Pods, writes the kubeconfig's path to WORKDIR/ready, waits for
WORKDIR/go (the caller has read the state "before"), creates the pending Pods in document
order, and keeps the control plane up until SIGTERM/SIGINT.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .controlplane import ControlPlane, scheduler_config

GO_TIMEOUT = 120.0


def main(argv: list[str]) -> int:
    doc_path, workdir, port, bin_dir = Path(argv[0]), Path(argv[1]), int(argv[2]), Path(argv[3])
    document = json.loads(doc_path.read_text())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    config = scheduler_config(profile="default-scheduler", extender_port=port)
    with ControlPlane(bin_dir, workdir / "cp", config) as cp:
        nodes = [i for i in document["items"] if i["kind"] == "Node"]
        pods = [i for i in document["items"] if i["kind"] == "Pod"]
        for ns in sorted({p["metadata"].get("namespace") or "default" for p in pods} - {"default"}):
            cp.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": ns}})
        for n in nodes:
            alloc = n["status"]["allocatable"]
            labels = {k: v for k, v in n["metadata"]["labels"].items() if k != "kubernetes.io/hostname"}
            cp.create_node(n["metadata"]["name"], labels, cpu=alloc["cpu"], memory=alloc["memory"],
                           pods=alloc.get("pods", "110"))
        pending = []
        for p in pods:
            if p["spec"].get("nodeName"):
                cp.create_pod(_body(p))
            else:
                pending.append(p)
        (workdir / "ready").write_text(str(cp.kubeconfig))
        deadline = time.monotonic() + GO_TIMEOUT
        while not (workdir / "go").exists() and not stop.is_set():
            if time.monotonic() > deadline:
                print("simcluster: no go signal", file=sys.stderr)
                return 1
            stop.wait(0.05)
        for p in pending:
            cp.create_pod(_body(p))
        print(f"simcluster: {len(pending)} pending pods created", flush=True)
        stop.wait()
    return 0


def _body(pod: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in pod["metadata"].items() if k in ("name", "namespace", "labels")}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod["spec"]}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
