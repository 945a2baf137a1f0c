"""Transports: how a session's bytes move (TCP, TLS, and WebSocket over either).

A :class:`~greenchat.server.session.Session` knows lines, queues and
IRC state; everything about the socket lives here:

- ``send_nowait(data)`` sends what the socket takes at once, without blocking,
  and returns how many bytes that was; it raises ``BlockingIOError`` when the
  socket takes nothing (the flusher calls it for every dirty queue in one loop
  turn, so for TCP it is the OS socket's own ``send``). A transport with
  ``writes_wait`` set cannot promise that (gevent's SSL ``send`` may wait even on
  a writable socket), so its session always writes from a writer greenlet with
  ``sendall``, which waits cooperatively.
- ``wake_reader`` makes a pending ``recv`` return end-of-stream, so a session
  can be closed from anywhere (even in the middle of a fan-out loop) and its
  reader cleans up.
- ``close`` lets the last lines go: it turns off Nagle, waits (within a
  deadline) until the peer has acknowledged what was sent, discards unread
  input and closes.
- How lines look on the wire: ``reader(reply)`` is the session's framer (a
  ``LineFramer`` for a byte stream), ``line_writer(put)`` turns a queued line
  into what goes into the send queue (the line itself, or for a WebSocket its
  frame), and ``final(line)`` is the last thing sent (the ERROR line; for a
  WebSocket, its frame and a Close).
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import sys
import termios
import time
from collections.abc import Callable

import gevent
from gevent import ssl as gssl
from wsproto import WSConnection

from greenchat.protocol.framing import LineFramer
from greenchat.protocol.websocket import FrameWriter, IrcWebSocket
from greenchat.server.outgoing import WS_BINARY, WS_TEXT

__all__ = [
    "RECV_BYTES",
    "SecureWebSocketTransport",
    "TcpTransport",
    "TlsTransport",
    "Transport",
    "WebSocketTransport",
    "transport_for",
    "websocket_transport",
]

RECV_BYTES = 16 * 1024
# Linux's SIOCOUTQ (= TIOCOUTQ): unacknowledged bytes in a TCP socket's send queue.
_OUTQ = getattr(termios, "TIOCOUTQ", None) if sys.platform == "linux" else None
_SENDING_STATES = (1, 8)  # TCP_ESTABLISHED, TCP_CLOSE_WAIT (tcpi_state of TCP_INFO)


def _unacknowledged(sock: socket.socket) -> int:
    """Bytes sent on ``sock`` that the peer may still acknowledge (0 if unknown).

    0 as well once the connection is no longer open both ways for our data
    (reset by the peer, say): nothing more will be acknowledged then.
    """
    if _OUTQ is None:
        return 0
    if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] not in _SENDING_STATES:
        return 0
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]


class Transport:
    """A gevent TCP socket. Subclasses change what differs (TLS, WebSocket)."""

    __slots__ = ("_raw", "recv", "send_nowait", "sock")
    writes_wait = False  # True: send only from a writer greenlet (never send_nowait)
    name = "tcp"

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        # The OS socket under gevent's wrapper: non-blocking, and one Python frame
        # less per send (the flusher sends to every recipient of every message).
        self._raw: socket.socket = sock._sock  # type: ignore[attr-defined]
        # recv(size): the next chunk (waits cooperatively); b"" at end of stream. The
        # socket's own method: an idle reader parks inside it, and a frame of ours
        # on every parked reader's stack would cost memory per connection.
        self.recv: Callable[[int], bytes] = sock.recv
        # send_nowait(data): bytes sent, or BlockingIOError. The OS socket's method
        # itself: a frame of ours here would run once per recipient per message.
        self.send_nowait: Callable[[bytes], int] = self._raw.send

    def reader(self, reply: Callable[[bytes], None]) -> LineFramer | IrcWebSocket:
        """The framer for what this transport receives; ``reply`` queues raw bytes."""
        return LineFramer()

    def line_writer(self, put: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """Where a session's lines go: ``put`` (the send queue's) for a byte stream."""
        return put

    @property
    def framing(self) -> int:
        """The variant bit of this transport's form of a relayed line (outgoing.py):
        none for a byte stream, whose form is the line itself."""
        return 0

    def final(self, line: bytes) -> bytes:
        """What to send last when the server closes: the ERROR line."""
        return line

    def recv_within(self, seconds: float, size: int = RECV_BYTES) -> bytes | None:
        """The next chunk, or ``None`` when nothing arrived within ``seconds``."""
        with gevent.Timeout(seconds, False):
            return self.sock.recv(size)
        return None

    def sendall(self, data: bytes) -> None:
        """Send everything, waiting cooperatively while the socket is full."""
        self.sock.sendall(data)

    def wake_reader(self) -> None:
        """Make a pending (or the next) ``recv`` return end-of-stream."""
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_RD)

    def close(self, deadline: float) -> None:
        """Until ``deadline``, wait for the peer to acknowledge what was sent; then
        discard unread input and close.

        Closing a socket with unread input makes the kernel reset the
        connection and throw away output not yet sent, so a client that is
        still sending (a flooder, say) would never see its ERROR line. Once
        the peer's kernel has it, a reset no longer loses it.
        """
        raw = self._raw
        try:
            while _unacknowledged(raw) and time.monotonic() < deadline:
                gevent.sleep(0.01)
            raw.setblocking(False)
            while raw.recv(RECV_BYTES):  # the read side is shut: b"" once drained
                pass
        except OSError:  # BlockingIOError included: nothing (more) to discard
            pass
        with contextlib.suppress(OSError):
            self.sock.close()

    def set_nodelay(self) -> None:
        """Send the last lines at once rather than waiting for ACKs (Nagle)."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


TcpTransport = Transport


class TlsTransport(Transport):
    """A gevent SSL socket over TCP."""

    __slots__ = ()
    writes_wait = True  # gevent's SSL send may wait even when the socket is writable
    name = "tls"

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.send_nowait = _refuse_send_nowait  # the OS socket would bypass TLS

    # wake_reader and close work on the descriptor under the TLS layer:
    # SSLSocket.shutdown would drop TLS, and the ERROR line would go out in the clear.


class WebSocketTransport(Transport):
    """An IRCv3 WebSocket over TCP: the socket as for TCP; each line one message.

    ``ws`` is wsproto's connection, past the handshake (web.py); ``early`` is
    what the client sent right behind its handshake, handed out by the first
    ``recv``. ``text`` is true for ``text.ircv3.net`` (text messages).
    """

    __slots__ = ("_early", "irc")
    name = "ws"

    def __init__(
        self, sock: socket.socket, ws: WSConnection, text: bool, early: bytes = b""
    ) -> None:
        super().__init__(sock)
        self.irc = IrcWebSocket(ws, text)
        self._early = early
        if early:
            self.recv = self._recv_early

    def _recv_early(self, size: int) -> bytes:
        # The session keeps this method for its whole read loop: after the early
        # bytes it reads the socket (rebinding self.recv would not reach it).
        if self._early:
            data, self._early = self._early, b""
            return data
        return self.sock.recv(size)

    def reader(self, reply: Callable[[bytes], None]) -> IrcWebSocket:
        self.irc.reply = reply
        return self.irc

    def line_writer(self, put: Callable[[bytes], None]) -> Callable[[bytes], None]:
        return FrameWriter(put, self.irc.text).put

    @property
    def framing(self) -> int:
        return WS_TEXT if self.irc.text else WS_BINARY

    def final(self, line: bytes) -> bytes:
        return self.irc.farewell(line)


class SecureWebSocketTransport(WebSocketTransport):
    """A WebSocket over TLS (wss://): written from a writer greenlet, as TLS is."""

    __slots__ = ()
    writes_wait = True
    name = "wss"

    def __init__(
        self, sock: socket.socket, ws: WSConnection, text: bool, early: bytes = b""
    ) -> None:
        super().__init__(sock, ws, text, early)
        self.send_nowait = _refuse_send_nowait


def websocket_transport(
    sock: socket.socket, ws: WSConnection, text: bool, early: bytes = b""
) -> WebSocketTransport:
    """The WebSocket transport for an upgraded socket (wss when it is TLS)."""
    kind = SecureWebSocketTransport if isinstance(sock, gssl.SSLSocket) else WebSocketTransport
    return kind(sock, ws, text, early)


def _refuse_send_nowait(data: bytes) -> int:
    raise RuntimeError("a TLS session writes from a writer greenlet")


def transport_for(sock: socket.socket) -> Transport:
    """The transport for an accepted socket: TLS when the handshake wrapped it."""
    return TlsTransport(sock) if isinstance(sock, gssl.SSLSocket) else Transport(sock)
