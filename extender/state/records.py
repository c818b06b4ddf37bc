"""The records the store keeps and returns, and their codecs: pods, nodes, a filter's
memory, a write's result, a shard's state, and the one reading of a shard hash entry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import orjson

from extender.core.model import ClusterCounts, Copy, PodRequest, Role

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
    scheduler: str = ""  # spec.schedulerName as the API reported it (sync, load); "" when not known

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
                   shard=fields.get("shard", ""), role=fields.get("role", ""), ip=fields.get("ip", ""),
                   scheduler=fields.get("sched", ""))


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
    fence: int = 0  # P fence read in the same round trip (state/fence.py)


def parse_copy(pod: str, value: str, now_ms: float) -> Copy | None:
    """The one reading of a shard hash entry: "node\trole" is a placement, "node\trole\texpiry_ms"
    a reservation (`reserved`; None once expired, as is an entry without a node)."""
    node, _, rest = value.partition("\t")
    role, _, expiry = rest.partition("\t")
    if not node or (expiry and float(expiry) < now_ms):
        return None
    return Copy(pod=pod, node=node, role=Role.parse(role), reserved=bool(expiry),
                expires_ms=float(expiry) if expiry else 0.0)
