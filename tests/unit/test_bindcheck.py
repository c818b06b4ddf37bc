"""policy/bindcheck.py: the tie between siblings' reservations and the paths of a bind
without a filter's memory."""
from __future__ import annotations

from extender.model import Copy, Node, Role
from extender.policy.bindcheck import all_paths, contenders
from extender.settings import DEFAULT_LEVELS


def reservation(pod: str, node: str, expires: float) -> Copy:
    return Copy(pod=pod, node=node, role=Role.REPLICA, reserved=True, expires_ms=expires)


def test_only_earlier_reservations_and_placements_count_at_bind() -> None:
    placed = Copy(pod="r/a", node="n1", role=Role.MASTER)
    x, y, z = reservation("r/x", "n2", 100.0), reservation("r/y", "n3", 200.0), reservation("r/w", "n4", 200.0)
    copies = (placed, x, y, z)
    assert contenders(copies, "r/x") == (placed, x)  # x reserved first: nobody's reservation blocks it
    assert contenders(copies, "r/y") == (placed, x, y, z)  # y yields to x and (same time, lower key) w
    assert contenders(copies, "r/w") == (placed, x, z)
    assert contenders(copies, "r/none") == copies  # no reservation of its own: it yields to all


def test_all_paths_is_one_path_per_domain_above_the_host_of_ready_nodes() -> None:
    nodes = [Node("n1", ("n1", "za", "r1")), Node("n2", ("n2", "za", "r1")), Node("n3", ("n3", "zb", "r1")),
             Node("n4", ("n4", "zc", "r1"), ready=False)]
    assert all_paths(nodes, DEFAULT_LEVELS) == [(None, "za", "r1"), (None, "zb", "r1")]
