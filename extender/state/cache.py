"""The in-process cachetools layer in front of Redis, and what happens when Redis is down.

Reads are served from process memory: usage for cache_ttl, the node table until its
generation counter moves (checked every node_cache_ttl). Both are thousands of fields: when
they expire, the last value is served while one background thread per worker reloads them
with a longer timeout, so no request waits on a big read (only a candidate missing from the
node table, a node just added, makes a request reload it at once). A shard's copies are read
fresh by default (shard_cache_ttl 0): one small pipelined read, and a sibling placed by another
worker must be seen at once. Writes made by this process invalidate what they touch.
Other replicas' writes are seen within the TTL; that is safe because the decision that
matters (check-and-record) is made atomically inside Redis, not from this cache.

Redis down: the cache owns the circuit breaker. A failed call (read or write) marks Redis down
for `retry_after` seconds, during which no call is attempted (answers stay fast, far under
the scheduler's 5 s). Reads then come from the last good value while it is younger than
`max_staleness` (the node table's age is that of its last confirmation: a successful
generation check or read, not its last reload); past that, StateUnavailable is raised and the service applies the
documented policy (fail-closed or fail-open). Calls that must reach Redis now (the bind's
fresh read, writes) have no fallback: they raise StoreFailed, at once while Redis is down.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar, cast

import redis
from cachetools import LRUCache, TTLCache

from extender.core.settings import Settings
from extender.state.fence import FenceWatch, Mark
from extender.state.records import FilterMemory, PodRecord, RecordResult, ShardState
from extender.state.store import RedisStore
from extender.state.table import NodeTable, build_node_table, epoch_problem

__all__ = ["NodeTable", "StateCache", "StateIncomplete", "StateUnavailable", "StoreFailed", "build_node_table",
           "epoch_problem", "open_cache"]

if TYPE_CHECKING:
    from extender.core.model import VictimSet
    from extender.policy.preempt import VictimState

T = TypeVar("T")
CacheKey = tuple[Any, ...]  # (kind, ...): the kind names the TTL cache it lives in
log = logging.getLogger(__name__)

REVALIDATE_EVERY = 0.25
"""Seconds between generation checks forced by a candidate missing from the node table: a
burst of requests naming a just-added node (or a node the sync has not stored yet) costs
one GET per this interval, not one per request, and the new node is seen within it."""


OUTAGE_QUIET = 10.0
"""Seconds without a call after a failure past which the next failure starts a new outage
(outage_age): a worker idle since an earlier outage must not count that one's age."""


READY_TIMEOUT = 1.5
"""Seconds /readyz waits for Redis (PING, meta, epoch), past the decisions' 30 ms and the
breaker: under CPU contention one call can take a second, and that must not take the extender
out of its Service; a Redis that does not answer in this (under the kubelet probe's 2 s) is
an outage, and /readyz says so."""


class StateUnavailable(RuntimeError):
    """Redis cannot be read and the last known state is missing or too old."""


class StateIncomplete(StateUnavailable):
    """Redis answers, but the state is not whole (no epoch, or another than the tables'): it was
    emptied or replaced and is being written again (a load, the syncer's relist)."""


class StoreFailed(StateUnavailable):
    """A call that must reach Redis now failed, or was not tried because Redis is down.
    Its text is the Redis client's (or "Redis unavailable"), for the reply's Error."""


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stale_served: int = 0
    redis_errors: int = 0
    listeners: list[Callable[[str], None]] = field(default_factory=list)

    def count(self, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)
        for listener in self.listeners:
            listener(what)


class StateCache:
    def __init__(self, store: RedisStore, levels: tuple[str, ...], ttl: float = 1.0,
                 node_ttl: float = 2.0, max_staleness: float = 30.0, retry_after: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, maxsize: int = 4096, shard_ttl: float = 0.0,
                 bulk: RedisStore | None = None, patient: RedisStore | None = None):
        self.store = store
        self.bulk = bulk or store  # a client with a longer timeout, for background reloads
        self.patient = patient or self.bulk  # the readiness probe's (READY_TIMEOUT)
        self.shard_ttl = shard_ttl
        self.levels = levels
        self.max_staleness = max_staleness
        self.retry_after = retry_after
        self.clock = clock
        self.node_ttl = node_ttl
        self.stats = CacheStats()
        self._fresh: dict[str, TTLCache[CacheKey, Any]] = {
            "usage": TTLCache(maxsize=4, ttl=ttl, timer=clock),
            "shard": TTLCache(maxsize=maxsize, ttl=max(shard_ttl, 1e-6), timer=clock)}
        self._reloading: set[str] = set()  # background reloads under way (single flight)
        self._last_good: LRUCache[CacheKey, tuple[float, Any]] = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_since: float | None = None  # the first failure of the current outage
        self._last_failure = -1e18
        self._table: NodeTable | None = None
        self._table_checked = -1e18
        self._latest_generation = 0  # the newest node-table generation seen in Redis
        self._table_fetched = -1e18  # when the table was last read whole
        self._epoch = ""  # the epoch of the values cached (usage, shards); cleared when it moves
        self.fence = FenceWatch()  # has the state gone back in time? (state/fence.py)
        self._usage_parts: tuple[Any, Any, dict[str, tuple[int, int]]] | None = None  # usage_parts

    # -- reads ----------------------------------------------------------------------------

    def shard(self, cluster: str, shard: str | None, counts: bool = True) -> ShardState:
        """Read fresh by default (shard_ttl 0): a sibling bound or reserved by another worker
        or replica a millisecond ago must be seen. The last good value still serves outages."""
        return self._get(("shard", cluster, shard, counts), lambda: self._shard_read(self.store, cluster, shard, counts),
                         fresh=self.shard_ttl <= 0)

    def _shard_read(self, store: RedisStore, cluster: str, shard: str | None, counts: bool) -> ShardState:
        mark = self.fence.mark()
        state = store.shard_state(cluster, shard, counts)
        self._fenced(store, mark, state.epoch, state.fence)
        return state

    def _fenced(self, store: RedisStore, mark: Mark, epoch: str, fence: int) -> None:
        """A read's epoch and fence against what this process saw: a state gone back in time is
        taken away for everyone (its epoch deleted, why in P meta) and StateIncomplete."""
        problem = self.fence.check(mark, epoch, fence)
        if problem is None:
            return
        log.error("%s; taking its epoch away (not whole until `load` or the syncer's relist)", problem)
        try:
            store.invalidate_epoch(epoch, problem)
        except redis.RedisError as exc:  # the next read finds the same and tries again
            log.warning("cannot take the epoch away: %s", exc)
        raise StateIncomplete(problem)

    def usage(self) -> tuple[dict[str, int], dict[str, int]]:
        """Thousands of fields: past its TTL, the last value is served while one background
        reload (with the bulk client's longer timeout) fetches the next."""
        return self._get(("usage",), self.store.usage, background=self.bulk.usage)

    def node_table(self, revalidate: bool = False) -> NodeTable:
        """The node table, reloaded only when its generation changed. `revalidate`: a candidate
        is missing (a node just added), so check the generation now rather than at the TTL,
        at most every REVALIDATE_EVERY seconds."""
        now = self.clock()
        table = self._table
        ttl = REVALIDATE_EVERY if revalidate else self.node_ttl
        known_stale = revalidate and table is not None and table.generation < self._latest_generation
        if table is not None and now - self._table_checked < ttl and not known_stale:
            self.stats.count("hits")
            return table
        if self._is_down(now):
            return self._stale_table(now)
        try:
            generation = self._latest_generation = self.store.node_generation()
            if table is None or (revalidate and generation != table.generation):
                self.stats.count("misses")  # nothing to serve, or a candidate is missing: wait
                table = self._load_table(self.store)
            elif generation != table.generation:
                self.stats.count("misses")  # serve the current table while the next one loads
                self._in_background("nodes", lambda: self._load_table(self.bulk))
            else:
                self.stats.count("hits")
        except redis.RedisError as exc:
            self._mark_down(now)
            return self._stale_table(now, exc)
        with self._lock:
            self._table_checked = now
        self._down_since = None
        return table

    def _load_table(self, store: RedisStore) -> NodeTable:
        """Read and compile the whole node table (tens of ms at 5,000 nodes)."""
        mark = self.fence.mark()
        generation, records, epoch, fence = store.nodes_with_epoch()
        self._fenced(store, mark, epoch, fence)
        table = build_node_table(generation, records, self.levels, epoch)
        with self._lock:
            # a new epoch restarts the generation counter (an emptied Redis): take it whatever
            if self._table is None or table.epoch != self._table.epoch or table.generation >= self._table.generation:
                self._table, self._table_fetched = table, self.clock()
        return table

    def table_for_epoch(self, epoch: str) -> NodeTable:
        """The node table of `epoch`, read now if the one held is of another epoch (the state was
        emptied and written again, or replaced); the values cached of an older epoch (usage,
        shards) are dropped. Raises StateUnavailable (Redis down)."""
        table = self._table
        if table is not None and table.epoch == epoch:
            return table
        with self._lock:
            if self._epoch != epoch:
                for cache in self._fresh.values():
                    cache.clear()
                self._last_good.clear()
                self._epoch = epoch
        self.stats.count("misses")
        return self._direct(lambda: self._load_table(self.store))

    def epoch_now(self, patient: bool = False) -> str:
        """The state's epoch read from Redis now (the bind's check). `patient` (/readyz): on the
        probe's client, breaker or not, leaving it alone: one slow decision call must not make
        the service unready, an outage must (the probe's own call fails then)."""
        if not patient:
            return self._direct(lambda: self._epoch_read(self.store))
        try:
            return self._epoch_read(self.patient)
        except redis.RedisError as exc:
            raise StoreFailed(str(exc)) from exc

    def _epoch_read(self, store: RedisStore) -> str:
        mark = self.fence.mark()
        epoch, fence = store.epoch_and_fence()
        self._fenced(store, mark, epoch, fence)
        return epoch

    def _in_background(self, what: str, work: Callable[[], Any]) -> None:
        with self._lock:
            if what in self._reloading:
                return
            self._reloading.add(what)

        def run() -> None:
            try:
                work()
            except redis.RedisError as exc:
                self._mark_down(self.clock())
                log.warning("background reload of %s failed: %s", what, exc)
            except StateUnavailable as exc:  # the state went back in time: the next read says so
                log.warning("background reload of %s: %s", what, exc)
            finally:
                with self._lock:
                    self._reloading.discard(what)

        threading.Thread(target=run, name=f"reload-{what}", daemon=True).start()

    def warm(self) -> None:
        """Load the node table and usage in the background (at start, before any request)."""
        self._in_background("nodes", lambda: self._load_table(self.bulk))
        self._in_background("usage", lambda: self._put("usage", ("usage",), self.bulk.usage()))

    def _stale_table(self, now: float, exc: Exception | None = None) -> NodeTable:
        # the age of the table last confirmed current (a generation check or a read), not of
        # its last reload: a table unchanged for an hour and checked a second ago is 1 s old
        confirmed = max(self._table_checked, self._table_fetched)
        if self._table is not None and now - confirmed <= self.max_staleness:
            self.stats.count("stale_served")
            return self._table
        raise StateUnavailable(f"Redis unreachable and no node table younger than "
                               f"{self.max_staleness:g}s{f': {exc}' if exc else ''}")

    def _get(self, key: CacheKey, fetch: Callable[[], T], fresh: bool = False,
             background: Callable[[], T] | None = None) -> T:
        kind = str(key[0])
        now = self.clock()
        with self._lock:
            found = _MISSING if fresh else self._fresh[kind].get(key, _MISSING)
            previous = self._last_good.get(key)
        if found is not _MISSING:
            self.stats.count("hits")
            return cast(T, found)
        if background is not None and previous is not None and now - previous[0] < self._fresh[kind].ttl:
            # dropped by this process's own write, which _count_in_usage applied to the last read:
            # still as young as a hit (a reload per placement cost thousands of fields each)
            self.stats.count("hits")
            return cast(T, previous[1])
        self.stats.count("misses")
        if self._is_down(now):
            return self._stale(key, now)
        if background is not None and previous is not None and now - previous[0] <= self.max_staleness:
            self._in_background(kind, lambda: self._put(kind, key, background()))
            return previous[1]
        try:
            value = fetch()
        except redis.RedisError as exc:
            self._mark_down(now)
            return self._stale(key, now, exc)
        self._put(kind, key, value)
        self._down_since = None
        return value

    def _put(self, kind: str, key: CacheKey, value: Any) -> None:
        with self._lock:
            if kind == "usage":
                self._usage_parts = None  # a read is its own base
            self._fresh[kind][key] = value
            self._last_good[key] = (self.clock(), value)

    def _stale(self, key: CacheKey, now: float, exc: Exception | None = None) -> Any:
        with self._lock:
            entry = self._last_good.get(key)
        if entry is not None and now - entry[0] <= self.max_staleness:
            self.stats.count("stale_served")
            return entry[1]
        raise StateUnavailable(f"Redis unreachable and no state for {key[0]} younger than "
                               f"{self.max_staleness:g}s{f': {exc}' if exc else ''}")

    # -- health ---------------------------------------------------------------------------

    def _is_down(self, now: float) -> bool:
        return now < self._down_until

    def _mark_down(self, now: float) -> None:
        self.stats.count("redis_errors")
        self._down_until = now + self.retry_after
        # a new outage: the first failure since a success, or since a quiet spell (a worker
        # that made no call since an earlier outage must not count that one's age)
        if self._down_since is None or now - self._last_failure > OUTAGE_QUIET:
            self._down_since = now
        self._last_failure = now

    def outage_age(self) -> float | None:
        """Seconds since Redis first failed without a success since (None: not failing)."""
        since = self._down_since
        return None if since is None else self.clock() - since

    @property
    def redis_down(self) -> bool:
        return self._is_down(self.clock())

    def _direct(self, call: Callable[[], T]) -> T:
        """A store call that must reach Redis now: refused while Redis is down, and a failure
        opens the breaker for every other call, as a failed read does."""
        if self.redis_down:  # never wait on a Redis that just failed
            raise StoreFailed("Redis unavailable")
        try:
            value = call()
            self._down_since = None
            return value
        except redis.RedisError as exc:
            self._mark_down(self.clock())
            raise StoreFailed(str(exc)) from exc

    def probe(self) -> dict[str, str]:
        """PING, then the load bookkeeping (P meta), for the readiness probe. Always asks Redis,
        breaker or not (the probe is how an operator sees it come back), and leaves the
        breaker alone; on a client of its own (READY_TIMEOUT), not the decisions' 30 ms one:
        a call slowed by CPU contention is no outage, a Redis that does not answer in
        READY_TIMEOUT is. Raises StoreFailed."""
        try:
            self.patient.ping()
            return self.patient.meta()
        except redis.RedisError as exc:
            raise StoreFailed(str(exc)) from exc

    # -- calls that must reach Redis now ---------------------------------------------------

    def shard_now(self, cluster: str, shard: str | None, counts: bool = False) -> ShardState:
        """The shard's copies (and, `counts`, its cluster's) read from Redis itself, not from
        the cache (the bind's re-check)."""
        return self._direct(lambda: self._shard_read(self.store, cluster, shard, counts))

    def victims(self, victims: "Mapping[str, VictimSet]") -> "tuple[dict[str, VictimSet], VictimState]":
        """The preemption candidates' victims resolved against the store (state/victims.py),
        on the bulk client: a SCAN of the shard hashes is more than a decision's 30 ms."""
        from extender.state.victims import read_victims

        return self._direct(lambda: read_victims(self.bulk, victims))

    def bind_reads(self, namespace: str, name: str) -> tuple[str, FilterMemory | None, PodRecord | None]:
        """The state's epoch (fenced, as epoch_now), the pod's filter memory and stored record,
        read from Redis now in one round trip (the bind's first read)."""

        def read() -> tuple[str, FilterMemory | None, PodRecord | None]:
            mark = self.fence.mark()
            epoch, fence, memory, stored = self.store.bind_reads(namespace, name)
            self._fenced(self.store, mark, epoch, fence)
            return epoch, memory, stored

        return self._direct(read)

    def remember_filter(self, pod_key: str, memory: FilterMemory) -> None:
        self._direct(lambda: self.store.remember_filter(pod_key, memory))

    def reserve(self, pod_key: str, cluster: str, shard: str, node: str, role: str, ttl: float) -> bool:
        return self._direct(lambda: self.store.reserve(pod_key, cluster, shard, node, role, ttl))

    def release_reservation(self, pod_key: str, cluster: str, shard: str) -> bool:
        try:
            return self._direct(lambda: self.store.release_reservation(pod_key, cluster, shard))
        finally:
            self.invalidate_shard(cluster, shard)

    def record_placement(self, pod: PodRecord, expect_version: str = "", expect_masters: str = "") -> RecordResult:
        """The atomic check-and-record (RedisStore.record_placement); drops this process's
        cached view of the shard and usage, whatever the outcome."""
        try:
            result = self._direct(lambda: self.store.record_placement(pod, expect_version, expect_masters))
        finally:
            self.invalidate_shard(pod.cluster, pod.shard or None)
        if result.ok:
            self._count_in_usage(pod, result.replaced())
        return result

    def _count_in_usage(self, pod: PodRecord, old: tuple[str, int, int] | None) -> None:
        """This process's own record, applied to its served usage at once: usage is reloaded
        in the background (served stale meanwhile), and the next decision must see the pod
        it just placed (its node's headroom), as the next decision of a one-process plan does."""
        key = ("usage",)
        with self._lock:
            entry = self._last_good.get(key)
            if entry is None:
                return
            current = entry[1]
            parts = self._usage_parts
            base, delta = (parts[1], dict(parts[2])) if parts is not None and parts[0] is current else (current, {})
            mem, cpu = dict(current[0]), dict(current[1])
            changes = [(pod.node, pod.memory, pod.cpu)]
            if old is not None:
                changes.insert(0, (old[0], -old[1], -old[2]))
            for node, memory, millicpu in changes:
                mem[node] = mem.get(node, 0) + memory
                cpu[node] = cpu.get(node, 0) + millicpu
                was = delta.get(node, (0, 0))
                delta[node] = (was[0] + memory, was[1] + millicpu)
            adjusted = (mem, cpu)
            self._last_good[key] = (entry[0], adjusted)
            self._usage_parts = (adjusted, base, delta)

    def usage_parts(self, usage: Any) -> tuple[Any, dict[str, tuple[int, int]]] | None:
        """When `usage` (as usage() served it) is the last read plus this process's own records:
        that read and the records' (memory, CPU) per node, so what was derived from the read can
        be kept and the few records applied to it (state/snapshot.py); else None."""
        parts = self._usage_parts
        return (parts[1], parts[2]) if parts is not None and parts[0] is usage else None

    def unrecord(self, pod: PodRecord) -> bool:
        """Undo a placement this service recorded (the API refused the Binding): only while the
        stored pod is still on that node by our record; a watch event may have replaced it."""
        try:
            return self._direct(lambda: self.store.unrecord_placement(pod))
        finally:
            self.invalidate_shard(pod.cluster, pod.shard or None)

    # -- invalidation by this process's writes ---------------------------------------------

    def invalidate_shard(self, cluster: str, shard: str | None) -> None:
        with self._lock:
            for key in (("shard", cluster, s, c) for s in (shard, None) for c in (True, False)):
                self._fresh["shard"].pop(key, None)
            self._fresh["usage"].pop(("usage",), None)

    def clear(self) -> None:
        with self._lock:
            for cache in self._fresh.values():
                cache.clear()
            self._last_good.clear()
            self._table = None


def open_cache(settings: Settings) -> StateCache:
    """A serving process's cache: decisions' calls bounded by store.socket_timeout, the
    background reloads of big reads by store.bulk_timeout, on a client of their own."""
    s = settings.store
    store = RedisStore.from_url(s.redis_url, s.key_prefix, s.socket_timeout)
    bulk = RedisStore.from_url(s.redis_url, s.key_prefix, s.bulk_timeout)
    patient = RedisStore.from_url(s.redis_url, s.key_prefix, min(s.bulk_timeout, READY_TIMEOUT))
    return StateCache(store, settings.domains.levels, ttl=s.cache_ttl, node_ttl=s.node_cache_ttl,
                      max_staleness=s.max_staleness, retry_after=s.retry_after, shard_ttl=s.shard_cache_ttl,
                      bulk=bulk, patient=patient)


_MISSING = object()
