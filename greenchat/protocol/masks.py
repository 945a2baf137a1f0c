"""IRC wildcard masks (sans-IO): ``*`` and ``?`` over ``nick!user@host``.

Masks and names are compared under rfc1459 case mapping, so a ban on
``Nick[1]!*@*`` also matches ``nick{1}``. Only ``*`` (any run, even empty)
and ``?`` (exactly one character) are special; everything else, including
``[`` and ``]``, is literal (an fnmatch-based matcher would get those wrong).

A partial mask is completed the way servers do before storing a ban:
``nick`` -> ``nick!*@*``, ``user@host`` -> ``*!user@host``, ``*@host`` ->
``*!*@host``; a lone word with a ``.`` or ``:`` (nicks have neither) is a host.

An account mask matches the account a user is logged in to instead, as Ergo and
InspIRCd spell it: ``$a:<account glob>`` or ``~a:<account glob>``; ``$a`` alone
is anyone logged in. It is kept as given.

The channel lists (+b, +e, +I) also take extended bans (ISUPPORT ``EXTBAN=,aUm``,
no prefix character, as InspIRCd writes them): ``a:<account glob>`` (the account
mask again), ``U:<mask>`` (users matching the mask who are not logged in) and
``m:<mask>`` (a mute: the user may join but not speak; its mask may be any of the
others, ``m:U:*!*@*`` quiets everyone not logged in). :class:`Ban` is one, parsed.
"""

from __future__ import annotations

import re
from functools import lru_cache

from greenchat.protocol.casemap import casefold

__all__ = [
    "EXTBANS",
    "Ban",
    "account_glob",
    "compile_mask",
    "match_mask",
    "normalize_ban",
    "normalize_mask",
    "parse_ban",
]

_ACCOUNT_PREFIXES = ("$a", "~a", "a")
EXTBANS = "aUm"  # ISUPPORT EXTBAN=,aUm: account, unregistered, mute


class _Glob:
    """A compiled mask: the pieces between ``*``s, each a fixed-length pattern.

    Matching finds the pieces left to right, each at its leftmost place,
    which is always correct for ``*`` globs and takes linear-ish time. A
    single regex with ``.*`` between pieces can backtrack polynomially, and
    a channel op may choose a mask like ``*a*a*a*a*a*b`` on purpose.
    """

    __slots__ = ("head", "middle", "star", "tail")

    def __init__(self, folded_mask: str) -> None:
        pieces = [_piece(text) for text in folded_mask.split("*")]
        self.star = len(pieces) > 1
        self.head = pieces[0]
        self.tail = pieces[-1]  # the head again when there is no '*'
        self.middle = [p for p in pieces[1:-1] if p[1]]

    def match(self, name: str) -> bool:
        head, head_len = self.head
        if not self.star:
            return head_len == len(name) and head.match(name) is not None
        tail, tail_len = self.tail
        end = len(name) - tail_len
        if end < head_len or head.match(name) is None or tail.match(name, end) is None:
            return False
        pos = head_len
        for piece, length in self.middle:
            found = piece.search(name, pos, end)
            if found is None:
                return False
            pos = found.start() + length
        return True


def _piece(text: str) -> tuple[re.Pattern[str], int]:
    """A fixed-length pattern for mask text without ``*`` (``?`` is any one character)."""
    regex = "".join("." if char == "?" else re.escape(char) for char in text)
    return re.compile(regex, re.DOTALL), len(text)


@lru_cache(maxsize=4096)
def compile_mask(mask: str) -> _Glob:
    """The matcher for ``mask``; cached: the same bans are tested again and again."""
    return _Glob(casefold(mask))


def match_mask(mask: str, name: str) -> bool:
    """Whether ``name`` (e.g. ``nick!user@host``) matches the wildcard ``mask``."""
    return compile_mask(mask).match(casefold(name))


@lru_cache(maxsize=4096)
def account_glob(mask: str) -> str | None:
    """For an account mask (``$a:name``, ``~a:na*``, ``a:name``, ``$a``), the glob its account must
    match ('*' for ``$a`` alone); None for a nick!user@host mask."""
    head, colon, glob = mask.partition(":")
    if head.lower() not in _ACCOUNT_PREFIXES or (head.lower() == "a" and not colon):
        return None  # (a lone ``a`` is a nick)
    return (glob or "*") if colon else "*"


def normalize_ban(mask: str) -> str:
    """A list entry as it is stored and shown: a mute's or an unregistered-user mask's
    inner mask completed (``m:bob`` -> ``m:bob!*@*``), an account mask as given."""
    head, colon, rest = mask.partition(":")
    kind = head.lower()
    if colon and kind == "m" and rest:
        return f"m:{normalize_ban(rest)}"
    if colon and kind == "u" and rest:
        return f"U:{normalize_mask(rest)}"
    return normalize_mask(mask)


class Ban:
    """One parsed list entry: whom it matches (an account glob, or a nick!user@host
    mask, perhaps for users not logged in only) and whether it is a mute."""

    __slots__ = ("account", "glob", "mute", "unregistered")

    def __init__(self, mask: str) -> None:
        # The letters in any case: the channel keeps its lists keyed casefolded.
        self.mute = mask[:2].lower() == "m:" and len(mask) > 2
        if self.mute:
            mask = mask[2:]
        self.unregistered = mask[:2].lower() == "u:" and len(mask) > 2
        if self.unregistered:
            mask = mask[2:]
        glob = account_glob(mask)
        self.account = glob is not None  # an account mask: the glob is the account's
        self.glob = compile_mask(glob if glob is not None else mask)

    def matches(self, folded_prefix: str, account: str) -> bool:
        """Whether a user (``nick!user@host`` casefolded, its account or '') matches."""
        if self.account:
            return bool(account) and self.glob.match(casefold(account))
        if self.unregistered and account:
            return False
        return self.glob.match(folded_prefix)


@lru_cache(maxsize=8192)
def parse_ban(mask: str) -> Ban:
    """The parsed entry for ``mask``; cached: the same lists are checked again and again."""
    return Ban(mask)


def normalize_mask(mask: str) -> str:
    """Complete a partial mask to ``nick!user@host``, empty parts becoming ``*``; an
    account mask stays as it is."""
    if account_glob(mask) is not None:
        return mask
    if "!" in mask:
        nick, _, rest = mask.partition("!")
        user, _, host = rest.partition("@")
    elif "@" in mask:
        nick = "*"
        user, _, host = mask.partition("@")
    elif "." in mask or ":" in mask:
        nick, user, host = "*", "*", mask
    else:
        nick, user, host = mask, "*", "*"
    return f"{nick or '*'}!{user or '*'}@{host or '*'}"
