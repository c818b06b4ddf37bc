"""All configuration in one place: typed, grouped by concern, validated at start.

Sources, later wins: built-in defaults < a TOML file (REDIS_EXTENDER_CONFIG or --config) <
environment variables < command-line flags. Every option is declared once in OPTIONS (core/options.py), which
also generates the README's table (`redis-extender config --markdown`), so docs and code
cannot drift. All errors are reported together, each naming the source of the bad value.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from extender.core.options import OPTIONS, PRESETS

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_LEVELS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region")
"""The label conventions' names, validated here; their rules are identity.PRESET_CONVENTIONS."""
ON_UNAVAILABLE = ("fail-closed", "fail-open")
KEEPER_MODES = ("off", "advise", "act")


class SettingsError(ValueError):
    """Every problem found in the configuration, so an operator fixes them in one go."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class IdentitySettings:
    """How a pod's cluster, shard and role are read from its labels (see identity.py)."""

    preset: str = "default"
    cluster_label: str | None = None  # None: the preset's
    shard_label: str | None = None
    role_label: str | None = None
    shards_label: str = "redis-extender.io/shards"
    cluster_shards: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DomainSettings:
    levels: tuple[str, ...] = DEFAULT_LEVELS


@dataclass(frozen=True)
class ScoreSettings:
    """Weights of the prioritize formula (policy/score.py). Defaults make it near-lexicographic:
    shard spread, then master balance (masters only), then cluster spread, then headroom."""

    shard: float = 8.0
    cluster: float = 2.0
    masters: float = 4.0
    headroom: float = 0.5
    level_weights: tuple[float, ...] = ()  # empty: 1, 2, 4, ... (higher levels weigh more)


@dataclass(frozen=True)
class StoreSettings:
    redis_url: str = DEFAULT_REDIS_URL
    key_prefix: str = "rx:{main}:"
    socket_timeout: float = 0.03
    bulk_timeout: float = 5.0
    cache_ttl: float = 1.0
    node_cache_ttl: float = 2.0
    shard_cache_ttl: float = 0.0
    reservation_ttl: float = 30.0
    max_staleness: float = 30.0
    retry_after: float = 1.0
    on_unavailable: str = "fail-closed"


@dataclass(frozen=True)
class ServiceSettings:
    bind: str = "127.0.0.1:8888"
    workers: int = 2
    threads: int = 128
    handshake_timeout: float = 5.0
    connections_per_address: int = 256
    max_body_bytes: int = 64 * 2**20
    certfile: str | None = None
    keyfile: str | None = None
    client_ca_file: str | None = None
    public_bind: str | None = None
    max_worker_rss: int = 1024
    retire_after: float = 60.0
    log_level: str = "info"
    unresolvable_in_failed: bool = True


@dataclass(frozen=True)
class LiveSettings:
    """Where each Redis deployment's live topology is read, and how often."""

    refresh: float = 30.0  # seconds; 0: only on demand (report --refresh-live)
    seeds: Mapping[str, str] = field(default_factory=dict)  # "ns/name" -> host:port | sentinel://...
    redis_port: int = 6379  # port of discovered pods (pod IP : this)


@dataclass(frozen=True)
class KeeperSettings:
    """The keeper (run by the sync leader): restores masters' balance after failovers and moves
    misplaced copies, within these bounds. advise: Events and metrics only."""

    mode: str = "advise"
    settle: float = 30.0
    cooldown: float = 10.0
    rate: int = 6
    max_lag: int = 1 << 20
    interval: float = 2.0
    step_timeout: float = 30.0
    evict_timeout: float = 300.0
    delete_pvc: bool = False


@dataclass(frozen=True)
class KubeSettings:
    """Live mode: where the API server is, and whether `serve` also runs the syncer."""

    kubeconfig: str | None = None
    in_cluster: bool = False
    run_sync: bool = True
    lock_ttl: float = 15.0
    scheduler_names: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.kubeconfig) or self.in_cluster


@dataclass(frozen=True)
class Settings:
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    domains: DomainSettings = field(default_factory=DomainSettings)
    score: ScoreSettings = field(default_factory=ScoreSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    kube: KubeSettings = field(default_factory=KubeSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    keeper: KeeperSettings = field(default_factory=KeeperSettings)
    source_file: str | None = None  # the TOML file these were read from (absolute), for child processes

    @property
    def level_weights(self) -> tuple[float, ...]:
        if self.score.level_weights:
            return self.score.level_weights
        return tuple(float(2**i) for i in range(len(self.domains.levels)))


_BY_KEY = {f"{o.section}.{o.name}": o for o in OPTIONS}
SECTIONS = ("identity", "domains", "score", "store", "service", "kube", "live", "keeper")


def load(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Build validated Settings. `overrides` maps "section.name" (from CLI flags) to values."""
    env = os.environ if env is None else env
    problems: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}

    def put(key: str, raw: Any, source: str) -> None:
        option = _BY_KEY[key]
        try:
            values.setdefault(option.section, {})[option.name] = option.parse(raw)
            sources[key] = source
        except (TypeError, ValueError) as exc:
            problems.append(f"{source}: {raw!r} is not valid for {key} ({exc})")

    config_file = config_file or env.get("REDIS_EXTENDER_CONFIG")
    if config_file:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError([f"cannot read config file {config_file}: {exc}"]) from exc
        for section, table in data.items():
            if not isinstance(table, dict):
                problems.append(f"{config_file}: [{section}] must be a table")
                continue
            for name, raw in table.items():
                key = f"{section}.{name}"
                if key in _BY_KEY:
                    put(key, raw, f"{config_file} {key}")
                else:
                    problems.append(f"{config_file}: unknown option {key}")
    for option in OPTIONS:
        if option.env in env:
            put(f"{option.section}.{option.name}", env[option.env], f"${option.env}")
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in _BY_KEY:
            problems.append(f"unknown option {key}")
            continue
        put(key, raw, f"--{_BY_KEY[key].name.replace('_', '-')}")

    base = Settings()
    sections = {f.name: replace(getattr(base, f.name), **values.get(f.name, {})) for f in fields(Settings)
                if f.name in SECTIONS}
    settings = Settings(**sections, source_file=str(Path(config_file).resolve()) if config_file else None)
    for problem in validate(settings):  # name where the offending value came from
        source = next((k for k in sources if problem.startswith(k)), None)
        problems.append(f"{sources[source]}: {problem}" if source else problem)
    if problems:
        raise SettingsError(problems)
    return settings


def validate(settings: Settings) -> list[str]:
    problems = []
    ident, store, service, score = settings.identity, settings.store, settings.service, settings.score
    if ident.preset not in PRESETS:
        problems.append(f"identity.preset {ident.preset!r} is not one of {', '.join(PRESETS)}")
    if any(count < 1 for count in ident.cluster_shards.values()):
        problems.append("identity.cluster_shards: counts must be >= 1")
    if not settings.domains.levels:
        problems.append("domains.levels must name at least one node label")
    if len(set(settings.domains.levels)) != len(settings.domains.levels):
        problems.append("domains.levels has duplicates")
    if score.level_weights and len(score.level_weights) != len(settings.domains.levels):
        problems.append(f"score.level_weights has {len(score.level_weights)} values for "
                        f"{len(settings.domains.levels)} levels")
    if any(w < 0 for w in (score.shard, score.cluster, score.masters, score.headroom, *score.level_weights)):
        problems.append("score weights must be >= 0")
    if not store.redis_url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
        problems.append(f"store.redis_url {store.redis_url!r} must start with redis://, rediss://, unix:// "
                        "or redis+sentinel://")
    if not 0 < store.socket_timeout <= 1:
        problems.append("store.socket_timeout must be in (0, 1] seconds: the scheduler waits 5 s at most")
    if store.bulk_timeout <= 0:
        problems.append("store.bulk_timeout must be > 0")
    for name in ("cache_ttl", "node_cache_ttl", "shard_cache_ttl", "reservation_ttl", "max_staleness", "retry_after"):
        if getattr(store, name) < 0:
            problems.append(f"store.{name} must be >= 0")
    if store.on_unavailable not in ON_UNAVAILABLE:
        problems.append(f"store.on_unavailable must be one of {', '.join(ON_UNAVAILABLE)}")
    host, sep, port = service.bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        problems.append(f"service.bind {service.bind!r} must be HOST:PORT")
    if service.workers < 1 or service.threads < 1:
        problems.append("service.workers and service.threads must be >= 1")
    if service.handshake_timeout <= 0 or service.connections_per_address < 1:
        problems.append("service.handshake_timeout must be > 0 and service.connections_per_address >= 1")
    if service.max_body_bytes < 1024:
        problems.append("service.max_body_bytes must be >= 1024")
    if bool(service.certfile) != bool(service.keyfile):
        problems.append("service.certfile and service.keyfile go together")
    if service.client_ca_file and not service.certfile:
        problems.append("service.client_ca_file needs service.certfile and service.keyfile (mTLS is TLS)")
    for name in ("certfile", "keyfile", "client_ca_file"):
        value = getattr(service, name)
        if value and not Path(value).is_file():
            problems.append(f"service.{name} {value!r} is not a file")
    if service.public_bind is not None:
        phost, psep, pport = service.public_bind.rpartition(":")
        if not psep or not phost or not pport.isdigit():
            problems.append(f"service.public_bind {service.public_bind!r} must be HOST:PORT")
    if service.retire_after < 0:
        problems.append("service.retire_after must be >= 0")
    if service.max_worker_rss < 0:
        problems.append("service.max_worker_rss must be >= 0")
    if settings.kube.kubeconfig and settings.kube.in_cluster:
        problems.append("kube.kubeconfig and kube.in_cluster exclude each other")
    if settings.kube.kubeconfig and not Path(settings.kube.kubeconfig).is_file():
        problems.append(f"kube.kubeconfig {settings.kube.kubeconfig!r} is not a file")
    if settings.live.refresh < 0:
        problems.append("live.refresh must be >= 0")
    if not 0 < settings.live.redis_port < 65536:
        problems.append("live.redis_port must be a port number")
    if settings.kube.lock_ttl < 1:
        problems.append("kube.lock_ttl must be >= 1 second")
    keeper = settings.keeper
    if keeper.mode not in KEEPER_MODES:
        problems.append(f"keeper.mode {keeper.mode!r} is not one of {', '.join(KEEPER_MODES)}")
    for name in ("settle", "cooldown", "step_timeout", "evict_timeout"):
        if getattr(keeper, name) < 0:
            problems.append(f"keeper.{name} must be >= 0")
    if keeper.interval <= 0:
        problems.append("keeper.interval must be > 0")
    if keeper.rate < 1:
        problems.append("keeper.rate must be >= 1 step per minute")
    if keeper.max_lag < 0:
        problems.append("keeper.max_lag must be >= 0")
    if service.log_level.lower() not in ("debug", "info", "warning", "error"):
        problems.append("service.log_level must be debug, info, warning or error")
    return problems


def markdown_table() -> str:
    """The README's configuration table, generated from OPTIONS."""
    base = Settings()
    rows = ["| environment variable | TOML key | default | meaning |", "|---|---|---|---|"]
    for o in OPTIONS:
        default = getattr(getattr(base, o.section), o.name)
        if isinstance(default, tuple):
            default = ",".join(str(d) for d in default) or "(see meaning)"
        elif isinstance(default, dict):
            default = "(none)"
        rows.append(f"| `{o.env}` | `{o.section}.{o.name}` | `{default}` | {o.help} |")
    return "\n".join(rows)


DEFAULTS = Settings()


# --- the process environment: read (and written) here and nowhere else ---------------------

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's multiprocess mode: every gunicorn worker writes its samples there, and
/metrics adds them up. prometheus_client itself reads it, in each worker, at import."""


def metrics_dir() -> str | None:
    return os.environ.get(METRICS_DIR_ENV) or None


def set_metrics_dir(directory: str) -> None:
    """Before gunicorn forks its workers (they inherit it; see METRICS_DIR_ENV)."""
    os.environ[METRICS_DIR_ENV] = directory


def environment_secret(name: str) -> str | None:
    """A secret the user keeps in an environment variable of their choice (e.g. the Redis nodes'
    password, `--node-password-env NAME`): never a command-line argument."""
    return os.environ.get(name)


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment plus `extra`, for a child process started with settings
    given as REDIS_EXTENDER_* variables."""
    return {**os.environ, **extra}


def kube_bin_dir() -> str | None:
    """$KUBE_BIN_DIR: the user's own kube-apiserver + kube-scheduler (+ etcd), which the
    development harness prefers to its cached builds (`run` from a checkout)."""
    return os.environ.get("KUBE_BIN_DIR") or None
