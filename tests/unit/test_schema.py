"""The store's key names and its one reading of a shard entry (state/store.py), no server."""
from __future__ import annotations

from extender.core.model import Copy, Role
from extender.state.records import parse_copy
from extender.state.schema import Keys


def test_a_shard_entry_is_a_placement_or_a_reservation() -> None:
    assert parse_copy("ns/p", "n1\tmaster", now_ms=0) == Copy("ns/p", "n1", Role.MASTER)
    assert parse_copy("ns/p", "n1\tslave", now_ms=0) == Copy("ns/p", "n1", Role.REPLICA)  # Role.parse
    assert parse_copy("ns/p", "n1\t", now_ms=0) == Copy("ns/p", "n1", Role.UNKNOWN)
    assert parse_copy("ns/p", "n1\treplica\t2000", now_ms=1000) == Copy("ns/p", "n1", Role.REPLICA, reserved=True, expires_ms=2000.0)
    assert parse_copy("ns/p", "n1\treplica\t2000", now_ms=3000) is None  # an expired reservation
    assert parse_copy("ns/p", "\tmaster", now_ms=0) is None  # no node: nothing placed


def test_keys_name_the_schema_under_the_prefix() -> None:
    keys = Keys("rx:{t}:")
    assert keys.shard("ns/c", "0") == "rx:{t}:shard:ns/c|0"
    assert keys.shard_id(keys.shard("ns/c", "0|x")) == ("ns/c", "0|x")
    assert keys.shard_id("rx:{t}:shardv:ns/c|0") is None and keys.shard_id("rx:{t}:shard:nosep") is None
    assert keys.shard_pattern == "rx:{t}:shard:*"
    assert (keys.live("ns/c"), keys.pod("ns/p"), keys.nodes, keys.node_generation) == (
        "rx:{t}:live:ns/c", "rx:{t}:pod:ns/p", "rx:{t}:nodes", "rx:{t}:gen:nodes")
    assert Keys("a*[b]:").shard_pattern == "a\\*\\[b\\]:shard:*"  # SCAN MATCH literal
