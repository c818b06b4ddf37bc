"""The keeper's Kubernetes calls: facts about a cluster's pods, the Eviction API, PVC deletion
(opt-in), Events. Here, in actuation: with state, the only layer that talks to Kubernetes.

An eviction answered 429 is a PodDisruptionBudget saying "not now": reported as such, never
forced. Events are core/v1 Events on the pod, with the keeper as their source.
"""
from __future__ import annotations

import datetime
import uuid
from typing import Any

from kubernetes import client as kclient
from kubernetes.client.rest import ApiException

from extender.analysis.keeping import PodFacts

ZONAL_KEYS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone", "kubernetes.io/hostname",
              "topology.kubernetes.io/region")
COMPONENT = "redis-extender-keeper"

# evict() outcomes
EVICTED, PDB, GONE = "evicted", "pdb", "gone"


class KubeActions:
    def __init__(self, api: kclient.ApiClient):
        self.core = kclient.CoreV1Api(api)

    def pod_facts(self, namespace: str) -> dict[str, PodFacts]:
        """"ns/name" -> facts, for every pod of the namespace (one list, plus a PVC/PV read per
        claim a pod mounts)."""
        pods = self.core.list_namespaced_pod(namespace, _request_timeout=10).items
        facts = {}
        for pod in pods:
            meta, spec, status = pod.metadata, pod.spec, pod.status
            if meta is None or spec is None:
                continue
            controlled = any(ref.controller for ref in (meta.owner_references or []))
            claims = [v.persistent_volume_claim.claim_name for v in (spec.volumes or [])
                      if v.persistent_volume_claim is not None]
            zonal = next((c for c in claims if self._zonal(namespace, c)), "")
            ready = any(c.type == "Ready" and c.status == "True" for c in (status.conditions or [])) if status else False
            facts[f"{namespace}/{meta.name}"] = PodFacts(uid=meta.uid or "", controlled=controlled,
                                                         zonal_volume=zonal,
                                                         deleting=meta.deletion_timestamp is not None, ready=ready)
        return facts

    def _zonal(self, namespace: str, claim: str) -> bool:
        """A claim bound to a volume whose node affinity pins it to a zone or a node."""
        try:
            pvc = self.core.read_namespaced_persistent_volume_claim(claim, namespace, _request_timeout=10)
            if pvc.spec is None or not pvc.spec.volume_name:
                return False
            pv = self.core.read_persistent_volume(pvc.spec.volume_name, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        affinity = pv.spec.node_affinity if pv.spec is not None else None
        required = affinity.required if affinity is not None else None
        terms = required.node_selector_terms if required else []
        return any(e.key in ZONAL_KEYS for t in terms for e in (t.match_expressions or []))

    def evict(self, namespace: str, name: str, uid: str) -> tuple[str, str]:
        """(EVICTED | PDB | GONE | "error", detail) for one eviction of the pod with that uid."""
        body = kclient.V1Eviction(metadata=kclient.V1ObjectMeta(name=name, namespace=namespace),
                                  delete_options=kclient.V1DeleteOptions(
                                      preconditions=kclient.V1Preconditions(uid=uid) if uid else None))
        try:
            self.core.create_namespaced_pod_eviction(name, namespace, body, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 429:
                return PDB, _message(exc)
            if exc.status in (404, 409):
                return GONE, _message(exc)
            return "error", f"{exc.status}: {_message(exc)}"
        return EVICTED, ""

    def delete_pvc(self, namespace: str, claim: str) -> None:
        try:
            self.core.delete_namespaced_persistent_volume_claim(claim, namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def event(self, namespace: str, pod: str, uid: str, reason: str, message: str, warning: bool = False) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        body = kclient.CoreV1Event(
            metadata=kclient.V1ObjectMeta(name=f"{pod}.{uuid.uuid4().hex[:12]}", namespace=namespace),
            involved_object=kclient.V1ObjectReference(kind="Pod", namespace=namespace, name=pod, uid=uid or None,
                                                      api_version="v1"),
            reason=reason, message=message[:1000], type="Warning" if warning else "Normal",
            source=kclient.V1EventSource(component=COMPONENT), first_timestamp=now, last_timestamp=now,
            count=1, reporting_component=COMPONENT, reporting_instance=COMPONENT)
        self.core.create_namespaced_event(namespace, body, _request_timeout=10)


def _message(exc: ApiException) -> str:
    try:
        import json

        return str(json.loads(exc.body or "").get("message", exc.reason))
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def pod_events(api: kclient.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """The keeper's Events of a namespace (for `keeper --once` output and tests)."""
    items = kclient.CoreV1Api(api).list_namespaced_event(namespace, _request_timeout=10).items
    return [{"pod": e.involved_object.name, "reason": e.reason, "message": e.message} for e in items
            if e.source is not None and e.source.component == COMPONENT]
