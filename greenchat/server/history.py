"""History: every message stored off the event loop, in batches (issue 15).

:class:`HistoryRecorder` is an observer of the hub (events.py). For a PRIVMSG,
NOTICE or TAGMSG it notes, at once and without yielding, what the store needs:
the conversation's key, and the sender's prefix and account as they are now. A
writer greenlet hands everything noted so far to the storage thread (storage.py),
which stores it in transactions of :data:`WRITE_CHUNK` items, and while that write
runs the next batch gathers. So an idle server writes each message at once, a busy
one larger batches, and the fan-out pays one append per message, never per
recipient. Channel events (JOIN, PART, QUIT, NICK, TOPIC, MODE, KICK) are noted
the same way, for draft/event-playback.

When the store is healthy but slower than the chat (more lines a second than it
writes), senders wait rather than lines being lost: past :data:`HIGH_WATER`
items waiting or being written, a session whose user just sent a stored line
stops reading its input (up to :data:`HOLD_MAX` at a time) until the backlog is
under :data:`LOW_WATER` (:meth:`HistoryRecorder.hold`). Those who only read, and
PINGs, go on. So under overload the accepted rate falls to the store's, as with
a server that writes each message before taking the next (Ergo with MySQL).

A read (CHATHISTORY) takes what is still waiting with it: on the one storage
thread that batch is written first, then the query runs, so a client always
finds what it was just sent. On a node of a network sharing one store, each node
stores its own lines; a read also waits (:data:`HEARD_WAIT` at most) until the
newest line each other node delivered here for that conversation is stored, so a
page never lacks a line its reader saw a moment ago. While the store fails, at most
:data:`MAX_PENDING` items wait in memory; past that the oldest are dropped, and
counted.

Conversations are keyed by the server: a channel by its casefolded name; two
users by both parties (:func:`private_key`), each their account when logged in,
else their nick, so a conversation follows its parties across nicks and sessions.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event as Flag

from greenchat.protocol.casemap import casefold
from greenchat.server.events import (
    ChannelModeChanged,
    Event,
    Joined,
    Kicked,
    Messaged,
    NickChanged,
    Parted,
    Quit,
    TopicSet,
)
from greenchat.server.hub import mode_params, op_moderated
from greenchat.store.base import PRIVATE_PREFIX, HistoryItem, HistoryStore, StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.user import User

__all__ = [
    "CAPABILITY",
    "EVENT_PLAYBACK",
    "HIGH_WATER",
    "LOW_WATER",
    "MAX_LIMIT",
    "MAX_PENDING",
    "WRITE_CHUNK",
    "HistoryRecorder",
    "isupport_tokens",
    "party_of",
    "private_key",
]

log = logging.getLogger("greenchat.history")

CAPABILITY = "draft/chathistory"
# With it, CHATHISTORY also plays back the channel events stored below.
EVENT_PLAYBACK = "draft/event-playback"
MAX_LIMIT = 100  # ISUPPORT CHATHISTORY: most lines one CHATHISTORY command returns
MAX_PENDING = 100_000  # items held while the store fails; then the oldest go
RETRY_AFTER = 1.0  # seconds between attempts while the store fails
WRITE_CHUNK = 500  # items a transaction of the writer (see _Chunks)
EXPIRE_BATCH = 1000  # lines deleted per transaction: expiry never holds the store long
HEARD_LIMIT = 10_000  # conversations whose other nodes' newest lines are remembered
HEARD_WAIT = 2.0  # seconds a read waits at most for those lines to be stored
# Senders wait past HIGH_WATER items waiting or being written (about half a second of
# the store's writing on the benchmark machine), until under LOW_WATER.
HIGH_WATER = 20_000
LOW_WATER = 5_000
HOLD_MAX = 1.0  # seconds a sender waits at most per turn of its reader
HOLD_LOG_EVERY = 60.0  # seconds between log lines about senders waiting


def isupport_tokens() -> list[str]:
    return [f"CHATHISTORY={MAX_LIMIT}", "MSGREFTYPES=msgid,timestamp"]


def party_of(user: User | None, nick: str, accounts: set[str]) -> str:
    """One side of a private conversation: ``a:<account>`` for a logged-in user (or an
    absent nick that is an account's name), else ``n:<nick>``, casefolded."""
    if user is not None:
        return "a:" + casefold(user.account) if user.account else "n:" + casefold(user.nick)
    key = casefold(nick)
    return ("a:" if key in accounts else "n:") + key


def private_key(one: str, other: str) -> str:
    return PRIVATE_PREFIX + " ".join(sorted((one, other)))


# The events stored for draft/event-playback: each carries its line's msgid and time.
ChannelChange = Joined | Parted | Kicked | Quit | NickChanged | TopicSet | ChannelModeChanged


def _stored_time(event: ChannelChange | Messaged) -> float:
    """An event's time as stored: in whole milliseconds, what server-time showed."""
    return round(event.time * 1000) / 1000


def _time_of(item: HistoryItem) -> float:
    return item.time


class _Chunks:
    """Items to append, WRITE_CHUNK a transaction, on the storage thread. Turning items
    into a statement's JSON holds the GIL: this many take a millisecond of the event
    loop's time, and the INSERT after lets go of it. However far behind the writer is,
    one turn of the writer greenlet catches up."""

    def __init__(self, store: HistoryStore, items: list[HistoryItem]) -> None:
        self.store, self.items, self.written = store, items, 0

    def write(self) -> None:
        while self.left():
            self.write_one()

    def write_one(self) -> None:
        items = self.items
        self.store.append_history(items[self.written : self.written + WRITE_CHUNK])
        self.written = min(self.written + WRITE_CHUNK, len(items))

    def left(self) -> int:
        return len(self.items) - self.written

    def unwritten(self) -> list[HistoryItem]:
        return self.items[self.written :]


class HistoryRecorder:
    """Notes every message the hub applies; writes them in batches; reads with them."""

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self.pending: list[HistoryItem] = []
        self._last_seq = 0  # the seq proposed last (see _seq_for)
        # conversation -> node -> msgid: other nodes' newest lines heard here, not yet
        # found stored (_heard, _await_heard); the conversations heard from last, last.
        self._heard_last: dict[str, dict[str, str]] = {}
        self.dropped = 0  # items dropped while the store failed (a metric)
        self._wake = Flag()
        self._writer: gevent.Greenlet | None = None
        self._expirer: gevent.Greenlet | None = None
        self.expired = 0  # lines deleted by retention (a metric)
        # Backpressure (see the module's docstring): items handed to the store and not
        # yet written, whether senders wait, who, and the times they waited (a metric).
        self.in_flight = 0
        self.backlogged = False
        self.held: set[User] = set()
        self.holds = 0
        self._drained = Flag()
        self._drained.set()
        self._hold_logged = -HOLD_LOG_EVERY
        # When each local member joined each channel (for --history-query-cutoff
        # join-time); weak: a user that is gone takes its entries along.
        self._joined: weakref.WeakKeyDictionary[User, dict[str, float]] = (
            weakref.WeakKeyDictionary()
        )

    # -- noting (in the hub's observer call: never yields) ----------------------------

    def on_event(self, event: Event) -> None:
        if self.server.hub.foreign:  # another node's: stored by that node, in our store
            if type(event) is Messaged and not event.status and not self._op_only(event):
                self._heard(event)  # (a line its node never stores is not waited for)
            return
        kind = type(event)
        if kind is Messaged:
            if not event.status:  # a STATUSMSG (or a +U line) is for some members only
                self._messaged(event)
        elif kind is Joined:
            user = self._user(event.nick)
            # In stored time's milliseconds: a line said in the same one as the JOIN,
            # after it, is stored with a time that may round below the exact JOIN time.
            self._joined.setdefault(user, {})[casefold(event.channel)] = _stored_time(event)
            self._channel_event(event, user.prefix, user.account, event.channel, "JOIN",
                                (event.channel,))  # fmt: skip
        elif kind is Parted:
            self._parted(event)
        elif kind is Kicked:
            self._kicked(event)
        elif kind is TopicSet:
            user = self._user(event.by)
            self._channel_event(event, user.prefix, user.account, event.channel, "TOPIC",
                                (event.channel, event.topic))  # fmt: skip
        elif kind is ChannelModeChanged:
            self._mode_changed(event)
        elif kind is NickChanged:
            user = self._user(event.new)
            old_prefix = event.old + user.prefix[len(user.nick) :]
            self._note([
                self._event_item(event, old_prefix, user.account, key, "NICK", (event.new,))
                for key in user.channels
            ])  # fmt: skip

    def before_event(self, event: Event) -> None:
        """A QUIT is stored in each of the user's channels, which the hub forgets as it
        applies it: so it is noted just before."""
        if type(event) is Quit and not self.server.hub.foreign:
            user = self._user(event.nick)
            self._note([
                self._event_item(event, user.prefix, user.account, key, "QUIT", (event.reason,))
                for key in user.channels
            ])  # fmt: skip

    def _user(self, nick: str) -> User:
        return self.server.hub.nicks[casefold(nick)]

    def _parted(self, event: Parted) -> None:
        user = self._user(event.nick)
        params = (event.channel, event.reason) if event.reason else (event.channel,)
        self._channel_event(event, user.prefix, user.account, event.channel, "PART", params)
        self._joined.get(user, {}).pop(casefold(event.channel), None)

    def _kicked(self, event: Kicked) -> None:
        by = self._user(event.by)
        params = (event.channel, event.target, event.reason)
        self._channel_event(event, by.prefix, by.account, event.channel, "KICK", params)
        gone = self.server.hub.nicks.get(casefold(event.target))
        if gone is not None:
            self._joined.get(gone, {}).pop(casefold(event.channel), None)

    def _mode_changed(self, event: ChannelModeChanged) -> None:
        if self.server.hub.is_server(event.by):  # a service's change comes from the server
            source, account = event.by, ""
        else:
            user = self._user(event.by)
            source, account = user.prefix, user.account
        params = (event.channel, *mode_params(event.changes))
        self._channel_event(event, source, account, event.channel, "MODE", params)

    def _channel_event(
        self, event: ChannelChange, source: str, account: str, channel: str, command: str,
        params: tuple[str, ...],
    ) -> None:  # fmt: skip
        self._note([self._event_item(event, source, account, casefold(channel), command, params)])

    def _event_item(
        self, event: ChannelChange, source: str, account: str, key: str, command: str,
        params: tuple[str, ...],
    ) -> HistoryItem:  # fmt: skip
        """A channel event stored for draft/event-playback, with the msgid and time its
        live line had."""
        return HistoryItem(
            key, event.msgid, _stored_time(event), command, source, account, params,
            seq=self._seq_for(event.time),
        )  # fmt: skip

    def _seq_for(self, when: float) -> int:
        """A line's proposed seq (the stores keep it unless another process's line has
        it): its event's time in microseconds, rising within this process. Nodes (or
        workers) sharing a store each write their own lines, a batch at a time, so a
        store reads in the order of these times, not in the order the batches came."""
        seq = max(int(when * 1_000_000), self._last_seq + 1)
        self._last_seq = seq
        return seq

    def cutoff(self, user: User, channel_key: str) -> float:
        """The oldest channel history ``user`` may read (--history-query-cutoff)."""
        rule = self.server.config.history_query_cutoff
        if rule == "registration-time":
            return float(user.signon)
        if rule == "join-time":
            return self._joined.get(user, {}).get(channel_key, time.time())
        return 0.0

    def _conversation(self, event: Messaged, sender: User) -> str:
        """The key ``event`` is stored under: its channel's, or its two parties'."""
        hub = self.server.hub
        target = casefold(event.target)
        if target not in hub.channels:
            accounts = self.server.registered_nicks
            recipient = hub.nicks.get(target)
            target = private_key(
                party_of(sender, event.source, accounts),
                party_of(recipient, event.target, accounts),
            )
        return target

    def _heard(self, event: Messaged) -> None:
        """Another node's message, delivered here: remember it as the newest of its
        conversation from that node until a read finds it stored (see _await_heard)."""
        sender = self.server.hub.nicks.get(casefold(event.source))
        if sender is None:
            return
        heard = self._heard_last
        key = self._conversation(event, sender)
        newest = heard.pop(key, None) or {}
        newest[sender.node] = event.msgid
        heard[key] = newest  # last in the dict: the conversation heard from last
        if len(heard) > HEARD_LIMIT:
            del heard[next(iter(heard))]

    def _await_heard(self, target: str) -> None:
        """Before a read of ``target``: the lines this node delivered from other nodes
        are there once those nodes stored them, each its own a batch at a time, so a
        line seen a moment ago could still be missing from the page. Each node's newest
        is waited for (its earlier ones are stored before it), HEARD_WAIT at most."""
        newest = self._heard_last.get(target)
        storage = self.server.storage
        if not newest or storage is None:
            return
        deadline = time.monotonic() + HEARD_WAIT
        for node, msgid in list(newest.items()):
            while storage.run(storage.store.history_item, target, msgid) is None:
                if time.monotonic() >= deadline:
                    log.warning("history: %s's line %s in %s was not stored", node, msgid, target)
                    break
                gevent.sleep(0.01)
            if newest.get(node) == msgid:
                del newest[node]

    def _op_only(self, event: Messaged) -> bool:
        """A +U channel's line from an unprivileged member: the operators' only."""
        hub = self.server.hub
        channel = hub.channels.get(casefold(event.target))
        sender = hub.nicks.get(casefold(event.source))
        return channel is not None and sender is not None and op_moderated(channel, sender)

    def _messaged(self, event: Messaged) -> None:
        hub = self.server.hub
        sender = hub.nicks.get(casefold(event.source))
        if sender is None:
            return
        if self._op_only(event):
            return  # for the operators only: not the channel's history
        target = self._conversation(event, sender)
        params = (event.target,) if event.verb == "TAGMSG" else (event.target, event.text)
        when = _stored_time(event)
        item = HistoryItem(
            target, event.msgid, when, event.verb, sender.prefix, sender.account,
            params, event.tags, self._seq_for(event.time),
        )  # fmt: skip
        self._note([item])
        if self.backlogged:
            self.held.add(sender)

    def _note(self, items: list[HistoryItem]) -> None:
        if not items:  # a QUIT or NICK of a user in no channel
            return
        pending = self.pending
        was_empty = not pending
        pending += items
        if len(pending) > MAX_PENDING:
            # Down to nine tenths at once: deleting from the front of a list is O(n), so
            # dropping one item per message noted would cost every message that much.
            excess = len(pending) - MAX_PENDING + MAX_PENDING // 10
            del pending[:excess]
            self.dropped += excess
        if was_empty:
            self._wake.set()
        if not self.backlogged and self.backlog > HIGH_WATER:
            self._start_holding()

    # -- backpressure -----------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Items not stored yet: waiting, and handed to the store but not written."""
        return len(self.pending) + self.in_flight

    def _start_holding(self) -> None:
        storage = self.server.storage
        if storage is None or not storage.healthy:
            return  # a failing store: chat goes on, and the oldest lines go past MAX_PENDING
        self.backlogged = True
        self._drained.clear()
        now = time.monotonic()
        if now - self._hold_logged >= HOLD_LOG_EVERY:
            self._hold_logged = now
            log.warning(
                "history: the store is %d lines behind; senders wait until it catches up",
                self.backlog,
            )

    def _stop_holding(self) -> None:
        self.backlogged = False
        self.held.clear()
        self._drained.set()

    def _release_if_caught_up(self) -> None:
        if self.backlogged and self.backlog < LOW_WATER:
            self._stop_holding()

    def hold(self, user: User) -> None:
        """In a session's reader, between chunks of input: while the store is behind,
        a user who sent stored lines waits (up to HOLD_MAX) for it to catch up."""
        if self.backlogged and user in self.held:
            self.holds += 1
            self._drained.wait(HOLD_MAX)

    def _put_back(self, batch: list[HistoryItem]) -> None:
        """A batch the store could not take goes back with what came since, in time
        order (the writer's and a read's batches may fail in either order)."""
        self.pending, newer = [], self.pending
        self._note(sorted(batch + newer, key=_time_of))

    # -- writing ----------------------------------------------------------------------

    def start(self) -> None:
        self._writer = gevent.spawn(self._write_loop)
        self._expirer = gevent.spawn(self._expire_loop)

    # -- retention --------------------------------------------------------------------

    def _expire_loop(self) -> None:
        """Every ``history_expire_every`` seconds, delete what is past the limits, a
        batch per store call (so logins and writes get the store in between), until
        nothing more is due."""
        while True:
            gevent.sleep(self.server.config.history_expire_every)
            with contextlib.suppress(StoreUnavailable):  # logged by storage.py; next pass
                while self.expire_once() == EXPIRE_BATCH:
                    gevent.sleep(0)

    def expire_once(self) -> int:
        """One batch of retention; how many lines went."""
        cfg, storage = self.server.config, self.server.storage
        if storage is None or not (cfg.history_max_age or cfg.history_max_per_target):
            return 0
        older_than = time.time() - cfg.history_max_age if cfg.history_max_age else 0.0
        gone = storage.run(
            storage.store.expire_history, older_than, cfg.history_max_per_target, EXPIRE_BATCH
        )
        self.expired += gone
        return gone

    def _write_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self.pending and not self._write_pending():
                gevent.sleep(RETRY_AFTER)
                self._wake.set()

    def _write_pending(self) -> bool:
        """Write what is waiting; False if the store failed (what was not written waits)."""
        storage = self.server.storage
        batch, self.pending = self.pending, []
        chunks = _Chunks(storage.store, batch)
        self.in_flight = len(batch)
        try:
            # A store call per chunk: held senders go on as soon as the backlog is down.
            while chunks.left():
                storage.run(chunks.write_one)
                self.in_flight = chunks.left()
                self._release_if_caught_up()
        except StoreUnavailable:  # logged once by storage.py, counted there
            self._put_back(chunks.unwritten())
            self._stop_holding()  # chat goes on while the store fails
            return False
        finally:
            self.in_flight = 0
        self._release_if_caught_up()
        return True

    def read(self, method: str, *args: Any) -> Any:
        """``store.<method>(*args)`` after what is still waiting has been written, both
        on the storage thread; blocks the calling greenlet. StoreUnavailable if either
        fails (the waiting items are kept then)."""
        storage = self.server.storage
        if storage is None:
            raise StoreUnavailable("the server has no storage open")
        if method == "history":
            self._await_heard(args[0])
        store = storage.store
        chunks = _Chunks(store, self.pending)
        self.pending = []

        def write_then_read() -> tuple[Any, float]:
            chunks.write()
            start = time.perf_counter()
            return getattr(store, method)(*args), time.perf_counter() - start

        try:
            result, took = storage.run(write_then_read)
        except StoreUnavailable:
            self._put_back(chunks.unwritten())
            raise
        self.server.metrics.history_reads.observe(took)
        self._release_if_caught_up()
        return result

    def close(self) -> None:
        """Write everything still waiting (the server is stopping), then stop."""
        for greenlet in (self._writer, self._expirer):
            if greenlet is not None:
                greenlet.kill()
        self._writer = self._expirer = None
        self._stop_holding()
        if self.pending and self.server.storage is not None:
            left = len(self.pending)
            if not self._write_pending():
                log.error("history: %d messages could not be stored before stopping", left)
