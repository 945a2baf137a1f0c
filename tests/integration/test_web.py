"""The web listener (server/web.py): the page over HTTP, and IRC over WebSocket at the same URL.

A real server on free ports, real sockets: HTTP with http.client (or raw bytes for
what http.client cannot send), WebSockets with tests/ws_client.py (wsproto).
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import ssl
import time

import pytest
import trustme
from transcript import IrcClient
from ws_client import WsClient, masked_frame
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

IRC_LINE = re.compile(r"^(@\S+ )?(:\S+ )?([A-Za-z]+|\d{3})( .*)?$")


@pytest.fixture
def web(server):
    """The default server's web listener address."""
    return server.server.web_address


@pytest.fixture
def ws_clients():
    """Factory: WebSocket clients to an address, closed after the test."""
    made: list[WsClient] = []

    def make(address: tuple, **options) -> WsClient:
        client = WsClient(address, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def http_conn(address: tuple) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(*address, timeout=5)


def get(address: tuple, path: str, method: str = "GET", headers: dict | None = None):
    conn = http_conn(address)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def raw_request(address: tuple, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes (within ``timeout``)."""
    deadline = time.monotonic() + timeout
    got = b""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    return got


def status_of(response: bytes) -> int:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", response)
    assert match, f"not an HTTP response: {response[:200]!r}"
    return int(match.group(1))


def handshake_head(address: tuple, *lines: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    head = ["GET / HTTP/1.1", f"Host: {address[0]}:{address[1]}", *lines]
    head.append(f"Sec-WebSocket-Key: {key}")
    return ("\r\n".join(head) + "\r\n\r\n").encode()


# -- HTTP ---------------------------------------------------------------------


def test_page_and_its_files_are_served_with_etags(web):
    response, body = get(web, "/")
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/html")
    etag = response.getheader("ETag")
    assert etag
    assert "default-src 'none'" in response.getheader("Content-Security-Policy")
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert b"greenchat" in body.lower()
    for path in ("/app.js", "/style.css"):
        assert get(web, path)[0].status == 200, path
    response, body = get(web, "/", headers={"If-None-Match": etag})
    assert response.status == 304
    assert body == b""


def test_keep_alive_answers_two_requests_on_one_connection(web):
    conn = http_conn(web)
    try:
        conn.request("GET", "/")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        conn.request("GET", "/style.css")
        second = conn.getresponse()
        second.read()
        assert (first.status, second.status) == (200, 200)
        assert conn.sock is sock  # the same TCP connection
    finally:
        conn.close()


def test_http_errors(web):
    assert get(web, "/nope")[0].status == 404
    response, _ = get(web, "/", method="POST")
    assert response.status == 405
    assert "GET" in response.getheader("Allow")
    assert status_of(raw_request(web, b"THIS IS NOT HTTP\r\n\r\n")) == 400


def test_a_request_head_over_8_kib_is_431(web):
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    assert status_of(raw_request(web, big)) == 431


# -- the handshake --------------------------------------------------------------


def test_handshake_without_upgrade_or_with_a_wrong_version_is_400(web):
    no_upgrade = handshake_head(web, "Connection: Upgrade", "Sec-WebSocket-Version: 13")
    assert status_of(raw_request(web, no_upgrade)) == 400
    version_8 = handshake_head(
        web, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 8"
    )
    assert status_of(raw_request(web, version_8)) == 400


def test_origin_must_be_the_pages_own(web, ws_clients):
    own = f"http://{web[0]}:{web[1]}"
    refused = ws_clients(web).handshake(origin="http://evil.example")
    assert isinstance(refused, RejectConnection) and refused.status_code == 403
    assert isinstance(ws_clients(web).handshake(origin=own), AcceptConnection)
    assert isinstance(ws_clients(web).handshake(), AcceptConnection)  # not a browser


def test_configured_origins_replace_the_pages_own(make_server, ws_clients):
    address = make_server(web_origins=["http://ok.example"]).server.web_address
    assert isinstance(ws_clients(address).handshake(origin="http://ok.example"), AcceptConnection)
    own = ws_clients(address).handshake(origin=f"http://{address[0]}:{address[1]}")
    assert isinstance(own, RejectConnection) and own.status_code == 403


def test_slowloris_is_cut_off_and_others_are_served(make_server, connect):
    server = make_server(web_handshake_timeout=0.5)
    with socket.create_connection(server.server.web_address, timeout=5) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        connect("meanwhile", port=server.port).sync()
        slow.settimeout(5)
        answer = b""
        while chunk := slow.recv(4096):
            answer += chunk
        assert time.monotonic() - started < 5
    assert not answer or status_of(answer) == 408


# -- IRC over WebSocket ---------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen", "kind"),
    [
        (["binary.ircv3.net", "text.ircv3.net"], "binary.ircv3.net", BytesMessage),
        (["text.ircv3.net", "binary.ircv3.net"], "text.ircv3.net", TextMessage),
        ([], None, TextMessage),
    ],
)
def test_subprotocol_is_the_clients_first_choice(web, ws_clients, offered, chosen, kind):
    client = ws_clients(web)
    assert client.accepted(subprotocols=offered).subprotocol == chosen
    client.register("sub")
    assert client.messages and all(isinstance(m, kind) for m in client.messages)


def test_chat_both_ways_one_line_per_message(web, ws_clients, connect):
    webby = ws_clients(web)
    webby.accepted(subprotocols=["text.ircv3.net"])
    webby.register("webby").join("#lobby")
    tcp = connect("tcpy").join("#lobby")
    webby.expect(r"^:tcpy!\S+ JOIN #lobby$")
    webby.send_text("PRIVMSG #lobby :hi from the browser")
    tcp.expect(r"^:webby!\S+ PRIVMSG #lobby :hi from the browser$")
    tcp.send("PRIVMSG #lobby :hi from tcp")
    webby.expect(r"^:tcpy!\S+ PRIVMSG #lobby :hi from tcp$")
    for text in webby.texts():
        assert "\r" not in text and "\n" not in text, repr(text)
        assert IRC_LINE.match(text), f"not one IRC line: {text!r}"


def test_lines_sent_right_behind_the_handshake_are_not_lost(web, ws_clients):
    """A client need not wait for the 101: what arrives with the handshake is read
    first, and the connection goes on reading after it."""
    client = ws_clients(web)
    request = client.ws.send(Request(host=f"{web[0]}:{web[1]}", target="/"))
    client.send_raw(request + masked_frame(b"NICK eager") + masked_frame(b"USER e 0 * :E"))
    assert isinstance(client.next_event((AcceptConnection, RejectConnection)), AcceptConnection)
    client.expect(r" 001 eager ")
    client.join("#early")


@pytest.fixture
def pair(web, ws_clients, connect):
    """A WebSocket client 'webby' and a TCP client 'tcpy', both in #lobby."""
    webby = ws_clients(web)
    webby.accepted()
    webby.register("webby").join("#lobby")
    tcp = connect("tcpy").join("#lobby")
    webby.expect(r"^:tcpy!\S+ JOIN #lobby$")
    return webby, tcp


def test_fragments_carriage_returns_and_lengths(pair):
    webby, tcp = pair
    webby.send_text("PRIVMSG #lobby :hel", "lo wor", "ld")
    tcp.expect(r"^:webby!\S+ PRIVMSG #lobby :hello world$")
    webby.send_text("PRIVMSG #lobby :one\r\nPRIVMSG #lobby :two")
    webby.expect(r"^:\S+ 400 webby \* :Malformed line")
    webby.send_text("PRIVMSG #lobby :trailing crlf\r\n")
    tcp.expect(r"^:webby!\S+ PRIVMSG #lobby :trailing crlf$")
    webby.send_text("PRIVMSG #lobby :" + "x" * 584)
    webby.expect(r"^:\S+ 417 webby ")
    webby.send_text("PRIVMSG #lobby :still here")
    tcp.expect(r"^:webby!\S+ PRIVMSG #lobby :still here$")
    assert not any(":one" in line or ":two" in line for line in tcp.lines)


def test_a_huge_message_closes_the_connection(pair):
    webby, tcp = pair
    webby.send_text("PRIVMSG #lobby :" + "y" * 20 * 1024)
    webby.expect(r"^ERROR :.*Input line too long")
    assert webby.wait_closed() == 1000
    tcp.expect(r"^:webby!\S+ QUIT :Input line too long")


def test_ping_frame_gets_its_pong(pair):
    webby, _ = pair
    webby.send(Ping(payload=b"are you there"))
    pong = webby.next_event((Pong,))
    assert pong.payload == b"are you there"


def test_client_close_is_answered_and_peers_see_a_quit(pair):
    webby, tcp = pair
    webby.send(CloseConnection(code=1000))
    assert webby.wait_closed() == 1000
    tcp.expect(r"^:webby!\S+ QUIT :Connection closed")


def test_invalid_utf8_in_a_text_frame_closes_with_1007(pair):
    webby, tcp = pair
    webby.send_raw(masked_frame(b"\xff\xfe"))
    assert webby.wait_closed() == 1007
    tcp.expect(r"^:webby!\S+ QUIT :Invalid UTF-8")


def test_a_websocket_that_stops_reading_is_dropped_for_sendq(make_server, ws_clients):
    server = make_server(sendq=16 * 1024, flood_rate=0)
    stuck = ws_clients(server.server.web_address, rcvbuf=4096)
    stuck.accepted()
    stuck.register("stuck").join("#flood")
    talker = IrcClient(server.port).register("talker").join("#flood")
    try:
        # Kernel buffers on loopback hold megabytes: flood until the server gives up,
        # bounded by time rather than a line count.
        deadline = time.monotonic() + 30
        line = ("PRIVMSG #flood :" + "x" * 400 + "\r\n").encode()
        quit_line = None
        while quit_line is None and time.monotonic() < deadline:
            talker.send_raw(line * 50)
            quit_line = _quit_seen(talker)
        if quit_line is None:
            quit_line = talker.expect(r"^:stuck!\S+ QUIT ", timeout=10).string
        assert "QUIT :SendQ exceeded" in quit_line
    finally:
        talker.close()


def _quit_seen(client: IrcClient) -> str | None:
    """A QUIT of 'stuck' among the lines already received (never waits long)."""
    while True:
        try:
            line = client.read_line(timeout=0.001)
        except TimeoutError:
            return None
        if line is None or (line.startswith(":stuck!") and " QUIT " in line):
            return line


def test_max_per_ip_counts_websockets_and_tcp_together(make_server, ws_clients):
    server = make_server(max_per_ip=2, max_per_ip_exempt=[])
    web = server.server.web_address
    tcp = IrcClient(server.port).register("first")
    try:
        second = ws_clients(web)
        second.accepted()
        second.register("second")
        third = ws_clients(web)  # the third connection from 127.0.0.1, and a WebSocket
        third.accepted()
        third.expect(r"^ERROR :Too many connections from your address")
        assert third.wait_closed() == 1000
        tcp.send("PING :still-here")
        tcp.expect(r"PONG \S+ :?still-here")
    finally:
        tcp.close()


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(make_server, ws_clients):
    proxied = make_server(web_trusted_proxies=["127.0.0.0/8"])
    direct = make_server()
    header = {"X-Forwarded-For": "198.51.100.20, 203.0.113.7"}
    behind = ws_clients(proxied.server.web_address)
    behind.accepted(headers=header)
    behind.register("behind").join("#lobby")
    behind.expect(r":behind!~behind@203\.0\.113\.7 JOIN #lobby")
    spoofer = ws_clients(direct.server.web_address)
    spoofer.accepted(headers=header)
    spoofer.register("spoofer").join("#lobby")
    spoofer.expect(r":spoofer!~spoofer@127\.0\.0\.1 JOIN #lobby")


def test_labeled_replies_and_late_caps_keep_websocket_frames_whole(web, ws_clients, connect):
    """Relays reach a WebSocket already framed; a labeled reply captures them as plain
    lines to tag them, and a capability requested later changes their form."""
    browser = ws_clients(web)
    browser.accepted()
    browser.send_lines("CAP LS 302", "CAP REQ :labeled-response echo-message batch")
    browser.expect(r" CAP \* ACK ")
    browser.send_lines("CAP END")
    browser.register("labels")
    browser.send_lines("@label=j1 JOIN #lobby")
    browser.expect(r"^@label=j1 :\S+ BATCH \+(\S+) labeled-response$")
    browser.expect(r"^@batch=\S+ :labels!\S+ JOIN #lobby$")
    browser.send_lines("@label=m1 PRIVMSG #lobby :echoed")
    browser.expect(r"^@label=m1 :labels!\S+ PRIVMSG #lobby :echoed$")
    browser.send_lines("CAP REQ server-time")
    browser.expect(r" CAP labels ACK :?server-time")
    other = connect().register("other").join("#lobby")
    other.send("PRIVMSG #lobby :timed")
    browser.expect(r"^@time=\S+ :other!\S+ PRIVMSG #lobby :timed$")
    assert all(IRC_LINE.match(text) for text in browser.texts()), browser.texts()


def test_websocket_sessions_are_labelled_ws(server, web, ws_clients):
    client = ws_clients(web)
    client.accepted()
    client.register("labelled")
    names = server.call(lambda: sorted(s.transport.name for s in server.server.sessions))
    assert names == ["ws"]


# -- TLS: https and wss ---------------------------------------------------------------


@pytest.fixture
def secure_web(make_server, tmp_path):
    """A server with --web-tls-port, and a client context that trusts its certificate."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    server = make_server(web_tls_port=0, tls_cert=cert_file, tls_key=key_file)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return server, context


def test_https_serves_the_page_and_wss_chats_with_tcp(secure_web, ws_clients, connect):
    server, context = secure_web
    address = server.server.web_tls_address
    conn = http.client.HTTPSConnection(*address, timeout=5, context=context)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200 and b"app.js" in response.read()
    finally:
        conn.close()

    # A page served over https opens wss from its own https:// origin.
    browser = ws_clients(address, tls=context)
    browser.accepted(origin=f"https://{address[0]}:{address[1]}")
    browser.register("secure").join("#lobby")
    other = connect(port=server.port).register("plain").join("#lobby")
    browser.send_lines("PRIVMSG #lobby :over wss")
    other.expect(r":secure!\S+ PRIVMSG #lobby :over wss")
    other.send("PRIVMSG #lobby :over tcp")
    browser.expect(r":plain!\S+ PRIVMSG #lobby :over tcp")
    names = server.call(lambda: sorted(s.transport.name for s in server.server.sessions))
    assert names == ["tcp", "wss"]


def test_wss_refuses_the_plain_http_origin(secure_web, ws_clients):
    server, context = secure_web
    address = server.server.web_tls_address
    client = ws_clients(address, tls=context)
    answer = client.handshake(origin=f"http://{address[0]}:{address[1]}")
    assert isinstance(answer, RejectConnection) and answer.status_code == 403
