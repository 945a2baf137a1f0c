"""Big replies in pages: WHO, NAMES and LIST on thousands of users.

A handler registered with ``paged=True`` is a generator: it queues its reply
lines as usual and yields now and then (after each line or entry). The reader
that runs it (:func:`pace`) lets it go on while less than a page waits to be
sent; past that it waits until the client has taken the page, so

- the asker gets the whole reply however large, never ``SendQ exceeded``,
  and never more than about two pages are queued for it;
- the event loop serves everybody else between pages instead of building
  ten thousand lines in one go;
- every page after the first costs the asker a flood-control token (as
  InspIRCd's penalties do), so a client looping ``WHO #big`` is slowed down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import gevent

if TYPE_CHECKING:
    from greenchat.server.session import Session

__all__ = ["PAGE_BYTES", "pace", "page_bytes"]

PAGE_BYTES = 32 * 1024
WAIT_STEP = 1.0  # seconds between checks that the client is still there while it waits


def pace(conn: Session, pages: Iterator[None], waiting: Callable[[], int]) -> None:
    """Run the paged handler ``pages`` to the end, a page at a time.

    ``waiting()`` is how many bytes of the reply are queued and not yet taken
    by the flusher (or the labeled reply's capture); it may move them on.
    """
    page = page_bytes(conn)
    turned = 0
    try:
        for _ in pages:
            if waiting() < page:
                continue
            turned += 1
            _until_taken(conn, waiting, page)
            if conn.close_reason is not None:
                return  # gone: the rest of the reply has no one to go to
    finally:
        pages.close()
        if turned and conn.flood.enabled and "o" not in conn.user.modes:
            conn.flood.spend(turned)  # a lagged next command, not a refusal


def page_bytes(conn: Session) -> int:
    """A page: small enough that two of them and some chat fit in the client's sendq."""
    return min(PAGE_BYTES, conn.sendq.limit // 4)


def _until_taken(conn: Session, waiting: Callable[[], int], page: int) -> None:
    """Wait until less than a page is queued: the flusher or the writer took it."""
    while waiting() >= page and conn.close_reason is None:
        writer = conn.writer
        if writer is None:
            gevent.sleep(0)  # the flusher sends at the end of this loop turn
        else:
            writer.join(WAIT_STEP)  # the socket is full: the writer ends once drained
