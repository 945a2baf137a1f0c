"""MARKREAD over real sockets (IRCv3 draft/read-marker): get and set, the marker on
JOIN before the end of NAMES, shared by every session of an account and kept across
reconnects, never moving back or past now, and the spec's FAIL codes."""

from __future__ import annotations

import re
import time

import pytest
from transcript import register_account

from greenchat.server.outgoing import format_server_time

CAPS = "server-time message-tags draft/read-marker"
PASSWORD = "correct-horse"


def logged_in(connect, port: int, nick: str, account: str = "alice"):
    """A client with CAPS, registered as ``nick``, then logged in to ``account``."""
    client = connect(port=port).register_with_caps(nick, CAPS)
    client.send(f"PRIVMSG NickServ :IDENTIFY {account} {PASSWORD}")
    client.expect(rf" 900 \S+ \S+ {account} ")
    return client


def stamp(when: float) -> str:
    return "timestamp=" + format_server_time(when)


def test_advertised_and_unknown_markers_are_a_star(make_server, connect):
    server = make_server()
    alice = connect(port=server.port).register_with_caps("alice", CAPS)
    alice.send("CAP LS 302")
    assert "draft/read-marker" in alice.read_cap_ls()
    alice.send("JOIN #r")
    alice.expect(r" JOIN :?#r$")
    alice.expect(r"^:\S+ MARKREAD #r \*$")
    alice.expect(r" 366 alice #r ")
    alice.send("MARKREAD bob")
    alice.expect(r"^:\S+ MARKREAD bob \*$")


def test_set_moves_forward_only_and_never_past_now(make_server, connect):
    server = make_server()
    alice = connect(port=server.port).register_with_caps("alice", CAPS)
    alice.join("#r")
    first = time.time() - 60
    alice.send(f"MARKREAD #r {stamp(first)}")
    alice.expect(rf"MARKREAD #r {re.escape(stamp(first))}$")
    alice.send(f"MARKREAD #R {stamp(first - 30)}")  # older: the stored one comes back
    alice.expect(rf"MARKREAD #r {re.escape(stamp(first))}$")
    alice.send("MARKREAD #r timestamp=2999-01-01T00:00:00.000Z")  # the future: now
    moved = alice.expect(r"MARKREAD #r timestamp=(\S+)$")[1]
    assert "2999" not in moved and moved > format_server_time(first)


def test_bad_requests_get_the_spec_fail_codes(make_server, connect):
    server = make_server()
    alice = connect(port=server.port).register_with_caps("alice", CAPS)
    alice.send("MARKREAD")
    alice.expect(r"FAIL MARKREAD NEED_MORE_PARAMS :")
    alice.send("MARKREAD #r yesterday")
    alice.expect(r"FAIL MARKREAD INVALID_PARAMS yesterday :Invalid timestamp")
    alice.send("MARKREAD #r timestamp=2024-13-45T00:00:00.000Z")
    alice.expect(r"FAIL MARKREAD INVALID_PARAMS \S+ :Invalid timestamp")
    alice.send("MARKREAD :bad target")
    alice.expect(r"FAIL MARKREAD INVALID_PARAMS \* :Invalid target")


def test_an_accounts_sessions_share_markers_and_keep_them(make_server, connect):
    server = make_server()
    register_account(server.port, "alice", PASSWORD)
    phone = logged_in(connect, server.port, "alice")
    laptop = logged_in(connect, server.port, "alice_")
    other = connect(port=server.port).register_with_caps("bob", CAPS)
    for client in (phone, laptop, other):
        client.join("#r")
    when = time.time() - 5
    phone.send(f"MARKREAD #r {stamp(when)}")
    phone.expect(rf"MARKREAD #r {re.escape(stamp(when))}$")
    laptop.expect(rf"MARKREAD #r {re.escape(stamp(when))}$")  # told at once
    other.send("MARKREAD #r")
    other.expect(r"MARKREAD #r \*$")  # never disclosed to another user
    for client in (phone, laptop):
        client.send("QUIT")
        client.expect_closed()
    again = logged_in(connect, server.port, "alice")
    again.send("JOIN #r")
    again.expect(rf"MARKREAD #r {re.escape(stamp(when))}$")  # from the store


def test_markers_survive_a_restart(make_server, connect, tmp_path):
    db = tmp_path / "markers.db"
    server = make_server(db=str(db))
    register_account(server.port, "alice", PASSWORD)
    alice = logged_in(connect, server.port, "alice")
    when = time.time() - 5
    alice.send(f"MARKREAD bob {stamp(when)}")
    alice.expect(r"MARKREAD bob timestamp=")
    server.stop()
    again = make_server(db=str(db))
    alice = logged_in(connect, again.port, "alice")
    alice.send("MARKREAD BOB")
    alice.expect(rf"MARKREAD BOB {re.escape(stamp(when))}$")


@pytest.mark.single_process(
    "makes SQLite refuse writes underneath (PRAGMA query_only); two nodes share Redis"
)
def test_a_failing_store_answers_internal_error(make_server, connect):
    server = make_server()
    register_account(server.port, "alice", PASSWORD)
    alice = logged_in(connect, server.port, "alice")
    storage = server.server.storage

    def query_only(on: bool) -> None:
        server.call(storage.run, storage.store._db.execute, f"PRAGMA query_only = {int(on)}")

    query_only(True)
    try:
        alice.send(f"MARKREAD #r {stamp(time.time())}")
        alice.expect(r"FAIL MARKREAD INTERNAL_ERROR #r :The read timestamp could not be set")
    finally:
        query_only(False)
    alice.send(f"MARKREAD #r {stamp(time.time())}")
    alice.expect(r"MARKREAD #r timestamp=")
