"""The per-client send queue ("sendq"): bounded in bytes, drained whole.

``put`` never blocks and never does I/O, so the hub can fan a message out to
thousands of queues in one plain loop. The first chunk put into an empty
queue calls ``wake(owner)``: the connection then has the flusher send it at the end
of the loop turn, which calls :meth:`take` to get everything queued as one
``bytes`` and sends it in a single call (coalescing is the biggest
throughput lever). What the socket does not take goes back to the front with
:meth:`unshift` for a writer greenlet to finish.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["SendQueue"]


def _ignore(*_: object) -> None:
    """A detached queue's callbacks."""


class SendQueue:
    __slots__ = (
        "_chunks",
        "_on_overflow",
        "_owner",
        "_wake",
        "closed",
        "limit",
        "size",
        "taken",
        "taken_lines",
    )

    def __init__(
        self,
        limit: int,
        wake: Callable[[Any], None],
        on_overflow: Callable[[], None],
        owner: Any = None,
    ) -> None:
        self._chunks: list[bytes] = []
        # wake(owner), not a closure or a partial over it: put runs once per
        # recipient per message, and Python 3.11 makes a Python-to-Python call
        # without a C frame, which a partial (or one more method) would add.
        self._wake = wake
        self._owner = owner
        self._on_overflow = on_overflow
        self.limit = limit
        self.size = 0
        self.closed = False
        # What take() handed out for sending, for metrics: bytes (less what came back
        # through unshift) and chunks, one per line (a partly sent chunk is one more).
        self.taken = 0
        self.taken_lines = 0

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
            self._wake(self._owner)  # only the first chunk needs a writer

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
        if self._chunks:
            self._wake(self._owner)

    def detach(self) -> None:
        """Drop the callbacks into the owner, once it is finished with the queue.

        They point back at the session that owns the queue, so without this every
        departed session would be a reference cycle, freed only by the garbage
        collector, whose full collections stop the event loop (issue 14's login
        storm). Afterwards the queue takes nothing and wakes nobody.
        """
        self.closed = True
        self._wake = self._on_overflow = _ignore
        self._owner = None

    def unshift(self, data: bytes) -> None:
        """Put unsent ``data`` back in front of anything queued since :meth:`take`."""
        self._chunks.insert(0, data)
        self.size += len(data)
        self.taken -= len(data)
        self.taken_lines -= 1  # counted again when taken again

    def take(self) -> bytes:
        """Everything queued, as one bytes object (b"" when empty)."""
        chunks = self._chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.taken += self.size
        self.taken_lines += len(chunks)
        chunks.clear()
        self.size = 0
        return data
