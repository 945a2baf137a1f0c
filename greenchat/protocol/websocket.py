"""IRC over WebSocket, as the IRCv3 websocket spec has it (sans-IO).

https://ircv3.net/specs/extensions/websocket: one IRC line per WebSocket
message, without CR or LF. ``binary.ircv3.net`` carries the line's bytes in
binary messages, ``text.ircv3.net`` in text messages, which must be UTF-8;
the client lists them in its order of preference and a client that asks for
neither gets text.

Reading is wsproto's (frames, masking, fragments, UTF-8 checks of text
messages, close codes); :class:`IrcWebSocket` turns its events into the same
items :class:`~greenchat.protocol.framing.LineFramer` gives for a TCP stream,
under the same length rules, plus :class:`BadLine` and :class:`Closed`.

Writing is done here, because it is the hot path. :func:`frame_lines` frames
CRLF-terminated lines; a relayed message is framed by its relay, once per
capability variant and subprotocol (server/outgoing.py), so a message to a
thousand browsers is framed once, as TCP lines are serialized once.
:class:`FrameWriter` frames the rest (replies to one client) as it is queued.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from wsproto import ConnectionState, WSConnection
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason

from greenchat.protocol.framing import (
    MAX_LINE_BYTES,
    MAX_TAG_BYTES,
    MAX_UNTERMINATED_BYTES,
    FramingError,
    LineTooLong,
    too_long,
)

__all__ = [
    "BINARY",
    "SUBPROTOCOLS",
    "TEXT",
    "BadLine",
    "Closed",
    "FrameWriter",
    "IrcWebSocket",
    "choose_subprotocol",
    "close_frame",
    "encode_frame",
    "frame_lines",
]

BINARY = "binary.ircv3.net"
TEXT = "text.ircv3.net"
SUBPROTOCOLS = (BINARY, TEXT)

_OP_TEXT, _OP_BINARY, _OP_CLOSE = 0x1, 0x2, 0x8


def choose_subprotocol(offered: Iterable[str]) -> str | None:
    """The first of the client's subprotocols that we speak, in its order; None if none."""
    for name in offered:
        if name.strip().lower() in SUBPROTOCOLS:
            return name.strip().lower()
    return None


def encode_frame(payload: bytes, opcode: int = _OP_BINARY) -> bytes:
    """One unfragmented, unmasked frame (a server's frames are never masked)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


def close_frame(code: int = CloseReason.NORMAL_CLOSURE, reason: str = "") -> bytes:
    """A Close frame; the reason is cut to fit a control frame's 125 bytes."""
    text = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(struct.pack("!H", code) + text, _OP_CLOSE)


@dataclass(frozen=True, slots=True)
class BadLine:
    """A message that is not one IRC line: the client gets an error reply, the rest goes on."""

    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    """The WebSocket closed: the peer's Close, or ours after a protocol error.

    ``reason`` is what the session's QUIT and log say.
    """

    reason: str


def frame_lines(chunk: bytes, text: bool) -> bytes:
    """The frames for the CRLF-terminated lines in ``chunk``: one message per line."""
    opcode = _OP_TEXT if text else _OP_BINARY
    return b"".join(
        encode_frame(_payload(line, text), opcode)
        for line in chunk.split(b"\n")
        if line.strip(b"\r")
    )


class FrameWriter:
    """Turns queued IRC lines (CRLF-terminated) into WebSocket frames for ``sink``
    (the send queue's ``put``)."""

    __slots__ = ("_sink", "_text")

    def __init__(self, sink: Callable[[bytes], None], text: bool) -> None:
        self._sink = sink
        self._text = text

    def put(self, line: bytes) -> None:
        self._sink(frame_lines(line, self._text))


Item = bytes | LineTooLong | BadLine | Closed


def _payload(line: bytes, text: bool) -> bytes:
    """A message's payload for ``line``: no line ending; for text, valid UTF-8
    (a line clipped to 512 bytes may end in the middle of a character)."""
    line = line.rstrip(b"\r\n")
    if text:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            line = line.decode("utf-8", "replace").encode("utf-8")
    return line


class IrcWebSocket:
    """One client's IRC lines over an accepted WebSocket (wsproto's connection).

    :meth:`feed` takes received bytes and returns, in order, each line as
    ``bytes`` (without line ending), :class:`LineTooLong`, :class:`BadLine`,
    or a final :class:`Closed`. Control frames are answered through
    ``reply``, set by the session (it queues bytes for the client): a Ping
    gets its Pong, a Close its Close. :meth:`farewell` gives the last bytes to send when the server
    closes: the ERROR line and a Close frame (nothing once a Close went out).
    """

    __slots__ = (
        "_parts",
        "_size",
        "_ws",
        "close_sent",
        "max_line",
        "max_message",
        "max_tags",
        "reply",
        "text",
    )

    def __init__(
        self,
        ws: WSConnection,
        text: bool,
        reply: Callable[[bytes], None] | None = None,
        max_line: int = MAX_LINE_BYTES,
        max_tags: int = MAX_TAG_BYTES,
        max_message: int = MAX_UNTERMINATED_BYTES,
    ) -> None:
        self._ws = ws
        self.text = text
        self.reply = reply
        self._parts: list[bytes] = []
        self._size = 0
        self.close_sent = False
        self.max_line, self.max_tags, self.max_message = max_line, max_tags, max_message

    def feed(self, data: bytes) -> list[Item]:
        """Items for ``data``; raises FramingError past ``max_message`` bytes in one message."""
        if self.close_sent:
            return []
        ws = self._ws
        ws.receive_data(data)
        out: list[Item] = []
        for event in ws.events():
            if isinstance(event, Message):
                item = self._message_part(event)
                if item is not None:
                    out.append(item)
            elif isinstance(event, Ping):
                self.reply(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                out.append(self._closed(event))
                break
        return out

    def _message_part(self, event: TextMessage | BytesMessage) -> Item | None:
        data = event.data
        part = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self._size += len(part)
        if self._size > self.max_message:
            raise FramingError(f"a WebSocket message of more than {self.max_message} bytes")
        self._parts.append(part)
        if not event.message_finished:
            return None
        line = b"".join(self._parts)
        self._parts, self._size = [], 0
        if line.endswith(b"\n"):  # tolerated: a client that ends its lines as on TCP
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if b"\r" in line or b"\n" in line:
            return BadLine("a WebSocket message carries one IRC line, without CR or LF")
        if not line:
            return None  # as an empty line on TCP
        return too_long(line, self.max_line, self.max_tags) or line

    def _closed(self, event: CloseConnection) -> Closed:
        ws = self._ws
        if ws.state is ConnectionState.REMOTE_CLOSING:  # the client closed: answer it
            self.reply(ws.send(event.response()))
            self.close_sent = True
            return Closed("Connection closed")
        # wsproto found a protocol error (bad UTF-8 in a text frame: 1007): close with its code.
        self.reply(close_frame(event.code, event.reason or ""))
        self.close_sent = True
        if event.code == CloseReason.INVALID_FRAME_PAYLOAD_DATA:
            return Closed("Invalid UTF-8 in a text frame")
        return Closed(f"WebSocket protocol error ({event.code})")

    def farewell(self, line: bytes, code: int = CloseReason.NORMAL_CLOSURE) -> bytes:
        """The ERROR ``line`` as a frame, then a Close frame; b"" once a Close was sent."""
        if self.close_sent:
            return b""
        self.close_sent = True
        opcode = _OP_TEXT if self.text else _OP_BINARY
        return encode_frame(_payload(line, self.text), opcode) + close_frame(code)
