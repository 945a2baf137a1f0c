"""REDACT over real sockets (IRCv3 draft/message-redaction): by the sender, by a
channel operator, refused to anyone else; shown only to clients with the capability;
the redacted line leaves CHATHISTORY; the spec's FAIL codes."""

from __future__ import annotations

import re

import pytest
from test_chathistory import batch, msgid, texts

CAPS = "batch server-time message-tags echo-message draft/chathistory draft/message-redaction"


@pytest.fixture
def room(make_server, connect):
    """#r: alice (operator, its founder), bob and carol (without the capability)."""
    server = make_server(flood_rate=0)
    alice = connect(port=server.port).register_with_caps("alice", CAPS)
    bob = connect(port=server.port).register_with_caps("bob", CAPS)
    carol = connect(port=server.port).register_with_caps("carol", "message-tags")
    for client in (alice, bob, carol):
        client.join("#r")
    return server, alice, bob, carol


def said(client, target: str, text: str) -> str:
    """Send a line; its msgid, from the echo."""
    client.send(f"PRIVMSG {target} :{text}")
    return msgid(client.expect(rf"PRIVMSG {re.escape(target)} :{re.escape(text)}$").string)


def test_the_sender_deletes_its_own_line(room):
    _, alice, bob, carol = room
    keep = said(bob, "#r", "keep me")
    gone = said(bob, "#r", "oops")
    bob.send(f"REDACT #r {gone} :typo")
    line = bob.expect(rf"^@\S+ :bob!\S+ REDACT #r {gone} :typo$").string
    assert msgid(line) != gone  # the REDACT has a msgid of its own
    alice.expect(rf":bob!\S+ REDACT #r {gone} :typo$")
    carol.sync("after")  # everything sent to carol before this has arrived
    assert not [line for line in carol.lines if " REDACT " in line]  # no capability: none
    assert texts(batch(alice, "CHATHISTORY LATEST #r * 10")) == ["keep me"]
    assert keep in " ".join(batch(bob, "CHATHISTORY LATEST #r * 10"))


def test_an_operator_may_delete_others_lines_a_member_may_not(room):
    _, alice, bob, _ = room
    line = said(alice, "#r", "from the op")
    bob.send(f"REDACT #r {line}")
    bob.expect(rf"FAIL REDACT REDACT_FORBIDDEN #r {line} :")
    spam = said(bob, "#r", "spam")
    alice.send(f"REDACT #r {spam} spam")
    bob.expect(rf":alice!\S+ REDACT #r {spam} :spam$")
    assert texts(batch(bob, "CHATHISTORY LATEST #r * 10")) == ["from the op"]


def test_private_lines_between_the_two_parties(room):
    _, alice, bob, _ = room
    line = said(alice, "bob", "psst")
    bob.expect(r"PRIVMSG bob :psst$")
    alice.send(f"REDACT bob {line}")
    alice.expect(rf"REDACT bob {line}$")
    bob.expect(rf":alice!\S+ REDACT bob {line}$")
    assert batch(bob, "CHATHISTORY LATEST alice * 10") == []


def test_unknown_msgids_targets_and_events_are_refused(room, connect):
    server, alice, bob, _ = room
    alice.send("REDACT #r nosuchid")
    alice.expect(r"FAIL REDACT UNKNOWN_MSGID #r nosuchid :")
    outsider = connect(port=server.port).register_with_caps("dave", CAPS)
    line = said(alice, "#r", "members only")
    outsider.send(f"REDACT #r {line}")
    outsider.expect(r"FAIL REDACT INVALID_TARGET #r :")
    outsider.send(f"REDACT #nowhere {line}")
    outsider.expect(r"FAIL REDACT INVALID_TARGET #nowhere :")
    alice.send(f"REDACT #elsewhere {line}")  # a msgid of another conversation
    alice.expect(r"FAIL REDACT INVALID_TARGET #elsewhere :")
    bob.send("CAP REQ draft/event-playback")
    bob.expect(r"CAP bob ACK :?draft/event-playback")
    joins = [li for li in batch(bob, "CHATHISTORY LATEST #r * 10") if " JOIN " in li]
    alice.send(f"REDACT #r {msgid(joins[0])}")  # a JOIN is no message
    alice.expect(r"FAIL REDACT UNKNOWN_MSGID #r \S+ :")
    alice.send("REDACT #r")
    alice.expect(r" 461 alice REDACT :")


def test_without_history_nothing_can_be_found(make_server, connect):
    server = make_server(history=False)
    alice = connect(port=server.port).register_with_caps("alice", "echo-message message-tags")
    alice.send("CAP LS 302")
    ls = alice.read_cap_ls()
    assert "draft/message-redaction" not in ls and "draft/read-marker" in ls
    alice.send("REDACT alice someid")
    alice.expect(r"FAIL REDACT UNKNOWN_MSGID alice someid :")
