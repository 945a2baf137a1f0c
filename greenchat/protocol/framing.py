"""Splitting a byte stream into IRC lines, with length caps (sans-IO).

Lines end in ``\\r\\n`` or a bare ``\\n``. A line whose body (everything after
the tag section) exceeds 512 bytes including the line ending, or whose tag
section exceeds 8191 bytes, is reported as :class:`LineTooLong` and dropped;
the stream goes on. A peer that sends more than ``max_unterminated`` bytes
without any newline is not speaking IRC: :meth:`LineFramer.feed` raises
:class:`FramingError` and the connection should be closed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_TAG_BYTES",
    "MAX_UNTERMINATED_BYTES",
    "FramingError",
    "LineFramer",
    "LineTooLong",
    "too_long",
]

MAX_LINE_BYTES = 512  # body including CRLF (RFC 1459)
MAX_TAG_BYTES = 8191  # tag section including '@' and the trailing space (IRCv3)
# The longest legal line is 8191 + 512 bytes; allow a little over that before
# deciding the peer is sending something that is not line-oriented at all.
MAX_UNTERMINATED_BYTES = 10 * 1024


class FramingError(Exception):
    """The peer sent more than the allowed bytes without a newline."""


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line that was dropped because it exceeded a length cap."""

    length: int
    tags_too_long: bool


def too_long(line: bytes, max_line: int, max_tags: int) -> LineTooLong | None:
    """Why ``line`` (without its line ending) breaks a length cap, or None."""
    body_len = len(line) + 2  # count the CRLF the way RFC 1459 does
    if line.startswith(b"@"):
        space = line.find(b" ")
        tag_len = len(line) if space == -1 else space + 1
        if tag_len > max_tags:
            return LineTooLong(len(line), True)
        body_len -= tag_len
    if body_len > max_line:
        return LineTooLong(len(line), False)
    return None


class LineFramer:
    """Accumulates received bytes and hands out complete lines.

    ``feed`` returns, in order, each complete line as ``bytes`` (line ending
    stripped, empty lines skipped) or a :class:`LineTooLong` for a line that
    was dropped.
    """

    __slots__ = ("_buffer", "max_line", "max_tags", "max_unterminated")

    def __init__(
        self,
        max_line: int = MAX_LINE_BYTES,
        max_tags: int = MAX_TAG_BYTES,
        max_unterminated: int = MAX_UNTERMINATED_BYTES,
    ) -> None:
        self._buffer = b""
        self.max_line = max_line
        self.max_tags = max_tags
        self.max_unterminated = max_unterminated

    @property
    def pending(self) -> int:
        """Bytes received that are not yet part of a complete line."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        if self._buffer:
            data = self._buffer + data
        lines = data.split(b"\n")
        rest = lines.pop()
        if len(rest) > self.max_unterminated:
            self._buffer = b""
            raise FramingError(f"{len(rest)} bytes without a newline")
        self._buffer = rest
        out: list[bytes | LineTooLong] = []
        max_line, max_tags = self.max_line, self.max_tags
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                continue
            if len(line) + 2 > max_line:
                problem = too_long(line, max_line, max_tags)
                if problem is not None:
                    out.append(problem)
                    continue
            out.append(line)
        return out
