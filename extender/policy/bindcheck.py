"""The bind-time re-check: does the node the scheduler chose still obey the rules?

kube-scheduler binds asynchronously, so a sibling's filter can run before this pod's bind
arrives, and both may pick the same zone. At bind time the rules are evaluated again against
fresh state, over the same choice the pod's filter had: the failure domains of the candidates
that fitted and held no copy ("eligible paths"), each stood for by one stand-in node. If the
chosen node would now be rejected, the bind fails and the scheduler retries the pod, whose
next filter sees the sibling.
"""
from __future__ import annotations

from collections import ChainMap
from dataclasses import replace
from typing import Sequence

from ..model import HOSTNAME_LABEL, DomainValue, Node, PodRequest, Snapshot
from .filter import filter_nodes

STANDIN = "\x00eligible-{}"


def recheck(pod: PodRequest, node: str, paths: Sequence[Sequence[DomainValue]], snapshot: Snapshot,
            own_node: str | None = None) -> str | None:
    """None when `node` is still acceptable, else the reason it is not."""
    host = snapshot.level_names.index(HOSTNAME_LABEL) if HOSTNAME_LABEL in snapshot.level_names else -1
    standins = {}
    for i, path in enumerate(paths):
        name = STANDIN.format(i)
        standins[name] = Node(name=name, domains=tuple(name if j == host else v for j, v in enumerate(path)))
    fresh = replace(snapshot, nodes=ChainMap(standins, snapshot.nodes))
    # Room was judged by the scheduler and the filter; at bind only the spread rules matter.
    result = filter_nodes(replace(pod, memory_request=0), [node, *standins], fresh, own_node)
    if node in result.accepted:
        return None
    return result.unresolvable.get(node) or result.failed.get(node) or "rejected"
