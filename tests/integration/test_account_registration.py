"""REGISTER and VERIFY (IRCv3 draft/account-registration) against a real server, and
two sessions racing to register one account."""

from __future__ import annotations

import os
import shlex
import sys
import threading

import pytest

CAP = "draft/account-registration"


def with_cap(client, nick: str):
    client.send("CAP LS 302", f"NICK {nick}", f"USER {nick} 0 * :{nick}")
    assert f"{CAP}=before-connect,custom-account-name" in client.read_cap_ls()
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


@pytest.fixture
def verifying(make_server, tmp_path):
    """A server whose --verify-command writes each code to a file of its own."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    script = (
        "import os; e = os.environ; "
        "open(os.path.join(e['OUTBOX'], e['GREENCHAT_ACCOUNT']), 'w')"
        ".write(e['GREENCHAT_EMAIL'] + ' ' + e['GREENCHAT_CODE'])"
    )
    os.environ["OUTBOX"] = str(outbox)  # the command inherits the server's environment
    server = make_server(verify_command=f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}")
    server.outbox = outbox
    yield server
    del os.environ["OUTBOX"]


def test_with_verification_register_needs_an_email_and_verify_logs_in(verifying, connect):
    client = connect(port=verifying.port)
    client.send("CAP LS 302", "NICK careful", "USER careful 0 * :careful")
    assert f"{CAP}=before-connect,custom-account-name,email-required" in client.read_cap_ls()
    client.send(f"CAP REQ :{CAP}")
    client.expect(r" ACK ")
    client.send("REGISTER * * sturdy-pass")
    client.expect(r" FAIL REGISTER INVALID_EMAIL careful :An e-mail address is needed")
    client.send("REGISTER * careful@example.org sturdy-pass")
    client.expect(r" REGISTER VERIFICATION_REQUIRED careful :A code was sent to careful@exa")
    email, code = (verifying.outbox / "careful").read_text().split()
    assert email == "careful@example.org" and len(code) == 8
    client.send("CAP END")
    client.expect(r" 001 careful ")
    other = connect(port=verifying.port).register("other")
    other.send("NS IDENTIFY careful sturdy-pass")
    other.expect(r"Could not log you in: careful is not verified yet: VERIFY careful <code>")
    client.send("VERIFY careful 00000000")
    client.expect(r" FAIL VERIFY INVALID_CODE careful :Invalid account credentials")
    client.send(f"VERIFY careful {code}")
    client.expect(r" VERIFY SUCCESS careful :Account verified")
    client.expect(r" 900 careful \S+ careful :You are now logged in as careful")
    client.send(f"VERIFY careful {code}")
    client.expect(r" FAIL VERIFY INVALID_CODE careful :No verification is pending")
