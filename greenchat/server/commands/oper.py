"""Operator commands: OPER, KILL, WALLOPS and CHGHOST.

Operators are configured with ``greenchat-serve --oper NAME:PASSWORD``; only
a salted scrypt hash is kept (greenchat/server/oper.py). As on Ergo, a wrong
password for an existing operator name costs the connection, so guessing
needs a new connection (and registration) per try.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message
from greenchat.protocol.numerics import (
    ERR_CANTKILLSERVER,
    ERR_NOOPERHOST,
    ERR_NOSUCHNICK,
    ERR_PASSWDMISMATCH,
    ERR_UNKNOWNERROR,
    RPL_YOUREOPER,
)
from greenchat.server.commands.lookup import user_or_401
from greenchat.server.commands.registration import USERLEN
from greenchat.server.commands.table import command, wait_for
from greenchat.server.commands.users import is_oper
from greenchat.server.events import HostChanged, Killed, UserModeChanged, WallopsSent
from greenchat.server.oper import verify_password

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

log = logging.getLogger("greenchat.oper")

# CHGHOST accepts what USER and a DNS name or address could have produced.
_VALID_USER = re.compile(rf"~?[A-Za-z0-9_.\-]{{1,{USERLEN}}}")
_VALID_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:\-/]{0,62}")


# -- OPER -------------------------------------------------------------------------


@command(
    "OPER",
    min_params=2,
    yields=True,
    help=("OPER <name> <password>\nBecomes a server operator."),
)
def oper(server: ChatServer, conn: Session, msg: Message) -> None:
    name, password = msg.params[0], msg.params[1]
    if is_oper(conn.user):
        conn.numeric(ERR_UNKNOWNERROR, "OPER", "You're already opered-up!")
        return
    stored = server.config.opers.get(name)
    if stored is None:
        conn.numeric(ERR_NOOPERHOST, "No O-lines for your host")
        return
    if not wait_for(conn, verify_password, password, stored):
        log.warning("failed OPER as %s by %s", name, conn.user.prefix)
        conn.numeric(ERR_PASSWDMISMATCH, "Password incorrect")
        conn.disconnect("Password incorrect")
        return
    if conn.close_reason is None:  # it may have gone while the hash was checked
        grant_oper(server, conn, name)


def grant_oper(server: ChatServer, conn: Session, name: str) -> None:
    conn.user.oper_name = name
    log.info("%s opered up as %s", conn.user.prefix, name)
    conn.numeric(RPL_YOUREOPER, "You are now an IRC operator")
    server.hub.apply(UserModeChanged(conn.user.nick, (("+", "o"),)))


# -- KILL, WALLOPS ----------------------------------------------------------------


@command(
    "KILL",
    min_params=1,
    oper=True,
    fresh=True,
    help=("KILL <nick> <reason>\nDisconnects a user (server operators only)."),
)
def kill(server: ChatServer, conn: Session, msg: Message) -> None:
    nick = msg.params[0]
    comment = msg.params[1] if len(msg.params) > 1 and msg.params[1] else "<no reason supplied>"
    victim = server.hub.nick_owner(nick)
    if victim is None or not victim.registered:
        if casefold(nick) == casefold(server.config.name):
            conn.numeric(ERR_CANTKILLSERVER, "You can't kill a server!")
        else:
            conn.numeric(ERR_NOSUCHNICK, nick, "No such nick/channel")
        return
    reason = f"Killed ({conn.user.nick} ({comment}))"
    log.info("%s killed %s: %s", conn.user.prefix, victim.prefix, comment)
    # Peers see the QUIT when the victim's reader finishes (hub.remove_user).
    server.hub.apply(Killed(conn.user.nick, victim.nick, reason))


@command(
    "WALLOPS",
    min_params=1,
    oper=True,
    help=("WALLOPS <text>\nSends a message to every operator and +w user (server operators only)."),
)
def wallops(server: ChatServer, conn: Session, msg: Message) -> None:
    server.hub.apply(WallopsSent(conn.user.nick, msg.params[0]))


# -- CHGHOST ----------------------------------------------------------------------


@command(
    "CHGHOST",
    min_params=3,
    oper=True,
    fresh=True,
    help=(
        "CHGHOST <nick> <user> <host>\nChanges a user's username and host (server operators only)."
    ),
)
def chghost(server: ChatServer, conn: Session, msg: Message) -> None:
    nick, user, host = msg.params[0], msg.params[1], msg.params[2]
    target = user_or_401(server, conn, nick)
    if target is None:
        return
    if not _VALID_USER.fullmatch(user) or not _VALID_HOST.fullmatch(host):
        text = "Invalid username or hostname"
        conn.send(Message("FAIL", ("CHGHOST", "INVALID_PARAMS", text), server.config.name))
        return
    if (user, host) != (target.username, target.host):
        log.info("%s changed the host of %s to %s@%s", conn.user.prefix, target.prefix, user, host)
        server.hub.apply(HostChanged(conn.user.nick, target.nick, user, host))
