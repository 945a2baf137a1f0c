"""What only a Redis Cluster can do to a network: deliver a channel's messages and
the log from different shards, one of them late (shard_order.py restores the order).
The rest of the two-node suite runs on a cluster too (test_two_nodes.py)."""

from __future__ import annotations

import threading

import pytest
import redis
import redis_server
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_cluster import RedisCluster
from transcript import chat_resumes, until

STALL = 0.5  # seconds the channel's shard sleeps (DEBUG SLEEP) while the lines go out


def _on_another_shard(cluster: redis.RedisCluster, backplane) -> str:
    """A channel name whose Redis channel lives on another shard than the log."""
    log_shard = cluster.get_node_from_key(backplane.log_channel).name
    for i in range(100):
        name = f"#far{i}"
        if cluster.get_node_from_key(backplane.channel_of(name)).name != log_shard:
            return name
    raise AssertionError("every channel tried is on the log's shard")


def _until_asleep(node) -> None:
    """Until the shard does not answer a PING within 50 ms: DEBUG SLEEP has begun."""
    # No retries: redis-py would try again until the sleep is over.
    probe = redis.Redis(
        host=node.host, port=node.port, socket_timeout=0.05, retry=Retry(NoBackoff(), 0)
    )

    def asleep() -> bool:
        try:
            probe.ping()
        except redis.TimeoutError:
            return True
        probe.connection_pool.disconnect()  # a fresh connection for the next try
        return False

    try:
        until(asleep, 5.0, "the shard went to sleep")
    finally:
        probe.close()


def test_a_part_comes_after_the_last_message_though_their_shard_is_late(
    redis_cluster_url, nodes, connect
):
    """The channel's shard sleeps while the talker's lines and PART go out: the PART
    reaches the watcher's node first, from the log's shard, and is held until the
    lines came (without the hold, the watcher sees the PART before them)."""
    a, b = nodes(2, url=redis_cluster_url, flood_rate=0)
    cluster = redis.RedisCluster.from_url(redis_cluster_url)
    try:
        name = _on_another_shard(cluster, a.server.backplane)
        watcher = connect(b, "watcher").join(name)
        talker = connect(a, "talker").join(name)
        watcher.expect(rf":talker!\S+ JOIN :?{name}")
        # The publisher's connection to the shard is made now, not while it sleeps (a
        # connection's handshake would wait for it, and the PART behind it).
        talker.send(f"PRIVMSG {name} :before")
        watcher.expect(rf"PRIVMSG {name} :before$")
        node = cluster.get_node_from_key(a.server.backplane.channel_of(name))
        shard = redis.Redis(host=node.host, port=node.port)
        sleeper = threading.Thread(target=shard.execute_command, args=("DEBUG", "SLEEP", STALL))
        sleeper.start()
        try:
            _until_asleep(node)
            talker.send(*[f"PRIVMSG {name} :{i}" for i in range(20)], f"PART {name} :bye")
            lines = [watcher.expect(rf":talker!\S+ (PRIVMSG|PART) {name}") for _ in range(21)]
        finally:
            sleeper.join(timeout=10)
            shard.close()
    finally:
        cluster.close()
    assert [m.group(1) for m in lines] == ["PRIVMSG"] * 20 + ["PART"]
    assert [int(m.string.rsplit(":", 1)[1]) for m in lines[:20]] == list(range(20))
    assert b.server.backplane.order.held >= 1  # the PART did come first, and waited


@pytest.fixture
def private_cluster():
    """A Redis Cluster of the test's own, whose shards it restarts."""
    if not redis_server.available():
        pytest.skip(redis_server.SKIP_REASON)
    with RedisCluster() as cluster:
        yield cluster


def test_each_shard_restarted_in_turn_and_chat_resumes(private_cluster, nodes, connect):
    """The channel's shard, then the log's, restarted empty (nothing saved; each keeps
    its slots): the nodes reconnect to it, subscribe again and chat resumes within
    10 s each time, without a restart; a JOIN after the log's restart goes through."""
    a, b = nodes(2, url=private_cluster.url)
    backplane = a.server.backplane
    cluster = redis.RedisCluster.from_url(private_cluster.url)
    try:
        name = _on_another_shard(cluster, backplane)
        shards = [cluster.get_node_from_key(key).port
                  for key in (backplane.channel_of(name), backplane.log_channel)]  # fmt: skip
    finally:
        cluster.close()
    talker = connect(a, "talker").join(name)
    watcher = connect(b, "watcher").join(name)
    talker.expect(rf":watcher!\S+ JOIN :?{name}")
    ports = [port for port, _ in private_cluster.addresses]
    for port in shards:
        private_cluster.servers[ports.index(port)].restart()
        chat_resumes(talker, watcher, name)
    late = connect(b, "late").join(name)
    talker.expect(rf":late!\S+ JOIN :?{name}")
    late.send(f"PRIVMSG {name} :made it")
    talker.expect(rf":late!\S+ PRIVMSG {name} :made it$")
    assert b.server.backplane.reconnects >= 2  # it did lose each shard
