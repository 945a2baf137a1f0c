"""What a line typed into greenchat-join means: slash commands, completion, nick defaults.

Pure functions: :func:`parse_input` turns a typed line into an action (a small
frozen dataclass) and the terminal UI carries it out on the client. Keeping
the two apart lets every command's parsing be unit-tested without a server,
a terminal or gevent.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from greenchat.client.history import FETCH_LINES, MAX_LINES
from greenchat.protocol.casemap import casefold, is_channel_name
from greenchat.protocol.message import InvalidMessage, Message, parse

__all__ = [
    "COMMANDS",
    "Act",
    "Action",
    "FetchHistory",
    "Join",
    "Part",
    "Quit",
    "Say",
    "Send",
    "Show",
    "Switch",
    "complete",
    "default_nick",
    "help_text",
    "parse_input",
    "sanitize_nick",
    "split_text",
]

DEFAULT_QUIT = "greenchat-join"
NICK_MAX = 16  # short enough for every server's NICKLEN we are likely to meet

# name -> (arguments, what it does); the order is the order of /help.
COMMANDS: dict[str, tuple[str, str]] = {
    "join": ("#channel [key]", "join a channel and make it the current target"),
    "part": ("[#channel] [reason]", "leave a channel (default: the current one)"),
    "msg": ("nick|#channel [text]", "send a message and make that the current target"),
    "me": ("text", "an action: shows as '* you text'"),
    "nick": ("newnick", "change your nick"),
    "names": ("[#channel]", "who is in a channel"),
    "topic": ("[#channel] [text]", "show or set a channel's topic"),
    "who": ("[mask]", "list users matching a mask (default: the current channel)"),
    "whois": ("nick", "details about a user"),
    "away": ("[message]", "mark yourself away; without a message: back"),
    "list": ("[args]", "list channels"),
    "history": (
        "[N]",
        f"N older lines of the current target (default {FETCH_LINES}, max {MAX_LINES})",
    ),
    "raw": ("LINE", "send a raw IRC line, e.g. /raw MODE #lobby +t"),
    "quit": ("[reason]", "leave the server and exit (also Ctrl-C or Ctrl-D)"),
    "help": ("[command]", "this help"),
}


# -- actions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    """PRIVMSG ``text`` to ``target``; ``switch`` makes it the current target (/msg)."""

    target: str
    text: str
    switch: bool = False


@dataclass(frozen=True, slots=True)
class Act:
    """A CTCP ACTION (/me)."""

    target: str
    text: str


@dataclass(frozen=True, slots=True)
class Join:
    channel: str
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Part:
    channel: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Send:
    """A command with no client-side behaviour: just send it."""

    message: Message


@dataclass(frozen=True, slots=True)
class Switch:
    """Make ``target`` the current target without sending anything (/msg nick)."""

    target: str


@dataclass(frozen=True, slots=True)
class Quit:
    reason: str = DEFAULT_QUIT


@dataclass(frozen=True, slots=True)
class Show:
    """Text for the user only (help, usage errors); nothing is sent."""

    text: str
    error: bool = False


@dataclass(frozen=True, slots=True)
class FetchHistory:
    """/history: ``count`` lines of ``target`` from before the oldest one shown."""

    target: str
    count: int = FETCH_LINES


Action = Say | Act | Join | Part | Send | Switch | Quit | Show | FetchHistory


# -- parsing -------------------------------------------------------------------


def help_text(command: str | None = None) -> str:
    """All commands, or the usage of one."""
    if command and command.lower().lstrip("/") in COMMANDS:
        name = command.lower().lstrip("/")
        args, what = COMMANDS[name]
        return f"/{name} {args} — {what}"
    lines = ["commands (plain text goes to the current target; Tab completes):"]
    lines += [f"  /{name} {args}".ljust(34) + what for name, (args, what) in COMMANDS.items()]
    return "\n".join(lines)


def _usage(name: str) -> Show:
    return Show(f"usage: {help_text(name)}", error=True)


_NO_TARGET = Show("no current target: /join #channel or /msg nick text", error=True)


def parse_input(line: str, target: str | None) -> Action | None:
    """What the typed ``line`` asks for, given the current ``target``; None for blank input."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    if line.startswith("//") or not line.startswith("/"):
        text = line[1:] if line.startswith("//") else line  # "//x" says "/x"
        return Say(target, text) if target else _NO_TARGET
    name, _, rest = line[1:].partition(" ")
    name, rest = name.lower(), rest.strip()
    handler = _HANDLERS.get(name)
    if handler is None:
        return Show(f"unknown command /{name}\n{help_text()}", error=True)
    return handler(rest, target)


def _channel(name: str) -> str:
    """``lobby`` -> ``#lobby``: /join should not need the '#'."""
    return name if is_channel_name(name) else "#" + name


def _join(rest: str, target: str | None) -> Action:
    words = rest.split()
    if not words or len(words) > 2 or "," in words[0]:
        return _usage("join")
    return Join(_channel(words[0]), words[1] if len(words) > 1 else None)


def _part(rest: str, target: str | None) -> Action:
    first, _, reason = rest.partition(" ")
    if is_channel_name(first):
        return Part(first, reason.strip())
    if target is None or not is_channel_name(target):
        return _usage("part")
    return Part(target, rest)


def _msg(rest: str, target: str | None) -> Action:
    to, _, text = rest.partition(" ")
    if not to:
        return _usage("msg")
    return Say(to, text, switch=True) if text.strip() else Switch(to)


def _me(rest: str, target: str | None) -> Action:
    if not rest:
        return _usage("me")
    return Act(target, rest) if target else _NO_TARGET


def _nick(rest: str, target: str | None) -> Action:
    words = rest.split()
    return Send(Message("NICK", (words[0],))) if len(words) == 1 else _usage("nick")


def _current_channel(rest: str, target: str | None) -> tuple[str, ...]:
    """The argument if any, else the current target when it is a channel."""
    if rest:
        return (rest.split()[0],)
    return (target,) if target and is_channel_name(target) else ()


def _names(rest: str, target: str | None) -> Action:
    return Send(Message("NAMES", _current_channel(rest, target)))


def _who(rest: str, target: str | None) -> Action:
    mask = _current_channel(rest, target)
    return Send(Message("WHO", mask)) if mask else _usage("who")


def _topic(rest: str, target: str | None) -> Action:
    first, _, text = rest.partition(" ")
    if is_channel_name(first):
        return Send(Message("TOPIC", (first, text) if text else (first,)))
    if target is None or not is_channel_name(target):
        return _usage("topic")
    return Send(Message("TOPIC", (target, rest) if rest else (target,)))


def _whois(rest: str, target: str | None) -> Action:
    words = rest.split()
    return Send(Message("WHOIS", (words[0],))) if len(words) == 1 else _usage("whois")


def _away(rest: str, target: str | None) -> Action:
    return Send(Message("AWAY", (rest,) if rest else ()))


def _list(rest: str, target: str | None) -> Action:
    return Send(Message("LIST", tuple(rest.split())))


def _history(rest: str, target: str | None) -> Action:
    words = rest.split()
    if len(words) > 1 or (words and not re.fullmatch(r"0*[1-9][0-9]{0,8}", words[0])):
        return _usage("history")
    if target is None:
        return _NO_TARGET
    return FetchHistory(target, int(words[0])) if words else FetchHistory(target)


def _raw(rest: str, target: str | None) -> Action:
    try:
        return Send(parse(rest)) if rest else _usage("raw")
    except InvalidMessage:
        return _usage("raw")


def _quit(rest: str, target: str | None) -> Action:
    return Quit(rest or DEFAULT_QUIT)


def _help(rest: str, target: str | None) -> Action:
    return Show(help_text(rest or None))


_HANDLERS = {
    "join": _join,
    "j": _join,
    "part": _part,
    "leave": _part,
    "msg": _msg,
    "query": _msg,
    "me": _me,
    "nick": _nick,
    "names": _names,
    "topic": _topic,
    "who": _who,
    "whois": _whois,
    "away": _away,
    "list": _list,
    "history": _history,
    "raw": _raw,
    "quote": _raw,
    "quit": _quit,
    "exit": _quit,
    "help": _help,
}


def split_text(text: str, limit: int = 400) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` UTF-8 bytes, at spaces when possible.

    A server relays ``:nick!user@host PRIVMSG #channel :text`` within 512
    bytes and drops longer lines (417), so a long paste is sent as several.
    """
    pieces: list[str] = []
    while len(text.encode()) > limit:
        cut = len(text.encode()[:limit].decode("utf-8", "ignore"))
        space = text.rfind(" ", 0, cut)
        if space > cut // 2:
            cut = space
        pieces.append(text[:cut])
        text = text[cut:].lstrip(" ")
    return [*pieces, text] if text or not pieces else pieces


# -- completion ------------------------------------------------------------------


def complete(
    before_cursor: str, nicks: Iterable[str], channels: Iterable[str] = ()
) -> tuple[int, list[str]]:
    """Tab completion: ``(start, candidates)``, ``start`` the negative length to replace.

    The first word after a '/' completes command names; a word starting with '#'
    completes joined channels; any other word completes nicks of the current
    channel, with ": " appended at the start of the line (the IRC address form).
    """
    word = re.split(r"\s", before_cursor)[-1]
    first_word = len(word) == len(before_cursor)
    if first_word and word.startswith("/"):
        prefix = word[1:].lower()
        names = [f"/{name} " for name in COMMANDS if name.startswith(prefix)]
        return -len(word), names
    pool = channels if word.startswith("#") else nicks
    folded = casefold(word)
    found = sorted({n for n in pool if casefold(n).startswith(folded)}, key=casefold)
    if first_word and not word.startswith("#"):
        found = [f"{n}: " for n in found]
    return -len(word), found


# -- nicks -------------------------------------------------------------------------


def sanitize_nick(name: str) -> str:
    """``name`` reduced to a valid IRC nick ('' when nothing usable is left).

    Keeps the characters a nick may contain, drops leading digits and dashes
    (a nick cannot start with them) and cuts to :data:`NICK_MAX`.
    """
    kept = re.sub(r"[^A-Za-z0-9\[\]\\`_^{|}\-]", "", name)
    return kept.lstrip("0123456789-")[:NICK_MAX]


def default_nick(environ: Mapping[str, str], rng: random.Random | None = None) -> str:
    """The nick to use without ``--nick``: $USER (or $LOGNAME) made valid, else guestNNNN."""
    for variable in ("USER", "LOGNAME", "USERNAME"):
        nick = sanitize_nick(environ.get(variable, ""))
        if nick:
            return nick
    return f"guest{(rng or random).randrange(1000, 10000)}"
