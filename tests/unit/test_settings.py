"""Configuration (extender.core.settings): defaults < TOML file < environment < overrides (flags),
every problem reported at once, and the README table generated from the option list."""
from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from extender.core.settings import DEFAULT_LEVELS, DEFAULT_REDIS_URL, OPTIONS, Settings, SettingsError, load, markdown_table


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "extender.toml"
    path.write_text(text)
    return path


def problems_of(**kw) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(**kw)
    return caught.value.problems


# --- defaults -----------------------------------------------------------------------------

def test_no_sources_gives_the_defaults():
    s = load(env={})
    assert s == Settings()
    assert s.store.redis_url == DEFAULT_REDIS_URL
    assert s.domains.levels == DEFAULT_LEVELS
    assert s.identity.preset == "default"
    assert s.store.on_unavailable == "fail-closed"


def test_default_level_weights_double_per_level():
    assert load(env={}).level_weights == (1.0, 2.0, 4.0)
    four = load(env={"REDIS_EXTENDER_LEVELS": "kubernetes.io/hostname,rack,topology.kubernetes.io/zone,region"})
    assert four.level_weights == (1.0, 2.0, 4.0, 8.0)


def test_environment_is_not_read_when_an_explicit_env_is_given(monkeypatch):
    monkeypatch.setenv("REDIS_EXTENDER_WORKERS", "9")
    assert load(env={}).service.workers == 2
    assert load().service.workers == 9  # env=None reads os.environ


# --- environment variables ----------------------------------------------------------------

@pytest.mark.parametrize("var, value, attr, expected", [
    pytest.param("REDIS_URL", "redis://db:6380/2", ("store", "redis_url"), "redis://db:6380/2", id="redis-url"),
    pytest.param("REDIS_EXTENDER_WORKERS", "4", ("service", "workers"), 4, id="integer"),
    pytest.param("REDIS_EXTENDER_REDIS_TIMEOUT", "0.2", ("store", "socket_timeout"), 0.2, id="float"),
    pytest.param("REDIS_EXTENDER_LEVELS", " kubernetes.io/hostname , example.com/rack ,",
                 ("domains", "levels"), ("kubernetes.io/hostname", "example.com/rack"), id="comma-list-trimmed"),
    pytest.param("REDIS_EXTENDER_LEVEL_WEIGHTS", "1,3,9", ("score", "level_weights"), (1.0, 3.0, 9.0),
                 id="float-list"),
    pytest.param("REDIS_EXTENDER_CLUSTER_SHARDS", "ns/cache=3, other=6", ("identity", "cluster_shards"),
                 {"ns/cache": 3, "other": 6}, id="shard-map"),
    pytest.param("REDIS_EXTENDER_CLUSTER_LABEL", "app", ("identity", "cluster_label"), "app", id="optional-string"),
    pytest.param("REDIS_EXTENDER_CLUSTER_LABEL", "", ("identity", "cluster_label"), None,
                 id="empty-optional-string-is-unset"),
    pytest.param("REDIS_EXTENDER_PRESET", "kubedb", ("identity", "preset"), "kubedb", id="preset"),
    pytest.param("REDIS_EXTENDER_ON_UNAVAILABLE", "fail-open", ("store", "on_unavailable"), "fail-open",
                 id="fail-open"),
    pytest.param("REDIS_EXTENDER_IN_CLUSTER", "yes", ("kube", "in_cluster"), True, id="boolean-yes"),
    pytest.param("REDIS_EXTENDER_RUN_SYNC", "0", ("kube", "run_sync"), False, id="boolean-zero"),
])
def test_environment_variable_sets_its_option(var, value, attr, expected):
    section, name = attr
    assert getattr(getattr(load(env={var: value}), section), name) == expected


def test_every_option_has_a_distinct_environment_variable():
    envs = [o.env for o in OPTIONS]
    assert len(envs) == len(set(envs))
    keys = [f"{o.section}.{o.name}" for o in OPTIONS]
    assert len(keys) == len(set(keys))
    for o in OPTIONS:
        assert hasattr(getattr(Settings(), o.section), o.name), f"{o.section}.{o.name}"


# --- TOML file ----------------------------------------------------------------------------

TOML = """
[store]
redis_url = "redis://file:6379/0"
cache_ttl = 0.5

[identity]
preset = "valkey"
cluster_shards = { "ns/cache" = 3 }

[domains]
levels = ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]

[score]
shard = 10
level_weights = [1, 5]

[service]
workers = 3
"""


@pytest.mark.parametrize("via", [pytest.param("argument", id="config-file-argument"),
                                 pytest.param("env", id="REDIS_EXTENDER_CONFIG-variable")])
def test_toml_file_sets_options(tmp_path, via):
    path = toml(tmp_path, TOML)
    s = load(env={}, config_file=path) if via == "argument" else load(env={"REDIS_EXTENDER_CONFIG": str(path)})
    assert s.store.redis_url == "redis://file:6379/0"
    assert s.store.cache_ttl == 0.5
    assert s.identity.preset == "valkey"
    assert s.identity.cluster_shards == {"ns/cache": 3}
    assert s.domains.levels == ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    assert s.score.shard == 10.0 and s.level_weights == (1.0, 5.0)
    assert s.service.workers == 3


@pytest.mark.parametrize("in_file, in_env, in_override, expected", [
    pytest.param(False, False, False, DEFAULT_REDIS_URL, id="default-when-unset"),
    pytest.param(True, False, False, "redis://file:1/0", id="file-over-default"),
    pytest.param(True, True, False, "redis://env:1/0", id="env-over-file"),
    pytest.param(True, True, True, "redis://flag:1/0", id="override-over-env"),
    pytest.param(True, False, True, "redis://flag:1/0", id="override-over-file"),
])
def test_sources_precedence(tmp_path, in_file, in_env, in_override, expected):
    path = toml(tmp_path, '[store]\nredis_url = "redis://file:1/0"\n') if in_file else None
    env = {"REDIS_URL": "redis://env:1/0"} if in_env else {}
    overrides = {"store.redis_url": "redis://flag:1/0"} if in_override else {}
    assert load(overrides=overrides, env=env, config_file=path).store.redis_url == expected


def test_override_of_none_keeps_the_lower_source():
    s = load(overrides={"store.redis_url": None, "service.workers": 5}, env={"REDIS_URL": "redis://env:1/0"})
    assert s.store.redis_url == "redis://env:1/0" and s.service.workers == 5


def test_sources_merge_option_by_option(tmp_path):
    path = toml(tmp_path, "[service]\nworkers = 3\nthreads = 7\n")
    s = load(overrides={"service.threads": 2}, env={"REDIS_EXTENDER_WORKERS": "5"}, config_file=path)
    assert (s.service.workers, s.service.threads) == (5, 2)


# --- errors -------------------------------------------------------------------------------

def test_all_problems_are_reported_together_each_naming_its_source(tmp_path):
    path = toml(tmp_path, "[store]\nbogus = 1\nsocket_timeout = \"slow\"\n[service]\nworkers = 2\n")
    problems = problems_of(
        overrides={"service.bind": "nowhere", "store.nothing": 1, "service.threads": "many"},
        env={"REDIS_EXTENDER_WORKERS": "two", "REDIS_EXTENDER_PRESET": "acme"},
        config_file=path)
    text = "\n".join(problems)
    assert f"{path}: unknown option store.bogus" in text
    assert f"{path} store.socket_timeout: 'slow' is not valid for store.socket_timeout" in text
    assert "$REDIS_EXTENDER_WORKERS: 'two' is not valid for service.workers" in text
    assert "unknown option store.nothing" in text
    assert "--threads: 'many' is not valid for service.threads" in text
    assert "service.bind 'nowhere' must be HOST:PORT" in text
    assert "identity.preset 'acme' is not one of" in text
    assert len(problems) == 7


@pytest.mark.parametrize("value", ["0", "-1"])
def test_big_reads_need_a_positive_timeout(value):
    assert problems_of(env={"REDIS_EXTENDER_BULK_TIMEOUT": value}) == [
        "$REDIS_EXTENDER_BULK_TIMEOUT: store.bulk_timeout must be > 0"]
    assert load(env={"REDIS_EXTENDER_BULK_TIMEOUT": "12"}).store.bulk_timeout == 12.0


def test_settings_error_message_lists_every_problem():
    err = SettingsError(["first", "second"])
    assert str(err) == "invalid configuration:\n  - first\n  - second"
    assert isinstance(err, ValueError)


@pytest.mark.parametrize("text, words", [
    pytest.param("[store\nredis_url = 1", "cannot read config file", id="malformed-toml"),
])
def test_unreadable_toml_is_a_settings_error(tmp_path, text, words):
    problems = problems_of(env={}, config_file=toml(tmp_path, text))
    assert words in problems[0]


def test_missing_config_file_is_a_settings_error(tmp_path):
    problems = problems_of(env={}, config_file=tmp_path / "absent.toml")
    assert problems[0].startswith("cannot read config file")


def test_toml_value_outside_a_table_is_a_problem(tmp_path):
    path = toml(tmp_path, 'redis_url = "redis://x:1/0"\n')
    assert problems_of(env={}, config_file=path) == [f"{path}: [redis_url] must be a table"]


@pytest.mark.parametrize("env, words", [
    pytest.param({"REDIS_EXTENDER_PRESET": "acme"}, "identity.preset 'acme' is not one of", id="unknown-preset"),
    pytest.param({"REDIS_EXTENDER_CLUSTER_SHARDS": "cache=0"}, "counts must be >= 1", id="zero-shards"),
    pytest.param({"REDIS_EXTENDER_CLUSTER_SHARDS": "cache"}, "expected cluster=count", id="shard-map-without-count"),
    pytest.param({"REDIS_EXTENDER_LEVELS": " , "}, "domains.levels must name at least one", id="no-levels"),
    pytest.param({"REDIS_EXTENDER_LEVELS": "a,b,a"}, "domains.levels has duplicates", id="duplicate-levels"),
    pytest.param({"REDIS_EXTENDER_LEVEL_WEIGHTS": "1,2"}, "score.level_weights has 2 values for 3 levels",
                 id="level-weights-count-mismatch"),
    pytest.param({"REDIS_EXTENDER_WEIGHT_SHARD": "-1"}, "score weights must be >= 0", id="negative-weight"),
    pytest.param({"REDIS_URL": "http://db:6379"}, "must start with redis://", id="redis-url-scheme"),
    pytest.param({"REDIS_EXTENDER_REDIS_TIMEOUT": "5"}, "store.socket_timeout must be in (0, 1]",
                 id="redis-timeout-too-long"),
    pytest.param({"REDIS_EXTENDER_REDIS_TIMEOUT": "0"}, "store.socket_timeout must be in (0, 1]",
                 id="redis-timeout-zero"),
    pytest.param({"REDIS_EXTENDER_CACHE_TTL": "-1"}, "store.cache_ttl must be >= 0", id="negative-ttl"),
    pytest.param({"REDIS_EXTENDER_ON_UNAVAILABLE": "maybe"}, "store.on_unavailable must be one of",
                 id="unknown-unavailable-policy"),
    pytest.param({"REDIS_EXTENDER_BIND": "8888"}, "must be HOST:PORT", id="bind-without-host"),
    pytest.param({"REDIS_EXTENDER_BIND": "host:port"}, "must be HOST:PORT", id="bind-port-not-a-number"),
    pytest.param({"REDIS_EXTENDER_WORKERS": "0"}, "must be >= 1", id="zero-workers"),
    pytest.param({"REDIS_EXTENDER_MAX_BODY": "100"}, "service.max_body_bytes must be >= 1024", id="tiny-body-cap"),
    pytest.param({"REDIS_EXTENDER_CERTFILE": "/tls/cert.pem"}, "certfile and service.keyfile go together",
                 id="cert-without-key"),
    pytest.param({"REDIS_EXTENDER_LOG_LEVEL": "loud"}, "service.log_level must be", id="unknown-log-level"),
    pytest.param({"REDIS_EXTENDER_IN_CLUSTER": "perhaps"}, "expected true or false", id="not-a-boolean"),
    pytest.param({"REDIS_EXTENDER_KUBECONFIG": "/nonexistent/kubeconfig"}, "is not a file",
                 id="kubeconfig-missing"),
    pytest.param({"REDIS_EXTENDER_LOCK_TTL": "0.5"}, "kube.lock_ttl must be >= 1", id="lock-ttl-too-short"),
])
def test_invalid_value_is_reported(env, words):
    assert any(words in p for p in problems_of(env=env)), problems_of(env=env)


def test_kubeconfig_and_in_cluster_exclude_each_other(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    env = {"REDIS_EXTENDER_KUBECONFIG": str(kubeconfig), "REDIS_EXTENDER_IN_CLUSTER": "true"}
    assert any("kube.kubeconfig and kube.in_cluster exclude each other" in p for p in problems_of(env=env))


@pytest.mark.parametrize("env, source", [
    pytest.param({"REDIS_EXTENDER_ON_UNAVAILABLE": "maybe"}, "REDIS_EXTENDER_ON_UNAVAILABLE", id="env-policy"),
    pytest.param({"REDIS_EXTENDER_BIND": "8888"}, "REDIS_EXTENDER_BIND", id="env-bind"),
])
def test_validation_problem_names_the_source_of_the_value(env, source):
    assert any(source in p for p in problems_of(env=env))


# --- the README table ---------------------------------------------------------------------

def test_markdown_table_lists_every_options_env_var_and_toml_key():
    table = markdown_table()
    lines = table.splitlines()
    assert lines[0] == "| environment variable | TOML key | default | meaning |"
    assert lines[1] == "|---|---|---|---|"
    assert len(lines) == 2 + len(OPTIONS)
    for option, row in zip(OPTIONS, lines[2:]):
        assert row.startswith(f"| `{option.env}` | `{option.section}.{option.name}` | ")
        assert option.help in row


def test_markdown_table_shows_defaults():
    rows = {re.match(r"\| `([^`]+)`", line).group(1): line for line in markdown_table().splitlines()[2:]}
    assert f"`{DEFAULT_REDIS_URL}`" in rows["REDIS_URL"]
    assert "`kubernetes.io/hostname,topology.kubernetes.io/zone,topology.kubernetes.io/region`" in \
        rows["REDIS_EXTENDER_LEVELS"]
    assert "`(see meaning)`" in rows["REDIS_EXTENDER_LEVEL_WEIGHTS"]
    assert "`(none)`" in rows["REDIS_EXTENDER_CLUSTER_SHARDS"]
    assert "`fail-closed`" in rows["REDIS_EXTENDER_ON_UNAVAILABLE"]


# --- one home for configuration -------------------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[2] / "extender"


def environment_reads(source: str) -> list[int]:
    """Lines that touch the process environment: os.environ, os.getenv/putenv/unsetenv."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in ("environ", "environb", "getenv", "putenv", "unsetenv"):
            found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" \
                and any(a.name in ("environ", "getenv", "putenv") for a in node.names):
            found.append(node.lineno)
    return sorted(found)


def test_the_scan_sees_every_way_to_the_environment():
    source = "import os\nos.environ['A']\nos.getenv('B')\nfrom os import environ\nx.environ\n"
    assert environment_reads(source) == [2, 3, 4]


def test_nothing_but_settings_reads_the_environment():
    offenders = {str(path.relative_to(PACKAGE)): lines for path in sorted(PACKAGE.rglob("*.py"))
                 if path.name != "settings.py" and (lines := environment_reads(path.read_text()))}
    assert offenders == {}
    assert environment_reads((PACKAGE / "core" / "settings.py").read_text())  # the scan does see it


def _option(parser, *path: str):
    for name in path[:-1]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return next(a for a in parser._actions if path[-1] in a.option_strings)


@pytest.mark.parametrize("path, value", [
    (("run", "--bind"), Settings().service.bind),
    (("run", "--workers"), Settings().service.workers),
    (("bench", "--workers"), Settings().service.workers),
])
def test_cli_defaults_are_the_settings_defaults(path, value):
    from extender.cli import build_parser

    assert _option(build_parser(), *path).default == value


@pytest.mark.parametrize("path, value", [
    (("serve", "--bind"), Settings().service.bind),
    (("serve", "--workers"), Settings().service.workers),
    (("serve", "--threads"), Settings().service.threads),
    (("serve", "--redis-url"), Settings().store.redis_url),
])
def test_cli_help_quotes_the_settings_defaults(path, value):
    from extender.cli import build_parser

    option = _option(build_parser(), *path)
    assert option.default is None  # not given: the file, the environment or the default decide
    assert f"default {value})" in option.help or f"or {value})" in option.help


def test_settings_remember_their_file_for_the_child_processes(tmp_path):
    config = tmp_path / "extender.toml"
    config.write_text('[service]\nworkers = 3\n')
    settings = load(config_file=str(config), env={})
    assert settings.source_file == str(config.resolve()) and settings.service.workers == 3
    assert load(env={}).source_file is None
