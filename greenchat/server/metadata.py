"""IRCv3 metadata (``draft/metadata-3``) around the command: what a client is sent when
it registers and when it joins a channel, what an account keeps, and who may do what.

The METADATA command itself is commands/metadata.py; what a key and a value may be,
protocol/metadata.py; a change is a :class:`~greenchat.server.events.MetadataChanged`
event, which the hub applies and tells the target's subscribers of (hub.py). Here:

* :func:`registered`: keys set before registration (``before-connect``) become the
  network's, and a client with the capability gets a ``metadata`` batch of its own keys
  (empty if it has none), as Ergo sends in its registration burst;
* :func:`joined`: a client that subscribed to keys and joins a channel gets the
  channel's keys and its members', in a ``metadata`` batch; a channel with more than
  :data:`SYNC_LATER_OVER` of them gets ``774`` instead (METADATA SYNC sends them,
  paged);
* :func:`logged_in`: a user that logs in gets the keys its account keeps, and the account
  keeps the keys the user set before (they are newer). While logged in, every change of a
  user's keys is written to its account before it is applied (commands/metadata.py), so
  they come back at the next login. Several users logged in to one account each have
  their own keys; the account keeps the last written of each.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from greenchat.protocol.message import Message, clip_line
from greenchat.protocol.metadata import CAPABILITY, MAX_KEYS, VISIBLE
from greenchat.protocol.numerics import ERR_METADATASYNCLATER
from greenchat.server.commands.table import wait_for_store
from greenchat.server.events import MetadataChanged
from greenchat.server.labeled import close_batch, open_batch
from greenchat.server.user import frozen
from greenchat.store.base import StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session
    from greenchat.server.user import User

__all__ = [
    "BATCH",
    "SYNC_LATER_OVER",
    "SYNC_RETRY",
    "batch",
    "joined",
    "logged_in",
    "registered",
    "send_metadata",
    "sync_lines",
]

log = logging.getLogger("greenchat.metadata")

BATCH = "metadata"  # the batch type of METADATA lines and of GET/LIST/CLEAR replies
# A JOIN sends at most this many keys at once (the channel's and its members'); past
# it, 774 says to ask with METADATA SYNC, whose reply is paged.
SYNC_LATER_OVER = 200
SYNC_RETRY = "5"  # seconds 774 asks the client to wait before its SYNC


@contextlib.contextmanager
def batch(server: ChatServer, conn: Session, kind: str, *params: str) -> Iterator[dict[str, str]]:
    """A batch of ``kind`` around what the block queues, for a client with ``batch``;
    yields the tags its lines carry (none without it)."""
    if not conn.has_cap("batch"):
        yield {}
        return
    name = server.config.name
    ref = open_batch(conn, name, kind, *params)
    try:
        yield {"batch": ref}
    finally:
        close_batch(conn, name, ref)


def send_metadata(
    server: ChatServer, conn: Session, target: str, key: str, value: str, tags: dict
) -> None:
    """``METADATA <target> <key> * :<value>``, the value always after ':' (as fan-out has it)."""
    line = Message("METADATA", (target, key, VISIBLE, value), server.config.name, tags)
    conn.enqueue(clip_line(line.to_bytes(True)))  # SET checked the value fits: a backstop


def sync_lines(
    channel: Channel | None, users: list[User], subs: frozenset[str]
) -> Iterator[tuple[str, str, str]]:
    """``(target, key, value)`` of every key in ``subs`` that ``channel`` (first) and
    ``users`` have set, in that order."""
    if channel is not None:
        for key, value in channel.metadata.items():
            if key in subs:
                yield channel.name, key, value
    for user in users:
        for key, value in user.metadata.items():
            if key in subs:
                yield user.nick or "*", key, value  # '*': SYNC before NICK


def registered(server: ChatServer, conn: Session) -> None:
    """Right after the welcome: keys set before registration go to the network (the
    client's own session is not told again), then the burst of the client's own keys."""
    user = conn.user
    if user.metadata:
        server.hub.apply(MetadataChanged(user.nick, user.nick, tuple(user.metadata.items())))
    if not conn.has_cap(CAPABILITY):
        return
    with batch(server, conn, BATCH, user.nick) as tags:
        for key, value in user.metadata.items():
            send_metadata(server, conn, user.nick, key, value, tags)


def joined(server: ChatServer, conn: Session, channel: Channel) -> None:
    """After a JOIN's names: the subscribed keys of the channel and its members, at once
    up to :data:`SYNC_LATER_OVER`, else a 774 (METADATA SYNC pages them)."""
    subs = conn.user.metadata_subs
    if not subs or not conn.has_cap(CAPABILITY):
        return
    lines = []
    for line in sync_lines(channel, list(channel.members), subs):
        lines.append(line)
        if len(lines) > SYNC_LATER_OVER:
            conn.numeric(ERR_METADATASYNCLATER, channel.name, SYNC_RETRY, trailing=False)
            return
    if not lines:
        return
    with batch(server, conn, BATCH, channel.name) as tags:
        for target, key, value in lines:
            send_metadata(server, conn, target, key, value, tags)


def _newer(own: Mapping[str, str], stored: dict[str, str]) -> list[tuple[str, str]]:
    """The user's keys the account should keep: changed ones, and new ones while the
    account has room for them (it keeps at most MAX_KEYS, as a user has)."""
    changed = [(k, v) for k, v in own.items() if k in stored and stored[k] != v]
    room = MAX_KEYS - len(stored)
    added = [(k, v) for k, v in own.items() if k not in stored][: max(room, 0)]
    return changed + added


def logged_in(server: ChatServer, conn: Session, account: str) -> None:
    """``conn`` just logged in to ``account`` (its greenlet may wait for the store): the
    keys the account keeps that the user has not set become the user's, and the user's
    own go to the account. A failing store leaves both as they were (logged)."""
    user = conn.user
    try:
        stored = wait_for_store(conn, "account_metadata", account)
        newer = _newer(user.metadata, stored)
        room = MAX_KEYS - len(user.metadata)
        loaded = tuple((k, stored[k]) for k in sorted(stored) if k not in user.metadata)[:room]
        if newer:
            wait_for_store(conn, "set_account_metadata", account, newer)
    except StoreUnavailable:
        log.warning("metadata of account %s could not be read or kept (storage failing)", account)
        return
    if not loaded:
        return
    if user.registered:  # the client's own session is told too: these are news to it
        server.hub.apply(MetadataChanged(server.hub.name, user.nick, loaded))
    else:  # registered() passes them on with the rest
        user.metadata = frozen({**user.metadata, **dict(loaded)})
