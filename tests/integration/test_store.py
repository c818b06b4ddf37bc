"""The key schema and the Lua check-and-record, against a real redis-server."""
from __future__ import annotations

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context

import pytest
import redis as redis_py

from extender.state.records import NodeRecord, PodRecord
from extender.state.store import RedisStore

GI = 2**30


def copy(name: str, node: str, shard: str = "3", role: str = "replica", uid: str | None = None) -> PodRecord:
    return PodRecord(namespace="redis", name=name, uid=uid or f"uid-{name}", node=node, memory=GI, cpu=500,
                     phase="Running", cluster="redis/cache-a", shard=shard, role=role)


def test_upsert_indexes_usage_shard_and_cluster_counts(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", "n1", role="master"))
    store.upsert_pod(copy("cache-a-1", "n2"))
    store.upsert_pod(PodRecord("apps", "web", "u-web", "n1", 2 * GI, 250, "Running"))
    mem, cpu = store.usage()
    assert mem == {"n1": 3 * GI, "n2": GI}
    assert cpu == {"n1": 750, "n2": 500}
    state = store.shard_state("redis/cache-a", "3")
    assert sorted((c.pod, c.node, c.role.value) for c in state.copies) == [
        ("redis/cache-a-0", "n1", "master"), ("redis/cache-a-1", "n2", "replica")]
    assert state.counts.pods_per_node == {"n1": 1, "n2": 1}
    assert state.counts.masters_per_node == {"n1": 1}
    assert store.clusters() == ["redis/cache-a"]


def test_moving_a_pod_moves_every_index(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", "n1", role="master"))
    store.upsert_pod(copy("cache-a-0", "n2", role="master"))
    mem, _ = store.usage()
    assert mem.get("n1", 0) == 0 and mem["n2"] == GI
    state = store.shard_state("redis/cache-a", "3")
    assert [(c.node) for c in state.copies] == ["n2"]
    assert state.counts.pods_per_node == {"n2": 1}
    assert state.counts.masters_per_node == {"n2": 1}


def test_terminal_pods_free_their_node(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", "n1"))
    store.upsert_pod(PodRecord("redis", "cache-a-0", "uid-cache-a-0", "n1", GI, 500, "Failed",
                               "redis/cache-a", "3", "replica"))
    mem, _ = store.usage()
    assert mem.get("n1", 0) == 0
    assert store.shard_state("redis/cache-a", "3").copies == ()


def test_delete_of_an_older_pod_with_the_same_name_is_ignored(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", "n1", uid="new"))
    assert store.delete_pod("redis", "cache-a-0", uid="old") is False
    assert store.pod("redis", "cache-a-0")["uid"] == "new"
    assert store.delete_pod("redis", "cache-a-0", uid="new") is True
    assert store.pod("redis", "cache-a-0") is None
    assert store.usage()[0].get("n1", 0) == 0
    assert store.shard_state("redis/cache-a", "3").copies == ()


def test_record_refuses_a_second_copy_on_one_node(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", "n1", role="master"))
    refused = store.record_placement(copy("cache-a-1", "n1"))
    assert (refused.ok, refused.status) == (False, "conflict")
    assert refused.detail == "redis/cache-a-0\tmaster"
    assert store.pod("redis", "cache-a-1") is None  # nothing written on refusal
    accepted = store.record_placement(copy("cache-a-1", "n2"))
    assert accepted.ok
    assert store.pod("redis", "cache-a-1")["source"] == "placement"


def test_record_with_an_outdated_shard_version_is_stale(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", "n1"))
    version = store.shard_state("redis/cache-a", "3").version
    store.upsert_pod(copy("cache-a-1", "n2"))
    stale = store.record_placement(copy("cache-a-2", "n3"), expect_version=version)
    assert stale.status == "stale"
    fresh = store.shard_state("redis/cache-a", "3").version
    assert store.record_placement(copy("cache-a-2", "n3"), expect_version=fresh).ok


def test_re_recording_the_same_pod_on_its_node_is_idempotent(store: RedisStore) -> None:
    assert store.record_placement(copy("cache-a-0", "n1")).ok
    assert store.record_placement(copy("cache-a-0", "n1")).ok
    store.upsert_pod(copy("cache-a-0", "n1"))  # the watch reports it later: no double count
    assert store.usage()[0] == {"n1": GI}
    assert store.shard_state("redis/cache-a", "3").counts.pods_per_node == {"n1": 1}


def test_concurrent_threads_cannot_both_place_copies_on_one_node(store: RedisStore) -> None:
    barrier = threading.Barrier(16)

    def place(i: int) -> bool:
        barrier.wait()
        return store.record_placement(copy(f"cache-a-{i}", "n1")).ok

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(place, range(16)))
    assert results.count(True) == 1
    assert len(store.shard_state("redis/cache-a", "3").copies) == 1


def _place_from_process(url: str, prefix: str, i: int, start: float) -> bool:
    import time

    own = RedisStore.from_url(url, prefix, timeout=5)
    while time.time() < start:
        time.sleep(0.001)
    return own.record_placement(copy(f"cache-a-{i}", "n1")).ok


def test_concurrent_processes_cannot_both_place_copies_on_one_node(store: RedisStore, redis_server, prefix) -> None:
    """As several extender replicas would: separate processes, separate connections."""
    import time

    start = time.time() + 1.0
    with get_context("spawn").Pool(6) as pool:
        results = pool.starmap(_place_from_process, [(redis_server.url, prefix, i, start) for i in range(6)])
    assert results.count(True) == 1


def test_nodes_round_trip_and_generation_moves(store: RedisStore) -> None:
    before = store.node_generation()
    store.put_nodes([NodeRecord("n1", {"topology.kubernetes.io/zone": "a"}, 8 * GI, 4000, True)])
    generation, nodes = store.nodes()
    assert generation > before
    assert nodes["n1"].labels == {"topology.kubernetes.io/zone": "a"} and nodes["n1"].memory == 8 * GI
    store.delete_node("n1")
    assert store.nodes()[1] == {}


def test_clear_removes_only_its_own_prefix(store: RedisStore, redis_server) -> None:
    other = RedisStore.from_url(redis_server.url, "rxother:{x}:", timeout=5)
    other.upsert_pod(copy("keep", "n9"))
    store.upsert_pod(copy("gone", "n1"))
    store.clear()
    assert store.pod("redis", "gone") is None
    assert other.pod("redis", "keep") is not None
    other.clear()


@pytest.mark.parametrize("shard", ["3", None], ids=["with-shard", "cluster-only"])
def test_shard_state_reads_cluster_counts_in_one_round_trip(store: RedisStore, shard) -> None:
    store.upsert_pod(copy("cache-a-0", "n1", role="master"))
    state = store.shard_state("redis/cache-a", shard)
    assert state.counts.pods_per_node == {"n1": 1}
    assert bool(state.copies) == (shard is not None)


def test_live_roles_override_labels_in_every_index_and_survive_later_writes(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", "n1", role="master"))
    store.upsert_pod(copy("cache-a-1", "n2", role="replica"))
    # a failover: cache-a-1 is master now, the labels still say otherwise
    assert store.set_live_roles("redis/cache-a", {"redis/cache-a-0": "replica", "redis/cache-a-1": "master"}) == 2
    state = store.shard_state("redis/cache-a", "3")
    assert state.counts.masters_per_node == {"n2": 1}
    assert {c.pod: c.role.value for c in state.copies} == {"redis/cache-a-0": "replica", "redis/cache-a-1": "master"}
    store.upsert_pod(copy("cache-a-1", "n2", role="replica"))  # the watch reports the stale label again
    assert store.shard_state("redis/cache-a", "3").counts.masters_per_node == {"n2": 1}


def test_a_siblings_status_update_does_not_move_the_shard_version(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", "n1"))
    version = store.shard_state("redis/cache-a", "3").version
    running = copy("cache-a-0", "n1")
    store.upsert_pod(PodRecord(**{**running.__dict__, "ip": "10.0.0.7"}))  # new IP, same copy
    assert store.shard_state("redis/cache-a", "3").version == version
    assert store.record_placement(copy("cache-a-1", "n2"), expect_version=version).ok


def test_deleting_a_pod_that_never_ran_removes_its_reservation(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-1", ""))  # pending, as the watch stores it
    store.reserve("redis/cache-a-1", "redis/cache-a", "3", "n2", "replica", ttl=30)
    assert [c.reserved for c in store.shard_state("redis/cache-a", "3").copies] == [True]
    store.delete_pod("redis", "cache-a-1")
    assert store.r.hgetall(f"{store.p}shard:redis/cache-a|3") == {}


def test_live_roles_keep_everything_else_and_lapse_back_to_the_label(store: RedisStore) -> None:
    store.upsert_pod(PodRecord(**{**copy("cache-a-1", "n2", role="replica").__dict__, "ip": "10.0.0.9"}))
    store.set_live_roles("redis/cache-a", {"redis/cache-a-1": "master"})
    assert store.pod("redis", "cache-a-1")["ip"] == "10.0.0.9"
    assert store.shard_state("redis/cache-a", "3").counts.masters_per_node == {"n2": 1}
    store.set_live_roles("redis/cache-a", {})  # Redis no longer reports it: the label applies again
    assert store.pod("redis", "cache-a-1")["role"] == "replica"
    assert store.shard_state("redis/cache-a", "3").counts.masters_per_node == {}
    store.delete_pod("redis", "cache-a-1")
    assert store.set_live_roles("redis/cache-a", {"redis/cache-a-1": "master"}) == 0  # no ghost
    assert store.pod("redis", "cache-a-1") is None


def test_a_sentinel_managed_redis_is_found_through_its_sentinels_and_after_a_failover(tmp_path) -> None:
    """redis+sentinel://: the state's Redis as users run it with Sentinel."""
    import time

    from extender.local.localredis import LocalRedis
    from extender.local.processes import free_port
    from extender.state.connect import connect

    primary = LocalRedis().start()
    replica = LocalRedis(extra=("--replicaof", "127.0.0.1", str(primary.port))).start()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor state 127.0.0.1 {primary.port} 1\n"
                    "sentinel down-after-milliseconds state 1000\nsentinel failover-timeout state 5000\n")
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)

    def eventually(action, what: str, timeout: float = 20):
        deadline = time.time() + timeout
        while True:
            try:
                result = action()
                if result:
                    return result
            except redis_py.RedisError:
                pass
            assert time.time() < deadline, what
            time.sleep(0.2)

    try:
        store = eventually(lambda: RedisStore(connect(f"redis+sentinel://127.0.0.1:{port}/state", timeout=1),
                                              "rxsentinel:{t}:"), "sentinel answers")
        eventually(lambda: store.upsert_pod(copy("cache-a-0", "n1")) or True, "first write")
        assert store.pod("redis", "cache-a-0")["node"] == "n1"
        assert store.r.connection_pool.get_master_address() == ("127.0.0.1", primary.port)
        eventually(lambda: store.r.execute_command("WAIT", 1, 500) == 1, "replicated")  # async replication
        admin = redis_py.Redis(port=port)
        eventually(lambda: admin.execute_command("SENTINEL", "FAILOVER", "state"), "sentinel knows the replica")

        eventually(lambda: store.r.connection_pool.get_master_address() == ("127.0.0.1", replica.port),
                   "sentinel reports the promoted replica")
        eventually(lambda: store.upsert_pod(copy("cache-a-1", "n2")) or True, "a write after the failover")
        assert store.pod("redis", "cache-a-1")["node"] == "n2"  # the same client, the new master
        assert redis_py.Redis(port=replica.port).hget("rxsentinel:{t}:pod:redis/cache-a-1", "node") == b"n2"
        assert store.pod("redis", "cache-a-0")["node"] == "n1"  # replicated before the failover
    finally:
        sentinel.terminate()
        sentinel.wait(5)
        replica.stop()
        primary.stop()


# --- the cluster's pods in flight (P creserve:) -------------------------------------------

def test_a_reservation_counts_toward_the_cluster_read_with_any_shard(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", ""))  # pending, as the watch stores it
    store.reserve("redis/cache-a-0", "redis/cache-a", "0", "n1", "master", ttl=30)
    state = store.shard_state("redis/cache-a", "5")  # a sibling of another shard
    assert [(c.pod, c.node, c.role.value, c.reserved) for c in state.counts.reserved] == [
        ("redis/cache-a-0", "n1", "master", True)]
    assert state.counts.masters_per_node == {}  # not placed yet
    assert store.shard_state("redis/cache-b", "5").counts.reserved == ()  # another cluster
    assert store.shard_state("redis/cache-a", "5", counts=False).counts.reserved == ()


def test_the_bind_hands_the_cluster_reservation_over_to_the_placed_counts(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", ""))
    store.reserve("redis/cache-a-0", "redis/cache-a", "3", "n1", "master", ttl=30)
    assert store.record_placement(copy("cache-a-0", "n1", role="master")).ok
    state = store.shard_state("redis/cache-a", "3")
    assert state.counts.reserved == ()
    assert state.counts.masters_per_node == {"n1": 1}
    # a late reservation of a placed pod is refused: it would count twice
    store.reserve("redis/cache-a-0", "redis/cache-a", "3", "n2", "master", ttl=30)
    assert store.shard_state("redis/cache-a", "3").counts.reserved == ()


def test_deleting_a_pod_in_flight_drops_its_cluster_reservation(store: RedisStore) -> None:
    store.upsert_pod(copy("cache-a-0", ""))
    store.reserve("redis/cache-a-0", "redis/cache-a", "3", "n1", "master", ttl=30)
    store.delete_pod("redis", "cache-a-0")
    assert store.shard_state("redis/cache-a", "3").counts.reserved == ()
    assert store.r.hgetall(f"{store.p}creserve:redis/cache-a") == {}


def test_a_pending_status_update_keeps_the_cluster_reservation(store: RedisStore) -> None:
    store.reserve("redis/cache-a-0", "redis/cache-a", "3", "n1", "master", ttl=30)
    store.upsert_pod(copy("cache-a-0", ""))  # the watch stores the still-pending pod again
    assert len(store.shard_state("redis/cache-a", "3").counts.reserved) == 1


def test_expired_cluster_reservations_are_ignored_then_pruned(store: RedisStore) -> None:
    key = f"{store.p}creserve:redis/cache-a"
    store.r.hset(key, "redis/cache-a-0", "n1\tmaster\t1000")  # expired long ago
    assert store.shard_state("redis/cache-a", "3").counts.reserved == ()
    store.reserve("redis/cache-a-1", "redis/cache-a", "1", "n2", "master", ttl=30)
    assert set(store.r.hkeys(key)) == {b"redis/cache-a-1"}
    assert 0 < store.r.pttl(key) <= 30_000


def test_a_creation_event_applied_after_the_bind_does_not_unplace_the_pod(store: RedisStore) -> None:
    """The syncer lags a burst: the pod's ADDED event (no node yet) can reach the store after
    the bind recorded the pod. nodeName is never unset, so it is stale news: the copy and the
    master stay counted on their node (a sibling's filter must see them) until the API says."""
    pending = copy("cache-a-0", "", role="master")
    store.upsert_pod(pending, source="watch")
    assert store.record_placement(copy("cache-a-0", "n1", role="master")).ok
    for source in ("watch", "list"):
        store.upsert_pod(pending, source=source)  # the late ADDED event, or a relist read before the bind
        state = store.shard_state("redis/cache-a", "3")
        assert [(c.pod, c.node) for c in state.copies] == [("redis/cache-a-0", "n1")]
        assert state.counts.masters_per_node == {"n1": 1} and state.counts.pods_per_node == {"n1": 1}
        assert store.usage()[0] == {"n1": GI}
        assert store.pod("redis", "cache-a-0")["source"] == "placement"
    store.upsert_pod(copy("cache-a-0", "n1", role="master"), source="watch")  # the Binding's own event
    assert store.pod("redis", "cache-a-0")["source"] == "watch"
    # a pod of the same name with another uid (recreated) is news, not a stale event
    assert store.record_placement(copy("cache-a-1", "n2", role="master")).ok
    store.upsert_pod(copy("cache-a-1", "", role="master", uid="uid-new"), source="watch")
    assert store.shard_state("redis/cache-a", "3").counts.masters_per_node == {"n1": 1}
    # undoing a failed Binding still unplaces, and so does an API event past the grace
    assert store.record_placement(copy("cache-a-2", "n3")).ok
    store.upsert_pod(copy("cache-a-2", ""), source="unbind")
    assert "n3" not in store.shard_state("redis/cache-a", "3").counts.pods_per_node
    assert store.record_placement(copy("cache-a-2", "n3")).ok
    store.r.hset(f"{store.p}pod:redis/cache-a-2", "updated", "1000.000")  # bound long ago, never confirmed
    store.upsert_pod(copy("cache-a-2", ""), source="watch")
    assert "n3" not in store.shard_state("redis/cache-a", "3").counts.pods_per_node


def test_the_scheduler_name_is_kept_for_its_pod_and_dropped_for_another_of_that_name(store: RedisStore) -> None:
    """`sched` (spec.schedulerName, from the API) lets a bind skip asking the API again: a bind's
    own record keeps it, a later pod of the same name (another UID) never inherits it."""
    store.upsert_pod(PodRecord("redis", "a", uid="u1", cluster="c", shard="0", role="replica",
                               scheduler="redis-scheduler"), source="watch")
    assert store.pod_record("redis", "a").scheduler == "redis-scheduler"
    assert store.record_placement(PodRecord("redis", "a", uid="u1", node="n1", cluster="c", shard="0",
                                            role="replica")).ok
    assert store.pod_record("redis", "a").scheduler == "redis-scheduler"
    store.upsert_pods([PodRecord("redis", "a", uid="u1", cluster="c", shard="0", role="replica",
                                 scheduler="other")])
    assert store.pod_record("redis", "a").scheduler == "other"  # the API's word, as loaded
    assert store.record_placement(PodRecord("redis", "a", uid="u2", node="n2", cluster="c", shard="0",
                                            role="replica")).ok
    assert store.pod_record("redis", "a").scheduler == ""


def test_a_placed_pod_without_requests_can_be_updated_and_moved(store: RedisStore) -> None:
    """Its usage is 0: taking it out must not send HINCRBY "-0" (refused: "not an integer")."""
    store.upsert_pod(PodRecord("redis", "b", uid="u", node="n1", cluster="c", shard="1", role="replica"))
    store.upsert_pod(PodRecord("redis", "b", uid="u", node="n2", cluster="c", shard="1", role="replica"))
    assert store.pod_record("redis", "b").node == "n2"
    assert store.delete_pod("redis", "b", uid="u")
