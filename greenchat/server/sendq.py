"""The per-client send queue ("sendq"): bounded in bytes, drained whole.

``put`` never blocks and never does I/O, so the hub can fan a message out to
thousands of queues in one plain loop. The connection's writer greenlet calls
``get``, which waits for data and returns everything queued as one ``bytes``
so it goes out in a single send (coalescing is the biggest throughput lever).
"""

from __future__ import annotations

from collections.abc import Callable

from gevent.event import Event

__all__ = ["SendQueue"]


class SendQueue:
    __slots__ = ("_chunks", "_on_overflow", "_ready", "closed", "limit", "size")

    def __init__(self, limit: int, on_overflow: Callable[[], None]) -> None:
        self._chunks: list[bytes] = []
        self._ready = Event()
        self._on_overflow = on_overflow
        self.limit = limit
        self.size = 0
        self.closed = False

    def put(self, data: bytes) -> None:
        """Queue ``data``; past the byte limit, drop the queue and report overflow."""
        if self.closed:
            return
        chunks = self._chunks
        chunks.append(data)
        self.size += len(data)
        if self.size > self.limit:
            self._on_overflow()
        elif len(chunks) == 1:
            self._ready.set()  # only the first chunk needs to wake the writer

    def close(self, final: bytes = b"", discard: bool = False) -> None:
        """Accept nothing more; ``final`` is sent after what is queued (or instead of it)."""
        if self.closed:
            return
        if discard:
            self._chunks.clear()
            self.size = 0
        if final:
            self._chunks.append(final)
            self.size += len(final)
        self.closed = True
        self._ready.set()

    def get(self) -> bytes | None:
        """Wait for data and take all of it; ``None`` once closed and empty."""
        while not self._chunks:
            if self.closed:
                return None
            self._ready.clear()
            self._ready.wait()
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.size = 0
        return data
