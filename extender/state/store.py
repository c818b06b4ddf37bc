"""The shared state in Redis: reads and atomic writes of the key schema (state/schema.py),
through the Lua scripts of state/scripts.py. The only module that drives the raw client."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Mapping

import orjson
import redis

from extender.core.model import ClusterCounts, Copy
from extender.state import scripts
from extender.state.connect import connect
from extender.state.records import (BIND_CONFIRM_GRACE, FILTER_MEMORY_TTL, FilterMemory, NodeRecord, PodRecord,
                                    RecordResult, ShardState, parse_copy)
from extender.state.schema import Keys

SCAN_COUNT = 1000


@dataclass(frozen=True)
class StoreSummary:
    """The cluster-wide hashes: cluster ids, the node table and its generation, usage, meta."""

    clusters: set[str]
    node_generation: int
    nodes: dict[str, NodeRecord]
    usage_memory: dict[str, int]
    usage_cpu: dict[str, int]
    meta: dict[str, str]


class RedisStore:
    """Reads and atomic writes of the schema above. Every call may raise redis.RedisError."""

    def __init__(self, client: redis.Redis, prefix: str):
        # redis-py types a reply as bytes | str | Awaitable; this client never decodes: bytes
        self.r: Any = client
        self.p = prefix
        self.k = Keys(prefix)
        self._apply = client.register_script(scripts.APPLY_POD)
        self._reserve = client.register_script(scripts.RESERVE)
        self._reserve_cluster = client.register_script(scripts.RESERVE_CLUSTER)
        self._release = client.register_script(scripts.RELEASE)
        self._lock_renew = client.register_script(scripts.LOCK_RENEW)
        self._lock_release = client.register_script(scripts.LOCK_RELEASE)
        self._invalidate = client.register_script(scripts.INVALIDATE_EPOCH)
        self._shard_read = client.register_script(scripts.SHARD_READ)
        self._bind_read = client.register_script(scripts.BIND_READ)

    @classmethod
    def from_url(cls, url: str, prefix: str, timeout: float = 0.03) -> "RedisStore":
        return cls(connect(url, timeout), prefix)

    # -- nodes ----------------------------------------------------------------------------

    def put_nodes(self, nodes: Iterable[NodeRecord]) -> int:
        mapping = {n.name: n.encode() for n in nodes}
        if not mapping:
            return 0
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.k.nodes, mapping=mapping)
        pipe.incr(self.k.node_generation)
        pipe.incr(self.k.fence)
        pipe.execute()
        return len(mapping)

    def delete_node(self, name: str) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(self.k.nodes, name)
        pipe.incr(self.k.node_generation)
        pipe.incr(self.k.fence)
        pipe.execute()

    def node_generation(self) -> int:
        return int(self.r.get(self.k.node_generation) or 0)

    def nodes(self) -> tuple[int, dict[str, NodeRecord]]:
        generation, records, _, _ = self.nodes_with_epoch()
        return generation, records

    def nodes_with_epoch(self) -> tuple[int, dict[str, NodeRecord], str, int]:
        """The node table, its generation, the state's epoch and write fence, read atomically."""
        pipe = self.r.pipeline(transaction=True)
        pipe.get(self.k.node_generation)
        pipe.hgetall(self.k.nodes)
        pipe.get(self.k.epoch)
        pipe.get(self.k.fence)
        gen, raw, epoch, fence = pipe.execute()
        return (int(gen or 0), {k.decode(): NodeRecord.decode(k.decode(), v) for k, v in raw.items()},
                (epoch or b"").decode(), int(fence or 0))

    def node_names(self) -> list[str]:
        return [k.decode() for k in self.r.hkeys(self.k.nodes)]

    def usage(self) -> tuple[dict[str, int], dict[str, int]]:
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.k.usage_memory)
        pipe.hgetall(self.k.usage_cpu)
        mem, cpu = pipe.execute()
        return ({k.decode(): int(v) for k, v in mem.items()}, {k.decode(): int(v) for k, v in cpu.items()})

    # -- pods -----------------------------------------------------------------------------

    def _call(self, mode: str, pod: PodRecord, expect_version: str = "", source: str = "",
              expect_masters: str = "") -> RecordResult:
        status, detail = self._apply(args=[
            self.p, pod.key, mode, pod.uid, pod.node, pod.memory, pod.cpu, pod.phase,
            pod.cluster, pod.shard, pod.role, expect_version, f"{time.time():.3f}", source, pod.ip,
            BIND_CONFIRM_GRACE, expect_masters, pod.scheduler])
        status, detail = status.decode(), detail.decode()
        return RecordResult(ok=status == "ok", status=status, detail=detail)

    def upsert_pod(self, pod: PodRecord, source: str = "sync") -> None:
        """Unconditional write: what the API server reports is the truth."""
        self._call("upsert", pod, source=source)

    def delete_pod(self, namespace: str, name: str, uid: str = "") -> bool:
        """Delete if the stored pod has this uid (a late delete of an older pod of the same
        name must not remove its successor); uid "" deletes whatever is there."""
        return self._call("delete", PodRecord(namespace=namespace, name=name, uid=uid)).ok

    def record_placement(self, pod: PodRecord, expect_version: str = "", expect_masters: str = "") -> RecordResult:
        """Check-and-record, atomically: refuse when another copy of the pod's shard is on
        pod.node, or (with expect_version) when the shard changed since it was read, or (with
        expect_masters, a master's bind) when its cluster's masters did."""
        return self._call("record", pod, expect_version=expect_version, source="placement",
                          expect_masters=expect_masters)

    def upsert_pods(self, pods: Iterable[PodRecord], source: str = "load", batch: int = 500) -> int:
        count = 0
        pipe = self.r.pipeline(transaction=False)
        for pod in pods:
            self._apply(args=[self.p, pod.key, "upsert", pod.uid, pod.node, pod.memory, pod.cpu,
                              pod.phase, pod.cluster, pod.shard, pod.role, "", f"{time.time():.3f}",
                              source, pod.ip, BIND_CONFIRM_GRACE, "", pod.scheduler], client=pipe)
            count += 1
            if count % batch == 0:
                pipe.execute()
        pipe.execute()
        return count

    def reserve(self, pod_key: str, cluster: str, shard: str, node: str, role: str, ttl: float) -> bool:
        """Note the node a pod will likely be bound to, as a copy that expires: a sibling's
        filter, which may run before this pod's bind arrives, then avoids its domain. Never
        overwrites a real placement; the bind's record replaces it."""
        expiry = int((time.time() + ttl) * 1000)
        value = f"{node}\t{role}\t{expiry}"
        pipe = self.r.pipeline(transaction=False)  # one round trip: the shard's and the cluster's
        self._reserve(keys=[self.k.shard(cluster, shard)], args=[pod_key, value], client=pipe)
        self.reserve_cluster(pod_key, cluster, value, ttl, client=pipe)
        return bool(pipe.execute()[0])

    def reserve_cluster(self, pod_key: str, cluster: str, value: str, ttl: float, client: Any = None) -> Any:
        """The pod in flight in its cluster's reservations (P creserve:), so a sibling of any
        shard counts it toward the cluster's pods and masters until it is placed; `value` is
        a reservation entry "node\trole\texpiry_ms"."""
        now_ms = int(time.time() * 1000)
        return self._reserve_cluster(keys=[self.k.cluster_reservations(cluster), self.k.pod(pod_key)],
                                     args=[pod_key, value, now_ms, max(1, int(ttl * 1000))],
                                     client=client or self.r)

    def release_reservation(self, pod_key: str, cluster: str, shard: str) -> bool:
        """Drop the pod's reservation (its bind was refused: it must not block the sibling that
        won); a real placement is never touched."""
        pipe = self.r.pipeline(transaction=False)  # the shard's reservation and the cluster's
        self._release(keys=[self.k.shard(cluster, shard)], args=[pod_key], client=pipe)
        pipe.hdel(self.k.cluster_reservations(cluster), pod_key)  # only in-flight entries live there
        return bool(pipe.execute()[0])

    def set_live_roles(self, cluster: str, roles: Mapping[str, str]) -> int:
        """Roles seen in the live topology ("ns/name" -> master|replica), which from now on
        override the pods' role labels in every index (a promoted replica counts as a
        master). Each affected stored pod is re-applied inside the write script, so nothing
        else of it (node, IP) changes and a concurrent delete wins. Returns how many."""
        key = self.k.live_roles(cluster)
        before = {k.decode() for k in self.r.hkeys(key)}
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(key)
        if roles:
            pipe.hset(key, mapping=dict(roles))
        pipe.execute()
        touched = 0
        for pod_key in sorted(before | set(roles)):
            namespace, _, name = pod_key.partition("/")
            touched += self._call("relabel", PodRecord(namespace=namespace, name=name)).ok
        return touched

    def remember_filter(self, pod_key: str, memory: FilterMemory, ttl: float = FILTER_MEMORY_TTL) -> None:
        """What a pod's filter saw, for the bind-time re-check (P seen:<ns>/<name>, expiring)."""
        self.r.set(self.k.seen(pod_key), memory.encode(), px=int(ttl * 1000))

    def pod_keys(self) -> list[str]:
        """Every stored pod as "ns/name" (a SCAN: for relists, not for decisions)."""
        return [self.k.pod_key(k.decode()) for k in self.r.scan_iter(match=self.k.pod_pattern, count=SCAN_COUNT)]

    def pod(self, namespace: str, name: str) -> dict[str, str] | None:
        """The stored hash as is, bookkeeping (source, updated) included."""
        raw = self.r.hgetall(self.k.pod(f"{namespace}/{name}"))
        return {k.decode(): v.decode() for k, v in raw.items()} or None

    def pod_record(self, namespace: str, name: str) -> PodRecord | None:
        stored = self.pod(namespace, name)
        return PodRecord.decode(namespace, name, stored) if stored else None

    def unrecord_placement(self, pod: PodRecord) -> bool:
        """Take back a placement recorded for pod.node, if the stored pod is still there by
        that record (source placement): a watch event since then is the truth and stays."""
        stored = self.pod(pod.namespace, pod.name)
        if not stored or stored.get("node") != pod.node or stored.get("source") != "placement":
            return False
        self.upsert_pod(replace(pod, node=""), source="unbind")
        return True

    def shard_state(self, cluster: str, shard: str | None, counts: bool = True) -> ShardState:
        """The shard's copies and version, and (`counts`) the cluster's pods and masters per
        node with its pods in flight (P creserve:), which scores and the masters rule need:
        one atomic read, one command (scripts.SHARD_READ)."""
        epoch_b, fence_b, raw, v, pods_raw, masters_raw, reserved_raw, mv = self._shard_read(
            args=[self.p, cluster, shard or "", "1" if shard is not None else "0", "1" if counts else "0"])
        epoch, fence = epoch_b.decode(), int(fence_b)
        copies: tuple[Copy, ...] = ()
        version = ""
        now_ms = time.time() * 1000
        if shard is not None:
            copies = tuple(c for c in (parse_copy(k.decode(), val.decode(), now_ms) for k, val in _pairs(raw)) if c)
            version = v.decode()
        if not counts:
            return ShardState(copies=copies, version=version, counts=ClusterCounts(), epoch=epoch, fence=fence)
        pods = {k.decode(): n for k, val in _pairs(pods_raw) if (n := int(val)) > 0}
        masters = {k.decode(): n for k, val in _pairs(masters_raw) if (n := int(val)) > 0}
        reserved = tuple(c for c in (parse_copy(k.decode(), val.decode(), now_ms) for k, val in _pairs(reserved_raw))
                         if c and c.reserved)
        return ShardState(copies=copies, version=version, counts=ClusterCounts(pods, masters, reserved), epoch=epoch,
                          masters_version=mv.decode(), fence=fence)

    def cluster_pod_ips(self, cluster: str) -> dict[str, str]:
        """The placed pods of a cluster with their IPs ("ns/name" -> ip), to find its Redis."""
        keys: list[str] = []
        head = self.k.shard_pattern_of(cluster)
        for shard_key in self.r.scan_iter(match=head, count=1000):
            keys.extend(k.decode() for k in self.r.hkeys(shard_key))
        pipe = self.r.pipeline(transaction=False)
        for key in keys:
            pipe.hget(self.k.pod(key), "ip")
        return {k: ip.decode() for k, ip in zip(keys, pipe.execute()) if ip}

    def clusters(self) -> list[str]:
        return sorted(m.decode() for m in self.r.smembers(self.k.clusters))

    # -- whole-state reads, for reports and preemption (not for the decisions' hot path) ---

    def shard_copies(self, now_ms: float) -> dict[tuple[str, str], tuple[Copy, ...]]:
        """Every shard hash's entries as copies ((cluster, shard) -> copies): one SCAN, one
        pipelined read. `now_ms` drops expired reservations (0 keeps every entry)."""
        found = sorted({ident for raw in self.r.scan_iter(match=self.k.shard_pattern, count=SCAN_COUNT)
                        if (ident := self.k.shard_id(raw.decode())) is not None})
        if not found:
            return {}
        pipe = self.r.pipeline(transaction=True)
        for cluster, shard in found:
            pipe.hgetall(self.k.shard(cluster, shard))
        return {ident: tuple(c for c in (parse_copy(k.decode(), v.decode(), now_ms) for k, v in raw.items()) if c)
                for ident, raw in zip(found, pipe.execute())}

    def pod_fields(self, pod_keys: Iterable[str], field: str) -> dict[str, str]:
        """One field of each stored pod ("ns/name" -> value; pods without it left out)."""
        keys = list(pod_keys)
        if not keys:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for key in keys:
            pipe.hget(self.k.pod(key), field)
        return {key: value.decode() for key, value in zip(keys, pipe.execute()) if value is not None}

    def inventory_stamp(self) -> tuple[bytes | None, ...]:
        """What moves whenever the inventory a report reads changes: the epoch, the write fence
        (every pod write: placements, usage, roles, clusters) and the node generation."""
        pipe = self.r.pipeline(transaction=True)
        pipe.get(self.k.epoch)
        pipe.get(self.k.fence)
        pipe.get(self.k.node_generation)
        return tuple(pipe.execute())

    def summary(self) -> StoreSummary:
        """The cluster-wide hashes a report starts from, read atomically."""
        pipe = self.r.pipeline(transaction=True)
        pipe.smembers(self.k.clusters)
        pipe.get(self.k.node_generation)
        pipe.hgetall(self.k.nodes)
        pipe.hgetall(self.k.usage_memory)
        pipe.hgetall(self.k.usage_cpu)
        pipe.hgetall(self.k.meta)
        clusters, gen, nodes, mem, cpu, meta = pipe.execute()
        return StoreSummary(
            clusters={c.decode() for c in clusters}, node_generation=int(gen or 0),
            nodes={k.decode(): NodeRecord.decode(k.decode(), v) for k, v in nodes.items()},
            usage_memory={k.decode(): int(v) for k, v in mem.items()},
            usage_cpu={k.decode(): int(v) for k, v in cpu.items()},
            meta={k.decode(): v.decode() for k, v in meta.items()})

    # -- live topologies (state/live.py encodes them) ---------------------------------------

    def put_live(self, cluster: str, raw: bytes) -> None:
        self.r.set(self.k.live(cluster), raw)

    def live(self, clusters: Iterable[str]) -> dict[str, bytes]:
        """The stored live topologies of `clusters` (those that have one)."""
        return self._per_cluster(self.k.live, clusters)

    def _per_cluster(self, key: Callable[[str], str], clusters: Iterable[str]) -> dict[str, bytes]:
        """The value under key(cluster) of each of `clusters` that has one, in one round trip."""
        names = list(clusters)
        if not names:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for cluster in names:
            pipe.get(key(cluster))
        return {c: raw for c, raw in zip(names, pipe.execute()) if raw}

    # -- the keeper's memory (state/keeper_store.py) -----------------------------------------

    def put_keeper(self, cluster: str, raw: bytes) -> None:
        self.r.set(self.k.keeper(cluster), raw)

    def keeper(self, clusters: Iterable[str]) -> dict[str, bytes]:
        """The keeper's stored entries of `clusters` (those that have one)."""
        return self._per_cluster(self.k.keeper, clusters)

    def keeper_steps(self, since: float) -> tuple[float, ...]:
        """Times of the keeper's steps since `since` (older ones are dropped)."""
        self.r.zremrangebyscore(self.k.keeper_steps, "-inf", f"({since}")
        return tuple(float(score) for _, score in self.r.zrange(self.k.keeper_steps, 0, -1, withscores=True))

    def add_keeper_step(self, step_id: str, at: float) -> None:
        self.r.zadd(self.k.keeper_steps, {step_id: at})

    # -- the syncers' leader lock (state/lock.py) --------------------------------------------

    def take_lock(self, identity: str, ttl_ms: int) -> bool:
        return bool(self.r.set(self.k.leader, identity, nx=True, px=ttl_ms))

    def renew_lock(self, identity: str, ttl_ms: int) -> bool:
        """Extend the lock only while `identity` holds it (compare-and-expire)."""
        return bool(self._lock_renew(keys=[self.k.leader], args=[identity, ttl_ms]))

    def release_lock(self, identity: str) -> None:
        self._lock_release(keys=[self.k.leader], args=[identity])

    def lock_holder(self) -> str | None:
        value = self.r.get(self.k.leader)
        return value.decode() if value else None

    # -- bookkeeping ----------------------------------------------------------------------

    def mark_loaded(self, source: str, **facts: Any) -> None:
        self.r.hset(self.k.meta, mapping={"loaded_at": f"{time.time():.3f}", "source": source,
                                              **{k: str(v) for k, v in facts.items()}})

    def mark_epoch(self, by: str, **counts: int) -> str:
        """Mark the state whole: call LAST, once a complete state is written (a load, the
        syncer's full list). Returns the epoch written (its JSON, as readers compare it)."""
        value = orjson.dumps({"id": uuid.uuid4().hex, "at": round(time.time(), 3), "by": by,
                              **counts}).decode()
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(self.k.meta, "invalidated")
        pipe.set(self.k.epoch, value)
        pipe.execute()
        return value

    def epoch(self) -> str:
        """The current epoch's JSON, "" when missing (emptied, replaced, never loaded)."""
        return (self.r.get(self.k.epoch) or b"").decode()

    def epoch_and_fence(self) -> tuple[str, int]:
        """The epoch and the write fence, read atomically (state/fence.py)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.get(self.k.epoch)
        pipe.get(self.k.fence)
        epoch, fence = pipe.execute()
        return (epoch or b"").decode(), int(fence or 0)

    def bind_reads(self, namespace: str, name: str) -> tuple[str, int, FilterMemory | None, PodRecord | None]:
        """What a bind reads before its shard, in one round trip: the epoch and the fence
        (atomically, as epoch_and_fence), the pod's filter memory and its stored record."""
        epoch, fence, seen, raw = self._bind_read(args=[self.p, f"{namespace}/{name}"])
        stored = {raw[i].decode(): raw[i + 1].decode() for i in range(0, len(raw), 2)}
        return (epoch.decode(), int(fence), FilterMemory.decode(seen) if seen else None,
                PodRecord.decode(namespace, name, stored) if stored else None)

    def invalidate_epoch(self, epoch: str, reason: str) -> bool:
        """Take `epoch` away (if it is still the current one) and note why in P meta: the state
        is then not whole for every process and replica, as an emptied Redis is, until `load`
        or the syncer's relist writes a new one."""
        return bool(self._invalidate(keys=[self.k.epoch, self.k.meta], args=[epoch, reason]))

    def meta(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.r.hgetall(self.k.meta).items()}

    def clear(self) -> int:
        """Delete every key under the prefix (a fresh load replaces, never merges)."""
        deleted = 0
        for batch in _chunks(self.r.scan_iter(match=self.k.everything, count=1000), 500):
            deleted += self.r.delete(*batch)
        return deleted

    def ping(self) -> bool:
        return bool(self.r.ping())

    def close(self) -> None:
        self.r.close()


def _chunks(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _pairs(flat: list[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """A script's HGETALL (a flat field, value, ... list) as (field, value) pairs."""
    return zip(flat[::2], flat[1::2])
