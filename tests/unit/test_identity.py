"""Which pods are Redis pods, and their cluster, shard and role (extender.core.identity)."""
from __future__ import annotations

import pytest

from extender.core.identity import Identifier
from extender.core.model import Member, Role
from extender.core.settings import IdentitySettings

DEFAULT = Identifier(IdentitySettings())


def member(labels, name="cache-a-1", namespace="ns", **settings):
    return Identifier(IdentitySettings(**settings)).member(namespace, name, labels)


# --- default labels -----------------------------------------------------------------------

@pytest.mark.parametrize("labels, expected", [
    pytest.param({"redis-extender.io/cluster": "cache-a", "redis-extender.io/shard": "3",
                  "redis-extender.io/role": "master"}, Member("ns/cache-a", "3", Role.MASTER), id="master"),
    pytest.param({"redis-extender.io/cluster": "cache-a", "redis-extender.io/shard": "0",
                  "redis-extender.io/role": "replica"}, Member("ns/cache-a", "0", Role.REPLICA),
                 id="replica-of-shard-0"),
    pytest.param({"redis-extender.io/cluster": "cache-a", "redis-extender.io/shard": "3"},
                 Member("ns/cache-a", "3", Role.UNKNOWN), id="no-role-label-role-unknown"),
    pytest.param({"redis-extender.io/cluster": "cache-a"}, Member("ns/cache-a", None, Role.UNKNOWN),
                 id="cluster-only-shard-unknown"),
    pytest.param({"redis-extender.io/cluster": "cache-a", "redis-extender.io/shard": ""},
                 Member("ns/cache-a", None, Role.UNKNOWN), id="empty-shard-label-shard-unknown"),
])
def test_default_labels_give_cluster_shard_and_role(labels, expected):
    assert DEFAULT.member("ns", "cache-a-1", labels) == expected


@pytest.mark.parametrize("labels", [
    pytest.param(None, id="no-labels-at-all"),
    pytest.param({}, id="empty-labels"),
    pytest.param({"app": "web"}, id="unrelated-labels"),
    pytest.param({"redis-extender.io/shard": "3", "redis-extender.io/role": "master"}, id="shard-without-cluster"),
    pytest.param({"redis-extender.io/cluster": ""}, id="empty-cluster-label"),
])
def test_pod_without_a_cluster_is_not_a_redis_pod(labels):
    assert DEFAULT.member("ns", "web-1", labels) is None


def test_cluster_is_namespace_qualified():
    labels = {"redis-extender.io/cluster": "cache", "redis-extender.io/shard": "1"}
    a, b = DEFAULT.member("team-a", "cache-1", labels), DEFAULT.member("team-b", "cache-1", labels)
    assert (a.cluster, b.cluster) == ("team-a/cache", "team-b/cache")
    assert a != b
    assert a.cluster_name == b.cluster_name == "cache"


def test_configured_labels_override_the_preset():
    labels = {"app": "cache-a", "shard-id": "2", "redis-role": "slave"}
    assert member(labels, cluster_label="app", shard_label="shard-id", role_label="redis-role") == \
        Member("ns/cache-a", "2", Role.REPLICA)


# --- role words ---------------------------------------------------------------------------

@pytest.mark.parametrize("word, role", [
    pytest.param("master", Role.MASTER, id="master"),
    pytest.param("primary", Role.MASTER, id="primary-is-master"),
    pytest.param("leader", Role.MASTER, id="leader-is-master"),
    pytest.param("replica", Role.REPLICA, id="replica"),
    pytest.param("slave", Role.REPLICA, id="slave-is-replica"),
    pytest.param("follower", Role.REPLICA, id="follower-is-replica"),
    pytest.param("secondary", Role.REPLICA, id="secondary-is-replica"),
    pytest.param("Master", Role.MASTER, id="case-insensitive"),
    pytest.param(" SLAVE ", Role.REPLICA, id="surrounding-space-ignored"),
    pytest.param("arbiter", Role.UNKNOWN, id="unknown-word-is-unknown"),
    pytest.param("", Role.UNKNOWN, id="empty-is-unknown"),
])
def test_role_words_map_to_roles(word, role):
    labels = {"redis-extender.io/cluster": "cache-a", "redis-extender.io/shard": "3", "redis-extender.io/role": word}
    assert DEFAULT.member("ns", "cache-a-1", labels).role is role


# --- presets with the labels each operator really sets ----------------------------------

KUBEDB = {"app.kubernetes.io/name": "redises.kubedb.com", "app.kubernetes.io/instance": "cache",
          "app.kubernetes.io/managed-by": "kubedb.com", "app.kubernetes.io/component": "database"}
VALKEY = {"app.kubernetes.io/name": "valkey", "valkey.io/cluster": "cache"}
OT = {"redis_setup_type": "cluster", "app.kubernetes.io/managed-by": "redis-operator"}
SPOTAHOME = {"app.kubernetes.io/component": "redis", "app.kubernetes.io/name": "cache",
             "app.kubernetes.io/part-of": "redis-failover", "redisfailovers.databases.spotahome.com/name": "cache"}
BITNAMI = {"app.kubernetes.io/name": "redis-cluster", "app.kubernetes.io/instance": "cache",
           "app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "redis-cluster-9.0.0"}


@pytest.mark.parametrize("preset, name, labels, expected", [
    pytest.param("kubedb", "cache-shard1-0", {**KUBEDB, "redis.kubedb.com/shard": "1", "kubedb.com/role": "master"},
                 Member("db/cache", "1", Role.MASTER), id="kubedb-master"),
    pytest.param("kubedb", "cache-shard1-1", {**KUBEDB, "redis.kubedb.com/shard": "1", "kubedb.com/role": "slave"},
                 Member("db/cache", "1", Role.REPLICA), id="kubedb-slave-is-replica"),
    pytest.param("valkey", "cache-2-0", {**VALKEY, "valkey.io/shard-index": "2", "valkey.io/node-index": "0"},
                 Member("db/cache", "2", Role.MASTER), id="valkey-node-index-0-is-primary"),
    pytest.param("valkey", "cache-2-1", {**VALKEY, "valkey.io/shard-index": "2", "valkey.io/node-index": "1"},
                 Member("db/cache", "2", Role.REPLICA), id="valkey-other-node-index-is-replica"),
    pytest.param("valkey", "cache-2-1", {**VALKEY, "valkey.io/shard-index": "2"},
                 Member("db/cache", "2", Role.UNKNOWN), id="valkey-without-node-index-role-unknown"),
    pytest.param("ot", "cache-leader-2", {**OT, "app": "cache-leader", "role": "leader"},
                 Member("db/cache", "2", Role.MASTER), id="ot-leader-ordinal-is-shard"),
    pytest.param("ot", "cache-follower-2", {**OT, "app": "cache-follower", "role": "follower"},
                 Member("db/cache", "2", Role.REPLICA), id="ot-follower-k-replicates-leader-k"),
    pytest.param("ot", "cache-leader-2", {**OT, "app": "cache-leader", "role": "leader", "redis-role": "slave"},
                 Member("db/cache", "2", Role.REPLICA), id="ot-live-redis-role-wins-after-failover"),
    pytest.param("ot", "cache-follower-0", {**OT, "app": "cache-follower", "role": "follower", "redis-role": "master"},
                 Member("db/cache", "0", Role.MASTER), id="ot-promoted-follower-is-master"),
    pytest.param("spotahome", "rfr-cache-1", {**SPOTAHOME, "redisfailovers-role": "master"},
                 Member("db/cache", "0", Role.MASTER), id="spotahome-one-shard-master"),
    pytest.param("spotahome", "rfr-cache-2", {**SPOTAHOME, "redisfailovers-role": "slave"},
                 Member("db/cache", "0", Role.REPLICA), id="spotahome-slave-is-replica"),
    pytest.param("bitnami", "cache-redis-cluster-4", BITNAMI, Member("db/cache", None, Role.UNKNOWN),
                 id="bitnami-without-shard-count-shard-unknown"),
])
def test_presets_read_each_operators_labels(preset, name, labels, expected):
    assert member(labels, name=name, namespace="db", preset=preset) == expected


def test_bitnami_with_a_declared_shard_count_uses_the_ordinal_rule():
    got = member(BITNAMI, name="cache-redis-cluster-4", namespace="db", preset="bitnami",
                 cluster_shards={"db/cache": 3})
    assert got == Member("db/cache", "1", Role.REPLICA)


@pytest.mark.parametrize("preset, name, labels", [
    pytest.param("kubedb", "cache-shard1-0", {**KUBEDB, "app.kubernetes.io/name": "postgreses.kubedb.com",
                                              "redis.kubedb.com/shard": "1"}, id="kubedb-other-database-kind"),
    pytest.param("ot", "web-0", {"app": "web"}, id="ot-app-label-without-cluster-setup-type"),
    pytest.param("ot", "cache-0", {"app": "cache", "redis_setup_type": "standalone"}, id="ot-standalone-redis"),
    pytest.param("spotahome", "rfs-cache-0", {**SPOTAHOME, "app.kubernetes.io/component": "sentinel"},
                 id="spotahome-sentinel-pod"),
    pytest.param("bitnami", "cache-redis-0", {**BITNAMI, "app.kubernetes.io/name": "redis"},
                 id="bitnami-plain-redis-chart"),
    pytest.param("kubedb", "cache-0", {"redis-extender.io/cluster": "cache", "redis-extender.io/shard": "0"},
                 id="default-labels-under-another-preset"),
])
def test_presets_ignore_pods_that_are_not_their_redis_pods(preset, name, labels):
    assert member(labels, name=name, namespace="db", preset=preset) is None


# --- the StatefulSet ordinal rule ----------------------------------------------------------

@pytest.mark.parametrize("ordinal, shard, role", [
    pytest.param(0, "0", Role.MASTER, id="ordinal-0-master-of-shard-0"),
    pytest.param(2, "2", Role.MASTER, id="ordinal-below-count-is-master"),
    pytest.param(3, "0", Role.REPLICA, id="ordinal-3-replica-of-shard-0"),
    pytest.param(5, "2", Role.REPLICA, id="ordinal-5-replica-of-shard-2"),
    pytest.param(7, "1", Role.REPLICA, id="second-replica-wraps-again"),
])
def test_ordinal_rule_with_the_shards_label(ordinal, shard, role):
    labels = {"redis-extender.io/cluster": "cache", "redis-extender.io/shards": "3"}
    assert member(labels, name=f"cache-{ordinal}") == Member("ns/cache", shard, role)


@pytest.mark.parametrize("cluster_shards, expected_shard", [
    pytest.param({"ns/cache": 3}, "1", id="namespace-qualified-name"),
    pytest.param({"cache": 3}, "1", id="bare-name-matches-any-namespace"),
    pytest.param({"other/cache": 3}, None, id="other-namespace-does-not-match"),
    pytest.param({"ns/cache": 2, "cache": 3}, "0", id="qualified-name-wins-over-bare-name"),
    pytest.param({}, None, id="no-shard-count-shard-unknown"),
])
def test_ordinal_rule_with_settings_cluster_shards(cluster_shards, expected_shard):
    got = member({"redis-extender.io/cluster": "cache"}, name="cache-4", cluster_shards=cluster_shards)
    assert got.shard == expected_shard


@pytest.mark.parametrize("labels, name, expected", [
    pytest.param({"redis-extender.io/shards": "2"}, "cache-4", Member("ns/cache", "0", Role.REPLICA),
                 id="shards-label-wins-over-settings"),
    pytest.param({"redis-extender.io/shards": "x"}, "cache-4", Member("ns/cache", "1", Role.REPLICA),
                 id="non-numeric-shards-label-falls-back-to-settings"),
    pytest.param({"redis-extender.io/shards": "0"}, "cache-4", Member("ns/cache", "1", Role.REPLICA),
                 id="zero-shards-label-falls-back-to-settings"),
    pytest.param({"redis-extender.io/role": "master"}, "cache-4", Member("ns/cache", "1", Role.MASTER),
                 id="role-label-wins-over-ordinal-role"),
    pytest.param({"redis-extender.io/shard": "9"}, "cache-4", Member("ns/cache", "9", Role.UNKNOWN),
                 id="shard-label-wins-over-ordinal-rule"),
    pytest.param({}, "cache-primary", Member("ns/cache", None, Role.UNKNOWN), id="name-without-ordinal"),
])
def test_ordinal_rule_precedence(labels, name, expected):
    got = member({"redis-extender.io/cluster": "cache", **labels}, name=name, cluster_shards={"cache": 3})
    assert got == expected


def test_custom_shards_label():
    got = member({"redis-extender.io/cluster": "cache", "example.com/shards": "4"}, name="cache-6",
                 shards_label="example.com/shards")
    assert got == Member("ns/cache", "2", Role.REPLICA)
