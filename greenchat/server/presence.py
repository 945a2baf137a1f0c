"""Who is online, watched, operating, or was here before (sans-IO, never yields).

The hub owns one :class:`Presence` and calls it when a user registers,
changes nick or leaves. It keeps the state that is about users rather than
channels: MONITOR watchers (who is told when a nick comes and goes), the
WHOWAS history, the set of operators (LUSERS, WALLOPS) and of users with
``+w``. Like the hub, every method only updates dictionaries and queues
bytes; nothing here blocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold
from greenchat.protocol.numerics import RPL_MONOFFLINE, RPL_MONONLINE
from greenchat.server.whowas import WhoWas, WhoWasEntry

if TYPE_CHECKING:
    from greenchat.server.connection import Connection
    from greenchat.server.hub import Hub

__all__ = ["Presence"]


class Presence:
    def __init__(self) -> None:
        self.whowas = WhoWas()
        # casefolded nick -> the connections that MONITOR it (dict: ordered set).
        self.watchers: dict[str, dict[Connection, None]] = {}
        self.opers: set[Connection] = set()
        self.wallops: set[Connection] = set()

    # -- MONITOR lists -------------------------------------------------------

    def watch(self, conn: Connection, nick: str) -> None:
        key = casefold(nick)
        conn.monitoring[key] = nick
        self.watchers.setdefault(key, {})[conn] = None

    def unwatch(self, conn: Connection, key: str) -> None:
        """Stop ``conn`` watching the casefolded nick ``key``."""
        conn.monitoring.pop(key, None)
        watching = self.watchers.get(key)
        if watching is not None:
            watching.pop(conn, None)
            if not watching:
                del self.watchers[key]

    def unwatch_all(self, conn: Connection) -> None:
        for key in list(conn.monitoring):
            self.unwatch(conn, key)

    def watchers_of(self, nick: str) -> Iterable[Connection]:
        return self.watchers.get(casefold(nick), {}).keys()

    # -- events from the hub -------------------------------------------------

    def online(self, conn: Connection) -> None:
        """``conn`` finished registering (or took a new nick): tell its watchers."""
        for watcher in list(self.watchers_of(conn.nick)):
            watcher.numeric(RPL_MONONLINE, conn.prefix)

    def offline(self, nick: str) -> None:
        for watcher in list(self.watchers_of(nick)):
            watcher.numeric(RPL_MONOFFLINE, nick)

    def nick_changed(self, conn: Connection, old_nick: str) -> None:
        """Remember the old nick for WHOWAS; watchers of either nick learn of the change."""
        self._remember(conn, old_nick)
        if casefold(old_nick) != casefold(conn.nick):
            self.offline(old_nick)
            self.online(conn)

    def gone(self, conn: Connection) -> None:
        """``conn`` left the server: WHOWAS, MONITOR and the oper count follow."""
        self.opers.discard(conn)
        self.wallops.discard(conn)
        self.unwatch_all(conn)
        if conn.registered and conn.nick:
            self._remember(conn, conn.nick)
            self.offline(conn.nick)

    def _remember(self, conn: Connection, nick: str) -> None:
        entry = WhoWasEntry(nick, conn.user, conn.host, conn.realname, conn.ip)
        self.whowas.record(entry, conn.server.config.whowas_size)

    # -- who hears about a user's changes ------------------------------------

    def friends(self, hub: Hub, conn: Connection, cap: str) -> list[Connection]:
        """Who gets ``conn``'s AWAY, SETNAME or CHGHOST lines sent under ``cap``.

        Channel peers that enabled ``cap``, and, with ``extended-monitor``,
        clients that MONITOR ``conn`` even without sharing a channel. Each
        once, never ``conn`` itself.
        """
        found = {peer: None for peer in hub.peers(conn) if cap in peer.caps.enabled}
        for watcher in self.watchers_of(conn.nick):
            enabled = watcher.caps.enabled
            if cap in enabled and "extended-monitor" in enabled:
                found[watcher] = None
        found.pop(conn, None)
        return list(found)
