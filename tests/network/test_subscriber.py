"""The listener's subscriptions (backplane/subscriber.py) on a real Redis and a real
Redis Cluster, in a process with more than a thousand descriptors open, as a server
with its clients has: the Redis sockets' numbers are past what select() takes."""

from __future__ import annotations

import os
import time

import pytest
import redis

from greenchat.backplane.connection import client_for
from greenchat.backplane.subscriber import Subscriber

CHANNELS = [f"gc:subtest:{{c{i}}}" for i in range(6)]  # hash tags: over every shard


def _read(subscriber: Subscriber, kind: str, count: int) -> list[dict]:
    found, deadline = [], time.monotonic() + 10
    while len(found) < count:
        assert time.monotonic() < deadline, f"only {found} of {count} {kind} messages"
        message = subscriber.next_message(0.5)
        if message is not None and message["type"] == kind:
            found.append(message)
    return found


@pytest.mark.parametrize("kind", ["redis", "cluster"])
def test_a_subscriber_past_descriptor_1023_reads_every_shard(kind, request):
    url = request.getfixturevalue("redis_cluster_url" if kind == "cluster" else "redis_url")
    cluster = kind == "cluster"
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    client = client_for(url, cluster)
    subscriber = Subscriber(client, cluster)
    try:
        subscriber.subscribe(*CHANNELS)
        _read(subscriber, "subscribe", len(CHANNELS))
        sockets = [pubsub.connection._sock for pubsub in subscriber._pubsubs.values()]
        assert min(sock.fileno() for sock in sockets) > 1023
        assert len(sockets) == (3 if cluster else 1)
        publisher = redis.RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
        try:
            for channel in CHANNELS:
                (publisher.spublish if cluster else publisher.publish)(channel, channel)
        finally:
            publisher.close()
        got = _read(subscriber, "message", len(CHANNELS))
        assert sorted(m["data"].decode() for m in got) == sorted(CHANNELS)
    finally:
        subscriber.close()
        client.close()
        for fd in filler:
            os.close(fd)
