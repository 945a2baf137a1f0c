"""IRCv3 labeled-response: tie every reply to the command that caused it.

The server captures what a labeled command queues for its sender, then
sends it with the label: nothing becomes an ``ACK``, one line gets a
``label`` tag, several lines are wrapped in a ``labeled-response`` batch (or
each carries the label when the client did not enable ``batch``).
A paged reply (paging.py) is sent as it grows, a page at a time, inside
one batch. See https://ircv3.net/specs/extensions/labeled-response.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from greenchat.protocol.message import escape_tag_value
from greenchat.server.outgoing import add_tags
from greenchat.server.paging import page_bytes

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

__all__ = [
    "LabeledReply",
    "close_batch",
    "new_batch_id",
    "open_batch",
    "send_batch",
    "send_labeled",
]

_batch_ids = itertools.count(1)


def new_batch_id() -> str:
    return f"b{next(_batch_ids):x}"


def send_labeled(server: ChatServer, conn: Session, label: str, lines: list[bytes]) -> None:
    tag = _label_tag(label)
    name = server.config.name
    if not lines:
        conn.enqueue(b"@" + tag + f" :{name} ACK\r\n".encode())
    elif len(lines) == 1:
        conn.enqueue(add_tags(lines[0], tag))
    elif not conn.has_cap("batch"):
        for line in lines:
            conn.enqueue(add_tags(line, tag))
    else:
        send_batch(conn, name, "labeled-response", lines, start_tags=tag)


def send_batch(
    conn: Session, server_name: str, kind: str, lines: list[bytes], *params: str,
    start_tags: bytes = b"",
) -> None:  # fmt: skip
    """Queue ``lines`` in one batch of ``kind`` (``params`` after it on the opening
    line, which also carries ``start_tags``): BATCH +ref, each line tagged, BATCH -ref."""
    ref = open_batch(conn, server_name, kind, *params, start_tags=start_tags)
    tag = f"batch={ref}".encode()
    enqueue = conn.enqueue
    for line in lines:
        enqueue(add_tags(line, tag))
    close_batch(conn, server_name, ref)


def open_batch(
    conn: Session, server_name: str, kind: str, *params: str, start_tags: bytes = b""
) -> str:
    """Queue ``BATCH +ref kind params...``; the new ref, for the lines' ``batch`` tags
    (for lines rendered with the tag in them; else :func:`send_batch`)."""
    ref = new_batch_id()
    opened = " ".join((f":{server_name} BATCH +{ref}", kind, *params)) + "\r\n"
    conn.enqueue(add_tags(opened.encode(), start_tags) if start_tags else opened.encode())
    return ref


def close_batch(conn: Session, server_name: str, ref: str) -> None:
    conn.enqueue(f":{server_name} BATCH -{ref}\r\n".encode())


def _label_tag(label: str) -> bytes:
    return b"label=" + escape_tag_value(label).encode()


def _batch_start(name: str, tag: bytes, ref: str) -> bytes:
    return b"@" + tag + f" :{name} BATCH +{ref} labeled-response\r\n".encode()


class LabeledReply:
    """The reply to one labeled command: captured while the handler runs, then sent.

    :meth:`capture` swaps the connection's ``enqueue`` for a list, so
    everything queued to the client while the handler runs is its reply
    (handlers do not yield; one that waits pauses the capture, see
    ``table.wait_for``). :meth:`finish` sends it labeled. A paged handler
    asks :meth:`waiting` between entries; once a page has gathered it goes
    out, opening the batch (without ``batch``, every line is labeled).
    """

    __slots__ = ("_batch", "_conn", "_counted", "_label", "_server", "_size", "lines")

    def __init__(self, server: ChatServer, conn: Session, label: str) -> None:
        self._server, self._conn, self._label = server, conn, label
        self.lines: list[bytes] = []  # queued by the handler, not sent yet
        self._counted = 0  # how many of ``lines`` are in ``_size``
        self._size = 0
        self._batch: bytes | None = None  # the tag of every line once a page went out

    def capture(self) -> None:
        self._conn.capture(self.lines)

    def release(self) -> None:
        self._conn.release_output()

    def waiting(self) -> int:
        """Bytes of the reply the client has not taken yet; a full page is sent first."""
        self._size += sum(map(len, self.lines[self._counted :]))
        self._counted = len(self.lines)
        if self._size >= page_bytes(self._conn):
            self._send_page()
        return self._conn.sendq.size

    def _send_page(self) -> None:
        conn, put = self._conn, self._conn.put_line
        if self._batch is None:
            if conn.has_cap("batch"):
                ref = new_batch_id()
                put(_batch_start(self._server.config.name, _label_tag(self._label), ref))
                self._batch = f"batch={ref}".encode()
            else:
                self._batch = _label_tag(self._label)
        for line in self.lines:
            put(add_tags(line, self._batch))
        self.lines.clear()
        self._counted = self._size = 0

    def finish(self) -> None:
        """Send what the handler queued (the rest of it, for a paged reply)."""
        if self._batch is None:
            send_labeled(self._server, self._conn, self._label, self.lines)
            return
        self._send_page()
        if self._batch.startswith(b"batch="):
            ref = self._batch.removeprefix(b"batch=").decode()
            self._conn.put_line(f":{self._server.config.name} BATCH -{ref}\r\n".encode())
