"""The state's Lua scripts. Pod writes go through one script (APPLY_POD) that takes the old
record out of every index and puts the new one in, so indexes never drift, whoever writes
(load, watch, bind, several replicas). Key names come from schema.lua_prelude()."""
from __future__ import annotations

from extender.state.schema import lua_prelude

APPLY_POD = lua_prelude() + r"""
local P, key_id, mode = ARGV[1], ARGV[2], ARGV[3]
local podkey = P .. K.pod .. key_id
local o = redis.call('HMGET', podkey, 'uid', 'node', 'mem', 'cpu', 'phase', 'cluster', 'shard', 'role',
                     'lrole', 'ip', 'source', 'updated')
local new = {uid=ARGV[4], node=ARGV[5], mem=ARGV[6], cpu=ARGV[7], phase=ARGV[8],
             cluster=ARGV[9], shard=ARGV[10], lrole=ARGV[11]}
local expect_version, now, source, ip = ARGV[12], ARGV[13], ARGV[14], ARGV[15] or ''
local expect_masters = ARGV[17] or ''
local sched = ARGV[18] or ''  -- spec.schedulerName from the API (sync, load); a bind's record has none
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
  local live = redis.call('HGET', P .. K.live_roles .. new.cluster, key_id)
  if live and live ~= '' then new.role = live end
end

if mode == 'record' and new.shard ~= '' then
  -- the check of check-and-record: the node rule, and the caller's view of the shard
  if expect_version ~= '' then
    local v = redis.call('GET', P .. K.shard_version .. new.cluster .. SEP .. new.shard) or '0'
    if v ~= expect_version then return {'stale', v} end
  end
  if expect_masters ~= '' then  -- a master: the caller's view of where its cluster's masters are
    local v = redis.call('GET', P .. K.masters_version .. new.cluster) or '0'
    if v ~= expect_masters then return {'stale', v} end
  end
  local copies = redis.call('HGETALL', P .. K.shard .. new.cluster .. SEP .. new.shard)
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
  -- (never "-0", which HINCRBY refuses: a pod without requests must be movable too)
  local mem, cpu = tonumber(o[3] or '0') or 0, tonumber(o[4] or '0') or 0
  if mem ~= 0 then redis.call('HINCRBY', P .. K.usage_memory, o[2], -mem) end
  if cpu ~= 0 then redis.call('HINCRBY', P .. K.usage_cpu, o[2], -cpu) end
  if o[6] and o[6] ~= '' then
    redis.call('HINCRBY', P .. K.cluster_pods .. o[6], o[2], -1)
    if o[8] == 'master' then redis.call('HINCRBY', P .. K.cluster_masters .. o[6], o[2], -1) end
  end
end
if mode ~= 'delete' and active(new.node, new.phase) then
  redis.call('HINCRBY', P .. K.usage_memory, new.node, tonumber(new.mem))
  redis.call('HINCRBY', P .. K.usage_cpu, new.node, tonumber(new.cpu))
  if new.cluster ~= '' then
    redis.call('HINCRBY', P .. K.cluster_pods .. new.cluster, new.node, 1)
    if new.role == 'master' then redis.call('HINCRBY', P .. K.cluster_masters .. new.cluster, new.node, 1) end
  end
end

-- the cluster's masters version: moved only when a master really appears, moves or goes
local oldm, newm = '', ''
if o[1] and active(o[2], o[5]) and o[6] and o[6] ~= '' and o[8] == 'master' then oldm = o[6] .. '\t' .. o[2] end
if mode ~= 'delete' and active(new.node, new.phase) and new.cluster ~= '' and new.role == 'master' then
  newm = new.cluster .. '\t' .. new.node
end
if oldm ~= newm then
  if o[6] and o[6] ~= '' then redis.call('INCR', P .. K.masters_version .. o[6]) end
  if new.cluster ~= '' and new.cluster ~= o[6] then redis.call('INCR', P .. K.masters_version .. new.cluster) end
end

-- the shard's copies: touched (and its version moved) only when the copy really changes,
-- so status updates of a sibling never make a concurrent check-and-record stale
local oldk, oldv, newk, newv
if o[1] and o[6] and o[6] ~= '' and o[7] and o[7] ~= '' and active(o[2], o[5]) then
  oldk, oldv = o[6] .. SEP .. o[7], o[2] .. '\t' .. (o[8] or '')
end
if mode ~= 'delete' and new.cluster ~= '' and new.shard ~= '' and active(new.node, new.phase) then
  newk, newv = new.cluster .. SEP .. new.shard, new.node .. '\t' .. new.role
end
if oldk and oldk ~= newk then
  if redis.call('HDEL', P .. K.shard .. oldk, key_id) == 1 then redis.call('INCR', P .. K.shard_version .. oldk) end
end
if newk and (oldk ~= newk or oldv ~= newv) then
  redis.call('HSET', P .. K.shard .. newk, key_id, newv)
  redis.call('INCR', P .. K.shard_version .. newk)
end
if mode == 'delete' and not oldk and o[6] and o[6] ~= '' and o[7] and o[7] ~= '' then
  redis.call('HDEL', P .. K.shard .. o[6] .. SEP .. o[7], key_id)  -- the reservation of a pod that never ran
end

-- the bind hand-off of the cluster's reservation: a placed (or deleted) pod is no longer in flight
if mode == 'delete' then
  if o[6] and o[6] ~= '' then redis.call('HDEL', P .. K.cluster_reservations .. o[6], key_id) end
elseif new.cluster ~= '' and active(new.node, new.phase) then
  redis.call('HDEL', P .. K.cluster_reservations .. new.cluster, key_id)
end

redis.call('INCR', P .. K.fence)  -- the write fence: only grows (state/fence.py)
if mode == 'delete' then
  redis.call('DEL', podkey)
else
  redis.call('HSET', podkey, 'uid', new.uid, 'node', new.node, 'mem', new.mem, 'cpu', new.cpu,
             'phase', new.phase, 'cluster', new.cluster, 'shard', new.shard, 'role', new.role,
             'lrole', new.lrole, 'updated', updated, 'source', source, 'ip', ip)
  if sched ~= '' then
    redis.call('HSET', podkey, 'sched', sched)
  elseif o[1] ~= new.uid then  -- another pod of that name: its predecessor's scheduler is not its own
    redis.call('HDEL', podkey, 'sched')
  end
  if new.cluster ~= '' then redis.call('SADD', P .. K.clusters, new.cluster) end
end
if o[1] and active(o[2], o[5]) then  -- what the old record counted, for the caller's cached usage
  return {'ok', o[2] .. '\t' .. (o[3] or '0') .. '\t' .. (o[4] or '0')}
end
return {'ok', ''}
"""


LOCK_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
LOCK_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"


RESERVE = r"""
local skey, key_id, value = KEYS[1], ARGV[1], ARGV[2]
local cur = redis.call('HGET', skey, key_id)
if cur then
  local a = string.find(cur, '\t', 1, true)
  if a and not string.find(cur, '\t', a + 1, true) then return 0 end  -- placed: keep the truth
end
redis.call('HSET', skey, key_id, value)
return 1
"""


RESERVE_CLUSTER = r"""
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


RELEASE = r"""
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local a = string.find(cur, '\t', 1, true)
if a and string.find(cur, '\t', a + 1, true) then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0  -- placed: keep the truth
"""


INVALIDATE_EPOCH = r"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'invalidated', ARGV[2])
return 1
"""

SHARD_READ = lua_prelude() + r"""
-- One decision's read, atomically and in one command (a MULTI of 8 costs the client several
-- times more to pack and parse): epoch, fence, the shard's copies and version, and (counts)
-- its cluster's pods, masters and reservations per node with the masters version.
local P, cluster, shard, has_shard, counts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local out = {redis.call('GET', P .. K.epoch) or '', redis.call('GET', P .. K.fence) or '0', {}, '0', {}, {}, {}, '0'}
if has_shard == '1' then
  out[3] = redis.call('HGETALL', P .. K.shard .. cluster .. SEP .. shard)
  out[4] = redis.call('GET', P .. K.shard_version .. cluster .. SEP .. shard) or '0'
end
if counts == '1' then
  out[5] = redis.call('HGETALL', P .. K.cluster_pods .. cluster)
  out[6] = redis.call('HGETALL', P .. K.cluster_masters .. cluster)
  out[7] = redis.call('HGETALL', P .. K.cluster_reservations .. cluster)
  out[8] = redis.call('GET', P .. K.masters_version .. cluster) or '0'
end
return out
"""

BIND_READ = lua_prelude() + r"""
-- A bind's first read in one command: epoch, fence, the pod's filter memory and its record.
local P, key_id = ARGV[1], ARGV[2]
return {redis.call('GET', P .. K.epoch) or '', redis.call('GET', P .. K.fence) or '0',
        redis.call('GET', P .. K.seen .. key_id) or '', redis.call('HGETALL', P .. K.pod .. key_id)}
"""
