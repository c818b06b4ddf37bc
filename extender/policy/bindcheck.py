"""The bind-time re-check: does the node the scheduler chose still obey the rules?

kube-scheduler binds asynchronously, so a sibling's filter can run before this pod's bind
arrives, and both may pick the same zone. At bind time the rules are evaluated again against
fresh state, over the same choice the pod's filter had: the failure domains of the candidates
that fitted and held no copy ("eligible paths"), each stood for by one stand-in node. If the
chosen node would now be rejected, the bind fails and the scheduler retries the pod, whose
next filter sees the sibling.

Reservations at bind: two siblings that reserved the same domain must not refuse each other
(each bind seeing the other's reservation, both retried, again and again). At bind time a
sibling's reservation counts only if it was made before this pod's own (the earlier expiry,
then the lower pod key; a pod without a live reservation of its own yields to all): exactly one
of them proceeds, and the refused one's reservation is released (engine/decider.py).
The cluster's siblings in flight (ClusterCounts.reserved) obey the same tie-break.
A bind without a filter's memory is checked over every known domain (all_paths).

Masters: a master's bind re-checks rule 4 (fewest masters of its cluster, quorum safety) at
every level above the node, with its cluster's counts read fresh. The scheduler may bind a
master in another zone than the one it was reserved in (its own plugins outweighed the
extender's lead), and a sibling's filter meanwhile counted it in the wrong zone: without this
check the two masters could end in one zone (skew 2). The node level is left to the filter:
the stand-ins stand for domains, not for their nodes.
"""
from __future__ import annotations

from collections import ChainMap
from dataclasses import replace
from typing import Iterable, MutableMapping, Sequence, cast

from extender.core.model import HOSTNAME_LABEL, Copy, DomainValue, Node, PodRequest, Snapshot
from extender.policy.filter import filter_nodes

STANDIN = "\x00eligible-{}"


def recheck(pod: PodRequest, node: str, paths: Sequence[Sequence[DomainValue]], snapshot: Snapshot,
            own_node: str | None = None) -> str | None:
    """None when `node` is still acceptable, else the reason it is not."""
    host = snapshot.level_names.index(HOSTNAME_LABEL) if HOSTNAME_LABEL in snapshot.level_names else -1
    standins = {}
    for i, path in enumerate(paths):
        name = STANDIN.format(i)
        standins[name] = Node(name=name, domains=tuple(name if j == host else v for j, v in enumerate(path)))
    cluster = replace(snapshot.cluster, reserved=contenders(snapshot.cluster.reserved, pod.key))
    # ChainMap writes only to its first map: the snapshot's nodes are read, never written
    nodes = ChainMap(standins, cast(MutableMapping[str, Node], snapshot.nodes))
    fresh = replace(snapshot, nodes=nodes, copies=contenders(snapshot.copies, pod.key),
                    cluster=cluster)
    # Room was judged by the scheduler and the filter; at bind only the spread rules matter.
    result = filter_nodes(replace(pod, memory_request=0), [node, *standins], fresh, own_node, node_masters=False)
    if node in result.accepted:
        return None
    return result.unresolvable.get(node) or result.failed.get(node) or "rejected"


def contenders(copies: Sequence[Copy], pod_key: str) -> tuple[Copy, ...]:
    """The copies (or cluster siblings in flight) a bind must respect: placements, and the
    reservations made before the pod's own (the tie between siblings reserving one domain,
    broken the same way by both)."""
    mine = next((c for c in copies if c.pod == pod_key and c.reserved), None)

    def first(c: Copy) -> bool:
        return mine is None or (c.expires_ms, c.pod) < (mine.expires_ms, mine.pod)

    return tuple(c for c in copies if not c.reserved or c.pod == pod_key or first(c))


def all_paths(nodes: Iterable[Node], levels: Sequence[str]) -> list[tuple[DomainValue, ...]]:
    """The domain paths of every ready node, one per path above the host (the stand-ins of a
    bind without a filter's memory: the choice the filter would have had)."""
    host = list(levels).index(HOSTNAME_LABEL) if HOSTNAME_LABEL in levels else -1
    seen: dict[tuple[DomainValue, ...], None] = {}
    for node in nodes:
        if node.ready:
            seen.setdefault(tuple(None if j == host else v for j, v in enumerate(node.domains)), None)
    return list(seen)
