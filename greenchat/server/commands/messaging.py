"""PRIVMSG and NOTICE: to channels and to nicks, several targets at once.

This is the hot path: a channel message is serialized once and the same
bytes are queued to every member except the sender.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.casemap import is_channel_name
from greenchat.protocol.message import Message
from greenchat.protocol.numerics import (
    ERR_CANNOTSENDTOCHAN,
    ERR_NORECIPIENT,
    ERR_NOSUCHCHANNEL,
    ERR_NOSUCHNICK,
    ERR_NOTEXTTOSEND,
)
from greenchat.server.commands.table import command

if TYPE_CHECKING:
    from greenchat.server.connection import Connection
    from greenchat.server.server import ChatServer


@command("PRIVMSG")
def privmsg(server: ChatServer, conn: Connection, msg: Message) -> None:
    relay(server, conn, msg, "PRIVMSG", errors=True)


@command("NOTICE")
def notice(server: ChatServer, conn: Connection, msg: Message) -> None:
    # Nothing automatic may answer a NOTICE, so its errors are not reported.
    relay(server, conn, msg, "NOTICE", errors=False)


def relay(server: ChatServer, conn: Connection, msg: Message, verb: str, errors: bool) -> None:
    params = msg.params
    if not params or not params[0]:
        if errors:
            conn.numeric(ERR_NORECIPIENT, f"No recipient given ({verb})")
        return
    if len(params) < 2 or not params[1]:
        if errors:
            conn.numeric(ERR_NOTEXTTOSEND, "No text to send")
        return
    text = params[1]
    hub = server.hub
    for target in dict.fromkeys(params[0].split(",")):  # each target once, in order
        if not target:
            continue
        if is_channel_name(target):
            channel = hub.get_channel(target)
            if channel is None:
                if errors:
                    conn.numeric(ERR_NOSUCHCHANNEL, target, "No such channel")
            elif "n" in channel.modes and conn not in channel.members:
                if errors:
                    conn.numeric(ERR_CANNOTSENDTOCHAN, channel.name, "Cannot send to channel")
            else:
                data = f":{conn.prefix} {verb} {channel.name} :{text}\r\n".encode()
                hub.broadcast(channel.members, data, exclude=conn)
        else:
            user = hub.nick_owner(target)
            if user is None or not user.registered:
                if errors:
                    conn.numeric(ERR_NOSUCHNICK, target, "No such nick/channel")
            else:
                user.enqueue(f":{conn.prefix} {verb} {user.nick} :{text}\r\n".encode())
