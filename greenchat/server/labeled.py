"""IRCv3 labeled-response: tie every reply to the command that caused it.

The server captures what a labeled command queues for its sender, then
sends it with the label: nothing becomes an ``ACK``, one line gets a
``label`` tag, several lines are wrapped in a ``labeled-response`` batch (or
each carries the label when the client did not enable ``batch``).
See https://ircv3.net/specs/extensions/labeled-response.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from greenchat.protocol.message import escape_tag_value
from greenchat.server.outgoing import add_tags

if TYPE_CHECKING:
    from greenchat.server.connection import Connection
    from greenchat.server.server import ChatServer

__all__ = ["new_batch_id", "send_labeled"]

_batch_ids = itertools.count(1)


def new_batch_id() -> str:
    return f"b{next(_batch_ids):x}"


def send_labeled(server: ChatServer, conn: Connection, label: str, lines: list[bytes]) -> None:
    tag = b"label=" + escape_tag_value(label).encode()
    name = server.config.name
    if not lines:
        conn.enqueue(b"@" + tag + f" :{name} ACK\r\n".encode())
    elif len(lines) == 1:
        conn.enqueue(add_tags(lines[0], tag))
    elif not conn.has_cap("batch"):
        for line in lines:
            conn.enqueue(add_tags(line, tag))
    else:
        ref = new_batch_id()
        conn.enqueue(b"@" + tag + f" :{name} BATCH +{ref} labeled-response\r\n".encode())
        batch_tag = f"batch={ref}".encode()
        for line in lines:
            conn.enqueue(add_tags(line, batch_tag))
        conn.enqueue(f":{name} BATCH -{ref}\r\n".encode())
