"""Store calls off the event loop: one storage thread, and its health.

The hub never waits for the disk (DESIGN.md, decisions 4 and 10). A handler
that needs the store calls :meth:`Storage.run`, which hands the call to a
dedicated thread (``gevent.threadpool.ThreadPool(1)``: every store call runs on
that one thread, in order, which is all SQLite's single connection needs) and
blocks only the calling greenlet until the result or the exception comes back;
every other client goes on meanwhile.

A store that can checkpoint its write-ahead log on a thread of its own
(``defer_checkpoints`` and ``checkpoint``: SQLite's) gets a second thread for that,
every :data:`CHECKPOINT_EVERY` seconds, so that no write waits for one.

A failing store (StoreUnavailable: an I/O error, a full disk) is logged once,
not once per call, and its recovery once; :attr:`Storage.healthy` and
:attr:`Storage.failures` are there for metrics and ``/healthz``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

import gevent
from gevent.threadpool import ThreadPool

from greenchat.store.base import AccountExists, AccountStore, StoreUnavailable

__all__ = ["Storage"]

log = logging.getLogger("greenchat.store")

T = TypeVar("T")

# Seconds between checkpoints. SQLite's own come every 1,000 pages (4 MiB): at 50,000
# history lines a second four times a second, each delaying one write; rarer ones
# disturb fewer writes (the write interval's p99 at that rate: 9-10 ms, 8-15 ms at
# 0.5 s), and the WAL holds at most that many seconds of writes (tens of MiB at most).
CHECKPOINT_EVERY = 2.0

# metrics_hook(outcome, seconds) after every call, on the hub's thread: "ok" (a result,
# or AccountExists / ChannelExists), "unavailable" (StoreUnavailable) or "error"
# (anything else: a bug).
MetricsHook = Callable[[str, float], None]


def _call(function: Callable[..., Any], args: tuple) -> tuple[bool, Any]:
    """On the storage thread: (True, result) or (False, the exception raised)."""
    try:
        return True, function(*args)
    except Exception as exc:
        return False, exc


class Storage:
    """``store`` behind one thread. Make it on the hub's thread (the pool belongs
    to the hub it was made on), like everything else of the server."""

    def __init__(self, store: AccountStore, metrics_hook: MetricsHook | None = None) -> None:
        self.store = store
        self.metrics_hook = metrics_hook
        self.healthy = True
        self.failures = 0  # StoreUnavailable raised by calls, since start
        self.closed = False
        self._pool = ThreadPool(1)
        self._checkpoints: ThreadPool | None = None
        self._checkpointer: gevent.Greenlet | None = None

    @classmethod
    def opening(
        cls, make_store: Callable[[], AccountStore], metrics_hook: MetricsHook | None = None
    ) -> Storage:
        """The store ``make_store()`` makes, made on the storage thread: a client whose
        connections belong to the thread that made them (RedisStore's gevent sockets,
        to that thread's hub) must be made where it is used. Raises what it raises."""
        storage = cls(None, metrics_hook)  # type: ignore[arg-type]
        ok, result = storage._pool.apply(_call, (make_store, ()))
        if not ok:
            storage.closed = True
            storage._pool.kill()
            raise result
        storage.store = result
        return storage

    def start_checkpoints(self) -> None:
        """Checkpoint the store's WAL on a thread of its own, if it can (SqliteStore)."""
        if not hasattr(self.store, "checkpoint") or self._checkpoints is not None:
            return
        self.run(self.store.defer_checkpoints)
        self._checkpoints = ThreadPool(1)
        self._checkpointer = gevent.spawn(self._checkpoint_loop)

    def _checkpoint_loop(self) -> None:
        while True:
            gevent.sleep(CHECKPOINT_EVERY)
            try:
                if not self._checkpoints.apply(self.store.checkpoint):
                    log.debug("checkpoint: the WAL could not start over (a reader)")
            except StoreUnavailable as exc:  # the writes fail too, and say so: quietly
                log.debug("checkpoint failed: %s", exc)

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the storage thread; blocks only the calling greenlet.

        Returns what it returned or raises what it raised. ``function`` is usually
        a method of :attr:`store` (``storage.run(storage.store.get_account, nick)``).
        After :meth:`close`, raises StoreUnavailable.
        """
        if self.closed:
            raise StoreUnavailable("the storage is closed")
        started = time.perf_counter()
        outcome = "error"
        try:
            # The call's exception comes back as a value: raised in the worker, gevent
            # would also print it, and a taken name is no error worth a traceback.
            ok, result = self._pool.apply(_call, (function, args))
            if not ok:
                raise result
            outcome = "ok"
            return result
        except AccountExists:  # ChannelExists too: the store worked, the name is taken
            outcome = "ok"
            raise
        except StoreUnavailable as exc:
            outcome = "unavailable"
            self._failed(exc)
            raise
        finally:
            if outcome == "ok" and not self.healthy:
                self.healthy = True
                log.warning("storage recovered")
            if self.metrics_hook is not None:
                self.metrics_hook(outcome, time.perf_counter() - started)

    def _failed(self, exc: StoreUnavailable) -> None:
        self.failures += 1
        if self.healthy:
            self.healthy = False
            log.error(
                "storage failing: %s; logins and registrations get TEMPORARILY_UNAVAILABLE "
                "until it recovers",
                exc,
            )

    def close(self) -> None:
        """Close the store on its thread (after the calls already queued), then stop
        the thread. Closing twice is fine."""
        if self.closed:
            return
        self.closed = True
        if self._checkpointer is not None:
            self._checkpointer.kill()
            self._checkpoints.join()  # a checkpoint under way ends before the store closes
            self._checkpoints.kill()
        try:
            self._pool.apply(self.store.close)
        except Exception:
            log.exception("closing the store")
        finally:
            with suppress(Exception):
                self._pool.kill()
