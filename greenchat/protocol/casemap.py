"""rfc1459 case mapping and nick/channel name validation (sans-IO).

Under rfc1459, ``{}|^`` are the lower-case forms of ``[]\\~``, so ``Nick[a]``
and ``nick{A}`` are the same nick. Validation follows modern.ircdocs.horse:
a nick must not start with a digit, '-', '#', '&' or ':' and contains no
space, ',', '*', '?', '!' or '@'; a channel starts with '#' and contains no
space, ',', BELL (^G) or ':'.
"""

from __future__ import annotations

import re

__all__ = [
    "CASEMAPPING",
    "CHANNEL_PREFIXES",
    "STATUSMSG",
    "casefold",
    "is_channel_name",
    "split_status",
    "valid_channel",
    "valid_nick",
]

CASEMAPPING = "rfc1459"
CHANNEL_PREFIXES = "#"
# The member prefixes a message may put before a channel to reach only those members
# (ISUPPORT STATUSMSG: ``@#chan`` its ops, ``+#chan`` its voiced members and ops).
STATUSMSG = "@+"

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~"
_LOWER = "abcdefghijklmnopqrstuvwxyz{}|^"
_FOLD = str.maketrans(_UPPER, _LOWER)


def casefold(name: str) -> str:
    """The rfc1459 lower-case form of ``name``, used as a dictionary key."""
    return name.translate(_FOLD)


# Letters, digits and the "special" characters of RFC 2812, not starting with
# a digit or '-'. Restricting nicks to ASCII keeps case mapping unambiguous.
# Used with fullmatch: "$" would also accept a trailing "\n".
_NICK = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}\-]*")
_CHANNEL_FORBIDDEN = re.compile(r"[\x00-\x20,\x07:]")


def valid_nick(nick: str, max_len: int) -> bool:
    return 0 < len(nick) <= max_len and _NICK.fullmatch(nick) is not None


def is_channel_name(target: str) -> bool:
    """Whether ``target`` names a channel rather than a nick.

    Not ``target[:1] in CHANNEL_PREFIXES``: for an empty target that tests
    ``"" in "#"``, which is true.
    """
    return target.startswith(tuple(CHANNEL_PREFIXES))


def valid_channel(name: str, max_len: int) -> bool:
    return (
        1 < len(name) <= max_len
        and is_channel_name(name)
        and _CHANNEL_FORBIDDEN.search(name) is None
    )


def split_status(target: str) -> tuple[str, str]:
    """STATUSMSG: ``@#chan`` -> ``("@", "#chan")``; of several prefixes the one that
    reaches most members (``@+#chan``: ``+``); ``("", target)`` for anything else."""
    name = target.lstrip(STATUSMSG)
    if name == target or not is_channel_name(name):
        return "", target
    prefixes = target[: len(target) - len(name)]
    return ("+" if "+" in prefixes else "@"), name
