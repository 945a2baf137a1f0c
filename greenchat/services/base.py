"""What every service shares: reading a command from a message, HELP, and replies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from greenchat.protocol.message import Message
from greenchat.store.base import StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

__all__ = ["Service"]

Reply = Callable[[str], None]
Handler = Callable[["ChatServer", "Session", Reply, list[str]], None]


class Service:
    """A pseudo-user that takes commands by PRIVMSG and answers by NOTICE.

    ``commands``: name -> (handler, one line of help). A handler gets the words
    after the command; a store failure underneath is answered with
    ``unavailable`` and counted, and the service goes on.
    """

    def __init__(
        self, nick: str, commands: Mapping[str, tuple[Handler, str]], unavailable: str
    ) -> None:
        self.nick = nick
        self.commands = dict(commands)
        self.unavailable = unavailable

    def prefix(self, server: ChatServer) -> str:
        return f"{self.nick}!{self.nick}@services.{server.config.name}"

    def handle(self, server: ChatServer, conn: Session, text: str) -> None:
        """Run the command in ``text`` for ``conn``; everything is answered."""
        words = text.split()
        reply = self._replier(server, conn)
        if not words:
            reply(f"Say HELP to learn what {self.nick} can do.")
            return
        name, args = words[0].upper(), words[1:]
        if name == "HELP":
            self._help(reply, args)
            return
        entry = self.commands.get(name)
        if entry is None:
            reply(f"Unknown command {name}. Say HELP for the list.")
            return
        try:
            entry[0](server, conn, reply, args)
        except StoreUnavailable:  # logged and counted by server/storage.py
            reply(self.unavailable)

    def _help(self, reply: Reply, args: list[str]) -> None:
        if args and args[0].upper() in self.commands:
            reply(self.commands[args[0].upper()][1])
            return
        reply(f"{self.nick} commands:")
        for _, text in self.commands.values():
            reply("  " + text)

    def _replier(self, server: ChatServer, conn: Session) -> Reply:
        prefix = self.prefix(server)

        def reply(text: str) -> None:
            conn.send(Message("NOTICE", (conn.target, text), prefix))

        return reply
