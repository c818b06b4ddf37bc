"""preempt on the wire: ExtenderPreemptionArgs (full Victims or MetaVictims by UID) and the
ExtenderPreemptionResult."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import orjson

from extender.core.identity import Identifier
from extender.core.model import PodRequest, Victim, VictimSet
from extender.protocol.errors import ProtocolError, fold, loads
from extender.protocol.objects import parse_pod


@dataclass
class PreemptionArgs:
    """ExtenderPreemptionArgs: the preemptor and, per candidate node, the victims the
    scheduler chose. `meta` is True when they came as NodeNameToMetaVictims (UIDs only,
    nodeCacheCapable), False for NodeNameToVictims (full pods, whose labels identify them)."""

    pod: PodRequest
    victims: dict[str, VictimSet]
    meta: bool


def parse_preemption_args(data: bytes, identifier: Identifier) -> PreemptionArgs:
    body = fold(loads(data), "request body")
    pod = body.get("pod")
    if pod is None:
        raise ProtocolError("missing 'Pod': ExtenderPreemptionArgs must carry the preemptor")
    preemptor = parse_pod(pod, identifier)
    # "nodeToVictims": the json tag of the full form in the scheduler's older, tagged copy of
    # these types (pkg/scheduler/api/v1); current ones are untagged ("NodeNameToVictims")
    full = body.get("nodenametovictims", body.get("nodetovictims"))
    meta = body.get("nodenametometavictims")
    if full is None and meta is None:
        raise ProtocolError("missing candidates: one of 'NodeNameToVictims' or 'NodeNameToMetaVictims' must be given")
    field_name = "NodeNameToMetaVictims" if meta is not None else "NodeNameToVictims"
    mapping = meta if meta is not None else full
    if not isinstance(mapping, dict):
        raise ProtocolError(f"'{field_name}' must be an object of node name -> victims")
    victims: dict[str, VictimSet] = {}
    for node, entry in mapping.items():
        where = f"'{field_name}.{node}'"
        if entry is None:  # a nil *Victims: nothing to evict
            victims[node] = VictimSet(node)
            continue
        folded = fold(entry, where)
        pods = folded.get("pods")
        pods = [] if pods is None else pods
        if not isinstance(pods, list):
            raise ProtocolError(f"{where}.Pods must be a list")
        pdb = folded.get("numpdbviolations") or 0
        if not isinstance(pdb, int) or isinstance(pdb, bool):
            raise ProtocolError(f"{where}.NumPDBViolations must be an integer")
        found = []
        for i, item in enumerate(pods):
            if meta is not None:
                uid = fold(item, f"{where}.Pods[{i}]").get("uid")
                if not isinstance(uid, str) or not uid:
                    raise ProtocolError(f"{where}.Pods[{i}] needs a string 'UID'")
                found.append(Victim(uid=uid, node=node))
            else:
                victim = parse_pod(item, identifier) if isinstance(item, dict) else None
                if victim is None:
                    raise ProtocolError(f"{where}.Pods[{i}] must be a Pod object")
                if not victim.uid:
                    raise ProtocolError(f"{where}.Pods[{i}] needs metadata.uid")
                found.append(Victim(uid=victim.uid, node=node, pod=victim.key, member=victim.member))
        victims[node] = VictimSet(node, tuple(found), pdb)
    return PreemptionArgs(preemptor, victims, meta is not None)


def preemption_reply(kept: Mapping[str, VictimSet]) -> bytes:
    """ExtenderPreemptionResult: the kept nodes with their victims unchanged, as UIDs (the
    scheduler maps them back to its pods on that node). Pods is never null: the scheduler
    ranges over it."""
    return orjson.dumps({"NodeNameToMetaVictims": {
        node: {"Pods": [{"UID": v.uid} for v in victims.victims], "NumPDBViolations": victims.pdb_violations}
        for node, victims in kept.items()}})
