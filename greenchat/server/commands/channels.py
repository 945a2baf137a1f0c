"""Channel commands: JOIN, PART, NAMES, TOPIC and MODE (channel and user).

Channel modes: flags ``+CUcimnpst``, ``+k <key>``, ``+l <limit>``, the ban list
``+b <mask>`` and member prefixes ``+o``/``+v``. A MODE command is parsed
into :class:`ModeChange` objects, each is applied (or refused with a
numeric), and the changes actually made go to the members as one MODE line.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from greenchat.backplane import Refused
from greenchat.protocol.casemap import casefold, is_channel_name, valid_channel
from greenchat.protocol.masks import normalize_ban
from greenchat.protocol.message import Message, truncate_utf8
from greenchat.protocol.numerics import (
    ERR_BADCHANNAME,
    ERR_BADCHANNELKEY,
    ERR_BANLISTFULL,
    ERR_BANNEDFROMCHAN,
    ERR_CHANNELISFULL,
    ERR_CHANOPRIVSNEEDED,
    ERR_INVALIDMODEPARAM,
    ERR_INVITEONLYCHAN,
    ERR_NOSUCHCHANNEL,
    ERR_NOTONCHANNEL,
    ERR_TOOMANYCHANNELS,
    ERR_UNKNOWNMODE,
    ERR_USERNOTINCHANNEL,
    RPL_BANLIST,
    RPL_CHANNELMODEIS,
    RPL_CREATIONTIME,
    RPL_ENDOFBANLIST,
    RPL_ENDOFEXCEPTLIST,
    RPL_ENDOFINVEXLIST,
    RPL_ENDOFNAMES,
    RPL_EXCEPTLIST,
    RPL_INVEXLIST,
    RPL_NAMREPLY,
    RPL_NOTOPIC,
    RPL_TOPIC,
    RPL_TOPICWHOTIME,
)
from greenchat.server import metadata
from greenchat.server.caps import NO_IMPLICIT_NAMES
from greenchat.server.commands import history, users
from greenchat.server.commands.lookup import channel_or_403, user_or_401
from greenchat.server.commands.table import caught_up, command
from greenchat.server.events import ChannelModeChanged, Joined, Parted, TopicSet
from greenchat.server.read_markers import CAPABILITY as READ_MARKER
from greenchat.server.welcome import (
    CHANNEL_MODES,
    KEY_MODES,
    KEYLEN,
    LIMIT_MODES,
    LIST_MODES,
    MAX_MODE_PARAMS,
    PREFIX_MODES,
)

if TYPE_CHECKING:
    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session
    from greenchat.server.user import User

# Room for ":<server> 353 <nick> = <channel> :" and the CRLF within 512 bytes.
_NAMES_LINE_BUDGET = 510


@command(
    "JOIN",
    min_params=1,
    help=(
        "JOIN <channel>[,<channel>...] [<key>[,<key>...]]\n"
        "Joins channels, creating those that do not exist. JOIN 0 leaves every "
        "channel."
    ),
)
def join(server: ChatServer, conn: Session, msg: Message) -> None:
    """``JOIN #a,#b key1,key2``: keys go with channels by position."""
    if msg.params[0] == "0":
        for channel in list(conn.user.channels.values()):
            server.hub.apply(Parted(conn.user.nick, channel.name, "Left all channels"))
        return
    keys = msg.params[1].split(",") if len(msg.params) > 1 else []
    for index, name in enumerate(msg.params[0].split(",")):
        if not name:
            continue
        if not valid_channel(name, server.config.channellen):
            _refuse_name(server, conn, name)
            continue
        existing = server.hub.get_channel(name)
        if existing is not None and conn.user in existing.members:
            continue  # already a member: nothing to do, as on other servers
        if len(conn.user.channels) >= server.config.max_channels:
            conn.numeric(ERR_TOOMANYCHANNELS, name, "You have joined too many channels")
            continue
        key = keys[index] if index < len(keys) else ""
        if existing is not None and (refusal := _refusal(server, conn, existing, key)):
            conn.numeric(refusal, existing.name, refusal_text(refusal))
            continue
        try:  # on a network, checked again at its turn (a +l channel may fill up first)
            channel = server.hub.apply(Joined(conn.user.nick, name), {"key": key} if key else None)
        except Refused as refused:
            conn.numeric(refused.numeric, *refused.params)
            continue
        if channel is None:
            continue
        server.channel_registry.joined(conn.user, channel)  # ChanServ's +o/+v, before NAMES
        if conn.has_cap(READ_MARKER):  # the spec: after the JOIN, before the end of NAMES
            server.read_markers.send(conn, channel.name)
        if channel.topic:
            send_topic(server, conn, channel)
        if not conn.has_cap(NO_IMPLICIT_NAMES):
            send_names(server, conn, channel)
        metadata.joined(server, conn, channel)
        history.autoreplay(server, conn, channel)


def _refusal(server: ChatServer, conn: Session, channel: Channel, key: str) -> str | None:
    """Why ``conn`` may not join ``channel``, or None. On a network node a refusal is
    looked at again once the node caught up: the key or the ban may have gone a
    moment ago on another node."""
    refusal = _refused_here(server, conn, channel, key)
    if refusal is None or not caught_up(conn):
        return refusal
    if server.hub.get_channel(channel.name) is not channel:
        return None  # it emptied meanwhile: the JOIN makes it anew
    return _refused_here(server, conn, channel, key)


def _refused_here(server: ChatServer, conn: Session, channel: Channel, key: str) -> str | None:
    refusal = join_refusal(conn.user, channel, key)
    # A registered channel's founder and access-list ops pass (Ergo).
    if refusal is None or server.channel_registry.passes(conn.user, channel):
        return None
    return refusal


def _refuse_name(server: ChatServer, conn: Session, name: str) -> None:
    """Why ``name`` cannot be a channel: 403 without ``#``, else 479 (as Ergo, InspIRCd)."""
    if not is_channel_name(name):
        conn.numeric(ERR_NOSUCHCHANNEL, name, "No such channel (channel names start with #)")
    elif len(name) > server.config.channellen:
        conn.numeric(
            ERR_BADCHANNAME, name, f"Illegal channel name (longer than {server.config.channellen})"
        )
    else:
        conn.numeric(ERR_BADCHANNAME, name, "Illegal channel name")


_MODE_OF = {
    ERR_CHANNELISFULL: "l",
    ERR_BADCHANNELKEY: "k",
    ERR_INVITEONLYCHAN: "i",
    ERR_BANNEDFROMCHAN: "b",
}


def refusal_text(numeric: str) -> str:
    """The text of a join refusal: ``Cannot join channel (+l)``."""
    return f"Cannot join channel (+{_MODE_OF[numeric]})"


def join_refusal(user: User, channel: Channel, key: str) -> str | None:
    """The numeric refusing ``user`` entry to ``channel``, or None to let it in.

    Checked in Ergo's order: +l, +k, +i, then bans. An INVITE lets one past +l, +i
    and bans (not past +k); a +I entry past +i, a +e entry past bans.
    """
    invited = user in channel.invited
    if channel.limit and len(channel.members) >= channel.limit and not invited:
        return ERR_CHANNELISFULL
    if channel.join_key and not hmac.compare_digest(key.encode(), channel.join_key.encode()):
        return ERR_BADCHANNELKEY
    if "i" in channel.modes and not invited and not channel.is_invex(user):
        return ERR_INVITEONLYCHAN
    if not invited and channel.is_banned(user):
        return ERR_BANNEDFROMCHAN
    return None


@command(
    "PART",
    min_params=1,
    help=("PART <channel>[,<channel>...] [<reason>]\nLeaves channels."),
)
def part(server: ChatServer, conn: Session, msg: Message) -> None:
    reason = msg.params[1] if len(msg.params) > 1 else ""
    for name in msg.params[0].split(","):
        channel = channel_or_403(server, conn, name)
        if channel is None:
            continue
        if conn.user not in channel.members:
            conn.numeric(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        else:
            server.hub.apply(Parted(conn.user.nick, channel.name, reason))


@command(
    "NAMES",
    paged=True,
    fresh=True,
    help=(
        "NAMES <channel>[,<channel>...]\n"
        "Lists a channel's members, with @ for operators and + for voiced "
        "members."
    ),
)
def names(server: ChatServer, conn: Session, msg: Message) -> Iterator[None]:
    if not msg.params:
        conn.numeric(RPL_ENDOFNAMES, "*", "End of /NAMES list")
        return
    for name in msg.params[0].split(","):
        channel = server.hub.get_channel(name)
        if channel is None or not visible_to(conn, channel):
            conn.numeric(RPL_ENDOFNAMES, name, "End of /NAMES list")
        else:
            yield from names_lines(server, conn, channel)


def visible_to(conn: Session, channel: Channel) -> bool:
    """A secret (+s) channel does not exist for non-members in NAMES and LIST."""
    return "s" not in channel.modes or conn.user in channel.members


def channel_symbol(channel: Channel) -> str:
    """353's channel type: '@' secret, '*' private, '=' public."""
    if "s" in channel.modes:
        return "@"
    return "*" if "p" in channel.modes else "="


def send_names(server: ChatServer, conn: Session, channel: Channel) -> None:
    """The whole NAMES reply at once (after a JOIN: the reply to NAMES is paged)."""
    for _ in names_lines(server, conn, channel):
        pass


def names_lines(server: ChatServer, conn: Session, channel: Channel) -> Iterator[None]:
    """353 lines packed up to the line limit, then 366; yields after each 353."""
    symbol = channel_symbol(channel)
    head = f":{server.config.name} {RPL_NAMREPLY} {conn.target} {symbol} {channel.name} :"
    budget = _NAMES_LINE_BUDGET - len(head.encode())
    batch: list[str] = []
    used = 0
    multi_prefix = conn.has_cap("multi-prefix")
    userhost = conn.has_cap("userhost-in-names")
    # Outsiders do not see invisible (+i) members, as in WHO (operators do).
    hide_invisible = conn.user not in channel.members and not users.is_oper(conn.user)
    # A copy: the reply may be paced over several loop turns while members come and go.
    for member, status in list(channel.members.items()):  # O(members): keep the loop lean
        if hide_invisible and "i" in member.modes:
            continue
        entry = member.prefix if userhost else member.nick
        if status:
            entry = channel.prefixes(member, multi_prefix) + entry
        if batch and used + len(entry) + 1 > budget:
            conn.numeric(RPL_NAMREPLY, symbol, channel.name, " ".join(batch))
            batch, used = [], 0
            yield
        batch.append(entry)
        used += len(entry) + 1
    if batch:
        conn.numeric(RPL_NAMREPLY, symbol, channel.name, " ".join(batch))
    conn.numeric(RPL_ENDOFNAMES, channel.name, "End of /NAMES list")


def send_topic(server: ChatServer, conn: Session, channel: Channel) -> None:
    if not channel.topic:
        conn.numeric(RPL_NOTOPIC, channel.name, "No topic is set")
        return
    conn.numeric(RPL_TOPIC, channel.name, channel.topic)
    when = str(channel.topic_set_at)
    conn.numeric(RPL_TOPICWHOTIME, channel.name, channel.topic_setter, when, trailing=False)


@command(
    "TOPIC",
    min_params=1,
    fresh=True,
    help=(
        "TOPIC <channel> [<topic>]\n"
        "Shows a channel's topic, or sets it (with +t, operators only). An empty "
        "topic clears it."
    ),
)
def topic(server: ChatServer, conn: Session, msg: Message) -> None:
    channel = channel_or_403(server, conn, msg.params[0])
    if channel is None:
        return
    if len(msg.params) == 1:
        if "s" in channel.modes and conn.user not in channel.members:  # no peeking into +s
            conn.numeric(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        else:
            send_topic(server, conn, channel)
        return
    if conn.user not in channel.members:
        conn.numeric(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
    elif "t" in channel.modes and not channel.is_op(conn.user):
        conn.numeric(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
    else:
        text = truncate_utf8(msg.params[1], server.config.topiclen)
        server.hub.apply(TopicSet(conn.user.nick, channel.name, text))


@command(
    "MODE",
    min_params=1,
    fresh=True,
    help=(
        "MODE <channel> [<modes> [<parameters>]] | MODE <nick> [<modes>]\n"
        "Shows or changes channel modes (+beIiklmnopstv, ISUPPORT describes them)"
        " or your own user modes (+Biw)."
    ),
)
def mode(server: ChatServer, conn: Session, msg: Message) -> None:
    if is_channel_name(msg.params[0]):
        channel_mode(server, conn, msg)
    else:
        users.user_mode(server, conn, msg)


@dataclass(slots=True)
class ModeChange:
    """One requested change: ``+k secret``, ``-o bob``; ``arg`` None when there is none."""

    sign: str
    char: str
    arg: str | None = None

    @property
    def is_list_query(self) -> bool:
        return self.char in LIST_MODES and self.arg is None


def channel_mode(server: ChatServer, conn: Session, msg: Message) -> None:
    channel = channel_or_403(server, conn, msg.params[0])
    if channel is None:
        return
    if len(msg.params) == 1:
        send_channel_modes(conn, channel)
        return
    changes = parse_mode_changes(conn, msg.params[1], msg.params[2:])
    for char in dict.fromkeys(change.char for change in changes if change.is_list_query):
        send_mask_list(conn, channel, char)
    changes = [change for change in changes if not change.is_list_query]
    if not changes:
        return
    if not channel.is_op(conn.user):
        conn.numeric(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    # Checked one after another against a draft, so each sees the ones before it
    # (+b then -b of one mask); the hub then applies what passed, as one event.
    draft = _Draft(channel)
    applied = [done for change in changes if (done := apply_change(server, conn, draft, change))]
    if applied:
        deltas = tuple((c.sign, c.char, c.arg or "") for c in applied)
        server.hub.apply(ChannelModeChanged(conn.user.nick, channel.name, deltas))


def send_channel_modes(conn: Session, channel: Channel) -> None:
    """324 (the key only for members, as on Ergo) and 329."""
    modes = channel.mode_string(show_key=conn.user in channel.members)
    conn.numeric(RPL_CHANNELMODEIS, channel.name, *modes, trailing=False)
    conn.numeric(RPL_CREATIONTIME, channel.name, str(channel.created), trailing=False)


# Each list's name, and its entry and end numerics.
_LISTS = {
    "b": ("ban", RPL_BANLIST, RPL_ENDOFBANLIST),
    "e": ("exception", RPL_EXCEPTLIST, RPL_ENDOFEXCEPTLIST),
    "I": ("invite exception", RPL_INVEXLIST, RPL_ENDOFINVEXLIST),
}


def send_mask_list(conn: Session, channel: Channel, char: str) -> None:
    """``MODE #c b`` (anyone may look, as on Ergo and InspIRCd), ``e`` or ``I`` (its
    operators only: the exceptions say whom the ops trust)."""
    if char != "b" and not channel.is_op(conn.user):
        conn.numeric(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    name, entry, end = _LISTS[char]
    for mask, setter, set_at in channel.mask_list(char).values():
        conn.numeric(entry, channel.name, mask, setter, str(set_at), trailing=False)
    conn.numeric(end, channel.name, f"End of channel {name} list")


def parse_mode_changes(conn: Session, modestring: str, params: tuple[str, ...]) -> list[ModeChange]:
    """Split a modestring and its parameters into changes (472 for unknown letters).

    A type B mode (k) takes a parameter both ways, type C (l) only when set,
    a list mode (b) when there is one left (without one it is a query). At
    most MAX_MODE_PARAMS changes with a parameter are kept (ISUPPORT MODES);
    a change missing its parameter is skipped, as other servers do.
    """
    remaining = list(params)
    changes: list[ModeChange] = []
    unknown: set[str] = set()  # one 472 per letter, however often it is repeated
    with_param = 0
    sign = "+"
    for char in modestring:
        if char in "+-":
            sign = char
            continue
        if char in CHANNEL_MODES:
            changes.append(ModeChange(sign, char))
            continue
        if char not in _PARAM_MODES:
            if char not in unknown:
                unknown.add(char)
                conn.numeric(ERR_UNKNOWNMODE, char, "is unknown mode char to me")
            continue
        needs = _needs_param(sign, char)
        if needs is False or (needs is None and not remaining):
            changes.append(ModeChange(sign, char))
        elif remaining and with_param < MAX_MODE_PARAMS:
            changes.append(ModeChange(sign, char, remaining.pop(0)))
            with_param += 1
        elif remaining:
            remaining.pop(0)  # over the MODES limit: ignored
    return changes


_PARAM_MODES = LIST_MODES + KEY_MODES + LIMIT_MODES + PREFIX_MODES


def _needs_param(sign: str, char: str) -> bool | None:
    """True: required; False: takes none; None: optional (b lists, -k takes a key if given)."""
    if char in LIMIT_MODES:
        return sign == "+"
    if char in LIST_MODES or (char in KEY_MODES and sign == "-"):
        return None
    return True


class _Draft:
    """A channel's modes as a MODE command's changes so far would leave them.

    The checks below read and update it as they would the channel; the
    channel itself changes only when the hub applies the event. Member
    prefixes are copied on first use.
    """

    __slots__ = ("join_key", "limit", "lists", "members", "modes", "name")

    def __init__(self, channel: Channel) -> None:
        self.name = channel.name
        self.modes = set(channel.modes)
        self.join_key = channel.join_key
        self.limit = channel.limit
        self.lists = {char: dict(channel.mask_list(char)) for char in LIST_MODES}
        self.members = _CopiedPrefixes(channel.members)

    def mask_list(self, char: str) -> dict[str, tuple[str, str, int]]:
        return self.lists[char]


class _CopiedPrefixes(dict):
    """``members.get(user)``: a copy of that member's prefix modes (None if not one)."""

    def __init__(self, members: dict) -> None:
        super().__init__()
        self._members = members

    def get(self, user, default=None):  # type: ignore[override]
        if user not in self and user in self._members:
            self[user] = set(self._members[user])
        return super().get(user, default)


def apply_change(
    server: ChatServer, conn: Session, channel: _Draft, change: ModeChange
) -> ModeChange | None:
    """Check one change against the draft and make it there; return it as others
    should see it, or None if it changes nothing (or is refused)."""
    char = change.char
    if char in CHANNEL_MODES:
        return _apply_flag(channel, change)
    if char in KEY_MODES:
        return _apply_key(conn, channel, change)
    if char in LIMIT_MODES:
        return _apply_limit(conn, channel, change)
    if char in LIST_MODES:
        return _apply_list_entry(server, conn, channel, change)
    return _apply_prefix(server, conn, channel, change)


def _apply_flag(channel: _Draft, change: ModeChange) -> ModeChange | None:
    on = change.sign == "+"
    if on == (change.char in channel.modes):
        return None
    (channel.modes.add if on else channel.modes.discard)(change.char)
    return change


def _apply_key(conn: Session, channel: _Draft, change: ModeChange) -> ModeChange | None:
    if change.sign == "-":
        if not channel.join_key:
            return None
        channel.join_key = ""
        return ModeChange("-", change.char, "*")  # type B: always a parameter
    key = change.arg or ""
    if not _valid_key(key):
        text = f"Invalid key: 1 to {KEYLEN} characters, no spaces or commas"
        _invalid_param(conn, channel, change, text)
    elif key != channel.join_key:
        channel.join_key = key
        return change
    return None


def _valid_key(key: str) -> bool:
    return (
        0 < len(key) <= KEYLEN
        and not key.startswith(":")
        and "," not in key
        and all(ord(char) > 0x20 for char in key)
    )


def _apply_limit(conn: Session, channel: _Draft, change: ModeChange) -> ModeChange | None:
    if change.sign == "-":
        if not channel.limit:
            return None
        channel.limit = 0
        return change
    arg = change.arg or ""
    if not _LIMIT.fullmatch(arg) or not 0 < int(arg) <= _MAX_LIMIT:
        _invalid_param(conn, channel, change, "Invalid limit: a number of users above 0")
        return None
    limit = int(arg)
    if limit == channel.limit:
        return None
    channel.limit = limit
    return ModeChange("+", change.char, str(limit))  # '007' is shown as '7'


_LIMIT = re.compile(r"[0-9]{1,10}")  # ASCII digits only: int() also takes other scripts'
_MAX_LIMIT = 1_000_000_000


def _apply_list_entry(
    server: ChatServer, conn: Session, channel: _Draft, change: ModeChange
) -> ModeChange | None:
    """+b, +e or +I with a mask (extended bans too: masks.py)."""
    arg = change.arg or ""
    if not arg or arg.startswith(":") or any(ord(char) <= 0x20 for char in arg):
        _invalid_param(conn, channel, change, "Invalid mask")
        return None
    mask = normalize_ban(arg)
    folded = casefold(mask)
    entries = channel.mask_list(change.char)
    if change.sign == "-":
        entry = entries.pop(folded, None)
        return None if entry is None else ModeChange("-", change.char, entry[0])
    if folded in entries:
        return None
    if len(entries) >= server.config.max_list_entries:
        text = f"Channel {_LISTS[change.char][0]} list is full"
        conn.numeric(ERR_BANLISTFULL, channel.name, change.char, text)
        return None
    entries[folded] = (mask, conn.user.prefix, int(time.time()))
    return ModeChange("+", change.char, mask)


def _apply_prefix(
    server: ChatServer, conn: Session, channel: _Draft, change: ModeChange
) -> ModeChange | None:
    target = user_or_401(server, conn, change.arg or "")
    if target is None:
        return None
    modes = channel.members.get(target)
    if modes is None:
        conn.numeric(ERR_USERNOTINCHANNEL, target.nick, channel.name, "They aren't on that channel")
        return None
    on = change.sign == "+"
    if on == (change.char in modes):
        return None
    (modes.add if on else modes.discard)(change.char)
    return ModeChange(change.sign, change.char, target.nick)


def _invalid_param(conn: Session, channel: _Draft, change: ModeChange, text: str) -> None:
    """696 ERR_INVALIDMODEPARAM: <target> <mode char> <parameter> :<description>."""
    conn.numeric(ERR_INVALIDMODEPARAM, channel.name, change.char, change.arg or "*", text)
