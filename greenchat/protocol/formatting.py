"""IRC text formatting (sans-IO): the control codes clients use for colour and style.

mIRC's colours (``\\x03`` with up to two digits of foreground and, after a comma,
two of background), hex colours (``\\x04RRGGBB[,RRGGBB]``), bold ``\\x02``,
italics ``\\x1d``, underline ``\\x1f``, strikethrough ``\\x1e``, monospace
``\\x11``, reverse ``\\x16`` and reset ``\\x0f``
(https://modern.ircdocs.horse/formatting). A channel with ``+c`` gets its lines
without them (:func:`strip_formatting`); CTCP (``\\x01``) is another matter
(:func:`is_ctcp`).
"""

from __future__ import annotations

import re

__all__ = ["has_formatting", "is_ctcp", "strip_formatting"]

_FORMATTING = re.compile(
    r"\x03(?:\d{1,2}(?:,\d{1,2})?)?"
    r"|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
_CODES = frozenset("\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f")


def has_formatting(text: str) -> bool:
    return not _CODES.isdisjoint(text)


def strip_formatting(text: str) -> str:
    """``text`` without colour and style codes (a colour's digits go with it)."""
    return _FORMATTING.sub("", text) if has_formatting(text) else text


def is_ctcp(text: str, except_action: bool = True) -> bool:
    """A CTCP request or reply (``\\x01VERSION\\x01``); ``ACTION`` (``/me``) is not one
    with ``except_action``, as channels with ``+C`` let it through."""
    if not text.startswith("\x01"):
        return False
    verb = text[1:].split(" ", 1)[0].rstrip("\x01").upper()
    return not (except_action and verb == "ACTION")
