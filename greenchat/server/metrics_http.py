"""The metrics listener: ``GET /metrics`` for Prometheus and ``GET /healthz``.

Off unless ``--metrics-port`` is given; on ``--metrics-host`` (127.0.0.1 by
default), since the numbers say who is busy. ``/healthz`` answers 200 while
the server accepts connections and 503 once it drains on SIGTERM, so a load
balancer stops sending clients before they would be refused. Anything else
is 404 (405 for another method on a known path).

It runs in a native thread with a gevent hub of its own: a scrape must not
wait behind a burst of fan-out on the chat's event loop (the GIL still gives
it a slice every few milliseconds, every millisecond while a scrape is being
served: see :class:`_ScrapeServer`). What it reads of the server's state it
copies in one step each (``list(sessions)``, plain integers), so it needs no
locks: the hub changes that state only between such steps.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import gevent
import gevent.socket
from gevent.monkey import get_original
from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from greenchat.metrics import Collector
from greenchat.server.listener import ListenError

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer

__all__ = ["MetricsListener"]

log = logging.getLogger("greenchat.metrics")

StartResponse = Callable[[str, list[tuple[str, str]]], object]
_socket = get_original("socket", "socket")  # a plain socket: its thread's hub adopts it
_start_thread = get_original("_thread", "start_new_thread")
_allocate_lock = get_original("_thread", "allocate_lock")


class MetricsListener:
    """A small WSGI server on a thread and hub of its own."""

    def __init__(self, server: ChatServer, host: str, port: int) -> None:
        self.server = server
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(Collector(server))
        self._where = (host, port)
        self._sock: socket.socket | None = None
        self._address = (host, port)
        self._wsgi: WSGIServer | None = None
        self._hub: gevent.hub.Hub | None = None
        self._ready = _allocate_lock()

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    def start(self) -> None:
        """Bind here (so a failure is this caller's ListenError), then serve on the thread."""
        host, port = self._where
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            sock = _socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
        except OSError as exc:
            raise ListenError.of(host, port, exc) from None
        self._sock = sock
        self._ready.acquire()
        _start_thread(self._serve, ())
        self._ready.acquire()  # the thread has its server running
        self._ready.release()

    def _serve(self) -> None:
        self._hub = gevent.get_hub()
        # A gevent socket made here, on this thread's hub, from the bound descriptor.
        listener = gevent.socket.socket(fileno=self._sock.detach())
        self._address = listener.getsockname()[:2]
        self._wsgi = _ScrapeServer(listener, self._app, log=None, error_log=log)
        self._wsgi.start()
        self._ready.release()
        self._wsgi.serve_forever()

    def stop(self) -> None:
        hub, wsgi = self._hub, self._wsgi
        if hub is not None and wsgi is not None:
            hub.loop.run_callback_threadsafe(gevent.spawn, wsgi.stop, 1)

    def _app(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path not in ("/metrics", "/healthz"):
            return _reply(start_response, "404 Not Found", b"not found\n")
        if method not in ("GET", "HEAD"):
            allow = [("Allow", "GET")]
            return _reply(start_response, "405 Method Not Allowed", b"GET only\n", allow)
        if path == "/healthz":
            if self.server.stopping:
                return _reply(start_response, "503 Service Unavailable", b"draining\n")
            return _reply(start_response, "200 OK", b"ok\n")
        body = generate_latest(self.registry)
        return _reply(start_response, "200 OK", body, type_=CONTENT_TYPE_LATEST)


class _ScrapeServer(WSGIServer):
    """A WSGI server that takes the GIL back quickly while it serves a request.

    Every syscall of a scrape (accept, recv, send, close) releases the GIL, and
    while the hub is busy fanning out, getting it back waits out the switch
    interval, 5 ms by default: during a 1,000-member fan-out a scrape made of
    seven such calls took 30 ms. From accept to close the interval is 1 ms
    (a scrape then takes about 15 ms, most of it prometheus-client rendering
    while sharing the core); between scrapes the default is back, so a
    Prometheus scraping every 15 s costs the chat nothing it would notice.
    """

    max_accept = 1  # one accept per wake-up: a second would be one more EAGAIN handoff
    fast_interval = 0.001

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight = 0
        self._default_interval = sys.getswitchinterval()

    def _serving(self, delta: int) -> None:
        self._in_flight += delta
        fast = self._in_flight > 0
        sys.setswitchinterval(self.fast_interval if fast else self._default_interval)

    def do_read(self):
        self._serving(+1)
        try:
            accepted = super().do_read()
        except BaseException:
            self._serving(-1)
            raise
        if not accepted:
            self._serving(-1)
        return accepted

    def do_close(self, *args) -> None:
        try:
            super().do_close(*args)
        finally:
            self._serving(-1)


def _reply(
    start_response: StartResponse,
    status: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    type_: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    start_response(
        status, [("Content-Type", type_), ("Content-Length", str(len(body))), *(headers or [])]
    )
    return [body]
