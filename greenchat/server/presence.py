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
    from greenchat.server.hub import Hub
    from greenchat.server.user import User

__all__ = ["Presence"]


class Presence:
    def __init__(self, whowas_size: int = 1000) -> None:
        self.whowas = WhoWas()
        self.whowas_size = whowas_size  # entries kept (a restart-only setting)
        # casefolded nick -> the users that MONITOR it (dict: ordered set).
        self.watchers: dict[str, dict[User, None]] = {}
        self.opers: set[User] = set()
        self.wallops: set[User] = set()

    # -- MONITOR lists -------------------------------------------------------

    def watch(self, user: User, nick: str) -> None:
        key = casefold(nick)
        user.monitoring[key] = nick
        self.watchers.setdefault(key, {})[user] = None

    def unwatch(self, user: User, key: str) -> None:
        """Stop ``user`` watching the casefolded nick ``key``."""
        user.monitoring.pop(key, None)
        watching = self.watchers.get(key)
        if watching is not None:
            watching.pop(user, None)
            if not watching:
                del self.watchers[key]

    def unwatch_all(self, user: User) -> None:
        for key in list(user.monitoring):
            self.unwatch(user, key)

    def watchers_of(self, nick: str) -> Iterable[User]:
        return self.watchers.get(casefold(nick), {}).keys()

    # -- events from the hub -------------------------------------------------

    def online(self, user: User) -> None:
        """``user`` finished registering (or took a new nick): tell its watchers."""
        for watcher in list(self.watchers_of(user.nick)):
            watcher.session.numeric(RPL_MONONLINE, user.prefix)

    def offline(self, nick: str) -> None:
        for watcher in list(self.watchers_of(nick)):
            watcher.session.numeric(RPL_MONOFFLINE, nick)

    def nick_changed(self, user: User, old_nick: str) -> None:
        """Remember the old nick for WHOWAS; watchers of either nick learn of the change."""
        self._remember(user, old_nick)
        if casefold(old_nick) != casefold(user.nick):
            self.offline(old_nick)
            self.online(user)

    def gone(self, user: User) -> None:
        """``user`` left the server: WHOWAS, MONITOR and the oper count follow."""
        self.opers.discard(user)
        self.wallops.discard(user)
        self.unwatch_all(user)
        if user.registered and user.nick:
            self._remember(user, user.nick)
            self.offline(user.nick)

    def _remember(self, user: User, nick: str) -> None:
        entry = WhoWasEntry(nick, user.username, user.host, user.realname, user.ip)
        self.whowas.record(entry, self.whowas_size)

    # -- who hears about a user's changes ------------------------------------

    def friends(self, hub: Hub, user: User, cap: str) -> list[User]:
        """Who gets ``user``'s AWAY, SETNAME or CHGHOST lines sent under ``cap``.

        Channel peers that enabled ``cap``, and, with ``extended-monitor``,
        clients that MONITOR ``user`` even without sharing a channel. Each
        once, never ``user`` itself.
        """
        found = {peer: None for peer in hub.peers(user) if cap in peer.caps.enabled}
        for watcher in self.watchers_of(user.nick):
            enabled = watcher.caps.enabled
            if cap in enabled and "extended-monitor" in enabled:
                found[watcher] = None
        found.pop(user, None)
        return list(found)
