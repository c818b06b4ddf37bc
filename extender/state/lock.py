"""The syncers' leader lock: one writer of the API's truth among several replicas.

A Redis key with expiry (P sync:leader, see redis_store.py): SET NX PX takes it, a
compare-and-expire keeps it, a compare-and-delete gives it back. A holder that stops renewing
(dead, paused, cut off) loses it after `ttl`, and another replica takes over.
"""
from __future__ import annotations

import os
import socket
import uuid

from redis import RedisError

from extender.state.store import RedisStore


class LeaderLock:
    def __init__(self, store: RedisStore, ttl: float = 15.0, identity: str | None = None):
        self.store = store
        self.ttl_ms = int(ttl * 1000)
        self.identity = identity or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        return self.store.take_lock(self.identity, self.ttl_ms)

    def renew(self) -> bool:
        """False once another holds it (ours expired): stop writing."""
        return self.store.renew_lock(self.identity, self.ttl_ms)

    def release(self) -> None:
        """Best effort: on shutdown, a Redis that cannot be reached lets the lock expire."""
        try:
            self.store.release_lock(self.identity)
        except RedisError:
            pass

    def holder(self) -> str | None:
        return self.store.lock_holder()
