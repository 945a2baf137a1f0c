"""Heartbeats (backplane/heartbeat.py): a node whose event loop stalls stays alive
to the others, and one they took for dead anyway disconnects the users they quit.

The heartbeat's period and TTL are shortened here (0.5 s and 2 s: a node is
reaped after about 4 s without a beat) so that each test takes seconds.
"""

from __future__ import annotations

import time

import pytest

from greenchat.backplane import redis as backplane

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def quick_heartbeats(monkeypatch):
    monkeypatch.setattr(backplane, "HEARTBEAT_EVERY", 0.5)
    monkeypatch.setattr(backplane, "HEARTBEAT_TTL", 2)


def test_a_node_whose_event_loop_stalls_keeps_its_users(quick_heartbeats, nodes, connect):
    """A loop blocked three times as long as the reaper waits (a JOIN storm's NAMES
    once delayed a greenlet heartbeat 20 s): the thread beats meanwhile."""
    a, b = nodes(2)
    alice = connect(a, "alice").join("#room")
    bob = connect(b, "bob").join("#room")
    alice.expect(r":bob!\S+ JOIN")
    a.call(time.sleep, 8.0, timeout=15)  # blocks node a's whole event loop
    bob.send("PRIVMSG #room :still there?")
    alice.expect(r":bob!\S+ PRIVMSG #room :still there\?$")
    alice.send("PRIVMSG #room :yes")
    bob.expect(r":alice!\S+ PRIVMSG #room :yes$")
    bob.sync()
    assert not any(" QUIT " in line for line in bob.lines)


def test_a_node_taken_for_dead_disconnects_the_users_it_lost(quick_heartbeats, nodes, connect):
    """Its heartbeat stops (as a hung loop's does) while it still serves: the other
    node quits its users, and it disconnects them, as in a netsplit; they come back."""
    a, b = nodes(2)
    alice = connect(a, "alice").join("#room")
    carol = connect(a, "carol").join("#room")
    bob = connect(b, "bob").join("#room")
    alice.expect(r":bob!\S+ JOIN")
    a.server.backplane.heart.running = False  # the thread ends within a quarter second
    bob.expect(r":alice!\S+ QUIT :\*\.net \*\.split$", timeout=20)
    alice.expect(r"^ERROR :Closing Link: \S+ \(\*\.net \*\.split\)$")
    assert a.call(lambda: a.server.backplane.taken_for_dead) == 2
    bob.send("WHOIS alice")
    bob.expect(r" 401 bob alice ")
    carol.expect_closed()
    again = connect(b, "alice").join("#room")  # the nick is free everywhere
    bob.expect(r":alice!\S+ JOIN :?#room$")
    again.send("PRIVMSG #room :back")
    bob.expect(r":alice!\S+ PRIVMSG #room :back$")
    for node in (a, b):  # both replicas hold the new alice only, of node b
        users = node.call(lambda n=node: sorted(u.nick for u in n.server.hub.users))
        assert users == ["alice", "bob"]
