"""Scrollback and read markers for greenchat-join: IRCv3 ``draft/chathistory``,
``draft/read-marker`` and ``draft/message-redaction``, sans-IO.

:class:`Scrollback` is fed every server line (:meth:`Scrollback.feed`) and the
user's reading (:meth:`Scrollback.read`, :meth:`Scrollback.fetch`); it answers
with lines to send and with :class:`Block` objects to show. It does no I/O and
reads no clock: the caller passes a monotonic ``now``, so every rule is unit
tested without a server.

- **Windows.** Every channel and every private conversation (named by the other
  nick) is a window. The active one is the UI's current target.
- **History on join.** After our own JOIN it asks ``CHATHISTORY LATEST <#chan> *
  50``. The lines of a ``chathistory`` batch are held back until the batch ends
  and come out as one :class:`Block`: shown apart from live lines, never a mention
  or new activity, and without any line (by ``msgid``) already shown. Live lines of
  the channel that arrive before the answer wait for it (at most
  :data:`HOLD_LIMIT` seconds), so they show after the history, not above it.
- **More.** :meth:`Scrollback.fetch` asks ``CHATHISTORY BEFORE`` the oldest line
  shown in a window (by ``msgid=``, else ``timestamp=``), at most the server's
  ISUPPORT ``CHATHISTORY`` maximum at a time.
- **Read markers.** The server's ``MARKREAD <target> timestamp=...`` (or ``*``) is
  the window's marker: a block draws "read up to here" after its last line at or
  before it, and lines after it in a window that is not active count as unread.
  When the user has read a window (sent there, switched to it, or lines were shown
  while it was active) the client sends ``MARKREAD <target> timestamp=<newest
  line shown>``: only if that is later than the marker, and at most once per
  window every :data:`MARK_INTERVAL` seconds (a later one waits: :meth:`poll`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from greenchat.client.state import ClientState
from greenchat.protocol.casemap import casefold, is_channel_name
from greenchat.protocol.message import Message, split_source

__all__ = [
    "FETCH_LINES",
    "HISTORY_CAPS",
    "HOLD_LIMIT",
    "JOIN_LINES",
    "MARK_INTERVAL",
    "MAX_LINES",
    "Block",
    "Outcome",
    "Scrollback",
    "format_time",
    "line_time",
    "parse_time",
]

# Capabilities greenchat-join asks for, besides the library's DEFAULT_CAPS.
HISTORY_CAPS = (
    "draft/chathistory",
    "batch",
    "server-time",
    "message-tags",
    "draft/read-marker",
    "draft/message-redaction",
)
JOIN_LINES = 50  # history shown on joining a channel
FETCH_LINES = 50  # /history without a number
MAX_LINES = 100  # the most per request when the server names no maximum
MARK_INTERVAL = 2.0  # seconds between two MARKREADs for one window
HOLD_LIMIT = 3.0  # seconds live lines wait for the history asked for on joining
SEEN_LIMIT = 5000  # msgids remembered per window, to show no line twice

# Lines that are talk: they have a window, a time and a msgid worth remembering.
_TALK = frozenset({"PRIVMSG", "NOTICE"})


def parse_time(text: str | None) -> float | None:
    """A server-time value (``2024-05-01T10:02:03.456Z``) as unix time, or None."""
    if not text or not text.endswith("Z"):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def format_time(when: float) -> str:
    """Unix time as ``YYYY-MM-DDThh:mm:ss.sssZ`` (whole milliseconds, as servers store)."""
    millis = round(when * 1000)
    seconds, millis = divmod(millis, 1000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def line_time(msg: Message) -> float | None:
    """The ``time`` tag of ``msg`` as unix time, or None."""
    return parse_time(msg.tags.get("time"))


def _counts_as_unread(msg: Message, me: str) -> bool:
    """Talk from someone else: PRIVMSGs, including /me actions, but not CTCP requests."""
    if msg.command.upper() != "PRIVMSG" or len(msg.params) < 2:
        return False
    text = msg.params[-1]
    if text.startswith("\x01") and not text.startswith("\x01ACTION"):
        return False
    sender = split_source(msg.source or "")[0]
    return casefold(sender) != casefold(me)


@dataclass(frozen=True, slots=True)
class Block:
    """A chathistory batch to show: the lines not shown before, oldest first.

    ``marker_after``: the index of the last line at or before the window's read
    marker (draw "read up to here" after it), None when no shown line is (or, for
    /history's older lines, when all of them are).
    ``kind``: "join" (on joining) or "more" (/history); ``asked`` the limit asked for
    (None for a batch nobody asked for), ``received`` the lines the server sent.
    """

    target: str
    lines: tuple[Message, ...]
    kind: Literal["join", "more"] = "join"
    marker_after: int | None = None
    asked: int | None = None
    received: int = 0

    @property
    def exhausted(self) -> bool:
        """A /history answer with fewer lines than asked for: nothing earlier is left."""
        return self.kind == "more" and self.asked is not None and self.received < self.asked


@dataclass(slots=True)
class Outcome:
    """What one server line means for the UI.

    ``show``: show it as a live line (false for the lines of a history batch, for
    MARKREAD and for live lines waiting for the history on joining); ``block``: a
    history batch ended, show it; ``released``: live lines that waited, to show
    (after the block); ``send``: lines to send (CHATHISTORY, MARKREAD);
    ``changed``: unread counts changed (redraw).
    """

    show: bool = True
    block: Block | None = None
    released: list[Message] = field(default_factory=list)
    send: list[Message] = field(default_factory=list)
    changed: bool = False


@dataclass(slots=True)
class _Window:
    name: str
    seen: dict[str, None] = field(default_factory=dict)  # msgids shown, oldest first
    oldest: float | None = None  # time of the oldest line shown
    oldest_msgid: str | None = None  # and its msgid (when it had one)
    newest: float | None = None  # time of the newest line shown
    marker: float | None = None  # the server's read marker
    sent: float | None = None  # the latest timestamp we sent in a MARKREAD
    sent_at: float | None = None  # when (monotonic)
    due: float | None = None  # a MARKREAD owed once MARK_INTERVAL has passed
    unread: list[float] = field(default_factory=list)  # times of lines not yet read
    requests: deque[tuple[str, int]] = field(default_factory=deque)  # (kind, limit) asked
    holding: float | None = None  # since when live lines wait for the join's history
    held: list[Message] = field(default_factory=list)  # and those lines

    def awaits_join(self) -> bool:
        """The history asked for on joining has not come yet."""
        return any(kind == "join" for kind, _ in self.requests)

    def release(self) -> list[Message]:
        held, self.held, self.holding = self.held, [], None
        return held

    def remember(self, msgid: str | None) -> bool:
        """Note a shown line's msgid; False when it was shown before."""
        if not msgid:
            return True
        if msgid in self.seen:
            return False
        self.seen[msgid] = None
        if len(self.seen) > SEEN_LIMIT:
            del self.seen[next(iter(self.seen))]
        return True

    def note(self, when: float | None, msgid: str | None) -> None:
        """A line at ``when`` was shown (or received in history): oldest and newest."""
        if when is None:
            return
        if self.oldest is None or when < self.oldest:
            self.oldest, self.oldest_msgid = when, msgid or None
        if self.newest is None or when > self.newest:
            self.newest = when

    def floor(self) -> float:
        """MARKREAD is worth sending only for a time after this."""
        return max(
            -math.inf if self.marker is None else self.marker,
            -math.inf if self.sent is None else self.sent,
        )


@dataclass(slots=True)
class _Batch:
    target: str
    lines: list[Message] = field(default_factory=list)


class Scrollback:
    """History, dedupe, unread counts and read markers of every window (sans-IO)."""

    def __init__(self, state: ClientState, join_lines: int = JOIN_LINES) -> None:
        """``state``: the client's (nick, caps, ISUPPORT); ``join_lines``: history
        asked for on joining a channel (0: none)."""
        self.state = state
        self.join_lines = join_lines
        self._windows: dict[str, _Window] = {}
        self._batches: dict[str, _Batch] = {}  # open chathistory batches by reference

    # -- what the server offers ---------------------------------------------------

    @property
    def has_history(self) -> bool:
        """CHATHISTORY answers can be told from live lines: the cap and ``batch``."""
        caps = self.state.caps
        return "draft/chathistory" in caps and "batch" in caps

    @property
    def has_markers(self) -> bool:
        return "draft/read-marker" in self.state.caps

    def max_lines(self) -> int:
        """The most lines one CHATHISTORY may ask for (ISUPPORT CHATHISTORY, else 100)."""
        value = self.state.isupport.get("CHATHISTORY", "")
        if value.isascii() and value.isdigit() and int(value) > 0:
            return int(value)
        return MAX_LINES

    # -- windows --------------------------------------------------------------------

    def _window(self, name: str) -> _Window:
        key = casefold(name)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(name)
        return window

    def window_of(self, msg: Message) -> str | None:
        """The window a line belongs to: its channel, or the other party of a private
        conversation; None for lines of no window (server notices, numerics)."""
        command = msg.command.upper()
        if command not in ("PRIVMSG", "NOTICE", "TAGMSG", "REDACT") or not msg.params:
            return None
        target = msg.params[0]
        if target[:1] in "~&@%+" and is_channel_name(target[1:]):
            target = target[1:]  # STATUSMSG (@#chan): the channel's window all the same
        if is_channel_name(target):
            return target
        sender = split_source(msg.source or "")[0]
        if not sender or ("!" not in (msg.source or "") and "." in sender):
            return None  # the server itself
        return target if self.state.is_me(sender) else sender

    def unread(self) -> dict[str, int]:
        """Unread lines per window (only windows with some), in the windows' order."""
        return {w.name: len(w.unread) for w in self._windows.values() if w.unread}

    def oldest(self, target: str) -> tuple[float | None, str | None]:
        """(time, msgid) of the oldest line shown in ``target``."""
        window = self._windows.get(casefold(target))
        return (None, None) if window is None else (window.oldest, window.oldest_msgid)

    def marker(self, target: str) -> float | None:
        window = self._windows.get(casefold(target))
        return None if window is None else window.marker

    # -- the user ----------------------------------------------------------------------

    def fetch(self, target: str, count: int = FETCH_LINES) -> Message | str:
        """/history: the CHATHISTORY to send for ``count`` lines before the oldest one
        shown in ``target``, or why not (a text for the user)."""
        if "draft/chathistory" not in self.state.caps:
            return "this server keeps no history"
        if not self.has_history:
            return "cannot show history: the server did not grant the batch capability"
        window = self._window(target)
        if any(kind == "more" for kind, _ in window.requests):
            return f"already fetching history of {window.name}"
        count = max(1, min(count, self.max_lines()))
        if window.oldest_msgid:
            ref = f"msgid={window.oldest_msgid}"
        elif window.oldest is not None:
            ref = f"timestamp={format_time(window.oldest)}"
        else:
            window.requests.append(("more", count))
            return Message("CHATHISTORY", ("LATEST", target, "*", str(count)))
        window.requests.append(("more", count))
        return Message("CHATHISTORY", ("BEFORE", target, ref, str(count)))

    def read(self, target: str, now: float) -> list[Message]:
        """The user has read ``target`` (switched to it, or sent there): no unread lines
        left, and the MARKREAD to send now (or later: :meth:`poll`)."""
        window = self._window(target)
        window.unread.clear()
        return self._mark(window, now)

    def poll(self, now: float) -> Outcome:
        """What waited and may go now: MARKREADs after :data:`MARK_INTERVAL`, live
        lines after :data:`HOLD_LIMIT` without the history they waited for."""
        out = Outcome(show=False)
        for window in self._windows.values():
            if window.holding is not None and now - window.holding >= HOLD_LIMIT:
                out.released += window.release()  # and a late answer is taken as it comes:
                window.requests = deque(r for r in window.requests if r[0] != "join")
            if window.due is None:
                continue
            if window.due <= window.floor():
                window.due = None
            elif window.sent_at is None or now - window.sent_at >= MARK_INTERVAL:
                out.send.append(self._send_mark(window, window.due, now))
        return out

    def next_due(self, now: float) -> float | None:
        """Seconds until :meth:`poll` has something to do; None when nothing waits."""
        waits = [
            max(0.0, (w.sent_at or -math.inf) + MARK_INTERVAL - now)
            for w in self._windows.values()
            if w.due is not None and w.due > w.floor()
        ]
        waits += [
            max(0.0, w.holding + HOLD_LIMIT - now)
            for w in self._windows.values()
            if w.holding is not None
        ]
        return min(waits) if waits else None

    def disconnected(self) -> list[Message]:
        """The connection ended: open batches and unanswered requests are gone (windows,
        what they showed and their markers stay); the live lines that waited, to show."""
        self._batches.clear()
        released = []
        for window in self._windows.values():
            window.requests.clear()
            released += window.release()
        return released

    # -- the server ----------------------------------------------------------------------

    def feed(self, msg: Message, active: str | None, now: float) -> Outcome:
        """One server line; ``active``: the window the user looks at; ``now``: monotonic."""
        command = msg.command.upper()
        ref = msg.tags.get("batch")
        if ref is not None and ref in self._batches:
            self._batches[ref].lines.append(msg)
            return Outcome(show=False)
        if command == "BATCH" and msg.params:
            return self._on_batch(msg, active, now)
        if command == "MARKREAD":
            return self._on_markread(msg)
        if command == "JOIN":
            return self._on_join(msg, now)
        if command == "FAIL" and msg.params[:1] == ("CHATHISTORY",):
            return self._on_fail(msg)
        if command in _TALK:
            return self._on_talk(msg, active, now)
        return Outcome()

    def _on_join(self, msg: Message, now: float) -> Outcome:
        sender = split_source(msg.source or "")[0]
        if not msg.params or not self.state.is_me(sender):
            return Outcome()
        channel = msg.params[0]
        window = self._window(channel)
        if not self.join_lines or not self.has_history:
            return Outcome()
        window.requests.append(("join", self.join_lines))
        window.holding = now
        limit = str(min(self.join_lines, self.max_lines()))
        return Outcome(send=[Message("CHATHISTORY", ("LATEST", channel, "*", limit))])

    def _on_talk(self, msg: Message, active: str | None, now: float) -> Outcome:
        name = self.window_of(msg)
        if name is None:
            return Outcome()
        window = self._window(name)
        if not window.remember(msg.tags.get("msgid")):
            return Outcome(show=False)  # shown already (in history)
        when = line_time(msg)
        window.note(when, msg.tags.get("msgid"))
        outcome = Outcome()
        if window.holding is not None:  # shown after the history it waits for
            window.held.append(msg)
            outcome.show = False
        if _same(name, active):
            outcome.send = self._mark(window, now)
            return outcome
        after_marker = when is None or window.marker is None or when > window.marker
        if after_marker and _counts_as_unread(msg, self.state.nick):
            window.unread.append(math.inf if when is None else when)
            outcome.changed = True
        return outcome

    def _on_fail(self, msg: Message) -> Outcome:
        """``FAIL CHATHISTORY <code> [context...] :text``: the request it answers (the
        window named in the context, else every one) gets no batch."""
        named = [self._windows.get(casefold(p)) for p in msg.params[2:-1]]
        windows = [w for w in named if w is not None and w.requests]
        if not windows:
            windows = [w for w in self._windows.values() if w.requests]
            for window in windows:
                window.requests.clear()
        else:
            windows[0].requests.popleft()
            windows = windows[:1]
        released = []
        for window in windows:
            if not window.awaits_join():
                released += window.release()
        return Outcome(released=released)

    def _on_batch(self, msg: Message, active: str | None, now: float) -> Outcome:
        head = msg.params[0]
        if head.startswith("+") and len(msg.params) > 2 and msg.params[1] == "chathistory":
            self._batches[head[1:]] = _Batch(msg.params[2])
            return Outcome(show=False)
        if head.startswith("-") and head[1:] in self._batches:
            return self._finish(self._batches.pop(head[1:]), active, now)
        return Outcome()

    def _on_markread(self, msg: Message) -> Outcome:
        if len(msg.params) < 2:
            return Outcome(show=False)
        window = self._window(msg.params[0])
        kind, _, value = msg.params[1].partition("=")
        window.marker = parse_time(value) if kind == "timestamp" else None
        if window.marker is None:
            return Outcome(show=False)
        before = len(window.unread)
        window.unread = [when for when in window.unread if when > window.marker]
        return Outcome(show=False, changed=len(window.unread) != before)

    def _finish(self, batch: _Batch, active: str | None, now: float) -> Outcome:
        """A chathistory batch ended: the lines to show, the marker, unread counts."""
        window = self._window(batch.target)
        kind, asked = window.requests.popleft() if window.requests else ("join", None)
        lines = _without_redacted(batch.lines)
        for line in lines:
            window.note(line_time(line), line.tags.get("msgid"))
        shown = [
            line
            for line in lines
            if line.command.upper() != "TAGMSG" and window.remember(line.tags.get("msgid"))
        ]
        marker_after = None
        if window.marker is not None:
            for index, line in enumerate(shown):
                when = line_time(line)
                if when is not None and when <= window.marker:
                    marker_after = index
            if kind == "more" and marker_after == len(shown) - 1:
                marker_after = None  # an older page, read all through: no news there
        block = Block(window.name, tuple(shown), kind, marker_after, asked, len(batch.lines))
        outcome = Outcome(show=False, block=block)
        if not window.awaits_join():
            outcome.released = window.release()
        if _same(window.name, active):
            outcome.send = self._mark(window, now)
        elif window.marker is not None:
            me = self.state.nick
            for line in shown:
                when = line_time(line)
                if when is not None and when > window.marker and _counts_as_unread(line, me):
                    window.unread.append(when)
                    outcome.changed = True
        return outcome

    # -- read markers --------------------------------------------------------------------

    def _mark(self, window: _Window, now: float) -> list[Message]:
        """MARKREAD up to the newest line shown in ``window``: now, later, or not at all."""
        if not self.has_markers or window.newest is None or window.newest <= window.floor():
            return []
        if window.sent_at is not None and now - window.sent_at < MARK_INTERVAL:
            window.due = max(window.due or -math.inf, window.newest)
            return []
        return [self._send_mark(window, window.newest, now)]

    def _send_mark(self, window: _Window, when: float, now: float) -> Message:
        window.sent, window.sent_at, window.due = when, now, None
        return Message("MARKREAD", (window.name, f"timestamp={format_time(when)}"))


def _without_redacted(lines: list[Message]) -> list[Message]:
    """A batch's lines less REDACT lines and the lines they redact."""
    gone = {
        line.params[1]
        for line in lines
        if line.command.upper() == "REDACT" and len(line.params) > 1
    }
    return [
        line
        for line in lines
        if line.command.upper() != "REDACT" and line.tags.get("msgid") not in gone
    ]


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and casefold(a) == casefold(b)
