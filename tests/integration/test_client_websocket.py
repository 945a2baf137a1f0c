"""The client library over WebSocket against a live server's web port.

The server runs in its own thread (tests/transcript.py); the clients on this
thread's gevent hub. Every wait has a deadline and waits for a line, not a time.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest
import trustme
from gevent import socket
from gevent.queue import Queue

from greenchat.client import (
    ClientError,
    ClientEvent,
    Connected,
    GaveUp,
    IrcClient,
    MessageEvent,
    Reconnecting,
)
from greenchat.client.websocket import WebSocketLink
from greenchat.protocol.message import Message
from greenchat.protocol.websocket import BINARY, TEXT

TIMEOUT = 5


@pytest.fixture
def web_port(server) -> int:
    return server.server.web_address[1]


def privmsg_from(nick: str, text: str) -> Callable[[Message], bool]:
    return lambda m: (
        m.command == "PRIVMSG" and m.source.startswith(f"{nick}!") and m.params[-1] == text
    )


def test_a_websocket_client_chats_with_a_tcp_client(server, web_port, clients):
    web = clients(web_port, "webby", websocket=True).connect(timeout=TIMEOUT)
    tcp = clients(server.port, "tcpy").connect(timeout=TIMEOUT)
    assert "server-time" in web.caps and web.nick == "webby"
    web.join("#lobby")
    assert tcp.join("#lobby").nicks == ["tcpy", "webby"]
    web.privmsg("#lobby", "hello from a browser-ish client, café")
    tcp.wait_for(privmsg_from("webby", "hello from a browser-ish client, café"), TIMEOUT)
    tcp.privmsg("#lobby", "hello back over TCP")
    message = web.wait_for(privmsg_from("tcpy", "hello back over TCP"), TIMEOUT)
    assert "time" in message.tags
    transports = server.call(
        lambda: {s.user.nick: s.transport.name for s in server.server.sessions}
    )
    assert transports == {"webby": "ws", "tcpy": "tcp"}


def test_wss_with_a_trusted_ca(make_server, clients, tmp_path):
    """``tls=True`` with ``websocket=True`` is wss://, to the web listener's TLS port."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    server = make_server(web_tls_port=0, tls_cert=cert_file, tls_key=key_file)
    port = server.server.web_tls_address[1]
    web = clients(port, "secure", websocket=True, tls=True, tls_cafile=str(ca_file))
    assert web.connect(timeout=TIMEOUT).join("#tls").nicks == ["secure"]


def test_quit_over_websocket_closes_cleanly(server, web_port, clients):
    watcher = clients(server.port, "watcher").connect(timeout=TIMEOUT)
    watcher.join("#q")
    web = clients(web_port, "leaver", websocket=True).connect(timeout=TIMEOUT)
    web.join("#q")
    seen = events_of(watcher)
    web.quit("bye from the web")
    assert web.stopped.is_set()
    assert web.last_error.startswith("server closed the connection: Closing Link"), web.last_error
    quit_line = next_message(seen, lambda m: m.command == "QUIT")
    assert quit_line.source.startswith("leaver!")
    assert quit_line.params == ("Quit: bye from the web",)


def test_reconnects_over_websocket_and_rejoins(server, web_port, clients):
    web = clients(web_port, "phoenix", websocket=True, backoff_base=0.05, backoff_max=0.1)
    web.connect(timeout=TIMEOUT).join("#keep")
    seen = events_of(web)

    def drop() -> None:
        session = next(s for s in server.server.sessions if s.user.nick == "phoenix")
        session.disconnect("dropped by the test")

    server.call(drop)
    error = next_message(seen, lambda m: m.command == "ERROR")
    assert "dropped by the test" in error.params[-1]
    next_event(seen, lambda e: isinstance(e, Reconnecting))
    next_event(seen, lambda e: isinstance(e, Connected) and e.port == web_port)
    next_message(seen, lambda m: m.command == "366" and m.params[1] == "#keep")
    assert web.registered.is_set() and "#keep" in web.state.channels


def events_of(client: IrcClient) -> Queue:
    """A queue of the client's events from now on."""
    queue: Queue = Queue()
    client.subscribe(queue.put)
    return queue


def next_event(queue: Queue, match: Callable[[ClientEvent], bool]) -> ClientEvent:
    """The next queued event ``match`` accepts, within TIMEOUT."""
    with gevent.Timeout(TIMEOUT, AssertionError("no such event in time")):
        while not match(event := queue.get()):
            pass
    return event


def next_message(queue: Queue, match: Callable[[Message], bool]) -> Message:
    event = next_event(queue, lambda e: isinstance(e, MessageEvent) and match(e.message))
    return event.message


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [((TEXT, BINARY), TEXT), ((BINARY, TEXT), BINARY), ((BINARY,), BINARY), ((), None)],
)
def test_the_link_speaks_the_subprotocol_the_server_chose(server, web_port, connect, offered,
                                                          chosen):  # fmt: skip
    """Binary carries a line's bytes as they are, text (also when none was agreed) as UTF-8:
    a line that is not UTF-8 reaches this UTF8ONLY server as it is, or with U+FFFD."""
    tcp = connect("plain").join("#lobby")
    sock = socket.create_connection(("127.0.0.1", web_port), timeout=TIMEOUT)
    link = WebSocketLink(sock, f"127.0.0.1:{web_port}", subprotocols=offered)
    try:
        link.handshake(TIMEOUT)
        assert link.subprotocol == chosen and link.binary == (chosen == BINARY)
        lines = LinkLines(link)
        link.sendall(b"NICK linky\r\nUSER linky 0 * :link\r\n")
        lines.expect(b" 001 linky ")
        link.sendall(b"JOIN #lobby\r\n")
        lines.expect(b" 366 linky #lobby ")
        link.sendall("PRIVMSG #lobby :café\r\n".encode())
        (seen,) = tcp.count_lines(b"PRIVMSG #lobby", 1, timeout=TIMEOUT)
        assert seen.endswith(" PRIVMSG #lobby :café".encode())
        tcp.send("PRIVMSG #lobby :über")
        assert lines.expect(b"PRIVMSG #lobby").endswith(" PRIVMSG #lobby :über".encode())
        link.sendall(b"PRIVMSG #lobby :na\xefve\r\n")  # not UTF-8
        if link.binary:
            lines.expect(b" FAIL PRIVMSG INVALID_UTF8 ")
        else:
            (seen,) = tcp.count_lines(b"PRIVMSG #lobby", 1, timeout=TIMEOUT)
            assert seen.endswith(b" PRIVMSG #lobby :na\xef\xbf\xbdve")
    finally:
        link.close()


class LinkLines:
    """Lines read from a link, searched by a marker with a deadline."""

    def __init__(self, link: WebSocketLink) -> None:
        self.link = link
        self.buffer = b""

    def expect(self, marker: bytes) -> bytes:
        with gevent.Timeout(TIMEOUT, AssertionError(f"no line with {marker!r}: {self.buffer!r}")):
            while True:
                *lines, rest = self.buffer.split(b"\r\n")
                for i, line in enumerate(lines):
                    if marker in line:
                        self.buffer = b"\r\n".join([*lines[i + 1 :], rest])
                        return line
                data = self.link.recv(65536)
                assert data, f"closed waiting for {marker!r}"
                self.buffer += data


def test_a_refused_handshake_is_a_clear_connect_error(web_port, clients, capsys):
    lost = clients(web_port, "lost", websocket=True, websocket_path="/irc", reconnect=False)
    with pytest.raises(ClientError, match="not registered"):
        lost.connect(timeout=TIMEOUT)
    assert lost.last_error == (
        f"cannot connect to 127.0.0.1:{web_port}: HTTP 404 Not Found: the WebSocket is at /"
    )
    assert "Traceback" not in capsys.readouterr().err


def test_the_irc_port_is_not_a_websocket(server, clients, capsys):
    port = server.port  # once: on two nodes each read gives the next node's
    confused = clients(port, "confused", websocket=True, reconnect=False)
    events = []
    confused.subscribe(events.append)
    with pytest.raises(ClientError):
        confused.connect(timeout=TIMEOUT)
    assert confused.last_error.startswith(
        f"cannot connect to 127.0.0.1:{port}: not a WebSocket server: it answered"
    ), confused.last_error
    assert isinstance(events[-1], GaveUp)
    assert "Traceback" not in capsys.readouterr().err
