"""deploy/ and scheduler-config/ are accepted by the real kube-apiserver and kube-scheduler.

- Every object of deploy/kustomization.yaml's resources and of deploy/example/ passes a
  server-side dry run (``?dryRun=All``): admission, defaulting and validation run, nothing is
  stored. A v1.20 apiserver drops unknown fields silently instead of rejecting them, so each
  test also checks that every field sent comes back (newer servers get fieldValidation=Strict).
- The RBAC of deploy/ grants what the extender and the scheduler need and nothing else,
  as judged by the real Node,RBAC authorizer (a second apiserver, with deploy/'s
  ServiceAccounts and RBAC objects created for real and the built-in roles;
  SubjectAccessReviews for the two ServiceAccounts).
- Every file of scheduler-config/ starts the real kube-scheduler (which decodes strictly:
  an unknown field stops it) as shipped on the current version (v1 configs; only paths and
  ports pointed at the loopback cluster), which must become healthy, take its own lease and
  log the extender configuration as written; on the v1.20.2 compatibility run v1 is
  rewritten to v1beta1 by the harness (scheduler < 1.25 only); and the certificate made by the recipe in deploy/ is
  trusted by kube-scheduler with the shipped tlsConfig (a real HTTPS filter call).
- The copies and cross-references between the files (ConfigMap text, paths, names, ports)
  agree, so a rename in one file cannot silently break the deployment.
deploy/ is generated from charts/redis-extender (scripts/render-deploy); that it is the
chart's default render is tests/integration/test_chart.py::test_deploy_is_the_default_render
(which replaces the former `kubectl kustomize` comparison, skipped where kubectl is absent).
"""
from __future__ import annotations

import hashlib
import itertools
import os
import re
import socket
import ssl
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from extender.local.processes import free_port

from ..support.certs import make_certs
from harness.controlplane import ApiError, ControlPlane

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCHEDULER_CONFIG = REPO / "scheduler-config"
CANONICAL_CONFIG = SCHEDULER_CONFIG / "redis-scheduler.yaml"
CONFIGMAP_KEY = "redis-scheduler.yaml"
EXAMPLE_NAMESPACE = "redis"  # as in deploy/example/redis-cluster.yaml's instructions

# (apiVersion, kind) -> (resource, namespaced) for the kinds the manifests use.
KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Service"): ("services", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("policy/v1", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
}

# Served by current clusters but not by v1.20, with the older version of the same schema.
# PodDisruptionBudget policy/v1 is GA since 1.21 (policy/v1beta1 gone in 1.25); the fields
# used (minAvailable, selector) mean the same in both. Only for an apiserver < 1.25: on the
# current version every file goes as shipped.
OLDER_VERSION = {"policy/v1": "policy/v1beta1"}


# --------------------------------------------------------------------------------------------
# Reading the manifests

def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())


def deploy_files() -> list[Path]:
    """deploy/kustomization.yaml's resources (the ConfigMap of the scheduler config included)."""
    return [DEPLOY / name for name in kustomization()["resources"]]


def manifest_objects() -> list[tuple[Path, dict[str, Any]]]:
    files = deploy_files() + sorted((DEPLOY / "example").glob("*.yaml"))
    return [(path, doc) for path in files for doc in load_docs(path)]


def object_id(path: Path, obj: dict[str, Any]) -> str:
    return f"{path.relative_to(DEPLOY)}:{obj['kind']}/{obj['metadata']['name']}"


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [o for _, o in manifest_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name} in deploy/, found {len(matches)}"
    return matches[0]


def container(obj: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = obj["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def flag(args: list[str], name: str) -> str:
    """Value of --name VALUE or --name=VALUE in an argument list."""
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {args}")


def mount_path(obj: dict[str, Any], volume: str) -> str:
    mounts = [m for c in obj["spec"]["template"]["spec"]["containers"]
              for m in c.get("volumeMounts", []) if m["name"] == volume]
    assert len(mounts) == 1, f"volume {volume} should be mounted once"
    return mounts[0]["mountPath"]


def volume(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in obj["spec"]["template"]["spec"]["volumes"] if v["name"] == name)


def missing_fields(sent: Any, got: Any, path: str = "") -> list[str]:
    """Paths of fields in ``sent`` that ``got`` lacks: fields an old apiserver pruned as
    unknown. Values are not compared (defaulting and quantity normalization change them)."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return [path or "."]
        return [m for key, value in sent.items()
                for m in (missing_fields(value, got[key], f"{path}.{key}") if key in got
                          else [f"{path}.{key}"])]
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            return [path]
        return [m for i, (s, g) in enumerate(zip(sent, got)) for m in missing_fields(s, g, f"{path}[{i}]")]
    return []


# --------------------------------------------------------------------------------------------
# API helpers

def served_group_versions(cp: ControlPlane) -> set[str]:
    versions = set(cp.request("GET", "/api")["versions"])  # the core group: "v1"
    for group in cp.request("GET", "/apis")["groups"]:
        versions.update(v["groupVersion"] for v in group["versions"])
    return versions


def collection_path(api_version: str, resource: str, namespace: str | None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{base}/namespaces/{namespace}/{resource}" if namespace else f"{base}/{resource}"


def ensure_namespace(cp: ControlPlane, body: dict[str, Any]) -> None:
    """Create the namespace for real unless it exists: dry-run creates in a namespace need it
    (and without a controller-manager a deleted namespace would stay Terminating: keep it)."""
    try:
        cp.request("POST", "/api/v1/namespaces", body)
    except ApiError as exc:
        if exc.status != 409:
            raise


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """The session's apiserver with the manifests' namespaces in place."""
    for _, obj in manifest_objects():
        if obj["kind"] == "Namespace":
            ensure_namespace(control_plane, obj)
    ensure_namespace(control_plane, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": EXAMPLE_NAMESPACE}})
    yield control_plane


@pytest.fixture(scope="module")
def group_versions(api: ControlPlane) -> set[str]:
    return served_group_versions(api)


# --------------------------------------------------------------------------------------------
# The manifests, one dry run each

OBJECTS = manifest_objects()


@pytest.mark.parametrize("path,obj", OBJECTS, ids=[object_id(p, o) for p, o in OBJECTS])
def test_manifest_accepted_by_apiserver_dry_run(api: ControlPlane, group_versions: set[str],
                                                path: Path, obj: dict[str, Any]) -> None:
    key = (obj["apiVersion"], obj["kind"])
    assert key in KINDS, f"{object_id(path, obj)}: add {key} to KINDS in this test"
    resource, namespaced = KINDS[key]
    body = dict(obj)
    api_version = obj["apiVersion"]
    if api.version[:2] < (1, 25) and api_version not in group_versions and api_version in OLDER_VERSION:
        api_version = OLDER_VERSION[api_version]  # see OLDER_VERSION
        body["apiVersion"] = api_version
    assert api_version in group_versions, f"{api_version} is not served by this apiserver"

    if obj["kind"] == "Namespace":  # exists (the `api` fixture): a dry-run update instead
        name = obj["metadata"]["name"]
        current = api.request("GET", f"/api/v1/namespaces/{name}")["metadata"]["resourceVersion"]
        body["metadata"] = {**obj["metadata"], "resourceVersion": current}
        got = api.request("PUT", f"/api/v1/namespaces/{name}?dryRun=All&fieldValidation=Strict", body)
        assert not missing_fields(body, got)
        return
    namespace = None
    if namespaced:
        # Objects of deploy/ name their namespace; the example is applied with -n.
        namespace = obj["metadata"].get("namespace")
        if path.parent.name == "example":
            assert namespace is None, "the example should take its namespace from kubectl -n"
            namespace = EXAMPLE_NAMESPACE
            body["metadata"] = {**obj["metadata"], "namespace": namespace}
        assert namespace, f"{object_id(path, obj)} must set metadata.namespace"
    else:
        assert "namespace" not in obj["metadata"], "cluster-scoped objects take no namespace"

    url = collection_path(api_version, resource, namespace) + "?dryRun=All&fieldValidation=Strict"
    got = api.request("POST", url, body)

    assert got["kind"] == obj["kind"] and got["metadata"]["name"] == obj["metadata"]["name"]
    assert not missing_fields(body, got), (
        f"the apiserver dropped unknown fields of {object_id(path, obj)}: {missing_fields(body, got)}")
    # Nothing was stored.
    name = obj["metadata"]["name"]
    with pytest.raises(ApiError) as absent:
        api.request("GET", collection_path(api_version, resource, namespace) + f"/{name}")
    assert absent.value.status == 404


# --------------------------------------------------------------------------------------------
# RBAC, decided by a real RBAC authorizer

@pytest.fixture(scope="module")
def rbac_api(kube_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A second apiserver (the harness's, Node,RBAC authorizer) with deploy/'s ServiceAccounts
    and RBAC objects created for real: the first one gets only dry runs of them."""
    plane = ControlPlane(kube_bin, tmp_path_factory.mktemp("cp-rbac"), with_scheduler=False)
    plane.start()
    try:
        for _, obj in manifest_objects():
            if obj["kind"] == "Namespace":
                ensure_namespace(plane, obj)
        for _, obj in manifest_objects():
            if obj["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
                resource, namespaced = KINDS[(obj["apiVersion"], obj["kind"])]
                namespace = obj["metadata"]["namespace"] if namespaced else None
                plane.request("POST", collection_path(obj["apiVersion"], resource, namespace), obj)
        yield plane
    finally:
        plane.stop()


def allowed(cp: ControlPlane, account: str, verb: str, resource: str, namespace: str = "",
            name: str = "", group: str = "") -> bool:
    """Would the RBAC authorizer let ServiceAccount redis-extender/<account> do this?"""
    resource, _, subresource = resource.partition("/")
    review = cp.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:redis-extender:{account}",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:redis-extender",
                       "system:authenticated"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource,
                                   "subresource": subresource, "namespace": namespace, "name": name},
        },
    })
    return bool(review["status"].get("allowed"))


COORD = "coordination.k8s.io"
EXTENDER_MAY = [
    ("list", "nodes", "", "", ""), ("watch", "nodes", "", "", ""), ("get", "nodes", "", "n1", ""),
    ("list", "pods", "", "", ""), ("watch", "pods", "", "", ""), ("get", "pods", "redis", "cache-a-0", ""),
    ("create", "pods/binding", "redis", "cache-a-0", ""),
    # the keeper (default: advise): Events, and whether a replica's volume is zonal
    ("create", "events", "redis", "", ""),
    ("get", "persistentvolumeclaims", "redis", "data-cache-a-0", ""), ("get", "persistentvolumes", "", "pv-1", ""),
]
EXTENDER_MAY_NOT = [
    ("get", "secrets", "redis-extender", "redis-extender-tls", ""), ("list", "secrets", "", "", ""),
    ("delete", "pods", "redis", "cache-a-0", ""), ("update", "pods", "redis", "cache-a-0", ""),
    ("patch", "pods", "redis", "cache-a-0", ""), ("create", "pods", "redis", "", ""),
    ("delete", "persistentvolumeclaims", "redis", "data-cache-a-0", ""), ("update", "nodes", "", "n1", ""),
    # evictions only with keeper.mode act (tests/integration/test_chart.py renders it)
    ("create", "pods/eviction", "redis", "cache-a-0", ""),
    ("patch", "nodes", "", "n1", ""), ("delete", "nodes", "", "n1", ""),
    ("update", "leases", "kube-system", "kube-scheduler", COORD),
    # The syncers elect their leader with a Redis lock, not a Lease (see extender-rbac.yaml).
    ("create", "leases", "redis-extender", "", COORD), ("update", "leases", "redis-extender", "x", COORD),
    ("get", "configmaps", "redis-extender", "", ""), ("delete", "events", "redis", "x", ""),
]


@pytest.mark.parametrize("verb,resource,namespace,name,group", EXTENDER_MAY,
                         ids=[f"{v}-{r}-{n or 'any'}" for v, r, n, _, _ in EXTENDER_MAY])
def test_extender_account_may_do_its_job(rbac_api: ControlPlane, verb: str, resource: str,
                                         namespace: str, name: str, group: str) -> None:
    assert allowed(rbac_api, "redis-extender", verb, resource, namespace, name, group)


@pytest.mark.parametrize("verb,resource,namespace,name,group", EXTENDER_MAY_NOT,
                         ids=[f"{v}-{r}-{n or 'any'}" for v, r, n, _, _ in EXTENDER_MAY_NOT])
def test_extender_account_may_do_nothing_else(rbac_api: ControlPlane, verb: str, resource: str,
                                              namespace: str, name: str, group: str) -> None:
    assert not allowed(rbac_api, "redis-extender", verb, resource, namespace, name, group)


def test_scheduler_account_may_schedule_and_lead_with_its_own_lease(rbac_api: ControlPlane) -> None:
    may = [
        ("list", "nodes", "", "", ""), ("watch", "pods", "", "", ""),
        ("create", "pods/binding", "redis", "cache-a-0", ""), ("create", "events", "redis", "", ""),
        ("list", "persistentvolumes", "", "", ""),            # system:volume-scheduler
        ("get", "configmaps", "kube-system", "extension-apiserver-authentication", ""),
        ("create", "leases", "redis-extender", "", COORD),
        ("get", "leases", "redis-extender", "redis-scheduler", COORD),
        ("update", "leases", "redis-extender", "redis-scheduler", COORD),
    ]
    denied = [call for call in may if not allowed(rbac_api, "redis-scheduler", *call)]
    assert not denied


def test_built_in_scheduler_role_does_not_cover_our_lease(rbac_api: ControlPlane) -> None:
    """Why scheduler-rbac.yaml has a lease Role: system:kube-scheduler updates only the lease
    named kube-scheduler, and the scheduler's lease is redis-scheduler."""
    role = rbac_api.request("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:kube-scheduler")
    lease_rules = [r for r in role["rules"] if "leases" in r.get("resources", [])
                   and "update" in r.get("verbs", [])]
    assert lease_rules, "system:kube-scheduler has no lease update rule at all?"
    for rule in lease_rules:
        assert "redis-scheduler" not in rule.get("resourceNames", ["redis-scheduler"])


def test_roles_bound_by_the_manifests_exist(rbac_api: ControlPlane) -> None:
    """The built-in roles bound by name (system:kube-scheduler, ...) exist under those names."""
    for _, obj in manifest_objects():
        if obj["kind"].endswith("Binding"):
            ref, ns = obj["roleRef"], obj["metadata"].get("namespace")
            if ref["kind"] == "ClusterRole":
                rbac_api.request("GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{ref['name']}")
            else:
                rbac_api.request("GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{ref['name']}")


# --------------------------------------------------------------------------------------------
# The scheduler configs, each started by the real kube-scheduler

SHIPPED_CA_FILE = "/etc/redis-extender-ca/ca.crt"
SHIPPED_CLIENT_CERT = "/etc/redis-scheduler-client/tls.crt"
SHIPPED_CLIENT_KEY = "/etc/redis-scheduler-client/tls.key"
LOGGED_CONFIG = re.compile(r"Using component config:\n(.*?)\n(?=[IWEF]\d{4} )", re.S)
# Since 1.21 the scheduler logs structured: `"Using component config" config=<` then the
# YAML, each line tab-indented, and ` >` (klog's multi-line value).
LOGGED_CONFIG_STRUCTURED = re.compile(r'"Using component config" config=<\n(.*?)\n >', re.S)


def runnable_config(path: Path, ca_file: Path, client: tuple[Path, Path] | None = None) -> str:
    """The file's text made runnable here, changing no field's meaning:
    - tlsConfig.caFile -> ca_file, and certFile/keyFile -> client (the scheduler's mTLS client
      certificate): kube-scheduler reads the files at start, and the shipped paths exist only
      in the pod (the Secrets' mounts);
    clientConnection.kubeconfig is pointed at this apiserver (and, for a scheduler < 1.25
    only, v1 rewritten to v1beta1 with the insecure healthz/metrics port on loopback) by
    start_scheduler itself. The apiVersion is never touched for the current version."""
    text = path.read_text()
    if SHIPPED_CA_FILE in text:
        assert text.count(SHIPPED_CA_FILE) == 1
        text = text.replace(SHIPPED_CA_FILE, str(ca_file))
    for shipped, given in ((SHIPPED_CLIENT_CERT, client[0] if client else None),
                           (SHIPPED_CLIENT_KEY, client[1] if client else None)):
        if shipped in text:
            assert given is not None, f"{path.name} needs a client certificate ({shipped})"
            text = text.replace(shipped, str(given))
    return text


def logged_component_config(log: str) -> dict[str, Any]:
    """The effective configuration kube-scheduler prints at --v=2 (defaults filled in)."""
    structured = LOGGED_CONFIG_STRUCTURED.search(log)
    if structured:
        return yaml.safe_load("\n".join(line[1:] if line.startswith("\t") else line
                                         for line in structured.group(1).split("\n")))
    match = LOGGED_CONFIG.search(log)
    assert match, "kube-scheduler did not log its component config (needs --v=2)"
    return yaml.safe_load(match.group(1))


CONFIG_FILES = sorted(SCHEDULER_CONFIG.glob("*.yaml"))


def test_served_version_is_the_binaries_version(api: ControlPlane) -> None:
    """/version of the apiserver under test is what its binary reports (the build's ldflags)."""
    got = api.request("GET", "/version")["gitVersion"]
    assert got.startswith("v{}.{}.{}".format(*api.version)), got


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.name for p in CONFIG_FILES])
def test_scheduler_config_starts_real_kube_scheduler(api: ControlPlane, path: Path, tmp_path: Path) -> None:
    shipped = yaml.safe_load(path.read_text())
    if shipped["apiVersion"].endswith("/v1beta1") and api.scheduler_version[:2] >= (1, 23):
        pytest.skip("kubescheduler.config.k8s.io/v1beta1 was removed in kube-scheduler 1.23: "
                    "this file is for the 1.20-1.22 schedulers (the compatibility run starts it)")
    certs = make_certs(tmp_path / "certs")  # any client certificate: the extender is not called here
    text = runnable_config(path, api.ca_file, certs.client)
    election = shipped.get("leaderElection", {})
    lease = None
    if election.get("leaderElect"):
        lease = (f"/apis/coordination.k8s.io/v1/namespaces/{election['resourceNamespace']}"
                 f"/leases/{election['resourceName']}")
        api.delete(lease)  # so the lease seen below is this scheduler's

    api.start_scheduler(text, args=["--v=2"])  # returns once /healthz answers 200
    try:
        assert api.scheduler_log is not None and api.scheduler_config_file is not None
        started = yaml.safe_load(api.scheduler_config_file.read_text())
        if api.scheduler_version[:2] >= (1, 25):  # as shipped: no apiVersion rewrite
            assert started["apiVersion"] == shipped["apiVersion"]
            assert started["extenders"] == yaml.safe_load(text)["extenders"]
        log = api.scheduler_log.read_text()
        if lease:  # it leads under its own lease, not the default scheduler's
            holder = api.wait_for(lambda: _lease_holder(api, lease), timeout=20,
                                  what=f"kube-scheduler to acquire {lease}")
            assert holder
    finally:
        api.stop_scheduler()

    effective = logged_component_config(log)
    assert [p["schedulerName"] for p in effective["profiles"]] == ["redis-scheduler"]
    assert effective["percentageOfNodesToScore"] == shipped["percentageOfNodesToScore"] == 100
    for key in ("leaderElect", "resourceName", "resourceNamespace", "resourceLock"):
        if key in election:
            assert effective["leaderElection"][key] == election[key], key
    assert len(effective["extenders"]) == len(shipped["extenders"]) == 1
    want, got = shipped["extenders"][0], effective["extenders"][0]
    for key, value in want.items():
        if key == "tlsConfig":
            assert got[key]["caFile"] == str(api.ca_file)  # rewritten, see runnable_config
            if "certFile" in value:
                assert got[key]["certFile"] == str(certs.client[0])
            assert set(got[key]) == set(value)
        else:  # the log omits false and empty values
            assert got.get(key, type(value)()) == value, key


def documented_tls_commands() -> list[str]:
    """The openssl/printf commands of the TLS recipe in deploy/extender-deployment.yaml."""
    text = (DEPLOY / "extender-deployment.yaml").read_text()
    recipe = text[text.index("# By hand"):].splitlines()[1:]
    lines = [line[1:].strip() for line in itertools.takewhile(lambda l: l.startswith("#   "), recipe)]
    # Continuation lines joined, then one command per openssl/printf/kubectl.
    commands = re.split(r" (?=openssl |printf |kubectl )", " ".join(lines).replace(" \\ ", " "))
    return [c for c in commands if c.startswith(("openssl ", "printf "))]


def test_documented_certificate_is_trusted_by_kube_scheduler(
        api: ControlPlane, tmp_path: Path, redis_server: Any) -> None:
    """The TLS recipe of deploy/, served by `redis-extender serve --certfile --keyfile`, is
    verified by the real kube-scheduler with the shipped tlsConfig: the filter call arrives.

    Only the address changes: urlPrefix -> 127.0.0.1 (the Service name does not resolve
    here) with tlsConfig.serverName set to the Service name it replaces, which is what the
    scheduler checks the certificate against in the cluster."""
    commands = documented_tls_commands()
    # serving CA, server key+CSR, its extensions, signing; client CA, client key+CSR, extensions, signing
    assert len(commands) == 8, commands
    for command in commands:
        subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    port = free_port()
    log = tmp_path / "extender.log"
    env = {**os.environ, "REDIS_URL": redis_server.url,
           "REDIS_EXTENDER_KEY_PREFIX": f"rxtest:{{{uuid.uuid4().hex[:10]}}}:"}
    with open(log, "wb") as out:
        extender = subprocess.Popen(
            [sys.executable, "-m", "extender.cli", "serve", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--certfile", str(tmp_path / "tls.crt"),
             "--keyfile", str(tmp_path / "tls.key"), "--client-ca-file", str(tmp_path / "client-ca.crt")],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    tls = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    anonymous = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))  # no client certificate
    # Issue 20 item 6: a certificate of the serving CA that also carries clientAuth (as the
    # serving certificate could) must not pass as the scheduler: only the client CA is trusted.
    impostor = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    impostor.load_cert_chain(*_serving_ca_client_cert(tmp_path))
    tls.load_cert_chain(str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
    service_host = urllib.parse.urlsplit(yaml.safe_load(canonical_text())["extenders"][0]["urlPrefix"])

    def get(path: str) -> str:
        """GET over TLS, verifying the certificate for the Service's name."""
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                tls.wrap_socket(raw, server_hostname=service_host.hostname) as conn:
            conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {service_host.hostname}\r\n\r\n".encode())
            return b"".join(iter(lambda: conn.recv(65536), b"")).decode()

    def filter_calls() -> float:
        match = re.search(r'^redis_extender_requests_total\{[^}]*verb="filter"[^}]*\} (\S+)$',
                          get("/metrics"), re.M)
        return float(match.group(1)) if match else 0.0

    node, pod = "tls-check-node", "tls-check"
    try:
        api.wait_for(lambda: _answers(get, "/healthz", extender), timeout=20,
                     what=f"the extender to serve HTTPS ({log})")
        for context in (anonymous, impostor):  # mTLS: no certificate, or one of the serving CA
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                        context.wrap_socket(raw, server_hostname=service_host.hostname) as conn:
                    conn.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                    if not conn.recv(65536):
                        raise ConnectionResetError("closed without an answer")
        text = runnable_config(CANONICAL_CONFIG, tmp_path / "ca.crt", (tmp_path / "client.crt", tmp_path / "client.key"))
        text = text.replace(f"urlPrefix: {service_host.geturl()}", f"urlPrefix: https://127.0.0.1:{port}")
        text = text.replace("    caFile:", f"    serverName: {service_host.hostname}\n    caFile:")
        assert f"127.0.0.1:{port}" in text and "serverName" in text
        election = yaml.safe_load(canonical_text())["leaderElection"]
        api.delete(f"/apis/coordination.k8s.io/v1/namespaces/{election['resourceNamespace']}"
                   f"/leases/{election['resourceName']}")  # else it waits for the last one's lease
        api.create_node(node)
        api.start_scheduler(text)
        api.create_pod({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pod, "namespace": EXAMPLE_NAMESPACE},
                        "spec": {"schedulerName": "redis-scheduler",
                                 "containers": [{"name": "c", "image": "redis:7"}]}})
        api.wait_for(filter_calls, timeout=30, what="kube-scheduler's filter call over HTTPS")
    finally:
        api.stop_scheduler()
        api.delete(f"/api/v1/namespaces/{EXAMPLE_NAMESPACE}/pods/{pod}")
        api.delete(f"/api/v1/nodes/{node}")
        extender.terminate()
        extender.wait(15)
    assert api.scheduler_log is not None
    assert "x509" not in api.scheduler_log.read_text()


def _serving_ca_client_cert(tmp_path: Path) -> tuple[str, str]:
    """A certificate signed by the serving CA (ca.crt/ca.key of the recipe) with both
    serverAuth and clientAuth: what a serving certificate carrying clientAuth would be."""
    commands = [
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=impostor "
        "-keyout impostor.key -out impostor.csr",
        "printf 'extendedKeyUsage=serverAuth,clientAuth\\n' > impostor.ext",
        "openssl x509 -req -in impostor.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 "
        "-extfile impostor.ext -out impostor.crt",
    ]
    for command in commands:
        subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return str(tmp_path / "impostor.crt"), str(tmp_path / "impostor.key")


def _answers(get: Any, path: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the extender exited with {proc.returncode}")
    try:
        return '"ok"' in get(path)
    except OSError:
        return False


def _lease_holder(cp: ControlPlane, path: str) -> str | None:
    try:
        return cp.request("GET", path)["spec"].get("holderIdentity")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


# --------------------------------------------------------------------------------------------
# The files agree with each other

def canonical_text() -> str:
    return CANONICAL_CONFIG.read_text()


def test_configmap_carries_the_canonical_scheduler_config() -> None:
    configmap = find("ConfigMap", "redis-scheduler-config")
    assert configmap["data"] == {CONFIGMAP_KEY: canonical_text()}, (
        "deploy/scheduler-configmap.yaml must embed scheduler-config/redis-scheduler.yaml "
        "verbatim (indented by 4 under `redis-scheduler.yaml: |`)")


def test_scheduler_pod_template_carries_the_config_hash() -> None:
    annotations = find("Deployment", "redis-scheduler")["spec"]["template"]["metadata"]["annotations"]
    digest = hashlib.sha256(canonical_text().encode()).hexdigest()
    assert annotations["redis-extender.io/config-sha256"] == digest, (
        f"set redis-extender.io/config-sha256: {digest} in deploy/scheduler-deployment.yaml")


def test_v1beta1_config_differs_from_v1_only_in_api_version() -> None:
    v1 = yaml.safe_load(canonical_text())
    v1beta1 = yaml.safe_load((SCHEDULER_CONFIG / "redis-scheduler-v1beta1.yaml").read_text())
    assert v1.pop("apiVersion") == "kubescheduler.config.k8s.io/v1"
    assert v1beta1.pop("apiVersion") == "kubescheduler.config.k8s.io/v1beta1"
    assert v1beta1 == v1


def test_http_config_matches_the_shipped_one_but_for_transport() -> None:
    shipped = yaml.safe_load(canonical_text())["extenders"][0]
    http = yaml.safe_load((SCHEDULER_CONFIG / "redis-scheduler-http.yaml").read_text())["extenders"][0]
    assert http["urlPrefix"] == "http://127.0.0.1:8888" and http["enableHTTPS"] is False
    transport = {"urlPrefix", "enableHTTPS", "tlsConfig", "bindVerb"}
    assert {k: v for k, v in http.items() if k not in transport} == \
        {k: v for k, v in shipped.items() if k not in transport}


def test_second_scheduler_image_is_the_version_the_tests_run() -> None:
    """deploy/'s kube-scheduler image names the release the e2e suite builds and runs
    (harness/kube/go.mod), not an untested one."""
    gomod = (REPO / "harness" / "kube" / "go.mod").read_text()
    tested = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v[\d.]+)$", gomod, re.M)
    assert tested, "harness/kube/go.mod requires no k8s.io/kubernetes"
    image = container(find("Deployment", "redis-scheduler"), "kube-scheduler")["image"]
    assert image == f"registry.k8s.io/kube-scheduler:{tested.group(1)}"


def test_scheduler_deployment_mounts_what_the_config_names() -> None:
    config = yaml.safe_load(canonical_text())
    scheduler = find("Deployment", "redis-scheduler")
    configmap = find("ConfigMap", "redis-scheduler-config")
    kube_scheduler = container(scheduler, "kube-scheduler")

    config_volume = volume(scheduler, "config")
    assert config_volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert flag(kube_scheduler["command"], "--config") == f"{mount_path(scheduler, 'config')}/{CONFIGMAP_KEY}"

    ca_file = config["extenders"][0]["tlsConfig"]["caFile"]
    ca_volume = volume(scheduler, "extender-ca")
    assert ca_file == f"{mount_path(scheduler, 'extender-ca')}/ca.crt"
    assert ca_volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    extender = find("Deployment", "redis-extender")
    assert ca_volume["secret"]["secretName"] == volume(extender, "tls")["secret"]["secretName"]
    tls_config = config["extenders"][0]["tlsConfig"]  # the client certificate of mTLS
    client_dir = mount_path(scheduler, "client-tls")
    assert (tls_config["certFile"], tls_config["keyFile"]) == (f"{client_dir}/tls.crt", f"{client_dir}/tls.key")
    assert volume(scheduler, "client-tls")["secret"]["secretName"] == "redis-scheduler-client-tls"
    recipe = (DEPLOY / "extender-deployment.yaml").read_text()
    assert "create secret generic redis-scheduler-client-tls" in recipe
    assert "--from-file=ca.crt=client-ca.crt" in recipe  # the client CA, for the extender

    election = config["leaderElection"]
    assert election["resourceNamespace"] == scheduler["metadata"]["namespace"]
    lease_role = find("Role", "redis-scheduler-leader-election")
    assert lease_role["metadata"]["namespace"] == election["resourceNamespace"]
    assert any(election["resourceName"] in rule.get("resourceNames", []) and
               {"get", "update"} <= set(rule["verbs"]) for rule in lease_role["rules"])
    assert scheduler["spec"]["template"]["spec"]["serviceAccountName"] == "redis-scheduler"


def test_extender_url_reaches_the_extender_pods() -> None:
    url = yaml.safe_load(canonical_text())["extenders"][0]["urlPrefix"]
    service = find("Service", "redis-extender")
    extender = find("Deployment", "redis-extender")
    port = next(p for p in service["spec"]["ports"] if p["name"] == "https")
    assert url == (f"https://{service['metadata']['name']}.{service['metadata']['namespace']}"
                   f".svc:{port['port']}")
    assert service["spec"]["selector"].items() <= extender["spec"]["template"]["metadata"]["labels"].items()
    serving = container(extender, "extender")
    container_port = next(p for p in serving["ports"] if p["name"] == port["targetPort"])
    assert flag(serving["args"], "--bind") == f"0.0.0.0:{container_port['containerPort']}"
    tls_dir = mount_path(extender, "tls")
    assert flag(serving["args"], "--certfile") == f"{tls_dir}/tls.crt"
    assert flag(serving["args"], "--keyfile") == f"{tls_dir}/tls.key"
    # mTLS on the verbs' port, against the client CA only: the ca.crt of the scheduler's client
    # Secret (its own CA), not the serving Secret's (issue 20 item 6)
    assert flag(serving["args"], "--client-ca-file") == f"{mount_path(extender, 'client-ca')}/ca.crt"
    client_ca = volume(extender, "client-ca")["secret"]
    assert client_ca["secretName"] == "redis-scheduler-client-tls" != volume(extender, "tls")["secret"]["secretName"]
    assert client_ca["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    public = next(p for p in serving["ports"] if p["name"] == "http-public")
    assert flag(serving["args"], "--public-bind") == f"0.0.0.0:{public['containerPort']}"
    for probe in ("readinessProbe", "livenessProbe"):  # probes have no client certificate: the public port
        assert serving[probe]["httpGet"]["scheme"] == "HTTP"
        assert serving[probe]["httpGet"]["port"] == "http-public"
    assert serving["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert serving["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_extender_command_line_and_image_fit_the_cli() -> None:
    """The Deployment's arguments and environment, and the Dockerfile's defaults, are
    accepted by `redis-extender` as it is now (a renamed flag fails here, not in a pod)."""
    from extender import cli
    from extender.core import settings

    serving = container(find("Deployment", "redis-extender"), "extender")
    parsed = cli.build_parser().parse_args(serving["args"])  # SystemExit on an unknown flag
    assert parsed.command == "serve" and parsed.in_cluster
    settings.load(env={e["name"]: e["value"] for e in serving["env"]})  # SettingsError if bad

    dockerfile = (REPO / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M)
    default_args = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert entrypoint and yaml.safe_load(entrypoint.group(1)) == ["redis-extender"]
    assert default_args and cli.build_parser().parse_args(yaml.safe_load(default_args.group(1)))
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    pod_security = find("Deployment", "redis-extender")["spec"]["template"]["spec"]["securityContext"]
    assert user and (int(user.group(1)), int(user.group(2))) == \
        (pod_security["runAsUser"], pod_security["runAsGroup"])


def test_extender_redis_url_names_the_cache_service() -> None:
    serving = container(find("Deployment", "redis-extender"), "extender")
    url = next(e["value"] for e in serving["env"] if e["name"] == "REDIS_URL")
    cache = find("Service", "redis-extender-cache")
    port = cache["spec"]["ports"][0]["port"]
    assert url == f"redis://{cache['metadata']['name']}:{port}/0"
    statefulset = find("StatefulSet", "redis-extender-cache")
    assert statefulset["spec"]["serviceName"] == "redis-extender-cache-headless"
    assert find("Service", "redis-extender-cache-headless")["spec"]["clusterIP"] == "None"
    conf = find("ConfigMap", "redis-extender-cache-config")["data"]["redis.conf"]
    assert re.search(r"^maxmemory-policy noeviction$", conf, re.M)


def test_extender_rbac_is_least_privilege() -> None:
    cluster_role = find("ClusterRole", "redis-extender")
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"])))
             for r in cluster_role["rules"]}
    assert rules == {
        (("",), ("nodes",), ("get", "list", "watch")),
        (("",), ("pods",), ("get", "list", "watch")),
        (("",), ("pods/binding",), ("create",)),
        # the keeper in its default mode, advise: it says what it would do as Events, and reads
        # a replica's volume to report one pinned to its zone; evictions only with keeper.mode=act
        # (tests/integration/test_chart.py checks the rights per mode)
        (("",), ("events",), ("create",)),
        (("",), ("persistentvolumeclaims", "persistentvolumes"), ("get",)),
    }
    bound = {(o["kind"], o["roleRef"]["name"]) for _, o in manifest_objects()
             if o["kind"].endswith("Binding")
             and any(s["name"] == "redis-extender" for s in o["subjects"])}
    assert bound == {("ClusterRoleBinding", "redis-extender")}


def test_example_cluster_uses_the_redis_scheduler() -> None:
    config = yaml.safe_load(canonical_text())
    statefulset = next(o for p, o in OBJECTS if p.parent.name == "example" and o["kind"] == "StatefulSet")
    template = statefulset["spec"]["template"]
    assert template["spec"]["schedulerName"] == config["profiles"][0]["schedulerName"]
    labels = template["metadata"]["labels"]
    assert labels["redis-extender.io/cluster"] == "cache-a"
    assert statefulset["spec"]["replicas"] == int(labels["redis-extender.io/shards"]) * 2
    for c in template["spec"]["containers"]:
        assert c["resources"]["requests"] and c["resources"]["limits"]


def test_kustomization_lists_every_manifest() -> None:
    listed = {p.name for p in deploy_files()}
    present = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present, "deploy/*.yaml and kustomization.yaml's resources differ"
