"""Request bodies under real gunicorn: the cap holds for chunked bodies too, broken framing is a
400, and a worker grown past service.max_worker_rss is replaced without the server stopping."""
from __future__ import annotations

import json
import socket
import time

import pytest

from extender.local.simulate import make_pod


def pod() -> dict:
    """A pod that is no Redis pod: every candidate passes through whatever the state (none is
    loaded here: a Redis pod would be refused, the state being unavailable), so the reply shows
    that the body was read whole."""
    p = make_pod("default", "web-2", {"app": "web"}, "1Gi", "500m")
    p.pop("apiVersion"), p.pop("kind")
    return p


def raw(port: int, head: bytes, chunks: list[bytes], timeout: float = 10) -> tuple[int, bytes]:
    """One HTTP/1.1 request written by hand (chunks as given, framing included); the status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(head)
        try:
            for chunk in chunks:
                conn.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered before the whole body was sent
        data = b""
        while True:
            try:
                piece = conn.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
            if b"\r\n\r\n" in data:
                head_part, _, rest = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head_part.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(rest) >= length[0]:
                    break
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


CHUNKED = (b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def small_cap(serve_extender):
    return serve_extender(REDIS_EXTENDER_MAX_BODY="65536")


def test_a_chunked_body_within_the_cap_is_read_whole(small_cap) -> None:
    body = json.dumps({"Pod": pod(), "NodeNames": ["node-a", "node-b"]}).encode()
    status, reply = raw(small_cap.port, CHUNKED, [chunk(body[:10]), chunk(body[10:]), b"0\r\n\r\n"])
    assert status == 200 and json.loads(reply)["NodeNames"] == ["node-a", "node-b"]


def test_a_chunked_body_over_the_cap_is_a_413_never_truncated(small_cap) -> None:
    names = [f"node-{i}" for i in range(10000)]  # ~120 KB, twice the cap
    body = json.dumps({"Pod": pod(), "NodeNames": names}).encode()
    pieces = [chunk(body[i:i + 8192]) for i in range(0, len(body), 8192)] + [b"0\r\n\r\n"]
    status, reply = raw(small_cap.port, CHUNKED, pieces)
    assert status == 413 and "65536 byte cap" in json.loads(reply)["Error"]


@pytest.mark.parametrize("framing", [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n"], ids=["bad-size", "no-terminator"])
def test_a_malformed_chunk_is_a_json_400_without_a_traceback(small_cap, framing: bytes) -> None:
    status, reply = raw(small_cap.port, CHUNKED, [framing])
    assert status == 400 and "framing" in json.loads(reply)["Error"]
    time.sleep(0.2)
    assert "Traceback" not in small_cap.log.read_text()


def test_a_worker_over_max_worker_rss_is_replaced_and_the_server_keeps_answering(serve_extender) -> None:
    served = serve_extender(REDIS_EXTENDER_MAX_WORKER_RSS="1", REDIS_EXTENDER_RETIRE_AFTER="0")
    body = json.dumps({"Pod": pod(), "NodeNames": ["node-a"]}).encode()
    head = (b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    for _ in range(4):  # every request retires its worker (RSS > 1 MiB): each is answered by a new one
        status, reply = raw(served.port, head, [body], timeout=30)
        assert status == 200 and json.loads(reply)["NodeNames"] == ["node-a"]
    assert served.proc.poll() is None
    assert served.log.read_text().count("over service.max_worker_rss") >= 2
