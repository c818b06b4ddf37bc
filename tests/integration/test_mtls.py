"""mTLS: with service.client_ca_file the verbs need a client certificate signed by that CA;
service.public_bind serves /healthz, /readyz, /metrics and reports in plain HTTP, never the verbs."""
from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys

import pytest

from extender.local.processes import free_port, http_ok, stop_process, wait_until
from tests.support.certs import make_certs

BODY = json.dumps({"Pod": {"metadata": {"name": "web-1", "namespace": "default"}}, "NodeNames": ["node-a"]}).encode()


@pytest.fixture
def mtls(tmp_path, redis_server, prefix):
    certs = make_certs(tmp_path / "certs")
    port, public = free_port(), free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "REDIS_EXTENDER_KEY_PREFIX": prefix}
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "extender.cli", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--certfile", str(certs.server[0]), "--keyfile", str(certs.server[1]),
         "--client-ca-file", str(certs.ca), "--public-bind", f"127.0.0.1:{public}"],
        env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{public}/healthz", timeout=0.5), timeout=30,
                   what="the public listener", proc=proc, log=log, interval=0.1)
        yield certs, port, public
    finally:
        stop_process(proc, grace=10)


def context(certs, client=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if client is not None:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


def post(port: int, ctx: ssl.SSLContext, path: str = "/filter") -> tuple[int, dict]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    try:
        conn.request("POST", path, body=BODY, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_a_client_with_a_certificate_from_the_ca_is_served(mtls) -> None:
    certs, port, _ = mtls
    status, reply = post(port, context(certs, certs.client))
    assert status == 200 and reply["NodeNames"] == ["node-a"]


@pytest.mark.parametrize("who", ["no-certificate", "another-ca"])
def test_a_client_without_a_trusted_certificate_is_refused(mtls, who: str) -> None:
    certs, port, _ = mtls
    ctx = context(certs, None if who == "no-certificate" else certs.stranger)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        post(port, ctx)


def test_metrics_need_a_certificate_on_the_main_listener_but_not_on_the_public_one(mtls) -> None:
    certs, port, public = mtls
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context(certs))
        conn.request("GET", "/metrics")
        conn.getresponse().read()
    conn = http.client.HTTPConnection("127.0.0.1", public, timeout=10)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    assert resp.status == 200 and b"redis_extender" in resp.read()


@pytest.mark.parametrize("verb", ["filter", "prioritize", "bind"])
def test_the_public_listener_refuses_the_verbs(mtls, verb: str) -> None:
    _, _, public = mtls
    conn = http.client.HTTPConnection("127.0.0.1", public, timeout=10)
    conn.request("POST", f"/{verb}", body=BODY, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 403 and "public listener" in json.loads(resp.read())["Error"]
