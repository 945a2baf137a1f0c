"""What an :class:`~greenchat.client.connection.IrcClient` reports to its listeners.

Every line from the server arrives as a :class:`MessageEvent`; changes of the
connection's own state (connected, registered, lost, retrying, given up)
arrive as their own event types, so a user interface can show them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from greenchat.protocol.message import Message

__all__ = [
    "ClientEvent",
    "Connected",
    "Disconnected",
    "GaveUp",
    "MessageEvent",
    "Reconnecting",
    "Registered",
    "SaslFailed",
    "SaslSucceeded",
]


@dataclass(frozen=True, slots=True)
class ClientEvent:
    time: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True, slots=True)
class MessageEvent(ClientEvent):
    """One line from the server (PINGs are answered before listeners see them)."""

    message: Message


@dataclass(frozen=True, slots=True)
class Connected(ClientEvent):
    host: str
    port: int
    tls: bool


@dataclass(frozen=True, slots=True)
class Registered(ClientEvent):
    """Welcome (001) received: ``nick`` is what the server calls us."""

    nick: str
    caps: frozenset[str]


@dataclass(frozen=True, slots=True)
class Disconnected(ClientEvent):
    """A connection ended, or (``connected`` false) the attempt to open one failed."""

    reason: str
    will_retry: bool
    connected: bool = True


@dataclass(frozen=True, slots=True)
class Reconnecting(ClientEvent):
    attempt: int
    delay: float
    max_retries: int | None


@dataclass(frozen=True, slots=True)
class GaveUp(ClientEvent):
    """No more reconnect attempts: the client has stopped for good."""

    attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class SaslSucceeded(ClientEvent):
    """SASL logged us in to ``account`` (903), before the welcome."""

    account: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class SaslFailed(ClientEvent):
    """SASL did not log us in: registration goes on without an account.

    ``numeric`` is the server's answer (904 wrong credentials, 902, 905-907), or ''
    when the client gave up itself (no SASL offered, PLAIN refused, no answer in time).
    """

    account: str
    reason: str
    numeric: str = ""
