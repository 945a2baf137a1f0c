"""One store, many nodes: what each node keeps of it in memory follows the others'
changes.

With ``--db redis`` (or ``--workers`` sharing one file) every node reads and writes
the same accounts and registered channels, but keeps two things of them in memory:
the registered nicks (nick_guard.py, in ``ChatServer.registered_nicks``) and ChanServ's
records (channel_registry.py). A node that changes the store says so with a
:class:`StoreChanged` event (:func:`announce`), which the backplane hands to every
other node without anyone waiting; there :class:`StoreFollower` reads the record
again in a greenlet of its own (observers never wait for the store) and brings the
copy in memory up to date: a new account's nick is protected, a dropped one's users
are logged out, a registered channel is kept while empty and gives its founder +o, a
read marker moved on another node reaches the account's sessions here.

On a single server the event is applied and nobody follows it: one dict lookup.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gevent

from greenchat.protocol.casemap import casefold
from greenchat.server.events import Event, StoreChanged
from greenchat.store.base import StoreError

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer

__all__ = ["ACCOUNT", "CHANNEL", "MARKER", "StoreFollower", "announce"]

log = logging.getLogger("greenchat.store")

ACCOUNT, CHANNEL = "account", "channel"
MARKER = "marker"  # an account's read marker moved (name: the account)


def announce(server: ChatServer, what: str, name: str) -> None:
    """The store changed under ``name`` (ACCOUNT, CHANNEL or MARKER): tell the network."""
    server.hub.apply(StoreChanged(what, name))


class StoreFollower:
    """Observer: another node's StoreChanged makes this node read the record again."""

    def __init__(self, server: ChatServer) -> None:
        self.server = server

    def on_event(self, event: Event) -> None:
        if type(event) is StoreChanged and self.server.hub.foreign:
            gevent.spawn(self._follow, event)

    def _follow(self, event: StoreChanged) -> None:
        storage = self.server.storage
        if storage is None:
            return
        try:
            if event.what == ACCOUNT:
                self._account(event.name, storage.run(storage.store.get_account, event.name))
            elif event.what == CHANNEL:
                self._channel(event.name, storage.run(storage.store.get_channel, event.name))
            elif event.what == MARKER:
                markers = storage.run(storage.store.read_markers, event.name)
                self.server.read_markers.follow(event.name, markers)
        except StoreError as exc:  # unavailable: logged by storage.py; the next change retries
            log.warning("could not follow the change of %s %s: %s", event.what, event.name, exc)

    def _account(self, name: str, account) -> None:
        server = self.server
        if account is not None:
            server.registered_nicks.add(casefold(name))
            return
        from greenchat.server.login import log_out  # login.py imports this module

        server.registered_nicks.discard(casefold(name))
        server.channel_registry.account_dropped(name)
        for user in list(server.hub.nicks.values()):
            if user.account == name and user.session is not None:
                log_out(server, user.session)

    def _channel(self, name: str, record) -> None:
        registry = self.server.channel_registry
        if record is None:
            registry.remove(name)
        elif registry.get(name) is None:
            registry.add(record, save=False)  # the node that registered it saved it
        else:
            registry.update(record)
