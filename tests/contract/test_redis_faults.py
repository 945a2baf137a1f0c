"""RedisStore when Redis fails underneath, on a real redis-server of each test's own:
what the contract's "calls after close" is for SQLite's disk, here for the network and
the server's states (greenchat/store/redis_store.py). Then on a Redis Cluster: the
session's (scripts lost, slots moved: harmless to the others' tests, whose stores
reload and follow), and one of a test's own (nodes stopped)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis_server
from redis_cluster import RedisCluster
from redis_server import RedisServer
from test_account_store import account

from greenchat.store.base import HistoryBound, HistoryItem, StoreError, StoreUnavailable
from greenchat.store.redis_store import SOCKET_TIMEOUT, RedisStore


@pytest.fixture
def server() -> Iterator[RedisServer]:
    if not redis_server.available():
        pytest.skip(redis_server.SKIP_REASON)
    with RedisServer() as started:
        yield started


@pytest.fixture
def store(server) -> Iterator[RedisStore]:
    opened = RedisStore(server.url, "faults")
    yield opened
    opened.close()


def item(n: int, target: str = "#room") -> HistoryItem:
    return HistoryItem(target, f"m{n}", 1000.0 + n, "PRIVMSG", "a!a@h", "", (target, f"{n}"))


def stored(store: RedisStore, target: str = "#room") -> list[str]:
    return [i.msgid for i in store.history(target, None, None, 100, latest=False)]


# Enough conversations that a batch of them has a part on every primary of a cluster.
TARGETS = [f"#c{n}" for n in range(30)]


def spread(first: int) -> list[HistoryItem]:
    return [item(first + n, target) for n, target in enumerate(TARGETS)]


def test_opening_without_a_server_says_where_and_why(tmp_path):
    with pytest.raises(StoreError, match=r"cannot use Redis at unix://.*nowhere\.sock: cannot"):
        RedisStore(f"unix://{tmp_path}/nowhere.sock")


def test_a_password_in_the_url_is_not_shown():
    with pytest.raises(StoreError) as raised:
        RedisStore("redis://:hunter2@127.0.0.1:1/0")  # nothing listens on port 1
    assert "hunter2" not in str(raised.value) and "127.0.0.1:1" in str(raised.value)


def test_a_stopped_server_is_unavailable_and_a_restarted_one_serves_again(server, store):
    store.append_history([item(1)])
    server.restart()  # the pooled connection is dead; the new server lacks the scripts
    assert stored(store) == []  # nothing saved: an empty server, reached again
    server.stop()
    with pytest.raises(StoreUnavailable, match="cannot reach Redis"):
        store.append_history([item(2)])
    with pytest.raises(StoreUnavailable, match="cannot reach Redis"):
        store.get_account("alice")


def test_out_of_memory_refuses_writes_and_keeps_reads(server, store):
    store.append_history([item(1)])
    server.client().config_set("maxmemory", 1)
    with pytest.raises(StoreUnavailable, match="out of memory"):
        store.append_history([item(2)])
    with pytest.raises(StoreUnavailable, match="out of memory"):
        store.set_read_marker("alice", "#room", 5.0)
    assert stored(store) == ["m1"]  # nothing half-written
    server.client().config_set("maxmemory", 0)
    store.append_history([item(2)])
    assert stored(store) == ["m1", "m2"]


def test_a_read_only_replica_refuses_writes(server, store):
    store.append_history([item(1)])
    server.client().replicaof("127.0.0.1", 1)  # a master that is not there: stays read-only
    try:
        with pytest.raises(StoreUnavailable, match="read-only replica"):
            store.append_history([item(2)])
        assert stored(store) == ["m1"]
    finally:
        server.client().replicaof("no", "one")


def test_a_server_that_does_not_answer_times_out(server, store):
    server.client().client_pause(int(SOCKET_TIMEOUT * 1000) + 1000, all=True)
    began = time.monotonic()
    with pytest.raises(StoreUnavailable, match="did not answer"):
        store.read_markers("alice")
    assert time.monotonic() - began < SOCKET_TIMEOUT + 1.0


def test_lost_scripts_are_loaded_again(server, store):
    store.append_history([item(1)])
    server.client().script_flush()
    store.append_history([item(2)])  # a pipeline of scripts
    assert store.set_read_marker("alice", "#room", 5.0) == 5.0  # one script
    assert stored(store) == ["m1", "m2"]


def test_a_batch_tried_again_stores_nothing_twice(store):
    # After a failure part-way (the server took some conversations' lines, or all of
    # them and the answer was lost), the server's writer sends the batch again.
    batch = [item(1), item(2), item(3)]
    store.append_history(batch[:2])
    store.append_history(batch)
    got = store.history("#room", None, None, 100, latest=False)
    assert [i.msgid for i in got] == ["m1", "m2", "m3"]
    assert [i.seq for i in got] == sorted({i.seq for i in got})  # each once, rising


# -- on a Redis Cluster ----------------------------------------------------------------


@pytest.fixture
def cluster_store(redis_cluster_url) -> Iterator[RedisStore]:
    opened = RedisStore(redis_cluster_url, f"faults-{uuid.uuid4().hex}")
    assert opened.cluster
    yield opened
    opened.close()


def primaries(url: str) -> list[redis.Redis]:
    cluster = redis.RedisCluster.from_url(url)
    try:
        return [redis.Redis(port=node.port, socket_timeout=5) for node in cluster.get_primaries()]
    finally:
        cluster.close()


def move_slot(url: str, key: str) -> None:
    """Reshard the slot of ``key`` to another primary, keys and all, as an operator's
    ``redis-cli --cluster reshard`` does; clients that mapped it learn by MOVED."""
    cluster = redis.RedisCluster.from_url(url)
    try:
        slot, source = cluster.keyslot(key), cluster.get_node_from_key(key)
        nodes = {node.name: cluster.get_redis_connection(node) for node in cluster.get_primaries()}
        ids = {name: node.cluster("MYID").decode() for name, node in nodes.items()}
        target = next(name for name in nodes if name != source.name)
        nodes[target].cluster("SETSLOT", slot, "IMPORTING", ids[source.name])
        nodes[source.name].cluster("SETSLOT", slot, "MIGRATING", ids[target])
        port = int(target.rpartition(":")[2])
        while keys := nodes[source.name].cluster("GETKEYSINSLOT", slot, 1000):
            nodes[source.name].migrate("127.0.0.1", port, keys, 0, 5000)
        for node in nodes.values():
            node.cluster("SETSLOT", slot, "NODE", ids[target])
    finally:
        cluster.close()


def test_a_cluster_that_lost_its_scripts_loads_them_again(redis_cluster_url, cluster_store):
    cluster_store.append_history(spread(0))
    for node in primaries(redis_cluster_url):
        node.script_flush()  # as after a failover to a replica that never had them
    cluster_store.append_history(spread(100))  # a pipeline per primary, then a script
    assert cluster_store.set_read_marker("alice", "#c1", 5.0) == 5.0
    assert [stored(cluster_store, target) for target in TARGETS[:3]] == [
        ["m0", "m100"], ["m1", "m101"], ["m2", "m102"]
    ]  # fmt: skip


def test_a_cluster_slot_moved_elsewhere_is_followed(redis_cluster_url, cluster_store):
    # The store mapped the slots at open; then an operator moves the registry's, a
    # conversation's and the conversation index's slots to other primaries.
    cluster_store.create_account(account("alice"))
    cluster_store.append_history(spread(0))
    keys = cluster_store.keys
    for key in (keys.accounts, keys.times("#c0"), keys.conversations):
        move_slot(redis_cluster_url, key)
    assert cluster_store.get_account("alice").name == "alice"  # MULTI of {r}
    cluster_store.append_history(spread(100))  # pipelines, then ``conversations``
    got = cluster_store.history("#c0", HistoryBound(msgid="m0"), None, 10, latest=False)
    assert [i.msgid for i in got] == ["m100"]
    assert len(cluster_store.history_targets(TARGETS, 0.0, 1e9, 100)) == len(TARGETS)
    assert cluster_store.expire_history(1050.0, 0, batch=1000) == len(TARGETS)


def test_a_cluster_whose_nodes_stop_is_unavailable():
    if not redis_server.available():
        pytest.skip(redis_server.SKIP_REASON)
    with RedisCluster() as cluster:
        store = RedisStore(cluster.url, "faults")
        try:
            store.append_history(spread(0))
            cluster.servers[1].stop()  # a third of the slots gone (no replicas)
            with pytest.raises(StoreUnavailable, match="cannot reach Redis"):
                store.append_history(spread(100))  # the part for that primary fails
            for server in cluster.servers:
                server.stop()
            # A lost connection (a RedisError), then the cluster client's own words
            # when no node tells it the slots (a RedisClusterException, not one).
            for call, args in [(store.get_account, ("alice",)), (store.read_markers, ("a",))]:
                with pytest.raises(StoreUnavailable, match="cannot reach"):
                    call(*args)
            with pytest.raises(StoreUnavailable, match="any node of the Redis cluster"):
                store.history("#c0", None, None, 10, latest=False)
        finally:
            store.close()
