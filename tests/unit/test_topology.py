"""The live topology (analysis/topology.py): parsing Redis replies, mapping nodes to pods, the
stored JSON form."""
from __future__ import annotations

from dataclasses import replace

import pytest

from extender.analysis.topology import (LiveNode, LiveTopology, complete, follow_masters, map_pods, pairs,
                                      parse_cluster_nodes, parse_cluster_shards, parse_seed_spec, probed,
                                      myself, sentinel_master_id, sentinel_node)

from .report_builders import PILED, make_inventory


NODES_TEXT = """\
07c3 10.0.0.1:6379@16379,cache-0 myself,master - 0 0 1 connected 0-5460
e1a2 10.0.0.2:6379@16379,cache-1 slave 07c3 0 1 1 connected
9f00 10.0.0.3:6379@16379 master,fail - 0 1 2 disconnected 5461-10922 [5462->-e1a2]
"""


def test_cluster_nodes_parsing() -> None:
    nodes = parse_cluster_nodes(NODES_TEXT)
    assert [(n.node_id, n.role, n.health, n.hostname, n.master_id, n.slots) for n in nodes] == [
        ("07c3", "master", "online", "cache-0", "", ((0, 5460),)),
        ("e1a2", "replica", "online", "cache-1", "07c3", ()),
        ("9f00", "master", "failed", "", "", ((5461, 10922),))]


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2-flat-lists", "resp3-maps"])
def test_cluster_shards_parsing(resp3: bool) -> None:
    master = {"id": "m1", "port": 7000, "ip": "10.0.0.1", "endpoint": "10.0.0.1", "hostname": "cache-0",
              "role": "master", "replication-offset": 420, "health": "online"}
    replica = {**master, "id": "r1", "hostname": "cache-3", "role": "replica", "replication-offset": 400,
               "health": "loading"}
    shard = {"slots": [0, 100, 200, 300], "nodes": [master, replica]}

    def flat(d: dict) -> list:
        return [x for k, v in d.items() for x in (k, v)]
    reply = [shard] if resp3 else [["slots", shard["slots"], "nodes", [flat(master), flat(replica)]]]
    nodes = parse_cluster_shards(reply)
    assert [(n.node_id, n.role, n.master_id, n.offset, n.health, n.slots, n.slot_count) for n in nodes] == [
        ("m1", "master", "", 420, "online", ((0, 100), (200, 300)), 202),
        ("r1", "replica", "m1", 400, "loading", (), 0)]


def test_pods_map_by_hostname_then_ip_port_then_ip() -> None:
    nodes = [LiveNode("a", "10.0.0.1", 6379, "master", hostname="cache-0.cache-headless.ns.svc"),
             LiveNode("b", "10.0.0.2", 6379, "replica"), LiveNode("c", "10.0.0.3", 6380, "replica"),
             LiveNode("d", "10.0.0.4", 6379, "replica")]
    mapped = map_pods(nodes, "ns/cache", {"10.0.0.2": "cache-1", "10.0.0.3:6380": "other/cache-2"})
    assert [n.pod for n in mapped] == ["ns/cache-0", "ns/cache-1", "other/cache-2", ""]


def test_live_topology_round_trips_through_json() -> None:
    topo = make_inventory(PILED, slots={"0": 5, "1": 5, "2": 5}).live["ns/c"]
    assert LiveTopology.from_json(topo.to_json()) == topo


def test_cluster_nodes_complete_cluster_shards_mid_failover() -> None:
    shards = parse_cluster_nodes(NODES_TEXT)[:1]
    assert [n.node_id for n in complete(shards, parse_cluster_nodes(NODES_TEXT))] == ["07c3", "e1a2", "9f00"]


def test_sentinel_entries_become_nodes_of_one_shard() -> None:
    master = pairs(["name", "cache", "ip", "10.0.0.1", "port", "6379", "runid", "m1", "flags", "master"])
    replica = pairs(["ip", "cache-1.cache.ns.svc", "port", "6379", "runid", "r1", "flags", "slave,s_down",
                     "master-link-status", "err", "slave-repl-offset", "42"])
    m, r = sentinel_node(master, "master", ""), sentinel_node(replica, "replica", sentinel_master_id(master))
    assert (m.node_id, m.role, m.health, m.hostname, m.link_up, m.offset) == ("m1", "master", "online", "", None, None)
    assert (r.master_id, r.health, r.hostname, r.link_up, r.offset) == ("m1", "failed", "cache-1.cache.ns.svc",
                                                                       False, 42)


def test_a_nodes_own_replication_state_wins_over_the_seeds_gossip() -> None:
    seen_as_master = LiveNode("a", "10.0.0.1", 6379, "master", offset=10)
    other = LiveNode("b", "10.0.0.2", 6379, "master", offset=99)
    info = {"role": "slave", "master_host": "10.0.0.2", "master_port": 6379, "master_link_status": "up",
            "slave_repl_offset": 90, "master_sync_in_progress": 0}
    node, follows = probed(seen_as_master, info, 100)
    assert (node.role, node.link_up, node.offset, node.maxmemory, follows) == ("replica", True, 90, 100,
                                                                              "10.0.0.2:6379")
    assert follow_masters([seen_as_master, other], [(node, follows)])[0].master_id == "b"
    master, _ = probed(other, {"role": "master", "master_repl_offset": 120}, None)
    assert (master.role, master.offset, master.link_up) == ("master", 120, None)
    silent, _ = probed(replace(other, link_up=True), None, None)
    assert silent.link_up is None and silent.role == "master"


def test_seed_specs_name_a_cluster_and_an_address() -> None:
    assert parse_seed_spec("ns/c=10.0.0.1:6379") == ("ns/c", "10.0.0.1:6379")
    assert parse_seed_spec("ns/c=sentinel://[::1]:26379/cache") == ("ns/c", "sentinel://[::1]:26379/cache")
    with pytest.raises(ValueError):
        parse_seed_spec("ns/c=nohost")


def test_myself_is_the_node_that_answered() -> None:
    me = myself(NODES_TEXT)
    assert me is not None and (me.node_id, me.role) == ("07c3", "master")
    replica = NODES_TEXT.replace("myself,master", "master").replace(" slave 07c3", " myself,slave 07c3")
    me = myself(replica)
    assert me is not None and (me.node_id, me.master_id) == ("e1a2", "07c3")
    assert myself("") is None
