"""METADATA (IRCv3 ``draft/metadata-3``, as Ergo speaks it): keys and values on users and
channels, and subscriptions to the keys a client wants to hear about.

``METADATA <target> <subcommand> ...``, the target a nick, a channel, or ``*`` for
yourself (replies name you by nick):

* ``GET <key>...``: 761 for each key set, 766 for each not (in a ``metadata`` batch);
* ``LIST``: 761 for every key (a ``metadata`` batch, paged);
* ``SET <key> [<value>]``: sets (761) or, without a value, takes the key off (766);
* ``CLEAR``: takes every key off (766 for each, in a ``metadata`` batch);
* ``SUB <key>...`` / ``UNSUB <key>...`` / ``SUBS``: 770 / 771 / 772 (SUBS in a
  ``metadata-subs`` batch);
* ``SYNC``: METADATA lines for the subscribed keys of a user, or of a channel and all its
  members (a ``metadata`` batch, paged).

You may change your own keys, a channel's if you are its operator, anybody's if you are
an IRC operator. A user's keys are visible to everybody; a channel's to its members (and
operators). Refusals are standard replies, with Ergo's codes: ``FAIL METADATA
INVALID_TARGET | KEY_INVALID | KEY_NO_PERMISSION | KEY_NOT_SET | VALUE_INVALID |
LIMIT_REACHED | TOO_MANY_SUBS | SUBCOMMAND_INVALID | TEMPORARILY_UNAVAILABLE``; changing
your own keys too fast gets 775 with the seconds to wait. With the capability
(``before-connect``), a client may use it on ``*`` before registration. Who is told of a
change is the hub's (MetadataChanged); the rest is server/metadata.py.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from greenchat.backplane import Refused, Unavailable
from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message
from greenchat.protocol.metadata import (
    CAPABILITY,
    MAX_KEYS,
    MAX_SUBS,
    VISIBLE,
    Problem,
    Request,
    fits_a_line,
    parse_request,
    valid_key,
    value_problem,
)
from greenchat.protocol.numerics import (
    ERR_METADATARATELIMIT,
    ERR_NEEDMOREPARAMS,
    ERR_NOTREGISTERED,
    RPL_KEYNOTSET,
    RPL_KEYVALUE,
    RPL_METADATASUBOK,
    RPL_METADATASUBS,
    RPL_METADATAUNSUBOK,
)
from greenchat.server import metadata as meta
from greenchat.server.commands.table import command, wait_for_store
from greenchat.server.commands.users import is_oper, pack
from greenchat.server.events import MetadataChanged
from greenchat.server.flood import TokenBucket
from greenchat.server.hub import Channel
from greenchat.server.user import User, changed
from greenchat.store.base import StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

log = logging.getLogger("greenchat.metadata")

SUBS_BATCH = "metadata-subs"
# A user may change its own keys this often: a burst (a client setting its profile at
# connect), then one every two seconds; each change reaches everyone sharing a channel.
CHANGE_BURST = 10
CHANGE_RATE = 0.5
_KEYS_BUDGET = 400  # bytes of keys on one 770/771/772 line
_KEYS_PER_LINE = 12  # and keys: some parsers stop at 15 parameters
_buckets: weakref.WeakKeyDictionary[User, TokenBucket] = weakref.WeakKeyDictionary()

Target = User | Channel


@command(
    "METADATA",
    min_params=2,
    before_registration=True,
    paged=True,
    fresh=True,
    help="METADATA <target> <GET|LIST|SET|CLEAR|SUB|UNSUB|SUBS|SYNC> [<key>...] [<value>]\n"
    "Reads or sets IRCv3 metadata (draft/metadata-3) of a user, a channel or yourself (*), "
    "and subscribes to the keys you want to hear about.",
)
def metadata(server: ChatServer, conn: Session, msg: Message) -> Iterator[None] | None:
    """Checks, then the subcommand: LIST and SYNC answer a page at a time (generators),
    the others at once, so that a refusal of the network's reaches them (``dispatch``
    runs them, not the pager)."""
    request = parse_request(msg.params)
    if isinstance(request, Problem):
        if request.code:
            conn.fail("METADATA", request.code, *request.context, request.text)
        else:
            conn.numeric(ERR_NEEDMOREPARAMS, "METADATA", request.text)
        return None
    if not conn.user.registered and (request.target != "*" or not conn.has_cap(CAPABILITY)):
        conn.numeric(ERR_NOTREGISTERED, "You have not registered")
        return None
    if request.subcommand in _OWN:
        _OWN[request.subcommand](server, conn, request)
        return None
    target = _target(server, conn, request.target)
    if target is None:
        conn.fail("METADATA", "INVALID_TARGET", request.target, "Invalid metadata target")
        return None
    return _ON_TARGET[request.subcommand](server, conn, target, request)


def _target(server: ChatServer, conn: Session, name: str) -> Target | None:
    if name == "*" or casefold(name) == casefold(conn.user.nick or "*"):
        return conn.user
    return server.hub.get_channel(name) or server.hub.registered_user(name)


def _name(target: Target) -> str:
    return target.name if isinstance(target, Channel) else target.nick or "*"


def _may_see(conn: Session, target: Target) -> bool:
    if isinstance(target, User):
        return True
    return conn.user in target.members or is_oper(conn.user)


def _may_change(conn: Session, target: Target) -> bool:
    if isinstance(target, User):
        return target is conn.user or is_oper(conn.user)
    return target.is_op(conn.user) or is_oper(conn.user)


def _no_permission(conn: Session, target: Target, key: str) -> None:
    conn.fail("METADATA", "KEY_NO_PERMISSION", _name(target), key, "You do not have permission")


# -- reading -----------------------------------------------------------------------------


def _get(server: ChatServer, conn: Session, target: Target, request: Request) -> None:
    if not _may_see(conn, target):
        _no_permission(conn, target, "*")
        return
    name = _name(target)
    keys = []
    for key in request.args:  # refusals first: a FAIL is no part of the batch
        if valid_key(key):
            keys.append(key)
        else:
            conn.fail("METADATA", "KEY_INVALID", key, "Invalid key")
    with meta.batch(server, conn, meta.BATCH, name) as tags:
        for key in keys:
            if key in target.metadata:
                value = target.metadata[key]
                conn.numeric(RPL_KEYVALUE, name, key, VISIBLE, value, tags=tags)
            else:
                conn.numeric(RPL_KEYNOTSET, name, key, "Key is not set", tags=tags)


def _list(server: ChatServer, conn: Session, target: Target, request: Request) -> Iterator[None]:
    if not _may_see(conn, target):
        _no_permission(conn, target, "*")
        return
    name = _name(target)
    with meta.batch(server, conn, meta.BATCH, name) as tags:
        for key, value in list(target.metadata.items()):
            conn.numeric(RPL_KEYVALUE, name, key, VISIBLE, value, tags=tags)
            yield


def _sync(server: ChatServer, conn: Session, target: Target, request: Request) -> Iterator[None]:
    if not _may_see(conn, target):
        _no_permission(conn, target, "*")
        return
    subs = conn.user.metadata_subs
    if isinstance(target, Channel):
        lines = meta.sync_lines(target, list(target.members), subs)
    else:
        lines = meta.sync_lines(None, [target], subs)
    with meta.batch(server, conn, meta.BATCH, _name(target)) as tags:
        for name, key, value in lines:
            meta.send_metadata(server, conn, name, key, value, tags)
            yield


# -- changing ----------------------------------------------------------------------------


def _set(server: ChatServer, conn: Session, target: Target, request: Request) -> None:
    key, value = request.args[0], request.args[1] if len(request.args) > 1 else None
    name = _name(target)
    if not valid_key(key):
        conn.fail("METADATA", "KEY_INVALID", key, "Invalid key")
    elif not _may_change(conn, target):
        _no_permission(conn, target, key)
    elif value is None and key not in target.metadata:
        conn.fail("METADATA", "KEY_NOT_SET", name, key, "Key is not set")
    elif value is not None and (problem := value_problem(value)):
        conn.fail("METADATA", "VALUE_INVALID", name, key, problem)
    elif value is not None and not _fits(server, name, key, value):
        conn.fail("METADATA", "VALUE_INVALID", name, key, "Value is too long for this target")
    elif value is not None and key not in target.metadata and len(target.metadata) >= MAX_KEYS:
        conn.fail("METADATA", "LIMIT_REACHED", name, f"Too many keys (at most {MAX_KEYS})")
    elif target.metadata.get(key) == value or _change(server, conn, target, ((key, value),)):
        if value is None:
            conn.numeric(RPL_KEYNOTSET, name, key, "Key is not set")
        else:
            conn.numeric(RPL_KEYVALUE, name, key, VISIBLE, value)


def _fits(server: ChatServer, name: str, key: str, value: str) -> bool:
    return fits_a_line(server.config.name, server.config.nicklen, name, key, value)


def _clear(server: ChatServer, conn: Session, target: Target, request: Request) -> None:
    if not _may_change(conn, target):
        _no_permission(conn, target, "*")
        return
    keys = list(target.metadata)
    if keys and not _change(server, conn, target, tuple((key, None) for key in keys)):
        return
    name = _name(target)
    with meta.batch(server, conn, meta.BATCH, name) as tags:
        for key in keys:
            conn.numeric(RPL_KEYNOTSET, name, key, "Key is not set", tags=tags)


def _change(
    server: ChatServer, conn: Session, target: Target, changes: tuple[tuple[str, str | None], ...]
) -> bool:
    """Make ``changes``: kept by the target's account first, if it has one. Too many
    changes of one's own keys, a failing store, a target gone while the store was
    written, or a network that cannot take the change refuse them all (nothing kept).
    Whether they were made."""
    name = _name(target)
    if target is conn.user and not _within_rate(conn, name, changes[0]):
        return False
    account = target.account if isinstance(target, User) else ""
    before = tuple((key, target.metadata.get(key)) for key, _ in changes)
    if account:
        if not _keep(conn, name, account, changes):
            return False
        # The wait let others run: the user may have quit, or changed nick.
        if target is not conn.user and server.hub.registered_user(name) is not target:
            _keep(conn, name, account, before, quiet=True)
            conn.fail("METADATA", "INVALID_TARGET", name, "Invalid metadata target")
            return False
    if not conn.user.registered:  # before-connect: the network hears of them at registration
        target.metadata = changed(target.metadata, changes)
        return True
    try:
        server.hub.apply(MetadataChanged(conn.user.nick, name, changes))
    except (Refused, Unavailable):  # another node's change came first, or Redis is down
        if account:
            _keep(conn, name, account, before, quiet=True)
        text = "The change could not be made now; try again later"
        conn.fail("METADATA", "TEMPORARILY_UNAVAILABLE", name, text)
        return False
    return True


def _keep(
    conn: Session,
    name: str,
    account: str,
    changes: tuple[tuple[str, str | None], ...],
    quiet: bool = False,
) -> bool:
    """Write ``changes`` to ``account``'s keys; a failing store is a FAIL (or, ``quiet``,
    when undoing a change, only a log line)."""
    try:
        wait_for_store(conn, "set_account_metadata", account, list(changes))
    except StoreUnavailable:
        log.warning("metadata of %s not kept: the store is failing", account)
        if not quiet:
            text = "Metadata cannot be kept now (storage failing); try again later"
            conn.fail("METADATA", "TEMPORARILY_UNAVAILABLE", name, text)
        return False
    return True


def _within_rate(conn: Session, name: str, first: tuple[str, str | None]) -> bool:
    """One token of the user's bucket, or a 775 saying when to try again."""
    now = time.monotonic()
    bucket = _buckets.get(conn.user)
    if bucket is None:
        bucket = _buckets[conn.user] = TokenBucket(CHANGE_BURST, CHANGE_RATE, now)
    if bucket.allowance(now) >= 1:
        bucket.spend(1)
        return True
    key, value = first
    retry = str(max(1, math.ceil(bucket.wait())))
    conn.numeric(ERR_METADATARATELIMIT, name, key, retry, value or "*")
    return False


# -- subscriptions -----------------------------------------------------------------------


def _sub(server: ChatServer, conn: Session, request: Request) -> None:
    user, added = conn.user, []
    subs = set(user.metadata_subs)
    for key in request.args:
        if not valid_key(key):
            conn.fail("METADATA", "KEY_INVALID", key, "Invalid key")
            continue
        if key not in subs and len(subs) >= MAX_SUBS:
            conn.fail("METADATA", "TOO_MANY_SUBS", key, f"Too many subscriptions ({MAX_SUBS})")
            break
        subs.add(key)
        added.append(key)
    user.metadata_subs = frozenset(subs)
    for keys in _key_lines(added):
        conn.numeric(RPL_METADATASUBOK, *keys)


def _unsub(server: ChatServer, conn: Session, request: Request) -> None:
    user, removed = conn.user, []
    for key in request.args:
        if valid_key(key):
            removed.append(key)
        else:
            conn.fail("METADATA", "KEY_INVALID", key, "Invalid key")
    user.metadata_subs = user.metadata_subs - set(removed)
    for keys in _key_lines(removed):
        conn.numeric(RPL_METADATAUNSUBOK, *keys)


def _subs(server: ChatServer, conn: Session, request: Request) -> None:
    with meta.batch(server, conn, SUBS_BATCH) as tags:
        for keys in _key_lines(sorted(conn.user.metadata_subs)):
            conn.numeric(RPL_METADATASUBS, *keys, tags=tags)


def _key_lines(keys: list[str]) -> Iterator[list[str]]:
    """``keys`` (each once) in groups that fit one line: few enough, short enough."""
    for text in pack(dict.fromkeys(keys), budget=_KEYS_BUDGET):
        words = text.split(" ")
        for start in range(0, len(words), _KEYS_PER_LINE):
            yield words[start : start + _KEYS_PER_LINE]


_OWN = {"SUB": _sub, "UNSUB": _unsub, "SUBS": _subs}  # the client's own: no target
_ON_TARGET = {
    "GET": _get, "LIST": _list, "SYNC": _sync, "SET": _set, "CLEAR": _clear,
}  # fmt: skip
