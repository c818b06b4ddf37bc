"""The key schema of the shared state in Redis, spelled once: the store, its Lua scripts
(through lua_prelude()) and every reader build their keys here.

Key schema (P = key prefix, default "rx:{main}:"). The state's Redis is one instance or a
Sentinel-managed one (see connect()); the scripts compute their keys, so a Redis Cluster is
not supported as the state's store:

  P nodes                   HASH node -> JSON {"labels", "mem", "cpu", "ready"} (rarely changes)
  P gen:nodes               STRING counter, bumped on every node write (cache revalidation)
  P usage:mem / usage:cpu   HASH node -> summed requests of every non-terminal pod on it
  P pod:<ns>/<name>         HASH uid node mem cpu phase cluster shard role (effective) lrole (label)
                            updated source ip sched (spec.schedulerName, from the API)
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
  P meta                    HASH loaded_at, source, nodes, pods; invalidated (why an epoch was taken away)
  P epoch                   STRING JSON {"id", "at", "by", "nodes", "pods"}: written LAST by every
                            writer of a complete state (`load`, the syncer's full list). Missing
                            (Redis emptied, replaced, or a load under way) or different from the
                            epoch a process's tables were built with: the state is not whole, and
                            decisions treat it as unavailable, never as empty (state/snapshot.py)
  P fence                   STRING counter bumped by every write of nodes and pods (never reset by
                            them): it only grows while the state lives, so a read that finds it
                            lower than this process has seen under the same epoch found a state
                            gone back in time (Redis restored from an older snapshot, a failover
                            to a lagging replica): not whole (state/fence.py). `load` and the
                            syncer's relist start a new epoch; `invalidated` in P meta says why an
                            epoch was taken away
  P seen:<ns>/<name>        STRING JSON (FilterMemory): the pod's identity and the domains its
                            last filter could choose from (expires after FILTER_MEMORY_TTL),
                            for the bind-time re-check
  P sync:leader             STRING the syncer holding the leader lock (expires; state/lock.py)
  P liveroles:<cluster>     HASH "<ns>/<name>" -> master|replica seen live in Redis; overrides
                            the pod's role label in every index (state/live.py writes it)
  P live:<cluster>          STRING JSON of the cluster's last live topology (analysis/topology.py's
                            LiveTopology.to_json(); written whole by state/live.py, no TTL)
  P keeper:<cluster>        STRING JSON {"memory", "decision", "at"}: the keeper's memory of the
                            cluster (step pending, last step, drift since) and its last decision,
                            written whole by the sync leader's keeper (state/keeper_store.py)
  P keepersteps             ZSET step id -> unix time of every keeper step in the last minute
                            (the keeper's global rate)

"""
from __future__ import annotations

from dataclasses import dataclass

# The key names under the prefix: the one spelling (Keys and the Lua prelude read these).
PARTS: dict[str, str] = {
    "nodes": "nodes", "node_generation": "gen:nodes", "usage_memory": "usage:mem", "usage_cpu": "usage:cpu",
    "pod": "pod:", "shard": "shard:", "shard_version": "shardv:", "cluster_reservations": "creserve:",
    "cluster_pods": "cpods:", "cluster_masters": "cmasters:", "masters_version": "cmastersv:",
    "clusters": "clusters", "meta": "meta", "epoch": "epoch", "fence": "fence", "seen": "seen:", "leader": "sync:leader",
    "live_roles": "liveroles:", "live": "live:", "keeper": "keeper:", "keeper_steps": "keepersteps",
}
SHARD_SEPARATOR = "|"  # P shard:<cluster>|<shard>: a cluster id never holds "|"


@dataclass(frozen=True)
class Keys:
    """The key schema above as names under one prefix."""

    prefix: str

    def _name(self, part: str, suffix: str = "") -> str:
        return self.prefix + PARTS[part] + suffix

    @property
    def clusters(self) -> str:
        return self._name("clusters")

    @property
    def nodes(self) -> str:
        return self._name("nodes")

    @property
    def node_generation(self) -> str:
        return self._name("node_generation")

    @property
    def usage_memory(self) -> str:
        return self._name("usage_memory")

    @property
    def usage_cpu(self) -> str:
        return self._name("usage_cpu")

    @property
    def meta(self) -> str:
        return self._name("meta")

    @property
    def epoch(self) -> str:
        return self._name("epoch")

    @property
    def fence(self) -> str:
        return self._name("fence")

    @property
    def leader(self) -> str:
        return self._name("leader")

    @property
    def everything(self) -> str:
        """SCAN MATCH pattern of every key under the prefix."""
        return escape_glob(self.prefix) + "*"

    @property
    def shard_pattern(self) -> str:
        """SCAN MATCH pattern of every shard hash."""
        return escape_glob(self._name("shard")) + "*"

    @property
    def pod_pattern(self) -> str:
        """SCAN MATCH pattern of every pod hash."""
        return escape_glob(self._name("pod")) + "*"

    def shard_pattern_of(self, cluster: str) -> str:
        """SCAN MATCH pattern of one cluster's shard hashes."""
        return escape_glob(self._name("shard", cluster + SHARD_SEPARATOR)) + "*"

    def shard(self, cluster: str, shard: str) -> str:
        return self._name("shard", f"{cluster}{SHARD_SEPARATOR}{shard}")

    def shard_version(self, cluster: str, shard: str) -> str:
        return self._name("shard_version", f"{cluster}{SHARD_SEPARATOR}{shard}")

    def shard_id(self, key: str) -> tuple[str, str] | None:
        """(cluster, shard) of a shard hash's key; None for a key that is not one."""
        head = self._name("shard")
        if not key.startswith(head):
            return None
        cluster, sep, shard = key[len(head):].partition(SHARD_SEPARATOR)
        return (cluster, shard) if sep else None

    def pod(self, pod_key: str) -> str:
        return self._name("pod", pod_key)

    def pod_key(self, key: str) -> str:
        """"ns/name" of a pod hash's key."""
        return key[len(self._name("pod")):]

    def cluster_reservations(self, cluster: str) -> str:
        return self._name("cluster_reservations", cluster)

    def cluster_pods(self, cluster: str) -> str:
        return self._name("cluster_pods", cluster)

    def cluster_masters(self, cluster: str) -> str:
        return self._name("cluster_masters", cluster)

    def masters_version(self, cluster: str) -> str:
        return self._name("masters_version", cluster)

    def seen(self, pod_key: str) -> str:
        return self._name("seen", pod_key)

    def live_roles(self, cluster: str) -> str:
        return self._name("live_roles", cluster)

    def live(self, cluster: str) -> str:
        return self._name("live", cluster)

    def keeper(self, cluster: str) -> str:
        return self._name("keeper", cluster)

    @property
    def keeper_steps(self) -> str:
        return self._name("keeper_steps")


def lua_prelude() -> str:
    """The key names for the Lua scripts, which build keys from ARGV's prefix: `K.pod` is
    "pod:", so a script says `P .. K.pod .. id` and never spells a name itself."""
    entries = ", ".join(f"{part}={name!r}" for part, name in PARTS.items())
    return f"local K = {{{entries}}}\nlocal SEP = {SHARD_SEPARATOR!r}\n"


def escape_glob(text: str) -> str:
    """A literal for SCAN MATCH: prefixes and cluster names may hold glob characters."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)

