"""Every change of network state, as a frozen event.

Handlers check permissions and reply with numerics; the change itself is one
of these events, applied by :meth:`Hub.apply <greenchat.server.hub.Hub.apply>`,
which updates the state, fans the change out to the users who see it and
then hands the same event to every observer (metrics now; history and the
backplane next), so no observer touches a handler.

A change a channel's members see (a JOIN, a MODE...) carries the msgid its line
goes out with, so the copy history stores for event-playback has the same one.

Events name users by nick and channels by name, never by object, so each has
a stable serialized form: :func:`dumps` gives one line of JSON with a version
and a kind, :func:`loads` reads it back into an equal event. The next issues
store that form and publish it to other processes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from greenchat.server.outgoing import new_msgid

__all__ = [
    "VERSION",
    "AccountChanged",
    "AwayChanged",
    "ChannelModeChanged",
    "ChannelRenamed",
    "Event",
    "EventError",
    "HostChanged",
    "Invited",
    "Joined",
    "Kicked",
    "Killed",
    "Messaged",
    "MetadataChanged",
    "NickChanged",
    "Parted",
    "Quit",
    "RealnameChanged",
    "Redacted",
    "StoreChanged",
    "TopicSet",
    "UserModeChanged",
    "UserRegistered",
    "WallopsSent",
    "dumps",
    "from_dict",
    "loads",
    "to_dict",
]

VERSION = 2  # of the serialized form; bump when a field changes (2: channel events' msgid)


class EventError(ValueError):
    """A serialized event that cannot be read (unknown kind or version, bad fields)."""


def _now() -> float:
    return time.time()


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event: ``kind`` names it in the serialized form."""

    kind: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class UserRegistered(Event):
    """A connection finished registering: the network has a new user."""

    kind: ClassVar[str] = "register"
    nick: str
    username: str
    host: str
    realname: str
    account: str = ""
    node: str = ""
    ip: str = ""  # the real address (WHOIS 378 for operators on every node)
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class NickChanged(Event):
    kind: ClassVar[str] = "nick"
    old: str
    new: str
    msgid: str = field(default_factory=new_msgid)  # the live line's and the stored one's
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Joined(Event):
    kind: ClassVar[str] = "join"
    nick: str
    channel: str
    msgid: str = field(default_factory=new_msgid)  # the live line's and the stored one's
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Parted(Event):
    kind: ClassVar[str] = "part"
    nick: str
    channel: str
    reason: str = ""
    msgid: str = field(default_factory=new_msgid)  # the live line's and the stored one's
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Kicked(Event):
    kind: ClassVar[str] = "kick"
    by: str
    channel: str
    target: str
    reason: str
    msgid: str = field(default_factory=new_msgid)  # the live line's and the stored one's
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Quit(Event):
    """A user left the network (QUIT, a dropped connection, a KILL's end)."""

    kind: ClassVar[str] = "quit"
    nick: str
    reason: str
    msgid: str = field(default_factory=new_msgid)  # the live line's and the stored one's
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class TopicSet(Event):
    kind: ClassVar[str] = "topic"
    by: str
    channel: str
    topic: str
    msgid: str = field(default_factory=new_msgid)  # the live line's and the stored one's
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class ChannelRenamed(Event):
    """``by`` (an operator of it) renamed ``channel`` to ``new`` (draft/channel-rename)."""

    kind: ClassVar[str] = "rename"
    by: str
    channel: str
    new: str
    reason: str = ""
    msgid: str = field(default_factory=new_msgid)
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class ChannelModeChanged(Event):
    """Applied channel mode changes, bans and member prefixes included.

    ``changes``: ``(sign, letter, argument)`` each, argument '' when none,
    e.g. ``(("+", "o", "bob"), ("+", "b", "*!*@bad"), ("-", "t", ""))``.
    """

    kind: ClassVar[str] = "cmode"
    by: str
    channel: str
    changes: tuple[tuple[str, str, str], ...]
    msgid: str = field(default_factory=new_msgid)  # the live line's and the stored one's
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Invited(Event):
    kind: ClassVar[str] = "invite"
    by: str
    target: str
    channel: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class UserModeChanged(Event):
    """``changes``: ``(sign, letter)`` each, e.g. ``(("+", "i"), ("-", "w"))``."""

    kind: ClassVar[str] = "umode"
    nick: str
    changes: tuple[tuple[str, str], ...]
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class AccountChanged(Event):
    """A registered user logged in to ``account`` (SASL, NickServ), or out ('')."""

    kind: ClassVar[str] = "account"
    nick: str
    account: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class AwayChanged(Event):
    """``message`` '' means back."""

    kind: ClassVar[str] = "away"
    nick: str
    message: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class RealnameChanged(Event):
    kind: ClassVar[str] = "setname"
    nick: str
    realname: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class HostChanged(Event):
    """CHGHOST by an operator (``by``): ``nick`` is now ``username@host``."""

    kind: ClassVar[str] = "chghost"
    by: str
    nick: str
    username: str
    host: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class MetadataChanged(Event):
    """IRCv3 metadata of ``target`` (a nick, or a channel's name) changed by ``by``:
    each of ``changes`` is ``(key, value)``, a value of None taking the key off. The
    keys and values were checked (protocol/metadata.py); the target's subscribers
    sharing a channel with it are told, but not ``by``, who had the reply."""

    kind: ClassVar[str] = "metadata"
    by: str
    target: str
    changes: tuple[tuple[str, str | None], ...]
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Killed(Event):
    """An operator's KILL; the victim's Quit follows when its connection ends."""

    kind: ClassVar[str] = "kill"
    by: str
    target: str
    reason: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class WallopsSent(Event):
    """An operator's WALLOPS: to every operator and every ``+w`` user, on every node."""

    kind: ClassVar[str] = "wallops"
    source: str  # the operator's nick
    text: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Messaged(Event):
    """A PRIVMSG, NOTICE or TAGMSG to a channel or a user (``text`` '' for TAGMSG).

    ``status``: to a channel's ops (``@``) or its voiced members and ops (``+``) only
    (STATUSMSG, ``PRIVMSG @#chan``); such a message is not stored in its history.

    ``tags``: the sender's client-only tags, escaped (``+a=b;+c``); ``msgid``
    and ``time`` are what recipients with message-tags and server-time see.
    """

    kind: ClassVar[str] = "message"
    verb: str
    source: str  # the sender's nick
    target: str
    text: str
    tags: str = ""
    msgid: str = ""
    time: float = field(default_factory=_now)
    status: str = ""  # STATUSMSG ("@" or "+" before the channel): those members only
    # draft/multiline: the lines, each (text, concatenated to the one before); ``text``
    # is then the whole message (lines joined by newlines, concatenated ones directly).
    multiline: tuple[tuple[str, bool], ...] = ()


@dataclass(frozen=True, slots=True)
class Redacted(Event):
    """``by`` deleted the message ``msgid`` of ``target`` (REDACT: its sender, a
    channel operator or an IRC operator); it has left the stored history already.
    ``redact_msgid`` is the REDACT line's own msgid."""

    kind: ClassVar[str] = "redact"
    by: str
    target: str
    msgid: str
    reason: str = ""
    redact_msgid: str = ""
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class StoreChanged(Event):
    """The shared store changed under ``name``: an account (``what`` "account") or a
    registered channel ("channel") was registered, changed or dropped, or an account's
    read marker moved ("marker"). Nothing of the
    hub's changes; the other nodes of a network read the record again, for what they
    keep of it in memory (registered nicks, ChanServ's records: shared_store.py)."""

    kind: ClassVar[str] = "stored"
    what: str
    name: str
    time: float = field(default_factory=_now)


# -- the serialized form ----------------------------------------------------------------

# kind -> class. Listed, not registered by a hook: slots=True dataclasses are
# new classes made after the class body runs.
KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        UserRegistered,
        NickChanged,
        Joined,
        Parted,
        Kicked,
        Quit,
        TopicSet,
        ChannelRenamed,
        ChannelModeChanged,
        Invited,
        UserModeChanged,
        AccountChanged,
        AwayChanged,
        RealnameChanged,
        HostChanged,
        MetadataChanged,
        Killed,
        WallopsSent,
        Messaged,
        Redacted,
        StoreChanged,
    )
}


# kind's class -> its field names, in order: dataclasses.fields() builds a tuple of
# Field objects on every call, and every message crossing nodes is serialized and read.
FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in KINDS.values()
}


def to_dict(event: Event) -> dict[str, Any]:
    """``{"v": VERSION, "kind": ..., <fields>}``; tuples become lists (JSON)."""
    data: dict[str, Any] = {"v": VERSION, "kind": event.kind}
    for name in FIELD_NAMES[type(event)]:
        data[name] = getattr(event, name)
    return data


def from_dict(data: dict[str, Any]) -> Event:
    """The event ``to_dict`` made; :class:`EventError` for anything else."""
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise EventError(
            f"unsupported event version: {data.get('v') if isinstance(data, dict) else data!r}"
        )
    cls = KINDS.get(data.get("kind", ""))
    if cls is None:
        raise EventError(f"unknown event kind: {data.get('kind')!r}")
    names = FIELD_NAMES[cls]
    values = {k: _tuples(v) for k, v in data.items() if k in names}
    if len(values) + 2 != len(data):  # a field this version does not know: it would be lost
        unknown = set(data) - set(names) - {"v", "kind"}
        raise EventError(f"{cls.kind}: unknown fields {sorted(unknown)}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise EventError(f"{cls.kind}: {exc}") from None


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def dumps(event: Event) -> str:
    """One line of JSON, keys in a fixed order."""
    return json.dumps(to_dict(event), ensure_ascii=False, separators=(",", ":"))


def loads(text: str | bytes) -> Event:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EventError(f"not JSON: {exc}") from None
    return from_dict(data)
