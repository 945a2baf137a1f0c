"""The client's WebSocket link against a scripted wsproto server over a socket pair.

The peer is driven step by step from the test; the link's blocking calls run
in greenlets where they wait for it. Every wait has a deadline.
"""

from __future__ import annotations

import contextlib
from collections import deque

import gevent
import pytest
from gevent import socket
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from greenchat.client.websocket import HandshakeError, WebSocketLink

TIMEOUT = 5


class Peer:
    """The server's end: wsproto events in, bytes out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ws = WSConnection(ConnectionType.SERVER)
        self.pending: deque[Event] = deque()

    def send(self, *events: Event) -> None:
        self.sock.sendall(b"".join(self.ws.send(event) for event in events))

    def next(self, kind: type) -> Event:
        """The next event of ``kind`` the link sent (others are dropped)."""
        with gevent.Timeout(TIMEOUT, AssertionError(f"no {kind.__name__} from the link")):
            while True:
                while self.pending:
                    event = self.pending.popleft()
                    if isinstance(event, kind):
                        return event
                data = self.sock.recv(65536)
                self.ws.receive_data(data or None)
                self.pending.extend(self.ws.events())

    def accept(self, subprotocol: str | None) -> Request:
        request = self.next(Request)
        self.send(AcceptConnection(subprotocol=subprotocol))
        return request


@pytest.fixture
def pair():
    """A link (not yet upgraded) and the peer at the other end of a socket pair."""
    ours, theirs = socket.socketpair()
    link = WebSocketLink(ours, "irc.example:8547")
    yield link, Peer(theirs)
    link.close()
    with contextlib.suppress(OSError):
        theirs.close()


def opened(pair, subprotocol: str | None) -> tuple[WebSocketLink, Peer]:
    link, peer = pair
    shaking = gevent.spawn(link.handshake, TIMEOUT)
    request = peer.accept(subprotocol)
    shaking.get(timeout=TIMEOUT)
    assert request.host == "irc.example:8547" and request.target == "/"
    assert request.subprotocols == ["text.ircv3.net", "binary.ircv3.net"]
    return link, peer


def recv_lines(link: WebSocketLink, count: int) -> list[bytes]:
    """``count`` CRLF-terminated lines from the link."""
    data = b""
    with gevent.Timeout(TIMEOUT, AssertionError(f"fewer than {count} lines: {data!r}")):
        while data.count(b"\r\n") < count:
            chunk = link.recv(65536)
            assert chunk, f"closed after {data!r}"
            data += chunk
    return data.split(b"\r\n")[:-1]


def test_text_lines_go_one_message_each_without_line_endings(pair):
    link, peer = opened(pair, "text.ircv3.net")
    assert link.subprotocol == "text.ircv3.net" and not link.binary
    link.sendall(b"NICK a\r\nUSER a 0 * :caf\xc3\xa9\r\nPRIVMSG #x :bad \xff byte\r\n")
    got = [peer.next(TextMessage).data for _ in range(3)]
    assert got == ["NICK a", "USER a 0 * :café", "PRIVMSG #x :bad \ufffd byte"]


def test_binary_lines_are_sent_as_they_are(pair):
    link, peer = opened(pair, "binary.ircv3.net")
    assert link.binary
    link.sendall(b"PRIVMSG #x :bad \xff byte\r\nPING t\r\n")
    assert [peer.next(BytesMessage).data for _ in range(2)] == [b"PRIVMSG #x :bad \xff byte",
                                                                 b"PING t"]  # fmt: skip


def test_a_server_that_picks_no_subprotocol_speaks_text(pair):
    link, peer = opened(pair, None)
    assert link.subprotocol is None and not link.binary
    link.sendall(b"PING t\r\n")
    assert peer.next(TextMessage).data == "PING t"


def test_received_messages_become_lines_fragments_joined(pair):
    link, peer = opened(pair, "binary.ircv3.net")
    peer.send(
        BytesMessage(data=b":srv 001 a :hel", message_finished=False),
        BytesMessage(data=b"lo", message_finished=True),
        TextMessage(data=":srv NOTICE a :café"),
    )
    assert recv_lines(link, 2) == [b":srv 001 a :hello", ":srv NOTICE a :café".encode()]


def test_frames_that_come_with_the_101_are_kept_and_recv_respects_its_size(pair):
    link, peer = pair
    shaking = gevent.spawn(link.handshake, TIMEOUT)
    peer.next(Request)
    accept = peer.ws.send(AcceptConnection(subprotocol="text.ircv3.net"))
    peer.sock.sendall(accept + peer.ws.send(TextMessage(data="PING :hello")))
    shaking.get(timeout=TIMEOUT)
    assert link.recv(4) == b"PING"
    assert link.recv(65536) == b" :hello\r\n"


def test_pings_are_answered(pair):
    link, peer = opened(pair, "text.ircv3.net")
    peer.send(Ping(payload=b"hb"), TextMessage(data="PING t"))
    assert recv_lines(link, 1) == [b"PING t"]
    assert peer.next(Pong).payload == b"hb"


def test_the_servers_close_is_answered_and_ends_the_stream(pair):
    link, peer = opened(pair, "text.ircv3.net")
    peer.send(TextMessage(data="ERROR :Closing Link"), CloseConnection(code=1000))
    assert recv_lines(link, 1) == [b"ERROR :Closing Link"]
    assert link.recv(65536) == b""
    assert peer.next(CloseConnection).code == 1000
    with pytest.raises(BrokenPipeError):  # the writer's next send ends it, as on a socket
        link.sendall(b"PING late\r\n")


def test_a_vanished_server_ends_the_stream(pair):
    link, peer = opened(pair, "text.ircv3.net")
    peer.sock.close()
    with gevent.Timeout(TIMEOUT):
        assert link.recv(65536) == b""


def test_a_refusal_names_the_http_status_and_the_servers_text(pair):
    link, peer = pair
    shaking = gevent.spawn(link.handshake, TIMEOUT)
    peer.next(Request)
    body = b"this origin may not connect"
    peer.send(
        RejectConnection(status_code=403, headers=[(b"content-length", b"%d" % len(body))],
                         has_body=True),
        RejectData(data=body),
    )  # fmt: skip
    with pytest.raises(HandshakeError, match=r"^HTTP 403 Forbidden: this origin may not connect$"):
        shaking.get(timeout=TIMEOUT)


def test_a_reply_that_is_not_http_is_a_handshake_error(pair):
    link, peer = pair
    shaking = gevent.spawn(link.handshake, TIMEOUT)
    peer.next(Request)
    peer.sock.sendall(b":irc.example 451 * :You have not registered\r\n")
    answered = r"^not a WebSocket server: it answered ':irc\.example 451 "
    with pytest.raises(HandshakeError, match=answered):
        shaking.get(timeout=TIMEOUT)


def test_no_reply_in_time_is_a_handshake_error(pair):
    link, peer = pair
    with pytest.raises(HandshakeError, match=r"no WebSocket handshake reply within 0\.2s"):
        link.handshake(0.2)
    assert isinstance(peer.next(Request), Request)


def test_closed_before_replying_is_a_handshake_error(pair):
    link, peer = pair
    shaking = gevent.spawn(link.handshake, TIMEOUT)
    peer.next(Request)
    peer.sock.close()
    with pytest.raises(HandshakeError, match="closed without a WebSocket handshake reply"):
        shaking.get(timeout=TIMEOUT)


def test_a_refusal_whose_body_ends_with_the_connection(pair):
    link, peer = pair
    shaking = gevent.spawn(link.handshake, TIMEOUT)
    peer.next(Request)
    peer.sock.sendall(b"HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\nnot here")
    peer.sock.close()
    with pytest.raises(HandshakeError, match=r"^HTTP 404 Not Found: not here$"):
        shaking.get(timeout=TIMEOUT)
