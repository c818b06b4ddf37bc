"""gunicorn's gthread worker, with the TLS handshake taken off its threads.

gthread does the TLS handshake in a worker thread, blocking and without a deadline: a client
that sends half a ClientHello and stops held a thread for as long as it kept the socket
open, and the handshake comes before the client-certificate check, so anyone who can reach
the port could do it (600 from one address stopped every answer). Here:

- the handshake is driven by the worker's poller, non-blocking: a connection reaches a
  thread only once its handshake is complete (with mTLS: once it has shown a certificate
  the client CA signed). A held handshake costs a file descriptor, never a thread;
- a handshake not complete within service.handshake_timeout seconds is closed;
- each client address has at most service.connections_per_address open connections per
  worker (handshaking, in a thread or kept alive); more are closed at accept, so one address
  cannot use up the worker's `worker_connections` either.

The TLS context is built again only when the certificate, key or client CA file changes (the
rotation gunicorn gave by building one per connection, without its cost on the poller).
Written against gunicorn 27's ThreadWorker (pyproject pins the major version).
"""
from __future__ import annotations

import errno
import os
import selectors
import ssl
import time
from collections import Counter, OrderedDict
from functools import partial
from typing import Any

from gunicorn import sock as gsock
from gunicorn import util
from gunicorn.http import get_parser
from gunicorn.workers.gthread import ThreadWorker, TConn


class _Conn(TConn):
    """A connection whose TLS handshake, if any, the poller completed before a thread saw it."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.handshaken = False
        self.released = False
        self.on_close: Any = None

    def init(self) -> None:
        if not self.handshaken:
            super().init()
            return
        if self.initialized:
            return
        self.initialized: bool = True
        self.sock.setblocking(True)
        if gsock.is_http2_negotiated(self.sock):  # only if http_protocols offers h2 (not shipped)
            self.is_http2 = True
            self.parser = get_parser(self.cfg, self.sock, self.client, http2_connection=True)
            self.parser.initiate_connection()
            return
        self.parser = get_parser(self.cfg, self.sock, self.client)

    def close(self, graceful: bool = False) -> None:
        if not self.released:
            self.released = True
            if self.on_close is not None:
                self.on_close(self)
        super().close(graceful)


def _address(client: Any) -> str:
    return str(client[0]) if isinstance(client, tuple) and client else ""


class GuardedWorker(ThreadWorker):
    """ThreadWorker with poller-driven TLS handshakes, a handshake deadline and a per-address
    bound on open connections (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        service = getattr(getattr(self.app, "settings", None), "service", None)
        self.handshake_timeout = float(getattr(service, "handshake_timeout", 5.0))
        self.per_address_limit = int(getattr(service, "connections_per_address", 256))
        self.per_address: Counter[str] = Counter()
        self.handshaking: OrderedDict[_Conn, float] = OrderedDict()  # conn -> deadline (in order)
        self.refused = 0
        self._context: ssl.SSLContext | None = None
        self._context_key: tuple[Any, ...] = ()

    # -- accept ----------------------------------------------------------------------------

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        address = _address(client_addr)
        if self.per_address[address] >= self.per_address_limit:
            self.refused += 1
            if self.refused in (1, 100) or self.refused % 1000 == 0:
                self.log.warning("%d connection(s) refused: %s has %d open on this worker "
                                 "(service.connections_per_address)", self.refused, address,
                                 self.per_address[address])
            util.close(client_sock)
            return
        self.nr_conns += 1
        self.per_address[address] += 1
        conn = _Conn(self.cfg, client_sock, client_addr, listener.getsockname())
        conn.on_close = self._released
        if not self.cfg.is_ssl:
            client_sock.setblocking(True)
            self.enqueue_req(conn)
            return
        try:
            conn.sock = self._tls_context().wrap_socket(
                client_sock, server_side=True, do_handshake_on_connect=False,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
        except (OSError, ValueError) as exc:
            self.log.warning("cannot set up TLS for %s: %s", address, exc)
            self._drop(conn)
            return
        self.handshaking[conn] = time.monotonic() + self.handshake_timeout
        self._handshake(conn)

    def _released(self, conn: _Conn) -> None:
        address = _address(conn.client)
        self.per_address[address] -= 1
        if self.per_address[address] <= 0:
            del self.per_address[address]

    def _tls_context(self) -> ssl.SSLContext:
        """gunicorn's context, built again when a certificate, key or CA file changes."""
        key = tuple(_stamp(path) for path in (self.cfg.certfile, self.cfg.keyfile, self.cfg.ca_certs))
        if self._context is None or key != self._context_key:
            self._context, self._context_key = gsock.ssl_context(self.cfg), key
        return self._context

    # -- the handshake, in the poller ----------------------------------------------------------

    def _handshake(self, conn: _Conn, *_: Any) -> None:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._wait(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._wait(conn, selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError, ValueError) as exc:  # no certificate, a bad one, a reset
            self.log.debug("TLS handshake with %s failed: %s", _address(conn.client), exc)
            self._forget(conn)
            self._drop(conn)
            return
        self._forget(conn)
        conn.handshaken = True
        if conn.sock.pending():  # a request already decrypted: the poller would not see it
            conn.data_ready = True
        self.enqueue_req(conn)

    def _wait(self, conn: _Conn, events: int) -> None:
        callback = partial(self._handshake, conn)
        try:
            self.poller.modify(conn.sock, events, callback)
        except KeyError:
            self.poller.register(conn.sock, events, callback)

    def _forget(self, conn: _Conn) -> None:
        self.handshaking.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _drop(self, conn: _Conn) -> None:
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """gthread's pending connections, and the handshakes past their deadline."""
        super().murder_pending()
        now = time.monotonic()
        while self.handshaking:
            conn, deadline = next(iter(self.handshaking.items()))
            if deadline > now:
                break
            self._forget(conn)
            self._drop(conn)


def _stamp(path: str | None) -> tuple[int, int] | None:
    if not path:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_ino
