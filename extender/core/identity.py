"""Which pods are Redis pods, and of which cluster, shard and role.

Rules, in order, for a pod whose labels match the convention (preset):
1. No cluster label: not a Redis pod; it passes through (all nodes accepted, neutral scores).
2. The shard comes from the shard label; failing that, from the convention (OT: the
   StatefulSet ordinal is the shard; Sentinel presets: one shard "0"); failing that, from the
   StatefulSet ordinal rule: if the cluster declares its shard count (pod label
   `redis-extender.io/shards`, or `cluster_shards` in the configuration), a pod named
   `<anything>-<ordinal>` gets shard `ordinal % shards` and, without a role label, the role
   master for ordinals below the shard count and replica above (the order in which
   `redis-cli --cluster create` assigns roles). Live topology (reports) corrects roles later.
3. Otherwise the shard is unknown: the pod is spread with the rest of its cluster.
The cluster is namespace-qualified: "ns/name".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from extender.core.model import Member, Role
from extender.core.settings import PRESETS, IdentitySettings

_ORDINAL = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class Convention:
    """One operator's way of labelling pods."""

    cluster_label: str
    shard_label: str | None
    role_label: str | None
    match_labels: Mapping[str, str] = field(default_factory=dict)
    strip_suffixes: tuple[str, ...] = ()
    shard_is_ordinal: bool = False
    single_shard: bool = False
    live_role_label: str | None = None  # set by the operator after failovers; wins when present
    primary_index_label: str | None = None  # value "0" means created as the shard's primary


PRESET_CONVENTIONS: dict[str, Convention] = {
    "default": Convention("redis-extender.io/cluster", "redis-extender.io/shard", "redis-extender.io/role"),
    # KubeDB Redis cluster mode: one StatefulSet per shard (<name>-shard<N>); kubedb.com/role
    # (master|slave) follows failovers (kubedb/apimachinery apis/kubedb/constants.go).
    "kubedb": Convention("app.kubernetes.io/instance", "redis.kubedb.com/shard", "kubedb.com/role",
                         match_labels={"app.kubernetes.io/name": "redises.kubedb.com"}),
    # valkey-io/valkey-operator: valkey.io/cluster, valkey.io/shard-index, valkey.io/node-index;
    # node-index 0 is created as the primary and labels are not updated on failover.
    "valkey": Convention("valkey.io/cluster", "valkey.io/shard-index", None,
                         primary_index_label="valkey.io/node-index"),
    # OT-CONTAINER-KIT RedisCluster: StatefulSets <name>-leader / <name>-follower with
    # app=<name>-leader|follower, role=leader|follower; follower k replicates leader k; the
    # healer keeps redis-role=master|slave current after failovers.
    "ot": Convention("app", None, "role", match_labels={"redis_setup_type": "cluster"},
                     strip_suffixes=("-leader", "-follower"), shard_is_ordinal=True,
                     live_role_label="redis-role"),
    # spotahome RedisFailover (Sentinel): one shard, role label flips on failover.
    "spotahome": Convention("redisfailovers.databases.spotahome.com/name", None, "redisfailovers-role",
                            match_labels={"app.kubernetes.io/component": "redis"}, single_shard=True),
    # bitnami redis-cluster chart: identical pods; shards from the ordinal rule.
    "bitnami": Convention("app.kubernetes.io/instance", None, None,
                          match_labels={"app.kubernetes.io/name": "redis-cluster"}),
}

if tuple(PRESET_CONVENTIONS) != PRESETS:  # settings (below this module) names and validates them
    raise RuntimeError(f"identity.PRESET_CONVENTIONS {tuple(PRESET_CONVENTIONS)} != settings.PRESETS {PRESETS}")


def convention(settings: IdentitySettings) -> Convention:
    base = PRESET_CONVENTIONS[settings.preset]
    return Convention(
        cluster_label=settings.cluster_label or base.cluster_label,
        shard_label=settings.shard_label or base.shard_label,
        role_label=settings.role_label or base.role_label,
        match_labels=base.match_labels,
        strip_suffixes=base.strip_suffixes,
        shard_is_ordinal=base.shard_is_ordinal,
        single_shard=base.single_shard,
        live_role_label=base.live_role_label,
        primary_index_label=base.primary_index_label,
    )


class Identifier:
    """Pod labels -> Member, with the convention and shard counts resolved once at start."""

    def __init__(self, settings: IdentitySettings):
        self.rules = convention(settings)
        self.shards_label = settings.shards_label
        self.cluster_shards = dict(settings.cluster_shards)

    def member(self, namespace: str, name: str, labels: Mapping[str, str] | None) -> Member | None:
        labels = labels or {}
        rules = self.rules
        raw_cluster = labels.get(rules.cluster_label)
        if not raw_cluster:
            return None
        if any(labels.get(k) != v for k, v in rules.match_labels.items()):
            return None
        cluster_name = _strip(raw_cluster, rules.strip_suffixes)
        cluster = f"{namespace}/{cluster_name}"
        role = Role.parse(labels.get(rules.live_role_label)) if rules.live_role_label else Role.UNKNOWN
        if role is Role.UNKNOWN and rules.role_label:
            role = Role.parse(labels.get(rules.role_label))
        if role is Role.UNKNOWN and rules.primary_index_label and labels.get(rules.primary_index_label):
            role = Role.MASTER if labels[rules.primary_index_label] == "0" else Role.REPLICA
        ordinal = _ordinal(name)

        shard = labels.get(rules.shard_label) if rules.shard_label else None
        if not shard and rules.single_shard:
            shard = "0"
        if not shard and rules.shard_is_ordinal and ordinal is not None:
            shard = str(ordinal)
        if not shard and ordinal is not None:
            count = self._shard_count(cluster, cluster_name, labels)
            if count:
                shard = str(ordinal % count)
                if role is Role.UNKNOWN:
                    role = Role.MASTER if ordinal < count else Role.REPLICA
        return Member(cluster=cluster, shard=shard or None, role=role)

    def _shard_count(self, cluster: str, cluster_name: str, labels: Mapping[str, str]) -> int | None:
        declared = labels.get(self.shards_label)
        if declared and declared.isdigit() and int(declared) > 0:
            return int(declared)
        return self.cluster_shards.get(cluster) or self.cluster_shards.get(cluster_name)


def _strip(value: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if value.endswith(suffix) and len(value) > len(suffix):
            return value[: -len(suffix)]
    return value


def _ordinal(pod_name: str) -> int | None:
    match = _ORDINAL.search(pod_name)
    return int(match.group(1)) if match else None
