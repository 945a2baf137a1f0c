"""Storage: store calls on one thread of their own while the event loop keeps going,
and a failing store logged once, its recovery once."""

from __future__ import annotations

import logging
import threading
import time

import gevent
import pytest

from greenchat.server.storage import Storage
from greenchat.store.base import Account, AccountExists, StoreUnavailable
from greenchat.store.credentials import make_credentials
from greenchat.store.sqlite import MEMORY, SqliteStore


class FakeStore:
    """Records the thread of every call; ``slow`` sleeps in it, ``fail`` raises."""

    def __init__(self) -> None:
        self.threads: set[int] = set()
        self.busy = 0
        self.overlapped = False
        self.failing: str | None = None
        self.closed_on: int | None = None

    def _enter(self) -> None:
        self.threads.add(threading.get_ident())
        self.busy += 1
        self.overlapped |= self.busy > 1

    def slow(self, seconds: float, value: object) -> object:
        self._enter()
        try:
            time.sleep(seconds)  # not monkey-patched: a real thread really blocks
            return value
        finally:
            self.busy -= 1

    def get(self) -> str:
        self._enter()
        self.busy -= 1
        if self.failing:
            raise StoreUnavailable(self.failing)
        return "value"

    def taken(self) -> None:
        raise AccountExists("alice")

    def close(self) -> None:
        self.closed_on = threading.get_ident()


@pytest.fixture
def fake():
    return FakeStore()


@pytest.fixture
def storage(fake):
    made = Storage(fake)
    yield made
    made.close()


def test_the_loop_keeps_ticking_while_a_call_waits_for_the_disk(storage, fake):
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        while True:
            gevent.sleep(0.01)
            ticks += 1

    ticker = gevent.spawn(tick)
    try:
        started = time.monotonic()
        assert storage.run(fake.slow, 0.3, "done") == "done"
        took = time.monotonic() - started
    finally:
        ticker.kill()
    assert took >= 0.3
    assert ticks >= 10, ticks  # ~30 would tick in 0.3 s; a blocked loop gets none
    assert threading.get_ident() not in fake.threads


def test_calls_from_many_greenlets_run_one_at_a_time_on_one_thread(storage, fake):
    calls = [gevent.spawn(storage.run, fake.slow, 0.02, n) for n in range(10)]
    gevent.joinall(calls, timeout=10, raise_error=True)
    assert [call.value for call in calls] == list(range(10))
    assert len(fake.threads) == 1 and not fake.overlapped


def test_what_the_call_raises_comes_back(storage, fake):
    with pytest.raises(AccountExists):
        storage.run(fake.taken)
    with pytest.raises(TypeError):
        storage.run(fake.get, "an argument too many")
    assert storage.healthy and storage.failures == 0  # answers and bugs are not the disk


def test_a_failing_store_is_logged_once_and_its_recovery_once(storage, fake, caplog):
    caplog.set_level(logging.INFO, logger="greenchat.store")
    fake.failing = "disk I/O error (SQLITE_IOERR_WRITE)"
    for _ in range(5):
        with pytest.raises(StoreUnavailable):
            storage.run(fake.get)
    assert not storage.healthy and storage.failures == 5
    fake.failing = None
    assert storage.run(fake.get) == "value"
    assert storage.run(fake.get) == "value"
    assert storage.healthy and storage.failures == 5
    messages = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "greenchat.store"
    ]
    assert messages == [
        (
            "ERROR",
            "storage failing: disk I/O error (SQLITE_IOERR_WRITE); logins and registrations "
            "get TEMPORARILY_UNAVAILABLE until it recovers",
        ),
        ("WARNING", "storage recovered"),
    ]


def test_the_metrics_hook_sees_every_outcome(fake):
    seen: list[tuple[str, float]] = []
    storage = Storage(fake, metrics_hook=lambda outcome, seconds: seen.append((outcome, seconds)))
    try:
        storage.run(fake.slow, 0.05, None)
        with pytest.raises(AccountExists):
            storage.run(fake.taken)
        fake.failing = "gone"
        with pytest.raises(StoreUnavailable):
            storage.run(fake.get)
        with pytest.raises(TypeError):
            storage.run(fake.get, 1)
    finally:
        storage.close()
    assert [outcome for outcome, _ in seen] == ["ok", "ok", "unavailable", "error"]
    assert seen[0][1] >= 0.05


def test_close_closes_the_store_on_its_thread_and_later_calls_fail(fake):
    storage = Storage(fake)
    storage.run(fake.get)
    storage.close()
    assert fake.closed_on in fake.threads
    storage.close()  # twice is fine
    with pytest.raises(StoreUnavailable, match="closed"):
        storage.run(fake.get)


def test_a_real_sqlite_store_behind_it():
    storage = Storage(SqliteStore(MEMORY))
    try:
        alice = Account("alice", make_credentials("pw"), 1.0)
        storage.run(storage.store.create_account, alice)
        assert storage.run(storage.store.get_account, "ALICE") == alice
        with pytest.raises(AccountExists):
            storage.run(storage.store.create_account, alice)
    finally:
        storage.close()
    with pytest.raises(StoreUnavailable):
        storage.store.get_account("alice")
