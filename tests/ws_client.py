"""A blocking WebSocket test client (wsproto over a plain socket); every wait has a deadline."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
import struct
import time
from collections import deque

from transcript import DEFAULT_TIMEOUT, IrcSteps
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final, masked client frame (for payloads wsproto refuses to send)."""
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + body


class WsClient(IrcSteps):
    """One WebSocket connection: ``handshake``, send messages, read them by regex.

    ``messages`` holds every data message received (wsproto events, joined when
    fragmented), ``events`` the other events not consumed yet.
    """

    def __init__(
        self,
        address: tuple,
        timeout: float = DEFAULT_TIMEOUT,
        rcvbuf: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: wss, trusting what the context trusts."""
        self.address = address
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=address[0])
        self.timeout = timeout
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: deque[Event] = deque()
        self.messages: list[TextMessage | BytesMessage] = []
        self._parts: list[Message] = []
        self.eof = False

    # -- handshake -----------------------------------------------------------

    def handshake(
        self,
        subprotocols: list[str] | None = None,
        origin: str | None = None,
        host: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> AcceptConnection | RejectConnection:
        """Send the opening handshake; the server's answer (its body, if any, is read too)."""
        extra = {**(headers or {}), **({"origin": origin} if origin is not None else {})}
        headers = [(name.lower().encode(), value.encode()) for name, value in extra.items()]
        host = host or f"{self.address[0]}:{self.address[1]}"
        self.send(Request(host=host, target="/", subprotocols=subprotocols or [],
                          extra_headers=headers))  # fmt: skip
        answer = self.next_event((AcceptConnection, RejectConnection))
        if isinstance(answer, RejectConnection) and answer.has_body:
            while not self.next_event((RejectData,)).body_finished:
                pass
        return answer

    def accepted(self, **handshake) -> AcceptConnection:
        answer = self.handshake(**handshake)
        assert isinstance(answer, AcceptConnection), f"refused: {answer}"
        return answer

    # -- sending -------------------------------------------------------------

    def send(self, event: Event) -> None:
        self.sock.sendall(self.ws.send(event))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_text(self, *parts: str) -> None:
        """One text message, in one frame per part."""
        for i, part in enumerate(parts):
            self.send(TextMessage(data=part, message_finished=i == len(parts) - 1))

    def send_lines(self, *lines: str) -> None:
        for line in lines:
            self.send_text(line)

    # -- receiving -----------------------------------------------------------

    def _pump(self, deadline: float) -> None:
        """Receive once (within ``deadline``) and sort wsproto's events."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("nothing received in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            self.ws.receive_data(None)
        else:
            self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, Message):
                self._parts.append(event)
                if event.message_finished:
                    self.messages.append(_joined(self._parts))
                    self._parts = []
            else:
                self.events.append(event)

    def next_event(self, kinds: tuple[type, ...], timeout: float | None = None) -> Event:
        """The next non-message event of one of ``kinds`` (others are dropped)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            while self.events:
                event = self.events.popleft()
                if isinstance(event, kinds):
                    return event
            if self.eof:
                raise AssertionError(f"connection closed waiting for {kinds}")
            self._pump(deadline)

    def expect(self, pattern: str, timeout: float | None = None) -> TextMessage | BytesMessage:
        """Read until a message (text, or binary as UTF-8) matches ``pattern``; return it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if regex.search(text_of(message)):
                    return message
            seen = len(self.messages)
            if self.eof:
                raise AssertionError(f"closed waiting for {pattern!r}: {self.texts()[-20:]}")
            try:
                self._pump(deadline)
            except TimeoutError:
                raise AssertionError(
                    f"timed out waiting for {pattern!r}: {self.texts()[-20:]}"
                ) from None

    def texts(self) -> list[str]:
        return [text_of(message) for message in self.messages]

    def wait_closed(self, timeout: float | None = None) -> int | None:
        """Read until the server's Close; its code (None when the TCP stream just ended)."""
        try:
            event = self.next_event((CloseConnection,), timeout)
        except AssertionError:
            return None
        return event.code

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def text_of(message: TextMessage | BytesMessage) -> str:
    data = message.data
    return data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")


def _joined(parts: list[Message]) -> TextMessage | BytesMessage:
    if isinstance(parts[0], TextMessage):
        return TextMessage(data="".join(p.data for p in parts))
    return BytesMessage(data=b"".join(bytes(p.data) for p in parts))
