"""ChanServ against a real server: REGISTER, the access list (ACCESS and AMODE), OP/DEOP,
DROP, INFO; modes on join; registered channels kept while empty; a failing store."""

from __future__ import annotations

import time

import pytest
from two_nodes import followed

PASSWORD = "hunter2-is-long"
SERVER = r"greenchat\.local"


def cs_reply(client, pattern: str):
    return client.expect(rf"^:ChanServ!ChanServ@services\.\S+ NOTICE \S+ :{pattern}")


def ns_reply(client, pattern: str):
    return client.expect(rf"^:NickServ!NickServ@services\.\S+ NOTICE \S+ :{pattern}")


@pytest.fixture
def account(connect):
    """Factory: a client registered as ``nick`` with an account of that name (logged in)."""

    def make(nick: str):
        client = connect().register(nick)
        client.send(f"NS REGISTER {PASSWORD}")
        ns_reply(client, f"Account created: {nick}.")
        return client

    return make


@pytest.fixture
def founded(account):
    """alice, logged in, founder of #c (registered while she was its only member)."""
    alice = account("alice").join("#c")
    alice.send("PRIVMSG ChanServ :REGISTER #c")
    cs_reply(alice, "#c is registered to your account alice: you are its founder.")
    return alice


def names_of(client, channel: str) -> str:
    client.send(f"NAMES {channel}")
    return client.expect(rf" 353 \S+ [=*@] {channel} :(.*)$").group(1)


def test_register_by_a_logged_in_op_then_info(founded, connect):
    bob = connect("bob")
    bob.send("CHANSERV INFO #C")
    cs_reply(bob, "Channel: #c")
    cs_reply(bob, "Founder: alice")
    cs_reply(bob, r"Registered at: \d{4}-\d\d-\d\d ")
    bob.send("CS INFO #elsewhere")
    cs_reply(bob, "#elsewhere is not registered.")
    founded.send("CS REGISTER #c")
    cs_reply(founded, "#c is already registered.")


def test_register_refusals(account, connect):
    anon = connect("anon").join("#mine")  # its operator, but not logged in
    anon.send("CS REGISTER #mine")
    cs_reply(anon, r"Log in first \(/msg NickServ IDENTIFY\) to register a channel.")
    alice = account("alice")
    alice.send("CS REGISTER #nowhere")
    cs_reply(alice, "No such channel: #nowhere.")
    alice.join("#mine")  # a member, not an operator
    alice.send("CS REGISTER #mine")
    cs_reply(alice, "You must be a channel operator of #mine to register it.")
    alice.send("CS REGISTER")
    cs_reply(alice, r"Syntax: REGISTER <#channel>")
    alice.send("CS HELP")
    cs_reply(alice, "ChanServ commands:")
    cs_reply(alice, "  REGISTER <#channel>")


def test_a_registered_channel_stays_and_its_first_joiner_is_not_opped(founded, connect):
    founded.send("TOPIC #c :kept while empty", "MODE #c +m")
    founded.expect(r" MODE #c \+m")
    founded.send("PART #c")
    founded.expect(r":alice!\S+ PART #c")
    bob = connect("bob")
    bob.send("LIST")
    bob.expect(r" 322 bob #c 0 :kept while empty")
    bob.join("#c")
    assert names_of(bob, "#c") == "bob"  # first in, yet no @
    bob.send("MODE #c")
    bob.expect(r" 324 bob #c \+mnt")


def test_the_founder_gets_op_on_join(founded, connect):
    founded.send("PART #c")
    bob = connect("bob").join("#c")
    founded.send("JOIN #c")
    founded.expect(r":alice!\S+ JOIN #c")
    founded.expect(rf"^:{SERVER} MODE #c \+o alice$")  # before the names, as on Ergo
    assert "@alice" in founded.expect(r" 353 alice = #c :(.*)$").group(1).split()
    bob.expect(rf"^:{SERVER} MODE #c \+o alice$")


def test_the_founder_passes_key_invite_only_and_bans(founded, connect):
    founded.send("MODE #c +ik secret", "MODE #c +b alice!*@*")
    founded.expect(r" MODE #c \+b alice!\*@\*")
    founded.send("PART #c")
    bob = connect("bob")
    bob.send("JOIN #c")
    bob.expect(r" 475 bob #c ")
    founded.send("JOIN #c")  # no key, not invited, banned: the founder gets in anyway
    founded.expect(rf"^:{SERVER} MODE #c \+o alice$")
    bob.send("JOIN #c secret")
    bob.expect(r" 473 bob #c ")


def test_access_list_voice_then_op_with_amode(server, founded, account, connect):
    carol = account("carol")
    founded.send("CS ACCESS #c ADD carol v")
    cs_reply(founded, "carol now gets \\+v on joining #c.")
    followed(server, "#c")  # carol may be on the other node
    carol.send("JOIN #c")
    carol.expect(rf"^:{SERVER} MODE #c \+v carol$")
    founded.send("CS AMODE #c +o CAROL")  # the account's own spelling is kept
    cs_reply(founded, "carol now gets \\+o on joining #c.")
    carol.expect(rf"^:{SERVER} MODE #c -v\+o carol carol$")  # applied at once (Ergo #729)
    founded.send("CS ACCESS #c LIST")
    cs_reply(founded, r"Access list of #c \(founder alice\):")
    cs_reply(founded, r"  \+o carol")
    founded.send("CS AMODE #c +v nobody")
    cs_reply(founded, "No account is registered as nobody.")
    founded.send("CS ACCESS #c ADD alice v")
    cs_reply(founded, r"alice founded #c and always gets \+o there.")
    founded.send("CS AMODE #c -v carol")  # either sign takes the account off
    cs_reply(founded, "carol is no longer on the access list of #c.")
    carol.expect(rf"^:{SERVER} MODE #c -o carol$")
    founded.send("CS AMODE #c")
    cs_reply(founded, r"  \(empty\)")


def test_access_list_operators_manage_voices_only(server, founded, account, connect):
    carol, dave = account("carol"), account("dave")
    founded.send("CS ACCESS #c ADD carol o")
    cs_reply(founded, "carol now gets")
    followed(server, "#c")  # carol may be on the other node
    carol.send("CS ACCESS #c ADD dave o")
    cs_reply(carol, "You may not change dave's access to #c")
    carol.send("CS ACCESS #c ADD dave v")
    cs_reply(carol, r"dave now gets \+v on joining #c.")
    dave.send("CS ACCESS #c DEL carol")
    cs_reply(dave, "You may not change carol's access to #c")
    carol.send("CS ACCESS #c DEL dave")
    cs_reply(carol, "dave is no longer on the access list of #c.")
    stranger = connect("stranger")
    stranger.send("CS ACCESS #c LIST")
    cs_reply(stranger, "Only the founder and those on the access list of #c may see it.")
    stranger.send("CS ACCESS #c FROB")
    cs_reply(stranger, "Syntax: ACCESS <#channel> LIST")


def test_op_and_deop(founded, account, connect):
    bob = connect("bob").join("#c")
    founded.send("CS OP #c bob")
    cs_reply(founded, "Operator status on #c given to bob.")
    bob.expect(rf"^:{SERVER} MODE #c \+o bob$")
    founded.send("CS OP #c bob")
    cs_reply(founded, "bob is already an operator of #c.")
    founded.send("CS DEOP #c bob")
    cs_reply(founded, "Operator status on #c taken from bob.")
    bob.expect(rf"^:{SERVER} MODE #c -o bob$")
    bob.send("CS OP #c")
    cs_reply(bob, "Only the founder and the operators on the access list of #c may OP.")
    founded.send("CS DEOP #c")  # yourself by default
    founded.expect(rf"^:{SERVER} MODE #c -o alice$")
    founded.send("CS OP #c nobody")
    cs_reply(founded, "No one is using the nick nobody.")
    carol = account("carol")
    founded.send("CS AMODE #c +o carol")
    cs_reply(founded, "carol now gets")
    carol.send("CS OP #c")
    cs_reply(carol, "carol is not on #c.")
    carol.join("#c")
    founded.send("CS DEOP #c carol")
    cs_reply(founded, "Operator status on #c taken from carol.")
    carol.send("CS OP #c")
    carol.expect(rf"^:{SERVER} MODE #c \+o carol$")


def test_drop(server, founded, account, connect):
    carol = account("carol")
    carol.send("CS DROP #c")
    cs_reply(carol, "Only the founder of #c may drop it.")
    founded.send("CS DROP #c")
    cs_reply(founded, "#c is no longer registered.")
    followed(server, "#c")  # carol's node too keeps it no longer
    founded.send("CS INFO #c")
    cs_reply(founded, "#c is not registered.")
    founded.send("PART #c")  # an ordinary channel again: it goes with its last member
    founded.expect(r"^:alice!\S+ PART #c")  # gone before carol's JOIN is read
    carol.join("#c")
    assert names_of(carol, "#c") == "@carol"


def test_dropping_the_account_drops_its_channels(founded, connect):
    bob = connect("bob").join("#c")
    founded.send(f"NS DROP {PASSWORD}")
    ns_reply(founded, "Account alice dropped.")
    founded.send("CS INFO #c")
    cs_reply(founded, "#c is not registered.")
    founded.send(f"NS REGISTER {PASSWORD}")  # a new account of the same name inherits nothing
    ns_reply(founded, "Account created: alice.")
    founded.send("PART #c", "JOIN #c")
    founded.expect(r" 366 alice #c ")
    assert names_of(bob, "#c") == "bob alice"


def test_changes_of_a_registered_channel_reach_the_store(server, founded):
    storage = server.server.storage
    founded.send("TOPIC #c :saved", "MODE #c +sl-t+kb 5 pw *!*@spam")
    founded.expect(r" MODE #c \+sl-t\+kb 5 pw \*!\*@spam")
    record = _stored(server, "#c", lambda r: r.topic == "saved" and r.bans)
    assert (record.modes, record.key, record.limit) == ("ns", "pw", 5)
    (mask, setter, _), *_ = record.bans
    assert mask == "*!*@spam" and setter.startswith("alice!")
    assert record.topic_setter.startswith("alice!")
    founded.send("MODE #c +eI a:friend *!*@friends")
    founded.expect(r" MODE #c \+eI a:friend \*!\*@friends")
    record = _stored(server, "#c", lambda r: len(r.exceptions) == 2)
    assert [(char, mask) for char, mask, _, _ in record.exceptions] == [
        ("e", "a:friend"),
        ("I", "*!*@friends"),
    ]
    assert storage.healthy


def _stored(server, name: str, done, timeout: float = 5.0):
    """The channel's stored record once ``done(record)``; fails at the deadline."""
    storage = server.server.storage
    deadline = time.monotonic() + timeout
    while True:
        record = server.call(storage.run, storage.store.get_channel, name)
        if record is not None and done(record):
            return record
        assert time.monotonic() < deadline, f"not stored in time: {record}"
        time.sleep(0.05)


@pytest.mark.single_process(
    "makes SQLite refuse writes underneath (PRAGMA query_only); two nodes share Redis"
)
def test_a_failing_store_gets_a_clear_answer_and_writes_wait(server, founded, account):
    """Writes refused underneath (SQLite's query_only, as a read-only disk would):
    ChanServ says channel services are unavailable, chat and modes go on, and the
    channel's new state is written once the store recovers."""
    storage = server.server.storage

    def query_only(on: bool) -> None:
        server.call(storage.run, storage.store._db.execute, f"PRAGMA query_only = {int(on)}")

    bob = account("bob").join("#other")
    query_only(True)
    bob.send("CS REGISTER #other")
    cs_reply(bob, "Channel services are temporarily unavailable")
    founded.send("TOPIC #c :while failing")
    founded.expect(r":alice!\S+ TOPIC #c :while failing")
    _wait(lambda: server.call(lambda: storage.failures) >= 2)  # REGISTER, then the writer
    query_only(False)
    _stored(server, "#c", lambda r: r.topic == "while failing")
    bob.send("CS REGISTER #other")
    cs_reply(bob, "#other is registered")


def _wait(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_registered_channel_cannot_be_renamed(founded):
    founded.send("RENAME #c #d")
    founded.expect(r"FAIL RENAME CANNOT_RENAME #c #d :A registered channel keeps its name$")
