"""Logging that never stops the event loop: records reach stderr through a queue.

A ``StreamHandler`` writes on the caller's thread, and under gevent that is
the hub: when nobody reads the server's stderr (a full pipe, a stuck
terminal) the write blocks and every client stops with it. Here the event
loop only formats the record and appends it to a bounded queue; a native
thread (not a greenlet, even after monkey-patching) writes it to the file
descriptor. When the queue is full, records are dropped and counted, and a
line saying how many is written once the writer catches up.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import time

from gevent.monkey import get_original

__all__ = ["QueueingHandler"]

_allocate_lock = get_original("_thread", "allocate_lock")
_start_new_thread = get_original("_thread", "start_new_thread")
_native_sleep = get_original("time", "sleep")


class QueueingHandler(logging.Handler):
    """Formats on the caller's thread; a native thread writes to ``fd``."""

    def __init__(self, fd: int, limit: int = 10_000) -> None:
        super().__init__()
        self.fd = fd
        self.limit = limit  # records waiting; past it new ones are dropped
        self.dropped = 0
        self._pending: collections.deque[bytes] = collections.deque()
        # A native lock used as a wake-up signal: held while there is nothing to write.
        self._wake = _allocate_lock()
        self._wake.acquire()
        _start_new_thread(self._write_loop, ())

    def emit(self, record: logging.LogRecord) -> None:
        if len(self._pending) >= self.limit:
            self.dropped += 1
            return
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line.encode("utf-8", "replace"))
        with contextlib.suppress(RuntimeError):  # already released: the writer is awake
            self._wake.release()

    def flush(self, timeout: float = 1.0) -> None:
        """Wait (a little) for the queue to empty: the last lines before exit."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            _native_sleep(0.01)

    # -- the writer thread -----------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            self._wake.acquire()
            while self._pending:
                self._write(self._pending.popleft())
            if self.dropped:
                count, self.dropped = self.dropped, 0
                self._write(f"{count} log lines dropped: stderr was not read\n".encode())

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except InterruptedError:
                continue
            except OSError:
                return  # stderr is gone: nothing to tell anyone
