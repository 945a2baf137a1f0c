"""Registered nicks stay their owners'.

A nick that is an account's name is reserved for that account: whoever takes
it without being logged in to it gets a NOTICE from NickServ, and unless they
log in within ``--nick-grace`` seconds they are renamed to a ``Guest`` nick
(as Ergo's nick enforcement does). The server knows every account's name in
memory (``ChatServer.registered_nicks``), so taking a nick never waits for
the store; the check at the deadline is a plain look at the user.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import gevent

from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message
from greenchat.server.events import NickChanged

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.user import User

__all__ = ["guard_nick"]

GUEST = "Guest"


def _owes_login(server: ChatServer, user: User, key: str) -> bool:
    """``user`` still holds the registered nick ``key`` without its account."""
    return (
        server.hub.nick_owner(user.nick) is user
        and casefold(user.nick) == key
        and casefold(user.account) != key
    )


def guard_nick(server: ChatServer, user: User) -> None:
    """``user`` just took its nick (registered, or NICK): warn and time them if the
    nick is someone's account they are not logged in to."""
    key = casefold(user.nick)
    if key not in server.registered_nicks or not _owes_login(server, user, key):
        return
    grace = server.config.nick_grace
    _notice(server, user, f"{user.nick} is a registered account. Log in within {grace:g} "
            "seconds (/msg NickServ IDENTIFY <password>) or you will be renamed.")  # fmt: skip
    gevent.spawn_later(grace, _enforce, server, user, key)


def _enforce(server: ChatServer, user: User, key: str) -> None:
    if not _owes_login(server, user, key):
        return  # logged in, renamed or gone meanwhile
    guest = _free_guest_nick(server)
    _notice(server, user, f"You did not log in to {user.nick}: you are now {guest}.")
    server.hub.apply(NickChanged(user.nick, guest))


def _free_guest_nick(server: ChatServer) -> str:
    while True:
        nick = f"{GUEST}{random.randrange(10_000, 100_000)}"
        if server.hub.nick_owner(nick) is None and casefold(nick) not in server.registered_nicks:
            return nick


def _notice(server: ChatServer, user: User, text: str) -> None:
    if user.session is not None:
        prefix = server.services["nickserv"].prefix(server)
        user.session.send(Message("NOTICE", (user.nick, text), prefix))
