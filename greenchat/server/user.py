"""What the network knows of a person: the :class:`User`.

The hub, its channels, presence (MONITOR, operators) and WHOWAS hold Users,
never sessions. A local user has the :class:`~greenchat.server.session.Session`
that owns it (``session``); delivering to any user is one call,
``user.enqueue(line)``, which for a local user puts the bytes into its
session's send queue (framed, for a WebSocket). A relayed message goes as
``user.relay_put(relay.bytes_for(user.relay_variant))``: the relay renders the
line in the form the user's transport sends, so it is queued as it is. Those
calls are the seam where a user on another node will be handed to the
backplane instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from greenchat.protocol.caps import CapNegotiation

if TYPE_CHECKING:
    from collections.abc import Callable

    from greenchat.server.hub import Channel
    from greenchat.server.outgoing import Relay
    from greenchat.server.session import Session

__all__ = ["BOT_MODE", "NO_METADATA", "NO_MODES", "User", "changed", "frozen"]

NO_MODES: frozenset[str] = frozenset()
# What most users have of IRCv3 metadata: shared, never changed (a change replaces it).
NO_METADATA: Mapping[str, str] = MappingProxyType({})


def frozen(values: Mapping[str, str]) -> Mapping[str, str]:
    """Metadata as a user or a channel keeps it: read-only, the shared empty one if empty."""
    return MappingProxyType(dict(values)) if values else NO_METADATA


def changed(
    metadata: Mapping[str, str], changes: Iterable[tuple[str, str | None]]
) -> Mapping[str, str]:
    """``metadata`` with ``changes`` made (a value of None takes its key off), as kept."""
    values = dict(metadata)
    for key, value in changes:
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return frozen(values)


# IRCv3 bot-mode (ISUPPORT BOT=B): a user sets it on itself; WHO shows the flag, WHOIS
# 335, and its messages carry the ``bot`` tag.
BOT_MODE = "B"


class User:
    """A person on the network: identity, modes, away, channels, and how to reach them."""

    __slots__ = (
        "__weakref__",
        "account",
        "away",
        "caps",
        "channels",
        "enqueue",
        "host",
        "ip",
        "last_message",
        "metadata",
        "metadata_subs",
        "modes",
        "monitoring",
        "nick",
        "node",
        "oper_name",
        "prefix",
        "realname",
        "registered",
        "relay_put",
        "relay_variant",
        "session",
        "signon",
        "username",
        "variant",
    )

    def __init__(
        self,
        host: str,
        ip: str,
        enqueue: Callable[[bytes], None],
        caps: CapNegotiation,
        session: Session | None = None,
        node: str = "",
    ) -> None:
        self.nick = ""
        self.username = ""  # what USER gave (the ident), '' until then
        self.host = host  # shown in the prefix; CHGHOST may change it
        self.ip = ip  # where the connection comes from; never changes
        self.realname = ""
        self.account = ""  # accounts come with SASL; '' means not logged in
        self.prefix = ""
        self.registered = False
        self.modes: frozenset[str] = NO_MODES  # replaced, never mutated: most have none
        self.away = ""  # away message; '' when not away
        self.oper_name = ""  # the OPER name used, '' when not an operator
        self.channels: dict[str, Channel] = {}  # casefolded name -> channel
        self.monitoring: dict[str, str] = {}  # MONITOR: casefolded nick -> nick as given
        # IRCv3 metadata: its keys and values (replaced, never mutated), and for a local
        # user the keys its client subscribed to (commands/metadata.py).
        self.metadata: Mapping[str, str] = NO_METADATA
        self.metadata_subs: frozenset[str] = NO_MODES
        self.signon = int(time.time())
        self.last_message = time.monotonic()  # PRIVMSG/NOTICE time, for WHOIS idle
        self.node = node  # '' for this server; later the node a remote user lives on
        self.session = session
        # How lines reach this user: bound once, the fan-out calls it per recipient.
        self.enqueue = enqueue
        # The capabilities of the client behind this user, and the bit set of
        # those that change how relayed lines look (outgoing.py).
        self.caps = caps
        self.variant = 0
        # Where relayed lines go, rendered as relay_variant (the variant, plus for a
        # WebSocket its framing): the session routes both (session.py).
        self.relay_put = enqueue
        self.relay_variant = 0

    def __repr__(self) -> str:
        return f"<User {self.nick or '*'} {self.host}>"

    def has_cap(self, name: str) -> bool:
        return name in self.caps.enabled

    def send_relay(self, relay: Relay) -> None:
        """Deliver one relayed line, in the form this user's client asks for."""
        self.relay_put(relay.bytes_for(self.relay_variant))

    def set_nick(self, nick: str) -> None:
        self.nick = nick
        self.prefix = f"{nick}!{self.username or '~u'}@{self.host}"
