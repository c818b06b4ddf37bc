"""Per-request precomputation shared by filter and score: counts per domain at each level.

Built once from a Snapshot (as kube-scheduler's PodTopologySpread does in PreFilter): a few
counts per domain value, which filter and score turn into per-code tables and gather for all
candidates at once (policy/candidates.py).

Unknown domains are pessimistic: a candidate whose domain at a level is unknown is counted
as holding as many copies as the most crowded domain (or the copies whose own domain is
unknown, if more). It never looks spread, and it is rejected like a conflicting node when
known-good candidates exist.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

from extender.core.domains import level_title
from extender.core.model import Copy, DomainValue, Member, Role, Snapshot


@dataclass
class Tally:
    """Counts per known domain at one level, plus those whose domain is unknown."""

    known: Counter[str] = field(default_factory=Counter)
    unknown: int = 0

    def add(self, value: DomainValue, amount: int = 1) -> None:
        if value is None:
            self.unknown += amount
        else:
            self.known[value] += amount

    def at(self, value: DomainValue) -> int:
        """The count a candidate in `value` would join; pessimistic for unknown."""
        if value is not None:
            return self.known.get(value, 0)
        return max(max(self.known.values(), default=0), self.unknown)


@dataclass
class LevelView:
    index: int
    label: str
    title: str
    active: bool  # more than one known domain: a level that can spread something
    copies: Tally
    cluster_pods: Tally
    masters: Tally
    holders: dict[str, list[Copy]]  # known domain -> the copies in it, for reasons


@dataclass
class Spread:
    member: Member
    levels: list[LevelView]
    copy_nodes: dict[str, list[Copy]]  # node name -> copies on it (the hard node rule)
    masters_per_node: dict[str, int] = field(default_factory=dict)  # the cluster's, in flight included


def own_copies(snapshot: Snapshot, pod_key: str) -> tuple[Copy, ...]:
    """The shard's placed copies, minus the pod itself (a recreated StatefulSet pod keeps its
    name, and its old record may still name the old node until the delete is seen)."""
    return tuple(c for c in snapshot.copies if c.pod != pod_key and c.node)


Counts = Callable[[Mapping[str, int]], Optional[list[tuple[dict[str, int], int]]]]
"""Nodes' counts -> per level (count per known domain, count unknown), or None: the fast
path the caller may hand in (policy/candidates.level_counts over the snapshot's arrays)."""


def build(member: Member, snapshot: Snapshot, pod_key: str, own_node: str | None = None,
          counts: Counts | None = None) -> Spread:
    """Count copies, cluster pods and masters per domain at every level.

    `own_node`: where the store still places this very pod (a stale record); it is taken
    out of the cluster counts so a pod does not avoid its own ghost. The cluster's siblings in
    flight (snapshot.cluster.reserved) count where they are reserved.
    """
    copies = own_copies(snapshot, pod_key)
    pods_per_node = dict(snapshot.cluster.pods_per_node)
    masters_per_node = dict(snapshot.cluster.masters_per_node)
    if own_node and pods_per_node.get(own_node, 0) > 0:
        pods_per_node[own_node] -= 1
        if member.role is Role.MASTER and masters_per_node.get(own_node, 0) > 0:
            masters_per_node[own_node] -= 1
    for sibling in snapshot.cluster.reserved:  # in flight: counted as if bound where reserved
        if sibling.pod == pod_key or not sibling.node:
            continue
        pods_per_node[sibling.node] = pods_per_node.get(sibling.node, 0) + 1
        if sibling.role is Role.MASTER:
            masters_per_node[sibling.node] = masters_per_node.get(sibling.node, 0) + 1

    levels = [LevelView(index, label, level_title(label), False, Tally(), Tally(), Tally(), {})
              for index, label in enumerate(snapshot.level_names)]
    for c in copies:
        for view, value in zip(levels, snapshot.node(c.node).domains):
            view.copies.add(value)
            if value is not None:
                view.holders.setdefault(value, []).append(c)
    # a cluster's hundreds of pods: each node looked up once for every level (the profile's
    # top policy cost when it was once per level and node)
    _tally(snapshot, pods_per_node, [view.cluster_pods for view in levels], counts)
    _tally(snapshot, masters_per_node, [view.masters for view in levels], counts)
    for view in levels:
        index = view.index
        known = snapshot.level_domains[index] if index < len(snapshot.level_domains) else frozenset()
        unseen = sum(1 for h in view.holders if h not in known)  # (no copy of a 5,000-name set)
        view.active = len(known) + unseen > 1

    copy_nodes: dict[str, list[Copy]] = {}
    for c in copies:
        copy_nodes.setdefault(c.node, []).append(c)
    return Spread(member=member, levels=levels, copy_nodes=copy_nodes,
                  masters_per_node={n: c for n, c in masters_per_node.items() if c > 0})


def _tally(snapshot: Snapshot, per_node: dict[str, int], tallies: list[Tally], counts: Counts | None) -> None:
    """Add each node's count to its domain at every level (`tallies`: one per level)."""
    summed = counts(per_node) if counts is not None else None
    if summed is not None and len(summed) == len(tallies):
        for tally, (known, unknown_count) in zip(tallies, summed):
            tally.known.update(known)
            tally.unknown += unknown_count
        return
    knowns = [t.known for t in tallies]
    unknown = [0] * len(tallies)
    for node, count in per_node.items():
        if not count:
            continue
        for i, value in enumerate(snapshot.node(node).domains):
            if value is None:
                unknown[i] += count
            else:
                knowns[i][value] += count
    for tally, extra in zip(tallies, unknown):
        tally.unknown += extra
