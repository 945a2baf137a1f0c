"""IRC message parsing and serialization (sans-IO).

A message is ``[@tags] [:source] COMMAND [params...] [:trailing]`` as described
by modern.ircdocs.horse and the IRCv3 message-tags specification. Parsing
follows RFC 1459 in treating runs of spaces as one separator. Serializing
refuses anything that could smuggle a second line onto the wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "InvalidMessage",
    "Message",
    "clip_line",
    "escape_tag_value",
    "middle_or_star",
    "parse",
    "parse_tags",
    "serialize",
    "split_source",
    "truncate_utf8",
    "unescape_tag_value",
    "valid_tag_key",
]


class InvalidMessage(ValueError):
    """A line that is not an IRC message, or a message that cannot be sent."""


@dataclass(frozen=True, slots=True)
class Message:
    """One IRC message. ``tags`` values are unescaped; a tag without value maps to ''."""

    command: str
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def to_bytes(self, force_trailing: bool = False) -> bytes:
        """The message as it goes on the wire, CRLF included."""
        return serialize(self, force_trailing).encode("utf-8") + b"\r\n"


# Tag value escaping: the characters that cannot appear raw in a tag value.
_ESCAPES = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)
_NEEDS_ESCAPE = re.compile(r"[; \\\r\n]")


def escape_tag_value(value: str) -> str:
    # Most values (msgids, accounts, labels) need nothing, and a search is a fraction
    # of what translate costs.
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return value.translate(_ESCAPE_TABLE)


def unescape_tag_value(raw: str) -> str:
    if "\\" not in raw:
        return raw
    out: list[str] = []
    chars = iter(raw)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, None)
        if nxt is None:  # a lone trailing backslash is dropped
            break
        # Unknown escapes drop the backslash: "\b" means "b".
        out.append(_UNESCAPES.get(nxt, nxt))
    return "".join(out)


def parse_tags(raw: str) -> dict[str, str]:
    """Parse the tag section without its leading '@'. Later duplicates win."""
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        if key:
            tags[key] = unescape_tag_value(value)
    return tags


def _forbidden(text: str) -> bool:
    return "\r" in text or "\n" in text or "\0" in text


def middle_or_star(param: str) -> str:
    """``param`` where it can stand as a middle parameter, else '*': for replies that
    echo what a client sent (a nick, a channel, a subcommand) before their text."""
    if not param or param[0] == ":" or " " in param or _forbidden(param):
        return "*"
    return param


def parse(line: str) -> Message:
    """Parse one line (without its line ending) into a :class:`Message`.

    Raises :class:`InvalidMessage` for an empty line, a line with no command,
    or a line containing CR, LF or NUL.
    """
    if _forbidden(line):
        raise InvalidMessage("line contains CR, LF or NUL")
    tags: dict[str, str] = {}
    rest = line.lstrip(" ")
    if rest.startswith("@"):
        raw_tags, _, rest = rest.partition(" ")
        tags = parse_tags(raw_tags[1:])
        rest = rest.lstrip(" ")
    source = None
    if rest.startswith(":"):
        raw_source, _, rest = rest.partition(" ")
        source = raw_source[1:]
        rest = rest.lstrip(" ")
    trailing = None
    cut = rest.find(" :")
    if cut != -1:
        trailing = rest[cut + 2 :]
        rest = rest[:cut]
    words = [w for w in rest.split(" ") if w]
    if not words:
        raise InvalidMessage("no command")
    if trailing is not None:
        words.append(trailing)
    return Message(words[0], tuple(words[1:]), source, tags)


# Used with fullmatch: "$" would also match before a trailing "\n" and let
# a key or command smuggle a line break onto the wire.
_TAG_KEY = re.compile(r"\+?([A-Za-z0-9.\-]+/)?[A-Za-z0-9\-]+")
_COMMAND = re.compile(r"[A-Za-z]+|[0-9]{3}")


def _check_word(kind: str, text: str) -> None:
    if not text or " " in text or _forbidden(text):
        raise InvalidMessage(f"{kind} must be non-empty with no space, CR, LF or NUL: {text!r}")


def serialize(msg: Message, force_trailing: bool = False) -> str:
    """The wire form of ``msg`` without line ending.

    Raises :class:`InvalidMessage` when any part would break framing: CR, LF or
    NUL anywhere; a space or leading ':' in a non-final parameter; an empty
    non-final parameter; an invalid command or tag key. ``force_trailing``
    sends the last parameter with ':' even when it does not need it, as
    servers do for message text.
    """
    parts: list[str] = []
    if msg.tags:
        items = []
        for key, value in msg.tags.items():
            if not _TAG_KEY.fullmatch(key):
                raise InvalidMessage(f"invalid tag key: {key!r}")
            if value and "\0" in value:
                raise InvalidMessage("tag value contains NUL")
            items.append(f"{key}={escape_tag_value(value)}" if value else key)
        parts.append("@" + ";".join(items))
    if msg.source is not None:
        _check_word("source", msg.source)
        parts.append(":" + msg.source)
    if not _COMMAND.fullmatch(msg.command):
        raise InvalidMessage(f"invalid command: {msg.command!r}")
    parts.append(msg.command)
    params = msg.params
    for param in params[:-1]:
        _check_word("parameter", param)
        if param.startswith(":"):
            raise InvalidMessage(f"only the last parameter may start with ':': {param!r}")
        parts.append(param)
    if params:
        last = params[-1]
        if _forbidden(last):
            raise InvalidMessage("parameter contains CR, LF or NUL")
        if force_trailing or not last or " " in last or last.startswith(":"):
            last = ":" + last
        parts.append(last)
    return " ".join(parts)


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def clip_line(line: bytes, limit: int = 512) -> bytes:
    """A wire line whose body (after any tag section) fits ``limit`` bytes with CRLF.

    Servers must not send longer lines; the text is cut on a UTF-8 boundary.
    """
    start = line.find(b" ") + 1 if line.startswith(b"@") else 0
    if len(line) - start <= limit:
        return line
    body = line[start : start + limit - 2].decode("utf-8", "ignore").encode()
    return line[:start] + body + b"\r\n"


def valid_tag_key(key: str) -> bool:
    return _TAG_KEY.fullmatch(key) is not None


def split_source(source: str) -> tuple[str, str, str]:
    """Split ``nick!user@host`` into ``(nick, user, host)``, '' for missing parts.

    The host is cut at the first '@' because neither a nick nor a user may
    contain one; a source without '!' (``nick@host``) has no user part.
    """
    nick_user, _, host = source.partition("@")
    nick, _, user = nick_user.partition("!")
    return nick, user, host
