"""WHOWAS history and operator password hashing: pure code, no sockets."""

from __future__ import annotations

from greenchat.server.oper import hash_password, parse_oper_spec, verify_password
from greenchat.server.whowas import WhoWas, WhoWasEntry


def entry(nick: str, realname: str = "r") -> WhoWasEntry:
    return WhoWasEntry(nick, "~u", "host", realname)


def test_find_is_case_insensitive_and_newest_first():
    history = WhoWas(10)
    history.record(entry("Nick[1]", "first"))
    history.record(entry("other"))
    history.record(entry("nick{1}", "second"))
    assert [e.realname for e in history.find("NICK{1}")] == ["second", "first"]
    assert [e.realname for e in history.find("nick[1]", 1)] == ["second"]
    assert history.find("nobody") == []


def test_history_is_bounded_oldest_dropped_first():
    history = WhoWas(3)
    for i in range(5):
        history.record(entry("same" if i % 2 else f"n{i}", str(i)))
    assert len(history) == 3
    assert history.find("n0") == []  # the two oldest are gone
    assert [e.realname for e in history.find("same")] == ["3"]  # "1" fell out too
    assert [e.realname for e in history.find("n4")] == ["4"]


def test_limit_given_at_record_time_and_zero_disables():
    history = WhoWas(100)
    for i in range(4):
        history.record(entry(f"n{i}"), limit=2)
    assert len(history) == 2
    off = WhoWas(0)
    off.record(entry("x"))
    assert len(off) == 0 and off.find("x") == []


def test_password_hash_round_trip_and_salt():
    stored = hash_password("pw")
    assert stored.startswith("scrypt$") and "pw" not in stored.split("$", 1)[1]
    assert stored != hash_password("pw")  # a fresh salt every time
    assert verify_password("pw", stored)
    assert not verify_password("pW", stored)
    assert not verify_password("pw", "scrypt$zz$00")
    assert not verify_password("pw", "plain")


def test_parse_oper_spec():
    name, stored = parse_oper_spec("admin:pa:ss")  # the password may contain ':'
    assert name == "admin" and verify_password("pa:ss", stored)
    for bad in ("admin", ":pw", "admin:", "ad min:pw"):
        try:
            parse_oper_spec(bad)
        except ValueError as exc:
            assert "pw" not in str(exc)
        else:
            raise AssertionError(bad)
