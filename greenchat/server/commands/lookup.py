"""Shared lookups for handlers: the channel or 403, the user or 401."""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.numerics import ERR_NOSUCHCHANNEL, ERR_NOSUCHNICK

if TYPE_CHECKING:
    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session
    from greenchat.server.user import User

__all__ = ["channel_or_403", "user_or_401"]


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
