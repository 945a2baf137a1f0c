"""The services' own commands: ``NS``/``NICKSERV`` <command>, as /msg NickServ <command>;
``CS``/``CHANSERV`` <command>, as /msg ChanServ <command>.

Services are looked up on the server (``server.services``, by casefolded nick), not
imported: they import the command table themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.message import Message
from greenchat.server.commands.table import command

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session


def _to(service: str, server: ChatServer, conn: Session, msg: Message) -> None:
    server.services[service].handle(server, conn, " ".join(msg.params))


@command(
    "NICKSERV",
    min_params=1,
    yields=True,
    help=(
        "NICKSERV <command> [<parameters>]\n"
        "Talks to NickServ (accounts: REGISTER, IDENTIFY, LOGOUT, INFO, PASSWD, "
        "DROP, GHOST, CERT, HELP)."
    ),
)
def nickserv(server: ChatServer, conn: Session, msg: Message) -> None:
    _to("nickserv", server, conn, msg)


@command(
    "NS",
    min_params=1,
    yields=True,
    help=("NS <command> [<parameters>]\nShort for NICKSERV."),
)
def ns(server: ChatServer, conn: Session, msg: Message) -> None:
    _to("nickserv", server, conn, msg)


@command(
    "CHANSERV",
    min_params=1,
    yields=True,
    help=(
        "CHANSERV <command> [<parameters>]\n"
        "Talks to ChanServ (registered channels: REGISTER, ACCESS, AMODE, OP, "
        "DEOP, INFO, DROP, HELP)."
    ),
)
def chanserv(server: ChatServer, conn: Session, msg: Message) -> None:
    _to("chanserv", server, conn, msg)


@command(
    "CS",
    min_params=1,
    yields=True,
    help=("CS <command> [<parameters>]\nShort for CHANSERV."),
)
def cs(server: ChatServer, conn: Session, msg: Message) -> None:
    _to("chanserv", server, conn, msg)
