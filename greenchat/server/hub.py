"""The hub: nicks, channels and fan-out.

Every method here is a plain Python call that does no I/O and never yields,
so with gevent's cooperative scheduling no locks are needed: a change of
state and the fan-out it causes happen as one step that no other greenlet can
interleave with. Delivering means putting bytes into send queues, which never
blocks; the flusher sends them at the end of the loop turn.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold
from greenchat.protocol.masks import compile_mask
from greenchat.server.outgoing import Relay
from greenchat.server.presence import Presence

if TYPE_CHECKING:
    from greenchat.server.connection import Connection

__all__ = ["PREFIXES", "Channel", "Hub"]

# Member prefix modes and their symbols, highest rank first (ISUPPORT PREFIX).
PREFIXES = (("o", "@"), ("v", "+"))


class Channel:
    """A channel: its members (with their prefix modes), topic and modes.

    ``modes`` holds the flag modes (n, t, m, i, s, p); the modes with a
    parameter live in their own fields: ``join_key`` (+k, '' when unset),
    ``limit`` (+l, 0 when unset) and ``bans`` (+b).
    """

    __slots__ = (
        "bans",
        "created",
        "invited",
        "join_key",
        "key",
        "limit",
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
        self.join_key = ""
        self.limit = 0
        # casefolded mask -> (mask as set, who set it, when): +b, in the order set.
        self.bans: dict[str, tuple[str, str, int]] = {}
        # Users invited since the channel was created; an invite lets one
        # past +i and bans once, as on Ergo (a new channel of the same name
        # is a new object, so old invites do not carry over).
        # Weak: an invite must not keep a gone connection alive.
        self.invited: weakref.WeakSet[Connection] = weakref.WeakSet()
        self.topic = ""
        self.topic_setter = ""
        self.topic_set_at = 0
        self.created = int(time.time())

    def is_op(self, conn: Connection) -> bool:
        return "o" in self.members.get(conn, ())

    def prefixes(self, conn: Connection, multi_prefix: bool = False) -> str:
        """The member's prefix symbols, highest first: '@', '+', '@+' (multi-prefix) or ''."""
        modes = self.members.get(conn, ())  # () for one who left during a paged reply
        symbols = "".join(symbol for mode, symbol in PREFIXES if mode in modes)
        return symbols if multi_prefix else symbols[:1]

    def is_banned(self, conn: Connection) -> bool:
        """Whether ``conn``'s nick!user@host matches a +b mask."""
        if not self.bans:
            return False
        name = casefold(conn.prefix)
        return any(compile_mask(mask).match(name) for mask in self.bans)

    def invite(self, conn: Connection) -> None:
        """Remember an invite (weakly: it goes with the invited connection)."""
        self.invited.add(conn)

    def mode_string(self, show_key: bool) -> tuple[str, ...]:
        """The modes as 324 shows them: ``('+iklnt', key, limit)``.

        Like Ergo, the key is shown only to members (``show_key``).
        """
        chars = set(self.modes)
        args = {}
        if self.join_key and show_key:
            chars.add("k")
            args["k"] = self.join_key
        if self.limit:
            chars.add("l")
            args["l"] = str(self.limit)
        ordered = sorted(chars)
        return ("+" + "".join(ordered), *(args[c] for c in ordered if c in args))


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
        # MONITOR watchers, WHOWAS history, opers (presence.py): told of
        # nick changes and quits at the lines marked 'hook:'.
        self.presence = Presence()

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
        relay = Relay(conn.prefix, "NICK", (nick,))
        old_nick = conn.nick
        self.claim_nick(conn, nick)
        conn.set_nick(nick)
        conn.enqueue(relay.bytes_for(conn.variant))
        self.send_to_peers(conn, relay)
        self.presence.nick_changed(conn, old_nick)  # hook: WHOWAS, MONITOR

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
            self.send_to_peers(conn, Relay(conn.prefix, "QUIT", (reason,)))
        self.presence.gone(conn)  # hook: WHOWAS, MONITOR, opers
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
            channel.invited.discard(conn)  # an invite is good for one join
        channel.members[conn] = modes
        conn.channels[key] = channel
        # extended-join recipients also get the account ('*': none) and real name.
        ext = (channel.name, "*", conn.realname)
        relay = Relay(conn.prefix, "JOIN", (channel.name,), trailing=False, ext_params=ext)
        self.fanout(channel.members, relay)
        if conn.away:  # hook: away-notify members learn at once that the newcomer is away
            away = Relay(conn.prefix, "AWAY", (conn.away,))
            self.fanout(channel.members, away, exclude=conn, require_cap="away-notify")
        return channel

    def part(self, conn: Connection, channel: Channel, reason: str) -> None:
        params = (channel.name, reason) if reason else (channel.name,)
        self.fanout(channel.members, Relay(conn.prefix, "PART", params, trailing=bool(reason)))
        self._drop_member(channel, conn)

    def kick(self, conn: Connection, channel: Channel, target: Connection, reason: str) -> None:
        """Remove ``target`` from ``channel``; every member, the kicked one too, sees it."""
        self.fanout(
            channel.members, Relay(conn.prefix, "KICK", (channel.name, target.nick, reason))
        )
        self._drop_member(channel, target)

    def set_topic(self, conn: Connection, channel: Channel, topic: str) -> None:
        channel.topic = topic
        channel.topic_setter = conn.prefix
        channel.topic_set_at = int(time.time())
        self.fanout(channel.members, Relay(conn.prefix, "TOPIC", (channel.name, topic)))

    def _drop_member(self, channel: Channel, conn: Connection) -> None:
        channel.members.pop(conn, None)
        conn.channels.pop(channel.key, None)
        if not channel.members:
            del self.channels[channel.key]

    # -- fan-out -----------------------------------------------------------

    @staticmethod
    def fanout(
        recipients: Iterable[Connection],
        relay: Relay,
        exclude: Connection | None = None,
        require_cap: str | None = None,
    ) -> None:
        """Queue ``relay`` to every recipient except ``exclude``.

        Each capability variant is serialized once; every recipient of that
        variant gets a reference to the same bytes object. With
        ``require_cap``, only recipients that enabled it get the message.
        """
        cache = relay.cache
        render = relay.bytes_for
        if require_cap is not None:
            recipients = [m for m in recipients if require_cap in m.caps.enabled]
        for member in recipients:
            if member is not exclude:
                member.enqueue(cache[member.variant] or render(member.variant))

    def peers(self, conn: Connection) -> Iterable[Connection]:
        """Every other user who shares a channel with ``conn``, each once."""
        channels = list(conn.channels.values())
        if len(channels) == 1:
            return (m for m in channels[0].members if m is not conn)
        seen: dict[Connection, None] = {}
        for channel in channels:
            seen.update(dict.fromkeys(channel.members))
        seen.pop(conn, None)
        return seen

    def send_to_peers(self, conn: Connection, relay: Relay, require_cap: str | None = None) -> None:
        """Queue ``relay`` once to every other user who shares a channel with ``conn``."""
        self.fanout(self.peers(conn), relay, exclude=conn, require_cap=require_cap)
