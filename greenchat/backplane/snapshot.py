"""The network's state as one JSON-able value, for a node that joins late.

A node that starts while the network already has users asks the others for a
snapshot: one live node writes :func:`take` of its replica with the log number it
reflects, and the new node :func:`load`\\ s it into its empty hub, then applies the
log from there (backplane/redis.py). Pure: no Redis, no sockets.
"""

from __future__ import annotations

from typing import Any

from greenchat.protocol.casemap import casefold
from greenchat.server.hub import Channel, Hub
from greenchat.server.user import frozen

__all__ = ["load", "take"]


def take(hub: Hub, node: str, servers: dict[str, str]) -> dict[str, Any]:
    """Every registered user and every channel; this node's users are named ``node``.
    ``servers``: each node's server name (ours too)."""
    users = [
        [u.nick, u.username, u.host, u.realname, u.account, u.node or node,
         "".join(sorted(u.modes)), u.away, u.signon, u.ip, dict(u.metadata)]
        for u in hub.users if u.registered
    ]  # fmt: skip
    channels = [
        [c.name, c.created, "".join(sorted(c.modes)), c.join_key, c.limit,
         [[mask, setter, when] for mask, setter, when in c.bans.values()],
         c.topic, c.topic_setter, c.topic_set_at,
         [[m.nick, "".join(sorted(modes))] for m, modes in c.members.items()],
         {"excepts": [list(entry) for entry in c.excepts.values()],
          "invexes": [list(entry) for entry in c.invexes.values()], "route": c.route,
          "metadata": dict(c.metadata)}]
        for c in hub.channels.values()
    ]  # fmt: skip
    return {"users": users, "channels": channels, "servers": servers}


def load(hub: Hub, state: dict[str, Any], node: str) -> int:
    """Add the snapshot's users (other nodes': ``node`` is ours) and channels to
    ``hub``; returns how many users came. Nobody is told: it is what was there."""
    count = 0
    for row in state["users"]:
        nick, username, host, realname, account, home, modes, away, signon, ip = row[:10]
        keys = row[10] if len(row) > 10 else {}  # a node without metadata wrote it
        if home == node or casefold(nick) in hub.nicks:
            continue
        user = hub.add_remote_user(nick, host, home, signon, ip)
        user.username, user.realname, user.account = username, realname, account
        user.modes, user.away, user.metadata = frozenset(modes), away, frozen(keys)
        user.registered = True
        user.set_nick(nick)
        hub.note_registered()
        hub.invisible_count += "i" in user.modes
        if "o" in user.modes:
            hub.presence.opers.add(user)
        if "w" in user.modes:
            hub.presence.wallops.add(user)
        count += 1
    for row in state["channels"]:
        name, created, modes, join_key, limit, bans, topic, setter, set_at, members, more = row
        channel = hub.channels.get(casefold(name)) or Channel(name, created)
        hub.channels[channel.key] = channel
        channel.modes, channel.join_key, channel.limit = set(modes), join_key, limit
        channel.bans = {casefold(mask): (mask, by, when) for mask, by, when in bans}
        excepts, invexes, channel.route = more["excepts"], more["invexes"], more["route"]
        channel.excepts = {casefold(mask): (mask, by, when) for mask, by, when in excepts}
        channel.invexes = {casefold(mask): (mask, by, when) for mask, by, when in invexes}
        channel.lists_changed()
        channel.metadata = frozen(more.get("metadata", {}))
        if channel.route != channel.key:  # renamed before we came: routes may be shared
            hub.renamed += 1
        channel.topic, channel.topic_setter, channel.topic_set_at = topic, setter, set_at
        for nick, prefix_modes in members:
            member = hub.nicks.get(casefold(nick))
            if member is not None and member.node:
                channel.members[member] = set(prefix_modes)
                member.channels[channel.key] = channel
    return count
