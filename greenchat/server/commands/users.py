"""User commands: user modes (more come with WHO, WHOIS, AWAY, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.message import Message
from greenchat.protocol.numerics import (
    ERR_NOSUCHNICK,
    ERR_UMODEUNKNOWNFLAG,
    ERR_USERSDONTMATCH,
    RPL_UMODEIS,
)
from greenchat.server.outgoing import Relay
from greenchat.server.welcome import USER_MODES

if TYPE_CHECKING:
    from greenchat.server.connection import Connection
    from greenchat.server.server import ChatServer


def compress_modes(changes: list[str]) -> str:
    """['+n', '+t', '-o'] -> '+nt-o'."""
    out: list[str] = []
    sign = ""
    for change in changes:
        if change[0] != sign:
            sign = change[0]
            out.append(sign)
        out.append(change[1])
    return "".join(out)


def user_mode(server: ChatServer, conn: Connection, msg: Message) -> None:
    target = server.hub.nick_owner(msg.params[0])
    if target is None:
        conn.numeric(ERR_NOSUCHNICK, msg.params[0], "No such nick/channel")
        return
    if target is not conn:
        conn.numeric(ERR_USERSDONTMATCH, "Can't change mode for other users")
        return
    if len(msg.params) == 1:
        conn.numeric(RPL_UMODEIS, "+" + "".join(sorted(conn.modes)), trailing=False)
        return
    changes: list[str] = []
    sign = "+"
    for char in msg.params[1]:
        if char in "+-":
            sign = char
        elif char in USER_MODES:
            on = sign == "+"
            if on != (char in conn.modes):
                (conn.modes.add if on else conn.modes.discard)(char)
                changes.append(sign + char)
                if char == "i":
                    server.hub.note_invisible(on)
        else:
            conn.numeric(ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
    if changes:
        conn.send_relay(Relay(conn.prefix, "MODE", (conn.nick, compress_modes(changes))))
