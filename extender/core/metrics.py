"""Prometheus metrics. Defined once per process (the client's registry is process-global).

Under gunicorn, `serve` sets PROMETHEUS_MULTIPROC_DIR so /metrics aggregates every worker.
"""
from __future__ import annotations

from extender.core.settings import metrics_dir
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

REQUESTS = Counter("redis_extender_requests_total", "HTTP requests by verb and status code",
                   ["verb", "code"])
LATENCY = Histogram("redis_extender_request_seconds", "Request latency by verb", ["verb"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
DECISIONS = Counter("redis_extender_decisions_total",
                    "Filter decisions by outcome (spread, relaxed, no_fit, passthrough, error)",
                    ["outcome"])
CACHE = Counter("redis_extender_cache_events_total",
                "State cache events (hits, misses, stale_served, redis_errors)", ["event"])
UNKNOWN_DOMAIN = Counter("redis_extender_unknown_domain_candidates_total",
                         "Candidate nodes of Redis pods with an unknown failure domain at some level")
PLACEMENTS = Counter("redis_extender_placements_total", "Check-and-record results (ok, conflict, stale)",
                     ["status"])
PREEMPT_NODES = Counter("redis_extender_preempt_nodes_total",
                        "Candidate nodes of preempt calls by result: kept, passthrough (not a Redis matter), "
                        "no_victims (rejected at filter), rules (the preemptor's node or shard rules), "
                        "shard (a victim's shard would lose its spread, in-sync replica or quorum), "
                        "not_clean (victims are Redis copies while other nodes' are not)",
                        ["result"])
PHASE = Histogram("redis_extender_phase_seconds",
                  "Time per request phase: parse (JSON in), state (cache/Redis reads), policy "
                  "(verdicts, scores), record (Redis writes: filter memory, reservations), encode (JSON out)",
                  ["phase"], buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))
STATE_AGE = Gauge("redis_extender_state_loaded_timestamp_seconds",
                  "When the state in Redis was last loaded or synced (unix time)",
                  multiprocess_mode="max")


def cache_listener(event: str) -> None:
    CACHE.labels(event).inc()


def exposition() -> tuple[bytes, str]:
    if metrics_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST

# The keeper (extender/actuation/keeper.py), in the sync leader's process: under `serve` the
# sync child shares PROMETHEUS_MULTIPROC_DIR with the workers, so /metrics shows these too.
KEEPER_ACTIONS = Counter("redis_extender_keeper_actions_total",
                         "Keeper actions and refusals by kind (failover, evict) and outcome (done, failed, pdb, "
                         "gone, advised, blocked)", ["kind", "outcome"])
KEEPER_OUT_OF_BALANCE = Gauge("redis_extender_keeper_clusters_out_of_balance",
                              "Clusters whose masters or copies drift, as the keeper last saw them",
                              multiprocess_mode="mostrecent")
KEEPER_SECONDS_OUT = Gauge("redis_extender_keeper_seconds_out_of_balance",
                           "Longest time a cluster has been drifting (seconds), as the keeper last saw it",
                           multiprocess_mode="mostrecent")
