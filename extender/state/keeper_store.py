"""The keeper's memory in the state's Redis (keys `keeper:<cluster>` and `keeper:steps`, see
redis_store.py's schema): what a new sync leader reads to carry on where the last one stopped,
and what /report shows (last action, next step, why blocked)."""
from __future__ import annotations

import time
import uuid
from typing import Any, Mapping

import orjson

from ..reports.keeping import Memory
from .redis_store import Keys, RedisStore

RATE_WINDOW = 60.0


def load_memory(store: RedisStore, cluster: str) -> Memory:
    raw = store.r.get(Keys(store.p).keeper(cluster))
    if not raw:
        return Memory()
    try:
        return Memory.from_json(orjson.loads(raw).get("memory"))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return Memory()  # a corrupt entry: start from what is observed


def save(store: RedisStore, cluster: str, memory: Memory, decision: Mapping[str, Any], now: float) -> None:
    """Memory and the last decision, written whole (a reader never sees half of it)."""
    store.r.set(Keys(store.p).keeper(cluster),
                orjson.dumps({"memory": memory.to_json(), "decision": dict(decision), "at": now}))


def load_all(store: RedisStore, clusters: list[str]) -> dict[str, dict[str, Any]]:
    """cluster -> {"memory", "decision", "at"} for the report (clusters without an entry left out)."""
    keys = Keys(store.p)
    pipe = store.r.pipeline(transaction=False)
    for cluster in clusters:
        pipe.get(keys.keeper(cluster))
    out = {}
    for cluster, raw in zip(clusters, pipe.execute()):
        if raw:
            try:
                out[cluster] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
    return out


def recent_steps(store: RedisStore, now: float | None = None) -> tuple[float, ...]:
    """Times of every cluster's steps in the last minute (the global rate)."""
    now = time.time() if now is None else now
    key = Keys(store.p).keeper_steps
    store.r.zremrangebyscore(key, "-inf", now - RATE_WINDOW)
    return tuple(float(score) for _, score in store.r.zrange(key, 0, -1, withscores=True))


def record_step(store: RedisStore, now: float | None = None) -> None:
    now = time.time() if now is None else now
    store.r.zadd(Keys(store.p).keeper_steps, {uuid.uuid4().hex: now})
