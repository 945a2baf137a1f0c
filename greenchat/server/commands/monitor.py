"""MONITOR: be told when nicks come online and go offline (IRCv3 monitor).

``MONITOR + a,b`` / ``- a`` / ``C`` (clear) / ``L`` (list) / ``S`` (status).
The watch lists live in the hub's :class:`~greenchat.server.presence.Presence`,
which sends 730/731 on registration, nick changes and quits. With the
``extended-monitor`` capability, watchers also get the AWAY, SETNAME and
CHGHOST lines of the nicks they monitor (see ``Presence.friends``).
See https://ircv3.net/specs/extensions/monitor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold, valid_nick
from greenchat.protocol.message import Message
from greenchat.protocol.numerics import (
    ERR_MONLISTFULL,
    ERR_NEEDMOREPARAMS,
    ERR_UNKNOWNERROR,
    RPL_ENDOFMONLIST,
    RPL_MONLIST,
    RPL_MONOFFLINE,
    RPL_MONONLINE,
)
from greenchat.server.commands.table import command
from greenchat.server.commands.users import pack

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session


@command(
    "MONITOR",
    min_params=1,
    fresh=True,
    help=(
        "MONITOR <+|-> <nick>[,<nick>...] | MONITOR <C|L|S>\n"
        "Watches nicks: you are told when they connect or leave. C clears, L "
        "lists, S shows each one's status."
    ),
)
def monitor(server: ChatServer, conn: Session, msg: Message) -> None:
    sub = msg.params[0].upper()
    if sub in ("+", "-"):
        if len(msg.params) < 2:
            conn.numeric(ERR_NEEDMOREPARAMS, "MONITOR", "Not enough parameters")
            return
        targets = [t for t in msg.params[1].split(",") if t]
        (_add if sub == "+" else _remove)(server, conn, targets)
    elif sub == "C":
        server.hub.presence.unwatch_all(conn.user)
    elif sub == "L":
        for line in pack(conn.user.monitoring.values(), sep=","):
            conn.numeric(RPL_MONLIST, line)
        conn.numeric(RPL_ENDOFMONLIST, "End of MONITOR list")
    elif sub == "S":
        _send_status(server, conn, list(conn.user.monitoring.values()))
    else:
        conn.numeric(ERR_UNKNOWNERROR, "MONITOR", "Unknown subcommand")


def _add(server: ChatServer, conn: Session, targets: list[str]) -> None:
    limit = server.config.monitor_limit
    added: list[str] = []
    for index, nick in enumerate(targets):
        if not valid_nick(nick, server.config.nicklen):
            continue  # no nick can ever match it: nothing to watch
        if casefold(nick) not in conn.user.monitoring and len(conn.user.monitoring) >= limit:
            rest = ",".join(targets[index:])
            conn.numeric(ERR_MONLISTFULL, str(limit), rest, "Monitor list is full.")
            break
        server.hub.presence.watch(conn.user, nick)
        added.append(nick)
    _send_status(server, conn, added)


def _remove(server: ChatServer, conn: Session, targets: list[str]) -> None:
    for nick in targets:
        server.hub.presence.unwatch(conn.user, casefold(nick))


def _send_status(server: ChatServer, conn: Session, nicks: list[str]) -> None:
    """730 with ``nick!user@host`` for those online, 731 with the nick for the others."""
    online: list[str] = []
    offline: list[str] = []
    for nick in nicks:
        user = server.hub.nick_owner(nick)
        if user is not None and user.registered:
            online.append(user.prefix)
        else:
            offline.append(nick)
    for line in pack(online, sep=","):
        conn.numeric(RPL_MONONLINE, line)
    for line in pack(offline, sep=","):
        conn.numeric(RPL_MONOFFLINE, line)
