"""The package type-checks clean ([tool.mypy] in pyproject.toml), and the check would catch a
type error: one is planted in a copy of the package, never in the tree under test."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def mypy(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--config-file",
                           str(root / "pyproject.toml"), str(root / "extender")],
                          cwd=root, capture_output=True, text=True, timeout=600)


def test_the_package_type_checks_clean() -> None:
    result = mypy(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_a_planted_type_error_is_caught(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "extender", tmp_path / "extender", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    filter_module = tmp_path / "extender" / "policy" / "filter.py"
    filter_module.write_text(filter_module.read_text() + "\n\ndef _planted() -> int:\n    return 'not an int'\n")
    result = mypy(tmp_path)
    assert result.returncode != 0
    assert "filter.py" in result.stdout and "Incompatible return value type" in result.stdout
