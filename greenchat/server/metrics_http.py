"""The metrics listener: ``GET /metrics`` for Prometheus and ``GET /healthz``.

Off unless ``--metrics-port`` is given; on ``--metrics-host`` (127.0.0.1 by
default), since the numbers say who is busy. ``/healthz`` answers 200 while
the server accepts connections and 503 once it drains on SIGTERM, so a load
balancer stops sending clients before they would be refused. Anything else
is 404 (405 for another method on a known path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from greenchat.metrics import Collector
from greenchat.server.listener import ListenError, show_address

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer

__all__ = ["MetricsListener"]

log = logging.getLogger("greenchat.metrics")

StartResponse = Callable[[str, list[tuple[str, str]]], object]


class MetricsListener:
    """A small WSGI server over gevent, reading the server's state at each scrape."""

    def __init__(self, server: ChatServer, host: str, port: int) -> None:
        self.server = server
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(Collector(server))
        self._wsgi = WSGIServer((host, port), self._app, log=None, error_log=log)

    @property
    def address(self) -> tuple[str, int]:
        return self._wsgi.address[0], self._wsgi.server_port

    def start(self) -> None:
        try:
            self._wsgi.start()
        except OSError as exc:
            where = show_address(*self._wsgi.address[:2])
            raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from None

    def stop(self) -> None:
        self._wsgi.stop(timeout=1)

    def _app(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path not in ("/metrics", "/healthz"):
            return _reply(start_response, "404 Not Found", b"not found\n")
        if method not in ("GET", "HEAD"):
            return _reply(
                start_response, "405 Method Not Allowed", b"GET only\n", [("Allow", "GET")]
            )
        if path == "/healthz":
            if self.server.stopping:
                return _reply(start_response, "503 Service Unavailable", b"draining\n")
            return _reply(start_response, "200 OK", b"ok\n")
        return _reply(
            start_response, "200 OK", generate_latest(self.registry), type_=CONTENT_TYPE_LATEST
        )


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
