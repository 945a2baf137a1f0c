"""What users see when a node dies or Redis goes away (backplane/redis.py): real
greenchat-serve processes, a real redis-server, kill -9 and restarts."""

from __future__ import annotations

import itertools
import os
import signal
import time

import pytest
import redis_server
from transcript import IrcClient

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
