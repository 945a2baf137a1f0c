"""REDACT (IRCv3 draft/message-redaction): delete a message that was sent.

``REDACT <target> <msgid> [:<reason>]``. The message is looked up in the stored
history of the conversation the asker may read (as for CHATHISTORY), so only a
stored PRIVMSG, NOTICE or TAGMSG can go. Its sender may delete it (the same
account, or the same nick!user@host when it was sent without one), and so may a
channel operator in the channel, or an IRC operator. It leaves history at once;
members with the capability then see the REDACT (hub.py). Errors are the spec's
FAIL codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message
from greenchat.server.commands.history import NotVisible, conversation_of
from greenchat.server.commands.table import command
from greenchat.server.commands.users import is_oper
from greenchat.server.events import Redacted
from greenchat.server.outgoing import new_msgid
from greenchat.store.base import HistoryItem, StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session
    from greenchat.server.user import User

__all__: list[str] = []

_MESSAGES = frozenset({"PRIVMSG", "NOTICE", "TAGMSG"})


@command(
    "REDACT",
    min_params=2,
    yields=True,
    help=(
        "REDACT <target> <msgid> [<reason>]\n"
        "Deletes a message you sent (or, as an operator, another's) "
        "(draft/message-redaction)."
    ),
)
def redact(server: ChatServer, conn: Session, msg: Message) -> None:
    target, msgid = msg.params[0], msg.params[1]
    reason = msg.params[2] if len(msg.params) > 2 else ""
    if not server.config.history:
        conn.fail("REDACT", "UNKNOWN_MSGID", target, msgid, "This server keeps no messages")
        return
    try:
        key = conversation_of(server, conn.user, target)
    except NotVisible:
        conn.fail("REDACT", "INVALID_TARGET", target, f"You cannot delete messages from {target}")
        return
    try:
        with conn.uncaptured():
            item = server.history.read("history_item", key, msgid)
        if item is None or item.command not in _MESSAGES:
            conn.fail("REDACT", "UNKNOWN_MSGID", target, msgid,
                      "This message does not exist or is too old")  # fmt: skip
            return
        if not may_redact(server, conn.user, target, item):
            conn.fail("REDACT", "REDACT_FORBIDDEN", target, msgid,
                      "You are not authorised to delete this message")  # fmt: skip
            return
        with conn.uncaptured():
            server.history.read("delete_history", key, msgid)
    except StoreUnavailable:
        conn.fail("REDACT", "TEMPORARILY_UNAVAILABLE", target, msgid,
                  "Messages cannot be deleted for the moment; try again later")  # fmt: skip
        return
    channel = server.hub.get_channel(target)
    name = channel.name if channel is not None else target
    server.hub.apply(Redacted(conn.user.nick, name, msgid, reason, new_msgid()))


def may_redact(server: ChatServer, user: User, target: str, item: HistoryItem) -> bool:
    """Its sender, a channel operator of the channel, an IRC operator."""
    if item.account:
        if user.account and casefold(user.account) == casefold(item.account):
            return True
    elif item.source == user.prefix:
        return True
    if is_oper(user):
        return True
    channel = server.hub.get_channel(target)
    return channel is not None and user in channel.members and channel.is_op(user)
