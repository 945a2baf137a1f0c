"""SASL over IRC's AUTHENTICATE, as IRCv3 sasl-3.2 has it (sans-IO).

https://ircv3.net/specs/extensions/sasl-3.2: a SASL message travels base64
encoded in ``AUTHENTICATE`` lines of at most 400 bytes; a line of exactly 400
bytes means more follows, and ``+`` stands for an empty message (or ends one
that filled its last line). :class:`Reassembly` puts a client's lines back
together, :func:`chunks` cuts the server's messages, :func:`parse_plain`
reads a PLAIN response (RFC 4616). Mechanisms that talk back and forth
(SCRAM) live with the server; this module knows no accounts.
"""

from __future__ import annotations

import base64
import binascii

__all__ = [
    "CHUNK",
    "MAX_MESSAGE",
    "BadMessage",
    "Reassembly",
    "TooLong",
    "chunks",
    "parse_plain",
]

CHUNK = 400  # bytes of base64 per AUTHENTICATE line
MAX_MESSAGE = 8192  # bytes of base64 in one client message: a PLAIN or SCRAM step is far less


class BadMessage(ValueError):
    """Not base64, or not what the mechanism expects: the attempt fails (904)."""


class TooLong(ValueError):
    """More than MAX_MESSAGE bytes in one message (905)."""


class Reassembly:
    """One client message, line by line: :meth:`feed` returns the decoded bytes
    once the message is whole, else None."""

    __slots__ = ("_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0

    def feed(self, line: str) -> bytes | None:
        if line == "+":
            return self._finish()
        if len(line) > CHUNK:
            self._reset()
            raise TooLong("an AUTHENTICATE line longer than 400 bytes")
        self._size += len(line)
        if self._size > MAX_MESSAGE:
            self._reset()
            raise TooLong(f"a SASL message over {MAX_MESSAGE} bytes")
        self._parts.append(line)
        return None if len(line) == CHUNK else self._finish()

    def _finish(self) -> bytes:
        text = "".join(self._parts)
        self._reset()
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise BadMessage("not valid base64") from None

    def _reset(self) -> None:
        self._parts, self._size = [], 0


def chunks(message: bytes) -> list[str]:
    """The AUTHENTICATE parameters that carry ``message``: 400-byte pieces of its
    base64, and a ``+`` when it is empty or its last piece is exactly 400."""
    text = base64.b64encode(message).decode("ascii")
    pieces = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
    if not pieces or len(pieces[-1]) == CHUNK:
        pieces.append("+")
    return pieces


def parse_plain(message: bytes) -> tuple[str, str, str]:
    """``authzid NUL authcid NUL password`` -> (authzid, authcid, password);
    authzid is '' when the client names none (it must equal authcid otherwise)."""
    try:
        authzid, authcid, password = message.decode("utf-8").split("\0")
    except (UnicodeDecodeError, ValueError):
        raise BadMessage("a PLAIN response is authzid NUL authcid NUL password") from None
    if not authcid or not password:
        raise BadMessage("a PLAIN response needs an account name and a password")
    return authzid, authcid, password
