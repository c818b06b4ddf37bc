"""The installed package holds the product only: no module under extender/ imports the tests,
the development harness or the benchmarks, none starts a module of the tests as a subprocess
(the development entry points it may start from a checkout are harness/ and benchmarks/), every
module imports from a copy of the package alone (as from a wheel, without the repository around
it), and `bench --scheduler` says what it needs there."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import extender
from extender.commands import bench

PACKAGE = Path(extender.__file__).resolve().parent
REPO = PACKAGE.parent
DEVELOPMENT = ("tests", "benchmarks", "harness")
ENTRY_POINTS = ("harness", "benchmarks")  # development entry points `run`/`bench` may start from a checkout


def development_imports(source: str) -> list[str]:
    """The tests/benchmarks modules a source imports: import statements anywhere (inside
    functions too) and importlib.import_module/__import__ of a literal name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            names = [str(node.args[0].value)]
        found += [name for name in names if name.split(".")[0] in DEVELOPMENT]
    return found


def test_the_scan_sees_every_form_of_import() -> None:
    source = ("import harness.controlplane\nfrom benchmarks import bench_scheduler\n"
              "def f():\n    from tests.support.serving import Served\n"
              "importlib.import_module('benchmarks.bench_scheduler')\nimport testsuite\nfrom . import tests\n")
    assert development_imports(source) == ["harness.controlplane", "benchmarks",
                                           "tests.support.serving", "benchmarks.bench_scheduler"]


def subprocess_targets(source: str) -> list[str]:
    """The modules a source runs as `python -m NAME`: a literal "-m" followed by a literal name
    in a list or tuple (an argv), or a name held in a variable (reported as "?")."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.List, ast.Tuple)):
            items = node.elts
            for first, second in zip(items, items[1:]):
                if isinstance(first, ast.Constant) and first.value == "-m":
                    found.append(second.value if isinstance(second, ast.Constant) else "?")
    return found


def test_the_subprocess_scan_sees_literal_and_variable_targets() -> None:
    source = ("subprocess.Popen([sys.executable, '-m', 'tests.support.x', 'a'])\n"
              "run((python, '-m', module))\nrun(['-v', 'x'])\n")
    assert subprocess_targets(source) == ["tests.support.x", "?"]


def test_no_module_of_the_package_runs_the_tests() -> None:
    targets = {str(path.relative_to(REPO)): found for path in sorted(PACKAGE.rglob("*.py"))
               if (found := subprocess_targets(path.read_text()))}
    assert targets, "the scan found no subprocess at all: it no longer sees the package's argvs"
    wrong = {where: [t for t in found if t.split(".")[0] not in ("extender", *ENTRY_POINTS) and t != "?"]
             for where, found in targets.items()}
    assert {where: bad for where, bad in wrong.items() if bad} == {}
    assert not any(t.split(".")[0] == "tests" for found in targets.values() for t in found)


def test_no_module_of_the_package_imports_the_tests_or_the_benchmarks() -> None:
    offenders = {str(path.relative_to(REPO)): found for path in sorted(PACKAGE.rglob("*.py"))
                 if (found := development_imports(path.read_text()))}
    assert offenders == {}


def _package_alone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of extender/ with nothing of the repository beside it, and an environment that
    imports it (and only it) from there."""
    site = tmp_path / "site-packages"
    shutil.copytree(PACKAGE, site / "extender", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(site)}
    return site, env


def test_every_module_imports_from_the_package_alone(tmp_path: Path) -> None:
    site, env = _package_alone(tmp_path)
    script = ("import importlib, pkgutil, extender\n"
              f"assert extender.__file__.startswith({str(site)!r}), extender.__file__\n"
              "names = [m.name for m in pkgutil.walk_packages(extender.__path__, 'extender.')]\n"
              "[importlib.import_module(name) for name in names]\n"
              "print(len(names))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 30  # every module was walked, not an empty package


def test_bench_scheduler_without_a_checkout_says_what_it_needs_and_exits_2(tmp_path: Path) -> None:
    site, env = _package_alone(tmp_path)
    done = subprocess.run([sys.executable, "-m", "extender.cli", "bench", "--scheduler", "--nodes", "10"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    message = done.stderr
    assert "no repository checkout" in message and str(site / "extender") in message
    assert "checkout of the redis-extender repository" in message
    assert "scripts/kube-binaries.sh" in message and "KUBE_BIN_DIR" in message
    assert "cluster:" not in done.stdout  # it said so before running the extender-alone bench
    assert bench.checkout(site / "extender") is None


def test_from_the_checkout_bench_scheduler_finds_and_runs_the_benchmark() -> None:
    assert bench.checkout() == REPO
    assert bench.run_scheduler_bench(REPO, ["--help"]) == 0  # the module imports and parses its arguments


def test_from_the_checkout_bench_placement_finds_and_runs_the_benchmark() -> None:
    assert bench.run_checkout_bench(REPO, "benchmarks.bench_placement", ["--help"]) == 0


def test_bench_placement_without_a_checkout_says_what_it_needs_and_exits_2(tmp_path: Path) -> None:
    site, env = _package_alone(tmp_path)
    done = subprocess.run([sys.executable, "-m", "extender.cli", "bench", "--placement"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "no repository checkout" in done.stderr


MAX_MODULE_LINES = 500


def test_no_module_of_the_package_is_over_500_lines() -> None:
    sizes = {str(path.relative_to(REPO)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert len(sizes) >= 40  # the walk saw the package
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_building_the_cli_creates_no_metric_before_serve_can_set_up_multiprocess_mode() -> None:
    """`serve` points prometheus_client at a multiprocess directory before gunicorn forks; a
    metric created earlier (by a module the parser imports) lives in the master's memory and
    the workers' /metrics comes out empty (the keeper's parser did this once)."""
    script = ("import sys, extender.cli\nextender.cli.build_parser()\n"
              "print(sorted(m for m in sys.modules if m.startswith('prometheus_client') or m == 'extender.core.metrics'))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
