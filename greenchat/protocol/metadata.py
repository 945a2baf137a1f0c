"""IRCv3 metadata (``draft/metadata-3``), the part that needs no server: what a key and
a value may be, the limits the capability advertises, and what a METADATA command asks.

Pure functions of their arguments, tested without sockets (tests/unit/test_metadata_protocol.py);
the command's replies are commands/metadata.py's, the state the hub's.

Keys are lowercase ``a-z 0-9 _ . / -`` (as Ergo and the current draft have them: no
colon, no upper case), at most :data:`MAX_KEY_BYTES`. A value is any UTF-8 text (a
line that is not UTF-8 never gets this far) of at most :data:`MAX_VALUE_BYTES`; an
empty value is a value. The limits are chosen so the longest reply,
``:<server> 761 <nick> <channel> <key> * :<value>``, fits in an IRC line of 512 bytes
for an ASCII channel name; :func:`fits_a_line` checks a value against the real ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CAPABILITY",
    "MAX_KEYS",
    "MAX_KEY_BYTES",
    "MAX_SUBS",
    "MAX_VALUE_BYTES",
    "SUBCOMMANDS",
    "VISIBLE",
    "Problem",
    "Request",
    "capability_value",
    "fits_a_line",
    "parse_request",
    "valid_key",
    "value_problem",
]

CAPABILITY = "draft/metadata-3"
MAX_SUBS = 50  # keys one client may subscribe to
MAX_KEYS = 30  # keys a user or a channel may have set
MAX_KEY_BYTES = 64
MAX_VALUE_BYTES = 300
VISIBLE = "*"  # the visibility of every key here: everyone who may see the target
# The subcommands and the parameters each needs after it (at least).
SUBCOMMANDS = {
    "GET": 1, "LIST": 0, "SET": 1, "CLEAR": 0, "SUB": 1, "UNSUB": 1, "SUBS": 0, "SYNC": 0,
}  # fmt: skip

_KEY = re.compile(r"[a-z0-9_./-]+")


def capability_value() -> str:
    """What CAP LS says after ``draft/metadata-3=``: keys may be set before registration,
    and the limits."""
    return (
        f"before-connect,max-subs={MAX_SUBS},max-keys={MAX_KEYS},"
        f"max-value-bytes={MAX_VALUE_BYTES},max-key-bytes={MAX_KEY_BYTES}"
    )


def valid_key(key: str) -> bool:
    return len(key) <= MAX_KEY_BYTES and _KEY.fullmatch(key) is not None


def value_problem(value: str) -> str | None:
    """Why ``value`` cannot be set, or None if it can."""
    if len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        return f"Value is too long (at most {MAX_VALUE_BYTES} bytes)"
    return None


def fits_a_line(server: str, nicklen: int, target: str, key: str, value: str) -> bool:
    """Whether the longest reply that carries the value, ``:<server> 761 <nick> <target>
    <key> * :<value>`` to a nick of ``nicklen``, fits in 512 bytes: a long channel name
    (in UTF-8) or server name leaves less room for the value than MAX_VALUE_BYTES."""
    head = f":{server} 761 {'n' * nicklen} {target} {key} * :"
    return len(head.encode()) + len(value.encode("utf-8", "surrogatepass")) + 2 <= 512


@dataclass(frozen=True, slots=True)
class Request:
    """``METADATA <target> <subcommand> <args...>``, the subcommand upper-cased."""

    target: str
    subcommand: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """A METADATA command that cannot be carried out as sent: ``FAIL METADATA <code>
    <context...> :<text>`` (``code`` '' means 461, not enough parameters)."""

    code: str
    context: tuple[str, ...]
    text: str


def parse_request(params: tuple[str, ...] | list[str]) -> Request | Problem:
    """The request ``METADATA`` parameters make, or the Problem with it."""
    if len(params) < 2 or not params[0]:
        return Problem("", (), "Not enough parameters")
    target, subcommand, args = params[0], params[1].upper(), tuple(params[2:])
    needed = SUBCOMMANDS.get(subcommand)
    if needed is None:
        return Problem("SUBCOMMAND_INVALID", (params[1],), "Invalid subcommand")
    if len(args) < needed:
        return Problem("", (), "Not enough parameters")
    if subcommand == "SET" and len(args) > 2:
        return Problem("", (), "Too many parameters: METADATA <target> SET <key> [<value>]")
    return Request(target, subcommand, args)
