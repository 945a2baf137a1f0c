"""Shared lookups for handlers: the channel or 403, the user or 401, and a second
look after a miss on a network node, once the node caught up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from greenchat.protocol.numerics import ERR_NOSUCHCHANNEL, ERR_NOSUCHNICK
from greenchat.server.commands.table import caught_up

if TYPE_CHECKING:
    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session
    from greenchat.server.user import User

__all__ = ["channel_or_403", "look_again", "user_or_401"]

T = TypeVar("T")


def channel_or_403(server: ChatServer, conn: Session, name: str) -> Channel | None:
    """The channel called ``name``; None after telling ``conn`` 403 when there is none."""
    channel = server.hub.get_channel(name)
    if channel is None:
        conn.numeric(ERR_NOSUCHCHANNEL, name, "No such channel")
    return channel


def user_or_401(server: ChatServer, conn: Session, nick: str) -> User | None:
    """The registered user called ``nick``; None after telling ``conn`` 401."""
    user = server.hub.nick_owner(nick)
    if user is None or not user.registered:
        conn.numeric(ERR_NOSUCHNICK, nick, "No such nick/channel")
        return None
    return user


def look_again(conn: Session, find: Callable[[str], T | None], name: str) -> T | None:
    """After ``find(name)`` found nothing: on a network node, ``find(name)`` once the
    node caught up (the nick may have registered on another node a moment ago, and
    ``conn``'s user learned it there); None at once on a single server."""
    return find(name) if caught_up(conn) else None
