"""REGISTER and VERIFY (IRCv3 draft/account-registration) against a real server, and
two sessions racing to register one account."""

from __future__ import annotations

import threading

CAP = "draft/account-registration"


def with_cap(client, nick: str):
    client.send("CAP LS 302", f"NICK {nick}", f"USER {nick} 0 * :{nick}")
    client.expect(rf" CAP \* LS :.*{CAP}=before-connect,custom-account-name")
    client.send(f"CAP REQ :{CAP}")
    client.expect(rf" CAP {nick} ACK :?{CAP}")
    return client


def test_register_before_connecting_logs_in(connect):
    client = with_cap(connect(), "newbie")
    client.send("REGISTER * * sturdy-pass")
    client.expect(r"^:\S+ REGISTER SUCCESS newbie :Account created$")
    client.expect(r" 900 newbie newbie!\S+ newbie :You are now logged in as newbie")
    client.send("CAP END")
    client.expect(r" 001 newbie ")
    client.send("WHOIS newbie")
    client.expect(r" 330 newbie newbie newbie :is logged in as")


def test_register_refusals(connect):
    taken = with_cap(connect(), "taken")
    taken.send("REGISTER * * sturdy-pass")
    taken.expect(r"REGISTER SUCCESS taken ")
    client = with_cap(connect(), "second")
    client.send("REGISTER taken * other-pass")
    client.expect(r"^:\S+ FAIL REGISTER ACCOUNT_EXISTS taken :taken is already registered$")
    client.send("REGISTER second * abc")
    client.expect(r" FAIL REGISTER WEAK_PASSWORD second :Choose a password of at least 5")
    client.send("REGISTER 9bad * sturdy-pass")
    client.expect(r" FAIL REGISTER BAD_ACCOUNT_NAME 9bad ")
    client.send("REGISTER NickServ * sturdy-pass")
    client.expect(r" FAIL REGISTER BAD_ACCOUNT_NAME NickServ ")
    client.send("REGISTER second not-an-email sturdy-pass")
    client.expect(r" FAIL REGISTER INVALID_EMAIL second ")
    client.send("REGISTER second_acct me@example.org sturdy-pass")  # custom-account-name
    client.expect(r"REGISTER SUCCESS second_acct ")
    client.send("REGISTER third * sturdy-pass")
    client.expect(r" FAIL REGISTER ALREADY_AUTHENTICATED third :You are already logged in")
    client.send("VERIFY second_acct 123456")
    client.expect(r" FAIL VERIFY INVALID_CODE second_acct :No verification is pending")


def test_register_without_the_capability(connect):
    client = connect().register("plain")
    client.send("REGISTER * * sturdy-pass")
    client.expect(rf" FAIL REGISTER TEMPORARILY_UNAVAILABLE plain :Enable the {CAP} capability")


def test_two_sessions_racing_to_register_one_account_one_wins(connect):
    clients = [with_cap(connect(), f"racer{i}") for i in range(2)]
    barrier = threading.Barrier(2)

    def race(client):
        barrier.wait(5)
        client.send("REGISTER prize * sturdy-pass")

    threads = [threading.Thread(target=race, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    outcomes = [c.expect(r" (REGISTER SUCCESS|FAIL REGISTER ACCOUNT_EXISTS) prize ").group(1)
                for c in clients]  # fmt: skip
    assert sorted(outcomes) == ["FAIL REGISTER ACCOUNT_EXISTS", "REGISTER SUCCESS"]
