"""Server information: VERSION, TIME, INFO and ADMIN; ISUPPORT (draft/extended-isupport)
and LANGUAGE (draft/languages, English only).

Each accepts an optional server (or nick) parameter, as the RFCs allow;
greenchat is a single server, so anything but its own name or a user on it
gets 402.
"""

from __future__ import annotations

from email.utils import formatdate
from typing import TYPE_CHECKING

from greenchat import __version__
from greenchat.protocol.masks import match_mask
from greenchat.protocol.message import Message
from greenchat.protocol.numerics import (
    ERR_NOLANGUAGE,
    ERR_NOSUCHSERVER,
    ERR_TOOMANYLANGUAGES,
    ERR_UNKNOWNCOMMAND,
    RPL_ADMINEMAIL,
    RPL_ADMINLOC1,
    RPL_ADMINLOC2,
    RPL_ADMINME,
    RPL_ENDOFINFO,
    RPL_ENDOFLINKS,
    RPL_INFO,
    RPL_LINKS,
    RPL_TIME,
    RPL_VERSION,
    RPL_YOURLANGUAGESARE,
)
from greenchat.server.caps import EXTENDED_ISUPPORT, ISUPPORT_BATCH, LANGUAGES
from greenchat.server.commands.table import command
from greenchat.server.commands.users import SERVER_INFO
from greenchat.server.labeled import close_batch, open_batch
from greenchat.server.welcome import VERSION, send_isupport

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

INFO_LINES = (
    f"greenchat {__version__}",
    "An IRC server in pure Python on gevent.",
    "One greenlet per connection; a hub that never yields;",
    "every message serialized once per capability set.",
)


def _elsewhere(server: ChatServer, conn: Session, msg: Message) -> bool:
    """True (after a 402) when the command names a server other than this one."""
    if not msg.params or not msg.params[0]:
        return False
    target = msg.params[0]
    if match_mask(target, server.config.name) or server.hub.nick_owner(target) is not None:
        return False
    conn.numeric(ERR_NOSUCHSERVER, target, "No such server")
    return True


@command(
    "VERSION",
    help=("VERSION\nShows the server's version and what it supports (005)."),
)
def version(server: ChatServer, conn: Session, msg: Message) -> None:
    if _elsewhere(server, conn, msg):
        return
    conn.numeric(RPL_VERSION, VERSION, server.config.name, "greenchat IRC server")
    send_isupport(server, conn)


@command(
    "ISUPPORT",
    before_registration=True,
    help="ISUPPORT\nShows what the server supports (005), before registration too, in a "
    "draft/isupport batch with batch (draft/extended-isupport).",
)
def isupport(server: ChatServer, conn: Session, msg: Message) -> None:
    if not conn.has_cap(EXTENDED_ISUPPORT):
        conn.numeric(ERR_UNKNOWNCOMMAND, "ISUPPORT", "Unknown command")
        return
    if not conn.has_cap("batch"):
        send_isupport(server, conn)
        return
    name = server.config.name
    ref = open_batch(conn, name, ISUPPORT_BATCH)
    send_isupport(server, conn, tags={"batch": ref})
    close_batch(conn, name, ref)


@command(
    "LINKS",
    help="LINKS\nLists the servers of the network: this one, and on a network over Redis "
    "the other nodes that have users.",
)
def links(server: ChatServer, conn: Session, msg: Message) -> None:
    name = server.config.name
    conn.numeric(RPL_LINKS, name, name, f"0 {SERVER_INFO}")
    for other in _other_servers(server):
        conn.numeric(RPL_LINKS, other, name, f"1 {SERVER_INFO}")
    conn.numeric(RPL_ENDOFLINKS, "*", "End of /LINKS list")


def _other_servers(server: ChatServer) -> list[str]:
    """The names of the other nodes that hold users now (a node gone has none)."""
    if server.backplane is None:
        return []
    nodes = {user.node for user in server.hub.users if user.node}
    names = {server.backplane.server_names.get(node, server.config.name) for node in nodes}
    names.discard(server.config.name)
    return sorted(names)


@command(
    "LANGUAGE",
    min_params=1,
    before_registration=True,
    help="LANGUAGE <code> [<code>...]\nChooses the language of the server's messages "
    "(draft/languages): English only.",
)
def language(server: ChatServer, conn: Session, msg: Message) -> None:
    codes = list(dict.fromkeys(code.lower() for code in msg.params if code))
    if len(codes) > len(LANGUAGES):
        conn.numeric(ERR_TOOMANYLANGUAGES, str(len(LANGUAGES)), "You specified too many languages")
        return
    unknown = [code for code in codes if code not in LANGUAGES]
    if unknown or not codes:
        shown = unknown or ["*"]
        conn.numeric(ERR_NOLANGUAGE, *shown, "Languages are not supported by this server")
        return
    conn.numeric(RPL_YOURLANGUAGESARE, *codes, "Language preferences have been set")


@command(
    "TIME",
    help=("TIME\nShows the server's local time."),
)
def time_(server: ChatServer, conn: Session, msg: Message) -> None:
    if _elsewhere(server, conn, msg):
        return
    # RFC 1123 in UTC, as Ergo sends it: "Tue, 02 Jan 2024 15:04:05 GMT".
    conn.numeric(RPL_TIME, server.config.name, formatdate(usegmt=True))


@command(
    "INFO",
    help=("INFO\nShows information about the server."),
)
def info(server: ChatServer, conn: Session, msg: Message) -> None:
    if _elsewhere(server, conn, msg):
        return
    for line in (*INFO_LINES, f"Up since {server.created_text}"):
        conn.numeric(RPL_INFO, line)
    conn.numeric(RPL_ENDOFINFO, "End of INFO list")


@command(
    "ADMIN",
    help=("ADMIN\nShows who runs the server."),
)
def admin(server: ChatServer, conn: Session, msg: Message) -> None:
    if _elsewhere(server, conn, msg):
        return
    location, organization, email = server.config.admin_info
    conn.numeric(RPL_ADMINME, server.config.name, "Administrative info")
    conn.numeric(RPL_ADMINLOC1, location)
    conn.numeric(RPL_ADMINLOC2, organization)
    conn.numeric(RPL_ADMINEMAIL, email)
