"""The vocabulary of the pure core: frozen records with no I/O behind them.

Everything here is built by the edges (protocol, store, simulate) and read by the policy.
Memory is in bytes and CPU in millicores everywhere, so no layer re-parses quantities.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping

UNKNOWN = None
"""A domain value that is not known (the node lacks the label, or the node is not cached)."""

HOSTNAME_LABEL = "kubernetes.io/hostname"
"""The node level: its value defaults to the node name (kubelet sets it to the hostname)."""

DomainValue = str | None


class Role(str, Enum):
    MASTER = "master"
    REPLICA = "replica"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, word: str | None) -> "Role":
        """The one reading of role words: labels, stored records and Redis replies.

        Operators and Redis name the roles differently (kubedb `slave`, OT `leader`/`follower`,
        Sentinel `primary`); anything else is unknown rather than an error.
        """
        if not word:
            return cls.UNKNOWN
        return _ROLE_WORDS.get(word.strip().lower(), cls.UNKNOWN)


_ROLE_WORDS = {
    "master": Role.MASTER, "primary": Role.MASTER, "leader": Role.MASTER,
    "replica": Role.REPLICA, "slave": Role.REPLICA, "follower": Role.REPLICA,
    "secondary": Role.REPLICA, "unknown": Role.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class Member:
    """Which Redis deployment, shard and role a pod belongs to.

    `cluster` is namespace-qualified ("ns/name") because two namespaces may each run a
    cluster called "cache". `shard` is None when the pod's shard cannot be told: such a pod
    is spread with the rest of its cluster but has no siblings to avoid.
    """

    cluster: str
    shard: str | None
    role: Role = Role.UNKNOWN

    @property
    def cluster_name(self) -> str:
        return self.cluster.split("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Node:
    """What a decision needs of a node that changes rarely: its domains and its size.

    `domains[i]` is the value at level i (see Settings.domains.levels); None is unknown.
    Allocatable figures are None when unknown (node not cached): never rejected on resources.
    What is requested on the node changes with every placement, so it lives apart, in
    Snapshot.requested_*, and the node table can be cached for longer.
    """

    name: str
    domains: tuple[DomainValue, ...]
    allocatable_memory: int | None = None
    allocatable_cpu: int | None = None
    ready: bool = True
    known: bool = True


@dataclass(frozen=True, slots=True)
class Copy:
    """A placed pod of the same shard as the pod being scheduled (a 'copy' of its data)."""

    pod: str  # "namespace/name"
    node: str
    role: Role
    reserved: bool = False  # the pod's likely node, noted at prioritize, not yet bound
    expires_ms: float = 0.0  # a reservation's expiry (epoch ms): the earlier one was made first

    @property
    def pod_name(self) -> str:
        return self.pod.split("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class PodRequest:
    """The pod being scheduled, as the policy sees it."""

    namespace: str
    name: str
    uid: str
    member: Member | None
    memory_request: int = 0
    cpu_request: int = 0
    nominated_node: str = ""  # status.nominatedNodeName: where the scheduler preempted for it

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ClusterCounts:
    """Pods and masters of one cluster per node, the raw material of cluster spread.

    `reserved`: the cluster's pods in flight (scored or filtered, not yet bound), each with
    its likely node and role; they count toward the tallies as if placed (policy/spread.py),
    except the pod being decided itself."""

    pods_per_node: dict[str, int] = field(default_factory=dict)
    masters_per_node: dict[str, int] = field(default_factory=dict)
    reserved: tuple[Copy, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one decision reads, assembled once per request.

    `nodes` maps every known node (candidates and the nodes holding copies); a candidate
    absent from it is unknown at every level. `requested_*` are the summed requests of all
    pods on each node (every pod, not only Redis ones, and including placements this service
    recorded before the API reported them). `level_domains[i]` is the set of known domain
    values at level i across the cluster, to skip levels that cannot spread anything.
    The same nodes and requests as arrays (the policy's fast path) travel beside it, in
    policy/candidates.py's Tables: the model holds records, not numpy.
    """

    level_names: tuple[str, ...]
    nodes: Mapping[str, Node]
    copies: tuple[Copy, ...] = ()
    cluster: ClusterCounts = field(default_factory=ClusterCounts)
    level_domains: tuple[frozenset[str], ...] = ()
    requested_memory: Mapping[str, int] = field(default_factory=dict)
    requested_cpu: Mapping[str, int] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        found = self.nodes.get(name)
        if found is not None:
            return found
        domains = tuple(name if level == HOSTNAME_LABEL else UNKNOWN for level in self.level_names)
        return Node(name=name, domains=domains, known=False)


@dataclass(frozen=True, slots=True)
class Victim:
    """A pod kube-scheduler proposes to evict so that a preemptor fits on `node`.

    `member` is its Redis identity when it is a copy of a shard (from the store, or from its
    labels when the scheduler sent the full pod); None when it is not a Redis pod or unknown.
    `pod` is "namespace/name", "" when the scheduler sent only the UID and the store lacks it.
    """

    uid: str
    node: str
    pod: str = ""
    member: Member | None = None

    @property
    def is_copy(self) -> bool:
        return self.member is not None and self.member.shard is not None


@dataclass(frozen=True, slots=True)
class VictimSet:
    """The victims of one candidate node, as the scheduler proposed them (never added to)."""

    node: str
    victims: tuple[Victim, ...] = ()
    pdb_violations: int = 0

    @property
    def copies(self) -> tuple[Victim, ...]:
        return tuple(v for v in self.victims if v.is_copy)


@dataclass(frozen=True, slots=True)
class CopyHealth:
    """What the live topology says of one copy: `healthy` False when Redis reports it failed
    or loading; `in_sync` the replica's master link (None: not known, assumed in sync)."""

    healthy: bool = True
    in_sync: bool | None = None
