"""The client's SASL state machine (greenchat/client/sasl.py) against scripted server
lines: SCRAM-SHA-256 with a scramp server playing the other side, PLAIN, choosing a
mechanism, falling back, refusing PLAIN where it is not safe, and failures."""

from __future__ import annotations

import base64

import pytest
from scramp import ScramException, ScramMechanism

from greenchat.client.sasl import PLAIN_REFUSED, SaslLogin, check_mechanisms
from greenchat.protocol.message import Message, parse
from greenchat.protocol.sasl import Reassembly, chunks

PASSWORD = "correct horse battery"
SCRAM = ScramMechanism("SCRAM-SHA-256")


def line(text: str) -> Message:
    return parse(text)


def authenticate(message: bytes) -> list[Message]:
    """The server's AUTHENTICATE lines carrying ``message``."""
    return [line(f"AUTHENTICATE {piece}") for piece in chunks(message)]


def client_message(lines: list[str]) -> bytes:
    """What the client's AUTHENTICATE lines say, put back together."""
    reader = Reassembly()
    results = [reader.feed(text.removeprefix("AUTHENTICATE ")) for text in lines]
    assert all(text.startswith("AUTHENTICATE ") for text in lines), lines
    assert results[:-1] == [None] * (len(lines) - 1) and results[-1] is not None, lines
    return results[-1]


def feed_all(login: SaslLogin, messages: list[Message]) -> list[str]:
    sent: list[str] = []
    for message in messages:
        sent += login.feed(message)
    return sent


class ScramServer:
    """The server's side of SCRAM-SHA-256 for one account, as greenchat's does it."""

    def __init__(self, password: str = PASSWORD, s_nonce: str | None = None) -> None:
        keys = SCRAM.make_auth_info(password)
        self.server = SCRAM.make_server(lambda name: keys, s_nonce=s_nonce)

    def first(self, client_first: bytes) -> list[Message]:
        self.server.set_client_first(client_first.decode())
        return authenticate(self.server.get_server_first().encode())

    def final(self, client_final: bytes) -> list[Message]:
        self.server.set_client_final(client_final.decode())
        return authenticate(self.server.get_server_final().encode())


def test_scram_sha_256_logs_in_and_the_password_never_leaves():
    login = SaslLogin("alice", PASSWORD)
    assert login.plan("PLAIN,SCRAM-SHA-256")
    assert login.begin() == ["AUTHENTICATE SCRAM-SHA-256"]
    server = ScramServer()
    sent = login.feed(line("AUTHENTICATE +"))
    client_first = client_message(sent)
    assert client_first.startswith(b"n,,n=alice,r=")
    sent_final = feed_all(login, server.first(client_first))
    server_final = server.final(client_message(sent_final))  # raises if the proof is wrong
    closing = feed_all(login, server_final)
    assert closing == ["AUTHENTICATE +"]  # the server proved it knew the password too
    assert not login.done
    login.feed(line(":srv 900 alice alice!a@h alice :You are now logged in as alice"))
    login.feed(line(":srv 903 alice :SASL authentication successful"))
    assert login.done and login.succeeded and login.mechanism == "SCRAM-SHA-256"
    everything = " ".join(sent + sent_final + closing)
    for secret in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode()):
        assert secret not in everything and secret not in repr(login)


def test_long_server_messages_arrive_in_400_byte_pieces():
    login = SaslLogin("alice", PASSWORD)
    login.plan("SCRAM-SHA-256")
    login.begin()
    server = ScramServer(s_nonce="n" * 500)  # server-first over 400 bytes of base64
    client_first = client_message(login.feed(line("AUTHENTICATE +")))
    pieces = server.first(client_first)
    assert len(pieces) > 1
    assert [login.feed(piece) for piece in pieces[:-1]] == [[]] * (len(pieces) - 1)
    server.final(client_message(login.feed(pieces[-1])))


def test_a_server_that_does_not_know_the_password_is_not_believed():
    login = SaslLogin("alice", PASSWORD)
    login.plan("SCRAM-SHA-256")
    login.begin()
    impostor = ScramServer(password="something else")
    client_first = client_message(login.feed(line("AUTHENTICATE +")))
    client_final = client_message(feed_all(login, impostor.first(client_first)))
    with pytest.raises(ScramException):  # the client's proof does not fit its keys
        impostor.final(client_final)
    # An impostor answers with its own (wrong) server-final; the client gives up.
    fake = base64.b64encode(b"v=" + base64.b64encode(b"x" * 32)).decode()
    assert login.feed(line(f"AUTHENTICATE {fake}")) == ["AUTHENTICATE *"]
    assert login.done and not login.succeeded and login.numeric == ""
    assert "did not prove it knows the password" in login.reason


def test_plain_sends_the_credentials_once_asked():
    login = SaslLogin("bob", PASSWORD, mechanisms=("PLAIN",))
    assert login.plan("PLAIN,SCRAM-SHA-256")
    assert login.begin() == ["AUTHENTICATE PLAIN"]
    sent = login.feed(line("AUTHENTICATE +"))
    assert client_message(sent) == f"bob\0bob\0{PASSWORD}".encode()
    login.feed(line(":srv 903 bob :SASL authentication successful"))
    assert login.succeeded and login.mechanism == "PLAIN"


def test_wrong_credentials_fail_with_the_servers_words():
    login = SaslLogin("bob", "wrong", mechanisms=("PLAIN",))
    login.plan("PLAIN")
    login.begin()
    login.feed(line("AUTHENTICATE +"))
    failed = "SASL authentication failed: Invalid credentials"
    assert login.feed(line(f":srv 904 bob :{failed}")) == []
    assert login.done and not login.succeeded
    assert (login.numeric, login.reason) == ("904", failed)
    assert login.feed(line(":srv 906 bob :aborted")) == []  # over: later lines change nothing
    assert login.numeric == "904"


@pytest.mark.parametrize(
    ("offered", "mechanisms", "chosen"),
    [
        ("PLAIN,SCRAM-SHA-256", ("SCRAM-SHA-256", "PLAIN"), "SCRAM-SHA-256"),
        ("PLAIN,EXTERNAL", ("SCRAM-SHA-256", "PLAIN"), "PLAIN"),
        ("plain,scram-sha-256", ("plain",), "PLAIN"),
        ("", ("SCRAM-SHA-256", "PLAIN"), "SCRAM-SHA-256"),  # no list: ours, in order
    ],
)
def test_the_best_mechanism_both_sides_know(offered, mechanisms, chosen):
    login = SaslLogin("carol", PASSWORD, mechanisms=mechanisms)
    assert login.plan(offered)
    assert login.begin() == [f"AUTHENTICATE {chosen}"]


@pytest.mark.parametrize(
    ("offered", "reason"),
    [
        (None, "the server does not offer SASL"),
        ("EXTERNAL", "the server offers SASL EXTERNAL, not SCRAM-SHA-256, PLAIN"),
        ("PLAIN", PLAIN_REFUSED),  # PLAIN is all there is, and it is not safe here
    ],
)
def test_nothing_to_try_is_a_failure_before_anything_is_sent(offered, reason):
    login = SaslLogin("dave", PASSWORD, plain_safe=False)
    assert not login.plan(offered)
    assert login.done and not login.succeeded and login.reason == reason


def test_without_tls_plain_is_left_out_when_scram_is_there():
    login = SaslLogin("dave", PASSWORD, plain_safe=False)
    assert login.plan("PLAIN,SCRAM-SHA-256")
    assert login.begin() == ["AUTHENTICATE SCRAM-SHA-256"]
    login.feed(line(":srv 908 dave PLAIN :are available SASL mechanisms"))
    login.feed(line(":srv 904 dave :SASL authentication failed"))
    assert login.done and login.numeric == "904"  # never PLAIN, whatever the server says


def test_a_mechanism_the_server_refuses_falls_back_to_the_next():
    """No list in CAP LS: try SCRAM; the server names what it has (908) and refuses
    (904) before any exchange: PLAIN next."""
    login = SaslLogin("erin", PASSWORD)
    login.plan("")
    login.begin()
    assert login.feed(line(":srv 908 erin PLAIN :are available SASL mechanisms")) == []
    assert login.feed(line(":srv 904 erin :SASL authentication failed")) == ["AUTHENTICATE PLAIN"]
    assert not login.done
    client_message(login.feed(line("AUTHENTICATE +")))
    login.feed(line(":srv 904 erin :SASL authentication failed: Invalid account credentials"))
    assert login.done and login.numeric == "904"  # refused after the exchange: no retry


@pytest.mark.parametrize("numeric", ["902", "905", "906", "907"])
def test_other_failure_numerics_end_the_login(numeric):
    login = SaslLogin("fay", PASSWORD)
    login.plan("SCRAM-SHA-256")
    login.begin()
    login.feed(line("AUTHENTICATE +"))
    login.feed(line(f":srv {numeric} fay :nope"))
    assert login.done and not login.succeeded and (login.numeric, login.reason) == (numeric, "nope")


def test_garbage_and_timeouts_abort():
    login = SaslLogin("gus", PASSWORD)
    login.plan("SCRAM-SHA-256")
    login.begin()
    assert login.feed(line("AUTHENTICATE !!!")) == ["AUTHENTICATE *"]
    assert login.done and "not valid base64" in login.reason
    slow = SaslLogin("gus", PASSWORD)
    slow.plan("SCRAM-SHA-256")
    slow.begin()
    assert slow.give_up("no answer") == ["AUTHENTICATE *"]
    assert slow.give_up("again") == [] and slow.reason == "no answer"
    plain = SaslLogin("gus", PASSWORD, mechanisms=("PLAIN",))
    plain.plan("PLAIN")
    plain.begin()
    challenge = base64.b64encode(b"what?").decode()
    assert plain.feed(line(f"AUTHENTICATE {challenge}")) == ["AUTHENTICATE *"]


def test_mechanisms_are_checked():
    assert check_mechanisms(["plain"]) == ("PLAIN",)
    for bad in ([], ["EXTERNAL"], ["PLAIN", "SCRAM-SHA-1"]):
        with pytest.raises(ValueError, match="SASL mechanisms must be among"):
            check_mechanisms(bad)
