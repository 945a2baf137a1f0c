"""How greenchat-join shows what happens: server lines and client events as display lines.

Pure functions only (no I/O, no terminal, no gevent), so every rule is unit-tested:

- a timestamp from the IRCv3 ``server-time`` tag in local time (HH:MM), or the
  time the line arrived when the server sends none;
- each nick in a colour of its own, picked by a stable hash (``crc32``, not
  ``hash()``, which changes between runs), so a person keeps their colour;
- joins, parts, quits, nick changes and kicks dimmed: they are context, not talk;
- CTCP ACTION (``/me``) as ``* nick text``; a line mentioning our nick highlighted;
- numerics as readable text instead of ``401 me bob :No such nick``;
- history (a chathistory batch, history.py's :class:`Block`) between separator lines,
  dimmed, each line with its own time (and date, when not today), a "read up to
  here" line at the read marker, and never highlighted as a mention;
- ``REDACT`` as ``* nick deleted a message``;
- no escape sequences at all with ``--no-color`` or ``NO_COLOR`` (https://no-color.org).

Text from the network is untrusted: IRC formatting codes and every other
control character are removed before display, so nobody can move the cursor,
clear the screen or retitle the terminal by sending an escape sequence.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from greenchat.client.events import (
    ClientEvent,
    Connected,
    Disconnected,
    GaveUp,
    MessageEvent,
    Reconnecting,
    Registered,
    SaslFailed,
)
from greenchat.client.history import Block
from greenchat.protocol.casemap import casefold, is_channel_name
from greenchat.protocol.message import Message, split_source

__all__ = [
    "PALETTE",
    "Formatter",
    "Kind",
    "Line",
    "clean",
    "history_stamp",
    "mentions",
    "nick_color",
    "timestamp",
    "use_color",
]

# Twelve ANSI foreground colours that read well on dark and light backgrounds
# (no black, white or greys).
PALETTE = (31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96)
RESET = "\x1b[0m"
DIM = "\x1b[2m"
BOLD = "\x1b[1m"
HIGHLIGHT = "\x1b[1;7m"  # bold + reverse video: visible in any colour scheme
ALERT = "\x1b[1;31m"

# chat: part of a conversation (stdout with --listen); info: status worth
# showing in the interactive UI only; alert: problems (stderr in pipe mode).
Kind = Literal["chat", "info", "alert"]

# Lines a user never needs to see: protocol plumbing and end-of-list markers, and
# SASL's outcome numerics (903-908: the client's SaslFailed event says it once).
HIDDEN = frozenset(
    {"PING", "PONG", "CAP", "AUTHENTICATE", "TAGMSG", "BATCH", "MARKREAD"}
    | {"004", "005", "366", "376"}
    | {"903", "904", "905", "906", "907", "908"}
)
# Numerics whose only useful content is the trailing text.
TEXT_ONLY = frozenset({"001", "002", "003", "372", "375", "422", "900", "901"})

# IRC formatting: bold, colour (with optional fg,bg digits), hex colour, reset,
# monospace, reverse, italic, strikethrough, underline.
_IRC_FORMATTING = re.compile(
    r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Characters that may appear in a nick: a mention must not be part of a longer one.
_NICK_CHAR = r"[A-Za-z0-9\[\]\\`_^{|}\-]"


@dataclass(frozen=True, slots=True)
class Line:
    """One display line and what kind of line it is (decides where it goes)."""

    text: str
    kind: Kind = "info"


def use_color(no_color_flag: bool, environ: Mapping[str, str]) -> bool:
    """Colours unless ``--no-color`` or a non-empty ``NO_COLOR`` (the no-color.org rule)."""
    return not no_color_flag and not environ.get("NO_COLOR")


def clean(text: str) -> str:
    """Untrusted text made safe to print: no IRC formatting, no control characters."""
    text = _IRC_FORMATTING.sub("", text).replace("\t", " ")
    return _CONTROL.sub("", text)


def nick_color(nick: str) -> int:
    """The ANSI colour of ``nick``: the same in every run, for every case of the nick."""
    return PALETTE[zlib.crc32(casefold(nick).encode()) % len(PALETTE)]


def mentions(text: str, nick: str) -> bool:
    """Whether ``text`` names ``nick`` as a word ("bob:" yes, "bobby" no), any case."""
    if not nick:
        return False
    pattern = rf"(?<!{_NICK_CHAR}){re.escape(casefold(nick))}(?!{_NICK_CHAR})"
    return re.search(pattern, casefold(text)) is not None


def timestamp(msg: Message | None = None, now: float | None = None) -> str:
    """Local HH:MM from the ``time`` tag (server-time), else from ``now`` (or the clock)."""
    raw = msg.tags.get("time") if msg is not None else None
    if raw:
        try:
            return datetime.fromisoformat(raw).astimezone().strftime("%H:%M")
        except ValueError:
            pass  # a malformed tag is no reason to lose the line
    return datetime.fromtimestamp(time.time() if now is None else now).strftime("%H:%M")


def history_stamp(msg: Message, now: float | None = None) -> str:
    """A history line's own time: HH:MM on the day of ``now`` (or today), else with the
    date (``2024-05-01 10:02``), in local time; no ``time`` tag: :func:`timestamp`'s."""
    raw = msg.tags.get("time")
    if raw:
        try:
            when = datetime.fromisoformat(raw).astimezone()
        except ValueError:
            pass
        else:
            today = datetime.fromtimestamp(time.time() if now is None else now).date()
            return when.strftime("%H:%M" if when.date() == today else "%Y-%m-%d %H:%M")
    return timestamp(msg, now)


# Separator lines around a history block.
HISTORY_BEGIN = "── history of {target} ──"
HISTORY_MORE = "── earlier history of {target} ──"
READ_MARKER = "── read up to here ──"
HISTORY_END = "── end of history ──"
HISTORY_START = "── end of history: nothing earlier in {target} ──"
NO_MORE_HISTORY = "no more history in {target}"


@dataclass(frozen=True)
class Formatter:
    """Turns messages and client events into :class:`Line` objects, with or without colour."""

    color: bool = True

    # -- styling -------------------------------------------------------------

    def _wrap(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text

    def nick(self, nick: str) -> str:
        return self._wrap(f"\x1b[{nick_color(nick)}m", nick)

    def dim(self, text: str) -> str:
        return self._wrap(DIM, text)

    def _line(self, stamp: str, body: str, kind: Kind) -> Line:
        return Line(f"{self.dim(stamp)} {body}", kind)

    def status(self, text: str, kind: Kind = "info", now: float | None = None) -> Line:
        """A line from the client itself (help, connection state, local errors)."""
        marker = "!!" if kind == "alert" else "--"
        body = self._wrap(ALERT, f"{marker} {text}") if kind == "alert" else f"-- {text}"
        return self._line(timestamp(None, now), body, kind)

    # -- history ------------------------------------------------------------------

    def history(self, block: Block, me: str, now: float | None = None) -> list[Line]:
        """A history block: a separator, its lines dimmed with their own times, "read up
        to here" at the read marker, a separator. An empty block on joining shows
        nothing; an empty answer to /history says there is no more."""
        target = clean(block.target)
        if not block.lines:
            if block.kind == "more":
                return [self.status(NO_MORE_HISTORY.format(target=target), "chat", now)]
            return []
        head = HISTORY_MORE if block.kind == "more" else HISTORY_BEGIN
        lines = [self._separator(head.format(target=target))]
        for index, msg in enumerate(block.lines):
            line = self.history_line(msg, me, now)
            if line is not None:
                lines.append(line)
            if index == block.marker_after:
                lines.append(Line(self._wrap(BOLD, READ_MARKER), "chat"))
        tail = HISTORY_START if block.exhausted else HISTORY_END
        lines.append(self._separator(tail.format(target=target)))
        return lines

    def history_line(self, msg: Message, me: str, now: float | None = None) -> Line | None:
        """One line of history: as live, but dimmed, never highlighted, its own time."""
        command = msg.command.upper()
        if command in HIDDEN or command.isdigit():
            return None
        body = self._body(msg, me)
        if body is None:
            return None
        text = self.dim(_strip_escapes(body[0]))
        return Line(f"{self.dim(history_stamp(msg, now))} {text}", "chat")

    def _separator(self, text: str) -> Line:
        """Not dimmed: it stands out from the dimmed lines it frames."""
        return Line(text, "chat")

    # -- client events -----------------------------------------------------------

    def event(self, event: ClientEvent, me: str) -> Line | None:
        """Any client event; ``None`` when there is nothing worth showing."""
        if isinstance(event, MessageEvent):
            return self.message(event.message, me, now=event.time)
        if isinstance(event, Connected):
            how = " (TLS)" if event.tls else ""
            return self.status(f"connected to {event.host}:{event.port}{how}", now=event.time)
        if isinstance(event, Registered):
            return self.status(f"registered as {event.nick}", now=event.time)
        if isinstance(event, Disconnected):
            # A failed attempt says "cannot connect to ..." itself: never "disconnected".
            text = f"disconnected: {event.reason}" if event.connected else event.reason
            return self.status(clean(text), "alert", event.time)
        if isinstance(event, Reconnecting):
            of = f"/{event.max_retries}" if event.max_retries is not None else ""
            text = f"reconnecting in {event.delay:.1f} s (attempt {event.attempt}{of})"
            return self.status(text, "alert", event.time)
        if isinstance(event, SaslFailed):
            text = f"not logged in as {event.account}: {event.reason}; going on without an account"
            return self.status(clean(text), "alert", event.time)
        if isinstance(event, GaveUp):  # the line before it gave the reason
            if not event.attempts:
                return None  # no retries wanted: nothing was given up
            tries = "attempt" if event.attempts == 1 else "attempts"
            return self.status(
                f"gave up after {event.attempts} reconnect {tries}", "alert", event.time
            )
        return None

    # -- server lines --------------------------------------------------------------

    def message(self, msg: Message, me: str, now: float | None = None) -> Line | None:
        """One server line as a display line; ``None`` for protocol plumbing."""
        command = msg.command.upper()
        if command in HIDDEN:
            return None
        stamp = timestamp(msg, now)
        if command.isdigit():
            return self._numeric(msg, stamp)
        body = self._body(msg, me)
        return None if body is None else self._line(stamp, *body)

    def _body(self, msg: Message, me: str) -> tuple[str, Kind] | None:
        """A (non-numeric) line's text after the time, and its kind."""
        command = msg.command.upper()
        sender = clean(split_source(msg.source or "")[0])
        handler = getattr(self, "_on_" + command.lower(), None)
        if handler is not None:  # None from a handler: nothing to show (or malformed)
            return handler(msg, sender, me)
        words = [sender, command, *(clean(p) for p in msg.params)]
        return "-- " + " ".join(w for w in words if w), "info"

    def _on_privmsg(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        if len(msg.params) < 2:
            return None
        target, text = msg.params[0], msg.params[-1]
        action = text.startswith("\x01ACTION")
        if text.startswith("\x01") and not action:
            return None  # other CTCP requests (VERSION, PING...) are not talk
        if action:
            text = text[len("\x01ACTION") :].rstrip("\x01").lstrip(" ")
        own = casefold(sender) == casefold(me)
        text = clean(text)
        name = self._wrap(BOLD, sender) if own else self.nick(sender)
        speech = f"* {name} {text}" if action else f"<{name}> {text}"
        if is_channel_name(target):
            body = f"{clean(target)} {speech}"
        elif own:
            body = f"-> *{clean(target)}* {speech}"
        else:  # a private message to us
            body = speech if action else f"*{name}* {text}"
        if not own and (mentions(text, me) or not is_channel_name(target)):
            body = self._wrap(HIGHLIGHT, _strip_escapes(body))
        return body, "chat"

    def _on_notice(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        if len(msg.params) < 2:
            return None
        target, text = msg.params[0], clean(msg.params[-1])
        where = f"{clean(target)} " if is_channel_name(target) else ""
        return f"{where}-{self.nick(sender) if sender else '*'}- {text}", "chat"

    def _dimmed(self, target: str, text: str) -> tuple[str, Kind]:
        prefix = f"{clean(target)} " if target else ""
        return prefix + self.dim(text), "chat"

    def _on_join(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        channel = msg.params[0] if msg.params else ""
        return self._dimmed(channel, f"--> {sender} joined")

    def _on_part(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        channel = msg.params[0] if msg.params else ""
        return self._dimmed(channel, f"<-- {sender} left{_reason(msg.params[1:])}")

    def _on_quit(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        return self._dimmed("", f"<-- {sender} quit{_reason(msg.params)}")

    def _on_kick(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        if len(msg.params) < 2:
            return None
        channel, victim = msg.params[0], clean(msg.params[1])
        return self._dimmed(
            channel, f"<-- {victim} was kicked by {sender}{_reason(msg.params[2:])}"
        )

    def _on_nick(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        new = clean(msg.params[0]) if msg.params else "?"
        return self._dimmed("", f"--- {sender} is now known as {new}")

    def _on_topic(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        if len(msg.params) < 2:
            return None
        return self._dimmed(msg.params[0], f"--- {sender} set the topic: {clean(msg.params[-1])}")

    def _on_mode(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        if not msg.params:
            return None
        changes = " ".join(clean(p) for p in msg.params[1:])
        return self._dimmed(msg.params[0], f"--- {sender} sets mode {changes}")

    def _on_invite(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        if len(msg.params) < 2:
            return None
        who, channel = clean(msg.params[0]), clean(msg.params[1])
        whom = "you" if casefold(who) == casefold(me) else who
        return f"-- {sender} invites {whom} to {channel}", "chat"

    def _on_away(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        text = f"is away: {clean(msg.params[0])}" if msg.params else "is back"
        return self._dimmed("", f"--- {sender} {text}")

    def _on_redact(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        """``REDACT <target> <msgid> [:reason]`` (draft/message-redaction)."""
        if len(msg.params) < 2:
            return None
        target = msg.params[0]
        where = target if is_channel_name(target) else ""
        return self._dimmed(where, f"* {sender} deleted a message{_reason(msg.params[2:])}")

    def _on_error(self, msg: Message, sender: str, me: str) -> tuple[str, Kind] | None:
        text = clean(msg.params[-1]) if msg.params else "ERROR"
        return self._wrap(ALERT, f"!! server error: {text}"), "alert"

    # -- numerics --------------------------------------------------------------------

    def _numeric(self, msg: Message, stamp: str) -> Line | None:
        """``401 me bob :No such nick`` -> ``!! bob: No such nick``."""
        params = [clean(p) for p in msg.params[1:]]  # the first one is our own nick
        if not params:
            return None
        code = msg.command
        if code in TEXT_ONLY:
            text = params[-1]
        else:
            special = _NUMERIC_TEXT.get(code)
            text = (special(params) if special else None) or _readable(params)
        if code[0] in "45" and code not in TEXT_ONLY:
            return self._line(stamp, self._wrap(ALERT, "!! " + text), "alert")
        return self._line(stamp, f"-- {text}", "info")


def _at(unix: str) -> str:
    try:
        return datetime.fromtimestamp(int(unix)).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return unix


def _idle(p: list[str]) -> str | None:
    if len(p) < 3:
        return None
    signon = f", signed on {_at(p[2])}" if len(p) > 3 else ""
    return f"{p[0]} has been idle {p[1]} s{signon}"


def _who_reply(p: list[str]) -> str | None:
    """352: channel user host server nick flags :hops realname."""
    if len(p) < 7:
        return None
    realname = p[6].partition(" ")[2]
    return f"{p[0]} {p[4]} ({p[1]}@{p[2]}) {p[5]} {realname}".rstrip()


# Numerics with a shape worth spelling out (params without our own nick first).
_NUMERIC_TEXT: dict[str, Callable[[list[str]], str | None]] = {
    "353": lambda p: f"users on {p[-2]}: {p[-1]}" if len(p) >= 2 else None,
    "332": lambda p: f"topic of {p[0]}: {p[-1]}" if len(p) >= 2 else None,
    "333": lambda p: f"topic of {p[0]} set by {p[1]} at {_at(p[2])}" if len(p) >= 3 else None,
    "301": lambda p: f"{p[0]} is away: {p[-1]}" if len(p) >= 2 else None,
    "311": lambda p: f"{p[0]} is {p[1]}@{p[2]} ({p[-1]})" if len(p) >= 4 else None,
    "312": lambda p: f"{p[0]} is on {p[1]} ({p[-1]})" if len(p) >= 3 else None,
    "317": _idle,
    "319": lambda p: f"{p[0]} is in {p[-1]}" if len(p) >= 2 else None,
    "352": _who_reply,
}


def _readable(params: list[str]) -> str:
    """Generic numeric text: ``bob: No such nick``, ``3 channels formed``, ``Current users 3``."""
    *middle, last = params
    if not middle:
        return last
    if all(p.isdigit() for p in middle):  # counts: often repeated in the text already
        return last if all(p in last for p in middle) else f"{' '.join(middle)} {last}"
    return f"{' '.join(middle)}: {last}"


def _reason(params: tuple[str, ...] | list[str]) -> str:
    return f" ({clean(params[0])})" if params and params[0] else ""


def _strip_escapes(text: str) -> str:
    """Drop our own colour codes so a highlight is one uniform style."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
