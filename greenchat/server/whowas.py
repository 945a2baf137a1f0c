"""WHOWAS history: who used a nick before, bounded in size (sans-IO).

Entries are recorded when a user quits or changes nick. The whole history
holds at most ``limit`` entries (``ServerConfig.whowas_size``), oldest
dropped first, so a flood of nick changes costs bounded memory. Lookups by
nick are O(1): each casefolded nick keeps its own entries, newest last.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from greenchat.protocol.casemap import casefold

__all__ = ["WhoWas", "WhoWasEntry"]


@dataclass(frozen=True, slots=True)
class WhoWasEntry:
    nick: str
    user: str
    host: str
    realname: str
    ip: str = ""
    when: float = field(default_factory=time.time)


class WhoWas:
    """A bounded history of former nicks, newest first on lookup."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._order: deque[str] = deque()  # casefolded nick of each entry, oldest first
        self._by_nick: dict[str, deque[WhoWasEntry]] = {}

    def __len__(self) -> int:
        return len(self._order)

    def record(self, entry: WhoWasEntry, limit: int | None = None) -> None:
        """Add ``entry``; drop the oldest entries beyond ``limit`` (default: self.limit)."""
        if limit is not None:
            self.limit = limit
        if self.limit <= 0:
            return
        key = casefold(entry.nick)
        self._order.append(key)
        self._by_nick.setdefault(key, deque()).append(entry)
        while len(self._order) > self.limit:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        # The globally oldest entry is also the oldest of its own nick.
        key = self._order.popleft()
        entries = self._by_nick[key]
        entries.popleft()
        if not entries:
            del self._by_nick[key]

    def find(self, nick: str, count: int = 0) -> list[WhoWasEntry]:
        """The entries for ``nick``, newest first; at most ``count`` when positive."""
        entries = self._by_nick.get(casefold(nick))
        if not entries:
            return []
        newest_first = list(reversed(entries))
        return newest_first[:count] if count > 0 else newest_first
