"""Registered channels (ChanServ) in memory, restored at start and kept in the store.

A registered channel lives in the hub even while nobody is in it (as on Ergo):
:meth:`ChannelRegistry.load` makes every one at start, before any port is
bound, with its topic, modes, key, limit, bans and creation time as stored, and
the hub keeps it when its last member leaves (``Hub.keep_channel``). So the
JOIN checks (+k, +l, +i, bans) hold for the first joiner after a restart too,
and nobody becomes its operator by being first in: the founder and the access
list get their modes on join instead (:meth:`joined`, from the JOIN handler
right after the Joined event, so the MODE comes before the names, as on Ergo;
not from an observer, which must not apply events while one is applied).

The registry holds each channel's :class:`RegisteredChannel` for who may do
what (founder, access list); the live state is the hub's channel. Changes of it
reach the store without the hub ever waiting: :meth:`on_event` (an observer)
notes the registered channel a TopicSet, ChannelModeChanged or MetadataChanged
touched, and one writer greenlet saves the noted channels' state with
``storage.run``, one write per channel however many changes came meanwhile. A
store that fails keeps the channels noted: the writer says so once and tries
again later (the state in memory is always the newest, so a late write loses
nothing). At stop, :meth:`close` writes what is still pending, once.

Every write is a read-modify-write run whole on the storage thread (the one
thread every store call runs on, in order): the writer replaces the state
fields, ChanServ the access list, and neither overwrites the other's.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event as Flag

from greenchat.protocol.casemap import casefold
from greenchat.server.events import ChannelModeChanged, Event, MetadataChanged, TopicSet
from greenchat.server.hub import PREFIX_MODES
from greenchat.server.user import frozen
from greenchat.store.base import AccountStore, RegisteredChannel, StoreError, StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.hub import Channel, Hub
    from greenchat.server.storage import Storage
    from greenchat.server.user import User

__all__ = ["ChannelRegistry", "save_access", "state_of"]

log = logging.getLogger("greenchat.chanserv")

# Seconds the writer waits before trying a failing store again, doubling up to the last.
RETRY_FIRST = 0.5
RETRY_LONGEST = 30.0


def state_of(channel: Channel) -> dict[str, Any]:
    """The fields of a RegisteredChannel that follow the live channel."""
    return {
        "topic": channel.topic,
        "topic_setter": channel.topic_setter,
        "topic_time": float(channel.topic_set_at),
        "modes": "".join(sorted(channel.modes)),
        "key": channel.join_key,
        "limit": channel.limit,
        "bans": tuple((mask, by, float(when)) for mask, by, when in channel.bans.values()),
        "exceptions": tuple(
            (char, mask, by, float(when))
            for char in "eI"
            for mask, by, when in channel.mask_list(char).values()
        ),
        "metadata": dict(channel.metadata),
    }


def _save_state(store: AccountStore, name: str, state: dict[str, Any]) -> bool:
    """On the storage thread: the stored record of ``name`` with the new state; False
    if it is no longer registered."""
    record = store.get_channel(name)
    if record is None:
        return False
    return store.update_channel(dataclasses.replace(record, **state))


def save_access(
    store: AccountStore, name: str, account: str, modes: str
) -> RegisteredChannel | None:
    """On the storage thread: ``account`` gets ``modes`` ('o', 'v'; '' takes it off) on
    the access list of ``name``; the new record, or None if it is not registered."""
    record = store.get_channel(name)
    if record is None:
        return None
    folded = casefold(account)
    access = {k: v for k, v in record.access.items() if casefold(k) != folded}
    if modes:
        access[account] = modes
    record = dataclasses.replace(record, access=access)
    return record if store.update_channel(record) else None


class ChannelRegistry:
    """The registered channels of one server: records, restore, persistence."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.records: dict[str, RegisteredChannel] = {}  # casefolded name -> record
        # casefolded name -> casefolded account -> 'o' or 'v' (the founder: 'o').
        self._modes: dict[str, dict[str, str]] = {}
        self._dirty: dict[str, None] = {}  # channels whose state is not saved yet, in order
        self._wake = Flag()  # set when a channel is noted
        self._closing = Flag()  # set by close(): one last pass, no waiting to retry
        self._storage: Storage | None = None
        self._writer: gevent.Greenlet | None = None
        self.retry_first = RETRY_FIRST

    # -- start and stop -------------------------------------------------------------

    def load(self, storage: Storage) -> None:
        """Every registered channel into the hub, then the writer; at start, before any
        listener. StoreError if they cannot be read (the server does not start)."""
        try:
            records = storage.run(storage.store.channels)
        except StoreUnavailable as exc:
            raise StoreError(
                f"cannot read the registered channels from the database: {exc}"
            ) from None
        for record in records:
            self._set(record)
            _restore(self.hub.keep_channel(record.name), record)
        self._storage = storage
        self._writer = gevent.spawn(self._write_loop)
        if records:
            log.info("restored %d registered channels", len(records))

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending (one try each), then stop the writer."""
        if self._writer is None:
            return
        self._closing.set()
        self._wake.set()
        self._writer.join(timeout)
        if not self._writer.dead:
            self._writer.kill(block=False)
        lost = [self.records[key].name for key in self._dirty if key in self.records]
        if lost:
            log.error("stopping: changes of %s not saved (storage failing)", ", ".join(lost))

    # -- who is registered ----------------------------------------------------------

    def get(self, name: str) -> RegisteredChannel | None:
        return self.records.get(casefold(name))

    def mode_of(self, account: str, channel: str) -> str:
        """'o' for the founder and the access list's operators, 'v' for its voices, else ''."""
        if not account:
            return ""
        return self._modes.get(casefold(channel), {}).get(casefold(account), "")

    def is_founder(self, account: str, channel: str) -> bool:
        record = self.get(channel)
        if not account or record is None:
            return False
        return casefold(record.founder) == casefold(account)

    def add(self, record: RegisteredChannel, save: bool = True) -> None:
        """A channel just registered (in the store): kept from now on, its state saved
        again (it may have changed while the registration was written). ``save=False``:
        another node registered it, and saves it (shared_store.py)."""
        self._set(record)
        key = casefold(record.name)
        if self.hub.get_channel(record.name) is None:  # emptied while it was written
            _restore(self.hub.keep_channel(record.name), record)
        else:
            self.hub.keep_channel(record.name)
        if save:
            self._note(key)

    def remove(self, name: str) -> None:
        """No longer registered (DROP): an empty channel goes."""
        key = casefold(name)
        self.records.pop(key, None)
        self._modes.pop(key, None)
        self._dirty.pop(key, None)
        self.hub.release_channel(name)

    def update(self, record: RegisteredChannel) -> None:
        """A record's founder or access list changed (in the store already)."""
        if casefold(record.name) in self.records:
            self._set(record)

    def account_dropped(self, account: str) -> None:
        """The store dropped ``account``, the channels it founded and its access entries
        (store/base.py): so does memory, so the next owner of the name inherits nothing."""
        folded = casefold(account)
        for record in list(self.records.values()):
            if casefold(record.founder) == folded:
                self.remove(record.name)
            elif any(casefold(name) == folded for name in record.access):
                access = {k: v for k, v in record.access.items() if casefold(k) != folded}
                self._set(dataclasses.replace(record, access=access))

    def _set(self, record: RegisteredChannel) -> None:
        key = casefold(record.name)
        self.records[key] = record
        modes = {casefold(name): mode for name, mode in record.access.items()}
        modes[casefold(record.founder)] = "o"
        self._modes[key] = modes

    # -- joins ----------------------------------------------------------------------

    def passes(self, user: User, channel: Channel) -> bool:
        """The founder and access-list operators get past +l, +k, +i and bans (Ergo)."""
        return channel.key in self.records and self.mode_of(user.account, channel.key) == "o"

    def joined(self, user: User, channel: Channel) -> None:
        """``user`` just joined ``channel`` (the Joined event is applied): the founder
        and the access list get their mode, as a MODE from the server."""
        if channel.key not in self.records or not user.account:
            return
        mode = self.mode_of(user.account, channel.key)
        status = channel.members.get(user)
        if mode and status is not None and mode not in status:
            changes = (("+", mode, user.nick),)
            self.hub.apply(ChannelModeChanged(self.hub.name, channel.name, changes))

    # -- persistence ----------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Observer: note a registered channel whose topic or modes changed (cheap for
        every other event: a type check, a dict lookup). Never blocks: the writer saves."""
        kind = type(event)  # called for every event, every message too: keep this lean
        if kind is not TopicSet and kind is not ChannelModeChanged and kind is not MetadataChanged:
            return  # (a MetadataChanged of a user names a nick: never a registered channel)
        if self.hub.foreign:
            return  # another node's change: that node saves it in the store we share
        name = event.target if kind is MetadataChanged else event.channel  # type: ignore
        key = casefold(name)
        if key not in self.records:
            return
        if kind is ChannelModeChanged and all(
            char in PREFIX_MODES
            for _, char, _ in event.changes  # type: ignore[attr-defined]
        ):
            return  # only members' +o/+v: nothing that is stored
        self._note(key)

    def _note(self, key: str) -> None:
        self._dirty[key] = None
        self._wake.set()

    def _write_loop(self) -> None:
        delay = self.retry_first
        failing = False
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._dirty:
                key = next(iter(self._dirty))
                del self._dirty[key]
                try:
                    self._write(key)
                except StoreUnavailable:  # logged once by storage.py
                    self._dirty.setdefault(key, None)
                    if self._closing.is_set():
                        return
                    if not failing:
                        failing = True
                        log.warning("registered channels' state not saved (storage failing);"
                                    " trying again until it recovers")  # fmt: skip
                    self._closing.wait(delay)  # a pause, cut short by close()
                    delay = min(delay * 2, RETRY_LONGEST)
                    continue
                except Exception:  # a bug: this write is dropped, the writer goes on
                    log.exception("saving the state of %s", key)
                if failing:
                    failing = False
                    delay = self.retry_first
                    log.warning("registered channels' state saved again")
            if self._closing.is_set():
                return

    def _write(self, key: str) -> None:
        record = self.records.get(key)
        channel = self.hub.channels.get(key)
        if record is None or channel is None or self._storage is None:
            return  # dropped meanwhile
        if not self._storage.run(_save_state, self._storage.store, record.name, state_of(channel)):
            log.warning("%s is no longer registered in the store; forgetting it", record.name)
            self.remove(record.name)


def _restore(channel: Channel, record: RegisteredChannel) -> None:
    """A channel (new, empty) as ``record`` says it was."""
    channel.topic = record.topic
    channel.topic_setter = record.topic_setter
    channel.topic_set_at = int(record.topic_time)
    channel.modes = set(record.modes)
    channel.join_key = record.key
    channel.limit = record.limit
    channel.bans = {casefold(mask): (mask, by, int(when)) for mask, by, when in record.bans}
    for char, mask, by, when in record.exceptions:
        channel.mask_list(char)[casefold(mask)] = (mask, by, int(when))
    channel.lists_changed()
    channel.metadata = frozen(record.metadata)
    channel.created = int(record.registered_at)
