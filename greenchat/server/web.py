"""The web listener: the browser client's page, and IRC over WebSocket at the same URL.

``GET /`` is the page (``greenchat/web/``: plain files, served from memory
with an ETag); ``GET /`` with ``Upgrade: websocket`` is a WebSocket that
speaks IRC (the IRCv3 websocket spec, protocol/websocket.py). Once upgraded,
the connection is a :class:`~greenchat.server.session.Session` like any
other, over a :class:`~greenchat.server.transport.WebSocketTransport`: the
same admission, flood control, send queue and keepalive as TCP.

HTTP is h11's (parsing, keep-alive), the handshake wsproto's; this module
adds the rules:

- a request head is at most :data:`MAX_HEAD` bytes (431 past it) and must
  arrive within ``web-handshake-timeout`` seconds (a slowloris is cut off),
  a kept-alive connection waits at most :data:`KEEPALIVE_IDLE` seconds for
  its next request and serves at most :data:`KEEPALIVE_REQUESTS`;
- only GET and HEAD (405), only the page's files (404), 400 for a request
  h11 or wsproto cannot make sense of (a handshake without ``Upgrade``, a
  wrong ``Sec-WebSocket-Version``);
- a WebSocket's ``Origin`` must be allowed (403): by default only the page's
  own origin; a request without ``Origin`` is not from a browser and is let in;
- ``X-Forwarded-For`` counts only from ``web-trusted-proxies``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import gevent
import h11
from gevent import ssl as gssl
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.utilities import RemoteProtocolError

from greenchat.protocol.websocket import BINARY, choose_subprotocol
from greenchat.server.transport import websocket_transport

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer

__all__ = ["KEEPALIVE_IDLE", "KEEPALIVE_REQUESTS", "MAX_HEAD", "StaticFiles", "WebHandler"]

log = logging.getLogger("greenchat.web")

MAX_HEAD = 8 * 1024  # bytes of request line and headers
KEEPALIVE_IDLE = 15.0  # seconds a kept-alive connection may wait for its next request
KEEPALIVE_REQUESTS = 100  # requests on one connection
RECV_BYTES = 8192

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Everything the page needs comes from this server: scripts, styles and the
# WebSocket ('self' covers ws:// and wss:// to the same host).
_SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
]


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    etag: str


class StaticFiles:
    """The page's files, read once from the package (``greenchat/web``)."""

    def __init__(self, package: str = "greenchat.web") -> None:
        self.files: dict[str, _File] = {}
        for entry in resources.files(package).iterdir():
            suffix = "." + entry.name.rpartition(".")[2]
            if entry.is_file() and suffix in _TYPES:
                body = entry.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                self.files["/" + entry.name] = _File(body, _TYPES[suffix], etag)
        self.files["/"] = self.files["/index.html"]

    def get(self, path: str) -> _File | None:
        return self.files.get(path)


class _Reply(Exception):
    """Answer with this status and close; raised from deep in a request."""

    def __init__(self, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(text)
        self.status, self.text, self.headers = status, text, list(headers)


class WebHandler:
    """Serves one accepted web connection (``handle``) for ``server``."""

    def __init__(self, server: ChatServer, static: StaticFiles | None = None) -> None:
        self.server = server
        self.static = static or StaticFiles()
        self._waiting: set[socket.socket] = set()  # connections between requests

    def close_idle(self) -> None:
        """Shutting down: end the connections that wait for a request (kept alive)."""
        for sock in list(self._waiting):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- connections ---------------------------------------------------------

    def handle(self, sock: socket.socket, address: tuple) -> None:
        """HTTP requests until the peer closes, a limit is reached, or it upgrades
        (over TLS too: the server's TLS listener hands the wrapped socket here)."""
        secure = isinstance(sock, gssl.SSLSocket)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        timeout = self.server.config.web_handshake_timeout
        try:
            for _ in range(KEEPALIVE_REQUESTS):
                self._waiting.add(sock)
                try:
                    request = self._read_request(conn, sock, timeout)
                finally:
                    self._waiting.discard(sock)
                if request is None or self.server.stopping:
                    return
                upgraded = self._respond(conn, sock, address, request, secure)
                if upgraded or (conn.our_state, conn.their_state) != (h11.DONE, h11.DONE):
                    return  # upgraded, closing, or a request body we never read
                conn.start_next_cycle()
                timeout = KEEPALIVE_IDLE
        except (OSError, h11.ProtocolError) as exc:
            log.debug("web connection from %s:%s: %s", address[0], address[1], exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _read_request(
        self, conn: h11.Connection, sock: socket.socket, timeout: float
    ) -> h11.Request | None:
        """The next request's head (its body, if any, is never read): None once closed."""
        received = len(conn.trailing_data[0])  # what came with the previous request
        try:
            with gevent.Timeout(timeout):
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = sock.recv(RECV_BYTES)
                        received += len(data)
                        conn.receive_data(data)
                    elif isinstance(event, h11.Request):
                        break
                    else:  # ConnectionClosed, or a PAUSED cycle
                        return None
        except gevent.Timeout:
            self._send_simple(conn, sock, 408, "request timed out")
            return None
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint or 400
            self._send_simple(conn, sock, status, "bad request" if status == 400 else str(exc))
            return None
        # h11 bounds only a head still incomplete: one that arrived whole is counted here.
        if received - len(conn.trailing_data[0]) > MAX_HEAD:
            self._send_simple(conn, sock, 431, "request head too large")
            return None
        # Without a body this is its EndOfMessage, so the connection can serve the
        # next request; a body is never read, and the connection closes after the reply.
        conn.next_event()
        return event

    # -- requests ------------------------------------------------------------

    def _respond(
        self,
        conn: h11.Connection,
        sock: socket.socket,
        address: tuple,
        request: h11.Request,
        secure: bool,
    ) -> bool:
        """Answer ``request``; True when it became a WebSocket (served until it closed)."""
        headers = {name.lower(): value for name, value in request.headers}
        path = urlsplit(request.target.decode("ascii", "replace")).path or "/"
        try:
            if _wants_websocket(headers):
                return self._websocket(conn, sock, address, request, headers, path, secure)
            self._static(conn, sock, request, headers, path)
        except _Reply as reply:
            self._send_simple(conn, sock, reply.status, reply.text, reply.headers)
        return False

    def _static(
        self,
        conn: h11.Connection,
        sock: socket.socket,
        request: h11.Request,
        headers: dict[bytes, bytes],
        path: str,
    ) -> None:
        if request.method not in (b"GET", b"HEAD"):
            raise _Reply(405, "GET or HEAD only", [("Allow", "GET, HEAD")])
        found = self.static.get(path)
        if found is None:
            raise _Reply(404, "not found")
        common = [("ETag", found.etag), ("Cache-Control", "no-cache"), *_SECURITY_HEADERS]
        if found.etag in _etags(headers.get(b"if-none-match", b"")):
            self._send(conn, sock, 304, common, b"")
            return
        typed = [("Content-Type", found.content_type), *common]
        self._send(conn, sock, 200, typed, b"" if request.method == b"HEAD" else found.body,
                   length=len(found.body))  # fmt: skip

    def _websocket(
        self,
        conn: h11.Connection,
        sock: socket.socket,
        address: tuple,
        request: h11.Request,
        headers: dict[bytes, bytes],
        path: str,
        secure: bool,
    ) -> bool:
        if path != "/":
            raise _Reply(404, "the WebSocket is at /")
        if request.method != b"GET":
            raise _Reply(405, "GET only", [("Allow", "GET")])
        origin = headers.get(b"origin")
        if origin is not None and not self._origin_allowed(origin, headers, secure):
            log.info("web from %s:%s: refused Origin %r", address[0], address[1], origin)
            raise _Reply(403, "this origin may not connect")
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.initiate_upgrade_connection(request.headers, request.target)
            handshake = next(ws.events())
        except (RemoteProtocolError, StopIteration) as exc:
            extra = [("Sec-WebSocket-Version", "13")]
            raise _Reply(400, f"not a WebSocket handshake: {exc}", extra) from None
        assert isinstance(handshake, Request)
        subprotocol = choose_subprotocol(handshake.subprotocols)
        sock.sendall(ws.send(AcceptConnection(subprotocol=subprotocol)))
        early, _ = conn.trailing_data
        client = self._client_address(address, headers)
        transport = websocket_transport(sock, ws, subprotocol != BINARY, bytes(early))
        self.server.serve_transport(transport, client)
        return True

    # -- rules ---------------------------------------------------------------

    def _origin_allowed(self, origin: bytes, headers: dict[bytes, bytes], secure: bool) -> bool:
        """``--web-origins`` when set ('*' allows any); else only the page's own origin."""
        text = origin.decode("ascii", "replace").rstrip("/").lower()
        allowed = self.server.config.web_origins
        if allowed:
            return "*" in allowed or text in (o.rstrip("/").lower() for o in allowed)
        host = headers.get(b"host", b"").decode("ascii", "replace").lower()
        return bool(host) and text == f"{'https' if secure else 'http'}://{host}"

    def _client_address(self, address: tuple, headers: dict[bytes, bytes]) -> tuple:
        """The peer, or behind a trusted proxy the last untrusted X-Forwarded-For hop."""
        trusted = self.server.web_trusted_proxies
        forwarded = headers.get(b"x-forwarded-for")
        if not trusted or forwarded is None or not _within(address[0], trusted):
            return address
        hops = [hop.strip() for hop in forwarded.decode("ascii", "replace").split(",")]
        for hop in reversed(hops):
            if not _valid_ip(hop):
                break  # a proxy we trust would not write this: stop believing the chain
            if not _within(hop, trusted):
                return (hop, address[1])
        return address

    # -- writing -------------------------------------------------------------

    def _send(
        self,
        conn: h11.Connection,
        sock: socket.socket,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        length: int | None = None,
    ) -> None:
        size = len(body) if length is None else length
        head = [*headers, ("Content-Length", str(size))] if status != 304 else headers
        reason = HTTPStatus(status).phrase.encode()
        data = conn.send(h11.Response(status_code=status, headers=head, reason=reason))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        sock.sendall(data)

    def _send_simple(
        self,
        conn: h11.Connection,
        sock: socket.socket,
        status: int,
        text: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """A short plain-text answer, then the connection closes."""
        body = (text + "\n").encode()
        head = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Connection", "close"),
            *headers,
            *_SECURITY_HEADERS,
        ]
        with contextlib.suppress(h11.LocalProtocolError, OSError):
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                self._send(conn, sock, status, head, body)
            else:  # h11 cannot frame a reply now (the request was unparseable)
                sock.sendall(_raw_response(status, head, body))


def _wants_websocket(headers: dict[bytes, bytes]) -> bool:
    """Any sign of a WebSocket handshake: it is then checked as one (400 if it is not)."""
    if b"sec-websocket-key" in headers or b"sec-websocket-version" in headers:
        return True
    if b"websocket" in headers.get(b"upgrade", b"").lower():
        return True
    return b"upgrade" in headers.get(b"connection", b"").lower()


def _etags(header: bytes) -> list[str]:
    return [tag.strip() for tag in header.decode("ascii", "replace").split(",")]


def _raw_response(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(ip: str, networks: list) -> bool:
    try:
        address = ipaddress.ip_address(ip.removeprefix("::ffff:"))
    except ValueError:
        return False
    return any(address in network for network in networks)
