"""The gevent client library against a live server: registration, caps, events, reconnect, TLS.

The server runs in its own thread (tests/transcript.py); the client runs on
this thread's gevent hub, exactly as an application would use it.
"""

from __future__ import annotations

import contextlib
import time

import gevent
import pytest
import trustme
from gevent import ssl as gssl
from gevent.server import StreamServer
from gevent.socket import create_connection
from transcript import ServerThread

from greenchat.client import (
    ClientError,
    Disconnected,
    GaveUp,
    JoinError,
    MessageEvent,
    Reconnecting,
    Registered,
)


def test_registers_with_the_caps_it_wants(server, clients):
    client = clients(server.port, "libuser").connect(timeout=5)
    assert client.nick == "libuser"
    for cap in ("server-time", "echo-message", "message-tags", "batch", "multi-prefix"):
        assert cap in client.caps
    assert client.state.isupport["CASEMAPPING"] == "rfc1459"


def test_without_caps_registers_without_cap_negotiation(server, clients):
    client = clients(server.port, "oldschool", caps=()).connect(timeout=5)
    assert client.caps == frozenset()


def test_nick_collisions_and_bad_nicks_are_resolved(server, clients):
    clients(server.port, "taken").connect(timeout=5)
    second = clients(server.port, "taken").connect(timeout=5)
    assert second.nick == "taken_"
    bad = clients(server.port, "9bad").connect(timeout=5)
    assert bad.nick.startswith("guest")


def test_join_waits_for_names_and_tracks_members(server, clients):
    alice = clients(server.port, "alice").connect(timeout=5)
    bob = clients(server.port, "bob").connect(timeout=5)
    assert alice.join("#lobby").nicks == ["alice"]
    assert bob.join("#LOBBY").nicks == ["alice", "bob"]
    alice.sync()
    assert alice.state.channels["#lobby"].nicks == ["alice", "bob"]
    bob.send("NICK robert")
    alice.wait_for(lambda m: m.command == "NICK", timeout=5)
    assert alice.state.channels["#lobby"].nicks == ["alice", "robert"]
    bob.part("#lobby", "later")
    alice.wait_for(lambda m: m.command == "PART", timeout=5)
    assert alice.state.channels["#lobby"].nicks == ["alice"]


def test_join_refused_raises_join_error(server, clients):
    op = clients(server.port, "op").connect(timeout=5)
    op.join("#locked")
    op.send("MODE #locked +k sesame")
    op.sync()
    guest = clients(server.port, "guest").connect(timeout=5)
    with pytest.raises(JoinError) as info:
        guest.join("#locked")
    assert info.value.numeric == "475"
    assert guest.join("#locked", key="sesame").nicks == ["guest", "op"]


def test_messages_arrive_as_events_with_server_time(server, clients):
    alice = clients(server.port, "alice").connect(timeout=5)
    bob = clients(server.port, "bob").connect(timeout=5)
    alice.join("#chat")
    bob.join("#chat")
    seen: list = []
    unsubscribe = alice.subscribe(seen.append)
    bob_saw: list = []
    bob.subscribe(bob_saw.append)
    bob.privmsg("#chat", "hello alice")
    message = alice.wait_for(lambda m: m.command == "PRIVMSG", timeout=5)
    assert message.params == ("#chat", "hello alice") and "time" in message.tags
    assert any(isinstance(e, MessageEvent) and e.message == message for e in seen)
    unsubscribe()
    # echo-message: bob's own line comes back to him, as others see it.
    bob.sync()
    echoes = [e.message for e in bob_saw if isinstance(e, MessageEvent)]
    assert [m.params for m in echoes if m.command == "PRIVMSG"] == [("#chat", "hello alice")]


def test_iterating_events(server, clients):
    client = clients(server.port, "iter").start()
    kinds = []
    for event in client.events(timeout=5):
        kinds.append(type(event).__name__)
        if isinstance(event, Registered):
            break
    assert kinds[0] == "Connected" and kinds[-1] == "Registered"


def test_wait_for_times_out_with_client_error(server, clients):
    client = clients(server.port, "waiter").connect(timeout=5)
    with pytest.raises(ClientError):
        client.wait_for(lambda m: m.command == "NEVER", timeout=0.2)


def test_answers_server_pings(make_server, clients):
    server = make_server(ping_interval=0.2, ping_timeout=0.3)
    client = clients(server.port, "pinged").connect(timeout=5)
    client.wait_for(lambda m: m.command == "PING", timeout=5)
    gevent.sleep(0.8)  # longer than interval + timeout: only PONGs keep it alive
    client.sync(timeout=2)


def test_reconnects_and_rejoins_after_server_restart(clients):
    first = ServerThread().start()
    port = first.port
    client = clients(port, "phoenix", backoff_base=0.05, backoff_max=0.2).connect(timeout=5)
    client.join("#keep")
    events: list = []
    client.subscribe(events.append)
    first.stop()
    with gevent.Timeout(10):
        while not any(isinstance(e, Reconnecting) for e in events):
            gevent.sleep(0.02)
    assert any(isinstance(e, Disconnected) and e.will_retry for e in events)
    assert "#keep" not in client.state.channels  # forgotten while disconnected
    second = ServerThread(port=port).start()
    try:
        with gevent.Timeout(10):
            while "#keep" not in client.state.channels:
                gevent.sleep(0.02)
        assert client.registered.is_set()
        assert second.call(lambda: "#keep" in second.server.hub.channels)
    finally:
        client.close()
        second.stop()


def test_gives_up_after_max_retries(clients):
    server = ServerThread().start()
    client = clients(server.port, "quitter", max_retries=2, backoff_base=0.01).connect(timeout=5)
    server.stop()
    events = list(client.events(timeout=10))
    assert isinstance(events[-1], GaveUp) and events[-1].attempts == 2
    assert sum(isinstance(e, Reconnecting) for e in events) == 2
    assert client.stopped.wait(5)


def test_quit_sends_quit_and_stops(server, clients, connect):
    watcher = connect("watcher").join("#q")
    client = clients(server.port, "leaver").connect(timeout=5)
    client.join("#q")
    client.quit("see you")
    assert client.stopped.is_set()
    watcher.expect(r"^:leaver!\S+ QUIT :Quit: see you$")


@pytest.fixture
def tls_proxy(server, tmp_path):
    """A TLS listener in the server's thread that forwards to the plain IRC port."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    # gevent's SSLContext: a stdlib one would block the server thread's hub.
    context = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    def pipe(src, dst) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.close()

    def handle(tls_sock, _address) -> None:
        plain = create_connection(("127.0.0.1", server.port))
        gevent.spawn(pipe, plain, tls_sock)
        pipe(tls_sock, plain)

    proxy = server.call(lambda: StreamServer(("127.0.0.1", 0), handle, ssl_context=context))
    server.call(proxy.start)
    yield proxy.server_port, str(ca_file)
    server.call(proxy.stop)


def test_tls_with_a_trusted_ca(tls_proxy, clients):
    port, ca_file = tls_proxy
    client = clients(port, "secure", tls=True, tls_cafile=ca_file).connect(timeout=5)
    assert client.join("#tls").nicks == ["secure"]


def test_tls_self_signed_needs_insecure(tls_proxy, clients):
    port, _ = tls_proxy
    strict = clients(port, "strict", tls=True, reconnect=False)
    with pytest.raises(ClientError):
        strict.connect(timeout=5)
    assert "certificate" in strict.last_error.lower()
    loose = clients(port, "loose", tls=True, tls_verify=False).connect(timeout=5)
    assert loose.nick == "loose"


def test_join_twice_returns_at_once_and_nick_survives_reconnect(clients):
    first = ServerThread().start()
    port = first.port
    client = clients(port, "before", backoff_base=0.05, backoff_max=0.1).connect(timeout=5)
    client.join("#twice")
    with gevent.Timeout(1):
        assert client.join("#twice").nicks == ["before"]
    client.send("NICK after")
    client.wait_for(lambda m: m.command == "NICK", timeout=5)
    first.stop()
    client.wait_for(lambda m: m.command == "ERROR", timeout=5)
    second = ServerThread(port=port).start()
    try:
        with gevent.Timeout(10):
            while "#twice" not in client.state.channels:
                gevent.sleep(0.02)
        assert client.nick == "after"
    finally:
        client.close()
        second.stop()


def test_close_during_backoff_is_immediate(clients):
    server = ServerThread().start()
    client = clients(server.port, "sleepy", backoff_base=30).connect(timeout=5)
    server.stop()
    for event in client.events(timeout=5):
        if isinstance(event, Reconnecting):
            break
    with gevent.Timeout(1):
        client.close()
    assert client.stopped.is_set()


def test_paused_reader_is_dropped_for_sendq(make_server, clients):
    server = make_server(sendq=16 * 1024, flood_rate=0)  # a flood of PRIVMSG is the point
    stuck = clients(server.port, "stuck", reconnect=False).connect(timeout=5)
    stuck.join("#flood")
    talker = clients(server.port, "talker", caps=()).connect(timeout=5)  # no echoes
    talker.join("#flood")
    stuck.pause_reading()
    quits: list = []
    talker.subscribe(
        lambda e: (
            quits.append(e) if isinstance(e, MessageEvent) and e.message.command == "QUIT" else None
        )
    )
    # Kernel buffers hold tens of megabytes (loopback receive buffers autotune up to
    # net.ipv4.tcp_rmem's maximum, 32 MiB here): keep talking until the server gives
    # up on stuck, bounded by time rather than a line count.
    deadline = time.monotonic() + 30
    i = 0
    while not quits and time.monotonic() < deadline:
        talker.privmsg("#flood", f"line {i} " + "x" * 400)
        i += 1
    stop_waiting = time.monotonic() + 10
    while not quits and time.monotonic() < stop_waiting:
        gevent.sleep(0.05)  # the last lines may still be on their way
    assert quits, f"stuck was never dropped after {i} lines"
    assert "SendQ exceeded" in quits[0].message.params[-1]
    stuck.resume_reading()
    assert stuck.stopped.wait(10)
    assert "SendQ exceeded" in stuck.last_error
