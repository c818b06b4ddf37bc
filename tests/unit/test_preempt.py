"""policy/preempt.py: which preemption candidates to keep, from plain records."""
from __future__ import annotations

from extender.core.model import CopyHealth, Member, Role, Victim, VictimSet
from extender.policy import preempt as p
from extender.policy.preempt import VictimState, preempt_nodes

from .builders import make_copy, make_node, make_pod, make_snapshot

# Six nodes in three zones; zone-c has two nodes.
NODES = [make_node("a1", "zone-a", "r"), make_node("a2", "zone-a", "r"), make_node("b1", "zone-b", "r"),
         make_node("b2", "zone-b", "r"), make_node("c1", "zone-c", "r"), make_node("c2", "zone-c", "r")]


def copy_victim(pod: str, node: str, shard: str = "7", role: Role = Role.REPLICA, cluster: str = "ns/other") -> Victim:
    return Victim(uid=f"uid-{pod}", node=node, pod=f"ns/{pod}", member=Member(cluster, shard, role))


def plain_victim(pod: str, node: str) -> Victim:
    return Victim(uid=f"uid-{pod}", node=node, pod=f"ns/{pod}")


def sets(**victims: list[Victim]) -> dict[str, VictimSet]:
    return {node: VictimSet(node, tuple(v)) for node, v in victims.items()}


def other_shard(*placed: tuple[str, str, Role]) -> VictimState:
    """Shard 7 of ns/other with copies (pod, node, role)."""
    return VictimState(shards={("ns/other", "7"): tuple(make_copy(pod, node, role) for pod, node, role in placed)})


def test_non_redis_preemptor_with_plain_victims_passes_through_unchanged():
    victims = sets(a1=[plain_victim("x", "a1")], b1=[], c1=[plain_victim("y", "c1")])
    result = preempt_nodes(make_pod(cluster=None), victims, make_snapshot(NODES), VictimState())
    assert result.passthrough and result.kept == victims and not result.dropped


def test_empty_victims_node_is_left_out_for_a_redis_preemptor():
    result = preempt_nodes(make_pod(), sets(a1=[], b1=[plain_victim("x", "b1")]), make_snapshot(NODES), VictimState())
    assert list(result.kept) == ["b1"]
    assert result.dropped["a1"] == p.NO_VICTIMS and result.kinds["a1"] == "no_victims"


def test_node_and_zone_rules_of_the_preemptor_drop_nodes_whatever_their_victims():
    snapshot = make_snapshot(NODES, [make_copy("cache-a-0", "a1", Role.MASTER)])
    victims = sets(a1=[plain_victim("x", "a1")], a2=[plain_victim("y", "a2")], b1=[plain_victim("z", "b1")])
    result = preempt_nodes(make_pod(), victims, snapshot, VictimState())
    assert list(result.kept) == ["b1"]
    assert "already holds shard 3" in result.dropped["a1"]  # the node rule
    assert "zone-a already holds shard 3" in result.dropped["a2"]  # the zone rule
    assert result.kinds["a2"] == "rules"


def test_room_does_not_reject_a_candidate_its_victims_make_room_on():
    full = make_snapshot(NODES, requested_memory={n.name: n.allocatable_memory for n in NODES})
    result = preempt_nodes(make_pod(memory=2**30), sets(b1=[plain_victim("x", "b1")]), full, VictimState())
    assert list(result.kept) == ["b1"]


def test_levels_are_judged_among_every_ready_node_not_the_candidates_alone():
    snapshot = make_snapshot(NODES, [make_copy("cache-a-0", "a1"), make_copy("cache-a-1", "b1"),
                                     make_copy("cache-a-2", "b2")])
    victims = sets(a2=[plain_victim("x", "a2")], c1=[plain_victim("y", "c1")])
    assert list(preempt_nodes(make_pod("cache-a-9"), victims, snapshot, VictimState()).kept) == ["c1"]
    # zone-c sent no candidate (its nodes may fit already): zone-a is still not the best place
    only_crowded = sets(a2=[plain_victim("x", "a2")])
    result = preempt_nodes(make_pod("cache-a-9"), only_crowded, snapshot, VictimState())
    assert not result.kept and "zones without a copy are available" in result.dropped["a2"]


def test_when_every_zone_holds_a_copy_the_least_crowded_candidates_stay():
    snapshot = make_snapshot(NODES, [make_copy("cache-a-0", "a1"), make_copy("cache-a-1", "b1"),
                                     make_copy("cache-a-2", "b2"), make_copy("cache-a-3", "c1")])
    victims = sets(a2=[plain_victim("x", "a2")], c2=[plain_victim("y", "c2")])
    assert list(preempt_nodes(make_pod("cache-a-9"), victims, snapshot, VictimState()).kept) == ["a2", "c2"]
    # nodes that are not Ready are no place to go: zone-c then offers nothing
    down = make_snapshot([*NODES[:4], make_node("c1", "zone-c", "r", ready=False),
                          make_node("c2", "zone-c", "r", ready=False)], list(snapshot.copies)[:3])
    assert list(preempt_nodes(make_pod("cache-a-9"), sets(a2=[plain_victim("x", "a2")]), down,
                              VictimState()).kept) == ["a2"]


def test_victim_that_is_the_shards_last_copy_in_a_zone_is_spared_when_another_exists():
    state = other_shard(("o-0", "a1", Role.MASTER), ("o-1", "a2", Role.REPLICA), ("o-2", "b1", Role.REPLICA))
    victims = sets(b1=[copy_victim("o-2", "b1")], a2=[copy_victim("o-1", "a2")])
    result = preempt_nodes(make_pod(cluster=None), victims, make_snapshot(NODES), state)
    assert list(result.kept) == ["a2"]
    assert result.dropped["b1"] == p.LAST_IN_DOMAIN.format(pod="ns/o-2", shard="7", cluster="other",
                                                            where="topology.kubernetes.io/zone zone-a")


def test_victim_that_is_a_shards_last_copy_is_never_taken():
    state = other_shard(("o-0", "a1", Role.MASTER))
    result = preempt_nodes(make_pod(cluster=None), sets(a1=[copy_victim("o-0", "a1", role=Role.MASTER)]),
                           make_snapshot(NODES), state)
    assert not result.kept and result.kinds["a1"] == "shard"
    assert "no healthy copy" in result.dropped["a1"]


def test_unhealthy_copies_do_not_count_as_spread():
    state = VictimState(shards=other_shard(("o-0", "a1", Role.MASTER), ("o-1", "b1", Role.REPLICA),
                                           ("o-2", "c1", Role.REPLICA)).shards,
                        health={"ns/o-2": CopyHealth(healthy=False)})
    victims = sets(b1=[copy_victim("o-1", "b1")])
    assert not preempt_nodes(make_pod(cluster=None), victims, make_snapshot(NODES), state).kept
    healthy = other_shard(("o-0", "a1", Role.MASTER), ("o-1", "b1", Role.REPLICA), ("o-2", "c1", Role.REPLICA))
    assert list(preempt_nodes(make_pod(cluster=None), victims, make_snapshot(NODES), healthy).kept) == ["b1"]


def test_master_needs_an_in_sync_replica_elsewhere():
    placed = (("o-0", "a1", Role.MASTER), ("o-1", "b1", Role.REPLICA), ("o-2", "c1", Role.REPLICA))
    victims = sets(a1=[copy_victim("o-0", "a1", role=Role.MASTER)])
    lagging = VictimState(shards=other_shard(*placed).shards,
                          health={"ns/o-1": CopyHealth(in_sync=False), "ns/o-2": CopyHealth(in_sync=False)})
    result = preempt_nodes(make_pod(cluster=None), victims, make_snapshot(NODES), lagging)
    assert result.dropped["a1"] == p.NO_INSYNC_REPLICA.format(pod="ns/o-0", shard="7", cluster="other")
    one_in_sync = VictimState(shards=lagging.shards, health={"ns/o-1": CopyHealth(in_sync=False),
                                                             "ns/o-2": CopyHealth(in_sync=True)})
    assert list(preempt_nodes(make_pod(cluster=None), victims, make_snapshot(NODES), one_in_sync).kept) == ["a1"]


def test_half_of_the_clusters_masters_is_its_quorum():
    shards = {("ns/other", str(s)): (make_copy(f"o{s}-0", f"{'abc'[s]}1", Role.MASTER),
                                     make_copy(f"o{s}-1", f"{'abc'[(s + 1) % 3]}2", Role.REPLICA),
                                     make_copy(f"o{s}-2", f"{'abc'[(s + 2) % 3]}2", Role.REPLICA))
              for s in range(2)}
    state = VictimState(shards=shards)
    # a1 holds master 0; b1 holds master 1: one node with both would take 2 of 2 masters
    both = {"a1": VictimSet("a1", (copy_victim("o0-0", "a1", "0", Role.MASTER),
                                   Victim("uid-o1-0", "a1", "ns/o1-0", Member("ns/other", "1", Role.MASTER))))}
    shards_both = dict(shards)
    shards_both[("ns/other", "1")] = (make_copy("o1-0", "a1", Role.MASTER),) + shards[("ns/other", "1")][1:]
    result = preempt_nodes(make_pod(cluster=None), both, make_snapshot(NODES), VictimState(shards=shards_both))
    assert "failover quorum" in result.dropped["a1"]
    one = sets(a1=[copy_victim("o0-0", "a1", "0", Role.MASTER)])
    result = preempt_nodes(make_pod(cluster=None), one, make_snapshot(NODES), state)
    assert "failover quorum" in result.dropped["a1"]  # 1 of 2 masters is half
    shards[("ns/other", "2")] = (make_copy("o2-0", "c1", Role.MASTER), make_copy("o2-1", "a2"), make_copy("o2-2", "b2"))
    assert list(preempt_nodes(make_pod(cluster=None), one, make_snapshot(NODES), VictimState(shards=shards)).kept) == ["a1"]


def test_nodes_whose_victims_are_not_redis_copies_are_preferred():
    state = other_shard(("o-0", "a1", Role.MASTER), ("o-1", "b1", Role.REPLICA), ("o-2", "c1", Role.REPLICA))
    victims = sets(b1=[copy_victim("o-1", "b1"), plain_victim("x", "b1")], c2=[plain_victim("y", "c2")])
    result = preempt_nodes(make_pod(cluster=None), victims, make_snapshot(NODES), state)
    assert list(result.kept) == ["c2"] and result.kinds["b1"] == "not_clean"
    # without a clean choice the safe copy victim stays
    only = sets(b1=[copy_victim("o-1", "b1")])
    assert list(preempt_nodes(make_pod(cluster=None), only, make_snapshot(NODES), state).kept) == ["b1"]


def test_kept_victims_are_the_schedulers_own_never_added_to():
    state = other_shard(("o-0", "a1", Role.MASTER), ("o-1", "b1", Role.REPLICA), ("o-2", "c1", Role.REPLICA))
    victims = sets(b1=[copy_victim("o-1", "b1")], c2=[copy_victim("o-2", "c1")])
    victims["c2"] = VictimSet("c2", (plain_victim("y", "c2"),), pdb_violations=2)
    result = preempt_nodes(make_pod(cluster=None), victims, make_snapshot(NODES), state)
    assert result.kept == {"c2": victims["c2"]}
    assert set(result.kept) <= set(victims)


def test_redis_preemptor_combines_its_rules_and_the_victims_rules():
    snapshot = make_snapshot(NODES, [make_copy("cache-a-0", "a1", Role.MASTER)])
    state = other_shard(("o-0", "b1", Role.MASTER), ("o-1", "c1", Role.REPLICA))
    victims = sets(a2=[plain_victim("x", "a2")], b1=[copy_victim("o-0", "b1", role=Role.MASTER)],
                   c2=[plain_victim("y", "c2")], b2=[])
    result = preempt_nodes(make_pod(), victims, snapshot, state)
    assert list(result.kept) == ["c2"]
    assert result.kinds == {"a2": "rules", "b1": "shard", "b2": "no_victims"}
