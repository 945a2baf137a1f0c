"""The hub: users, nicks, channels and fan-out; every change of them is an event.

A handler checks and replies; the change itself is an event (events.py)
handed to :meth:`Hub.apply`, which applies it with the one method for its
kind, fans it out, and then gives it to every observer (metrics now; history
and the backplane next).

Every method here is a plain Python call that does no I/O and never yields,
so with gevent's cooperative scheduling no locks are needed: a change of
state and the fan-out it causes happen as one step that no other greenlet can
interleave with. Delivering means putting bytes into send queues, which never
blocks; the flusher sends them at the end of the loop turn.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, ClassVar

from greenchat.metrics import Buckets
from greenchat.protocol.caps import CapNegotiation
from greenchat.protocol.casemap import casefold
from greenchat.protocol.masks import parse_ban
from greenchat.protocol.metadata import CAPABILITY as METADATA
from greenchat.protocol.metadata import VISIBLE
from greenchat.server.caps import CHANNEL_RENAME, has_multiline
from greenchat.server.events import (
    AccountChanged,
    AwayChanged,
    ChannelModeChanged,
    ChannelRenamed,
    Event,
    HostChanged,
    Invited,
    Joined,
    Kicked,
    Killed,
    Messaged,
    MetadataChanged,
    NickChanged,
    Parted,
    Quit,
    RealnameChanged,
    Redacted,
    StoreChanged,
    TopicSet,
    UserModeChanged,
    UserRegistered,
    WallopsSent,
)
from greenchat.server.outgoing import Multiline, Relay, multiline_relays
from greenchat.server.presence import Presence
from greenchat.server.user import BOT_MODE, NO_METADATA, User, changed

__all__ = ["PREFIXES", "REDACTION", "Channel", "Hub"]

# IRCv3 message-redaction: only clients with it are shown a REDACT.
REDACTION = "draft/message-redaction"

# Member prefix modes and their symbols, highest rank first (ISUPPORT PREFIX).
PREFIXES = (("o", "@"), ("v", "+"))
PREFIX_MODES = frozenset(mode for mode, _ in PREFIXES)
LIST_MODES = frozenset("beI")  # bans, ban exceptions, invite exceptions
# STATUSMSG: the member modes a prefix before a channel's name reaches (ISUPPORT STATUSMSG).
STATUS_REACHES = {"@": frozenset("o"), "+": frozenset("ov")}


class Channel:
    """A channel: its members (with their prefix modes), topic and modes.

    ``modes`` holds the flag modes (n, t, m, i, s, p); the modes with a
    parameter live in their own fields: ``join_key`` (+k, '' when unset),
    ``limit`` (+l, 0 when unset) and the mask lists ``bans`` (+b), ``excepts`` (+e:
    ban exceptions) and ``invexes`` (+I: invite exceptions), each
    ``{casefolded mask: (mask, who set it, when)}`` (see :meth:`mask_list`).
    """

    __slots__ = (
        "_verdicts",
        "bans",
        "created",
        "excepts",
        "invexes",
        "invited",
        "join_key",
        "key",
        "limit",
        "local",
        "members",
        "metadata",
        "modes",
        "name",
        "route",
        "topic",
        "topic_set_at",
        "topic_setter",
    )

    def __init__(self, name: str, created: float | None = None) -> None:
        self.name = name
        self.key = casefold(name)
        self.route = self.key  # the name it was created with, kept by a RENAME (backplane)
        # member -> set of prefix modes ('o', 'v'); insertion order is join order.
        self.members: dict[User, set[str]] = {}
        # The members on this node (the same sets of modes): what fan-out walks, so a
        # message costs this node its own members, not the whole room (backplane).
        self.local: dict[User, set[str]] = {}
        self.modes: set[str] = {"n", "t"}
        self.join_key = ""
        self.limit = 0
        # casefolded mask -> (mask as set, who set it, when): +b, in the order set.
        self.bans: dict[str, tuple[str, str, int]] = {}
        self.excepts: dict[str, tuple[str, str, int]] = {}
        self.invexes: dict[str, tuple[str, str, int]] = {}
        # user -> (its prefix, its account, banned from joining, from speaking): the lists
        # are checked once per user until they, or the user's mask or account, change;
        # a line to a channel with 100 bans and 100 exceptions would cost it 200 matches.
        self._verdicts: dict[User, tuple[str, str, bool, bool]] = {}
        # Users invited since the channel was created; an invite lets one
        # past +i and bans once, as on Ergo (a new channel of the same name
        # is a new object, so old invites do not carry over).
        # Weak: an invite must not keep a gone connection alive.
        self.invited: weakref.WeakSet[User] = weakref.WeakSet()
        self.topic = ""
        self.topic_setter = ""
        self.topic_set_at = 0
        self.metadata: Mapping[str, str] = NO_METADATA  # IRCv3 metadata: replaced, not mutated
        # From the creating event on a network, so every node shows the same time.
        self.created = int(time.time() if created is None else created)

    def is_op(self, user: User) -> bool:
        return "o" in self.members.get(user, ())

    def prefixes(self, user: User, multi_prefix: bool = False) -> str:
        """The member's prefix symbols, highest first: '@', '+', '@+' (multi-prefix) or ''."""
        modes = self.members.get(user, ())  # () for one who left during a paged reply
        symbols = "".join(symbol for mode, symbol in PREFIXES if mode in modes)
        return symbols if multi_prefix else symbols[:1]

    def mask_list(self, char: str) -> dict[str, tuple[str, str, int]]:
        """The list of mode ``char``: +b, +e or +I."""
        return self.bans if char == "b" else self.excepts if char == "e" else self.invexes

    def is_banned(self, user: User, speaking: bool = False) -> bool:
        """Whether a +b entry keeps ``user`` out (mutes, ``m:``, only keep it from
        speaking: ``speaking``) and no +e entry excepts it. An entry matches the
        nick!user@host, or the account logged in to (``a:``, ``$a:``), see masks.py."""
        if not self.bans:
            return False
        found = self._verdicts.get(user)
        if found is None or found[0] is not user.prefix or found[1] != user.account:
            found = self._verdict(user)
        return found[3] if speaking else found[2]

    def _verdict(self, user: User) -> tuple[str, str, bool, bool]:
        name, account = casefold(user.prefix), user.account
        join = speak = False
        for mask in self.bans:
            ban = parse_ban(mask)
            if ban.matches(name, account):
                speak = True
                join = join or not ban.mute
                if join:
                    break
        if speak and self._matches(self.excepts, name, account):
            join = speak = False
        if len(self._verdicts) > len(self.members) + 64:  # those gone since
            self._verdicts.clear()
        found = self._verdicts[user] = (user.prefix, account, join, speak)
        return found

    def forget_verdict(self, user: User) -> None:
        """A member gone: its verdict would keep it (and its session) alive."""
        self._verdicts.pop(user, None)

    def lists_changed(self) -> None:
        """The bans or exceptions changed: every verdict is made again."""
        self._verdicts.clear()

    def is_invex(self, user: User) -> bool:
        """Whether a +I entry lets ``user`` past +i without an invite."""
        invexes = self.invexes
        return bool(invexes) and self._matches(invexes, casefold(user.prefix), user.account)

    @staticmethod
    def _matches(entries: dict[str, tuple[str, str, int]], name: str, account: str) -> bool:
        return any(parse_ban(mask).matches(name, account) for mask in entries)

    def invite(self, user: User) -> None:
        """Remember an invite (weakly: it goes with the invited user)."""
        self.invited.add(user)

    def apply_mode(
        self, sign: str, char: str, arg: str, setter: str, when: int, user: Callable[[str], User]
    ) -> None:
        """Apply one checked change: a flag, +k/-k, +l/-l, +b/-b or a member's +o/+v.

        ``setter`` and ``when`` are recorded with a ban; ``user`` finds a member by nick.
        """
        on = sign == "+"
        if char == "k":
            self.join_key = arg if on else ""
        elif char == "l":
            self.limit = int(arg) if on else 0
        elif char in LIST_MODES:
            entries = self.mask_list(char)
            self._verdicts.clear()
            if on:
                entries[casefold(arg)] = (arg, setter, when)
            else:
                entries.pop(casefold(arg), None)
        elif char in PREFIX_MODES:
            status = self.members[user(arg)]
            (status.add if on else status.discard)(char)
        else:
            (self.modes.add if on else self.modes.discard)(char)

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

    def __init__(self, whowas_size: int = 1000, name: str = "greenchat.local") -> None:
        self.name = name  # the server name, source of the server's own MODE lines
        # The seam to other nodes (greenchat/backplane): None on a single server, where
        # apply() applies at once; with one, apply() proposes and the backplane applies
        # every event, this node's too, in the network's order (apply_now).
        self.backplane: Any = None
        # True while the backplane applies another node's change: observers that store
        # (history, ChanServ's writes) leave that to the node it came from, which
        # shares the store (--db redis, or one file for --workers).
        self.foreign = False
        self.observers: tuple[Callable[[Event], None], ...] = ()  # see observe()
        self.observers_before: tuple[Callable[[Event], None], ...] = ()
        self.nicks: dict[str, User] = {}  # casefolded nick -> user
        self.channels: dict[str, Channel] = {}  # casefolded name -> channel
        # Casefolded names of channels kept while nobody is in them: the ones
        # registered with ChanServ (keep_channel; server/channel_registry.py).
        self.kept: set[str] = set()
        self.renamed = 0  # RENAMEs applied: a renamed channel keeps its route (backplane)
        self.users: set[User] = set()  # every user the network knows
        # Counters kept up to date so LUSERS (sent on every registration)
        # never walks all users.
        self.registered_count = 0
        self.invisible_count = 0
        self.max_registered = 0
        # MONITOR watchers, WHOWAS history, opers (presence.py): told of
        # nick changes and quits at the lines marked 'hook:'.
        self.presence = Presence(whowas_size)
        # Metrics kept where fan-out happens, once per call (greenchat/metrics.py reads them).
        self.deliveries = 0
        self.fanout_sizes = Buckets((1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000))

    # -- users and nicks ---------------------------------------------------

    def add_user(self, user: User) -> None:
        """A user the network now knows (a new local session's, before registration)."""
        self.users.add(user)

    def add_remote_user(self, nick: str, host: str, node: str, signon: float, ip: str = "") -> User:
        """A user of node ``node`` (no session here: its lines are that node's to send)."""
        user = User(host, ip, _unreachable, CapNegotiation({}), node=node)
        user.signon = int(signon)
        self.users.add(user)
        self.claim_nick(user, nick)
        return user

    def nick_owner(self, nick: str) -> User | None:
        return self.nicks.get(casefold(nick))

    def registered_user(self, nick: str) -> User | None:
        """The user called ``nick`` once registered (None while it still registers)."""
        user = self.nicks.get(casefold(nick))
        return user if user is not None and user.registered else None

    def claim_nick(self, user: User, nick: str) -> None:
        """Give ``nick`` to ``user`` (the caller checked it is free or its own)."""
        if user.nick:
            self.nicks.pop(casefold(user.nick), None)
        self.nicks[casefold(nick)] = user

    def note_registered(self) -> None:
        self.registered_count += 1
        self.max_registered = max(self.max_registered, self.registered_count)

    def remove_user(self, user: User, reason: str) -> None:
        """Forget ``user``: a registered one quits (:class:`Quit`); one that never
        registered only frees the nick it may have claimed."""
        if user not in self.users:
            return
        if user.registered:
            self.apply(Quit(user.nick, reason))
            return
        self.users.discard(user)
        self.presence.gone(user)  # hook: MONITOR
        if user.nick and self.nicks.get(casefold(user.nick)) is user:
            del self.nicks[casefold(user.nick)]

    def get_channel(self, name: str) -> Channel | None:
        return self.channels.get(casefold(name))

    def keep_channel(self, name: str) -> Channel:
        """Keep the channel ``name`` while it has no members (a registered channel,
        as Ergo keeps them); made, empty, if there is none. Nobody is told: what
        members see does not change."""
        key = casefold(name)
        self.kept.add(key)
        channel = self.channels.get(key)
        if channel is None:
            channel = self.channels[key] = Channel(name)
        return channel

    def release_channel(self, name: str) -> None:
        """Stop keeping ``name``: it goes now if it is empty, else with its last member."""
        key = casefold(name)
        self.kept.discard(key)
        channel = self.channels.get(key)
        if channel is not None and not channel.members:
            del self.channels[key]

    # -- events: every change of network state --------------------------------

    def apply(self, event: Event, check: dict[str, str] | None = None) -> Any:
        """Apply ``event``, fan it out, then hand it to every observer.

        Returns what the kind's applier returns (the channel joined, the relay
        of a message...), for the handler's own replies. On a network the
        backplane decides when (it may wait for the network's order, and may
        refuse: :class:`~greenchat.backplane.Refused`); ``check`` is what its check
        needs besides the event (a JOIN's key).
        """
        if self.backplane is not None:
            return self.backplane.propose(event, check or {})
        return self.apply_now(event)

    def apply_now(self, event: Event) -> Any:
        """Apply ``event`` here and now (what :meth:`apply` does on a single server)."""
        for observer in self.observers_before:
            observer(event)
        result = self._appliers[type(event)](self, event)
        for observer in self.observers:
            observer(event)
        return result

    def observe(self, observer: Callable[[Event], None], before: bool = False) -> None:
        """Call ``observer(event)`` after every applied event (it must not block); with
        ``before``, just before it is applied, while the state it changes is still there
        (history notes a QUIT in each of the user's channels)."""
        if before:
            self.observers_before += (observer,)
        else:
            self.observers += (observer,)

    def _user(self, nick: str) -> User:
        return self.nicks[casefold(nick)]

    def is_server(self, name: str) -> bool:
        """Whether a change's ``by`` names a server (a service's change: ChanServ's
        MODE): this one, or another node of the network, whose name has a dot, as a
        host name has and no nick can."""
        return name == self.name or "." in name

    def _registered(self, event: UserRegistered) -> User:
        if event.node:  # a user of another node: known here, reached through it
            self.add_remote_user(event.nick, event.host, event.node, event.time, event.ip)
        user = self._user(event.nick)
        user.username, user.host, user.realname = event.username, event.host, event.realname
        user.account, user.node = event.account, event.node
        if event.account:
            user.modes = user.modes | {"r"}  # logged in (SASL before registering)
        user.registered = True
        user.set_nick(event.nick)  # the prefix now carries the username
        self.note_registered()
        self.presence.online(user)  # hook: MONITOR watchers of this nick learn it is here
        return user

    def _nick_changed(self, event: NickChanged) -> None:
        """Rename a registered user and tell everyone who shares a channel."""
        user = self._user(event.old)
        relay = Relay(
            user.prefix, "NICK", (event.new,), when=event.time, msgid=event.msgid,
            account=user.account,
        )  # fmt: skip
        self.claim_nick(user, event.new)
        user.set_nick(event.new)
        user.send_relay(relay)
        self.send_to_peers(user, relay)
        self.presence.nick_changed(user, event.old)  # hook: WHOWAS, MONITOR

    def _joined(self, event: Joined) -> Channel | None:
        """Add the user to the channel (creating it); ``None`` if already in."""
        user = self._user(event.nick)
        key = casefold(event.channel)
        channel = self.channels.get(key)
        if channel is None:
            channel = self.channels[key] = Channel(event.channel, event.time)
            modes = {"o"}  # whoever creates a channel operates it
        elif user in channel.members:
            return None
        else:
            modes = set()
            channel.invited.discard(user)  # an invite is good for one join
        channel.members[user] = modes
        if not user.node:
            channel.local[user] = modes
        user.channels[key] = channel
        self.fanout(channel.local, _join_relay(user, channel, event))
        if user.away:  # hook: away-notify members learn at once that the newcomer is away
            away = Relay(user.prefix, "AWAY", (user.away,), account=user.account)
            self.fanout(channel.local, away, exclude=user, require_cap="away-notify")
        if user.metadata:  # hook: subscribers learn the newcomer's keys (IRCv3 metadata)
            self._tell_metadata(channel.local, user.nick, tuple(user.metadata.items()), user)
        return channel

    def _parted(self, event: Parted) -> None:
        user, channel = self._user(event.nick), self.channels[casefold(event.channel)]
        reason = event.reason
        params = (channel.name, reason) if reason else (channel.name,)
        self.fanout(
            channel.local,
            Relay(
                user.prefix,
                "PART",
                params,
                trailing=bool(reason),
                when=event.time,
                msgid=event.msgid,
                account=user.account,
            ),
        )
        self._drop_member(channel, user)

    def _channel_renamed(self, event: ChannelRenamed) -> None:
        """The channel takes its new name everywhere it is kept; its local members see a
        RENAME (draft/channel-rename), or else leave the old name and join the new one
        themselves (their names and topic follow: commands/channel_ops.py)."""
        user, channel = self._user(event.by), self.channels.pop(casefold(event.channel))
        self.renamed += 1
        old = channel.name
        channel.name, channel.key = event.new, casefold(event.new)
        self.channels[channel.key] = channel
        for member in channel.members:
            member.channels.pop(casefold(old), None)
            member.channels[channel.key] = channel
        params = (old, event.new, event.reason) if event.reason else (old, event.new)
        relay = Relay(
            user.prefix, "RENAME", params, trailing=bool(event.reason), when=event.time,
            msgid=event.msgid, account=user.account,
        )  # fmt: skip
        told = [member for member in channel.local if CHANNEL_RENAME in member.caps.enabled]
        self.fanout(told, relay)
        why = f"Channel renamed to {event.new}" + (f": {event.reason}" if event.reason else "")
        for member in channel.local:
            if CHANNEL_RENAME not in member.caps.enabled:
                part = Relay(member.prefix, "PART", (old, why), when=event.time,
                             account=member.account)  # fmt: skip
                member.send_relay(part)
                member.send_relay(_join_relay(member, channel))

    def _kicked(self, event: Kicked) -> None:
        """Every member, the kicked one too, sees the KICK."""
        user, target = self._user(event.by), self._user(event.target)
        channel = self.channels[casefold(event.channel)]
        params = (channel.name, target.nick, event.reason)
        relay = Relay(
            user.prefix, "KICK", params, when=event.time, msgid=event.msgid, account=user.account
        )
        self.fanout(channel.local, relay)
        self._drop_member(channel, target)

    def _quit(self, event: Quit) -> None:
        """The user leaves the network: its peers see the QUIT, every trace goes."""
        user = self._user(event.nick)
        self.users.discard(user)
        self.registered_count -= 1
        self.invisible_count -= "i" in user.modes
        relay = Relay(
            user.prefix, "QUIT", (event.reason,), when=event.time, msgid=event.msgid,
            account=user.account,
        )  # fmt: skip
        self.send_to_peers(user, relay)
        self.presence.gone(user)  # hook: WHOWAS, MONITOR, opers
        for channel in list(user.channels.values()):
            self._drop_member(channel, user)
        del self.nicks[casefold(user.nick)]

    def _topic_set(self, event: TopicSet) -> None:
        user, channel = self._user(event.by), self.channels[casefold(event.channel)]
        channel.topic = event.topic
        channel.topic_setter = user.prefix
        channel.topic_set_at = int(event.time)
        self.fanout(
            channel.local,
            Relay(
                user.prefix,
                "TOPIC",
                (channel.name, event.topic),
                when=event.time,
                msgid=event.msgid,
                account=user.account,
            ),
        )

    def _channel_modes_changed(self, event: ChannelModeChanged) -> None:
        """Apply checked mode changes (the handler normalized them) and show them.

        ``by`` is a nick, or the server's name for a service's change (ChanServ),
        which members see coming from the server, as on Ergo.
        """
        channel = self.channels[casefold(event.channel)]
        if self.is_server(event.by):
            source, account = event.by, ""
        else:
            user = self._user(event.by)
            source, account = user.prefix, user.account
        for sign, char, arg in event.changes:
            channel.apply_mode(sign, char, arg, source, int(event.time), self._user)
        params = (channel.name, *mode_params(event.changes))
        relay = Relay(
            source, "MODE", params, trailing=False, when=event.time, msgid=event.msgid,
            account=account,
        )  # fmt: skip
        self.fanout(channel.local, relay)

    def _invited(self, event: Invited) -> Relay:
        """The invitee gets the INVITE; with invite-notify, members who could have
        invited too (every member, or only ops on a +i channel) see it."""
        user, target = self._user(event.by), self._user(event.target)
        channel = self.channels[casefold(event.channel)]
        channel.invite(target)
        relay = Relay(
            user.prefix, "INVITE", (target.nick, channel.name), trailing=False, account=user.account
        )
        target.send_relay(relay)
        if "i" in channel.modes:
            watchers = [m for m, modes in channel.local.items() if "o" in modes]
        else:
            watchers = list(channel.local)
        watchers = [m for m in watchers if m is not target]
        self.fanout(watchers, relay, exclude=user, require_cap="invite-notify")
        return relay

    def _user_modes_changed(self, event: UserModeChanged) -> None:
        user = self._user(event.nick)
        presence = self.presence
        for sign, char in event.changes:
            on = sign == "+"
            user.modes = user.modes | {char} if on else user.modes - {char}
            if char == "i":
                self.invisible_count += 1 if on else -1
            elif char == "w":
                (presence.wallops.add if on else presence.wallops.discard)(user)
            elif char == "o":
                (presence.opers.add if on else presence.opers.discard)(user)
                if not on:
                    user.oper_name = ""
        letters = mode_params([(sign, char, "") for sign, char in event.changes])
        user.send_relay(Relay(user.prefix, "MODE", (user.nick, *letters), account=user.account))

    def _account_changed(self, event: AccountChanged) -> None:
        """Logged in or out: friends with account-notify get ACCOUNT; the user gets
        user mode +r (or -r)."""
        user = self._user(event.nick)
        user.account = event.account
        relay = Relay(user.prefix, "ACCOUNT", (event.account or "*",), trailing=False)
        self.fanout(self.presence.friends(self, user, "account-notify"), relay)
        if bool(event.account) != ("r" in user.modes):
            user.modes = user.modes | {"r"} if event.account else user.modes - {"r"}
            sign = "+" if event.account else "-"
            user.send_relay(Relay(self.name, "MODE", (user.nick, sign + "r"), trailing=False))

    def _away_changed(self, event: AwayChanged) -> None:
        user = self._user(event.nick)
        user.away = event.message
        relay = Relay(
            user.prefix, "AWAY", (event.message,) if event.message else (), account=user.account
        )
        self.fanout(self.presence.friends(self, user, "away-notify"), relay)

    def _realname_changed(self, event: RealnameChanged) -> Relay:
        user = self._user(event.nick)
        user.realname = event.realname
        relay = Relay(user.prefix, "SETNAME", (event.realname,), account=user.account)
        self.fanout(self.presence.friends(self, user, "setname"), relay)
        return relay

    def _host_changed(self, event: HostChanged) -> None:
        """Clients with ``chghost`` get one CHGHOST line; channel peers without it
        see the user quit and rejoin with the new host (and its channel status
        restored), which is how they learn of the new prefix on other servers."""
        user = self._user(event.nick)
        old_prefix = user.prefix
        user.username, user.host = event.username, event.host
        user.set_nick(user.nick)
        relay = Relay(old_prefix, "CHGHOST", (event.username, event.host), trailing=False)
        self.fanout(self.presence.friends(self, user, "chghost"), relay)
        if user.has_cap("chghost"):
            user.send_relay(relay)
        self._fake_rejoin(user, old_prefix)

    def _fake_rejoin(self, user: User, old_prefix: str) -> None:
        peers = self.peers(user)
        without_cap = [p for p in peers if p is not user and not p.has_cap("chghost")]
        if not without_cap:
            return
        self.fanout(without_cap, Relay(old_prefix, "QUIT", ("Changing host",)))
        for channel in list(user.channels.values()):
            members = [m for m in channel.local if m is not user and not m.has_cap("chghost")]
            self.fanout(members, _join_relay(user, channel))
            modes = "".join(mode for mode, _ in PREFIXES if mode in channel.members[user])
            if modes:
                params = (channel.name, "+" + modes, *[user.nick] * len(modes))
                self.fanout(members, Relay(self.name, "MODE", params, trailing=False))
            if user.away:
                away = Relay(user.prefix, "AWAY", (user.away,), account=user.account)
                self.fanout(members, away, require_cap="away-notify")

    def _killed(self, event: Killed) -> None:
        """The victim's session closes; its :class:`Quit` follows when its reader ends."""
        victim = self._user(event.target)
        if victim.session is not None:
            victim.session.disconnect(event.reason)

    def _wallops_sent(self, event: WallopsSent) -> None:
        """To this node's operators and +w users (each node fans out to its own)."""
        relay = Relay(self._user(event.source).prefix, "WALLOPS", (event.text,))
        self.fanout(self.presence.opers | self.presence.wallops, relay)

    def _messaged(self, event: Messaged) -> Relay:
        """To a channel: every member but the sender (TAGMSG only to message-tags);
        to a user: that user. The relay is returned for the sender's echo."""
        user = self._user(event.source)
        target = event.status + event.target
        if event.multiline:
            return self._multiline(event, user, target)
        params = (target,) if event.verb == "TAGMSG" else (target, event.text)
        relay = Relay(
            user.prefix,
            event.verb,
            params,
            trailing=event.verb != "TAGMSG",
            client_tags=_client_tags(event, user),
            when=event.time,
            msgid=event.msgid,
            account=user.account,
        )
        require = "message-tags" if event.verb == "TAGMSG" else None
        channel = self.channels.get(casefold(event.target))
        if channel is not None:
            members = _hearers(channel, user, event.status)
            self.fanout(members, relay, exclude=user, require_cap=require)
        else:
            recipient = self._user(event.target)
            if require is None or recipient.has_cap(require):
                recipient.send_relay(relay)
        return relay

    def _multiline(self, event: Messaged, user: User, target: str) -> Multiline:
        """A draft/multiline message: its batch to the recipients with the capability,
        its lines to the others (the same recipients as a one-line message)."""
        batch, plain = multiline_relays(
            user.prefix, event.verb, target, event.multiline,
            client_tags=_client_tags(event, user),
            when=event.time, msgid=event.msgid, account=user.account,
        )  # fmt: skip
        channel = self.channels.get(casefold(event.target))
        if channel is not None:  # every member but the sender
            members = [m for m in _hearers(channel, user, event.status) if m is not user]
        else:  # the one user, the sender too when it writes to itself
            members = [self._user(event.target)]
        able, others = [], []
        for member in members:
            (able if has_multiline(member.caps.enabled) else others).append(member)
        self.fanout(able, batch)
        self.fanout(others, plain)
        return Multiline(batch, plain)

    def _redacted(self, event: Redacted) -> None:
        """Members (or the two parties) with draft/message-redaction see the REDACT,
        the one who sent it too; without the capability nothing changes on screen."""
        user = self._user(event.by)
        params = (event.target, event.msgid, *((event.reason,) if event.reason else ()))
        relay = Relay(
            user.prefix, "REDACT", params, trailing=bool(event.reason), when=event.time,
            msgid=event.redact_msgid, account=user.account,
        )  # fmt: skip
        channel = self.channels.get(casefold(event.target))
        if channel is not None:
            self.fanout(channel.local, relay, require_cap=REDACTION)
            return
        other = self.nicks.get(casefold(event.target))
        recipients = [user] if other is None or other is user else [user, other]
        self.fanout(recipients, relay, require_cap=REDACTION)

    def _metadata_changed(self, event: MetadataChanged) -> None:
        """A user's or a channel's keys change. Whoever subscribed to a key (and has the
        capability) is told, with a METADATA line: of a channel, its members; of a user,
        those who share a channel with it, and the user itself; never ``by``."""
        channel = self.channels.get(casefold(event.target))
        holder: Channel | User
        if channel is not None:
            holder, name, recipients = channel, channel.name, channel.local
        else:
            user = self.nicks.get(casefold(event.target))
            if user is None:  # gone meanwhile (the backplane's checks skip such a change)
                return
            holder, name = user, user.nick
            recipients = {**dict.fromkeys(self.peers(user)), user: None}
        holder.metadata = changed(holder.metadata, event.changes)
        self._tell_metadata(recipients, name, event.changes, self.nicks.get(casefold(event.by)))

    def _tell_metadata(
        self,
        recipients: Collection[User],
        target: str,
        changes: Iterable[tuple[str, str | None]],
        exclude: User | None,
    ) -> None:
        """One METADATA line per change to the ``recipients`` subscribed to its key."""
        able = [
            member
            for member in recipients
            if member.metadata_subs and member is not exclude and METADATA in member.caps.enabled
        ]
        for key, value in changes if able else ():
            subscribed = [member for member in able if key in member.metadata_subs]
            if not subscribed:
                continue
            if value is None:
                relay = Relay(self.name, "METADATA", (target, key, VISIBLE), trailing=False)
            else:
                relay = Relay(self.name, "METADATA", (target, key, VISIBLE, value))
            self.fanout(subscribed, relay)

    def _store_changed(self, event: StoreChanged) -> None:
        """Nothing of the hub's: observers on other nodes read the record again."""

    _appliers: ClassVar[dict[type, Callable[[Hub, Any], Any]]] = {
        UserRegistered: _registered,
        NickChanged: _nick_changed,
        Joined: _joined,
        Parted: _parted,
        Kicked: _kicked,
        Quit: _quit,
        TopicSet: _topic_set,
        ChannelRenamed: _channel_renamed,
        ChannelModeChanged: _channel_modes_changed,
        Invited: _invited,
        UserModeChanged: _user_modes_changed,
        AccountChanged: _account_changed,
        AwayChanged: _away_changed,
        RealnameChanged: _realname_changed,
        HostChanged: _host_changed,
        MetadataChanged: _metadata_changed,
        Killed: _killed,
        WallopsSent: _wallops_sent,
        Messaged: _messaged,
        Redacted: _redacted,
        StoreChanged: _store_changed,
    }

    def _drop_member(self, channel: Channel, user: User) -> None:
        channel.members.pop(user, None)
        channel.forget_verdict(user)
        channel.local.pop(user, None)
        user.channels.pop(channel.key, None)
        if not channel.members and channel.key not in self.kept:
            del self.channels[channel.key]

    # -- fan-out -----------------------------------------------------------

    def fanout(
        self,
        recipients: Collection[User],
        relay: Relay,
        exclude: User | None = None,
        require_cap: str | None = None,
    ) -> None:
        """Queue ``relay`` to every recipient except ``exclude``.

        Each capability variant is serialized once; every recipient of that
        variant gets a reference to the same bytes object. With
        ``require_cap``, only recipients that enabled it get the message.
        Counted once per call (deliveries, fan-out size), never per recipient.
        """
        cache = relay.cache
        render = relay.bytes_for
        if require_cap is not None:
            recipients = [
                m for m in recipients if require_cap in m.caps.enabled and m is not exclude
            ]
            exclude = None
        for member in recipients:
            if member is not exclude:
                member.relay_put(cache[member.relay_variant] or render(member.relay_variant))
        count = len(recipients) - (exclude is not None and exclude in recipients)
        self.deliveries += count
        self.fanout_sizes.observe(count)

    def peers(self, user: User) -> Collection[User]:
        """Every user of this node who shares a channel with ``user``, each once; maybe
        ``user`` too (the local members of its one channel, not copied): exclude it when
        fanning out."""
        channels = list(user.channels.values())
        if len(channels) == 1:
            return channels[0].local
        seen: dict[User, None] = {}
        for channel in channels:
            seen.update(dict.fromkeys(channel.local))
        seen.pop(user, None)
        return seen

    def send_to_peers(self, user: User, relay: Relay, require_cap: str | None = None) -> None:
        """Queue ``relay`` once to every other user who shares a channel with ``user``."""
        self.fanout(self.peers(user), relay, exclude=user, require_cap=require_cap)


def _hearers(channel: Channel, user: User, status: str) -> Collection[User]:
    """The local members a line of ``user`` to ``channel`` reaches: all of them, or
    with a STATUSMSG prefix only those with that status or higher; +U narrows it to
    the operators whatever the prefix (an unprivileged member may not widen it)."""
    if op_moderated(channel, user):
        status = "@"
    if not status:
        return channel.local
    reaches, modes = STATUS_REACHES[status], channel.members
    return [member for member in channel.local if reaches & modes[member]]


def op_moderated(channel: Channel, user: User) -> bool:
    """+U: a line of a member without a prefix mode (neither op nor voice, as Ergo's
    unprivileged ones) goes to the operators only."""
    return "U" in channel.modes and not channel.members.get(user)


def _client_tags(event: Messaged, user: User) -> str:
    """The message's client-only tags; a bot's (IRCv3 bot-mode) with the ``bot`` tag."""
    if BOT_MODE not in user.modes:
        return event.tags
    return f"bot;{event.tags}" if event.tags else "bot"


def _unreachable(line: bytes) -> None:
    """How a user of another node is "sent" a line: its own node delivers it."""


def mode_params(changes: Iterable[tuple[str, str, str]]) -> list[str]:
    """``[("+", "n", ""), ("+", "k", "key"), ("-", "o", "bob")]`` -> ``["+nk-o", "key", "bob"]``."""
    letters: list[str] = []
    args: list[str] = []
    sign = ""
    for change_sign, char, arg in changes:
        if change_sign != sign:
            sign = change_sign
            letters.append(sign)
        letters.append(char)
        if arg:
            args.append(arg)
    return ["".join(letters), *args]


def _join_relay(user: User, channel: Channel, event: Joined | None = None) -> Relay:
    """``user``'s JOIN of ``channel`` (as ``event`` had it, with its time and msgid);
    extended-join recipients also get the account ('*': none) and the real name."""
    ext = (channel.name, user.account or "*", user.realname)
    return Relay(
        user.prefix, "JOIN", (channel.name,), trailing=False, ext_params=ext,
        when=event.time if event else None, msgid=event.msgid if event else None,
        account=user.account,
    )  # fmt: skip
