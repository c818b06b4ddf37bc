"""When `redis-extender run` can use the real kube-scheduler (embedded.kube_scheduler_setup):
a checkout beside the package holding the control-plane harness, and the binaries."""
from __future__ import annotations

from pathlib import Path

import pytest

from extender.commands import embedded


def tree(root: Path, files: list[str]) -> None:
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("")


def test_needs_a_checkout_and_the_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "repo" / "extender"
    package.mkdir(parents=True)
    bins = tmp_path / "bin"
    tree(bins, ["kube-apiserver", "kube-scheduler", "etcd"])
    monkeypatch.setenv("KUBE_BIN_DIR", str(bins))
    assert embedded.kube_scheduler_setup(package) is None  # an installed package: no harness beside it
    tree(tmp_path / "repo", [str(embedded.SIMCLUSTER), str(embedded.HARNESS)])
    assert embedded.kube_scheduler_setup(package) == (tmp_path / "repo", bins)
    (bins / "kube-scheduler").unlink()
    assert embedded.kube_scheduler_setup(package) is None


def test_the_newest_cached_release_is_chosen(tmp_path: Path) -> None:
    for name in ("kube-v1.20.2", "kube-v1.37.2", "kube-v1.9.0", "kube-v1.37.2.lock", "kube-vx"):
        (tmp_path / name).mkdir()
    assert embedded.newest_cached_kube(tmp_path) == tmp_path / "kube-v1.37.2"
    assert embedded.newest_cached_kube(tmp_path / "missing").name == "kube-none"
