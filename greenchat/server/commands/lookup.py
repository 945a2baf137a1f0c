"""Shared lookups for handlers: the channel or 403, the user or 401, and a lookup
that on a network node looks again once the node caught up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from greenchat.protocol.numerics import ERR_NOSUCHCHANNEL, ERR_NOSUCHNICK

if TYPE_CHECKING:
    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session
    from greenchat.server.user import User

__all__ = ["channel_or_403", "found_fresh", "user_or_401"]

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


def found_fresh(conn: Session, find: Callable[[str], T | None], name: str) -> T | None:
    """``find(name)``; on a network node that finds nothing, once more after catching
    up with the network (the nick may have registered on another node a moment ago,
    and ``conn``'s user learned it there). A hit costs nothing more."""
    found = find(name)
    if found is None and (backplane := conn.server.hub.backplane) is not None:
        with conn.uncaptured():
            backplane.catch_up()
        found = find(name)
    return found
