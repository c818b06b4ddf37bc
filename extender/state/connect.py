"""Clients of the state's Redis: one instance, or the current master of a Sentinel-managed
one; and the names the layers above state use for its errors and its client type."""
from __future__ import annotations

from typing import Any

import redis

SENTINEL_SCHEME = "redis+sentinel://"


def connect(url: str, timeout: float) -> redis.Redis:
    """A client of the state's Redis. redis://, rediss://, unix:// as redis-py reads them, or
    redis+sentinel://[:password@]host:port[,host:port...]/service[/db]: the current master of
    a Sentinel-managed Redis, found again after a failover. `timeout` bounds every call."""
    options: dict[str, Any] = dict(socket_timeout=timeout, socket_connect_timeout=timeout,
                                   retry_on_timeout=False, health_check_interval=0)
    if not url.startswith(SENTINEL_SCHEME):
        return redis.Redis.from_url(url, **options)
    from redis.sentinel import Sentinel

    rest = url[len(SENTINEL_SCHEME):]
    password = None
    if "@" in rest:
        credentials, rest = rest.rsplit("@", 1)
        password = credentials.split(":", 1)[-1] or None
    hosts, _, path = rest.partition("/")
    service, _, db = path.partition("/")
    if not hosts or not service:
        raise ValueError(f"expected {SENTINEL_SCHEME}host:port[,host:port]/service[/db], got {url!r}")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        sentinels.append((name.strip("[]"), int(port or 26379)))
    sentinel = Sentinel(sentinels, socket_timeout=timeout, socket_connect_timeout=timeout)
    return sentinel.master_for(service, password=password, db=int(db or 0), **options)


StoreError = redis.RedisError
"""What every call that talks to Redis may raise, the state's store or a live Redis node: the
layers above state catch this name and never import redis."""

Client = redis.Redis
"""A client of the state's Redis (connect()), as the layers above state name its type."""
