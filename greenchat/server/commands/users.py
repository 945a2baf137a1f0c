"""User commands: user modes, AWAY, SETNAME, ISON, USERHOST, WHO(X), WHOIS, WHOWAS.

Replies follow modern.ircdocs.horse and Ergo's choices: ``+i`` users are
hidden from WHO masks unless the asker shares a channel with them (or is
an operator), channel lists in WHOIS hide secret channels (and, for ``+i``
users, every channel) the asker is not on, and IPs are shown only to the
user themselves and to operators.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from email.utils import formatdate
from typing import TYPE_CHECKING

from greenchat.protocol.casemap import is_channel_name
from greenchat.protocol.masks import match_mask, normalize_mask
from greenchat.protocol.message import Message, truncate_utf8
from greenchat.protocol.metadata import CAPABILITY as METADATA
from greenchat.protocol.metadata import VISIBLE
from greenchat.protocol.numerics import (
    ERR_NOSUCHNICK,
    ERR_NOTREGISTERED,
    ERR_UMODEUNKNOWNFLAG,
    ERR_USERSDONTMATCH,
    ERR_WASNOSUCHNICK,
    RPL_AWAY,
    RPL_ENDOFWHO,
    RPL_ENDOFWHOIS,
    RPL_ENDOFWHOWAS,
    RPL_ISON,
    RPL_NOWAWAY,
    RPL_UMODEIS,
    RPL_UNAWAY,
    RPL_USERHOST,
    RPL_WHOISACCOUNT,
    RPL_WHOISBOT,
    RPL_WHOISCHANNELS,
    RPL_WHOISHOST,
    RPL_WHOISIDLE,
    RPL_WHOISKEYVALUE,
    RPL_WHOISMODES,
    RPL_WHOISOPERATOR,
    RPL_WHOISSERVER,
    RPL_WHOISUSER,
    RPL_WHOREPLY,
    RPL_WHOSPCRPL,
    RPL_WHOWASUSER,
)
from greenchat.server.caps import PRE_AWAY
from greenchat.server.commands.lookup import user_or_401
from greenchat.server.commands.registration import REALNAMELEN
from greenchat.server.commands.table import command
from greenchat.server.events import AwayChanged, RealnameChanged, UserModeChanged
from greenchat.server.user import BOT_MODE
from greenchat.server.welcome import USER_MODES

if TYPE_CHECKING:
    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session
    from greenchat.server.user import User

# Longest real name SETNAME accepts, in bytes (Ergo's default realnamelen).
# What WHOIS and WHOWAS show as this server's description (312).
SERVER_INFO = "greenchat IRC server"
# Room left for the last parameter of a numeric that lists many items
# (319, ISON, USERHOST) once the prefix, code and nicks are added.
LIST_BUDGET = 400
USERHOST_MAX = 10  # nicks answered per USERHOST, as on Ergo
WHOWAS_MAX = 20  # entries per nick when the client asks for "all"
# WHOX fields in the order they are sent, whatever order they were asked in.
WHOX_FIELDS = "tcuihsnfdlaor"
HIDDEN_IP = "255.255.255.255"


def is_oper(user: User) -> bool:
    return "o" in user.modes


def pack(items: Iterable[str], sep: str = " ", budget: int = LIST_BUDGET) -> list[str]:
    """Join ``items`` into as few texts as fit ``budget`` UTF-8 bytes each."""
    lines: list[str] = []
    current = ""
    for item in items:
        if current and len(current.encode()) + len(sep) + len(item.encode()) > budget:
            lines.append(current)
            current = item
        else:
            current = f"{current}{sep}{item}" if current else item
    if current:
        lines.append(current)
    return lines


# -- MODE <own nick> ------------------------------------------------------------


def user_mode(server: ChatServer, conn: Session, msg: Message) -> None:
    target = server.hub.nick_owner(msg.params[0])
    if target is None:
        conn.numeric(ERR_NOSUCHNICK, msg.params[0], "No such nick/channel")
        return
    if target is not conn.user:
        conn.numeric(ERR_USERSDONTMATCH, "Can't change mode for other users")
        return
    if len(msg.params) == 1:
        conn.numeric(RPL_UMODEIS, "+" + "".join(sorted(conn.user.modes)), trailing=False)
        return
    changes: list[tuple[str, str]] = []
    modes = conn.user.modes  # as the changes so far leave them
    unknown = False
    sign = "+"
    for char in msg.params[1]:
        if char in "+-":
            sign = char
        elif char == "r":
            pass  # logged in to an account: set by the server only, as on Ergo
        elif char in USER_MODES:
            on = sign == "+"
            # +o comes only with OPER; asking for it is ignored, as on Ergo.
            if on != (char in modes) and not (on and char == "o"):
                modes = modes | {char} if on else modes - {char}
                changes.append((sign, char))
        else:
            unknown = True
    if unknown:  # one reply however many unknown letters
        conn.numeric(ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
    if changes:
        server.hub.apply(UserModeChanged(conn.user.nick, tuple(changes)))


# -- AWAY, SETNAME ----------------------------------------------------------------


@command(
    "AWAY",
    before_registration=True,
    help=(
        "AWAY [<message>]\nMarks you away with a message; without one, back. With "
        "draft/pre-away also before registration."
    ),
)
def away(server: ChatServer, conn: Session, msg: Message) -> None:
    text = truncate_utf8(msg.params[0], server.config.awaylen) if msg.params else ""
    if not conn.user.registered:
        if not conn.has_cap(PRE_AWAY):
            conn.numeric(ERR_NOTREGISTERED, "You have not registered")
            return
        conn.pre_away = text  # the network hears it once registered (registration.py)
    elif text != conn.user.away:  # replied once applied: on a network, confirmed
        server.hub.apply(AwayChanged(conn.user.nick, text))
    if text:
        conn.numeric(RPL_NOWAWAY, "You have been marked as being away")
    else:
        conn.numeric(RPL_UNAWAY, "You are no longer marked as being away")


@command(
    "SETNAME",
    min_params=1,
    help=("SETNAME <realname>\nChanges your real name."),
)
def setname(server: ChatServer, conn: Session, msg: Message) -> None:
    realname = msg.params[0]
    if not realname.strip() or len(realname.encode()) > REALNAMELEN:
        fail = ("SETNAME", "INVALID_REALNAME", "Realname is not valid")
        conn.send(Message("FAIL", fail, server.config.name))
        return
    relay = server.hub.apply(RealnameChanged(conn.user.nick, realname))
    # The spec: a client that did not enable setname gets no reply, as before.
    if conn.has_cap("setname"):
        conn.send_relay(relay)


# -- ISON, USERHOST -------------------------------------------------------------


def _online(server: ChatServer, nick: str) -> User | None:
    user = server.hub.nick_owner(nick)
    return user if user is not None and user.registered else None


@command(
    "ISON",
    min_params=1,
    fresh=True,
    help=("ISON <nick> [<nick>...]\nTells which of the nicks are online."),
)
def ison(server: ChatServer, conn: Session, msg: Message) -> None:
    # Clients send the nicks as several parameters or as one trailing list.
    present: dict[str, None] = {}
    for nick in " ".join(msg.params).split():
        user = _online(server, nick)
        if user is not None:
            present[user.nick] = None
    lines = pack(present)
    conn.numeric(RPL_ISON, lines[0] if lines else "")


@command(
    "USERHOST",
    min_params=1,
    fresh=True,
    help=("USERHOST <nick> [<nick>...]\nShows the user@host of up to five nicks."),
)
def userhost(server: ChatServer, conn: Session, msg: Message) -> None:
    replies: dict[User, str] = {}
    for nick in " ".join(msg.params).split()[:USERHOST_MAX]:
        user = _online(server, nick)
        if user is not None and user not in replies:
            oper = "*" if is_oper(user) else ""
            here = "-" if user.away else "+"
            replies[user] = f"{user.nick}{oper}={here}{user.username}@{user.host}"
    for line in pack(replies.values()) or [""]:
        conn.numeric(RPL_USERHOST, line)


# -- WHO and WHOX ---------------------------------------------------------------


def _shares_channel(user: User, other: User) -> bool:
    return not user.channels.keys().isdisjoint(other.channels.keys())


def _who_channel(conn: Session, channel: Channel) -> Iterator[User]:
    """The members of ``channel`` ``conn`` may see: all of them if it is a member."""
    joined = conn.user in channel.members
    privileged = joined or is_oper(conn.user)
    if "s" in channel.modes and not privileged:
        return
    for member in list(channel.members):
        if privileged or "i" not in member.modes:
            yield member


def _who_mask(server: ChatServer, conn: Session, mask: str) -> Iterator[User]:
    """Users matching ``mask``: an exact nick, or a wildcard nick!user@host mask."""
    if not any(ch in mask for ch in "*?!@.") and mask != "0":
        user = _online(server, mask)  # an exact nick is found even when +i
        if user is not None:
            yield user
        return
    full = normalize_mask("*" if mask == "0" else mask)
    sees_all = is_oper(conn.user)
    for user in list(server.hub.nicks.values()):
        if not user.registered or not match_mask(full, user.prefix):
            continue
        if (
            sees_all
            or user is conn.user
            or "i" not in user.modes
            or _shares_channel(conn.user, user)
        ):
            yield user


def _who_flags(conn: Session, channel: Channel | None, target: User) -> str:
    flags = ("G" if target.away else "H") + ("*" if is_oper(target) else "")
    if BOT_MODE in target.modes:
        flags += BOT_MODE
    if channel is not None:
        flags += channel.prefixes(target, conn.has_cap("multi-prefix"))
    return flags


def _parse_who_options(option: str) -> tuple[str, str | None, str]:
    """``o%tcnf,42`` -> (filter letters, WHOX fields or None, token)."""
    letters, percent, whox = option.partition("%")
    if not percent:
        return letters, None, "0"
    fields, _, token = whox.partition(",")
    return letters, fields.lower(), token or "0"


@command(
    "WHO",
    min_params=1,
    paged=True,
    fresh=True,
    help=(
        "WHO <mask or channel> [%<fields>[,<token>]]\n"
        "Lists users matching a mask, or a channel's members; WHOX fields with %."
    ),
)
def who(server: ChatServer, conn: Session, msg: Message) -> Iterator[None]:
    mask = msg.params[0]
    letters, fields, token = _parse_who_options(msg.params[1] if len(msg.params) > 1 else "")
    channel = server.hub.get_channel(mask) if is_channel_name(mask) else None
    if channel is not None:
        targets: Iterable[User] = _who_channel(conn, channel)
    elif is_channel_name(mask):
        targets = ()
    else:
        targets = _who_mask(server, conn, mask)
    for target in targets:
        if "o" in letters and not is_oper(target):
            continue  # RFC 1459: "WHO <mask> o" lists operators only
        if fields is None:
            _who_reply(server, conn, channel, target)
        else:
            _whox_reply(server, conn, channel, target, fields, token)
        yield  # a page at a time (paging.py)
    conn.numeric(RPL_ENDOFWHO, mask, "End of WHO list")


def _who_reply(server: ChatServer, conn: Session, channel: Channel | None, target: User) -> None:
    conn.numeric(
        RPL_WHOREPLY,
        channel.name if channel else "*",
        target.username,
        target.host,
        server.server_name_of(target),
        target.nick,
        _who_flags(conn, channel, target),
        f"0 {target.realname}",
    )


def _whox_reply(
    server: ChatServer,
    conn: Session,
    channel: Channel | None,
    target: User,
    fields: str,
    token: str,
) -> None:
    values = {
        "t": lambda: token,
        "c": lambda: channel.name if channel else "*",
        "u": lambda: target.username,
        "i": lambda: target.ip if target is conn.user or is_oper(conn.user) else HIDDEN_IP,
        "h": lambda: target.host,
        "s": lambda: server.server_name_of(target),
        "n": lambda: target.nick,
        "f": lambda: _who_flags(conn, channel, target),
        "d": lambda: "0",  # hop count: one server
        "l": lambda: str(_idle_seconds(target)),
        "a": lambda: target.account or "0",
        "o": lambda: "*",  # channel op level: not implemented, as on Ergo
        "r": lambda: target.realname,
    }
    params = [values[f]() for f in WHOX_FIELDS if f in fields]
    conn.numeric(RPL_WHOSPCRPL, *params, trailing="r" in fields)


def _idle_seconds(user: User) -> int:
    return max(0, int(time.monotonic() - user.last_message))


# -- WHOIS ----------------------------------------------------------------------


@command(
    "WHOIS",
    min_params=1,
    fresh=True,
    help=("WHOIS <nick>\nShows who a user is: name, host, channels, server, idle time, account."),
)
def whois(server: ChatServer, conn: Session, msg: Message) -> None:
    # WHOIS [<server>] <nick>[,<nick>...]: the server part needs no routing here.
    masks = msg.params[1] if len(msg.params) > 1 else msg.params[0]
    nicks = [n for n in masks.split(",") if n]
    # Like Ergo: operators may ask about several nicks at once, others one.
    for nick in nicks if is_oper(conn.user) else nicks[:1]:
        user = user_or_401(server, conn, nick)
        if user is not None:
            send_whois(server, conn, user)
    conn.numeric(RPL_ENDOFWHOIS, masks, "End of /WHOIS list")


def send_whois(server: ChatServer, conn: Session, user: User) -> None:
    nick = user.nick
    conn.numeric(RPL_WHOISUSER, nick, user.username, user.host, "*", user.realname)
    for line in pack(_whois_channels(conn, user)):
        conn.numeric(RPL_WHOISCHANNELS, nick, line)
    conn.numeric(RPL_WHOISSERVER, nick, server.server_name_of(user), SERVER_INFO)
    if is_oper(user):
        conn.numeric(RPL_WHOISOPERATOR, nick, "is an IRC operator")
    if BOT_MODE in user.modes:
        conn.numeric(RPL_WHOISBOT, nick, f"is a bot on {server.config.network}")
    if user is conn.user or is_oper(conn.user):
        conn.numeric(RPL_WHOISHOST, nick, f"is connecting from {user.username}@{user.ip} {user.ip}")
        conn.numeric(RPL_WHOISMODES, nick, "is using modes +" + "".join(sorted(user.modes)))
    if user.account:
        conn.numeric(RPL_WHOISACCOUNT, nick, user.account, "is logged in as")
    if user.away:
        conn.numeric(RPL_AWAY, nick, user.away)
    if conn.has_cap(METADATA):  # its keys, to a client that speaks metadata (as Ergo)
        for key, value in list(user.metadata.items()):
            conn.numeric(RPL_WHOISKEYVALUE, nick, key, VISIBLE, value)
    idle = str(_idle_seconds(user))
    conn.numeric(RPL_WHOISIDLE, nick, idle, str(user.signon), "seconds idle, signon time")


def _whois_channels(conn: Session, user: User) -> Iterator[str]:
    """``user``'s channels with prefixes, minus those hidden from ``conn``."""
    multi_prefix = conn.has_cap("multi-prefix")
    privileged = user is conn.user or is_oper(conn.user)
    for channel in list(user.channels.values()):
        hidden = "s" in channel.modes or "i" in user.modes
        if hidden and not privileged and conn.user not in channel.members:
            continue
        yield channel.prefixes(user, multi_prefix) + channel.name


# -- WHOWAS ---------------------------------------------------------------------


@command(
    "WHOWAS",
    min_params=1,
    fresh=True,
    help=("WHOWAS <nick> [<count>]\nShows who last used a nick that is gone."),
)
def whowas(server: ChatServer, conn: Session, msg: Message) -> None:
    count = _whowas_count(msg.params[1] if len(msg.params) > 1 else "")
    history = server.hub.presence.whowas
    for nick in [n for n in msg.params[0].split(",") if n][:USERHOST_MAX]:
        entries = history.find(nick, count)
        if not entries:
            conn.numeric(ERR_WASNOSUCHNICK, nick, "There was no such nickname")
        for entry in entries:
            conn.numeric(RPL_WHOWASUSER, entry.nick, entry.user, entry.host, "*", entry.realname)
            # In WHOWAS, 312's text is when the user left (modern.ircdocs.horse).
            gone_at = formatdate(entry.when, usegmt=True)
            conn.numeric(RPL_WHOISSERVER, entry.nick, server.config.name, gone_at)
        conn.numeric(RPL_ENDOFWHOWAS, nick, "End of WHOWAS")


def _whowas_count(text: str) -> int:
    """WHOWAS's count: a positive number caps the entries; anything else means "all"."""
    count = int(text) if text.isascii() and text.isdigit() else 0
    return min(count, WHOWAS_MAX) if count > 0 else WHOWAS_MAX
