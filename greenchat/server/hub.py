"""The hub: nicks, channels and fan-out.

Every method here is a plain Python call that does no I/O and never yields,
so with gevent's cooperative scheduling no locks are needed: a change of
state and the fan-out it causes happen as one step that no other greenlet can
interleave with. Delivering means putting bytes into send queues, which never
blocks; the writers send them later.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold

if TYPE_CHECKING:
    from greenchat.server.connection import Connection

__all__ = ["Channel", "Hub"]


class Channel:
    """A channel: its members (with their prefix modes), topic and modes."""

    __slots__ = (
        "created",
        "key",
        "members",
        "modes",
        "name",
        "topic",
        "topic_set_at",
        "topic_setter",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = casefold(name)
        # member -> set of prefix modes ('o', 'v'); insertion order is join order.
        self.members: dict[Connection, set[str]] = {}
        self.modes: set[str] = {"n", "t"}
        self.topic = ""
        self.topic_setter = ""
        self.topic_set_at = 0
        self.created = int(time.time())

    def is_op(self, conn: Connection) -> bool:
        return "o" in self.members.get(conn, ())

    def prefixed_nick(self, conn: Connection) -> str:
        modes = self.members[conn]
        if "o" in modes:
            return "@" + conn.nick
        if "v" in modes:
            return "+" + conn.nick
        return conn.nick


class Hub:
    """All shared chat state of one server process."""

    def __init__(self) -> None:
        self.nicks: dict[str, Connection] = {}  # casefolded nick -> connection
        self.channels: dict[str, Channel] = {}  # casefolded name -> channel
        self.connections: set[Connection] = set()
        # Counters kept up to date so LUSERS (sent on every registration)
        # never walks all connections.
        self.registered_count = 0
        self.invisible_count = 0
        self.max_registered = 0

    # -- connections and nicks ---------------------------------------------

    def add_connection(self, conn: Connection) -> None:
        self.connections.add(conn)

    def nick_owner(self, nick: str) -> Connection | None:
        return self.nicks.get(casefold(nick))

    def claim_nick(self, conn: Connection, nick: str) -> None:
        """Give ``nick`` to ``conn`` (the caller checked it is free or its own)."""
        if conn.nick:
            self.nicks.pop(casefold(conn.nick), None)
        self.nicks[casefold(nick)] = conn

    def change_nick(self, conn: Connection, nick: str) -> None:
        """Rename a registered user and tell everyone who shares a channel."""
        data = f":{conn.prefix} NICK :{nick}\r\n".encode()
        self.claim_nick(conn, nick)
        conn.set_nick(nick)
        conn.enqueue(data)
        self.send_to_peers(conn, data)

    def note_registered(self) -> None:
        self.registered_count += 1
        self.max_registered = max(self.max_registered, self.registered_count)

    def note_invisible(self, invisible: bool) -> None:
        """Keep the invisible count when a user sets or clears +i."""
        self.invisible_count += 1 if invisible else -1

    def remove_connection(self, conn: Connection, reason: str) -> None:
        """Forget ``conn``: free its nick, leave its channels, tell its peers."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        if conn.registered:
            self.registered_count -= 1
            self.invisible_count -= "i" in conn.modes
            self.send_to_peers(conn, f":{conn.prefix} QUIT :{reason}\r\n".encode())
        for channel in list(conn.channels.values()):
            self._drop_member(channel, conn)
        if conn.nick and self.nicks.get(casefold(conn.nick)) is conn:
            del self.nicks[casefold(conn.nick)]

    # -- channels ----------------------------------------------------------

    def get_channel(self, name: str) -> Channel | None:
        return self.channels.get(casefold(name))

    def join(self, conn: Connection, name: str) -> Channel | None:
        """Add ``conn`` to channel ``name`` (creating it); ``None`` if already in."""
        key = casefold(name)
        channel = self.channels.get(key)
        if channel is None:
            channel = self.channels[key] = Channel(name)
            modes = {"o"}  # whoever creates a channel operates it
        elif conn in channel.members:
            return None
        else:
            modes = set()
        channel.members[conn] = modes
        conn.channels[key] = channel
        self.broadcast(channel.members, f":{conn.prefix} JOIN {channel.name}\r\n".encode())
        return channel

    def part(self, conn: Connection, channel: Channel, reason: str) -> None:
        tail = f" :{reason}" if reason else ""
        data = f":{conn.prefix} PART {channel.name}{tail}\r\n".encode()
        self.broadcast(channel.members, data)
        self._drop_member(channel, conn)

    def set_topic(self, conn: Connection, channel: Channel, topic: str) -> None:
        channel.topic = topic
        channel.topic_setter = conn.prefix
        channel.topic_set_at = int(time.time())
        data = f":{conn.prefix} TOPIC {channel.name} :{topic}\r\n".encode()
        self.broadcast(channel.members, data)

    def _drop_member(self, channel: Channel, conn: Connection) -> None:
        channel.members.pop(conn, None)
        conn.channels.pop(channel.key, None)
        if not channel.members:
            del self.channels[channel.key]

    # -- fan-out -----------------------------------------------------------

    @staticmethod
    def broadcast(
        recipients: Iterable[Connection], data: bytes, exclude: Connection | None = None
    ) -> None:
        """Queue the same ``data`` to every recipient except ``exclude``.

        The message is serialized once by the caller; every queue gets a
        reference to the same bytes object.
        """
        for member in recipients:
            if member is not exclude:
                member.enqueue(data)

    def send_to_peers(self, conn: Connection, data: bytes) -> None:
        """Queue ``data`` once to every other user who shares a channel with ``conn``."""
        channels = list(conn.channels.values())
        if len(channels) == 1:
            self.broadcast(channels[0].members, data, exclude=conn)
            return
        seen: set[Connection] = {conn}
        for channel in channels:
            for member in channel.members:
                if member not in seen:
                    seen.add(member)
                    member.enqueue(data)
