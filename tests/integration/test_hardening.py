"""Flood control, connection limits and TLS on a real server over real sockets."""

from __future__ import annotations

import socket
import ssl
import time

import pytest
import trustme
from transcript import IrcClient

from greenchat.server.oper import hash_password

PASSWORD = "s3cret"


def numbered(count: int, target: str = "#f") -> bytes:
    return "".join(f"PRIVMSG {target} :n {i}\r\n" for i in range(count)).encode()


def read_numbers(client: IrcClient, count: int) -> list[int]:
    lines = client.count_lines(b" PRIVMSG #f :n ", count, timeout=30)
    return [int(line.rsplit(b" ", 1)[1]) for line in lines]


# -- flood control -----------------------------------------------------------------------


def test_excess_lines_are_delayed_not_dropped(make_server):
    server = make_server(flood_burst=10, flood_rate=100)
    watcher = IrcClient(server.port).register("watcher").join("#f")
    flooder = IrcClient(server.port).register("flooder").join("#f")
    watcher.expect(r"^:flooder!\S+ JOIN #f$")
    started = time.monotonic()
    flooder.send_raw(numbered(200))
    assert read_numbers(watcher, 200) == list(range(200))
    # 190 lines past the burst at 100 a second cannot all arrive sooner than 1.9 s
    # minus the tokens the JOINs left over: flood control really held them back.
    assert time.monotonic() - started > 1.5
    flooder.sync()


def test_past_the_receive_queue_a_flooder_is_dropped(make_server):
    server = make_server(flood_burst=5, flood_rate=1, recvq=4096)
    watcher = IrcClient(server.port).register("watcher").join("#f")
    flooder = IrcClient(server.port).register("flooder").join("#f")
    watcher.expect(r"^:flooder!\S+ JOIN #f$")
    flooder.send_in_background(numbered(2000))
    assert "ERROR :Excess Flood" in flooder.expect_closed()
    watcher.expect(r"^:flooder!\S+ QUIT :Excess Flood$")
    # Everyone else is served as before.
    other = IrcClient(server.port).register("other").join("#f")
    other.send("PRIVMSG #f :still here")
    watcher.expect(r"^:other!\S+ PRIVMSG #f :still here$")


def test_defaults_let_a_client_join_50_channels_right_after_connecting(server):
    client = IrcClient(server.port)
    joins = "".join(f"JOIN #room{i}\r\n" for i in range(50))
    started = time.monotonic()
    client.send_raw(f"NICK busy\r\nUSER busy 0 * :Busy\r\n{joins}".encode())
    for i in range(50):
        client.expect(rf" 366 busy #room{i} ")
    # Fakelag at the default rate would spread the 50 JOINs over 10 s and more.
    assert time.monotonic() - started < 5


def test_operators_are_exempt(make_server):
    server = make_server(flood_burst=5, flood_rate=1, opers={"admin": hash_password(PASSWORD)})
    watcher = IrcClient(server.port).register("watcher").join("#f")
    admin = IrcClient(server.port).register("admin")
    admin.send(f"OPER admin {PASSWORD}")
    admin.expect(" 381 admin ")
    admin.join("#f")
    watcher.expect(r"^:admin!\S+ JOIN #f$")
    admin.send_raw(numbered(300))
    # At 1 line a second these would take five minutes; the deadline is 30 s.
    assert read_numbers(watcher, 300) == list(range(300))


def test_flood_rate_zero_turns_it_off(make_server):
    server = make_server(flood_burst=1, flood_rate=0)
    watcher = IrcClient(server.port).register("watcher").join("#f")
    sender = IrcClient(server.port).register("sender").join("#f")
    watcher.expect(r"^:sender!\S+ JOIN #f$")
    sender.send_raw(numbered(500))
    assert read_numbers(watcher, 500) == list(range(500))


# -- connection limits ---------------------------------------------------------------------


@pytest.mark.single_process("--max-clients counts this server's own connections, per node")
def test_server_full(make_server):
    server = make_server(max_clients=2)
    first = IrcClient(server.port).register("first")
    second = IrcClient(server.port).register("second")
    refused = IrcClient(server.port)
    assert refused.expect_closed() == ["ERROR :Server full"]
    first.send("QUIT :bye")
    first.expect_closed()
    # A slot is free again.
    IrcClient(server.port).register("third")
    second.sync()


@pytest.mark.single_process("--max-per-ip counts this server's own connections, per node")
def test_connections_per_address(make_server):
    server = make_server(max_per_ip=2, max_per_ip_exempt=[])
    clients = [IrcClient(server.port).register(f"c{i}") for i in range(2)]
    refused = IrcClient(server.port)
    assert refused.expect_closed() == ["ERROR :Too many connections from your address"]
    clients[0].send("QUIT")
    clients[0].expect_closed()
    IrcClient(server.port).register("c9")


def test_loopback_is_exempt_from_the_address_limit_by_default(make_server):
    server = make_server(max_per_ip=1)
    clients = [IrcClient(server.port).register(f"c{i}") for i in range(3)]
    clients[-1].sync()


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(make_server, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    server = make_server(
        tls_port=0, tls_cert=cert_file, tls_key=key_file, tls_handshake_timeout=0.5,
        sts_duration=0,
    )  # fmt: skip
    server.cert_files = (cert_file, key_file)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    server.tls_client = lambda nick=None: _tls_client(server, context, nick)
    server.tls_context = context
    return server


def _tls_client(server, context, nick):
    port = server.server.tls_address[1]
    client = IrcClient(port, tls=context)
    return client.register(nick) if nick else client


def test_tls_clients_chat_with_plain_ones(tls_server):
    secure = tls_server.tls_client("secure").join("#mixed")
    plain = IrcClient(tls_server.port).register("plain").join("#mixed")
    secure.expect(r"^:plain!\S+ JOIN #mixed$")
    secure.send("PRIVMSG #mixed :over TLS")
    plain.expect(r"^:secure!\S+ PRIVMSG #mixed :over TLS$")
    plain.send("PRIVMSG #mixed :in the clear")
    secure.expect(r"^:plain!\S+ PRIVMSG #mixed :in the clear$")


def test_tls_quit_gets_its_error_line_encrypted(tls_server):
    client = tls_server.tls_client("leaving")
    client.send("QUIT :done")
    assert any(line.startswith("ERROR :") for line in client.expect_closed())


def test_stalled_tls_handshake_is_dropped_and_holds_no_slot(tls_server):
    tls_server.server.config.max_clients = 1
    stalled = socket.create_connection(("127.0.0.1", tls_server.server.tls_address[1]))
    stalled.settimeout(5)
    # Never sends a ClientHello; meanwhile the one client slot is free for others.
    tls_server.tls_client("real").sync()
    started = time.monotonic()
    assert stalled.recv(100) == b""  # closed by the server's handshake timeout
    assert time.monotonic() - started < 3
    stalled.close()


# -- secrets ------------------------------------------------------------------------------


def test_a_failing_password_command_never_logs_the_password(server, monkeypatch, caplog):
    """Even when a handler breaks, the log names PASS/OPER but not their parameters."""
    from dataclasses import replace

    from greenchat.server.commands.table import COMMANDS

    def broken(server, conn, msg):
        raise RuntimeError("simulated handler bug")

    # The only stand-in in this file: no real input makes the OPER handler raise.
    monkeypatch.setitem(COMMANDS, "OPER", replace(COMMANDS["OPER"], handler=broken))
    client = IrcClient(server.port).register("leaky")
    client.send("OPER admin hunter2-secret")
    client.expect(r" 400 leaky OPER :Internal error$")
    assert "error handling OPER from" in caplog.text
    assert "hunter2-secret" not in caplog.text


def test_sts_names_the_tls_port_on_plain_connections_and_a_duration_over_tls(tls_server):
    """IRCv3 sts with a TLS listener: CAP LS over plain TCP says ``port=<TLS port>``
    (the client reconnects there), over TLS ``duration=<--sts-duration>``."""
    node = getattr(tls_server, "nodes", [tls_server])[0]
    plain = IrcClient(node.port)
    plain.send("CAP LS 302")
    caps = plain.read_cap_ls()
    assert f"sts=port={node.server.tls_address[1]}" in caps, caps
    secure = _tls_client(node, tls_server.tls_context, None)
    secure.send("CAP LS 302")
    assert "sts=duration=0" in secure.read_cap_ls()


def test_no_sts_without_a_tls_listener_or_unless_asked(connect, make_server, tls_server):
    client = connect()
    client.send("CAP LS 302")
    assert not any(cap.startswith("sts") for cap in client.read_cap_ls())
    cert_file, key_file = tls_server.cert_files
    quiet = make_server(tls_port=0, tls_cert=cert_file, tls_key=key_file)  # no --sts-duration
    other = IrcClient(quiet.port)
    other.send("CAP LS 302")
    assert not any(cap.startswith("sts") for cap in other.read_cap_ls())
    other.close()
