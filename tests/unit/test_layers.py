"""The layer contract (pyproject.toml [tool.importlinter]) holds, and would catch a breach.

`lint-imports` reads the imports statically (grimp): nothing is executed, so the breaches
below are planted in a copy of the package, never in the tree under test.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def test_the_package_keeps_its_layers() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "extender", tmp_path / "extender", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize("module, line, contract", [
    # the cycle of issue 8: the model typed with the policy's arrays, even for type checkers only
    ("model.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .policy.candidates import NodeArrays",
     "Layers"),
    ("policy/filter.py", "from ..state.cache import StateCache", "Layers"),
    ("state/cache.py", "from ..service import metrics", "Layers"),
    ("service/decisions.py", "import redis", "Only extender.state"),
    ("protocol.py", "from kubernetes import client", "Only extender.state"),
])
def test_a_planted_breach_breaks_the_contract(copy: Path, module: str, line: str, contract: str) -> None:
    path = copy / "extender" / module
    path.write_text(path.read_text() + f"\n{line}\n")
    result = lint(copy)
    assert result.returncode != 0
    broken = [text for text in result.stdout.splitlines() if " BROKEN" in text]
    assert any(text.startswith(contract) for text in broken), result.stdout
