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


class _CrdLoader(yaml.SafeLoader):
    """PyYAML's safe loader reads a bare `=` as YAML 1.1's `value` tag, which it cannot
    construct; the CRDs list "=" as an enum value (a plain string, as Go's YAML reads it)."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def crds(name: str) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of `prometheus-operator-crds` or `cert-manager-crds`."""
    return [doc for path in crd_files(name) for doc in yaml.load_all(path.read_text(), Loader=_CrdLoader) if doc]


def helm_template(*values: str, namespace: str = "redis-extender", release: str = "redis-extender",
                  check: bool = True) -> subprocess.CompletedProcess[str]:
    """`helm template RELEASE charts/redis-extender -n NAMESPACE` with --set/--values args."""
    return subprocess.run([helm(), "template", release, str(CHART), "--namespace", namespace, *values],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120, check=check)


def rendered_objects(*values: str, namespace: str = "redis-extender",
                     release: str = "redis-extender") -> list[dict[str, Any]]:
    text = helm_template(*values, namespace=namespace, release=release).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]
