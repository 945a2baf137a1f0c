"""Channel commands: JOIN, PART, NAMES, TOPIC and MODE (channel and user)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.casemap import is_channel_name, valid_channel
from greenchat.protocol.message import Message
from greenchat.protocol.numerics import (
    ERR_CHANOPRIVSNEEDED,
    ERR_NOSUCHCHANNEL,
    ERR_NOSUCHNICK,
    ERR_NOTONCHANNEL,
    ERR_UNKNOWNMODE,
    ERR_USERNOTINCHANNEL,
    RPL_CHANNELMODEIS,
    RPL_CREATIONTIME,
    RPL_ENDOFBANLIST,
    RPL_ENDOFNAMES,
    RPL_NAMREPLY,
    RPL_NOTOPIC,
    RPL_TOPIC,
    RPL_TOPICWHOTIME,
)
from greenchat.server.commands import users
from greenchat.server.commands.table import command
from greenchat.server.outgoing import Relay
from greenchat.server.welcome import CHANNEL_MODES, PREFIX_MODES

if TYPE_CHECKING:
    from greenchat.server.connection import Connection
    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer

# Room for ":<server> 353 <nick> = <channel> :" and the CRLF within 512 bytes.
_NAMES_LINE_BUDGET = 510


@command("JOIN", min_params=1)
def join(server: ChatServer, conn: Connection, msg: Message) -> None:
    if msg.params[0] == "0":
        for channel in list(conn.channels.values()):
            server.hub.part(conn, channel, "Left all channels")
        return
    for name in msg.params[0].split(","):
        if not name:
            continue
        if not valid_channel(name, server.config.channellen):
            conn.numeric(ERR_NOSUCHCHANNEL, name, "No such channel")
            continue
        channel = server.hub.join(conn, name)
        if channel is None:
            continue  # already a member: nothing to do, as on other servers
        if channel.topic:
            send_topic(server, conn, channel)
        send_names(server, conn, channel)


@command("PART", min_params=1)
def part(server: ChatServer, conn: Connection, msg: Message) -> None:
    reason = msg.params[1] if len(msg.params) > 1 else ""
    for name in msg.params[0].split(","):
        channel = server.hub.get_channel(name)
        if channel is None:
            conn.numeric(ERR_NOSUCHCHANNEL, name, "No such channel")
        elif conn not in channel.members:
            conn.numeric(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        else:
            server.hub.part(conn, channel, reason)


@command("NAMES")
def names(server: ChatServer, conn: Connection, msg: Message) -> None:
    if not msg.params:
        conn.numeric(RPL_ENDOFNAMES, "*", "End of /NAMES list")
        return
    for name in msg.params[0].split(","):
        channel = server.hub.get_channel(name)
        if channel is None:
            conn.numeric(RPL_ENDOFNAMES, name, "End of /NAMES list")
        else:
            send_names(server, conn, channel)


def send_names(server: ChatServer, conn: Connection, channel: Channel) -> None:
    """353 lines packed up to the line limit, then 366."""
    head = f":{server.config.name} {RPL_NAMREPLY} {conn.target} = {channel.name} :"
    budget = _NAMES_LINE_BUDGET - len(head.encode())
    batch: list[str] = []
    used = 0
    multi_prefix = conn.has_cap("multi-prefix")
    userhost = conn.has_cap("userhost-in-names")
    for member in channel.members:
        entry = channel.prefixes(member, multi_prefix) + (
            member.prefix if userhost else member.nick
        )
        if batch and used + len(entry) + 1 > budget:
            conn.numeric(RPL_NAMREPLY, "=", channel.name, " ".join(batch))
            batch, used = [], 0
        batch.append(entry)
        used += len(entry) + 1
    if batch:
        conn.numeric(RPL_NAMREPLY, "=", channel.name, " ".join(batch))
    conn.numeric(RPL_ENDOFNAMES, channel.name, "End of /NAMES list")


def send_topic(server: ChatServer, conn: Connection, channel: Channel) -> None:
    if not channel.topic:
        conn.numeric(RPL_NOTOPIC, channel.name, "No topic is set")
        return
    conn.numeric(RPL_TOPIC, channel.name, channel.topic)
    when = str(channel.topic_set_at)
    conn.numeric(RPL_TOPICWHOTIME, channel.name, channel.topic_setter, when, trailing=False)


@command("TOPIC", min_params=1)
def topic(server: ChatServer, conn: Connection, msg: Message) -> None:
    channel = server.hub.get_channel(msg.params[0])
    if channel is None:
        conn.numeric(ERR_NOSUCHCHANNEL, msg.params[0], "No such channel")
        return
    if len(msg.params) == 1:
        send_topic(server, conn, channel)
        return
    if conn not in channel.members:
        conn.numeric(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
    elif "t" in channel.modes and not channel.is_op(conn):
        conn.numeric(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
    else:
        server.hub.set_topic(conn, channel, msg.params[1][: server.config.topiclen])


@command("MODE", min_params=1)
def mode(server: ChatServer, conn: Connection, msg: Message) -> None:
    if is_channel_name(msg.params[0]):
        channel_mode(server, conn, msg)
    else:
        users.user_mode(server, conn, msg)


def channel_mode(server: ChatServer, conn: Connection, msg: Message) -> None:
    channel = server.hub.get_channel(msg.params[0])
    if channel is None:
        conn.numeric(ERR_NOSUCHCHANNEL, msg.params[0], "No such channel")
        return
    if len(msg.params) == 1:
        conn.numeric(
            RPL_CHANNELMODEIS, channel.name, "+" + "".join(sorted(channel.modes)), trailing=False
        )
        conn.numeric(RPL_CREATIONTIME, channel.name, str(channel.created), trailing=False)
        return
    if msg.params[1].lstrip("+") == "b":
        # Clients ask for the ban list on join; greenchat keeps none yet.
        conn.numeric(RPL_ENDOFBANLIST, channel.name, "End of channel ban list")
        return
    if not channel.is_op(conn):
        conn.numeric(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    applied, args = _apply_channel_modes(server, conn, channel, msg.params[1], msg.params[2:])
    if applied:
        relay = Relay(conn.prefix, "MODE", (channel.name, applied, *args), trailing=False)
        server.hub.fanout(channel.members, relay)


def _apply_channel_modes(
    server: ChatServer, conn: Connection, channel: Channel, modestring: str, params: tuple
) -> tuple[str, list[str]]:
    """Apply +/-n, t, o, v; return the changes made as a modestring and its args."""
    remaining = list(params)
    applied: list[str] = []
    applied_args: list[str] = []
    sign = "+"
    for char in modestring:
        if char in "+-":
            sign = char
        elif char in CHANNEL_MODES:
            on = sign == "+"
            if on != (char in channel.modes):
                (channel.modes.add if on else channel.modes.discard)(char)
                applied.append(sign + char)
        elif char in PREFIX_MODES:
            if not remaining:
                continue
            nick = remaining.pop(0)
            target = server.hub.nick_owner(nick)
            if target is None:
                conn.numeric(ERR_NOSUCHNICK, nick, "No such nick/channel")
            elif target not in channel.members:
                conn.numeric(
                    ERR_USERNOTINCHANNEL, nick, channel.name, "They aren't on that channel"
                )
            else:
                modes = channel.members[target]
                (modes.add if sign == "+" else modes.discard)(char)
                applied.append(sign + char)
                applied_args.append(target.nick)
        else:
            conn.numeric(ERR_UNKNOWNMODE, char, "is unknown mode char to me")
    return users.compress_modes(applied), applied_args
