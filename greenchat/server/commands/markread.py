"""MARKREAD (IRCv3 draft/read-marker): get or move a conversation's read marker.

``MARKREAD <target>`` asks; ``MARKREAD <target> timestamp=...`` moves it forward.
Either way the answer is ``MARKREAD <target> timestamp=...`` (``*`` for none);
a marker that moved goes to every session of the account that has the
capability, so each client can clear what was read elsewhere. A JOIN sends the
channel's marker before the end of NAMES (commands/channels.py). Errors are the
spec's FAIL codes. The markers themselves: server/read_markers.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.casemap import is_channel_name, valid_nick
from greenchat.protocol.message import Message
from greenchat.server.commands.history import parse_timestamp
from greenchat.server.commands.table import command
from greenchat.server.read_markers import CAPABILITY, MAX_MARKERS, TooManyMarkers
from greenchat.server.shared_store import MARKER, announce
from greenchat.store.base import StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

__all__: list[str] = []


@command(
    "MARKREAD",
    yields=True,
    help=(
        "MARKREAD <target> [timestamp=<time>]\n"
        "Gets or sets how far you have read a conversation (draft/read-marker)."
    ),
)
def markread(server: ChatServer, conn: Session, msg: Message) -> None:
    if not msg.params:
        _fail(server, conn, "NEED_MORE_PARAMS", "Missing parameters")
        return
    target = msg.params[0]
    if not (is_channel_name(target) or valid_nick(target, server.config.nicklen)):
        _fail(server, conn, "INVALID_PARAMS", target, "Invalid target")
        return
    channel = server.hub.get_channel(target)
    name = channel.name if channel is not None else target
    markers = server.read_markers
    if len(msg.params) == 1:
        markers.send(conn, name)
        return
    stamp = msg.params[1]
    when = parse_timestamp(stamp[len("timestamp=") :]) if stamp.startswith("timestamp=") else None
    if when is None:
        _fail(server, conn, "INVALID_PARAMS", stamp, "Invalid timestamp")
        return
    before = markers.get(conn.user, name)
    try:
        after = markers.move(conn, name, when)
    except StoreUnavailable:
        _fail(server, conn, "INTERNAL_ERROR", name, "The read timestamp could not be set")
        return
    except TooManyMarkers:
        _fail(server, conn, "INTERNAL_ERROR", name, f"At most {MAX_MARKERS} read markers")
        return
    reply = markers.message(name, after)
    if after == before:  # nothing moved: only the asker hears the stored marker
        conn.send(reply)
        return
    if conn.user.account:  # the account's sessions on other nodes hear it from theirs
        announce(server, MARKER, conn.user.account)
    line = reply.to_bytes()
    for user in markers.sessions_of(conn.user):
        if user is conn.user or user.has_cap(CAPABILITY):
            user.enqueue(line)


def _fail(server: ChatServer, conn: Session, code: str, *params: str) -> None:
    conn.fail("MARKREAD", code, *params)
