"""What a node checks when an event's turn comes in the network's order.

A handler checked the change against this node's replica when it was proposed;
by its turn other nodes' changes may have come first (the nick was taken, the
+l channel filled up, the user quit). Every node runs the same checks on the
same replica in the same order, so every node reaches the same verdict:

- ``None``: apply it;
- :data:`STALE`: what it names is gone or belongs to another node: skip it;
- a :class:`~greenchat.backplane.Refused`: skip it, and the proposer's client is
  told why (433, 471...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenchat.backplane import Refused
from greenchat.protocol.casemap import casefold
from greenchat.protocol.metadata import MAX_KEYS
from greenchat.protocol.numerics import ERR_NICKNAMEINUSE
from greenchat.server.commands.channels import join_refusal, refusal_text
from greenchat.server.events import (
    ChannelModeChanged,
    ChannelRenamed,
    Event,
    Joined,
    Kicked,
    Messaged,
    MetadataChanged,
    NickChanged,
    Parted,
    StoreChanged,
    TopicSet,
    UserRegistered,
)
from greenchat.server.hub import PREFIX_MODES

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.user import User

__all__ = ["STALE", "actor_of", "verdict"]

STALE = "stale"

# The field naming the user who makes each kind of change ('by', 'source'...).
_ACTOR_FIELDS = ("by", "nick", "source", "old")  # "by" first: a CHGHOST names both


def actor_of(event: Event) -> str:
    """The nick of the user making the change (for a NICK, the old one)."""
    if isinstance(event, NickChanged):
        return event.old
    for name in _ACTOR_FIELDS:
        value = getattr(event, name, None)
        if value is not None:
            return value
    return ""


def verdict(server: ChatServer, event: Event, origin: str, extra: dict[str, Any]) -> Any:
    """``None``, :data:`STALE` or a :class:`Refused` for ``event`` from node ``origin``
    ('' for this node); ``extra`` is what the proposer sent along (a JOIN's key, the
    node a reaped QUIT is for)."""
    hub = server.hub
    if isinstance(event, UserRegistered):
        return _registration(hub, event, origin)
    if isinstance(event, StoreChanged):
        return None  # the store has it already: a notice, nobody's change to refuse
    if isinstance(event, MetadataChanged) and not _has_target(hub, event.target):
        return STALE  # the user quit or changed nick, the channel went, meanwhile
    actor_nick = actor_of(event)
    actor = hub.nicks.get(casefold(actor_nick))
    if actor is None or not actor.registered:
        # A service's change (ChanServ's MODE) comes from a server's name, the name of
        # the node whose user it answered: every node applies it.
        return None if hub.is_server(actor_nick) else STALE
    owner = extra.get("reap", origin)  # a dead node's users are quit by a live one
    if actor.node != owner:
        return STALE
    check = _CHECKS.get(type(event))
    return None if check is None else check(server, event, actor, extra)


def _has_target(hub: Any, name: str) -> bool:
    return hub.get_channel(name) is not None or hub.registered_user(name) is not None


def _registration(hub: Any, event: UserRegistered, origin: str) -> Any:
    holder = hub.nicks.get(casefold(event.nick))
    if origin == "":  # ours: the nick must still be held by the one registering
        if holder is None or holder.registered:
            return Refused(ERR_NICKNAMEINUSE, event.nick, "Nickname is already in use")
        return None
    if holder is not None and holder.registered:
        return STALE  # another node's registration that lost the race
    return None


def _nick(server: ChatServer, event: NickChanged, actor: User, extra: dict) -> Any:
    holder = server.hub.nicks.get(casefold(event.new))
    if holder is not None and holder is not actor and holder.registered:
        return Refused(ERR_NICKNAMEINUSE, event.new, "Nickname is already in use")
    return None


def _join(server: ChatServer, event: Joined, actor: User, extra: dict) -> Any:
    channel = server.hub.get_channel(event.channel)
    if channel is None:
        return None
    if actor in channel.members:
        return STALE
    refusal = join_refusal(actor, channel, extra.get("key", ""))
    if refusal is not None and not server.channel_registry.passes(actor, channel):
        return Refused(refusal, channel.name, refusal_text(refusal))
    return None


def _member_change(server: ChatServer, event: Any, actor: User, extra: dict) -> Any:
    """PART, TOPIC: the actor must still be in the channel."""
    channel = server.hub.get_channel(event.channel)
    return None if channel is not None and actor in channel.members else STALE


def _kick(server: ChatServer, event: Kicked, actor: User, extra: dict) -> Any:
    channel = server.hub.get_channel(event.channel)
    target = server.hub.nick_owner(event.target)
    if channel is None or target is None or target not in channel.members:
        return STALE
    return None


def _modes(server: ChatServer, event: ChannelModeChanged, actor: User, extra: dict) -> Any:
    """Every +o/+v must name a member still there."""
    channel = server.hub.get_channel(event.channel)
    if channel is None:
        return STALE
    for _, char, arg in event.changes:
        if char in PREFIX_MODES:
            member = server.hub.nick_owner(arg)
            if member is None or member not in channel.members:
                return STALE
    return None


def _rename(server: ChatServer, event: ChannelRenamed, actor: User, extra: dict) -> Any:
    """The renamer still an operator of the channel; the new name still free (a RENAME
    on another node may have taken it first)."""
    channel = server.hub.get_channel(event.channel)
    if channel is None or not channel.is_op(actor):
        return STALE
    taken = server.hub.get_channel(event.new)
    if taken is not None and taken is not channel:
        return Refused("FAIL", "RENAME", "CHANNEL_NAME_IN_USE")
    return None


def _message(server: ChatServer, event: Messaged, actor: User, extra: dict) -> Any:
    hub = server.hub
    if hub.get_channel(event.target) is None and hub.nick_owner(event.target) is None:
        return STALE
    return None


def _metadata(server: ChatServer, event: MetadataChanged, actor: User, extra: dict) -> Any:
    """Still allowed at its turn: the actor may still change the target (a channel's
    op, the user itself, an IRC operator), and the target stays within MAX_KEYS."""
    hub = server.hub
    channel = hub.get_channel(event.target)
    holder = channel if channel is not None else hub.registered_user(event.target)
    if "o" not in actor.modes and (
        not channel.is_op(actor) if channel is not None else holder is not actor
    ):
        return STALE
    keys = set(holder.metadata)
    for key, value in event.changes:
        (keys.discard if value is None else keys.add)(key)
    return STALE if len(keys) > MAX_KEYS and len(keys) > len(holder.metadata) else None


_CHECKS = {
    NickChanged: _nick,
    Joined: _join,
    Parted: _member_change,
    TopicSet: _member_change,
    Kicked: _kick,
    ChannelModeChanged: _modes,
    Messaged: _message,
    ChannelRenamed: _rename,
    MetadataChanged: _metadata,
}
