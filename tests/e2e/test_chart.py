"""Every object `helm template` renders from charts/redis-extender, with the default and with
non-default values, is accepted by the real kube-apiserver: a server-side dry run
(`?dryRun=All&fieldValidation=Strict`: admission, defaulting and validation run, nothing is
stored, an unknown field is an error). The ServiceMonitor, PrometheusRule and cert-manager
Certificates/Issuers are validated against the published CRDs of the Prometheus operator and
cert-manager (from their Go modules, scripts/tool-binaries.sh), installed for real first.
The values sets are tests/integration/test_chart.py's: default; sentinel cache + ServiceMonitor
+ PrometheusRule + dashboard + cert-manager; no mTLS with other names, weights and levels.
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from harness.controlplane import ApiError, ControlPlane

from ..integration.test_chart import VALUE_SETS
from ..support.tools import crds, rendered_objects
from .test_manifests import missing_fields

pytestmark = pytest.mark.e2e

NAMESPACE = "rx-chart"  # a release namespace of its own: nothing of test_manifests' is touched


def established(cp: ControlPlane, name: str) -> bool:
    crd = cp.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    return any(c["type"] == "Established" and c["status"] == "True" for c in crd.get("status", {}).get("conditions", []))


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """The session's apiserver with the release namespace and the CRDs the chart may use."""
    for body in ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},):
        try:
            control_plane.request("POST", "/api/v1/namespaces", body)
        except ApiError as exc:
            if exc.status != 409:
                raise
    names = []
    for crd in crds("prometheus-operator-crds") + crds("cert-manager-crds"):
        names.append(crd["metadata"]["name"])
        try:
            control_plane.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        except ApiError as exc:
            if exc.status != 409:
                raise
    for name in names:
        control_plane.wait_for(lambda: established(control_plane, name), timeout=60, what=f"CRD {name} established")
    yield control_plane


def resources(cp: ControlPlane, api_version: str) -> dict[str, tuple[str, bool]]:
    """kind -> (resource, namespaced) as the apiserver's discovery says."""
    path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return {r["kind"]: (r["name"], r["namespaced"]) for r in cp.request("GET", path)["resources"] if "/" not in r["name"]}


@pytest.mark.parametrize("values", list(VALUE_SETS), ids=list(VALUE_SETS))
def test_chart_render_accepted_by_apiserver_dry_run(api: ControlPlane, values: str) -> None:
    objects = rendered_objects(*VALUE_SETS[values], namespace=NAMESPACE)
    kinds = {o["kind"] for o in objects}
    if values == "sentinel-monitoring-cert-manager":
        assert {"ServiceMonitor", "PrometheusRule", "Certificate", "Issuer"} <= kinds
    refused: list[str] = []
    for obj in objects:
        resource, namespaced = resources(api, obj["apiVersion"])[obj["kind"]]
        namespace = obj["metadata"].get("namespace")
        assert bool(namespace) == namespaced, f"{obj['kind']}/{obj['metadata']['name']}: namespace {namespace!r}"
        base = f"/api/{obj['apiVersion']}" if "/" not in obj["apiVersion"] else f"/apis/{obj['apiVersion']}"
        collection = f"{base}/namespaces/{namespace}/{resource}" if namespaced else f"{base}/{resource}"
        try:
            got: dict[str, Any] = api.request("POST", collection + "?dryRun=All&fieldValidation=Strict", obj)
        except ApiError as exc:
            refused.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
            continue
        assert not missing_fields(obj, got), (obj["kind"], obj["metadata"]["name"], missing_fields(obj, got))
        with pytest.raises(ApiError) as absent:  # nothing stored
            api.request("GET", f"{collection}/{obj['metadata']['name']}")
        assert absent.value.status == 404
    assert not refused, "\n".join(refused)
