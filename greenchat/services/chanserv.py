"""ChanServ: register a channel to your account, so it survives restarts and knows its ops.

Spoken to with ``/msg ChanServ <command>`` (or the ``CS``/``CHANSERV`` commands);
it answers with NOTICEs, as Ergo's does. A registered channel keeps its topic,
modes, key, limit and bans across restarts and while it is empty, and its
founder and access list get their modes on join (server/channel_registry.py).

The access list gives an account ``o`` or ``v``, one of them. ``ACCESS`` and
Ergo's ``AMODE`` are two spellings of the same list: ``ACCESS #c ADD acct o`` is
``AMODE #c +o acct`` (it replaces a ``v``), and ``ACCESS #c DEL acct`` is
``AMODE #c -o acct`` or ``-v`` (either takes the account off). As on Ergo, the
founder changes any entry; an operator on the list only entries below its own
rank (it adds and removes voices); a change is applied at once to members
logged in to that account. Commands that write the store wait off the event
loop; when it fails the answer says channel services are unavailable.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from greenchat.protocol.casemap import casefold
from greenchat.server.channel_registry import save_access, state_of
from greenchat.server.commands.table import wait_for_store
from greenchat.server.events import ChannelModeChanged
from greenchat.server.shared_store import CHANNEL, announce
from greenchat.server.welcome import MAX_MODE_PARAMS
from greenchat.services.base import Handler, Reply, Service
from greenchat.store.base import ChannelExists, RegisteredChannel, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

__all__ = ["CHANSERV"]

UNAVAILABLE = "Channel services are temporarily unavailable (storage is failing); try again later."

# Who outranks whom on the access list ('' is no entry); the founder outranks everyone.
_RANK = {"": 0, "v": 1, "o": 2}
_AMODE = re.compile(r"([+-])([ov])")


def _registered(
    server: ChatServer, reply: Reply, name: str
) -> tuple[RegisteredChannel, Channel] | None:
    """The record and the live channel of ``name``, or None (and the reason said)."""
    record = server.channel_registry.get(name)
    channel = server.hub.get_channel(name)
    if record is None or channel is None:
        reply(f"{name} is not registered.")
        return None
    return record, channel


def _on_store(conn: Session, function: Callable[..., Any], *args: Any) -> Any:
    """``function(store, *args)`` on the storage thread (as wait_for_store)."""
    storage = conn.server.storage
    if storage is None:
        raise StoreUnavailable("the server has no storage open")
    with conn.uncaptured():
        return storage.run(function, storage.store, *args)


def _set_modes(server: ChatServer, channel: Channel, changes: list[tuple[str, str, str]]) -> None:
    """Members' +o/+v from the server, at most MODES to a line."""
    for start in range(0, len(changes), MAX_MODE_PARAMS):
        chunk = tuple(changes[start : start + MAX_MODE_PARAMS])
        server.hub.apply(ChannelModeChanged(server.hub.name, channel.name, chunk))


# -- REGISTER, DROP, INFO -------------------------------------------------------------


def _register(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """REGISTER <#channel>: a logged-in operator of the channel becomes its founder."""
    if len(args) != 1:
        reply("Syntax: REGISTER <#channel>")
        return
    account = conn.user.account
    if not account:
        reply("Log in first (/msg NickServ IDENTIFY) to register a channel.")
        return
    channel = server.hub.get_channel(args[0])
    if channel is None:
        reply(f"No such channel: {args[0]}.")
        return
    if server.channel_registry.get(channel.name) is not None:
        reply(f"{channel.name} is already registered.")
        return
    if not channel.is_op(conn.user):
        reply(f"You must be a channel operator of {channel.name} to register it.")
        return
    record = RegisteredChannel(channel.name, account, time.time(), **state_of(channel))
    try:
        wait_for_store(conn, "register_channel", record)
    except ChannelExists:
        reply(f"{channel.name} is already registered.")
        return
    server.channel_registry.add(record)
    announce(server, CHANNEL, record.name)
    reply(f"{channel.name} is registered to your account {account}: you are its founder.")


def _drop(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """DROP <#channel>: the founder unregisters it."""
    if len(args) != 1:
        reply("Syntax: DROP <#channel>")
        return
    found = _registered(server, reply, args[0])
    if found is None:
        return
    record = found[0]
    if not server.channel_registry.is_founder(conn.user.account, record.name):
        reply(f"Only the founder of {record.name} may drop it.")
        return
    wait_for_store(conn, "drop_channel", record.name)
    server.channel_registry.remove(record.name)
    announce(server, CHANNEL, record.name)
    reply(f"{record.name} is no longer registered.")


def _info(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """INFO <#channel>: its founder and when it was registered."""
    if len(args) != 1:
        reply("Syntax: INFO <#channel>")
        return
    found = _registered(server, reply, args[0])
    if found is None:
        return
    record = found[0]
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record.registered_at))
    reply(f"Channel: {record.name}")
    reply(f"Founder: {record.founder}")
    reply(f"Registered at: {when}")


# -- the access list: ACCESS and AMODE --------------------------------------------------


def _access(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """ACCESS <#channel> LIST | ADD <account> <o|v> | DEL <account>."""
    sub = args[1].upper() if len(args) > 1 else ""
    if sub == "LIST" and len(args) == 2:
        _list(server, conn, reply, args[0])
    elif sub == "ADD" and len(args) == 4 and args[3].lower() in ("o", "v"):
        _change(server, conn, reply, args[0], args[2], args[3].lower())
    elif sub == "DEL" and len(args) == 3:
        _change(server, conn, reply, args[0], args[2], "")
    else:
        reply("Syntax: ACCESS <#channel> LIST | ADD <account> <o|v> | DEL <account>")


def _amode(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """AMODE <#channel> [+o|+v|-o|-v <account>] (Ergo's spelling of ACCESS)."""
    if len(args) == 1:
        _list(server, conn, reply, args[0])
    elif len(args) == 3 and (match := _AMODE.fullmatch(args[1])):
        sign, mode = match.groups()
        _change(server, conn, reply, args[0], args[2], mode if sign == "+" else "")
    else:
        reply("Syntax: AMODE <#channel> [+o|+v|-o|-v <account>]")


def _list(server: ChatServer, conn: Session, reply: Reply, name: str) -> None:
    found = _registered(server, reply, name)
    if found is None:
        return
    record = found[0]
    if not server.channel_registry.mode_of(conn.user.account, record.name):
        reply(f"Only the founder and those on the access list of {record.name} may see it.")
        return
    reply(f"Access list of {record.name} (founder {record.founder}):")
    for account, mode in sorted(record.access.items(), key=lambda item: casefold(item[0])):
        reply(f"  +{mode} {account}")
    if not record.access:
        reply("  (empty)")


def _change(
    server: ChatServer, conn: Session, reply: Reply, name: str, account: str, new: str
) -> None:
    """``account`` gets ``new`` ('o', 'v') on the access list, or comes off it ('')."""
    registry = server.channel_registry
    found = _registered(server, reply, name)
    if found is None:
        return
    record = found[0]
    actor = conn.user.account
    if casefold(account) == casefold(record.founder):
        reply(f"{record.founder} founded {record.name} and always gets +o there.")
        return
    folded = casefold(account)
    listed, old = next(
        ((n, m) for n, m in record.access.items() if casefold(n) == folded), (account, "")
    )
    rank = _RANK[registry.mode_of(actor, record.name)]
    if not registry.is_founder(actor, record.name) and not (
        rank > _RANK[old] and rank > _RANK[new]
    ):
        reply(
            f"You may not change {listed}'s access to {record.name}: its founder changes "
            "operators, and its operators add and remove voices."
        )
        return
    if old == new:
        reply(
            f"{listed} already has +{new} on {record.name}."
            if new
            else f"{listed} is not on the access list of {record.name}."
        )
        return
    if new:
        stored = wait_for_store(conn, "get_account", account)
        if stored is None:
            reply(f"No account is registered as {account}.")
            return
        listed = stored.name
    updated = _on_store(conn, save_access, record.name, listed, new)
    if updated is None:
        reply(f"{record.name} is not registered.")
        return
    registry.update(updated)
    announce(server, CHANNEL, record.name)
    if new:
        reply(f"{listed} now gets +{new} on joining {record.name}.")
    else:
        reply(f"{listed} is no longer on the access list of {record.name}.")
    channel = server.hub.get_channel(record.name)
    if channel is not None:
        _apply_to_members(server, channel, listed, old, new)


def _apply_to_members(
    server: ChatServer, channel: Channel, account: str, old: str, new: str
) -> None:
    """Members logged in to ``account`` get the new mode and lose the old one (Ergo #729)."""
    folded = casefold(account)
    changes = []
    for member, status in channel.members.items():
        if not member.account or casefold(member.account) != folded:
            continue
        if old and old != new and old in status:
            changes.append(("-", old, member.nick))
        if new and new not in status:
            changes.append(("+", new, member.nick))
    if changes:
        _set_modes(server, channel, changes)


# -- OP and DEOP ----------------------------------------------------------------------


def _op(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """OP <#channel> [nick]: the founder or an access-list operator gives +o."""
    _op_or_deop(server, conn, reply, args, "+")


def _deop(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """DEOP <#channel> [nick]: takes +o away."""
    _op_or_deop(server, conn, reply, args, "-")


def _op_or_deop(
    server: ChatServer, conn: Session, reply: Reply, args: list[str], sign: str
) -> None:
    verb = "OP" if sign == "+" else "DEOP"
    if not 1 <= len(args) <= 2:
        reply(f"Syntax: {verb} <#channel> [nick]")
        return
    found = _registered(server, reply, args[0])
    if found is None:
        return
    record, channel = found
    if server.channel_registry.mode_of(conn.user.account, record.name) != "o":
        reply(f"Only the founder and the operators on the access list of {record.name} may {verb}.")
        return
    target = conn.user if len(args) == 1 else server.hub.nick_owner(args[1])
    if target is None or not target.registered:
        reply(f"No one is using the nick {args[1]}.")
        return
    status = channel.members.get(target)
    if status is None:
        reply(f"{target.nick} is not on {channel.name}.")
        return
    if ("o" in status) == (sign == "+"):
        already = "is already" if sign == "+" else "is not"
        reply(f"{target.nick} {already} an operator of {channel.name}.")
        return
    _set_modes(server, channel, [(sign, "o", target.nick)])
    given = "given to" if sign == "+" else "taken from"
    reply(f"Operator status on {channel.name} {given} {target.nick}.")


COMMANDS: dict[str, tuple[Handler, str]] = {
    "REGISTER": (_register, "REGISTER <#channel>: register a channel you operate to your account"),
    "ACCESS": (
        _access,
        "ACCESS <#channel> LIST | ADD <account> <o|v> | DEL <account>: who gets +o or +v on join",
    ),
    "AMODE": (_amode, "AMODE <#channel> [+o|+v|-o|-v <account>]: the access list, Ergo's way"),
    "OP": (_op, "OP <#channel> [nick]: give operator status (founder and access-list ops)"),
    "DEOP": (_deop, "DEOP <#channel> [nick]: take operator status away"),
    "INFO": (_info, "INFO <#channel>: who founded a channel, and when"),
    "DROP": (_drop, "DROP <#channel>: unregister a channel you founded"),
}

CHANSERV = Service("ChanServ", COMMANDS, unavailable=UNAVAILABLE)
