"""The services' own commands: ``NS``/``NICKSERV`` <command>, as /msg NickServ <command>."""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.message import Message
from greenchat.server.commands.table import command
from greenchat.services.nickserv import NICKSERV

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session


@command("NICKSERV", min_params=1, yields=True)
def nickserv(server: ChatServer, conn: Session, msg: Message) -> None:
    NICKSERV.handle(server, conn, " ".join(msg.params))


@command("NS", min_params=1, yields=True)
def ns(server: ChatServer, conn: Session, msg: Message) -> None:
    NICKSERV.handle(server, conn, " ".join(msg.params))
