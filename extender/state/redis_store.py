"""The shared state in Redis: the one module that knows the key schema.

Key schema (P = key prefix, default "rx:{main}:"). The state's Redis is one instance or a
Sentinel-managed one (see connect()); the scripts compute their keys, so a Redis Cluster is
not supported as the state's store:

  P nodes                   HASH node -> JSON {"labels", "mem", "cpu", "ready"} (rarely changes)
  P gen:nodes               STRING counter, bumped on every node write (cache revalidation)
  P usage:mem / usage:cpu   HASH node -> summed requests of every non-terminal pod on it
  P pod:<ns>/<name>         HASH uid node mem cpu phase cluster shard role (effective) lrole (label)
                            updated source ip
                            (every pod, Redis or not: its requests count toward its node)
  P shard:<cluster>|<shard> HASH "<ns>/<name>" -> "<node>\\t<role>" for placed copies, or
                            "<node>\\t<role>\\t<expiry ms>" for a reservation (a pod's likely
                            node noted at prioritize; readers ignore it once expired)
  P shardv:<cluster>|<shard> STRING version, bumped when the shard's copies change
  P creserve:<cluster>      HASH "<ns>/<name>" -> "<node>\t<role>\t<expiry ms>": the cluster's
                            pods in flight (reserved with their shard's reservation, never for a
                            placed pod; taken out when the pod is placed or deleted; expired
                            entries are ignored by readers and pruned by the next reservation).
                            They count toward the cluster's pods and masters (policy/spread.py)
  P cpods:<cluster>         HASH node -> pods of the cluster on it
  P cmasters:<cluster>      HASH node -> masters of the cluster on it
  P cmastersv:<cluster>     STRING version, bumped when a master of the cluster is placed, moves,
                            changes role or goes: a master's bind records with it, so two
                            masters of different shards cannot both take the last fair zone
  P clusters                SET of cluster ids ("ns/name")
  P meta                    HASH loaded_at, source, nodes, pods
  P epoch                   STRING JSON {"id", "at", "by", "nodes", "pods"}: written LAST by every
                            writer of a complete state (`load`, the syncer's full list). Missing
                            (Redis emptied, replaced, or a load under way) or different from the
                            epoch a process's tables were built with: the state is not whole, and
                            decisions treat it as unavailable, never as empty (state/snapshot.py)
  P seen:<ns>/<name>        STRING JSON (FilterMemory): the pod's identity and the domains its
                            last filter could choose from (expires after FILTER_MEMORY_TTL),
                            for the bind-time re-check
  P sync:leader             STRING the syncer holding the leader lock (expires; state/lock.py)
  P liveroles:<cluster>     HASH "<ns>/<name>" -> master|replica seen live in Redis; overrides
                            the pod's role label in every index (state/redis_topology.py writes it)
  P live:<cluster>          STRING JSON of the cluster's last live topology (reports/topology.py's
                            LiveTopology.to_json(); written whole by state/redis_topology.py, no TTL)
  P keeper:<cluster>        STRING JSON {"memory", "decision", "at"}: the keeper's memory of the
                            cluster (pending step, last step, drift since) and its last decision
                            (state/keeper_store.py; written by the sync leader only)
  P keeper:steps            ZSET step id -> unix time of every keeper step (the global rate)

Pod writes go through one Lua script that takes the old record out of every index and puts
the new one in, so indexes never drift, whoever writes (load, watch, bind, several replicas).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

import orjson
import redis

from ..model import ClusterCounts, Copy, PodRequest, Role

TERMINAL_PHASES = ("Succeeded", "Failed")

FILTER_MEMORY_TTL = 600.0
"""Seconds a filter's memory (P seen:) is kept. A bind normally follows its filter within
seconds; ten minutes also covers a slow scheduling cycle, and bounds what a pod that is never
bound leaves behind. A bind without it still checks the node rule atomically."""

BIND_CONFIRM_GRACE = 30.0
"""Seconds a placement recorded at bind (source "placement") outweighs an API event saying the
pod is not placed (same uid). The syncer applies the pod's creation event after the bind when
it lags a burst; taken literally it would unplace the pod (its copy, its master) until the
Binding's own event arrives, and the next sibling's filter would not see it. Bounded, so a
placement whose Binding failed and whose record could not be undone ends."""

LEADER_KEY = "sync:leader"
EPOCH_KEY = "epoch"

_APPLY_POD = r"""
local P, key_id, mode = ARGV[1], ARGV[2], ARGV[3]
local podkey = P .. 'pod:' .. key_id
local o = redis.call('HMGET', podkey, 'uid', 'node', 'mem', 'cpu', 'phase', 'cluster', 'shard', 'role',
                     'lrole', 'ip', 'source', 'updated')
local new = {uid=ARGV[4], node=ARGV[5], mem=ARGV[6], cpu=ARGV[7], phase=ARGV[8],
             cluster=ARGV[9], shard=ARGV[10], lrole=ARGV[11]}
local expect_version, now, source, ip = ARGV[12], ARGV[13], ARGV[14], ARGV[15] or ''
local expect_masters = ARGV[17] or ''
local updated = now

-- an API event older than our bind: nodeName is never unset, so "not placed" for the pod we
-- just recorded (same uid) is news from before the bind (the syncer lags a burst); keep the
-- placement until the API reports it, for BIND_CONFIRM_GRACE seconds at most (a Binding that
-- failed without its record being undone must not hold a node for ever)
if mode == 'upsert' and (source == 'watch' or source == 'list') and new.node == '' and o[1] == new.uid
   and o[2] and o[2] ~= '' and o[11] == 'placement'
   and tonumber(now) - tonumber(o[12] or '0') < tonumber(ARGV[16] or '0') then
  new.node, source, updated = o[2], 'placement', o[12]
end

local function active(node, phase)
  return node and node ~= '' and phase ~= 'Succeeded' and phase ~= 'Failed'
end

if mode == 'delete' then
  if not o[1] then return {'gone', ''} end
  if new.uid ~= '' and o[1] ~= new.uid then return {'gone', o[1]} end
elseif mode == 'relabel' then  -- the stored record again, under the current live roles
  if not o[1] then return {'gone', ''} end
  new = {uid=o[1], node=o[2], mem=o[3], cpu=o[4], phase=o[5], cluster=o[6], shard=o[7],
         lrole=o[9] or o[8]}
  ip, source, updated = o[10] or '', o[11] or 'relabel', o[12] or now
end
new.role = new.lrole  -- the role label, unless Redis itself says otherwise (after a failover)
if mode ~= 'delete' and new.cluster ~= '' then
  local live = redis.call('HGET', P .. 'liveroles:' .. new.cluster, key_id)
  if live and live ~= '' then new.role = live end
end

if mode == 'record' and new.shard ~= '' then
  -- the check of check-and-record: the node rule, and the caller's view of the shard
  if expect_version ~= '' then
    local v = redis.call('GET', P .. 'shardv:' .. new.cluster .. '|' .. new.shard) or '0'
    if v ~= expect_version then return {'stale', v} end
  end
  if expect_masters ~= '' then  -- a master: the caller's view of where its cluster's masters are
    local v = redis.call('GET', P .. 'cmastersv:' .. new.cluster) or '0'
    if v ~= expect_masters then return {'stale', v} end
  end
  local copies = redis.call('HGETALL', P .. 'shard:' .. new.cluster .. '|' .. new.shard)
  for i = 1, #copies, 2 do
    if copies[i] ~= key_id then
      local v = copies[i+1]
      local tab = string.find(v, '\t', 1, true)
      local reserved = string.find(v, '\t', tab + 1, true)  -- reservations never block a bind
      if not reserved and string.sub(v, 1, tab - 1) == new.node then
        return {'conflict', copies[i] .. '\t' .. string.sub(v, tab + 1)}
      end
    end
  end
end

-- counters: take the old record out, put the new one in
if o[1] and active(o[2], o[5]) then
  redis.call('HINCRBY', P .. 'usage:mem', o[2], -tonumber(o[3] or '0'))
  redis.call('HINCRBY', P .. 'usage:cpu', o[2], -tonumber(o[4] or '0'))
  if o[6] and o[6] ~= '' then
    redis.call('HINCRBY', P .. 'cpods:' .. o[6], o[2], -1)
    if o[8] == 'master' then redis.call('HINCRBY', P .. 'cmasters:' .. o[6], o[2], -1) end
  end
end
if mode ~= 'delete' and active(new.node, new.phase) then
  redis.call('HINCRBY', P .. 'usage:mem', new.node, tonumber(new.mem))
  redis.call('HINCRBY', P .. 'usage:cpu', new.node, tonumber(new.cpu))
  if new.cluster ~= '' then
    redis.call('HINCRBY', P .. 'cpods:' .. new.cluster, new.node, 1)
    if new.role == 'master' then redis.call('HINCRBY', P .. 'cmasters:' .. new.cluster, new.node, 1) end
  end
end

-- the cluster's masters version: moved only when a master really appears, moves or goes
local oldm, newm = '', ''
if o[1] and active(o[2], o[5]) and o[6] and o[6] ~= '' and o[8] == 'master' then oldm = o[6] .. '\t' .. o[2] end
if mode ~= 'delete' and active(new.node, new.phase) and new.cluster ~= '' and new.role == 'master' then
  newm = new.cluster .. '\t' .. new.node
end
if oldm ~= newm then
  if o[6] and o[6] ~= '' then redis.call('INCR', P .. 'cmastersv:' .. o[6]) end
  if new.cluster ~= '' and new.cluster ~= o[6] then redis.call('INCR', P .. 'cmastersv:' .. new.cluster) end
end

-- the shard's copies: touched (and its version moved) only when the copy really changes,
-- so status updates of a sibling never make a concurrent check-and-record stale
local oldk, oldv, newk, newv
if o[1] and o[6] and o[6] ~= '' and o[7] and o[7] ~= '' and active(o[2], o[5]) then
  oldk, oldv = o[6] .. '|' .. o[7], o[2] .. '\t' .. (o[8] or '')
end
if mode ~= 'delete' and new.cluster ~= '' and new.shard ~= '' and active(new.node, new.phase) then
  newk, newv = new.cluster .. '|' .. new.shard, new.node .. '\t' .. new.role
end
if oldk and oldk ~= newk then
  if redis.call('HDEL', P .. 'shard:' .. oldk, key_id) == 1 then redis.call('INCR', P .. 'shardv:' .. oldk) end
end
if newk and (oldk ~= newk or oldv ~= newv) then
  redis.call('HSET', P .. 'shard:' .. newk, key_id, newv)
  redis.call('INCR', P .. 'shardv:' .. newk)
end
if mode == 'delete' and not oldk and o[6] and o[6] ~= '' and o[7] and o[7] ~= '' then
  redis.call('HDEL', P .. 'shard:' .. o[6] .. '|' .. o[7], key_id)  -- the reservation of a pod that never ran
end

-- the bind hand-off of the cluster's reservation: a placed (or deleted) pod is no longer in flight
if mode == 'delete' then
  if o[6] and o[6] ~= '' then redis.call('HDEL', P .. 'creserve:' .. o[6], key_id) end
elseif new.cluster ~= '' and active(new.node, new.phase) then
  redis.call('HDEL', P .. 'creserve:' .. new.cluster, key_id)
end

if mode == 'delete' then
  redis.call('DEL', podkey)
else
  redis.call('HSET', podkey, 'uid', new.uid, 'node', new.node, 'mem', new.mem, 'cpu', new.cpu,
             'phase', new.phase, 'cluster', new.cluster, 'shard', new.shard, 'role', new.role,
             'lrole', new.lrole, 'updated', updated, 'source', source, 'ip', ip)
  if new.cluster ~= '' then redis.call('SADD', P .. 'clusters', new.cluster) end
end
if o[1] and active(o[2], o[5]) then  -- what the old record counted, for the caller's cached usage
  return {'ok', o[2] .. '\t' .. (o[3] or '0') .. '\t' .. (o[4] or '0')}
end
return {'ok', ''}
"""


_LOCK_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
_LOCK_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"


_RESERVE = r"""
local skey, key_id, value = KEYS[1], ARGV[1], ARGV[2]
local cur = redis.call('HGET', skey, key_id)
if cur then
  local a = string.find(cur, '\t', 1, true)
  if a and not string.find(cur, '\t', a + 1, true) then return 0 end  -- placed: keep the truth
end
redis.call('HSET', skey, key_id, value)
return 1
"""


_RESERVE_CLUSTER = r"""
local ckey, podkey, key_id, value, now, ttl = KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local placed = redis.call('HMGET', podkey, 'node', 'phase')
if placed[1] and placed[1] ~= '' and placed[2] ~= 'Succeeded' and placed[2] ~= 'Failed' then
  redis.call('HDEL', ckey, key_id)
  return 0  -- placed: the cluster counts hold it already
end
local all = redis.call('HGETALL', ckey)
for i = 1, #all, 2 do
  local expiry = string.match(all[i + 1], '\t(%d+)$')
  if all[i] ~= key_id and (not expiry or tonumber(expiry) < now) then redis.call('HDEL', ckey, all[i]) end
end
redis.call('HSET', ckey, key_id, value)
redis.call('PEXPIRE', ckey, ttl)
return 1
"""


_RELEASE = r"""
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local a = string.find(cur, '\t', 1, true)
if a and string.find(cur, '\t', a + 1, true) then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0  -- placed: keep the truth
"""


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


@dataclass(frozen=True)
class PodRecord:
    """A pod as the store keeps it. `node` is "" while it is not placed."""

    namespace: str
    name: str
    uid: str = ""
    node: str = ""
    memory: int = 0
    cpu: int = 0
    phase: str = "Pending"
    cluster: str = ""
    shard: str = ""
    role: str = ""
    ip: str = ""  # status.podIP: where the live topology of its Redis can be read

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, pod: PodRequest, node: str) -> "PodRecord":
        """The record of a pod being scheduled, placed on `node` ("" for not placed)."""
        member = pod.member
        return cls(namespace=pod.namespace, name=pod.name, uid=pod.uid, node=node,
                   memory=pod.memory_request, cpu=pod.cpu_request, phase="Pending",
                   cluster=member.cluster if member else "",
                   shard=(member.shard or "") if member else "",
                   role=member.role.value if member else "")

    @classmethod
    def decode(cls, namespace: str, name: str, fields: Mapping[str, str]) -> "PodRecord":
        """A stored P pod: hash, as strings."""
        return cls(namespace=namespace, name=name, uid=fields.get("uid", ""), node=fields.get("node", ""),
                   memory=int(fields.get("mem") or 0), cpu=int(fields.get("cpu") or 0),
                   phase=fields.get("phase") or "Pending", cluster=fields.get("cluster", ""),
                   shard=fields.get("shard", ""), role=fields.get("role", ""), ip=fields.get("ip", ""))


@dataclass(frozen=True)
class FilterMemory:
    """What a pod's filter saw (P seen:), for the bind-time re-check: the pod's identity and
    the domain paths its filter chose from (policy/bindcheck.py)."""

    cluster: str
    shard: str
    role: str
    uid: str
    memory: int
    cpu: int
    paths: list[tuple[str | None, ...]]

    def encode(self) -> bytes:
        return orjson.dumps({"cluster": self.cluster, "shard": self.shard, "role": self.role, "uid": self.uid,
                             "mem": self.memory, "cpu": self.cpu, "paths": self.paths})

    @classmethod
    def decode(cls, raw: bytes) -> "FilterMemory":
        v = orjson.loads(raw)
        return cls(v["cluster"], v["shard"], v["role"], v.get("uid", ""), int(v.get("mem", 0)),
                   int(v.get("cpu", 0)), [tuple(p) for p in v.get("paths", [])])


@dataclass(frozen=True)
class NodeRecord:
    name: str
    labels: Mapping[str, str]
    memory: int | None
    cpu: int | None
    ready: bool = True

    def encode(self) -> bytes:
        return orjson.dumps({"labels": dict(self.labels), "mem": self.memory, "cpu": self.cpu,
                             "ready": self.ready})

    @classmethod
    def decode(cls, name: str, data: bytes) -> "NodeRecord":
        value = orjson.loads(data)
        return cls(name=name, labels=value.get("labels") or {}, memory=value.get("mem"),
                   cpu=value.get("cpu"), ready=bool(value.get("ready", True)))


@dataclass(frozen=True)
class RecordResult:
    ok: bool
    status: str  # ok | conflict | stale | gone
    detail: str = ""  # conflict: "<ns>/<name>\t<role>" of the copy already on the node; ok:
    # "<node>\t<mem>\t<cpu>" the old record counted ("" when it counted nothing)

    def replaced(self) -> tuple[str, int, int] | None:
        """The node and requests the old record counted (an ok write), if any."""
        node, _, rest = self.detail.partition("\t")
        if not self.ok or not node:
            return None
        mem, _, cpu = rest.partition("\t")
        return node, int(mem or 0), int(cpu or 0)


@dataclass(frozen=True)
class ShardState:
    """What a decision reads of one shard and its cluster, in one round trip."""

    copies: tuple[Copy, ...]
    version: str
    counts: ClusterCounts
    masters_version: str = ""  # P cmastersv: read with the counts ("" without them)
    epoch: str = ""  # P epoch read in the same round trip ("" when missing: the state is not whole)


class RedisStore:
    """Reads and atomic writes of the schema above. Every call may raise redis.RedisError."""

    def __init__(self, client: redis.Redis, prefix: str):
        self.r = client
        self.p = prefix
        self._apply = client.register_script(_APPLY_POD)
        self._reserve = client.register_script(_RESERVE)
        self._reserve_cluster = client.register_script(_RESERVE_CLUSTER)
        self._release = client.register_script(_RELEASE)
        self._lock_renew = client.register_script(_LOCK_RENEW)
        self._lock_release = client.register_script(_LOCK_RELEASE)

    @classmethod
    def from_url(cls, url: str, prefix: str, timeout: float = 0.03) -> "RedisStore":
        return cls(connect(url, timeout), prefix)

    # -- nodes ----------------------------------------------------------------------------

    def put_nodes(self, nodes: Iterable[NodeRecord]) -> int:
        mapping = {n.name: n.encode() for n in nodes}
        if not mapping:
            return 0
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.p + "nodes", mapping=mapping)
        pipe.incr(self.p + "gen:nodes")
        pipe.execute()
        return len(mapping)

    def delete_node(self, name: str) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(self.p + "nodes", name)
        pipe.incr(self.p + "gen:nodes")
        pipe.execute()

    def node_generation(self) -> int:
        return int(self.r.get(self.p + "gen:nodes") or 0)

    def nodes(self) -> tuple[int, dict[str, NodeRecord]]:
        generation, records, _ = self.nodes_with_epoch()
        return generation, records

    def nodes_with_epoch(self) -> tuple[int, dict[str, NodeRecord], str]:
        """The node table, its generation and the state's epoch, read atomically."""
        pipe = self.r.pipeline(transaction=True)
        pipe.get(self.p + "gen:nodes")
        pipe.hgetall(self.p + "nodes")
        pipe.get(self.p + EPOCH_KEY)
        gen, raw, epoch = pipe.execute()
        return (int(gen or 0), {k.decode(): NodeRecord.decode(k.decode(), v) for k, v in raw.items()},
                (epoch or b"").decode())

    def node_names(self) -> list[str]:
        return [k.decode() for k in self.r.hkeys(self.p + "nodes")]

    def usage(self) -> tuple[dict[str, int], dict[str, int]]:
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.p + "usage:mem")
        pipe.hgetall(self.p + "usage:cpu")
        mem, cpu = pipe.execute()
        return ({k.decode(): int(v) for k, v in mem.items()}, {k.decode(): int(v) for k, v in cpu.items()})

    # -- pods -----------------------------------------------------------------------------

    def _call(self, mode: str, pod: PodRecord, expect_version: str = "", source: str = "",
              expect_masters: str = "") -> RecordResult:
        status, detail = self._apply(args=[
            self.p, pod.key, mode, pod.uid, pod.node, pod.memory, pod.cpu, pod.phase,
            pod.cluster, pod.shard, pod.role, expect_version, f"{time.time():.3f}", source, pod.ip,
            BIND_CONFIRM_GRACE, expect_masters])
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
                              source, pod.ip, BIND_CONFIRM_GRACE], client=pipe)
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
        self._reserve(keys=[f"{self.p}shard:{cluster}|{shard}"], args=[pod_key, value], client=pipe)
        self.reserve_cluster(pod_key, cluster, value, ttl, client=pipe)
        return bool(pipe.execute()[0])

    def reserve_cluster(self, pod_key: str, cluster: str, value: str, ttl: float, client: Any = None) -> Any:
        """The pod in flight in its cluster's reservations (P creserve:), so a sibling of any
        shard counts it toward the cluster's pods and masters until it is placed; `value` is
        a reservation entry "node\trole\texpiry_ms"."""
        now_ms = int(time.time() * 1000)
        return self._reserve_cluster(keys=[f"{self.p}creserve:{cluster}", f"{self.p}pod:{pod_key}"],
                                     args=[pod_key, value, now_ms, max(1, int(ttl * 1000))],
                                     client=client or self.r)

    def release_reservation(self, pod_key: str, cluster: str, shard: str) -> bool:
        """Drop the pod's reservation (its bind was refused: it must not block the sibling that
        won); a real placement is never touched."""
        pipe = self.r.pipeline(transaction=False)  # the shard's reservation and the cluster's
        self._release(keys=[f"{self.p}shard:{cluster}|{shard}"], args=[pod_key], client=pipe)
        pipe.hdel(f"{self.p}creserve:{cluster}", pod_key)  # only in-flight entries live there
        return bool(pipe.execute()[0])

    def set_live_roles(self, cluster: str, roles: Mapping[str, str]) -> int:
        """Roles seen in the live topology ("ns/name" -> master|replica), which from now on
        override the pods' role labels in every index (a promoted replica counts as a
        master). Each affected stored pod is re-applied inside the write script, so nothing
        else of it (node, IP) changes and a concurrent delete wins. Returns how many."""
        key = f"{self.p}liveroles:{cluster}"
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
        self.r.set(f"{self.p}seen:{pod_key}", memory.encode(), px=int(ttl * 1000))

    def filter_memory(self, pod_key: str) -> FilterMemory | None:
        raw = self.r.get(f"{self.p}seen:{pod_key}")
        return FilterMemory.decode(raw) if raw else None

    def pod_keys(self) -> list[str]:
        """Every stored pod as "ns/name" (a SCAN: for relists, not for decisions)."""
        head = len(self.p) + len("pod:")
        return [k.decode()[head:] for k in self.r.scan_iter(match=escape_glob(self.p + "pod:") + "*", count=1000)]

    def pod(self, namespace: str, name: str) -> dict[str, str] | None:
        """The stored hash as is, bookkeeping (source, updated) included."""
        raw = self.r.hgetall(f"{self.p}pod:{namespace}/{name}")
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
        one pipelined read."""
        pipe = self.r.pipeline(transaction=True)
        pipe.get(self.p + EPOCH_KEY)
        if shard is not None:
            pipe.hgetall(f"{self.p}shard:{cluster}|{shard}")
            pipe.get(f"{self.p}shardv:{cluster}|{shard}")
        if counts:
            pipe.hgetall(f"{self.p}cpods:{cluster}")
            pipe.hgetall(f"{self.p}cmasters:{cluster}")
            pipe.hgetall(f"{self.p}creserve:{cluster}")
            pipe.get(f"{self.p}cmastersv:{cluster}")
        epoch, *out = pipe.execute()
        epoch = (epoch or b"").decode()
        copies: tuple[Copy, ...] = ()
        version = ""
        now_ms = time.time() * 1000
        if shard is not None:
            raw, v = out[0], out[1]
            out = out[2:]
            copies = tuple(c for c in (parse_copy(k.decode(), val.decode(), now_ms) for k, val in raw.items()) if c)
            version = (v or b"0").decode()
        if not counts:
            return ShardState(copies=copies, version=version, counts=ClusterCounts(), epoch=epoch)
        pods = {k.decode(): int(v) for k, v in out[0].items() if int(v) > 0}
        masters = {k.decode(): int(v) for k, v in out[1].items() if int(v) > 0}
        reserved = tuple(c for c in (parse_copy(k.decode(), val.decode(), now_ms) for k, val in out[2].items())
                         if c and c.reserved)
        return ShardState(copies=copies, version=version, counts=ClusterCounts(pods, masters, reserved), epoch=epoch,
                          masters_version=(out[3] or b"0").decode())

    def cluster_pod_ips(self, cluster: str) -> dict[str, str]:
        """The placed pods of a cluster with their IPs ("ns/name" -> ip), to find its Redis."""
        keys: list[str] = []
        head = escape_glob(f"{self.p}shard:{cluster}|") + "*"
        for shard_key in self.r.scan_iter(match=head, count=1000):
            keys.extend(k.decode() for k in self.r.hkeys(shard_key))
        pipe = self.r.pipeline(transaction=False)
        for key in keys:
            pipe.hget(f"{self.p}pod:{key}", "ip")
        return {k: ip.decode() for k, ip in zip(keys, pipe.execute()) if ip}

    def clusters(self) -> list[str]:
        return sorted(m.decode() for m in self.r.smembers(self.p + "clusters"))

    # -- the syncers' leader lock (state/lock.py) --------------------------------------------

    def take_lock(self, identity: str, ttl_ms: int) -> bool:
        return bool(self.r.set(self.p + LEADER_KEY, identity, nx=True, px=ttl_ms))

    def renew_lock(self, identity: str, ttl_ms: int) -> bool:
        """Extend the lock only while `identity` holds it (compare-and-expire)."""
        return bool(self._lock_renew(keys=[self.p + LEADER_KEY], args=[identity, ttl_ms]))

    def release_lock(self, identity: str) -> None:
        self._lock_release(keys=[self.p + LEADER_KEY], args=[identity])

    def lock_holder(self) -> str | None:
        value = self.r.get(self.p + LEADER_KEY)
        return value.decode() if value else None

    # -- bookkeeping ----------------------------------------------------------------------

    def mark_loaded(self, source: str, **facts: Any) -> None:
        self.r.hset(self.p + "meta", mapping={"loaded_at": f"{time.time():.3f}", "source": source,
                                              **{k: str(v) for k, v in facts.items()}})

    def mark_epoch(self, by: str, **counts: int) -> str:
        """Mark the state whole: call LAST, once a complete state is written (a load, the
        syncer's full list). Returns the epoch written (its JSON, as readers compare it)."""
        value = orjson.dumps({"id": uuid.uuid4().hex, "at": round(time.time(), 3), "by": by,
                              **counts}).decode()
        self.r.set(self.p + EPOCH_KEY, value)
        return value

    def epoch(self) -> str:
        """The current epoch's JSON, "" when missing (emptied, replaced, never loaded)."""
        return (self.r.get(self.p + EPOCH_KEY) or b"").decode()

    def meta(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.r.hgetall(self.p + "meta").items()}

    def clear(self) -> int:
        """Delete every key under the prefix (a fresh load replaces, never merges)."""
        deleted = 0
        for batch in _chunks(self.r.scan_iter(match=escape_glob(self.p) + "*", count=1000), 500):
            deleted += self.r.delete(*batch)
        return deleted

    def ping(self) -> bool:
        return bool(self.r.ping())


# --- for the state's other readers (state/inventory.py, state/redis_topology.py) ---------------

StoreError = redis.RedisError
"""What every call that talks to Redis may raise, the state's store or a live Redis node: the
layers above state catch this name and never import redis."""

Client = redis.Redis
"""A client of the state's Redis (connect()), as the layers above state name its type."""


def parse_copy(pod: str, value: str, now_ms: float) -> Copy | None:
    """The one reading of a shard hash entry: "node\trole" is a placement, "node\trole\texpiry_ms"
    a reservation (`reserved`; None once expired, as is an entry without a node)."""
    node, _, rest = value.partition("\t")
    role, _, expiry = rest.partition("\t")
    if not node or (expiry and float(expiry) < now_ms):
        return None
    return Copy(pod=pod, node=node, role=Role.parse(role), reserved=bool(expiry),
                expires_ms=float(expiry) if expiry else 0.0)


@dataclass(frozen=True)
class Keys:
    """The key schema above as names under one prefix, for the readers outside RedisStore."""

    prefix: str

    @property
    def clusters(self) -> str:
        return self.prefix + "clusters"

    @property
    def nodes(self) -> str:
        return self.prefix + "nodes"

    @property
    def node_generation(self) -> str:
        return self.prefix + "gen:nodes"

    @property
    def usage_memory(self) -> str:
        return self.prefix + "usage:mem"

    @property
    def usage_cpu(self) -> str:
        return self.prefix + "usage:cpu"

    @property
    def meta(self) -> str:
        return self.prefix + "meta"

    @property
    def epoch(self) -> str:
        return self.prefix + EPOCH_KEY

    @property
    def shard_pattern(self) -> str:
        """SCAN MATCH pattern of every shard hash."""
        return escape_glob(self.prefix + "shard:") + "*"

    def shard(self, cluster: str, shard: str) -> str:
        return f"{self.prefix}shard:{cluster}|{shard}"

    def shard_id(self, key: str) -> tuple[str, str] | None:
        """(cluster, shard) of a shard hash's key; None for a key that is not one."""
        head = self.prefix + "shard:"
        if not key.startswith(head):
            return None
        cluster, sep, shard = key[len(head):].partition("|")
        return (cluster, shard) if sep else None

    def pod(self, pod_key: str) -> str:
        return f"{self.prefix}pod:{pod_key}"

    def live(self, cluster: str) -> str:
        return f"{self.prefix}live:{cluster}"

    def keeper(self, cluster: str) -> str:
        return f"{self.prefix}keeper:{cluster}"

    @property
    def keeper_steps(self) -> str:
        return self.prefix + "keeper:steps"


def escape_glob(text: str) -> str:
    """A literal for SCAN MATCH: prefixes and cluster names may hold glob characters."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _chunks(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
