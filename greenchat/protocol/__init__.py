"""The sans-IO IRC protocol core: no sockets, no gevent.

Everything here is pure: the server, the client, the load test and the
benchmarks all build on it.
"""

from greenchat.protocol.casemap import casefold, valid_channel, valid_nick
from greenchat.protocol.framing import FramingError, LineFramer, LineTooLong
from greenchat.protocol.message import InvalidMessage, Message, parse, serialize

__all__ = [
    "FramingError",
    "InvalidMessage",
    "LineFramer",
    "LineTooLong",
    "Message",
    "casefold",
    "parse",
    "serialize",
    "valid_channel",
    "valid_nick",
]
