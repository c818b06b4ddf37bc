"""The plumbing every command of the CLI shares: one set of common options, one settings builder,
one way of saying why a dump could not be loaded into the state.

Both argparse trees use it: extender/cli.py (every command) and extender/commands/report.py (its
`report` and `rebalance`, also runnable standalone as `python -m extender.commands.report`).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from extender.core import settings as settings_mod
from extender.core.settings import DEFAULTS, Settings


def add_common(parser: argparse.ArgumentParser) -> None:
    """--config and --redis-url, for every command that reads the configuration or the state."""
    parser.add_argument("--config", help="TOML configuration file (see README)")
    parser.add_argument("--redis-url", help=f"Redis holding the state (default $REDIS_URL or {DEFAULTS.store.redis_url})")


def load_settings(ns: argparse.Namespace, **extra: Any) -> Settings:
    """The settings of a command: its options (None = not given) over the file, environment and
    defaults. Raises SettingsError with every problem at once."""
    overrides = {"store.redis_url": getattr(ns, "redis_url", None), **extra}
    return settings_mod.load(overrides, config_file=getattr(ns, "config", None))


def load_failed(command: str, file: str, redis_url: str, exc: Exception, *, bad_dump: int, no_redis: int) -> int:
    """Say on stderr why `redis-extender COMMAND` could not load FILE into the state (a LoadError:
    the dump is not a usable Kubernetes List; a StoreError: the Redis at redis_url failed) and
    return the command's exit code for it: `bad_dump` or `no_redis`."""
    from extender.state.loader import LoadError

    if isinstance(exc, LoadError):
        print(f"redis-extender {command}: {file}: {exc}", file=sys.stderr)
        return bad_dump
    print(f"redis-extender {command}: Redis at {redis_url}: {exc}", file=sys.stderr)
    return no_redis
