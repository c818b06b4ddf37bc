"""The keeper's test bed, end to end: a StatefulSet of 6 shards x 3 pods, created by the real
kube-controller-manager, placed by the real kube-scheduler through the live extender, made
Running and Ready by the node agent (a real redis-server per pod, on the pod's own loopback
address and the extender's Redis port), formed into a real Redis Cluster whose keys are
written and read back; the extender's refresher reads that cluster's live topology through
the pods' IPs like in a real cluster."""
from __future__ import annotations

import pytest

from extender.state.live import load_live

from ..support.keeperworld import COPIES, SHARDS, keeper_world
from ..support.podcluster import Writer, wait_for

pytestmark = pytest.mark.e2e


def test_statefulset_pods_become_a_redis_cluster_placed_by_the_extender(controller_manager, redis_server,
                                                                        tmp_path) -> None:
    with keeper_world(controller_manager, redis_server.url, tmp_path) as world:
        pods = world.pod_objects()
        assert len(pods) == SHARDS * COPIES
        ips = {p["status"]["podIP"] for p in pods}
        assert len(ips) == len(pods) and all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)
        assert world.shards_sharing() == (0, 0)  # the extender's placement: one copy per zone
        assert sorted(world.masters_per_zone().values()) == [2, 2, 2]

        writer = world.writer = Writer(world.agent, world.pods).start()
        wait_for(lambda: len(writer.acked) >= 100, timeout=30, what="100 acknowledged writes")
        writer.stop()
        assert writer.lost() == []

        # the extender reads the cluster through the pods' IPs and maps every node to its pod
        live = wait_for(lambda: (t := load_live(world.store, world.cluster)) and not t.error
                        and len([n for n in t.nodes if n.pod]) == len(pods) and t, timeout=30,
                        what="the refresher's live topology of every pod")
        assert {n.pod for n in live.nodes} == {f"keeper/{p}" for p in world.pods}
        assert sorted(n.pod.split("/")[1] for n in live.nodes if n.role == "master") == \
            sorted(p for p in world.pods if int(p.rsplit("-", 1)[1]) < SHARDS)
