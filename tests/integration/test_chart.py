"""charts/redis-extender with the real helm and promtool (built from their Go modules).

- `helm lint` passes with the default and with non-default values; values.schema.json turns
  a wrong value into a clear error at install; deploy/ is the chart's default render
  (scripts/render-deploy --check).
- The renders agree with themselves and with the extender: mTLS trusts only the client CA
  (the client Secret's ca.crt, never the serving Secret's), the sentinel cache's REDIS_URL
  names the Sentinels of the StatefulSet's pods, every extender env is accepted by
  extender.settings, the scheduler config's hash rolls the scheduler.
- The PrometheusRule passes `promtool check rules` and the unit tests of
  tests/data/chart-alerts.test.yaml (`promtool test rules`).
- Every metric named by an alert or a dashboard query is exported by the extender: it appears
  on a real `redis-extender serve`'s /metrics after a filter and a report (or, for the few
  families only some calls create, is defined by the extender's code).
(Server-side dry runs of the renders on the real kube-apiserver: tests/e2e/test_chart.py.)
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..support.tools import CHART, REPO, helm, helm_template, promtool, rendered_objects

MONITORING = ("--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
              "--set", "grafanaDashboard.enabled=true")
SENTINEL = ("--set", "cache.mode=sentinel")
CERT_MANAGER = ("--set", "tls.source=cert-manager")
NO_MTLS = ("--set", "tls.clientAuth.enabled=false")
VALUE_SETS = {
    "default": (),
    "sentinel-monitoring-cert-manager": (*SENTINEL, *MONITORING, *CERT_MANAGER),
    "no-mtls-custom": (*NO_MTLS, "--set", "scheduler.name=redis-sched2", "--set", "replicaCount=3",
                       "--set", "config.preset=valkey", "--set", "config.levels={kubernetes.io/hostname,topology.kubernetes.io/zone}",
                       "--set", "config.weights.shard=2", "--set", "keeper.mode=off"),
}


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


# --------------------------------------------------------------------------------------------
# helm lint, schema, deploy/

@pytest.mark.parametrize("values", list(VALUE_SETS), ids=list(VALUE_SETS))
def test_helm_lint(values: str) -> None:
    done = subprocess.run([helm(), "lint", "--strict", str(CHART), "--namespace", "redis-extender",
                           *VALUE_SETS[values]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("setting,expected", [
    ("cache.mode=redis-cluster", "cache.mode"),
    ("keeper.mode=sometimes", "keeper.mode"),
    ("replicaCount=0", "replicaCount"),
    ("tls.source=vault", "tls.source"),
    ("config.preset=acme", "config.preset"),
    ("scheduler.httpTimeout=2", "scheduler.httpTimeout"),
    ("cache.sentinel.replicas=2", "cache.sentinel.replicas"),
    ("imagTag=1", "imagTag"),  # a misspelt key is refused, not ignored
])
def test_schema_refuses_a_wrong_value_with_its_name(setting: str, expected: str) -> None:
    done = helm_template("--set", setting, check=False)
    assert done.returncode != 0, f"--set {setting} rendered"
    assert "values don't meet the specifications of the schema" in done.stderr, done.stderr
    assert expected.split(".")[-1] in done.stderr, done.stderr


def test_deploy_is_the_default_render() -> None:
    """deploy/ is generated (scripts/render-deploy): one source, no drift."""
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "render-deploy"), "--check"],
                          env={"HELM": helm(), "PATH": "/usr/bin:/bin"}, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------------------------
# What the renders say

@pytest.mark.parametrize("values", list(VALUE_SETS), ids=list(VALUE_SETS))
def test_extender_env_and_args_are_accepted_by_the_extender(values: str) -> None:
    from extender import cli
    from extender.core import settings

    objects = rendered_objects(*VALUE_SETS[values])
    extender = container(find(objects, "Deployment", "redis-extender"), "extender")
    parsed = cli.build_parser().parse_args(extender["args"])
    assert parsed.command == "serve"
    env = {e["name"]: e["value"] for e in extender["env"]}
    loaded = settings.load(env=env)  # SettingsError on a bad value
    if values == "no-mtls-custom":
        assert loaded.identity.preset == "valkey" and loaded.score.shard == 2
        assert list(loaded.domains.levels) == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        assert "REDIS_EXTENDER_KEEPER" in env and env["REDIS_EXTENDER_KEEPER"] == "off"
    else:
        assert env["REDIS_EXTENDER_KEEPER"] == "advise"


@pytest.mark.parametrize("values", list(VALUE_SETS), ids=list(VALUE_SETS))
def test_client_certificates_are_checked_against_the_client_ca_only(values: str) -> None:
    """Issue 20 item 6: the extender's --client-ca-file is the ca.crt of the scheduler's client
    Secret (the client CA), mounted alone; the serving Secret's ca.crt (the serving CA) is
    what the scheduler trusts for the server. Without mTLS, neither flag nor mount."""
    objects = rendered_objects(*VALUE_SETS[values])
    deployment = find(objects, "Deployment", "redis-extender")
    extender = container(deployment, "extender")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in extender["volumeMounts"]}
    scheduler = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] != "redis-extender")
    config = yaml.safe_load(find(objects, "ConfigMap", f"{scheduler['metadata']['name']}-config")["data"]["redis-scheduler.yaml"])
    tls_config = config["extenders"][0]["tlsConfig"]
    server_secret = volumes["tls"]["secret"]["secretName"]
    client_ca = flag(extender["args"], "--client-ca-file")
    if values == "no-mtls-custom":
        assert client_ca is None and "client-ca" not in volumes
        assert "certFile" not in tls_config and "keyFile" not in tls_config
        return
    assert client_ca == f"{mounts['client-ca']}/ca.crt"
    client_secret = volumes["client-ca"]["secret"]
    assert client_secret["secretName"] != server_secret
    assert client_secret["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never the client's key
    scheduler_volumes = {v["name"]: v for v in scheduler["spec"]["template"]["spec"]["volumes"]}
    assert scheduler_volumes["client-tls"]["secret"]["secretName"] == client_secret["secretName"]
    assert scheduler_volumes["extender-ca"]["secret"]["secretName"] == server_secret
    assert tls_config["certFile"].startswith("/etc/redis-scheduler-client/")
    if values == "sentinel-monitoring-cert-manager":
        certificates = {o["spec"]["secretName"]: o for o in objects if o["kind"] == "Certificate"}
        server, client = certificates[server_secret], certificates[client_secret["secretName"]]
        assert server["spec"]["issuerRef"]["name"] != client["spec"]["issuerRef"]["name"]
        assert server["spec"]["usages"] == ["digital signature", "server auth"]
        assert client["spec"]["usages"] == ["digital signature", "client auth"]
        assert f"redis-extender.redis-extender.svc" in server["spec"]["dnsNames"]


def test_sentinel_cache_url_names_the_sentinels_of_the_statefulset() -> None:
    objects = rendered_objects(*SENTINEL)
    env = {e["name"]: e["value"] for e in container(find(objects, "Deployment", "redis-extender"), "extender")["env"]}
    statefulset = find(objects, "StatefulSet", "redis-extender-cache")
    headless = find(objects, "Service", statefulset["spec"]["serviceName"])
    assert statefulset["spec"]["replicas"] == 3
    assert {c["name"] for c in statefulset["spec"]["template"]["spec"]["containers"]} == {"redis", "sentinel"}
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in headless["spec"]["ports"]} == {6379, 26379}
    hosts = ",".join(f"redis-extender-cache-{i}.{headless['metadata']['name']}.redis-extender.svc:26379"
                     for i in range(3))
    assert env["REDIS_URL"] == f"redis+sentinel://{hosts}/cache/0"
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Service", "redis-extender-cache") not in kinds  # no single-master Service to bypass Sentinel
    assert ("PodDisruptionBudget", "redis-extender-cache") in kinds
    policy = find(objects, "NetworkPolicy", "redis-extender-cache")
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {6379, 26379}
    config = find(objects, "ConfigMap", "redis-extender-cache-config")["data"]
    assert config["start.sh"] == (CHART / "files" / "cache-start.sh").read_text()
    done = subprocess.run(["sh", "-n"], input=config["start.sh"], text=True, capture_output=True)
    assert done.returncode == 0, done.stderr  # POSIX sh parses it (the image's /bin/sh)


def test_the_extenders_rbac_follows_the_keepers_mode() -> None:
    """advise: Events and PVC/PV reads; act: also evictions; deletePvc: also PVC deletion;
    off: none of them (exactly the rights the mode needs)."""
    def rules(*values: str) -> set[tuple[str, str]]:
        role = find(rendered_objects(*values), "ClusterRole", "redis-extender")
        return {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}

    def env(*values: str) -> dict[str, str]:
        deployment = find(rendered_objects(*values), "Deployment", "redis-extender")
        return {e["name"]: e.get("value", "") for e in container(deployment, "extender")["env"]}

    keeper = {("events", "create"), ("persistentvolumeclaims", "get"), ("persistentvolumes", "get")}
    evict, delete_pvc = ("pods/eviction", "create"), ("persistentvolumeclaims", "delete")
    off, advise = rules("--set", "keeper.mode=off"), rules()
    act, act_pvc = rules("--set", "keeper.mode=act"), rules("--set", "keeper.mode=act", "--set", "keeper.deletePvc=true")
    assert not off & (keeper | {evict, delete_pvc})
    assert advise - off == keeper
    assert act - advise == {evict}
    assert act_pvc - act == {delete_pvc}
    assert env("--set", "keeper.mode=act")["REDIS_EXTENDER_KEEPER"] == "act"
    assert "REDIS_EXTENDER_KEEPER_DELETE_PVC" not in env() and \
        env("--set", "keeper.mode=act", "--set", "keeper.deletePvc=true")["REDIS_EXTENDER_KEEPER_DELETE_PVC"] == "true"


def test_scheduler_rolls_when_its_config_changes() -> None:
    def digest(*values: str) -> tuple[str, str]:
        objects = rendered_objects(*values)
        scheduler = find(objects, "Deployment", "redis-scheduler")
        text = find(objects, "ConfigMap", "redis-scheduler-config")["data"]["redis-scheduler.yaml"]
        return scheduler["spec"]["template"]["metadata"]["annotations"]["redis-extender.io/config-sha256"], text
    annotation, text = digest()
    assert annotation == hashlib.sha256(text.encode()).hexdigest()
    changed, changed_text = digest("--set", "scheduler.httpTimeout=3s")
    assert "httpTimeout: 3s" in changed_text and changed != annotation


# --------------------------------------------------------------------------------------------
# Prometheus rules: promtool

def rule_groups() -> list[dict[str, Any]]:
    return find(rendered_objects(*MONITORING), "PrometheusRule")["spec"]["groups"]


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    done = subprocess.run([promtool(), "check", "rules", str(tmp_path / "rules.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 11 rules found" in done.stdout + done.stderr


def test_alerts_pass_their_promtool_unit_tests(tmp_path: Path) -> None:
    groups = rule_groups()
    for group in groups:
        for rule in group["rules"]:
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = tmp_path / "alerts.test.yaml"
    shutil.copy(REPO / "tests" / "data" / "chart-alerts.test.yaml", tests)
    done = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", tests.read_text()))
    assert tested == {r["alert"] for g in groups for r in g["rules"]}, "every alert has a unit test"


# --------------------------------------------------------------------------------------------
# Every metric an alert or a panel names is exported

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "bool", "offset", "inf", "nan", "le"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or
    label names (label matchers, ranges, grouping lists and strings removed first)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", expr):
        name, call = match.group(1), match.group(2)
        if not call and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def queried_metrics() -> dict[str, set[str]]:
    """{metric name: where it is used} over every alert and every dashboard target."""
    used: dict[str, set[str]] = {}
    for group in rule_groups():
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                used.setdefault(name, set()).add(f"alert {rule['alert']}")
    objects = rendered_objects(*MONITORING)
    dashboard = json.loads(find(objects, "ConfigMap", "redis-extender-dashboard")["data"]["redis-extender.json"])
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for name in metric_names(target["expr"]):
                used.setdefault(name, set()).add(f"panel {panel['title']!r}")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            series = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["definition"])
            assert series, variable["definition"]
            for name in metric_names(series.group(1)):
                used.setdefault(name, set()).add(f"variable {variable['name']}")
    return used


def test_metric_name_parser() -> None:
    assert metric_names('max by (level) (a_b{x="y"} and on (instance) (time() - c_d{e="f"} < 900)) > 0') == {"a_b", "c_d"}
    assert metric_names('histogram_quantile(0.99, sum by (verb, le) (rate(h_bucket{v=~"a|b"}[5m])))') == {"h_bucket"}
    assert metric_names("absent(up{job=\"x\"} == 1)") == {"up"}


# Families that a filter and a report do not create (prometheus_client's multiprocess mode
# exports a family once it has a sample): checked against the extender's definitions instead.
EVENT_ONLY = {"redis_extender_preempt_nodes_total", "redis_extender_unknown_domain_candidates_total",
              "redis_extender_placements_total",
              # the keeper's, written by the sync leader's process in live mode only (this extender is
              # offline); tests/e2e/test_keeper_repair.py reads them on a live extender's /metrics
              "redis_extender_keeper_actions_total", "redis_extender_keeper_clusters_out_of_balance",
              "redis_extender_keeper_seconds_out_of_balance"}
# Not the extender's: Prometheus sets it per scrape target.
PROMETHEUS_OWN = {"up"}


def defined_metric_names() -> set[str]:
    """The sample names of every metric the extender's code defines (its registry)."""
    from prometheus_client import REGISTRY

    import extender.core.metrics  # noqa: F401
    import extender.service.report_routes  # noqa: F401  the report gauges
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {family.name + suffix for family in REGISTRY.collect() if family.name.startswith("redis_extender_")
            for suffix in suffixes.get(family.type, ("",))}


def test_every_queried_metric_is_exported_by_a_served_extender(serve_extender, store) -> None:
    from extender.core.identity import Identifier
    from extender.core.settings import IdentitySettings
    from extender.state.loader import load_list

    from .test_http import ZONES, post, redis_pod, world

    used = queried_metrics()
    assert len(used) >= 15, used
    defined = defined_metric_names()
    undefined = {n: w for n, w in used.items() if n not in defined | PROMETHEUS_OWN}
    assert not undefined, f"queried but not defined by the extender: {undefined}"

    load_list(store, world({"cache-a-0": "node-a", "cache-a-1": "node-b", "cache-a-2": None}),
              Identifier(IdentitySettings()))
    extender = serve_extender()
    status, _ = post(extender.url + "/filter", {"Pod": redis_pod(), "NodeNames": list(ZONES)})
    assert status == 200
    with urllib.request.urlopen(extender.url + "/report", timeout=30) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(extender.url + "/metrics", timeout=10) as resp:
        exposition = resp.read().decode()
    scraped = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", exposition, re.M))
    missing = {n: w for n, w in used.items() if n not in scraped | EVENT_ONLY | PROMETHEUS_OWN}
    assert not missing, f"queried but not on a served extender's /metrics: {missing}"
    assert EVENT_ONLY <= defined
