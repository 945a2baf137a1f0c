"""The listener's subscriptions: one pub/sub connection to a single Redis, or one per
shard of a Redis Cluster (sharded pub/sub: ``SSUBSCRIBE``, each channel on the shard
that owns its slot).

Either way the listener reads them as one stream of messages (``next_message``):
each connection's messages in the order Redis sent them, connections taken in turn.
Across shards there is no order; the backplane restores what it needs (redis.py,
"Order"). A shard that tells us a channel moved (``sunsubscribe`` we did not ask
for: its slot went to another shard) raises ConnectionError, and the listener
subscribes everything again, on the shards the cluster names then.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import suppress
from typing import Any

import gevent
import redis
from gevent.select import POLLIN, poll
from gevent.socket import wait_read

__all__ = ["Subscriber"]

READ_TIMEOUT = 10.0  # for the rest of a message whose first bytes are here
SLICE = 0.25  # the longest wait without looking at the flag that stops the listener

# Sharded pub/sub's message types, as the listener knows them from plain pub/sub.
_PLAIN = {"smessage": "message", "ssubscribe": "subscribe", "sunsubscribe": "unsubscribe"}


class Subscriber:
    """The subscriptions of one listener, on ``client`` (a redis.Redis or a
    redis.RedisCluster)."""

    def __init__(self, client: Any, cluster: bool) -> None:
        self.client = client
        self.cluster = cluster
        self._pubsubs: dict[str, Any] = {}  # shard (host:port, "" for a single Redis)
        self._shard_of: dict[str, str] = {}  # channel -> its shard
        self._leaving: Counter[str] = Counter()  # our SUNSUBSCRIBEs not confirmed yet
        self._turn = 0

    def _pubsub_for(self, channel: str) -> Any:
        if not self.cluster:
            shard = ""
            if shard not in self._pubsubs:
                self._pubsubs[shard] = self.client.pubsub()
        else:
            node = self.client.get_node_from_key(channel)
            shard = node.name
            if shard not in self._pubsubs:
                self._pubsubs[shard] = self.client.get_redis_connection(node).pubsub()
        self._shard_of[channel] = shard
        return self._pubsubs[shard]

    def subscribe(self, *channels: str) -> None:
        """Ask for ``channels``; each confirmation comes as a ``subscribe`` message."""
        for channel in channels:
            pubsub = self._pubsub_for(channel)
            if self.cluster:
                pubsub.ssubscribe(channel)
            else:
                pubsub.subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        shard = self._shard_of.pop(channel, None)
        pubsub = self._pubsubs.get(shard) if shard is not None else None
        if pubsub is None:
            return
        if self.cluster:
            self._leaving[channel] += 1
            pubsub.sunsubscribe(channel)
        else:
            pubsub.unsubscribe(channel)

    def close(self) -> None:
        """Close every connection (a listener waiting in next_message returns)."""
        for pubsub in self._pubsubs.values():
            with suppress(redis.RedisError, OSError):
                pubsub.close()
        self._pubsubs.clear()
        self._shard_of.clear()
        self._leaving.clear()

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message from any connection, waiting at most ``timeout``.

        redis-py's own wait is a blocking poll(), so the wait is gevent's here, in
        short slices (a stop, the flag then close(), is seen within one). And redis-py
        is asked only once data is there, with a timeout of its own: asked with none
        (0), it takes half a message (a long run of them arrives in pieces) for a
        timeout and drops the connection.
        """
        deadline = time.monotonic() + timeout
        while True:
            sockets = []
            pubsubs = list(self._pubsubs.values())
            if not pubsubs:
                raise redis.ConnectionError("the subscriber connection is closed")
            if len(pubsubs) > 1:  # shards taken in turn: none starves the others
                self._turn = (self._turn + 1) % len(pubsubs)
                pubsubs = pubsubs[self._turn :] + pubsubs[: self._turn]
            for pubsub in pubsubs:
                connection = pubsub.connection
                if connection is None:
                    continue  # a new shard's, still connecting for its first subscription
                sock = getattr(connection, "_sock", None)
                if sock is None:
                    raise redis.ConnectionError("the subscriber connection is closed")
                if connection.can_read(timeout=0):  # buffered, or on the socket: no wait
                    return self._plain(pubsub.get_message(timeout=READ_TIMEOUT))
                sockets.append(sock)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not sockets:
                gevent.sleep(min(left, 0.01))
                continue
            try:
                _wait_readable(sockets, min(left, SLICE))
            except (OSError, ValueError) as exc:  # closed under us: stop() or a failure
                raise redis.ConnectionError(f"the subscriber connection failed: {exc}") from None

    def _plain(self, message: dict[str, Any] | None) -> dict[str, Any] | None:
        """A sharded message as a plain one; a channel the cluster moved away from its
        shard (an unsubscription we did not ask for) is a lost connection."""
        if message is None or not self.cluster:
            return message
        kind = _PLAIN.get(message["type"], message["type"])
        if kind == "unsubscribe":
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            if not self._leaving[channel]:
                raise redis.ConnectionError(f"the cluster moved {channel} to another shard")
            self._leaving[channel] -= 1
        message["type"] = kind
        return message

    def refresh(self) -> None:
        """Ask the cluster again which shard owns which slots (after a failure)."""
        if self.cluster:
            with suppress(redis.RedisError, OSError):
                self.client.nodes_manager.initialize()


def _wait_readable(sockets: list[Any], timeout: float) -> None:
    """Until one of ``sockets`` has data, ``timeout`` seconds at most: gevent's own
    watchers (not select(), which refuses a descriptor past 1,023, as a server with
    thousands of connections has)."""
    if len(sockets) == 1:  # a single Redis: one watcher, as cheap as it gets
        with suppress(gevent.Timeout):
            wait_read(sockets[0].fileno(), timeout=timeout, timeout_exc=gevent.Timeout)
        return
    poller = poll()
    for sock in sockets:
        poller.register(sock, POLLIN)
    poller.poll(timeout * 1000)
