"""The client library's SASL login (IrcClient(sasl=...)) against a live server: SCRAM-SHA-256
and PLAIN, a wrong password (reported, and registered anyway), a login again on every
reconnect, and a server that never answers (the login is abandoned in time and CAP END
still goes out)."""

from __future__ import annotations

import time
from dataclasses import replace

import gevent
import pytest
from gevent.server import StreamServer
from transcript import ServerThread, register_account

from greenchat.client import IrcClient, Registered, SaslFailed, SaslSucceeded
from greenchat.server.config import ServerConfig

PASSWORD = "tr0ub4dor&3"


@pytest.fixture
def login(server):
    """Factory: an IrcClient logging in as ``nick``, connected; and the login's events
    (SaslSucceeded or SaslFailed, then Registered)."""
    made: list[IrcClient] = []

    def connect(nick: str, password: str = PASSWORD, port: int | None = None, **options):
        client = IrcClient("127.0.0.1", port or server.port, nick, sasl=(nick, password), **options)
        made.append(client)
        seen: list = []

        def keep(event) -> None:
            if isinstance(event, SaslSucceeded | SaslFailed | Registered):
                seen.append(event)

        client.subscribe(keep)
        return client.connect(timeout=10), seen

    yield connect
    for client in made:
        client.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "PLAIN"])
def test_logs_in_while_registering(server, connect, login, mechanism):
    register_account(server.port, "alice", PASSWORD)
    client, (succeeded, registered) = login("alice", sasl_mechanisms=(mechanism,))
    assert client.account == "alice"
    assert succeeded == SaslSucceeded("alice", mechanism, time=succeeded.time)
    assert isinstance(registered, Registered) and "sasl" in registered.caps
    raw = connect("watcher")
    raw.send("WHOIS alice")
    raw.expect(r" 330 watcher alice alice :is logged in as")


def test_scram_is_preferred(server, login):
    register_account(server.port, "bob", PASSWORD)
    _, (succeeded, _) = login("bob")
    assert succeeded.mechanism == "SCRAM-SHA-256"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "PLAIN"])
def test_a_wrong_password_is_reported_and_registration_goes_on(server, connect, login, mechanism):
    register_account(server.port, "carol", PASSWORD)
    client, (failed, registered) = login("carol", "not the password", sasl_mechanisms=(mechanism,))
    assert isinstance(failed, SaslFailed) and failed.numeric == "904", failed
    assert failed.account == "carol" and "Invalid account credentials" in failed.reason
    assert registered.nick == "carol" and client.account == ""
    raw = connect("watcher")
    raw.send("WHOIS carol")
    end = raw.expect(r" (330|318) watcher carol ")
    assert end.group(1) == "318"  # no 330: not logged in


def test_an_unknown_account_fails_like_a_wrong_password(login):
    _, (failed, registered) = login("nobody")
    assert isinstance(failed, SaslFailed) and failed.numeric == "904"
    assert isinstance(registered, Registered)


def test_every_reconnect_logs_in_again(tmp_path, login):
    config = replace(ServerConfig(), db=str(tmp_path / "accounts.db"))
    first = ServerThread(config).start()
    port = first.port
    register_account(port, "phoenix", PASSWORD)
    client, seen = login("phoenix", port=port, backoff_base=0.05, backoff_max=0.2)
    first.stop()
    second = ServerThread(config, port=port).start()  # the same database: the account is there
    try:
        with gevent.Timeout(10):
            while len(seen) < 4:
                gevent.sleep(0.02)
        assert [type(e) for e in seen] == [SaslSucceeded, Registered] * 2
        assert client.account == "phoenix"
    finally:
        client.close()
        second.stop()


def test_a_server_that_never_answers_is_given_up_on_in_time(login):
    """The server offers sasl and ACKs it, then says nothing to AUTHENTICATE: after
    ``sasl_timeout`` the client aborts, and only then ends CAP negotiation."""
    heard: list[str] = []

    def handle(sock, _address) -> None:
        for raw in sock.makefile("rb"):
            text = raw.decode().rstrip("\r\n")
            heard.append(text)
            if text.startswith("CAP LS"):
                sock.sendall(b":mute CAP * LS :sasl=PLAIN,SCRAM-SHA-256\r\n")
            elif text.startswith("CAP REQ"):
                sock.sendall(b":mute CAP * ACK :sasl\r\n")
            elif text == "CAP END":
                sock.sendall(b":mute 001 quiet :Welcome\r\n")

    mute = StreamServer(("127.0.0.1", 0), handle)
    mute.start()
    try:
        started = time.monotonic()
        _, (failed, registered) = login("quiet", port=mute.server_port, sasl_timeout=0.5)
        assert 0.5 <= time.monotonic() - started < 5
        assert isinstance(failed, SaslFailed) and failed.numeric == ""
        assert failed.reason == "no answer to SASL within 0.5 s"
        assert isinstance(registered, Registered)
        assert heard.index("AUTHENTICATE *") < heard.index("CAP END")
        assert heard.index("AUTHENTICATE SCRAM-SHA-256") < heard.index("AUTHENTICATE *")
    finally:
        mute.stop()
