"""IRC over WebSocket for the client (the IRCv3 websocket spec), as a socket-like link.

:class:`IrcClient` reads and writes CRLF-terminated lines on a socket. A
:class:`WebSocketLink` offers it the same calls (``sendall``, ``recv``,
``close``) over a WebSocket, so its reader, writer, framing and reconnects stay
as they are: ``sendall`` sends each line as one message without its CR LF,
``recv`` gives the messages back as lines. wsproto does the handshake, the
framing and the masking a client's frames need.

https://ircv3.net/specs/extensions/websocket: ``binary.ircv3.net`` carries a
line's bytes as they are, ``text.ircv3.net`` as UTF-8 text; a server that picks
neither speaks text.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterable, Sequence
from http import HTTPStatus

import gevent
from gevent import socket
from gevent.lock import Semaphore
from wsproto import ConnectionState, ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, ProtocolError

from greenchat.protocol.websocket import BINARY, TEXT

__all__ = ["HandshakeError", "WebSocketLink"]

_RECV_BYTES = 65536
_BODY_SHOWN = 200  # bytes of a refusal's body quoted in the error
_HTTP = b"HTTP/"  # how an HTTP reply begins


class HandshakeError(OSError):
    """The server did not upgrade to a WebSocket (its HTTP status, or why not).

    An OSError, so :class:`IrcClient` reports it like a refused connection.
    """


class WebSocketLink:
    """One WebSocket to an IRC server over ``sock`` (TCP, or TLS for wss://).

    Call :meth:`handshake` first. The reader may call :meth:`recv` while the
    writer calls :meth:`sendall` (two greenlets); a lock keeps their frames whole.
    """

    def __init__(
        self,
        sock: socket.socket,
        host: str,
        path: str = "/",
        subprotocols: Sequence[str] = (TEXT, BINARY),
    ) -> None:
        """``host`` is the Host header (``name:port``); ``subprotocols`` in our preference."""
        self._sock = sock
        self.host, self.path = host, path
        self.subprotocols = list(subprotocols)
        self.subprotocol: str | None = None  # the server's choice, once open
        self.binary = False
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._lock = Semaphore()  # both loops send: the writer lines, the reader pongs
        self._received = bytearray()  # lines for recv(), CRLF-terminated
        self._open = False
        self._closed = False
        self._head = bytearray()  # the reply's first bytes, to tell HTTP from not
        self._status = 0  # a refusal's HTTP status...
        self._body = bytearray()  # ...and the start of its body

    # -- handshake -----------------------------------------------------------

    def handshake(self, timeout: float) -> None:
        """Upgrade; :class:`HandshakeError` unless the server answers 101 within ``timeout``."""
        request = Request(host=self.host, target=self.path, subprotocols=self.subprotocols)
        late = HandshakeError(f"no WebSocket handshake reply within {timeout}s")
        try:
            with gevent.Timeout(timeout, late):
                self._sock.sendall(self._ws.send(request))
                while not self._open:
                    self._handshake_data(self._sock.recv(_RECV_BYTES))
        except ProtocolError as exc:  # a bad head, a wrong Sec-WebSocket-Accept...
            raise HandshakeError(f"not a WebSocket handshake reply ({exc})") from None

    def _handshake_data(self, data: bytes) -> None:
        if len(self._head) < len(_HTTP):
            self._head += data[: len(_HTTP)]
            # h11 would wait for a whole head: an IRC port's lines would only time out.
            if not _HTTP.startswith(bytes(self._head[: len(_HTTP)])):
                line = data.split(b"\r\n", 1)[0][:100].decode("utf-8", "replace")
                raise HandshakeError(f"not a WebSocket server: it answered {line!r}")
        if not data and not self._status:
            raise HandshakeError("closed without a WebSocket handshake reply")
        self._ws.receive_data(data or None)
        self._handshake_events()
        if not data:  # refused, with a body that ended with the connection
            raise self._refused()

    def _handshake_events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, AcceptConnection):
                self.subprotocol = event.subprotocol
                self.binary = event.subprotocol == BINARY
                self._open = True
            elif isinstance(event, RejectConnection):
                self._status = event.status_code
                if not event.has_body:
                    raise self._refused()
            elif isinstance(event, RejectData):
                self._body += event.data[: _BODY_SHOWN - len(self._body)]
                if event.body_finished:
                    raise self._refused()
            else:  # frames the server sent right behind its 101
                self._on_event(event)

    def _refused(self) -> HandshakeError:
        """'HTTP 403 Forbidden: this origin may not connect'."""
        try:
            phrase = HTTPStatus(self._status).phrase
        except ValueError:
            phrase = ""
        body = self._body.decode("utf-8", "replace").strip()
        status = f"HTTP {self._status} {phrase}".rstrip()
        return HandshakeError(f"{status}: {body}" if body else status)

    # -- the socket's calls ----------------------------------------------------

    def sendall(self, data: bytes) -> None:
        """Send CRLF-terminated lines, one WebSocket message per line."""
        lines = (line.rstrip(b"\r") for line in data.split(b"\n"))
        self._send([self._message(line) for line in lines if line])

    def recv(self, bufsize: int) -> bytes:
        """Received lines, each ending in CRLF, at most ``bufsize`` bytes; b"" once closed."""
        while not self._received and not self._closed:
            data = self._sock.recv(bufsize)
            self._ws.receive_data(data or None)  # None: the TCP stream ended
            for event in self._ws.events():
                self._on_event(event)
        chunk = bytes(self._received[:bufsize])
        del self._received[:bufsize]
        return chunk

    def close(self) -> None:
        """Close the connection at once, like a socket (a goodbye is IrcClient.quit's QUIT)."""
        self._closed = True
        self._sock.close()

    # -- internals -----------------------------------------------------------

    def _message(self, line: bytes) -> Message:
        if self.binary:
            return BytesMessage(data=line)
        return TextMessage(data=line.decode("utf-8", "replace"))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Message):
            # Handed on part by part, so a huge message meets the reader's line limits.
            data = event.data
            self._received += data.encode("utf-8") if isinstance(data, str) else data
            if event.message_finished:
                self._received += b"\r\n"
        elif isinstance(event, Ping) and self._ws.state is ConnectionState.OPEN:
            self._send([event.response()])
        elif isinstance(event, CloseConnection):
            self._closed = True
            self._answer_close(event)

    def _answer_close(self, event: CloseConnection) -> None:
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            reply = event.response()  # the server closes: confirm
        elif state is ConnectionState.OPEN:
            reply = CloseConnection(event.code, event.reason)  # wsproto found a bad frame
        else:
            return  # the TCP stream ended: nobody to answer
        with contextlib.suppress(OSError):  # the server may be gone already
            self._send([reply])

    def _send(self, events: Iterable[Event]) -> None:
        # Framed under the lock too: nothing may follow our Close frame.
        with self._lock:
            try:
                data = b"".join([self._ws.send(event) for event in events])
            except LocalProtocolError as exc:  # closed: as a socket's EPIPE, for the writer
                raise BrokenPipeError(errno.EPIPE, "the WebSocket is closed") from exc
            self._sock.sendall(data)
