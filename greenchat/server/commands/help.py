"""HELP and HELPOP: each command's topic, from its entry in the command table.

Every command is registered with its help (commands/table.py refuses one without),
so the topics cannot drift from the commands. ``HELP`` alone lists them; ``HELP
<command>`` gives its syntax and what it does (704, 705..., 706, as Ergo and the
modern docs send them); an unknown topic gets 524.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from greenchat.protocol.numerics import (
    ERR_HELPNOTFOUND,
    RPL_ENDOFHELP,
    RPL_HELPSTART,
    RPL_HELPTXT,
)
from greenchat.server.commands.table import COMMANDS, command

if TYPE_CHECKING:
    from greenchat.protocol.message import Message
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

LINE_WIDTH = 300  # characters of help text per 705 line (well within 512 bytes)
INDEX = "*"  # the subject of the replies to HELP alone


@command(
    "HELPOP",
    help="HELPOP [<topic>]\nThe same as HELP.",
)
@command(
    "HELP",
    help="HELP [<command>]\nShows how to use a command; without one, the commands there are.",
)
def help_(server: ChatServer, conn: Session, msg: Message) -> None:
    topic = msg.params[0].upper() if msg.params and msg.params[0] else ""
    if not topic:
        _send_index(conn)
        return
    spec = COMMANDS.get(topic)
    if spec is None:
        conn.numeric(ERR_HELPNOTFOUND, msg.params[0], "No help available on this topic")
        return
    syntax, _, text = spec.help.partition("\n")
    conn.numeric(RPL_HELPSTART, topic, syntax)
    conn.numeric(RPL_HELPTXT, topic, "")
    for line in textwrap.wrap(text, LINE_WIDTH):
        conn.numeric(RPL_HELPTXT, topic, line)
    if spec.oper:
        conn.numeric(RPL_HELPTXT, topic, "Server operators only.")
    conn.numeric(RPL_ENDOFHELP, topic, "End of /HELP")


def _send_index(conn: Session) -> None:
    conn.numeric(RPL_HELPSTART, INDEX, "** Help System **")
    conn.numeric(RPL_HELPTXT, INDEX, "")
    conn.numeric(RPL_HELPTXT, INDEX, "Try /HELP <command> for how to use one. The commands:")
    for line in textwrap.wrap(" ".join(sorted(COMMANDS)), LINE_WIDTH):
        conn.numeric(RPL_HELPTXT, INDEX, line)
    conn.numeric(RPL_ENDOFHELP, INDEX, "End of /HELP")
