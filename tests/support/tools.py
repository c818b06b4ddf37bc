"""The development tools the chart tests run: helm, promtool and the published CRDs of the
Prometheus operator and cert-manager, built or fetched from Go modules and cached by
scripts/tool-binaries.sh (./scripts/test's ensure_tools does it up front). Like the kube
binaries they are required, not optional: a missing tool fails the test with the reason."""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "tool-binaries.sh"
CHART = REPO / "charts" / "redis-extender"


@functools.cache
def tool_dir(name: str) -> Path:
    done = subprocess.run(["bash", str(SCRIPT), name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=1800)
    if done.returncode != 0:
        pytest.fail(f"{SCRIPT.name} {name} failed (it needs Go and the module proxy once):\n"
                    f"{done.stderr[-3000:]}", pytrace=False)
    return Path(done.stdout.strip().splitlines()[-1])


def helm() -> str:
    return str(tool_dir("helm") / "helm")


def promtool() -> str:
    return str(tool_dir("promtool") / "promtool")


def crd_files(name: str) -> list[Path]:
    """The CRD YAML files of `prometheus-operator-crds` or `cert-manager-crds`."""
    return sorted(tool_dir(name).glob("*.yaml"))


def helm_template(*values: str, namespace: str = "redis-extender", release: str = "redis-extender",
                  check: bool = True) -> subprocess.CompletedProcess[str]:
    """`helm template RELEASE charts/redis-extender -n NAMESPACE` with --set/--values args."""
    return subprocess.run([helm(), "template", release, str(CHART), "--namespace", namespace, *values],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120, check=check)


def rendered_objects(*values: str, namespace: str = "redis-extender",
                     release: str = "redis-extender") -> list[dict[str, Any]]:
    text = helm_template(*values, namespace=namespace, release=release).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]
