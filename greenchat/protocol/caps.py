"""IRCv3 capability negotiation (sans-IO).

:class:`CapNegotiation` holds one connection's capability state and turns a
``CAP`` subcommand into reply parameter lists. It knows nothing of sockets:
the server prefixes each reply with its name and the client's nick.
See https://ircv3.net/specs/extensions/capability-negotiation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["CapNegotiation", "CapReply"]

# One reply: the parameters after "CAP <nick>", e.g. ("ACK", "server-time").
CapReply = tuple[str, ...]

# Keep each LS/LIST line well below 512 bytes once the prefix is added.
_MAX_CAPS_TEXT = 400
_VERSION = re.compile(r"[0-9]{1,9}")


def _ls_version(args: list[str]) -> int:
    """The version in ``CAP LS [version]``; 301 when absent or malformed.

    ``str.isdigit`` alone is not enough: it accepts '³', which ``int`` rejects,
    and a huge digit string makes ``int`` raise too. Neither may crash us.
    """
    if args and _VERSION.fullmatch(args[0]):
        return int(args[0])
    return 301


_NONE: frozenset[str] = frozenset()
MAX_REQ_BYTES = 400


class CapNegotiation:
    """Capability state of one connection.

    ``supported`` maps each capability the server implements to its LS value
    ('' for none). ``in_progress`` is true between a client's first ``CAP LS``
    or ``CAP REQ`` and its ``CAP END``: registration waits for it.
    """

    # One per connection, most of them idle: no instance dict, and the enabled
    # set is an immutable one (a shared empty one until the client asks).
    __slots__ = ("enabled", "in_progress", "supported", "version")

    def __init__(self, supported: Mapping[str, str]) -> None:
        self.supported = supported  # shared by every connection: never modified
        self.enabled: frozenset[str] = _NONE
        self.version = 0  # 0: never asked; 301 or 302 after CAP LS
        self.in_progress = False

    def handle(self, subcommand: str, args: list[str]) -> list[CapReply] | None:
        """Process ``CAP <subcommand> [args]``; ``None`` means unknown subcommand."""
        handler = getattr(self, "_" + subcommand.lower(), None)
        if subcommand.lower() not in ("ls", "list", "req", "end") or handler is None:
            return None
        return handler(args)

    def _ls(self, args: list[str]) -> list[CapReply]:
        self.in_progress = True
        version = _ls_version(args)
        self.version = max(self.version, version)
        if self.version >= 302:
            # CAP LS 302 implicitly enables cap-notify.
            if "cap-notify" in self.supported:
                self.enabled |= {"cap-notify"}
            words = [f"{n}={v}" if v else n for n, v in sorted(self.supported.items())]
        else:
            words = sorted(self.supported)
        return self._chunked("LS", words)

    def _list(self, args: list[str]) -> list[CapReply]:
        return self._chunked("LIST", sorted(self.enabled))

    def _req(self, args: list[str]) -> list[CapReply]:
        self.in_progress = True
        text = args[0] if args else ""
        if len(text.encode()) > MAX_REQ_BYTES:
            # The ACK echoes the request: it must fit a 512-byte line. Every
            # capability there is fits in half of that; longer means repeats.
            return [("NAK", text)]
        wanted = text.split()
        adds, removes = set(), set()
        for word in wanted:
            name = word[1:] if word.startswith("-") else word
            if name not in self.supported:
                return [("NAK", text)]
            (removes if word.startswith("-") else adds).add(name)
        # The request is atomic: it applies whole or not at all.
        self.enabled |= adds
        self.enabled -= removes
        return [("ACK", text)]

    def _end(self, args: list[str]) -> list[CapReply]:
        self.in_progress = False
        return []

    def _chunked(self, sub: str, words: list[str]) -> list[CapReply]:
        lines: list[list[str]] = [[]]
        size = 0
        for word in words:
            if lines[-1] and size + len(word) + 1 > _MAX_CAPS_TEXT:
                lines.append([])
                size = 0
            lines[-1].append(word)
            size += len(word) + 1
        if len(lines) == 1 or self.version < 302:
            # Pre-302 clients cannot read continuation lines: send one long line.
            return [(sub, " ".join(w for line in lines for w in line))]
        replies: list[CapReply] = [(sub, "*", " ".join(line)) for line in lines[:-1]]
        replies.append((sub, " ".join(lines[-1])))
        return replies
