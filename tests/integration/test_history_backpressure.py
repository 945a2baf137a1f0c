"""A store slower than the chat (healthy, just behind): the senders of stored lines
wait, nothing accepted is lost, and readers and PINGs go on. A failing store holds
nobody: chat goes on. The WAL is checkpointed off the writer's path."""

from __future__ import annotations

import threading
import time

import pytest

from greenchat.server import history

CAPS = "batch server-time message-tags draft/chathistory"
DEADLINE = 10.0


@pytest.fixture
def low_water(monkeypatch):
    """Backpressure after 30 waiting lines, until under 10; a held sender waits until
    then (the test's deadline bounds it)."""
    monkeypatch.setattr(history, "HIGH_WATER", 30)
    monkeypatch.setattr(history, "LOW_WATER", 10)
    monkeypatch.setattr(history, "HOLD_MAX", DEADLINE)


def lines(start: int, count: int) -> list[str]:
    return [f"PRIVMSG #h :line {n}" for n in range(start, start + count)]


def until(server, probe, what: str):
    """Poll ``probe()`` on the server's hub until it is true; its value."""
    deadline = time.monotonic() + DEADLINE
    while not (value := server.call(probe)):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)
    return value


def test_a_store_behind_holds_the_sender_and_loses_nothing(low_water, make_server, connect):
    server = make_server(flood_rate=0)
    recorder, storage = server.server.history, server.server.storage
    alice = connect(port=server.port).register_with_caps("alice", CAPS)
    bob = connect(port=server.port).register("bob")
    carol = connect(port=server.port).register("carol")
    alice.join("#h")
    bob.join("#h")
    until(server, lambda: recorder.backlog == 0, "the JOINs stored")
    gate = threading.Event()  # the storage thread is busy until the test opens it
    server.call(lambda: storage._pool.spawn(gate.wait, DEADLINE))
    try:
        alice.send(*lines(0, 50))
        bob.expect(r":alice!\S+ PRIVMSG #h :line 49$")  # delivered live at once
        until(server, lambda: recorder.holds, "alice held")
        assert server.call(lambda: recorder.backlogged and recorder.backlog) == 50
        alice.send(*lines(50, 50))
        carol.send("PING :still-here")  # neither a sender nor held: answered
        carol.expect(r" PONG \S+ :?still-here$")
        # alice's second fifty wait in her socket, not read: nothing more was noted.
        assert server.call(lambda: recorder.backlog) == 50
    finally:
        gate.set()
    bob.expect(r":alice!\S+ PRIVMSG #h :line 99$")
    until(server, lambda: not recorder.backlogged and not recorder.pending, "caught up")
    alice.send("CHATHISTORY LATEST #h * 100")
    alice.expect(r"BATCH \+\S+ chathistory #h")
    for n in range(100):
        alice.expect(rf"PRIVMSG #h :line {n}$")
    assert server.call(lambda: recorder.dropped) == 0


@pytest.mark.single_process(
    "makes SQLite refuse writes underneath (PRAGMA query_only); two nodes share Redis"
)
def test_a_failing_store_holds_nobody(low_water, make_server, connect):
    """Writes refused underneath (SQLite's query_only): the backlog grows past the
    mark and chat goes on at full speed; every line is stored once it recovers."""
    server = make_server(flood_rate=0)
    recorder, storage = server.server.history, server.server.storage

    def query_only(on: bool) -> None:
        server.call(storage.run, storage.store._db.execute, f"PRAGMA query_only = {int(on)}")

    alice = connect(port=server.port).register("alice")
    bob = connect(port=server.port).register("bob")
    alice.join("#h")
    bob.join("#h")
    query_only(True)
    alice.send(*lines(0, 40))
    bob.expect(r":alice!\S+ PRIVMSG #h :line 39$")
    # The first write may find the mark passed before the store is known to fail (a
    # hold, released by the failure); from then on nobody waits.
    until(server, lambda: not storage.healthy, "the store seen failing")
    assert not server.call(lambda: recorder.backlogged)
    holds = server.call(lambda: recorder.holds)
    alice.send(*lines(40, 40))
    bob.expect(r":alice!\S+ PRIVMSG #h :line 79$")
    assert server.call(lambda: (recorder.holds, recorder.backlogged)) == (holds, False)
    query_only(False)
    until(server, lambda: storage.healthy and not recorder.pending, "stored after recovery")
    stored = server.call(storage.run, storage.store.history, "#h", None, None, 100, True, 0.0, True)
    assert [item.params[-1] for item in stored] == [f"line {n}" for n in range(80)]


def test_the_server_checkpoints_the_wal_on_a_thread_of_its_own(
    monkeypatch, tmp_path, make_server, connect
):
    """No write of the server's copies the WAL back (defer_checkpoints); its storage's
    own thread does, every CHECKPOINT_EVERY: the lines reach the database file itself."""
    from greenchat.server import storage as storage_module

    monkeypatch.setattr(storage_module, "CHECKPOINT_EVERY", 0.05)
    path = tmp_path / "chat.db"
    server = make_server(flood_rate=0, db=str(path))
    alice = connect(port=server.port).register("alice")
    alice.join("#h")
    recorder = server.server.history
    until(server, lambda: recorder.backlog == 0, "JOIN stored")
    before = path.stat().st_size
    alice.send(*lines(0, 2000))
    alice.send("PING :sent")
    alice.expect(r" PONG \S+ :?sent$")
    # 2,000 lines are some 300 KB of pages.
    grown = lambda: path.stat().st_size > before + 100_000  # noqa: E731
    until(server, grown, "the lines reached the database file")
