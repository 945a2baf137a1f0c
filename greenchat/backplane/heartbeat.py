"""A node's heartbeat, on a thread of its own.

A node says it is alive by setting a key with a TTL every HEARTBEAT_EVERY
seconds; the others quit the users of a node whose key is gone (redis.py). Each
beat also puts the node in the network's roll (a sorted set, scored by the time
of its last beat), where a node that starts finds the others without scanning
the keyspace.
Beaten from a greenlet, the heartbeat waited its turn in the event loop, and a
loop that is busy but well (a JOIN storm of 20,000 members: every joiner's
NAMES, every member's flush) let it come 20 s late, long enough for the other
nodes to take a live node for dead and quit its users. So the key is set from a
thread, whose Python runs within the interpreter's switch interval whatever the
loop is doing, as long as the loop is seen alive: the backplane's heartbeat
greenlet calls :meth:`loop_alive` each time it runs, and a loop not seen for
LOOP_STALL seconds (a hang) stops the beats, so the node is reaped then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from gevent.threadpool import ThreadPool

from greenchat.backplane.connection import client_for

__all__ = ["HeartbeatThread", "beat"]

log = logging.getLogger("greenchat.backplane")

LOOP_STALL = 60.0  # seconds without the event loop seen before the beats stop
RETRY_EVERY = 0.5  # seconds before a failed beat is tried again
SLICE = 0.05  # seconds the thread sleeps at a time (a stop is seen within one)


class HeartbeatThread:
    """Sets ``key`` to ``value()`` (None: not yet) for ``ttl`` s, every ``every`` s, and
    ``node``'s score in the sorted set ``roll`` to the time."""

    def __init__(
        self, url: str, key: str, value: Callable[[], bytes | None], every: float, ttl: int,
        roll: str, node: str,
    ) -> None:  # fmt: skip
        self.url, self.key, self.value = url, key, value
        self.every, self.ttl = every, ttl
        self.roll, self.node = roll, node
        self.running = False
        self.cluster = False  # the backplane says so before the first beat (see _beat)
        self.beats = 0
        self._loop_seen = time.monotonic()
        self._next = 0.0  # when the thread beats next (monotonic)
        self._pool: ThreadPool | None = None

    def start(self) -> None:
        """Start beating (the first beat within one SLICE, once ``value()`` says)."""
        self.running = True
        self._pool = ThreadPool(1)
        self._pool.spawn(self._run)

    def loop_alive(self) -> None:
        """The event loop ran (called from one of its greenlets)."""
        self._loop_seen = time.monotonic()

    def beat_now(self) -> None:
        """Beat at the next slice instead of waiting for the next period."""
        self._next = 0.0

    def stop(self) -> None:
        """Stop beating (within one SLICE); the thread ends."""
        self.running = False
        if self._pool is not None:
            self._pool.join()
            self._pool.kill()

    def _run(self) -> None:
        client: redis.Redis | None = None
        try:
            while self.running:
                now = time.monotonic()
                if now >= self._next:
                    self._next = now + self.every
                    client = self._beat(client, now)
                time.sleep(SLICE)  # gevent's own (patched or not): this thread's hub sleeps
        finally:
            if client is not None:
                client.close()

    def _beat(self, client: redis.Redis | None, now: float) -> redis.Redis | None:
        """Set the key (once ``value()`` says what); the client, made at the first beat
        (on the thread: its gevent sockets belong to this thread's hub; and by then the
        backplane knows whether the Redis is a cluster, ``self.cluster``)."""
        if now - self._loop_seen > LOOP_STALL:
            log.error("backplane: the event loop has not run for %.0f s; heartbeat stopped",
                      now - self._loop_seen)  # fmt: skip
            return client
        value = self.value()
        if value is None:
            return client
        try:
            if client is None:
                options = {"socket_connect_timeout": 3.0, "socket_timeout": 3.0}
                client = client_for(self.url, self.cluster, **options)
            beat(client, self.key, value, self.ttl, self.roll, self.node)
            self.beats += 1
        except (redis.RedisError, OSError) as exc:
            log.debug("backplane: heartbeat failed: %s", exc)
            self._next = now + min(self.every, RETRY_EVERY)  # Redis back: beat soon
        return client


def beat(client: redis.Redis, key: str, value: bytes, ttl: int, roll: str, node: str) -> None:
    """One heartbeat: the key with its TTL, and the node's time in the roll (one round
    trip; on a cluster the two share the network's slot)."""
    pipe = client.pipeline(transaction=False)
    pipe.set(key, value, ex=ttl)
    pipe.zadd(roll, {node: time.time()})
    pipe.execute()
