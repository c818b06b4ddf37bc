"""Node labels to a node's failure domain at each configured level."""
from __future__ import annotations

from typing import Mapping, Sequence

from extender.core.model import HOSTNAME_LABEL, DomainValue


def domain_path(node_name: str, labels: Mapping[str, str] | None, levels: Sequence[str]) -> tuple[DomainValue, ...]:
    """The node's value at each level; None where the label is missing or empty.

    The hostname level falls back to the node name: kubelet always sets that label to the
    node's hostname, so a node without it is still its own node-level domain.
    """
    labels = labels or {}
    path = []
    for key in levels:
        value = labels.get(key) or None
        if value is None and key == HOSTNAME_LABEL:
            value = node_name
        path.append(value)
    return tuple(path)


def level_title(key: str) -> str:
    """A short human name of a level for reasons and reports ("zone", "rack")."""
    tail = key.rsplit("/", 1)[-1]
    return "node" if tail == "hostname" else tail
