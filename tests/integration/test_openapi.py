"""The shipped OpenAPI description (extender/service/openapi.yaml) matches the app, and
schemathesis, driving the real app from it (a real redis-server behind), finds no 5xx and no
reply outside the description."""
from __future__ import annotations

import schemathesis
import yaml
from hypothesis import HealthCheck, settings

from extender.core import settings as settings_mod
from extender.service.app import OPENAPI, create_app

def app_for(url: str):
    conf = settings_mod.load({"store.redis_url": url, "store.key_prefix": "rxschema:{s}:"})
    return create_app(conf)


def test_every_route_of_the_app_is_described(redis_server) -> None:
    described = set(yaml.safe_load(OPENAPI.read_text())["paths"])
    app = app_for(redis_server.url)
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    assert routes - {"/report", "/report.html"} <= described  # reports: documented in the README
    client = app.test_client()
    resp = client.get("/openapi.yaml")
    assert resp.status_code == 200 and yaml.safe_load(resp.get_data())["openapi"].startswith("3.")


def test_schemathesis(redis_server) -> None:
    """Every operation, 60 generated cases each (schemathesis strategies run by hypothesis)."""
    from hypothesis import given
    from schemathesis import checks

    schema = schemathesis.openapi.from_wsgi("/openapi.yaml", app_for(redis_server.url))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6  # the verbs, health, readiness, metrics
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            response = case.call()
            unready = operation.path == "/readyz" and response.status_code == 503  # documented: no state yet
            assert response.status_code < 500 or unready, (operation.label, response.text[:300])
            # Not "positive data accepted": a schema-valid quantity may still exceed int64
            # (a pattern cannot say so), which is a 400 by design.
            case.validate_response(response, checks=[*([] if unready else [checks.not_a_server_error]),
                                                     checks.status_code_conformance,
                                                     checks.content_type_conformance,
                                                     checks.response_schema_conformance])

        run()
