"""Channel operator and discovery commands: KICK, INVITE and LIST."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from greenchat.protocol.message import Message, truncate_utf8
from greenchat.protocol.numerics import (
    ERR_CHANOPRIVSNEEDED,
    ERR_NEEDMOREPARAMS,
    ERR_NOTONCHANNEL,
    ERR_USERNOTINCHANNEL,
    ERR_USERONCHANNEL,
    RPL_INVITING,
    RPL_LIST,
    RPL_LISTEND,
    RPL_LISTSTART,
)
from greenchat.server.commands.channels import visible_to
from greenchat.server.commands.lookup import channel_or_403, user_or_401
from greenchat.server.commands.table import command
from greenchat.server.events import Invited, Kicked

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session


# -- KICK ---------------------------------------------------------------------


@command("KICK", min_params=2, fresh=True)
def kick(server: ChatServer, conn: Session, msg: Message) -> None:
    """``KICK #chan nick[,nick] [:reason]``; also ``KICK #a,#b n1,n2`` in pairs."""
    channels = msg.params[0].split(",")
    nicks = msg.params[1].split(",")
    if len(channels) == 1:
        pairs = [(channels[0], nick) for nick in nicks]
    elif len(channels) == len(nicks):
        pairs = list(zip(channels, nicks, strict=True))
    else:
        conn.numeric(ERR_NEEDMOREPARAMS, "KICK", "Not enough parameters")
        return
    reason = msg.params[2] if len(msg.params) > 2 and msg.params[2] else conn.user.nick
    reason = truncate_utf8(reason, server.config.kicklen)
    for name, nick in pairs:
        if name and nick:
            kick_one(server, conn, name, nick, reason)


def kick_one(server: ChatServer, conn: Session, name: str, nick: str, reason: str) -> None:
    channel = channel_or_403(server, conn, name)
    if channel is None:
        return
    if conn.user not in channel.members:
        conn.numeric(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
    elif not channel.is_op(conn.user):
        conn.numeric(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
    elif (target := user_or_401(server, conn, nick)) is None:
        return
    elif target not in channel.members:
        conn.numeric(ERR_USERNOTINCHANNEL, target.nick, channel.name, "They aren't on that channel")
    else:
        server.hub.apply(Kicked(conn.user.nick, channel.name, target.nick, reason))


# -- INVITE -------------------------------------------------------------------


@command("INVITE", min_params=2, fresh=True)
def invite(server: ChatServer, conn: Session, msg: Message) -> None:
    """``INVITE nick #chan``: members may invite; on a +i channel only ops."""
    nick, name = msg.params[0], msg.params[1]
    target = user_or_401(server, conn, nick)
    if target is None or (channel := channel_or_403(server, conn, name)) is None:
        return
    if conn.user not in channel.members:
        conn.numeric(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
    elif "i" in channel.modes and not channel.is_op(conn.user):
        conn.numeric(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
    elif target in channel.members:
        conn.numeric(ERR_USERONCHANNEL, target.nick, channel.name, "is already on channel")
    else:
        conn.numeric(RPL_INVITING, target.nick, channel.name, trailing=False)
        server.hub.apply(Invited(conn.user.nick, target.nick, channel.name))


# -- LIST ---------------------------------------------------------------------


@command("LIST", paged=True, fresh=True)
def list_(server: ChatServer, conn: Session, msg: Message) -> Iterator[None]:
    """``LIST``, ``LIST #a,#b``, ``LIST >3,<10`` (ELIST=U: filters on member count)."""
    names: list[str] = []
    filters: list[Callable[[int], bool]] = []
    for item in dict.fromkeys(msg.params[0].split(",") if msg.params else []):
        match = _COUNT_FILTER.fullmatch(item)
        if match:
            filters.append(_count_filter(match.group(1), int(match.group(2))))
        elif item:
            names.append(item)
    if names:
        channels = [c for name in names if (c := server.hub.get_channel(name)) is not None]
    else:
        channels = list(server.hub.channels.values())
    conn.numeric(RPL_LISTSTART, "Channel", "Users  Name")
    for channel in channels:
        count = len(channel.members)
        if visible_to(conn, channel) and all(keep(count) for keep in filters):
            conn.numeric(RPL_LIST, channel.name, str(count), channel.topic)
            yield  # a page at a time (paging.py)
    conn.numeric(RPL_LISTEND, "End of /LIST")


_COUNT_FILTER = re.compile(r"([<>])([0-9]{1,9})")


def _count_filter(op: str, number: int) -> Callable[[int], bool]:
    if op == ">":
        return lambda count: count > number
    return lambda count: count < number
