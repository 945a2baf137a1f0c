"""PRIVMSG, NOTICE and TAGMSG: to channels and to nicks, several targets at once;
to a channel's ops or voiced members only (STATUSMSG: ``@#chan``, ``+#chan``).
A channel with ``+C`` refuses CTCP but ACTION, one with ``+c`` gets its lines
without colours; in one with ``+U`` a line of a member who is not an operator
reaches only the operators (the hub's fan-out).

This is the hot path: a channel message becomes one :class:`Relay`, rendered
once per capability variant, and the same bytes are queued to every member
except the sender (who gets it back only with ``echo-message``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold, is_channel_name, split_status
from greenchat.protocol.formatting import is_ctcp, strip_formatting
from greenchat.protocol.message import Message, escape_tag_value, valid_tag_key
from greenchat.protocol.numerics import (
    ERR_CANNOTSENDTOCHAN,
    ERR_INPUTTOOLONG,
    ERR_NORECIPIENT,
    ERR_NOSUCHCHANNEL,
    ERR_NOSUCHNICK,
    ERR_NOTEXTTOSEND,
    ERR_TOOMANYTARGETS,
    RPL_AWAY,
)
from greenchat.server.commands.lookup import look_again
from greenchat.server.commands.table import command
from greenchat.server.events import Messaged
from greenchat.server.outgoing import Multiline, Relay, new_msgid

if TYPE_CHECKING:
    from greenchat.server.hub import Channel
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

# IRCv3 message-tags: client-only tag data is limited to 4094 bytes.
MAX_CLIENT_TAG_BYTES = 4094


@command(
    "PRIVMSG",
    help=(
        "PRIVMSG <target>[,<target>...] <text>\n"
        "Sends a message to channels or nicks; @#channel reaches only its "
        "operators, +#channel its voiced members and operators."
    ),
)
def privmsg(server: ChatServer, conn: Session, msg: Message) -> None:
    deliver(server, conn, msg, "PRIVMSG", errors=True)


@command(
    "NOTICE",
    help=(
        "NOTICE <target>[,<target>...] <text>\n"
        "Like PRIVMSG, but nothing answers it automatically and errors are not "
        "reported."
    ),
)
def notice(server: ChatServer, conn: Session, msg: Message) -> None:
    # Nothing automatic may answer a NOTICE, so its errors are not reported.
    deliver(server, conn, msg, "NOTICE", errors=False)


@command(
    "TAGMSG",
    min_params=1,
    help=("TAGMSG <target>\nSends only tags (e.g. a typing notice) to clients with message-tags."),
)
def tagmsg(server: ChatServer, conn: Session, msg: Message) -> None:
    """A message that is only tags: delivered to clients that enabled message-tags."""
    deliver(server, conn, msg, "TAGMSG", errors=True)


def client_tags_of(msg: Message) -> str | None:
    """The client-only (``+``) tags to relay, escaped; ``None`` if over the limit."""
    tags = [
        f"{key}={escape_tag_value(value)}" if value else key
        for key, value in msg.tags.items()
        if key.startswith("+") and valid_tag_key(key)
    ]
    text = ";".join(tags)
    return None if len(text.encode()) > MAX_CLIENT_TAG_BYTES else text


def deliver(
    server: ChatServer, conn: Session, msg: Message, verb: str, errors: bool,
    multiline: tuple[tuple[str, bool], ...] = (),
) -> None:  # fmt: skip
    """One PRIVMSG, NOTICE or TAGMSG to its targets (``multiline``: the lines of a
    draft/multiline batch, whose whole text is ``msg``'s, commands/multiline.py)."""
    conn.user.last_message = conn.last_active  # WHOIS idle time counts from here
    params = msg.params
    if not params or not params[0]:
        if errors:
            conn.numeric(ERR_NORECIPIENT, f"No recipient given ({verb})")
        return
    text = None
    if verb != "TAGMSG":
        if len(params) < 2 or not params[1]:
            if errors:
                conn.numeric(ERR_NOTEXTTOSEND, "No text to send")
            return
        text = params[1]
    tags = client_tags_of(msg) if msg.tags else ""
    if tags is None:
        conn.numeric(ERR_INPUTTOOLONG, "Input line was too long")
        return
    targets = unique_targets(params[0])
    if len(targets) > server.config.max_targets:
        conn.numeric(ERR_TOOMANYTARGETS, params[0], "Too many targets")
        return
    for target in targets:
        status, target = split_status(target)
        if status or is_channel_name(target):
            channel = server.hub.get_channel(target)
            if channel is None:
                channel = look_again(conn, server.hub.get_channel, target)
            if channel is None:
                if errors:
                    conn.numeric(ERR_NOSUCHCHANNEL, target, "No such channel")
            elif not may_speak(conn, channel):
                if errors:
                    conn.numeric(ERR_CANNOTSENDTOCHAN, channel.name, "Cannot send to channel")
            elif text and "C" in channel.modes and is_ctcp(text):
                if errors:
                    why = "Cannot send CTCP to channel (+C)"
                    conn.numeric(ERR_CANNOTSENDTOCHAN, channel.name, why)
            else:
                said, lines = text, multiline
                if text and "c" in channel.modes:
                    said = strip_formatting(text)
                    lines = tuple((strip_formatting(line), cat) for line, cat in multiline)
                    if not said.strip():  # nothing but colour codes: nothing to say
                        if errors:
                            conn.numeric(ERR_NOTEXTTOSEND, "No text to send")
                        continue
                event = _event(conn, verb, channel.name, said, tags, status, lines)
                _echo(conn, server.hub.apply(event))
        elif casefold(target) in server.services:
            if verb == "PRIVMSG":  # a NOTICE is never answered
                server.services[casefold(target)].handle(server, conn, text or "")
        else:
            user = server.hub.nick_owner(target)
            if user is None or not user.registered:
                user = look_again(conn, server.hub.registered_user, target)
            if user is None:
                if errors:
                    conn.numeric(ERR_NOSUCHNICK, target, "No such nick/channel")
                continue
            event = _event(conn, verb, user.nick, text, tags, "", multiline)
            if user is conn.user:
                # To yourself: the delivery is not the command's reply, so it carries no
                # label; the echo (echo-message) does, or the ACK (labeled-response).
                with conn.uncaptured():
                    relay = server.hub.apply(event)
            else:
                relay = server.hub.apply(event)
            _echo(conn, relay)
            if verb == "PRIVMSG" and user.away:
                conn.numeric(RPL_AWAY, user.nick, user.away)


def unique_targets(text: str) -> list[str]:
    """Comma-separated targets, each once (however it is capitalised), in order."""
    seen: dict[str, str] = {}
    for target in text.split(","):
        if target:
            seen.setdefault(casefold(target), target)
    return list(seen.values())


def may_speak(conn: Session, channel: Channel) -> bool:
    """Whether ``conn`` may send to ``channel``.

    +n: members only; +m: voiced and ops only; a banned or muted (``m:``) user may
    not speak unless voiced or opped or excepted (+e), as on InspIRCd. Ordered so
    the common case, a plain member of a channel without bans, costs a few set
    lookups.
    """
    status = channel.members.get(conn.user)
    if status:  # +v or +o: past +m and bans
        return True
    modes = channel.modes
    if "m" in modes or (status is None and "n" in modes):
        return False
    return not channel.is_banned(conn.user, speaking=True)


def _event(
    conn: Session, verb: str, target: str, text: str | None, tags: str, status: str = "",
    multiline: tuple[tuple[str, bool], ...] = (),
) -> Messaged:  # fmt: skip
    return Messaged(
        verb, conn.user.nick, target, text or "", tags, new_msgid(), status=status,
        multiline=multiline,
    )  # fmt: skip


def _echo(conn: Session, relay: Relay | Multiline) -> None:
    """echo-message: the sender gets its own message back, as recipients see it."""
    if conn.has_cap("echo-message") and (relay.command != "TAGMSG" or conn.has_cap("message-tags")):
        if type(relay) is Multiline:
            relay = relay.for_user(conn.caps.enabled)
        conn.send_relay(relay)
