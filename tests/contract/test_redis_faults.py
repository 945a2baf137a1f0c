"""RedisStore when Redis fails underneath, on a real redis-server of each test's own:
what the contract's "calls after close" is for SQLite's disk, here for the network and
the server's states (greenchat/store/redis_store.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis_server
from redis_server import RedisServer

from greenchat.store.base import HistoryItem, StoreError, StoreUnavailable
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


def item(n: int) -> HistoryItem:
    return HistoryItem("#room", f"m{n}", 1000.0 + n, "PRIVMSG", "a!a@h", "", ("#room", f"{n}"))


def stored(store: RedisStore) -> list[str]:
    return [i.msgid for i in store.history("#room", None, None, 100, latest=False)]


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
