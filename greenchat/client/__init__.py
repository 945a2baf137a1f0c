"""The greenlet IRC client library (and, in terminal.py, greenchat-join's UI)."""

from greenchat.client.connection import DEFAULT_CAPS, ClientError, IrcClient, JoinError
from greenchat.client.events import (
    ClientEvent,
    Connected,
    Disconnected,
    GaveUp,
    MessageEvent,
    Reconnecting,
    Registered,
    SaslFailed,
    SaslSucceeded,
)
from greenchat.client.state import ChannelState, ClientState

__all__ = [
    "DEFAULT_CAPS",
    "ChannelState",
    "ClientError",
    "ClientEvent",
    "ClientState",
    "Connected",
    "Disconnected",
    "GaveUp",
    "IrcClient",
    "JoinError",
    "MessageEvent",
    "Reconnecting",
    "Registered",
    "SaslFailed",
    "SaslSucceeded",
]
