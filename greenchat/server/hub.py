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
    from greenchat.server.user import User

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
        self.members: dict[User, set[str]] = {}
        self.modes: set[str] = {"n", "t"}
        self.join_key = ""
        self.limit = 0
        # casefolded mask -> (mask as set, who set it, when): +b, in the order set.
        self.bans: dict[str, tuple[str, str, int]] = {}
        # Users invited since the channel was created; an invite lets one
        # past +i and bans once, as on Ergo (a new channel of the same name
        # is a new object, so old invites do not carry over).
        # Weak: an invite must not keep a gone connection alive.
        self.invited: weakref.WeakSet[User] = weakref.WeakSet()
        self.topic = ""
        self.topic_setter = ""
        self.topic_set_at = 0
        self.created = int(time.time())

    def is_op(self, user: User) -> bool:
        return "o" in self.members.get(user, ())

    def prefixes(self, user: User, multi_prefix: bool = False) -> str:
        """The member's prefix symbols, highest first: '@', '+', '@+' (multi-prefix) or ''."""
        modes = self.members.get(user, ())  # () for one who left during a paged reply
        symbols = "".join(symbol for mode, symbol in PREFIXES if mode in modes)
        return symbols if multi_prefix else symbols[:1]

    def is_banned(self, user: User) -> bool:
        """Whether ``user``'s nick!user@host matches a +b mask."""
        if not self.bans:
            return False
        name = casefold(user.prefix)
        return any(compile_mask(mask).match(name) for mask in self.bans)

    def invite(self, user: User) -> None:
        """Remember an invite (weakly: it goes with the invited user)."""
        self.invited.add(user)

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

    def __init__(self, whowas_size: int = 1000) -> None:
        self.nicks: dict[str, User] = {}  # casefolded nick -> user
        self.channels: dict[str, Channel] = {}  # casefolded name -> channel
        self.users: set[User] = set()  # every user the network knows
        # Counters kept up to date so LUSERS (sent on every registration)
        # never walks all users.
        self.registered_count = 0
        self.invisible_count = 0
        self.max_registered = 0
        # MONITOR watchers, WHOWAS history, opers (presence.py): told of
        # nick changes and quits at the lines marked 'hook:'.
        self.presence = Presence(whowas_size)

    # -- users and nicks ---------------------------------------------------

    def add_user(self, user: User) -> None:
        """A user the network now knows (a new local session's, before registration)."""
        self.users.add(user)

    def nick_owner(self, nick: str) -> User | None:
        return self.nicks.get(casefold(nick))

    def claim_nick(self, user: User, nick: str) -> None:
        """Give ``nick`` to ``user`` (the caller checked it is free or its own)."""
        if user.nick:
            self.nicks.pop(casefold(user.nick), None)
        self.nicks[casefold(nick)] = user

    def change_nick(self, user: User, nick: str) -> None:
        """Rename a registered user and tell everyone who shares a channel."""
        relay = Relay(user.prefix, "NICK", (nick,))
        old_nick = user.nick
        self.claim_nick(user, nick)
        user.set_nick(nick)
        user.enqueue(relay.bytes_for(user.variant))
        self.send_to_peers(user, relay)
        self.presence.nick_changed(user, old_nick)  # hook: WHOWAS, MONITOR

    def note_registered(self) -> None:
        self.registered_count += 1
        self.max_registered = max(self.max_registered, self.registered_count)

    def note_invisible(self, invisible: bool) -> None:
        """Keep the invisible count when a user sets or clears +i."""
        self.invisible_count += 1 if invisible else -1

    def remove_user(self, user: User, reason: str) -> None:
        """Forget ``user``: free its nick, leave its channels, tell its peers."""
        if user not in self.users:
            return
        self.users.discard(user)
        if user.registered:
            self.registered_count -= 1
            self.invisible_count -= "i" in user.modes
            self.send_to_peers(user, Relay(user.prefix, "QUIT", (reason,)))
        self.presence.gone(user)  # hook: WHOWAS, MONITOR, opers
        for channel in list(user.channels.values()):
            self._drop_member(channel, user)
        if user.nick and self.nicks.get(casefold(user.nick)) is user:
            del self.nicks[casefold(user.nick)]

    # -- channels ----------------------------------------------------------

    def get_channel(self, name: str) -> Channel | None:
        return self.channels.get(casefold(name))

    def join(self, user: User, name: str) -> Channel | None:
        """Add ``user`` to channel ``name`` (creating it); ``None`` if already in."""
        key = casefold(name)
        channel = self.channels.get(key)
        if channel is None:
            channel = self.channels[key] = Channel(name)
            modes = {"o"}  # whoever creates a channel operates it
        elif user in channel.members:
            return None
        else:
            modes = set()
            channel.invited.discard(user)  # an invite is good for one join
        channel.members[user] = modes
        user.channels[key] = channel
        # extended-join recipients also get the account ('*': none) and real name.
        ext = (channel.name, "*", user.realname)
        relay = Relay(user.prefix, "JOIN", (channel.name,), trailing=False, ext_params=ext)
        self.fanout(channel.members, relay)
        if user.away:  # hook: away-notify members learn at once that the newcomer is away
            away = Relay(user.prefix, "AWAY", (user.away,))
            self.fanout(channel.members, away, exclude=user, require_cap="away-notify")
        return channel

    def part(self, user: User, channel: Channel, reason: str) -> None:
        params = (channel.name, reason) if reason else (channel.name,)
        self.fanout(channel.members, Relay(user.prefix, "PART", params, trailing=bool(reason)))
        self._drop_member(channel, user)

    def kick(self, user: User, channel: Channel, target: User, reason: str) -> None:
        """Remove ``target`` from ``channel``; every member, the kicked one too, sees it."""
        self.fanout(
            channel.members, Relay(user.prefix, "KICK", (channel.name, target.nick, reason))
        )
        self._drop_member(channel, target)

    def set_topic(self, user: User, channel: Channel, topic: str) -> None:
        channel.topic = topic
        channel.topic_setter = user.prefix
        channel.topic_set_at = int(time.time())
        self.fanout(channel.members, Relay(user.prefix, "TOPIC", (channel.name, topic)))

    def _drop_member(self, channel: Channel, user: User) -> None:
        channel.members.pop(user, None)
        user.channels.pop(channel.key, None)
        if not channel.members:
            del self.channels[channel.key]

    # -- fan-out -----------------------------------------------------------

    @staticmethod
    def fanout(
        recipients: Iterable[User],
        relay: Relay,
        exclude: User | None = None,
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

    def peers(self, user: User) -> Iterable[User]:
        """Every other user who shares a channel with ``user``, each once."""
        channels = list(user.channels.values())
        if len(channels) == 1:
            return (m for m in channels[0].members if m is not user)
        seen: dict[User, None] = {}
        for channel in channels:
            seen.update(dict.fromkeys(channel.members))
        seen.pop(user, None)
        return seen

    def send_to_peers(self, user: User, relay: Relay, require_cap: str | None = None) -> None:
        """Queue ``relay`` once to every other user who shares a channel with ``user``."""
        self.fanout(self.peers(user), relay, exclude=user, require_cap=require_cap)
