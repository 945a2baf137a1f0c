"""Connection registration and keepalive: CAP, PASS, NICK, USER, PING, PONG, QUIT."""

from __future__ import annotations

import hmac
import logging
import re
import time
from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold, valid_nick
from greenchat.protocol.message import Message, truncate_utf8
from greenchat.protocol.numerics import (
    ERR_ALREADYREGISTERED,
    ERR_ERRONEUSNICKNAME,
    ERR_INVALIDCAPCMD,
    ERR_NEEDMOREPARAMS,
    ERR_NICKNAMEINUSE,
    ERR_NONICKNAMEGIVEN,
    ERR_PASSWDMISMATCH,
)
from greenchat.server import metadata
from greenchat.server.commands.sasl import abort_sasl
from greenchat.server.commands.table import command
from greenchat.server.events import AwayChanged, NickChanged, UserRegistered
from greenchat.server.nick_guard import guard_nick
from greenchat.server.outgoing import variant_of
from greenchat.server.welcome import send_lusers, send_motd, send_welcome

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

log = logging.getLogger("greenchat.registration")

USERLEN = 10
REALNAMELEN = 150  # bytes; keeps WHO/WHOIS/extended-join lines within 512
_USER_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


@command(
    "CAP",
    min_params=1,
    before_registration=True,
    help=("CAP <LS [302]|LIST|REQ <capabilities>|END>\nNegotiates IRCv3 capabilities."),
)
def cap(server: ChatServer, conn: Session, msg: Message) -> None:
    sub = msg.params[0]
    replies = conn.caps.handle(sub, list(msg.params[1:]))
    if replies is None:
        conn.numeric(ERR_INVALIDCAPCMD, sub, "Invalid CAP command")
        return
    conn.set_variant(variant_of(conn.caps.enabled))
    for params in replies:
        conn.send(Message("CAP", (conn.target, *params), server.config.name))
    try_register(server, conn)


@command(
    "PASS",
    min_params=1,
    before_registration=True,
    help=("PASS <password>\nGives the server's password, before NICK and USER."),
)
def pass_(server: ChatServer, conn: Session, msg: Message) -> None:
    if conn.user.registered:
        conn.numeric(ERR_ALREADYREGISTERED, "You may not reregister")
        return
    conn.password = msg.params[0]


@command(
    "NICK",
    before_registration=True,
    fresh=True,
    help=("NICK <nick>\nSets or changes your nick."),
)
def nick(server: ChatServer, conn: Session, msg: Message) -> None:
    if not msg.params or not msg.params[0]:
        conn.numeric(ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    new = msg.params[0]
    if not valid_nick(new, server.config.nicklen):
        conn.numeric(ERR_ERRONEUSNICKNAME, new, "Erroneous nickname")
        return
    if casefold(new) in server.services:
        conn.numeric(ERR_ERRONEUSNICKNAME, new, "Reserved for a service")
        return
    if new == conn.user.nick:
        return
    owner = server.hub.nick_owner(new)
    if owner is not None and owner is not conn.user:
        conn.numeric(ERR_NICKNAMEINUSE, new, "Nickname is already in use")
        return
    if conn.user.registered:
        server.hub.apply(NickChanged(conn.user.nick, new))
        guard_nick(server, conn.user)
        return
    server.hub.claim_nick(conn.user, new)
    conn.user.set_nick(new)
    try_register(server, conn)


@command(
    "USER",
    min_params=4,
    before_registration=True,
    help=("USER <username> 0 * <realname>\nGives your username and real name when connecting."),
)
def user(server: ChatServer, conn: Session, msg: Message) -> None:
    if conn.user.registered:
        conn.numeric(ERR_ALREADYREGISTERED, "You may not reregister")
        return
    if not msg.params[0] or not msg.params[3]:  # an empty username or realname (as Ergo)
        conn.numeric(ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
        return
    # No ident lookup is done, so the username gets the conventional '~'.
    name = _USER_UNSAFE.sub("", msg.params[0])[:USERLEN] or "u"
    conn.user.username = "~" + name
    conn.user.realname = truncate_utf8(msg.params[3], REALNAMELEN) or conn.user.username
    try_register(server, conn)


def try_register(server: ChatServer, conn: Session) -> None:
    """Complete registration once NICK, USER and any CAP negotiation are done."""
    if (
        conn.user.registered
        or not conn.user.nick
        or not conn.user.username
        or conn.caps.in_progress
    ):
        return
    wanted = server.config.password
    given = conn.password or ""
    if wanted is not None and not hmac.compare_digest(given.encode(), wanted.encode()):
        conn.numeric(ERR_PASSWDMISMATCH, "Password incorrect")
        conn.disconnect("Bad password")
        return
    abort_sasl(conn)  # registration does not wait for a login left unfinished
    user = conn.user
    event = UserRegistered(
        user.nick, user.username, user.host, user.realname, user.account, ip=user.ip
    )
    server.hub.apply(event)
    if conn.pre_away:  # draft/pre-away: AWAY came before registration
        server.hub.apply(AwayChanged(user.nick, conn.pre_away))
    server.metrics.registration.observe(time.monotonic() - conn.connected_at)
    log.info("registered %s from %s:%s", conn.user.prefix, conn.user.host, conn.port)
    send_welcome(server, conn)
    metadata.registered(server, conn)  # keys set before registration, the client's burst
    guard_nick(server, user)


@command(
    "PING",
    min_params=1,
    before_registration=True,
    help=("PING <token>\nAsks the server for a PONG with the same token."),
)
def ping(server: ChatServer, conn: Session, msg: Message) -> None:
    name = server.config.name
    conn.send(Message("PONG", (name, msg.params[0]), name))


@command(
    "PONG",
    before_registration=True,
    help=("PONG <token>\nAnswers the server's PING."),
)
def pong(server: ChatServer, conn: Session, msg: Message) -> None:
    """Any input resets the keepalive clock; PONG needs nothing more."""


@command(
    "QUIT",
    before_registration=True,
    help=("QUIT [<reason>]\nDisconnects; your channels see the reason."),
)
def quit_(server: ChatServer, conn: Session, msg: Message) -> None:
    text = msg.params[0] if msg.params else ""
    conn.disconnect(f"Quit: {text}" if text else "Client Quit")


@command(
    "MOTD",
    help=("MOTD\nShows the message of the day."),
)
def motd(server: ChatServer, conn: Session, msg: Message) -> None:
    send_motd(server, conn)


@command(
    "LUSERS",
    fresh=True,
    help=("LUSERS\nShows how many users, operators and channels the network has."),
)
def lusers(server: ChatServer, conn: Session, msg: Message) -> None:
    send_lusers(server, conn)
