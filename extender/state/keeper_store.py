"""The keeper's memory in the state's Redis (P keeper:<cluster> and P keepersteps, see
state/schema.py): what a new sync leader reads to carry on where the last one stopped, and
what /report shows (last action, next step, why blocked)."""
from __future__ import annotations

import time
import uuid
from typing import Any, Mapping

import orjson

from extender.analysis.keeping import Memory
from extender.state.store import RedisStore

RATE_WINDOW = 60.0


def load_memory(store: RedisStore, cluster: str) -> Memory:
    raw = store.keeper([cluster]).get(cluster)
    if not raw:
        return Memory()
    try:
        return Memory.from_json(orjson.loads(raw).get("memory"))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return Memory()  # a corrupt entry: start from what is observed


def save(store: RedisStore, cluster: str, memory: Memory, decision: Mapping[str, Any], now: float) -> None:
    """Memory and the last decision, written whole (a reader never sees half of it)."""
    store.put_keeper(cluster, orjson.dumps({"memory": memory.to_json(), "decision": dict(decision), "at": now}))


def load_all(store: RedisStore, clusters: list[str]) -> dict[str, dict[str, Any]]:
    """cluster -> {"memory", "decision", "at"} for the report (clusters without an entry left out)."""
    out = {}
    for cluster, raw in store.keeper(clusters).items():
        try:
            out[cluster] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
    return out


def recent_steps(store: RedisStore, now: float | None = None) -> tuple[float, ...]:
    """Times of every cluster's steps in the last minute (the global rate)."""
    now = time.time() if now is None else now
    return store.keeper_steps(now - RATE_WINDOW)


def record_step(store: RedisStore, now: float | None = None) -> None:
    store.add_keeper_step(uuid.uuid4().hex, time.time() if now is None else now)
