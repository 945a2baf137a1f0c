"""The command table: each command registered once, checked in one place.

A handler is registered with the minimum number of parameters it needs and
whether it may run before registration completes. :func:`dispatch` applies
those checks (``421`` unknown command, ``451`` not registered, ``461`` not
enough parameters) so handlers only deal with their own logic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from greenchat.protocol.message import Message
from greenchat.protocol.numerics import (
    ERR_NEEDMOREPARAMS,
    ERR_NOTREGISTERED,
    ERR_UNKNOWNCOMMAND,
)

if TYPE_CHECKING:
    from greenchat.server.connection import Connection
    from greenchat.server.server import ChatServer

__all__ = ["COMMANDS", "CommandSpec", "command", "dispatch"]

Handler = Callable[["ChatServer", "Connection", Message], None]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    handler: Handler
    min_params: int
    before_registration: bool


COMMANDS: dict[str, CommandSpec] = {}


def command(
    name: str, *, min_params: int = 0, before_registration: bool = False
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``name``."""

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"command {name} registered twice")
        COMMANDS[name] = CommandSpec(name, handler, min_params, before_registration)
        return handler

    return register


def dispatch(server: ChatServer, conn: Connection, msg: Message) -> None:
    name = msg.command.upper()
    spec = COMMANDS.get(name)
    if spec is None:
        conn.numeric(ERR_UNKNOWNCOMMAND, name, "Unknown command")
    elif not conn.registered and not spec.before_registration:
        conn.numeric(ERR_NOTREGISTERED, "You have not registered")
    elif len(msg.params) < spec.min_params:
        conn.numeric(ERR_NEEDMOREPARAMS, name, "Not enough parameters")
    else:
        spec.handler(server, conn, msg)
