"""Read markers (IRCv3 draft/read-marker): how far a user has read each conversation.

A logged-in user's markers belong to the account, are kept in the store, and are
shared by every session of it: a client that reads on the phone clears the
laptop's unread marks. They are read from the store once, when a session logs
in (a login waits on the store anyway), and kept in memory while the account has
a session, so a JOIN can answer at once without waiting. A user without an
account has markers for as long as the connection lives.

A marker only moves forward and never past the present; a conversation is named
by its casefolded channel name or nick. This module keeps and changes them; the
MARKREAD command (commands/markread.py) speaks the protocol.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message
from greenchat.server.commands.table import wait_for_store
from greenchat.server.events import AccountChanged, Event, Quit, UserRegistered
from greenchat.server.outgoing import format_server_time
from greenchat.store.base import StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session
    from greenchat.server.user import User

__all__ = ["CAPABILITY", "MAX_MARKERS", "ReadMarkers", "TooManyMarkers"]

log = logging.getLogger("greenchat.read_markers")

CAPABILITY = "draft/read-marker"
MAX_MARKERS = 1000  # conversations one user or account may keep a marker for


class TooManyMarkers(Exception):
    """A marker for one more conversation than :data:`MAX_MARKERS`."""


class ReadMarkers:
    """Every local user's markers, by account when logged in; a hub observer keeps
    track of which users are sessions of which account."""

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self._of_account: dict[str, dict[str, float]] = {}  # casefolded account -> markers
        self._sessions: dict[str, set[User]] = {}  # casefolded account -> its users
        self._account_of: weakref.WeakKeyDictionary[User, str] = weakref.WeakKeyDictionary()
        # Users without an account: their markers last as long as they do.
        self._own: weakref.WeakKeyDictionary[User, dict[str, float]] = weakref.WeakKeyDictionary()

    # -- who is logged in as whom (a hub observer: never yields) ------------------------

    def on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is UserRegistered or kind is AccountChanged:
            user = self.server.hub.nicks.get(casefold(event.nick))
            if user is not None:
                self._forget(user)
                if user.account:
                    key = casefold(user.account)
                    self._sessions.setdefault(key, set()).add(user)
                    self._account_of[user] = key
        elif kind is Quit:
            user = self.server.hub.nicks.get(casefold(event.nick))
            if user is not None:
                self._forget(user)

    def _forget(self, user: User) -> None:
        """``user`` is no session of the account it was (logged out, gone); the last
        session of an account takes its markers out of memory (they stay stored)."""
        key = self._account_of.pop(user, None)
        if key is None:
            return
        sessions = self._sessions.get(key, set())
        sessions.discard(user)
        if not sessions:
            self._sessions.pop(key, None)
            self._of_account.pop(key, None)

    # -- loading (while logging in: the caller's greenlet waits) ----------------------

    def load(self, conn: Session, account: str) -> None:
        """Read ``account``'s markers from the store unless they are in memory. A
        failing store leaves them unread: the login goes on, the next one retries."""
        key = casefold(account)
        if key in self._of_account:
            return
        try:
            markers = wait_for_store(conn, "read_markers", account)
        except StoreUnavailable:
            log.warning("read markers of %s could not be read; they show as unknown", account)
            return
        self._of_account.setdefault(key, markers)

    # -- reading and moving -------------------------------------------------------------

    def _markers(self, user: User) -> dict[str, float]:
        if user.account:
            return self._of_account.setdefault(casefold(user.account), {})
        return self._own.setdefault(user, {})

    def get(self, user: User, target: str) -> float | None:
        return self._markers(user).get(casefold(target))

    def move(self, conn: Session, target: str, when: float) -> float:
        """Move ``conn``'s marker of ``target`` to ``when`` (no later than now); the
        marker after, which is the old one if it was there or later already.
        StoreUnavailable when the store refuses an account's; TooManyMarkers."""
        user, key = conn.user, casefold(target)
        markers = self._markers(user)
        current = markers.get(key)
        when = min(when, round(time.time() * 1000) / 1000)
        if current is not None and when <= current:
            return current
        if current is None and len(markers) >= MAX_MARKERS:
            raise TooManyMarkers(target)
        if user.account:
            when = wait_for_store(conn, "set_read_marker", user.account, key, when)
            markers = self._markers(user)  # the wait may have let the account log out
        markers[key] = max(when, markers.get(key, when))
        return markers[key]

    def sessions_of(self, user: User) -> list[User]:
        """Every local user whose markers are ``user``'s: the account's sessions."""
        if not user.account:
            return [user]
        return list(self._sessions.get(casefold(user.account), ())) or [user]

    def follow(self, account: str, stored: dict[str, float]) -> None:
        """Another node moved a marker of ``account`` (``stored``: all its markers, as
        the store has them now): the ones that moved go to this node's sessions of
        the account that have the capability. No session here: nothing is kept."""
        key = casefold(account)
        markers = self._of_account.get(key)
        if markers is None:
            return
        sessions = [u for u in self._sessions.get(key, ()) if u.session and u.has_cap(CAPABILITY)]
        for target, when in stored.items():
            if when <= markers.get(target, 0.0):
                continue
            markers[target] = when
            channel = self.server.hub.get_channel(target)
            line = self.message(channel.name if channel else target, when).to_bytes()
            for user in sessions:
                user.enqueue(line)

    def send(self, conn: Session, target: str) -> None:
        """``MARKREAD <target> timestamp=...`` (or ``*``) to ``conn``."""
        conn.send(self.message(target, self.get(conn.user, target)))

    def message(self, target: str, when: float | None) -> Message:
        stamp = "*" if when is None else "timestamp=" + format_server_time(when)
        return Message("MARKREAD", (target, stamp), self.server.config.name)
