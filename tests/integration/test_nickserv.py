"""NickServ against a real server: register, identify, log out, info, passwords,
drop and ghost, with /msg NickServ and the NS command."""

from __future__ import annotations

import pytest

PASSWORD = "hunter2-is-long"


def ns_reply(client, pattern: str):
    return client.expect(rf"^:NickServ!NickServ@services\.\S+ NOTICE \S+ :{pattern}")


@pytest.fixture
def registered(connect):
    """alice, registered with NickServ (and so logged in)."""
    alice = connect().register_with_caps("alice", "account-notify")
    alice.send(f"PRIVMSG NickServ :REGISTER {PASSWORD}")
    ns_reply(alice, "Account created: alice. You are now logged in.")
    alice.expect(r" 900 alice alice!\S+ alice :You are now logged in as alice")
    return alice


def test_register_identify_and_logout(registered, connect):
    registered.send("NS LOGOUT")
    ns_reply(registered, "You are now logged out.")
    registered.expect(r" 901 alice \S+ :You are now logged out")
    registered.send(f"NICKSERV IDENTIFY {PASSWORD}")
    ns_reply(registered, "You are now logged in as alice.")
    registered.expect(r" 900 alice ")
    other = connect().register("other")
    other.send("WHOIS alice")
    other.expect(r" 330 other alice alice :is logged in as")


def test_identify_from_another_nick_and_wrong_passwords(registered, connect):
    bob = connect().register("bob")
    bob.send("PRIVMSG NickServ :IDENTIFY alice wrong")
    ns_reply(bob, "Could not log you in: Invalid account credentials.")
    bob.send(f"PRIVMSG NickServ :IDENTIFY alice {PASSWORD}")
    ns_reply(bob, "You are now logged in as alice.")
    bob.send("PRIVMSG NickServ :INFO alice")
    ns_reply(bob, "Account: alice")
    ns_reply(bob, "Registered at: ")
    ns_reply(bob, "Logged in now as: alice, bob")


def test_a_taken_account_name_and_a_weak_password(registered, connect):
    again = connect().register("Alice_")
    again.send("NICK ALICE")  # alice holds the nick: 433
    again.expect(r" 433 ")
    again.send("PRIVMSG NickServ :REGISTER abc")
    ns_reply(again, "Not registered: Choose a password of at least 5 characters")
    registered.send(f"NS REGISTER {PASSWORD}")
    ns_reply(registered, "You are already logged in as alice.")


def test_passwd_then_the_new_password_works(registered, connect):
    registered.send(f"NS PASSWD {PASSWORD} brand-new-secret")
    ns_reply(registered, "Password changed.")
    other = connect().register("other")
    other.send(f"NS IDENTIFY alice {PASSWORD}")
    ns_reply(other, "Could not log you in: Invalid account credentials.")
    other.send("NS IDENTIFY alice brand-new-secret")
    ns_reply(other, "You are now logged in as alice.")


def test_ghost_frees_the_nick_of_a_stale_session(registered, connect):
    phone = connect().register("phone")
    phone.send(f"NS IDENTIFY alice {PASSWORD}")
    ns_reply(phone, "You are now logged in as alice.")
    phone.send("NS GHOST alice")
    ns_reply(phone, "alice has been ghosted.")
    registered.expect_closed()
    phone.send("NICK alice")
    phone.expect(r":phone!\S+ NICK :?alice")
    stranger = connect().register("stranger")
    stranger.send("NS GHOST alice")
    ns_reply(stranger, "alice is not yours to ghost")


def test_drop_deletes_the_account(registered, connect):
    registered.send("NS DROP wrong")
    ns_reply(registered, "Account not dropped: Invalid account credentials.")
    registered.send(f"NS DROP {PASSWORD}")
    registered.expect(r" 901 alice ")
    ns_reply(registered, "Account alice dropped.")
    registered.send("NS INFO alice")
    ns_reply(registered, "No account is registered as alice.")


def test_help_unknown_commands_and_the_reserved_nick(connect):
    client = connect().register("curious")
    client.send("PRIVMSG NickServ :HELP")
    ns_reply(client, "NickServ commands:")
    ns_reply(client, "  REGISTER <password>")
    client.send("NS FROB")
    ns_reply(client, "Unknown command FROB. Say HELP for the list.")
    client.send("NICK NickServ")
    client.expect(r" 432 curious NickServ :Reserved for a service")
    client.send("NOTICE NickServ :REGISTER quietly")  # a NOTICE is never answered
    client.send("PING :after")
    assert not any("NickServ" in line for line in client.expect(r"PONG").string.splitlines())


@pytest.mark.single_process(
    "makes SQLite refuse writes underneath (PRAGMA query_only); two nodes share Redis"
)
def test_a_failing_store_gets_a_clear_answer_and_chat_goes_on(make_server, connect):
    """Writes refused underneath (SQLite's query_only, as a read-only disk would):
    REGISTER says accounts are unavailable, the failure is counted, chat goes on,
    and once the store recovers REGISTER works. Without history: its writer would fail
    too, and count (test_chathistory.py has that case)."""
    server = make_server(history=False)
    storage = server.server.storage

    def query_only(on: bool) -> None:
        server.call(storage.run, storage.store._db.execute, f"PRAGMA query_only = {int(on)}")

    alice = connect(port=server.port).register("alice").join("#c")
    bob = connect(port=server.port).register("bob").join("#c")
    query_only(True)
    alice.send(f"NS REGISTER {PASSWORD}")
    ns_reply(alice, "Accounts are temporarily unavailable")
    assert server.call(lambda: storage.failures) == 1 and not storage.healthy
    alice.send("PRIVMSG #c :still here")
    bob.expect(r":alice!\S+ PRIVMSG #c :still here")
    query_only(False)
    alice.send(f"NS REGISTER {PASSWORD}")
    ns_reply(alice, "Account created: alice.")
    assert storage.healthy


def test_a_registered_nick_must_log_in_or_be_renamed(make_server, connect):
    server = make_server(nick_grace=1)
    for name in ("alice", "bob"):
        owner = connect(port=server.port).register(name)
        owner.send(f"NS REGISTER {PASSWORD}")
        ns_reply(owner, "Account created")
        owner.send("QUIT")
        owner.expect_closed()
    honest = connect(port=server.port).register("alice")
    ns_reply(honest, r"alice is a registered account\. Log in within 1 seconds")
    honest.send(f"NS IDENTIFY {PASSWORD}")
    ns_reply(honest, "You are now logged in as alice.")
    squatter = connect(port=server.port).register("bob")  # guarded after alice: later deadline
    ns_reply(squatter, "bob is a registered account")
    ns_reply(squatter, r"You did not log in to bob: you are now Guest\d+\.")
    squatter.expect(r"^:bob!\S+ NICK :?Guest\d+$")
    honest.send("WHOIS alice")  # past its deadline too, and still alice (replies to alice)
    honest.expect(r" 311 alice alice ")


def test_taking_a_registered_nick_by_nick_change_is_guarded_too(make_server, connect):
    server = make_server(nick_grace=1)
    owner = connect(port=server.port).register("carol")
    owner.send(f"NS REGISTER {PASSWORD}")
    ns_reply(owner, "Account created")
    owner.send("QUIT")
    owner.expect_closed()
    other = connect(port=server.port).register("dan")
    other.send("NICK carol")
    ns_reply(other, "carol is a registered account")
    other.expect(r"^:carol!\S+ NICK :?Guest\d+$")


def test_set_email_shown_only_to_the_owner(registered, connect):
    registered.send("NS SET EMAIL not-an-address")
    ns_reply(registered, "That is not an e-mail address.")
    registered.send("NS SET EMAIL alice@example.org")
    ns_reply(registered, "EMAIL is now alice@example.org.")
    registered.send("NS INFO")
    ns_reply(registered, "Account: alice")
    ns_reply(registered, "Registered at:")
    ns_reply(registered, r"E-mail: alice@example\.org \(only you see it\)")
    other = connect().register("other")
    other.send("NS INFO alice", "PING :done")
    lines = []
    while not lines or " PONG " not in lines[-1]:
        line = other.read_line(5)
        assert line is not None, lines
        lines.append(line)
    assert any("Registered at:" in line for line in lines)
    assert not any("E-mail" in line for line in lines), lines
    registered.send("NS SET EMAIL")
    ns_reply(registered, "EMAIL is cleared.")
    registered.send("NS SET")
    ns_reply(registered, r"SET EMAIL \[value\]: an e-mail address")
