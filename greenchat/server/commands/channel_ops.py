"""Channel operator and discovery commands: KICK, INVITE and LIST."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from greenchat.backplane import Refused
from greenchat.protocol.casemap import casefold, valid_channel
from greenchat.protocol.masks import match_mask
from greenchat.protocol.message import Message, truncate_utf8
from greenchat.protocol.numerics import (
    ERR_CHANOPRIVSNEEDED,
    ERR_NEEDMOREPARAMS,
    ERR_NOTONCHANNEL,
    ERR_USERNOTINCHANNEL,
    ERR_USERONCHANNEL,
    RPL_ENDOFINVITELIST,
    RPL_INVITELIST,
    RPL_INVITING,
    RPL_LIST,
    RPL_LISTEND,
    RPL_LISTSTART,
)
from greenchat.server.caps import CHANNEL_RENAME, NO_IMPLICIT_NAMES
from greenchat.server.commands.channels import send_names, send_topic, visible_to
from greenchat.server.commands.lookup import channel_or_403, user_or_401
from greenchat.server.commands.table import command
from greenchat.server.events import ChannelRenamed, Event, Invited, Kicked

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session


# -- KICK ---------------------------------------------------------------------


@command(
    "KICK",
    min_params=2,
    fresh=True,
    help=(
        "KICK <channel> <nick>[,<nick>...] [<reason>]\n"
        "Removes members from a channel (channel operators only)."
    ),
)
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


@command(
    "INVITE",
    fresh=True,
    help=(
        "INVITE [<nick> <channel>]\n"
        "Invites a user into a channel, past +i, +l and bans once. Without "
        "parameters: the channels you are invited to."
    ),
)
def invite(server: ChatServer, conn: Session, msg: Message) -> None:
    """``INVITE nick #chan``: members may invite; on a +i channel only ops. ``INVITE``
    alone: the channels one is invited to and has not joined since (336, 337)."""
    if not msg.params:
        for channel in list(server.hub.channels.values()):
            if conn.user in channel.invited:
                conn.numeric(RPL_INVITELIST, channel.name, trailing=False)
        conn.numeric(RPL_ENDOFINVITELIST, "End of /INVITE list")
        return
    if len(msg.params) < 2:
        conn.numeric(ERR_NEEDMOREPARAMS, "INVITE", "Not enough parameters")
        return
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


# -- RENAME (draft/channel-rename) ----------------------------------------------


@command(
    "RENAME",
    min_params=2,
    fresh=True,
    help="RENAME <channel> <new name> [<reason>]\nRenames a channel, its members, modes and "
    "topic with it (channel operators; not a registered channel).",
)
def rename(server: ChatServer, conn: Session, msg: Message) -> None:
    new, reason = msg.params[1], msg.params[2] if len(msg.params) > 2 else ""
    channel = channel_or_403(server, conn, msg.params[0])
    if channel is None:
        return
    old = channel.name

    def fail(code: str, text: str) -> None:
        conn.fail("RENAME", code, old, new, text)

    if not channel.is_op(conn.user):
        conn.numeric(ERR_CHANOPRIVSNEEDED, old, "You're not channel operator")
    elif not valid_channel(new, server.config.channellen):
        fail("CANNOT_RENAME", "That is not a valid channel name")
    elif casefold(new) != channel.key and server.hub.get_channel(new) is not None:
        fail("CHANNEL_NAME_IN_USE", "That channel already exists")
    elif server.channel_registry.get(old) is not None:
        fail("CANNOT_RENAME", "A registered channel keeps its name")
    elif new != old:
        try:
            server.hub.apply(ChannelRenamed(conn.user.nick, old, new, reason))
        except Refused:  # on a network, another node took the name first
            fail("CHANNEL_NAME_IN_USE", "That channel already exists")


def renamed_replies(server: ChatServer, event: Event) -> None:
    """After a RENAME, a local member without draft/channel-rename was shown a JOIN of
    the new name (hub.py): the topic and names a JOIN brings follow (a hub observer)."""
    if type(event) is not ChannelRenamed:
        return
    channel = server.hub.get_channel(event.new)
    if channel is None:
        return
    for member in list(channel.local):
        session = member.session
        if session is None or member.has_cap(CHANNEL_RENAME):
            continue
        if channel.topic:
            send_topic(server, session, channel)
        if not member.has_cap(NO_IMPLICIT_NAMES):
            send_names(server, session, channel)


# -- LIST ---------------------------------------------------------------------


@command(
    "LIST",
    paged=True,
    fresh=True,
    help=(
        "LIST [<filters>]\n"
        "Lists channels. Filters, comma-separated: names or masks (#a*), !masks, "
        ">n and <n members, C<m and C>m (created less/more than m minutes ago), "
        "T<m and T>m (topic set)."
    ),
)
def list_(server: ChatServer, conn: Session, msg: Message) -> Iterator[None]:
    """``LIST``, ``LIST #a,#b`` and the filters of ELIST=CMNTU, comma-separated:
    ``#a*`` (a mask), ``!#a*`` (not matching it), ``>3``/``<10`` (members),
    ``C<60``/``C>60`` (created less/more than 60 minutes ago), ``T<60``/``T>60``
    (topic set less/more than 60 minutes ago). A channel is listed when it matches one
    of the names or masks (if any), none of the ``!`` masks, and every number filter."""
    query = ListQuery.parse(msg.params[0] if msg.params else "")
    if query.names is not None:
        found = (server.hub.get_channel(name) for name in query.names)
        channels = [channel for channel in found if channel is not None]
    else:
        channels = list(server.hub.channels.values())
    conn.numeric(RPL_LISTSTART, "Channel", "Users  Name")
    now = time.time()
    for channel in channels:
        if visible_to(conn, channel) and query.keeps(channel, now):
            conn.numeric(RPL_LIST, channel.name, str(len(channel.members)), channel.topic)
            yield  # a page at a time (paging.py)
    conn.numeric(RPL_LISTEND, "End of /LIST")


# ``>3``, ``U<10`` (members), ``C<60`` (created, minutes ago), ``T>5`` (topic set).
_NUMBER_FILTER = re.compile(r"([CTU]?)([<>])([0-9]{1,9})", re.IGNORECASE)


class ListQuery:
    """LIST's parameter, parsed (ELIST=CMNTU)."""

    __slots__ = ("excluded", "masks", "names", "numbers")

    def __init__(self) -> None:
        self.names: list[str] | None = None  # exact names only: looked up, not scanned
        self.masks: list[str] = []  # a channel must match one of them (if any)
        self.excluded: list[str] = []  # ...and none of these
        self.numbers: list[Callable[[Channel, float], bool]] = []

    @classmethod
    def parse(cls, text: str) -> ListQuery:
        query = cls()
        for item in dict.fromkeys(part for part in text.split(",") if part):
            match = _NUMBER_FILTER.fullmatch(item)
            if match:
                query.numbers.append(_number_filter(match[1].upper(), match[2], int(match[3])))
            elif item.startswith("!") and len(item) > 1:
                query.excluded.append(item[1:])
            else:
                query.masks.append(item)
        if query.masks and not any("*" in mask or "?" in mask for mask in query.masks):
            query.names, query.masks = query.masks, []
        return query

    def keeps(self, channel: Channel, now: float) -> bool:
        name = channel.name
        return (
            (not self.masks or any(match_mask(mask, name) for mask in self.masks))
            and not any(match_mask(mask, name) for mask in self.excluded)
            and all(keep(channel, now) for keep in self.numbers)
        )


def _number_filter(field: str, op: str, number: int) -> Callable[[Channel, float], bool]:
    """One of ELIST's C, T and U filters; C and T count minutes back from now (as
    InspIRCd and Solanum read them: ``C<5`` created less than 5 minutes ago)."""
    if field in ("", "U"):
        if op == ">":
            return lambda channel, now: len(channel.members) > number
        return lambda channel, now: len(channel.members) < number
    seconds = number * 60

    def age(channel: Channel, now: float) -> float | None:
        when = channel.created if field == "C" else channel.topic_set_at
        return now - when if when else None  # a channel without a topic: no topic time

    if op == "<":
        return lambda channel, now: (a := age(channel, now)) is not None and a < seconds
    return lambda channel, now: (a := age(channel, now)) is not None and a > seconds
