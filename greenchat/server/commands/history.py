"""CHATHISTORY (IRCv3 draft/chathistory): LATEST, BEFORE, AFTER, AROUND, BETWEEN, TARGETS.

Replies come in a ``chathistory`` batch (``draft/chathistory-targets`` for
TARGETS) when the client has ``batch``, an empty one when there is nothing, in
ascending order; each line carries its stored time and msgid as the client's
capabilities ask (server-time, message-tags, account-tag). Errors are the
spec's FAIL codes. Channel history goes only to the channel's members, a
private conversation's only to its two parties (server/history.py keys it).
"""

from __future__ import annotations

import calendar
import re
import time
from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message
from greenchat.server.caps import has_multiline
from greenchat.server.commands.table import command
from greenchat.server.history import (
    CAPABILITY,
    EVENT_PLAYBACK,
    MAX_LIMIT,
    party_of,
    private_key,
)
from greenchat.server.labeled import close_batch, open_batch, send_batch
from greenchat.server.outgoing import (
    ACCOUNT_TAG,
    MESSAGE_TAGS,
    SERVER_TIME,
    format_server_time,
    multiline_batch,
    multiline_plain,
    render_line,
    wire_body,
)
from greenchat.store.base import PRIVATE_PREFIX, HistoryBound, HistoryItem, StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session
    from greenchat.server.user import User

__all__ = ["NotVisible", "autoreplay", "conversation_of", "history_line", "parse_timestamp"]

SUBCOMMANDS = ("LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN", "TARGETS")
_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?Z$")
# The variant bits a history line may use: no extended-join, and no WebSocket
# framing (the session's line writer frames what is enqueued).
_TAG_BITS = SERVER_TIME | MESSAGE_TAGS | ACCOUNT_TAG
# Stored lines whose last parameter goes without ':' unless it needs one, as live.
_NO_TRAILING = frozenset({"TAGMSG", "JOIN", "MODE"})


class _Refused(Exception):
    """A FAIL reply: its code and parameters after ``CHATHISTORY``."""

    def __init__(self, *params: str) -> None:
        super().__init__(params[-1])
        self.params = params


def parse_timestamp(text: str) -> float | None:
    """``YYYY-MM-DDThh:mm:ss.sssZ`` as unix time, or None."""
    found = _TIMESTAMP.match(text)
    if found is None:
        return None
    try:
        parsed = time.strptime(found[1], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    fraction = float("0." + found[2]) if found[2] else 0.0
    return calendar.timegm(parsed) + fraction


def _bound(sub: str, text: str) -> HistoryBound:
    kind, _, value = text.partition("=")
    if kind == "msgid" and value:
        return HistoryBound(msgid=value)
    if kind == "timestamp" and (when := parse_timestamp(value)) is not None:
        return HistoryBound(time=when)
    raise _Refused("INVALID_PARAMS", sub, f"Invalid message reference: {text}")


def _limit(sub: str, text: str) -> int:
    """0 and anything over the maximum mean the maximum (as Ergo does)."""
    if not text.isdigit():
        raise _Refused("INVALID_PARAMS", sub, f"Invalid limit: {text}")
    value = int(text)
    return MAX_LIMIT if value == 0 or value > MAX_LIMIT else value


@command(
    "CHATHISTORY",
    min_params=1,
    yields=True,
    fresh=True,  # on a network: after the lines sent before it anywhere (history.py waits
    # for their nodes to store them, but only for the lines this node has heard)
    help=(
        "CHATHISTORY <LATEST|BEFORE|AFTER|AROUND|BETWEEN|TARGETS> <target> ...\n"
        "Reads stored history of a channel or a private conversation "
        "(draft/chathistory)."
    ),
)
def chathistory(server: ChatServer, conn: Session, msg: Message) -> None:
    started = time.perf_counter()
    try:
        _chathistory(server, conn, msg)
    finally:
        server.metrics.chathistory.observe(time.perf_counter() - started)


def _chathistory(server: ChatServer, conn: Session, msg: Message) -> None:
    sub = msg.params[0].upper()
    try:
        if not server.config.history:
            target = msg.params[1] if len(msg.params) > 1 else "*"
            raise _Refused("MESSAGE_ERROR", sub, target, "This server keeps no history")
        if sub not in SUBCOMMANDS:
            raise _Refused("INVALID_PARAMS", msg.params[0], "Unknown subcommand")
        needed = 4 if sub == "BETWEEN" else 3  # after the subcommand
        if len(msg.params) - 1 < needed:
            raise _Refused("NEED_MORE_PARAMS", sub, "Not enough parameters")
        if sub == "TARGETS":
            _targets(server, conn, sub, msg.params[1:4])
        else:
            _messages(server, conn, sub, msg.params[1:])
    except _Refused as refused:
        _fail(server, conn, *refused.params)
    except StoreUnavailable:
        target = msg.params[1] if len(msg.params) > 1 else "*"
        _fail(server, conn, "MESSAGE_ERROR", sub, target,
              "History is unavailable for the moment; try again later")  # fmt: skip


def _fail(server: ChatServer, conn: Session, code: str, *params: str) -> None:
    conn.fail("CHATHISTORY", code, *params)


class NotVisible(Exception):
    """A conversation the asker may not read (``str()`` says why)."""


def conversation_of(server: ChatServer, user: User, target: str) -> str:
    """The stored conversation ``target`` names for ``user``: a channel it is in (else
    NotVisible), or its private conversation with that nick."""
    hub = server.hub
    key = casefold(target)
    channel = hub.channels.get(key)
    if channel is not None:
        if user not in channel.members:
            raise NotVisible("You are not on that channel")
        return key
    if target[:1] in "#&":
        raise NotVisible("No such channel")
    accounts = server.registered_nicks
    mine = party_of(user, user.nick, accounts)
    return private_key(mine, party_of(hub.nicks.get(key), target, accounts))


def _conversation_key(
    server: ChatServer, conn: Session, sub: str, target: str
) -> tuple[str, float]:
    """The stored conversation and the oldest time this client may read there
    (--history-query-cutoff, for channels); _Refused when it may not read it."""
    try:
        key = conversation_of(server, conn.user, target)
    except NotVisible as exc:
        raise _Refused("INVALID_TARGET", sub, target, str(exc)) from None
    if key.startswith(PRIVATE_PREFIX):
        return key, 0.0
    return key, server.history.cutoff(conn.user, key)


def _messages(server: ChatServer, conn: Session, sub: str, params: list[str]) -> None:
    target = params[0]
    key, not_before = _conversation_key(server, conn, sub, target)
    messages_only = not conn.has_cap(EVENT_PLAYBACK)

    def read(method: str, *args: object) -> list[HistoryItem]:
        with conn.uncaptured():  # what others send meanwhile is no part of a labeled reply
            return server.history.read(method, *args, not_before, messages_only)

    if sub == "BETWEEN":
        first, second = _bound(sub, params[1]), _bound(sub, params[2])
        limit = _limit(sub, params[3])
        items = read("history", key, first, second, limit, False)
        if not items:  # the references in reverse order: counted back from the first
            items = read("history", key, second, first, limit, True)
    else:
        limit = _limit(sub, params[2])
        if sub == "LATEST":
            after = None if params[1] == "*" else _bound(sub, params[1])
            items = read("history", key, after, None, limit, True)
        elif sub == "BEFORE":
            items = read("history", key, None, _bound(sub, params[1]), limit, True)
        elif sub == "AFTER":
            items = read("history", key, _bound(sub, params[1]), None, limit, False)
        else:
            items = _around(read, key, _bound(sub, params[1]), limit)
    _send_history(server, conn, target, items)


def _around(read, key: str, ref: HistoryBound, limit: int) -> list[HistoryItem]:
    """Half the limit before the reference, the rest from it on: a msgid's own line
    is the first of the second half (also when it is the first line of all)."""
    before = read("history", key, None, ref, limit // 2, True)
    start = HistoryBound(msgid=before[-1].msgid) if before else None
    if start is None and not ref.msgid:
        start = ref  # a time before everything: what follows it
    after = read("history", key, start, None, limit - len(before), False)
    return before + after


def autoreplay(server: ChatServer, conn: Session, channel: Channel) -> None:
    """After a JOIN, the channel's last --history-autoreplay lines, for a client that
    cannot ask with CHATHISTORY: in a batch with ``batch``; with their times as tags
    (server-time), else at the head of the text, so old lines do not pass for new."""
    count = server.config.history_autoreplay
    if not count or not server.config.history or conn.has_cap(CAPABILITY):
        return
    cutoff = server.history.cutoff(conn.user, channel.key)
    messages_only = not conn.has_cap(EVENT_PLAYBACK)
    try:
        with conn.uncaptured():
            items = server.history.read(
                "history", channel.key, None, None, count, True, cutoff, messages_only
            )
    except StoreUnavailable:
        return  # logged once by storage.py; the JOIN itself went through
    if not conn.has_cap("server-time"):
        items = [_stamp_text(item) for item in items]
    if items:
        _send_history(server, conn, channel.name, items)


def _stamp_text(item: HistoryItem) -> HistoryItem:
    """``[2026-12-02 10:11:12] text``: the time where a client without server-time sees it."""
    if item.command not in ("PRIVMSG", "NOTICE"):
        return item
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(item.time))
    return item._replace(params=(*item.params[:-1], f"[{when}] {item.params[-1]}"))


def _send_history(server: ChatServer, conn: Session, target: str, items: list[HistoryItem]) -> None:
    """The stored lines in a ``chathistory`` batch (one at a time without ``batch``),
    rendered with their batch tag in them."""
    variant = conn.user.variant & _TAG_BITS
    batches = has_multiline(conn.caps.enabled)
    if not conn.has_cap("batch"):
        for item in items:
            conn.enqueue(history_lines(item, variant, "", batches))
        return
    name = server.config.name
    ref = open_batch(conn, name, "chathistory", target)
    tag, enqueue = f"batch={ref}", conn.enqueue
    for item in items:
        enqueue(history_lines(item, variant, tag, batches))
    close_batch(conn, name, ref)


def history_lines(item: HistoryItem, variant: int, tag: str, batches: bool) -> bytes:
    """A stored message as it went out live: one line, or a multiline message's lines
    (stored as one, its lines joined by newlines), as a draft/multiline batch inside
    the chathistory one for a client with the capability (``batches``)."""
    if item.command not in ("PRIVMSG", "NOTICE") or "\n" not in item.params[-1]:
        return history_line(item, variant, tag)
    lines = tuple((line, False) for line in item.params[-1].split("\n"))
    render = multiline_batch if batches else multiline_plain
    return render(item.source, item.command, item.params[0], lines, variant, item.time,
                  item.msgid, item.tags, item.account, tag)  # fmt: skip


def history_line(item: HistoryItem, variant: int, first_tag: str = "") -> bytes:
    """A stored line as it went out live, with its stored time and msgid, rendered for
    ``variant`` straight from the item (no Relay: each line goes to one client)."""
    body = wire_body(item.command, item.params, item.command not in _NO_TRAILING)
    return render_line(
        item.source, body, variant, item.time, item.msgid, item.tags, item.account, first_tag
    )


def _targets(server: ChatServer, conn: Session, sub: str, params: list[str]) -> None:
    since, until = (_bound(sub, p) for p in params[:2])
    if since.msgid or until.msgid:
        raise _Refused("INVALID_PARAMS", sub, "TARGETS takes timestamps")
    limit = _limit(sub, params[2])
    low, high = sorted((since.time, until.time))
    channels = {key: channel.name for key, channel in conn.user.channels.items()}
    accounts = server.registered_nicks
    mine = party_of(conn.user, conn.user.nick, accounts)
    private = {k: _other_party(k, mine) for k in server.history.read("conversations_of", mine)}
    found = server.history.read("history_targets", [*channels, *private], low, high, limit)
    name = server.config.name
    lines = [
        f":{name} CHATHISTORY TARGETS {channels.get(key) or private[key]} "
        f"timestamp={format_server_time(when)}\r\n".encode()
        for key, when in found
    ]
    _send_batch(server, conn, "draft/chathistory-targets", None, lines)


def _other_party(key: str, mine: str) -> str:
    one, other = key[len(PRIVATE_PREFIX) :].split(" ")
    return (other if one == mine else one)[2:]


def _send_batch(
    server: ChatServer, conn: Session, kind: str, target: str | None, lines: list[bytes]
) -> None:
    if not conn.has_cap("batch"):
        for line in lines:
            conn.enqueue(line)
        return
    send_batch(conn, server.config.name, kind, lines, *((target,) if target else ()))
