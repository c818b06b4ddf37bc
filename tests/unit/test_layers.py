"""The layer contract (pyproject.toml [tool.importlinter]) holds, and would catch a breach.

`lint-imports` reads the imports statically (grimp): nothing is executed, so the breaches
below are planted in a copy of the package, never in the tree under test.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    if not LINT.exists():
        pytest.fail(f"{LINT} missing: install the test extra (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def contract_names() -> list[str]:
    return [c["name"] for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]]


def test_the_package_keeps_its_layers() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(contract_names())} kept, 0 broken" in result.stdout


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "extender", tmp_path / "extender", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


# One planted import per contract (the first word of its name), each of them a breach that
# the contract must catch; the first four passed the old contract (issue 18).
BREACHES = [
    ("service/app.py", "from extender.commands import embedded", "Layers: imports point inward"),
    ("commands/args.py", "from extender.commands import plan", "commands:"),
    ("policy/filter.py", "import flask", "Only extender.service speaks HTTP"),
    ("core/model.py", "import numpy", "numpy only"),
    # the cycle of issue 8: the model typed with the policy's arrays, even for type checkers only
    ("core/model.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from extender.policy.candidates import NodeArrays",
     "Layers: imports point inward"),
    ("policy/filter.py", "from extender.state.cache import StateCache", "Layers: imports point inward"),
    ("engine/decider.py", "from extender.actuation import nodes", "Layers: imports point inward"),
    ("analysis/topology.py", "from extender.protocol import loads", "Layers: imports point inward"),
    ("service/report_routes.py", "from extender.service import app", "service:"),
    ("actuation/nodes.py", "from extender.actuation import rebalance", "actuation:"),
    ("reports/render.py", "from extender.reports import html", "reports:"),
    ("local/processes.py", "from extender.local import localredis", "local:"),
    ("state/store.py", "from extender.state import cache", "state:"),
    ("state/schema.py", "from extender.state import records", "state:"),
    ("policy/filter.py", "from extender.policy import score", "policy:"),
    ("analysis/topology.py", "from extender.analysis import advice", "analysis:"),
    ("protocol/errors.py", "from extender.protocol import objects", "protocol:"),
    ("core/model.py", "from extender.core import identity", "core:"),
    ("core/settings.py", "from extender.core import metrics", "core:"),
    ("engine/decider.py", "import redis", "Only extender.state and extender.actuation talk to Redis"),
    ("protocol/objects.py", "from kubernetes import client", "Only extender.state and extender.actuation talk to Kubernetes"),
    ("state/cache.py", "import gunicorn", "Only extender.service speaks HTTP"),
    ("engine/decider.py", "import numpy as np", "numpy only"),
    ("policy/score.py", "import prometheus_client", "prometheus_client only"),
]


def test_every_contract_has_a_planted_breach() -> None:
    assert {name for name in contract_names() if any(name.startswith(c) for *_, c in BREACHES)} == set(contract_names())


@pytest.mark.parametrize("module, line, contract", BREACHES)
def test_a_planted_breach_breaks_the_contract(copy: Path, module: str, line: str, contract: str) -> None:
    path = copy / "extender" / module
    path.write_text(path.read_text() + f"\n{line}\n")
    result = lint(copy)
    assert result.returncode != 0
    text = " ".join(result.stdout.split())  # names wrap over lines in the output
    names = [name for name in contract_names() if name.startswith(contract)]
    assert len(names) == 1, names
    assert f"{names[0]} BROKEN" in text, result.stdout
