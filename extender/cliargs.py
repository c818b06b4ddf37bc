"""The plumbing every command of the CLI shares: one set of common options, one settings builder.

Both argparse trees use it: extender/cli.py (every command) and extender/reports/cli.py (its
`report` and `rebalance`, also runnable standalone as `python -m extender.reports.cli`).
"""
from __future__ import annotations

import argparse
from typing import Any

from . import settings as settings_mod
from .settings import Settings


def add_common(parser: argparse.ArgumentParser) -> None:
    """--config and --redis-url, for every command that reads the configuration or the state."""
    parser.add_argument("--config", help="TOML configuration file (see README)")
    parser.add_argument("--redis-url", help="Redis holding the state (default $REDIS_URL or redis://127.0.0.1:6379/0)")


def load_settings(ns: argparse.Namespace, **extra: Any) -> Settings:
    """The settings of a command: its options (None = not given) over the file, environment and
    defaults. Raises SettingsError with every problem at once."""
    overrides = {"store.redis_url": getattr(ns, "redis_url", None), **extra}
    return settings_mod.load(overrides, config_file=getattr(ns, "config", None))
