"""The AccountStore contract (greenchat/store/base.py), run against every implementation.

A new implementation (Redis, say) adds a factory to FACTORIES: a name, a function
that opens a fresh store, and one that opens the same data again after a close
(None when nothing survives a close, as with ``:memory:``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from redis_server import shared_cluster_url, shared_url

from greenchat.store.base import (
    Account,
    AccountExists,
    AccountStore,
    ChannelExists,
    RegisteredChannel,
    StoreUnavailable,
)
from greenchat.store.credentials import SCRAM_ITERATIONS, make_credentials
from greenchat.store.redis_store import RedisStore
from greenchat.store.sqlite import MEMORY, SqliteStore

# scrypt and SCRAM's key derivation take tens of milliseconds: made once.
CREDS = make_credentials("correct horse")
OTHER_CREDS = make_credentials("battery staple")
FP1, FP2, FP3 = ("a1" * 32), ("b2" * 32), ("c3" * 32)


@dataclass
class Factory:
    name: str
    open: Callable[[], AccountStore]
    reopen: Callable[[], AccountStore] | None  # the same data after close(); None: gone


def sqlite_file(tmp_path: Path) -> Factory:
    path = tmp_path / "accounts.db"
    return Factory("sqlite-file", lambda: SqliteStore(path), lambda: SqliteStore(path))


def sqlite_memory(tmp_path: Path) -> Factory:
    return Factory("sqlite-memory", lambda: SqliteStore(MEMORY), None)


def redis_store(tmp_path: Path) -> Factory:
    """On the session's redis-server (tests/contract/conftest.py); a network of its own
    per test keeps each test's keys apart, as a fresh file does."""
    url, network = shared_url(), f"test-{uuid.uuid4().hex}"
    return Factory("redis", lambda: RedisStore(url, network), lambda: RedisStore(url, network))


def redis_cluster_store(tmp_path: Path) -> Factory:
    """On the session's Redis Cluster (three masters): a batch split by slot, every
    multi-key call kept to one slot; a network of its own per test, as above."""
    url, network = shared_cluster_url(), f"test-{uuid.uuid4().hex}"

    def open_store() -> RedisStore:
        store = RedisStore(url, network)
        assert store.cluster, "the cluster's URL opened a store for one server"
        return store

    return Factory("redis-cluster", open_store, open_store)


FACTORIES = {
    "sqlite-file": sqlite_file,
    "sqlite-memory": sqlite_memory,
    "redis": redis_store,
    "redis-cluster": redis_cluster_store,
}


@pytest.fixture(params=list(FACTORIES))
def factory(request, tmp_path) -> Factory:
    return FACTORIES[request.param](tmp_path)


@pytest.fixture
def store(factory) -> Iterator[AccountStore]:
    opened = factory.open()
    yield opened
    opened.close()


def account(name: str = "Alice[away]", **fields) -> Account:
    return Account(name=name, credentials=CREDS, registered_at=1_700_000_000.5, **fields)


def channel(name: str = "#Lobby", founder: str = "Alice[away]", **fields) -> RegisteredChannel:
    return RegisteredChannel(name=name, founder=founder, registered_at=1_700_000_100.25, **fields)


FULL_CHANNEL = channel(
    topic="welcome \u2603",
    topic_setter="Alice[away]!alice@example.org",
    topic_time=1_700_000_200.0,
    modes="ntsi",
    key="s3cret",
    limit=50,
    bans=(("*!*@spam.example", "Alice[away]", 1_700_000_300.0), ("troll!*@*", "Bob", 2.5)),
    exceptions=(("e", "a:alice", "Alice[away]", 3.0), ("I", "*!*@friends.example", "Bob", 4.5)),
    access={"Bob": "o", "Carol|x": "v"},
    metadata={"url": "https://example.org/\u2603", "empty": ""},
)


# -- accounts ------------------------------------------------------------------------------


def test_an_account_comes_back_whole_whatever_the_case_of_its_name(store):
    created = account(
        email="alice@example.org",
        verified=False,
        verify_code="123456",
        certfps=(FP1, FP2),
        settings={"hidemail": "on", "greet": "hi \u00e9"},
    )
    store.create_account(created)
    for spelling in ("Alice[away]", "alice{AWAY}", "ALICE[AWAY]", "alice{away}"):
        assert store.get_account(spelling) == created
    got = store.get_account("alice{away}")
    assert got.name == "Alice[away]"  # as registered
    assert got.credentials.scram_iterations == SCRAM_ITERATIONS
    assert isinstance(got.credentials.scram_salt, bytes)


def test_account_names_list_every_account_as_registered(store):
    assert store.account_names() == []
    store.create_account(account("Bob"))
    store.create_account(account("alice"))
    assert sorted(store.account_names()) == ["Bob", "alice"]
    store.drop_account("BOB")
    assert store.account_names() == ["alice"]


def test_a_missing_account_is_none(store):
    assert store.get_account("nobody") is None
    assert store.find_by_certfp(FP1) is None


def test_a_taken_name_is_refused_whatever_its_case(store):
    store.create_account(account("Alice[away]"))
    with pytest.raises(AccountExists):
        store.create_account(replace(account("alice{AWAY}"), credentials=OTHER_CREDS))
    kept = store.get_account("ALICE[AWAY]")
    assert kept.name == "Alice[away]" and kept.credentials == CREDS  # the first one stays


def test_fingerprints_are_added_found_and_removed(store):
    store.create_account(account("alice", certfps=(FP1,)))
    assert store.find_by_certfp(FP1).name == "alice"
    assert store.add_certfp("ALICE", FP2) is True
    assert store.get_account("alice").certfps == (FP1, FP2)  # in the order added
    assert store.find_by_certfp(FP2).name == "alice"
    assert store.add_certfp("alice", FP2) is False  # listed already
    assert store.remove_certfp("Alice", FP1) is True
    assert store.remove_certfp("alice", FP1) is False  # gone already
    assert store.find_by_certfp(FP1) is None
    assert store.get_account("alice").certfps == (FP2,)


def test_a_fingerprint_names_one_account(store):
    store.create_account(account("alice", certfps=(FP1,)))
    store.create_account(account("bob"))
    assert store.add_certfp("bob", FP1) is False
    assert store.remove_certfp("bob", FP1) is False  # not bob's to remove
    assert store.find_by_certfp(FP1).name == "alice"
    assert store.get_account("bob").certfps == ()
    # At creation too: a fingerprint another account lists is left out.
    store.create_account(account("carol", certfps=(FP1, FP3)))
    assert store.get_account("carol").certfps == (FP3,)
    assert store.find_by_certfp(FP1).name == "alice"


def test_fingerprints_of_a_missing_account(store):
    assert store.add_certfp("nobody", FP1) is False
    assert store.remove_certfp("nobody", FP1) is False
    assert store.find_by_certfp(FP1) is None


def test_a_new_password_replaces_the_old(store):
    store.create_account(account("alice"))
    assert store.set_credentials("ALICE", OTHER_CREDS) is True
    assert store.get_account("alice").credentials == OTHER_CREDS
    assert store.set_credentials("nobody", OTHER_CREDS) is False
    assert store.get_account("nobody") is None


def test_verify_marks_the_account_and_forgets_the_code(store):
    store.create_account(account("alice", verified=False, verify_code="424242"))
    assert store.get_account("alice").verified is False
    assert store.set_verified("Alice") is True
    got = store.get_account("alice")
    assert got.verified is True and got.verify_code == ""
    assert store.set_verified("nobody") is False


def test_settings_are_set_replaced_and_removed(store):
    store.create_account(account("alice"))
    assert store.set_setting("ALICE", "greet", "hello") is True
    assert store.set_setting("alice", "hidemail", "on") is True
    assert store.get_account("alice").settings == {"greet": "hello", "hidemail": "on"}
    assert store.set_setting("alice", "greet", "bye") is True
    assert store.get_account("alice").settings == {"greet": "bye", "hidemail": "on"}
    assert store.set_setting("alice", "greet", "") is True  # empty: removed
    assert store.get_account("alice").settings == {"hidemail": "on"}
    assert store.set_setting("alice", "never-set", "") is True
    assert store.set_setting("nobody", "greet", "hi") is False


def test_metadata_is_set_replaced_and_removed(store):
    store.create_account(account("alice"))
    assert store.account_metadata("alice") == {}
    assert store.set_account_metadata("ALICE", [("avatar", "a.png"), ("bio", "")]) is True
    assert store.account_metadata("alice") == {"avatar": "a.png", "bio": ""}  # '' is a value
    changes = [("avatar", "b.png"), ("bio", None), ("never-set", None), ("pronouns", "she")]
    assert store.set_account_metadata("alice", changes) is True
    assert store.account_metadata("Alice") == {"avatar": "b.png", "pronouns": "she"}
    assert store.set_account_metadata("nobody", [("avatar", "x")]) is False
    assert store.account_metadata("nobody") == {}
    assert store.drop_account("alice") is True
    store.create_account(account("alice"))
    assert store.account_metadata("alice") == {}  # the next owner inherits nothing


def test_dropping_an_account_takes_its_fingerprints_and_founded_channels(store):
    store.create_account(account("Alice[away]", certfps=(FP1, FP2), settings={"greet": "hi"}))
    store.create_account(account("bob"))
    store.register_channel(channel("#alices", founder="Alice[away]"))
    store.register_channel(channel("#alices2", founder="alice{AWAY}"))  # any case
    store.register_channel(channel("#bobs", founder="bob", access={"ALICE[away]": "o", "x": "v"}))
    assert store.drop_account("alice{away}") is True
    assert store.get_account("Alice[away]") is None
    assert store.find_by_certfp(FP1) is None and store.find_by_certfp(FP2) is None
    assert store.get_channel("#alices") is None and store.get_channel("#alices2") is None
    assert [c.name for c in store.channels()] == ["#bobs"]
    assert store.get_channel("#bobs").access == {"x": "v"}  # its access entries go too
    assert store.drop_account("Alice[away]") is False
    # The name and the certificate are free again, with nothing inherited.
    assert store.add_certfp("bob", FP1) is True
    store.create_account(account("alice[AWAY]"))
    again = store.get_account("Alice[away]")
    assert again.name == "alice[AWAY]" and again.certfps == () and again.settings == {}


def test_dropping_a_missing_account_changes_nothing(store):
    store.create_account(account("alice"))
    store.register_channel(channel("#lobby", founder="alice"))
    assert store.drop_account("bob") is False
    assert store.get_account("alice") is not None and store.get_channel("#lobby") is not None


# -- channels ------------------------------------------------------------------------------


def test_a_channel_comes_back_whole_whatever_the_case_of_its_name(store):
    store.create_account(account())
    store.register_channel(FULL_CHANNEL)
    for spelling in ("#Lobby", "#lobby", "#LOBBY"):
        assert store.get_channel(spelling) == FULL_CHANNEL
    assert store.get_channel("#lobby").name == "#Lobby"
    assert store.get_channel("#elsewhere") is None


def test_a_registered_channel_name_is_refused_whatever_its_case(store):
    store.create_account(account())
    store.register_channel(channel("#Room[1]"))
    with pytest.raises(ChannelExists):
        store.register_channel(channel("#room{1}", topic="usurper"))
    assert store.get_channel("#ROOM[1]") == channel("#Room[1]")


def test_a_channel_is_updated_and_keeps_its_name(store):
    store.create_account(account())
    store.create_account(account("bob"))
    store.register_channel(channel("#Lobby", access={"Bob": "o"}))
    changed = replace(
        FULL_CHANNEL,
        name="#LOBBY",  # any case names it; the stored name stays as registered
        founder="bob",
        topic="new topic",
        modes="nt",
        key="",
        limit=0,
        bans=(("*!*@new", "bob", 9.0),),
        exceptions=(("I", "U:*!*@*", "bob", 10.0),),
        access={"Carol": "v"},
        metadata={"rules": "be kind"},
    )
    assert store.update_channel(changed) is True
    assert store.get_channel("#lobby") == replace(changed, name="#Lobby")
    assert store.update_channel(channel("#nowhere")) is False
    assert store.get_channel("#nowhere") is None


def test_the_founder_change_decides_what_a_drop_takes(store):
    store.create_account(account("alice"))
    store.create_account(account("bob"))
    store.register_channel(channel("#lobby", founder="alice"))
    store.update_channel(replace(store.get_channel("#lobby"), founder="bob"))
    assert store.drop_account("alice") is True
    assert store.get_channel("#lobby").founder == "bob"


def test_every_registered_channel_is_listed(store):
    store.create_account(account())
    assert store.channels() == []
    names = ["#one", "#Two", "#three"]
    for name in names:
        store.register_channel(channel(name, access={"Bob": "o"} if name == "#Two" else {}))
    listed = {c.name: c for c in store.channels()}
    assert sorted(listed) == sorted(names)
    assert listed["#Two"].access == {"Bob": "o"} and listed["#one"].access == {}


def test_a_channel_is_dropped(store):
    store.create_account(account())
    store.register_channel(FULL_CHANNEL)
    assert store.drop_channel("#LOBBY") is True
    assert store.get_channel("#Lobby") is None and store.channels() == []
    assert store.drop_channel("#Lobby") is False
    store.register_channel(channel("#lobby"))  # free again, nothing inherited
    assert store.get_channel("#Lobby") == channel("#lobby")


# -- life ----------------------------------------------------------------------------------


def test_a_file_keeps_everything_across_a_close_and_memory_nothing(factory):
    first = factory.open()
    first.create_account(account(certfps=(FP1,), settings={"greet": "hi"}, verified=False))
    first.create_account(account("bob"))
    first.register_channel(FULL_CHANNEL)
    first.set_credentials("alice{away}", OTHER_CREDS)
    first.close()
    if factory.reopen is None:  # e.g. :memory:
        fresh = factory.open()
        try:
            assert fresh.get_account("Alice[away]") is None and fresh.channels() == []
        finally:
            fresh.close()
        return
    second = factory.reopen()
    try:
        expected = replace(
            account(certfps=(FP1,), settings={"greet": "hi"}, verified=False),
            credentials=OTHER_CREDS,
        )
        assert second.get_account("ALICE[AWAY]") == expected
        assert second.find_by_certfp(FP1).name == "Alice[away]"
        assert second.get_channel("#lobby") == FULL_CHANNEL
        assert [c.name for c in second.channels()] == ["#Lobby"]
        with pytest.raises(AccountExists):
            second.create_account(account("bob"))
    finally:
        second.close()


def test_calls_after_close_raise_unavailable(factory):
    closed = factory.open()
    closed.create_account(account())
    closed.close()
    closed.close()  # twice is fine
    for call, args in [
        (closed.get_account, ("Alice[away]",)),
        (closed.create_account, (account("bob"),)),
        (closed.channels, ()),
        (closed.drop_account, ("Alice[away]",)),
    ]:
        with pytest.raises(StoreUnavailable):
            call(*args)
