"""Kubernetes -> the Redis state: list then watch Nodes and Pods, and the Binding API.

Watching, in three layers (as kopf does): reconnect forever with backoff -> list, then watch
from the list's resourceVersion (bookmarks keep it fresh), back to a full relist on 410 Gone
-> one HTTP stream, parsed line by line with orjson (the client's model deserialisation costs
~1 ms a pod; we only need a few fields).

What is stored: every Node (labels, allocatable, readiness) and every non-terminal Pod
(field selector status.phase!=Succeeded,status.phase!=Failed): all pods' requests count toward
their node's usage, while only Redis pods carry cluster/shard/role. A pod that turns
Succeeded/Failed leaves the selection, the watch reports DELETED, and its usage is freed.
A relist deletes from the store what the API no longer has. Writes are skipped when the
fields we keep did not change (node heartbeats would otherwise reload every replica's table).

The state is whole once both lists are stored: the leader then writes the epoch (redis_store.py),
and checks it with its lock every CHECK_EVERY second; an epoch gone or another's (Redis
emptied, replaced) ends the term, and the next term relists everything and writes a new epoch.
Until then decisions find the state not whole and apply the unavailable policy.

Several replicas: exactly one syncer writes, the holder of a Redis lock with expiry
(state/lock.py, renewed every CHECK_EVERY s); when it dies, the lock expires and another takes over
within `ttl` seconds. Writes are idempotent upserts of the API's truth, so a paused ex-leader
writing once more does no lasting harm: the next event corrects it.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson
import redis
import urllib3
from urllib.parse import quote
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from extender.core.identity import Identifier
from extender.state.loader import node_record, pod_record
from extender.state.lock import LeaderLock
from extender.state.records import NodeRecord
from extender.state.store import RedisStore

log = logging.getLogger(__name__)
POD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"
CHECK_EVERY = 1.0
"""Seconds between the leader's checks of its lock and of the state's epoch: a Redis emptied
(restarted without persistence) or replaced is noticed within this, and relisted at once."""


def api_client(kubeconfig: str | None = None, in_cluster: bool = False, pool_size: int = 0) -> kclient.ApiClient:
    """An API client from a kubeconfig file, or from the pod's service account. `pool_size`:
    connections kept open to the apiserver (the client's default is 5 a CPU): a worker's
    binds run on up to service.threads threads, and a call past the pool opens a connection,
    TLS handshake included, that urllib3 then throws away ("Connection pool is full")."""
    configuration = kclient.Configuration()
    if in_cluster:
        kconfig.load_incluster_config(client_configuration=configuration)
    else:
        kconfig.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    if pool_size > configuration.connection_pool_maxsize:
        configuration.connection_pool_maxsize = pool_size
    return kclient.ApiClient(configuration)


def _api_call(api: kclient.ApiClient, method: str, path: str, body: bytes | None = None,
              timeout: float = 3.0) -> tuple[int, bytes]:
    """One request through the client's own connection pool (its TLS, client certificates,
    proxy) and credentials (a refreshed token included), without its generated models: the
    pydantic-validated call, the model and its serialisation cost more than the bind's whole
    Redis work (the scheduler benchmark's profile). Returns (status, body)."""
    headers = {"Accept": "application/json", "User-Agent": "redis-extender"}
    headers.update(api.default_headers)
    auth = api.configuration.auth_settings().get("BearerToken")
    if auth and auth.get("value"):
        headers[auth["key"]] = auth["value"]
    if body is not None:
        headers["Content-Type"] = "application/json"
    resp = api.rest_client.pool_manager.request(
        method, api.configuration.host + path, body=body, headers=headers, retries=False,
        timeout=urllib3.Timeout(total=timeout), preload_content=True)
    return resp.status, resp.data


def _api_error(status: int, body: bytes) -> ApiException:
    """The client's exception for a refused call, with the API's message as its reason."""
    try:
        reason = str(orjson.loads(body).get("message") or "")
    except (orjson.JSONDecodeError, AttributeError):
        reason = body[:200].decode(errors="replace")
    exc = ApiException(status=status, reason=reason)
    exc.body = body.decode(errors="replace")
    return exc


def make_binder(api: kclient.ApiClient) -> Callable[[str, str, str, str], None]:
    """The Binding call kube-scheduler would make (POST pods/<name>/binding); raises
    ApiException when the API refuses it."""

    def bind(namespace: str, name: str, uid: str, node: str) -> None:
        meta: dict[str, str] = {"name": name, "namespace": namespace}
        if uid:
            meta["uid"] = uid
        body = orjson.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": meta,
                             "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
        status, data = _api_call(api, "POST", f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/binding",
                                 body)
        if not 200 <= status < 300:
            raise _api_error(status, data)

    return bind


BINDING_CHECKS_UID = (1, 27)
"""The first release whose pods/binding honours metadata.uid in every patch release: added in
1.24, lost in 1.25 and fixed in 1.27 (backported to late 1.25/1.26 patches only). v1.20.2, our
oldest supported release, binds another pod of that name (tests/e2e/test_scheduling.py)."""


def binding_checks_uid(api: kclient.ApiClient) -> bool:
    """Does this apiserver refuse a Binding whose metadata.uid is not the pod's? (GET /version;
    False when it cannot tell: the bind then always asks the API about the pod first.)"""
    try:
        status, data = _api_call(api, "GET", "/version")
        version = orjson.loads(data) if status == 200 else {}
        major = int(str(version.get("major", "0")).rstrip("+"))
        minor = int("".join(c for c in str(version.get("minor", "0")) if c.isdigit()) or 0)
    except Exception as exc:  # unreachable, not JSON, not numbers
        log.warning("cannot read the apiserver's version (%s): every bind asks the API about its pod", exc)
        return False
    return (major, minor) >= BINDING_CHECKS_UID


def make_pending_check(api: kclient.ApiClient, scheduler_names: tuple[str, ...] = ()) -> Callable[[str, str, str], str]:
    """(namespace, name, uid) -> "" when the API has that pod, with that UID, not yet bound and
    (with `scheduler_names`) for one of these schedulers; else why not (the bind's Error)."""

    def pending(namespace: str, name: str, uid: str) -> str:
        try:
            status, data = _api_call(api, "GET", f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}")
            if status == 404:
                return f"pod {namespace}/{name} does not exist in the API"
            if status != 200:
                exc = _api_error(status, data)
                return f"cannot read pod {namespace}/{name} from the API: {exc.status} {exc.reason}"
            pod = orjson.loads(data)
        except Exception as exc:  # unreachable API and the like: the Binding would fail too
            return f"cannot read pod {namespace}/{name} from the API: {exc}"
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if uid and meta.get("uid") != uid:
            return f"pod {namespace}/{name} has UID {meta.get('uid')} in the API, not {uid}"
        if spec.get("nodeName"):
            return f"pod {namespace}/{name} is already bound to {spec['nodeName']}"
        if scheduler_names and spec.get("schedulerName") not in scheduler_names:
            return (f"pod {namespace}/{name} is for scheduler {spec.get('schedulerName')!r}, "
                    f"not {', '.join(scheduler_names)}")
        return ""

    return pending


class Gone(Exception):
    """410: our resourceVersion is too old; relist."""


@dataclass
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    current: float = 0.5

    def sleep(self, stop: threading.Event) -> None:
        stop.wait(self.current)
        self.current = min(self.maximum, self.current * 2)

    def reset(self) -> None:
        self.current = self.initial


class Reflector:
    """Keeps one kind (nodes or pods) of the store equal to the API's."""

    def __init__(self, kind: str, list_call: Callable[..., Any], store: RedisStore,
                 to_record: Callable[[dict[str, Any]], Any], stop: threading.Event,
                 selector: str | None = None, watch_timeout: int = 290):
        self.kind = kind
        self.list_call = list_call
        self.store = store
        self.to_record = to_record
        self.stop = stop
        self.selector = selector
        self.watch_timeout = watch_timeout
        self.known: dict[str, Any] = {}  # key -> last record written (skip unchanged writes)
        self.resource_version = ""
        self.events = 0
        self.listed = threading.Event()  # a full list is in the store (the epoch waits for it)
        self.count = 0

    def run(self) -> None:
        backoff = Backoff()
        while not self.stop.is_set():
            try:
                self.relist()
                backoff.reset()
                while not self.stop.is_set():
                    self.watch_once()
            except Gone:
                log.info("%s watch: resourceVersion too old, relisting", self.kind)
            except (ApiException, OSError, redis.RedisError, ValueError) as exc:
                log.warning("%s sync: %s; retrying in %.1fs", self.kind, exc, backoff.current)
                backoff.sleep(self.stop)
            except Exception as exc:  # urllib3 protocol errors and the like: never die
                log.exception("%s sync: unexpected %s; retrying", self.kind, type(exc).__name__)
                backoff.sleep(self.stop)

    def _kwargs(self) -> dict[str, Any]:
        return {"field_selector": self.selector} if self.selector else {}

    def relist(self) -> None:
        items: list[dict[str, Any]] = []
        cont = None
        started = time.time()
        while True:
            resp = self.list_call(limit=500, _continue=cont, _preload_content=False,
                                  _request_timeout=60, **self._kwargs())
            page = orjson.loads(resp.data)
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                self.resource_version = page["metadata"]["resourceVersion"]
                break
        seen = {}
        for obj in items:
            record = self.to_record(obj)
            seen[self._key(record)] = record
        if self.stop.is_set():  # leadership lost meanwhile: the new leader lists for itself
            return
        self._apply_list(seen, started)
        self.count = len(seen)
        self.listed.set()
        log.info("%s: listed %d at resourceVersion %s", self.kind, len(seen), self.resource_version)

    def watch_once(self) -> None:
        resp = self.list_call(watch=True, resource_version=self.resource_version,
                              allow_watch_bookmarks=True, timeout_seconds=self.watch_timeout,
                              _preload_content=False, _request_timeout=(10, self.watch_timeout + 30),
                              **self._kwargs())
        try:
            for line in iter_resp_lines(resp):
                if self.stop.is_set():
                    return
                if line:
                    self.on_event(orjson.loads(line))
        finally:
            resp.close()
            resp.release_conn()

    def on_event(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ValueError(f"watch error: {obj.get('message')}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        record = self.to_record(obj)
        key = self._key(record)
        if kind == "DELETED":
            self._delete(key, record)
            self.known.pop(key, None)
        elif kind in ("ADDED", "MODIFIED") and self.known.get(key) != record:
            self._write(record)
            self.known[key] = record
        self.resource_version = version or self.resource_version
        self.events += 1

    # -- kind-specific store calls ------------------------------------------------------

    def _key(self, record: Any) -> str:
        return record.name if isinstance(record, NodeRecord) else record.key

    def _write(self, record: Any) -> None:
        if isinstance(record, NodeRecord):
            self.store.put_nodes([record])
        else:
            self.store.upsert_pod(record, source="watch")

    def _delete(self, key: str, record: Any) -> None:
        if isinstance(record, NodeRecord):
            self.store.delete_node(key)
        else:
            self.store.delete_pod(record.namespace, record.name, record.uid)

    def _apply_list(self, seen: dict[str, Any], started: float) -> None:
        if self.kind == "nodes":
            stored = set(self.store.node_names())
            changed = [r for k, r in seen.items() if self.known.get(k) != r]
            self.store.put_nodes(changed)
            for name in stored - seen.keys():
                self.store.delete_node(name)
        else:
            stored = set(self.store.pod_keys())
            changed = [r for k, r in seen.items() if self.known.get(k) != r]
            self.store.upsert_pods(changed, source="list")
            for key in stored - seen.keys():
                namespace, _, name = key.partition("/")
                record = self.store.pod(namespace, name)
                if not record:
                    continue
                if record.get("source") == "placement" and float(record.get("updated") or 0) >= started - 1:
                    continue  # bound by us while the list was read (1 s of slack): the watch reports it
                self.store.delete_pod(namespace, name, record.get("uid", ""))
        self.known = seen
        self.store.mark_loaded(f"kubernetes {self.kind} list", **{self.kind: len(seen)})


class Syncer:
    """Leader-elected list+watch of Nodes and Pods into the store."""

    def __init__(self, api: kclient.ApiClient, store: RedisStore, identifier: Identifier,
                 lock_ttl: float = 15.0, while_leading: Callable[[threading.Event], None] | None = None):
        self.while_leading = while_leading  # more work for the single leader (live topology)
        self.core = kclient.CoreV1Api(api)
        self.store = store
        self.identifier = identifier
        self.lock = LeaderLock(store, lock_ttl)
        self.lock_ttl = lock_ttl
        self.leading = threading.Event()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.lock.acquire() or self.lock.renew():  # (renew: ours still, after a relist)
                    log.info("sync: leader (%s)", self.lock.identity)
                    self._lead(stop)
                else:
                    stop.wait(self.lock_ttl / 3)
            except redis.RedisError as exc:
                log.warning("sync: redis: %s", exc)
                stop.wait(1.0)
        self.lock.release()

    def _lead(self, stop: threading.Event) -> None:
        term = threading.Event()
        reflectors = [
            Reflector("nodes", self.core.list_node, self.store, node_record, term),
            Reflector("pods", self.core.list_pod_for_all_namespaces, self.store,
                      lambda obj: pod_record(obj, self.identifier), term, selector=POD_SELECTOR),
        ]
        threads = [threading.Thread(target=r.run, name=f"sync-{r.kind}", daemon=True) for r in reflectors]
        if self.while_leading is not None:
            threads.append(threading.Thread(target=self.while_leading, args=(term,), name="sync-extra", daemon=True))
        self.leading.set()
        for t in threads:
            t.start()
        epoch = ""  # the one this term wrote, once both lists are in the store
        fence = 0  # the write fence at the last check: it only grows (state/fence.py)
        try:
            while not stop.is_set():
                stop.wait(min(CHECK_EVERY, self.lock_ttl / 3))
                try:
                    if not self.lock.renew():
                        log.warning("sync: lost the leader lock")
                        break
                    if not epoch:
                        if all(r.listed.is_set() for r in reflectors):
                            epoch = self.store.mark_epoch(f"sync {self.lock.identity}", nodes=reflectors[0].count,
                                                          pods=reflectors[1].count)
                            log.info("sync: state whole (epoch written)")
                        continue
                    now, fence_now = self.store.epoch_and_fence()
                    if now != epoch:
                        log.warning("sync: the state's epoch is gone or another's (Redis emptied or "
                                    "replaced): relisting")
                        break
                    if fence_now < fence:  # the same epoch, older writes: restored from a snapshot
                        log.warning("sync: the state went back in time (write fence %d, was %d): relisting",
                                    fence_now, fence)
                        self.store.invalidate_epoch(epoch, "the syncer saw the state go back in time")
                        break
                    fence = fence_now
                except redis.RedisError as exc:
                    log.warning("sync: cannot renew the leader lock: %s", exc)
                    break
        finally:
            # A watch blocked in a read notices `term` at its next event (it writes nothing
            # after that) or at its timeout; the threads are daemons, so an exit never waits.
            self.leading.clear()
            term.set()
            for t in threads:
                t.join(timeout=0.2)


def run_sync(kubeconfig: str | None, in_cluster: bool, store: RedisStore, identifier: Identifier,
             stop: threading.Event | None = None, lock_ttl: float = 15.0,
             while_leading: Callable[[threading.Event], None] | None = None) -> None:
    stop = stop or threading.Event()
    Syncer(api_client(kubeconfig, in_cluster), store, identifier, lock_ttl, while_leading).run(stop)

