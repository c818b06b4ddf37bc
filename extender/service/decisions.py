"""One decision: protocol arguments + cached state -> Snapshot -> the pure policy.

This is the seam between I/O and the core: everything above it is HTTP, everything below it
is a dictionary lookup. A pod that is not a Redis pod never touches Redis.
"""
from __future__ import annotations

import logging
from collections import ChainMap
from dataclasses import dataclass

from ..identity import Identifier
from ..model import Node, PodRequest, Snapshot
from ..policy.filter import FilterResult, Outcome, filter_nodes
from ..policy.score import NEUTRAL_SCORE, score_nodes
from ..protocol import ExtenderArgs, node_from_object
from ..settings import Settings
from ..state.cache import StateCache, StateUnavailable
from ..state.redis_store import PodRecord, RecordResult

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    snapshot: Snapshot
    own_node: str | None
    version: str


class Decider:
    def __init__(self, settings: Settings, cache: StateCache, identifier: Identifier):
        self.settings = settings
        self.cache = cache
        self.identifier = identifier
        self.levels = settings.domains.levels
        self.fail_open = settings.store.on_unavailable == "fail-open"

    def prepare(self, args: ExtenderArgs) -> Prepared:
        """Build the snapshot; raises StateUnavailable when Redis and the cache both fail."""
        member = args.pod.member
        assert member is not None
        table = self.cache.node_table()
        mem, cpu = self.cache.usage()
        shard = self.cache.shard(member.cluster, member.shard)
        nodes: ChainMap[str, Node] | dict[str, Node] = table.nodes
        level_domains = table.level_domains
        if args.nodes is not None:  # full Node objects: fresher than the cache for candidates
            body = {n["metadata"]["name"]: node_from_object(n, self.levels) for n in args.nodes}
            nodes = ChainMap(body, table.nodes)
            level_domains = tuple(
                known | {n.domains[i] for n in body.values() if n.domains[i] is not None}
                for i, known in enumerate(level_domains))
        own_node = next((c.node for c in shard.copies if c.pod == args.pod.key), None)
        snapshot = Snapshot(level_names=self.levels, nodes=nodes, copies=shard.copies,
                            cluster=shard.counts, level_domains=level_domains,
                            requested_memory=mem, requested_cpu=cpu)
        return Prepared(snapshot, own_node, shard.version)

    def filter(self, args: ExtenderArgs) -> tuple[FilterResult, str]:
        """The verdicts, and an Error text ("" when fine) for the reply."""
        if args.pod.member is None:
            return filter_nodes(args.pod, args.node_names, _EMPTY), ""
        try:
            prepared = self.prepare(args)
        except StateUnavailable as exc:
            if self.fail_open:
                log.warning("filter %s: %s; failing open (all nodes accepted)", args.pod.key, exc)
                return FilterResult(accepted=list(args.node_names), outcome=Outcome.PASSTHROUGH), ""
            log.error("filter %s: %s; failing closed", args.pod.key, exc)
            return FilterResult(accepted=[], outcome=Outcome.NO_FIT), f"redis-extender: placement state unavailable: {exc}"
        result = filter_nodes(args.pod, args.node_names, prepared.snapshot, prepared.own_node)
        if result.unknown_domain_nodes:
            log.info("filter %s: %d candidate(s) with an unknown failure domain",
                     args.pod.key, result.unknown_domain_nodes)
        return result, ""

    def prioritize(self, args: ExtenderArgs) -> dict[str, int]:
        if args.pod.member is None:
            return {n: NEUTRAL_SCORE for n in args.node_names}
        try:
            prepared = self.prepare(args)
        except StateUnavailable as exc:
            log.warning("prioritize %s: %s; neutral scores", args.pod.key, exc)
            return {n: NEUTRAL_SCORE for n in args.node_names}
        return score_nodes(args.pod, args.node_names, prepared.snapshot, self.settings, prepared.own_node)

    def record(self, pod: PodRequest, node: str, expect_version: str = "") -> RecordResult:
        """Atomic check-and-record of a placement; invalidates this process's cached shard."""
        member = pod.member
        record = PodRecord(namespace=pod.namespace, name=pod.name, uid=pod.uid, node=node,
                           memory=pod.memory_request, cpu=pod.cpu_request, phase="Pending",
                           cluster=member.cluster if member else "",
                           shard=(member.shard or "") if member else "",
                           role=member.role.value if member else "")
        try:
            return self.cache.store.record_placement(record, expect_version)
        finally:
            if member:
                self.cache.invalidate_shard(member.cluster, member.shard)


_EMPTY = Snapshot(level_names=(), nodes={})
