"""Send pending output once per event-loop turn, the way Redis writes replies before it sleeps.

A fan-out puts one line into thousands of send queues. Waking a writer
greenlet for each of them costs a greenlet switch (or a spawn) per recipient
per message, which dominates at steady, moderate rates where there is little
to coalesce. Instead a queue that stops being empty marks its connection
dirty here; one callback per loop turn, run by the hub before it polls again,
sends every dirty queue with a single non-blocking ``send``. Only a socket
that cannot take everything gets a writer greenlet, which waits for it to
become writable (see ``Session.flush_now``).

The callback runs in the hub, so it must never block or yield: it only calls
non-blocking sends and spawns.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gevent

if TYPE_CHECKING:
    from greenchat.server.session import Session

__all__ = ["Flusher"]

log = logging.getLogger("greenchat.flusher")


class Flusher:
    __slots__ = ("_dirty", "_scheduled")

    def __init__(self) -> None:
        self._dirty: list[Session] = []
        self._scheduled = False

    def mark(self, conn: Session) -> None:
        """``conn`` has output: send it at the end of this loop turn."""
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            gevent.get_hub().loop.run_callback(self.flush)

    def flush(self) -> None:
        """Send every dirty queue now (non-blocking); called by the loop."""
        dirty, self._dirty = self._dirty, []
        self._scheduled = False
        for conn in dirty:
            try:
                conn.flush_now()
            except Exception:  # one broken connection must not starve the rest
                log.exception("flushing %r", conn)
