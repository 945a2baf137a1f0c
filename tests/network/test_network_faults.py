"""What users see when a node dies or Redis goes away (backplane/redis.py): real
greenchat-serve processes, a real redis-server, kill -9 and restarts."""

from __future__ import annotations

import itertools
import os
import signal
import time

import pytest
import redis_server
from links import DribblingLink
from transcript import IrcClient, chat_resumes, until

pytestmark = pytest.mark.timeout(90)

_networks = itertools.count(1)


@pytest.fixture
def private_redis():
    """A redis-server of the test's own, to stop and restart."""
    if not redis_server.available():
        pytest.skip(redis_server.SKIP_REASON)
    with redis_server.RedisServer() as server:
        yield server


def test_a_killed_node_s_users_quit_everywhere_and_free_their_nicks(redis_url, serve):
    network = f"killnet{next(_networks)}"
    a = serve("--backplane", redis_url, "--network", network, "--no-web")
    b = serve("--backplane", redis_url, "--network", network, "--no-web")
    alice = IrcClient(a.port).register("alice").join("#room")
    bob = IrcClient(b.port).register("bob").join("#room")
    try:
        alice.expect(r":bob!\S+ JOIN")
        started = time.monotonic()
        os.kill(b.proc.pid, signal.SIGKILL)
        b.proc.wait(timeout=10)
        alice.expect(r":bob!\S+ QUIT :\*\.net \*\.split", timeout=30)
        assert time.monotonic() - started < 30
        IrcClient(a.port).register("bob").close()  # the nick is free again
    finally:
        alice.close()
        bob.close()


def test_redis_away_gives_temporarily_unavailable_and_the_node_recovers(
    private_redis, nodes, connect
):
    a, b = nodes(2, url=private_redis.url)
    alice = connect(a, "alice").join("#room")
    bob = connect(b, "bob").join("#room")
    alice.expect(r":bob!\S+ JOIN")
    private_redis.end_process()  # Redis is gone
    alice.send("JOIN #other")
    alice.expect(r"FAIL JOIN TEMPORARILY_UNAVAILABLE ")
    alice.send("PRIVMSG #room :anyone?")  # bob is on the other node: not reached
    alice.expect(r"FAIL PRIVMSG TEMPORARILY_UNAVAILABLE ")
    alice.send("PING :still-here")  # the local session stays connected
    alice.expect(r"PONG \S+ :?still-here")
    private_redis.spawn()  # back, empty (nothing was saved)
    deadline = time.monotonic() + 10
    while True:  # chat resumes within 10 s, without a restart of either node
        alice.send("PRIVMSG #room :back?")
        try:
            bob.expect(r":alice!\S+ PRIVMSG #room :back\?", timeout=0.5)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "chat did not resume within 10 s"
    bob.send("PRIVMSG #room :yes")
    alice.expect(r":bob!\S+ PRIVMSG #room :yes")
    alice.send("JOIN #other")
    alice.expect(r" 366 alice #other ")
    # The network's state lives in the nodes, not in Redis: a node started after Redis
    # lost everything gets it from a live one.
    (c,) = nodes(1, url=private_redis.url, network=a.config.network)
    carol = connect(c, "carol")
    carol.send("NAMES #room")
    names = carol.expect(r" 353 carol \S #room :(.*)").group(1).split()
    assert sorted(n.lstrip("@+") for n in names) == ["alice", "bob"]
    carol.send("PRIVMSG #other :hi")  # +n: carol is no member, but #other exists
    carol.expect(r" 404 carol #other ")


def test_a_subscriber_dropped_for_a_full_output_buffer_resyncs(private_redis, serve):
    """Redis drops a node's subscriber whose output buffer overflows (a node that stopped
    reading: SIGSTOP here); the node says so, reconnects, reads the changes it missed
    from the stream (a JOIN made meanwhile), and chat goes on."""
    network = f"buffernet{next(_networks)}"
    flags = (
        "--backplane",
        private_redis.url,
        "--network",
        network,
        "--no-web",
        "--flood-rate",
        "0",
    )
    a, b = serve(*flags), serve(*flags)
    alice = IrcClient(a.port).register("alice").join("#room")
    bob = IrcClient(b.port).register("bob").join("#room")
    carol = IrcClient(a.port).register("carol")
    try:
        alice.expect(r":bob!\S+ JOIN")
        admin = private_redis.client()
        admin.config_set("client-output-buffer-limit", "pubsub 256kb 128kb 1")
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            # To bob: on b's own Redis channel, which a does not read (a node busy
            # reading its own traffic back could overflow too).
            line = "PRIVMSG bob :{} " + "x" * 400 + "\r\n"
            alice.send_raw(b"".join(line.format(i).encode() for i in range(4000)))
            alice.sync()
            carol.join("#room")  # b is not reading: it must get this JOIN from the stream
            _wait_until_dropped(admin, b.proc.pid)
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        b.wait_log(r"backplane: lost .*; reconnecting")
        bob.expect(r":carol!\S+ JOIN #room", timeout=15)
        chat_resumes(alice, bob, "#room")
    finally:
        for client in (alice, bob, carol):
            client.close()


def _wait_until_dropped(admin, pid: int, within: float = 10.0) -> None:
    """Until Redis has closed the stopped node's subscriber: one connection with
    subscriptions is left, a's."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        subscribers = [c for c in admin.client_list() if int(c.get("sub", 0)) > 0]
        if len(subscribers) < 2:  # only a's subscriber is left
            return
        time.sleep(0.05)
    raise AssertionError("Redis did not drop the stopped node's subscriber")


def test_a_redis_paused_for_seconds_and_chat_resumes(private_redis, nodes, connect):
    """redis-server stopped (SIGSTOP) for 3 seconds, then let go: local sessions stay,
    and chat across the nodes resumes within 10 s of it, without a restart."""
    a, b = nodes(2, url=private_redis.url)
    alice = connect(a, "alice").join("#room")
    bob = connect(b, "bob").join("#room")
    alice.expect(r":bob!\S+ JOIN")
    os.kill(private_redis.pid, signal.SIGSTOP)
    try:
        alice.send("PING :still-here")
        alice.expect(r"PONG \S+ :?still-here")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the sessions stay up meanwhile (no sleep:
            bob.send("PING :up")  # each PONG is the wait)
            bob.expect(r"PONG \S+ :?up")
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)
    chat_resumes(alice, bob, "#room")
    bob.send("PRIVMSG #room :yes")
    alice.expect(r":bob!\S+ PRIVMSG #room :yes")


def test_a_node_cut_off_while_redis_restarts_empty_reads_the_new_log(private_redis, nodes, connect):
    """Redis restarts with nothing saved while node b cannot reach it: node a gets
    back first, and its user's changes go in Redis's new log, numbered from 1 again,
    below where b was. When b gets through, it sees that Redis lost its data and
    applies the new log from its start (else it would take those entries for ones it
    had, and never show them)."""
    (a,) = nodes(1, url=private_redis.url)
    with DribblingLink(private_redis.url, pause=0) as link:
        (b,) = nodes(1, url=link.url, network=a.config.network)
        alice = connect(a, "alice").join("#room")
        bob = connect(b, "bob").join("#room")
        alice.expect(r":bob!\S+ JOIN")
        for i in range(5):  # b's place in the old log: past the new log's first entries
            alice.send(f"TOPIC #room :old {i}")
            bob.expect(rf"TOPIC #room :old {i}$")
        link.refusing = True
        private_redis.restart()  # empty: nothing was saved
        backplane = a.server.backplane
        until(lambda: backplane.reconnects and backplane.connected, 10, "node a reconnected")
        alice.send("TOPIC #room :while b was away", "JOIN #new")
        alice.expect(r" 366 alice #new ")
        link.refusing = False
        bob.expect(r":alice!\S+ TOPIC #room :while b was away$", timeout=15)
        bob.send("NAMES #new")
        assert bob.expect(r" 353 bob \S #new :(.*)").group(1).split() == ["@alice"]
        assert b.call(lambda: b.server.backplane.log_losses) == 1  # a metric, and logged
