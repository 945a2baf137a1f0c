"""Relayed messages, serialized once per capability variant.

A :class:`Relay` is one event that many clients receive (a PRIVMSG, a JOIN,
a QUIT...). Clients differ only in the capabilities that change how a line
looks: ``server-time`` adds a ``time`` tag, ``message-tags`` adds ``msgid``
and the sender's client-only tags, ``extended-join`` adds account and real
name to JOIN, ``account-tag`` the sender's ``account``. Each connection
carries its *variant* (a bit set of those capabilities); a relay renders each
variant at most once and every recipient of that variant gets the same ``bytes``
object. A WebSocket client's variant
also has its subprotocol's bit (``WS_TEXT`` or ``WS_BINARY``): its form of the
line is the WebSocket frame, so a fan-out to browsers frames each message once.

Parameters are trusted: handlers validated names, and the parser already
refused CR, LF and NUL, so rendering is plain string formatting.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable

from greenchat.protocol.message import clip_line, escape_tag_value
from greenchat.protocol.websocket import frame_lines
from greenchat.server.caps import has_multiline

__all__ = [
    "ACCOUNT_TAG",
    "EXTENDED_JOIN",
    "MESSAGE_TAGS",
    "SERVER_TIME",
    "VARIANT_COUNT",
    "WS_BINARY",
    "WS_TEXT",
    "LinesRelay",
    "Multiline",
    "Relay",
    "add_tags",
    "format_server_time",
    "multiline_batch",
    "multiline_plain",
    "multiline_relays",
    "new_msgid",
    "render_line",
    "variant_of",
    "wire_body",
]

SERVER_TIME = 1
MESSAGE_TAGS = 2
EXTENDED_JOIN = 4
ACCOUNT_TAG = 8
WS_TEXT = 16  # framed for text.ircv3.net
WS_BINARY = 32  # framed for binary.ircv3.net
VARIANT_COUNT = 48  # a connection has at most one of the two framing bits
_WS = WS_TEXT | WS_BINARY
_VARIANT_BITS = {"server-time": SERVER_TIME, "message-tags": MESSAGE_TAGS}
_VARIANT_BITS["extended-join"] = EXTENDED_JOIN
_VARIANT_BITS["account-tag"] = ACCOUNT_TAG

# msgids: unique per server run without coordination: a random run prefix
# and a counter.
_RUN_ID = os.urandom(4).hex()
_counter = itertools.count(1)


def variant_of(enabled: Iterable[str]) -> int:
    """The variant bit set for a connection with capabilities ``enabled``."""
    bits = 0
    for cap in enabled:
        bits |= _VARIANT_BITS.get(cap, 0)
    return bits


def new_msgid() -> str:
    return f"{_RUN_ID}{next(_counter):x}"


# The last whole second format_server_time rendered, and its text: lines come in time
# order (live, and a page of history), so most share it; strftime is most of the cost.
_last_second: tuple[int, str] = (-1, "")
_MILLIS = tuple(f".{millis:03d}Z" for millis in range(1000))


def format_server_time(when: float) -> str:
    """IRCv3 server-time: ISO 8601 UTC with milliseconds, e.g. 2026-01-02T03:04:05.678Z."""
    global _last_second
    # Whole milliseconds first: a time stored as ms / 1000 (history) is not exact in
    # binary, and truncating its fraction could show it a millisecond early.
    seconds, millis = divmod(round(when * 1000), 1000)
    cached, text = _last_second
    if seconds != cached:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, text)  # one tuple: a reader sees both or neither
    return text + _MILLIS[millis]


def wire_body(command: str, params: tuple[str, ...], trailing: bool) -> str:
    """``COMMAND p1 p2 :last``: the last parameter takes ':' when ``trailing`` (message
    text, reasons: always, as every server sends them) or when it needs one."""
    if not params:
        return command
    last = params[-1]
    if trailing or not last or " " in last or last[0] == ":":
        last = ":" + last
    return " ".join((command, *params[:-1], last))


def add_tags(line: bytes, tags: bytes) -> bytes:
    """Prepend serialized ``tags`` (``k=v;k2``) to a wire line that may already have some."""
    if line.startswith(b"@"):
        return b"@" + tags + b";" + line[1:]
    return b"@" + tags + b" " + line


class Relay:
    """One relayed event, rendered lazily per variant and cached."""

    __slots__ = (
        "_msgid",
        "account",
        "cache",
        "client_tags",
        "command",
        "ext_params",
        "params",
        "source",
        "trailing",
        "when",
    )

    def __init__(
        self,
        source: str,
        command: str,
        params: tuple[str, ...],
        *,
        trailing: bool = True,
        client_tags: str = "",
        ext_params: tuple[str, ...] | None = None,
        when: float | None = None,
        msgid: str | None = None,
        account: str = "",
    ) -> None:
        self.source = source
        self.command = command
        self.params = params
        # Whether the last parameter is always sent with ':' (message text,
        # reasons), as every server does for them, even without spaces.
        self.trailing = trailing
        self.client_tags = client_tags  # already escaped: "+a=b;+c"
        self.ext_params = ext_params  # params for extended-join recipients
        self.account = account  # the source's account, for account-tag ('' for none)
        self.when = time.time() if when is None else when
        self.cache: list[bytes | None] = [None] * VARIANT_COUNT
        self._msgid = msgid or None  # made when first needed, unless an event carries one

    @property
    def msgid(self) -> str:
        if self._msgid is None:
            self._msgid = new_msgid()
        return self._msgid

    def bytes_for(self, variant: int) -> bytes:
        data = self.cache[variant]
        if data is None:
            data = self.cache[variant] = self._render(variant)
        return data

    def _render(self, variant: int) -> bytes:
        params = self.params
        if variant & EXTENDED_JOIN and self.ext_params is not None:
            params = self.ext_params
        data = render_line(
            self.source, wire_body(self.command, params, self.trailing), variant, self.when,
            self.msgid if variant & MESSAGE_TAGS else "", self.client_tags, self.account,
        )  # fmt: skip
        return _framed(data, variant)


def render_line(
    source: str, body: str, variant: int, when: float, msgid: str, client_tags: str,
    account: str, first_tag: str = "",
) -> bytes:  # fmt: skip
    """``:source body`` with the tags ``variant`` asks for (server-time, message-tags with
    the sender's client-only tags, account-tag) after ``first_tag`` (a batch's, say),
    clipped to the line limit."""
    line = f":{source} {body}\r\n"
    tags = [first_tag] if first_tag else []
    if variant & SERVER_TIME:
        tags.append("time=" + format_server_time(when))
    if variant & MESSAGE_TAGS:
        tags.append("msgid=" + escape_tag_value(msgid))
        if client_tags:
            tags.append(client_tags)
    if variant & ACCOUNT_TAG and account:
        tags.append("account=" + escape_tag_value(account))
    if tags:
        line = "@" + ";".join(tags) + " " + line
    return clip_line(line.encode())


class LinesRelay:
    """A relay of several lines (a draft/multiline message, as a batch or as the plain
    lines of its fallback), rendered once per variant like :class:`Relay`: what
    ``Hub.fanout`` queues is the lines' bytes together."""

    __slots__ = ("cache", "command", "render")

    def __init__(self, command: str, render: Callable[[int], bytes]) -> None:
        self.command = command
        self.render = render  # variant -> the lines, CRLF-ended, joined
        self.cache: list[bytes | None] = [None] * VARIANT_COUNT

    def bytes_for(self, variant: int) -> bytes:
        data = self.cache[variant]
        if data is None:
            data = self.cache[variant] = self.render(variant)
        return data


def multiline_relays(
    source: str, command: str, target: str, lines: tuple[tuple[str, bool], ...], *,
    client_tags: str, when: float, msgid: str, account: str,
) -> tuple[LinesRelay, LinesRelay]:  # fmt: skip
    """A draft/multiline message as a batch (for clients with the capability) and as its
    plain lines (for the others)."""
    args = (source, command, target, lines)
    rest = (when, msgid, client_tags, account)
    return (
        LinesRelay(command, lambda v: _framed(multiline_batch(*args, v, *rest), v)),
        LinesRelay(command, lambda v: _framed(multiline_plain(*args, v, *rest), v)),
    )


def multiline_batch(
    source: str, command: str, target: str, lines: tuple[tuple[str, bool], ...], variant: int,
    when: float, msgid: str, client_tags: str, account: str, outer: str = "",
) -> bytes:  # fmt: skip
    """A multiline message's batch: the opening line carries its tags (msgid, time, the
    client's, ``outer``: an enclosing batch's), then each line, then the close."""
    ref = "ml" + msgid
    out = [render_line(source, f"BATCH +{ref} draft/multiline {target}", variant, when,
                       msgid, client_tags, account, outer)]  # fmt: skip
    for text, concat in lines:
        tags = f"batch={ref};draft/multiline-concat" if concat else f"batch={ref}"
        line = f"@{tags} :{source} {wire_body(command, (target, text), True)}\r\n"
        out.append(clip_line(line.encode()))
    out.append(f"{'@' + outer + ' ' if outer else ''}:{source} BATCH -{ref}\r\n".encode())
    return b"".join(out)


def multiline_plain(
    source: str, command: str, target: str, lines: tuple[tuple[str, bool], ...], variant: int,
    when: float, msgid: str, client_tags: str, account: str, outer: str = "",
) -> bytes:  # fmt: skip
    """A multiline message as plain lines, for clients without the capability: each with
    a msgid of its own, from the message's; the client's tags on the first."""
    out = []
    for number, (text, _) in enumerate(lines):
        first = number == 0
        body = wire_body(command, (target, text), True)
        line_msgid, tags = (msgid, client_tags) if first else (f"{msgid}-{number}", "")
        out.append(render_line(source, body, variant, when, line_msgid, tags, account, outer))
    return b"".join(out)


def _framed(data: bytes, variant: int) -> bytes:
    """The lines as a WebSocket client of ``variant`` takes them (frames), or as they are."""
    return frame_lines(data, text=bool(variant & WS_TEXT)) if variant & _WS else data


class Multiline:
    """What applying a multiline message returns: its batch and its plain lines, for
    the sender's echo (``for_user``: the form that user's client takes)."""

    __slots__ = ("batch", "command", "plain")

    def __init__(self, batch: LinesRelay, plain: LinesRelay) -> None:
        self.batch, self.plain, self.command = batch, plain, batch.command

    def for_user(self, caps: frozenset[str]) -> LinesRelay:
        return self.batch if has_multiline(caps) else self.plain
