"""The live topologies kept in the store (P live:<cluster>, state/schema.py): one string per
cluster, written whole, so a reader never sees half a refresh. No TTL: the report shows its
age, and an old view is better evidence than none. A failed fetch records its error next to
the last good view (or alone, with no nodes, when there is none), so the report says why live
data is old or missing. A good view also sets the store's live roles, which the decisions use
from then on."""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable

import orjson

from extender.analysis.topology import KIND_CLUSTER, LiveNode, LiveTopology
from extender.state.store import RedisStore


def store_live(store: RedisStore, topology: LiveTopology) -> None:
    """Store a fetched topology. A failed fetch keeps the last good view (with its own, older
    fetched_at, so its age shows) and only records the error next to it."""
    if topology.error and not topology.nodes:
        previous = load_live(store, topology.cluster)
        if previous is not None and previous.nodes:
            topology = replace(previous, error=topology.error)
    store.put_live(topology.cluster, orjson.dumps(topology.to_json()))
    if topology.nodes and not topology.error:  # the decisions use live roles from now on
        roles = {n.pod: n.role for n in topology.nodes if n.pod and n.role in ("master", "replica")
                 and not _deposed(topology, n)}
        store.set_live_roles(topology.cluster, roles)


def _deposed(topology: LiveTopology, node: LiveNode) -> bool:
    """A Redis Cluster master flagged failed and serving no slot: a replica took its slots over
    and it returns, if ever, as a replica. Its "master" would count a dead process as a master
    of its node and zone (and, once its StatefulSet recreates the pod under the same name, the
    new pod too), so it sets no live role."""
    return topology.kind == KIND_CLUSTER and node.role == "master" and node.health != "online" and not node.slots


def load_live(store: RedisStore, cluster: str) -> LiveTopology | None:
    return load_lives(store, [cluster]).get(cluster)


def load_lives(store: RedisStore, clusters: Iterable[str]) -> dict[str, LiveTopology]:
    """The stored live topologies of `clusters` (a corrupt entry is as good as none: the report
    shows no live view)."""
    found = {}
    for cluster, raw in store.live(clusters).items():
        try:
            found[cluster] = LiveTopology.from_json(orjson.loads(raw))
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError):
            continue
    return found
