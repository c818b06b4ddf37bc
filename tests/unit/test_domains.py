"""Node labels to failure domains (extender.core.domains)."""
from __future__ import annotations

import pytest

from extender.core.domains import HOSTNAME_LABEL, domain_path, level_title
from extender.core.settings import DEFAULT_LEVELS

ZONE, REGION = "topology.kubernetes.io/zone", "topology.kubernetes.io/region"
RACK = "example.com/rack"


@pytest.mark.parametrize("labels, path", [
    pytest.param({HOSTNAME_LABEL: "host-1", ZONE: "zone-a", REGION: "eu-1"}, ("host-1", "zone-a", "eu-1"),
                 id="all-labels"),
    pytest.param({HOSTNAME_LABEL: "host-1", REGION: "eu-1"}, ("host-1", None, "eu-1"), id="missing-zone-is-unknown"),
    pytest.param({HOSTNAME_LABEL: "host-1", ZONE: "", REGION: "eu-1"}, ("host-1", None, "eu-1"),
                 id="empty-zone-is-unknown"),
    pytest.param({ZONE: "zone-a"}, ("node-1", "zone-a", None), id="missing-hostname-falls-back-to-node-name"),
    pytest.param({HOSTNAME_LABEL: ""}, ("node-1", None, None), id="empty-hostname-falls-back-to-node-name"),
    pytest.param({}, ("node-1", None, None), id="no-labels"),
    pytest.param(None, ("node-1", None, None), id="labels-null"),
])
def test_domain_path_default_levels(labels, path):
    assert domain_path("node-1", labels, DEFAULT_LEVELS) == path


def test_hostname_label_value_wins_over_node_name():
    assert domain_path("node-1", {HOSTNAME_LABEL: "ip-10-0-0-1"}, DEFAULT_LEVELS)[0] == "ip-10-0-0-1"


def test_extra_level_follows_the_configured_order():
    levels = (HOSTNAME_LABEL, RACK, ZONE)
    assert domain_path("n", {RACK: "rack-7", ZONE: "zone-a"}, levels) == ("n", "rack-7", "zone-a")
    assert domain_path("n", {ZONE: "zone-a"}, levels) == ("n", None, "zone-a")


def test_levels_without_hostname_have_no_fallback():
    assert domain_path("n", {}, (ZONE, REGION)) == (None, None)


@pytest.mark.parametrize("label, title", [
    pytest.param(HOSTNAME_LABEL, "node", id="hostname-is-node"),
    pytest.param(ZONE, "zone", id="zone"),
    pytest.param(REGION, "region", id="region"),
    pytest.param(RACK, "rack", id="custom-rack"),
    pytest.param("rack", "rack", id="label-without-prefix"),
    pytest.param("failure-domain.beta.kubernetes.io/zone", "zone", id="legacy-zone-label"),
])
def test_level_title(label, title):
    assert level_title(label) == title
