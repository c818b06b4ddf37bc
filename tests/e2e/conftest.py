"""End-to-end fixtures: one real etcd + kube-apiserver per test session (harness/controlplane.py).

Every test under tests/e2e is marked ``e2e`` (``pytest -m "not e2e"`` leaves them out). The
kube binaries are required, not optional: when they cannot be found or built, the tests fail
with the reason instead of being skipped, so a green run always includes them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from harness.controlplane import (
    KUBE_BINARIES_SCRIPT, ControlPlane, ControlPlaneError, kube_bin_dir, requested_version,
)

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items, not only this directory's.
    for item in items:
        if E2E_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def kube_version_name(request: pytest.FixtureRequest) -> str:
    """"current" or "1.20.2": --kube-version, else $REDIS_EXTENDER_KUBE_VERSION, else current."""
    option = request.config.getoption("--kube-version", default=None)
    return str(option) if option else requested_version()


@pytest.fixture(scope="session")
def kube_bin(kube_version_name: str) -> Path:
    """The directory holding kube-apiserver and kube-scheduler (etcd there or on PATH).

    $KUBE_BIN_DIR wins, then the cache of the requested version, else a build
    (scripts/kube-binaries.sh VERSION). Fails the test when none of these works.
    """
    path = kube_bin_dir(kube_version_name)
    if path is None:
        pytest.fail(
            f"kube-apiserver/kube-scheduler unavailable: {KUBE_BINARIES_SCRIPT} "
            f"{kube_version_name} failed (it needs Go and the module proxy for current, root "
            "or sudo and apt access for 1.20.2, once; or set KUBE_BIN_DIR to a directory "
            "holding kube-apiserver and kube-scheduler). Run the script by hand to see why.",
            pytrace=False)
    return path


def pytest_report_header(config: pytest.Config) -> str:
    option = config.getoption("--kube-version", default=None)
    return f"e2e kube version: {option or requested_version()}"


@pytest.fixture(scope="session")
def control_plane(kube_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver on loopback for the whole session, without a scheduler.

    Tests start the scheduler they need on it with ``control_plane.start_scheduler(config_text)``
    (a v1 KubeSchedulerConfiguration; the harness rewrites it to v1beta1 for a scheduler < 1.25
    only, and points clientConnection at this apiserver) and must ``stop_scheduler()`` in a finally block: one
    scheduler runs at a time. The apiserver is shared, so tests use their own namespaces or
    object names and delete what they create (no controller-manager runs, so a deleted
    namespace would stay Terminating: keep namespaces). Logs and configs are in
    ``control_plane.workdir``.
    """
    plane = ControlPlane(kube_bin, tmp_path_factory.mktemp("cp"), with_scheduler=False)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def controller_manager(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """kube-controller-manager on the session's control plane for one module, with the
    StatefulSet, disruption (PDB) and garbage-collector controllers only (the keeper's tests:
    an evicted pod is recreated by its StatefulSet, the Eviction API enforces a PDB). Built for
    the current version only: on v1.20.2 the test fails with the reason."""
    try:
        control_plane.start_controller_manager()
    except ControlPlaneError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield control_plane
    finally:
        control_plane.stop_controller_manager()
