"""policy/bindcheck.py: the tie between siblings' reservations and the paths of a bind
without a filter's memory."""
from __future__ import annotations

from dataclasses import replace

from extender.core.model import Copy, Node, Role
from extender.policy.bindcheck import all_paths, contenders, recheck
from extender.core.settings import DEFAULT_LEVELS

from .builders import make_node, make_pod, make_snapshot


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


def _masters_case():
    nodes = [make_node(n, z, "r1") for n, z in (("a1", "za"), ("a2", "za"), ("b1", "zb"), ("b2", "zb"),
                                                  ("c1", "zc"), ("c2", "zc"))]
    pod = make_pod("cache-a-9", shard="9", role=Role.MASTER)
    return nodes, pod


def test_a_masters_bind_is_refused_in_a_zone_with_more_masters_while_one_with_fewer_was_eligible() -> None:
    nodes, pod = _masters_case()
    snapshot = make_snapshot(nodes, masters_per_node={"a1": 1, "b1": 1})
    paths = all_paths(nodes, DEFAULT_LEVELS)
    assert recheck(pod, "c2", paths, snapshot) is None
    assert "masters" in (recheck(pod, "a2", paths, snapshot) or "")
    # an in-flight sibling master reserved before this pod counts where it is reserved
    earlier = Copy(pod="ns/cache-a-7", node="c1", role=Role.MASTER, reserved=True, expires_ms=1.0)
    mine = Copy(pod=pod.key, node="c2", role=Role.MASTER, reserved=True, expires_ms=2.0)
    assert "masters" in (recheck(pod, "c2", paths, make_snapshot(nodes, masters_per_node={"a1": 1},
                                                                   reserved=(earlier, mine))) or "")
    # one reserved after this pod's own does not (the tie-break of siblings in flight)
    later = replace(earlier, expires_ms=3.0)
    assert recheck(pod, "c2", paths, make_snapshot(nodes, masters_per_node={"a1": 1},
                                                   reserved=(later, mine))) is None


def test_a_masters_bind_is_not_judged_on_the_masters_of_its_node() -> None:
    """The stand-ins stand for domains, not for their nodes: a node holding a master is not
    refused for want of a node without one (the filter judged the node level)."""
    nodes, pod = _masters_case()
    snapshot = make_snapshot(nodes, masters_per_node={"a1": 1, "b1": 1, "c1": 1})
    assert recheck(pod, "a1", all_paths(nodes, DEFAULT_LEVELS), snapshot) is None
