"""The order a node needs between the log and the chat channels' messages, when they
come from different shards of a Redis Cluster (no I/O here: the backplane feeds it).

On a single Redis one subscriber connection receives the log and every channel in the
order Redis ran them, so a JOIN comes before the joiner's first message and a PART
after their last. On a cluster each chat channel lives on the shard of its own slot,
the log on the network's: two connections, no order between them. Each envelope says
what its receiver needs:

- **A message after the log entries its sender had applied.** A message carries
  ``a``, the number of the last log entry its node had applied when sending, and
  ``n``, its number among that node's messages on that Redis channel. A receiver
  that has not applied entry ``a`` yet parks it (its JOIN is still on the way),
  behind any message of that node on that channel parked before it.
- **A leaving after the messages sent before it.** A PART or a QUIT proposed by a
  node carries, for each Redis channel it leaves, ``[n, a]`` of that node's last
  message there (``heard``). A receiver holds the log at that entry until it has
  applied message ``n``, but only if that message was sure to reach it: sent after
  the receiver's subscription took effect, which is the receiver's own first JOIN
  there (its node subscribes before proposing it) or, after a reconnection, the
  log's next entry from the moment it was subscribed again (``since``). A hold
  lasts HOLD_LIMIT at most (a message Redis lost), counted and logged.

Entries are ``(origin, pid, extra, event)``, as the backplane read them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["HOLD_LIMIT", "PARK_LIMIT", "ShardOrder"]

log = logging.getLogger("greenchat.backplane")

HOLD_LIMIT = 1.0  # seconds the log waits at most for a message sent before a leaving
PARK_LIMIT = 10_000  # messages parked at most; past that they are applied as they are

Entry = tuple[str, int, dict[str, Any], Any]


class ShardOrder:
    """One node's marks on what it sends, and its waits on what it receives."""

    def __init__(
        self,
        apply_message: Callable[[Entry], None],
        apply_log: Callable[[int, Entry], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.apply_message = apply_message
        self.apply_log = apply_log  # applies, and then calls log_applied
        self.clock = clock
        self._sent: dict[str, tuple[int, int]] = {}  # Redis channel -> our last (n, a)
        self._seen: dict[tuple[str, str], int] = {}  # (node, Redis channel) -> n applied
        self._since: dict[str, int] = {}  # Redis channel -> the entry it is sure from
        self._parked: dict[tuple[str, str], deque[Entry]] = {}
        self._parked_count = 0
        self._held: deque[tuple[int, Entry, float]] = deque()  # (seq, entry, held since)
        # For metrics.py and the log.
        self.parked = 0  # messages that waited for the log
        self.held = 0  # log entries that waited for a message
        self.holds_expired = 0  # ...in vain, for HOLD_LIMIT

    # -- what we send ----------------------------------------------------------

    def message_mark(self, where: str, applied: int) -> dict[str, int]:
        """The ``extra`` of a message we publish on ``where``, having applied the log
        up to ``applied``."""
        n = self._sent.get(where, (0, 0))[0] + 1
        self._sent[where] = (n, applied)
        return {"a": applied, "n": n}

    def leaving_mark(self, wheres: list[str]) -> dict[str, list[int]]:
        """The ``heard`` of a PART or QUIT of ours that leaves ``wheres``: our last
        message on each (those we sent any on)."""
        sent = self._sent
        return {where: list(sent[where]) for where in wheres if where in sent}

    # -- our subscriptions -------------------------------------------------------

    def joined(self, where: str, seq: int) -> None:
        """Our JOIN of a channel on ``where`` is entry ``seq``: we subscribed before
        proposing it, so every message sent after it reaches us."""
        self._since.setdefault(where, seq)

    def resubscribed(self, wheres: list[str], seq: int) -> None:
        """Subscribed again (a reconnection); ``seq`` is the log's next entry then."""
        self._since = dict.fromkeys(wheres, seq)

    def left(self, where: str) -> None:
        self._since.pop(where, None)

    # -- what we receive --------------------------------------------------------------

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def last_received(self, applied: int) -> int:
        """The number of the last log entry received: held, or else applied."""
        return self._held[-1][0] if self._held else applied

    def message(self, where: str, entry: Entry, applied: int) -> None:
        """A message on ``where``: applied now, or parked until the log reaches its
        ``a``; then any log entry held for it goes on."""
        key = (entry[0], where)
        if key in self._parked or entry[2].get("a", 0) > applied:
            self._park(key, entry)
            return
        self._deliver(key, entry)
        if self._held:
            self.release_held()

    def log_entry(self, seq: int, entry: Entry) -> None:
        """The log's next entry: applied now, or held behind one that waits."""
        if self._held or self._unheard(entry):
            self.held += 1
            self._held.append((seq, entry, self.clock()))
            return
        self.apply_log(seq, entry)

    def log_applied(self, applied: int) -> None:
        """The log is applied up to ``applied``: the messages parked for it go on."""
        if not self._parked:
            return
        for key in list(self._parked):
            queue = self._parked[key]
            while queue and queue[0][2].get("a", 0) <= applied:
                self._parked_count -= 1
                self._deliver(key, queue.popleft())
            if not queue:
                del self._parked[key]

    def release_held(self, force: bool = False) -> None:
        """Apply the held entries whose messages came (or waited HOLD_LIMIT; all of
        them when ``force``: the connection was lost, the log goes on without)."""
        while self._held:
            seq, entry, since = self._held[0]
            if not force and self._unheard(entry):
                if self.clock() - since < HOLD_LIMIT:
                    return
                self.holds_expired += 1
                log.warning(
                    "backplane: %s from %s applied without a message sent before it"
                    " (waited %.1f s)", entry[3].kind, entry[0], HOLD_LIMIT,
                )  # fmt: skip
            self._held.popleft()
            self.apply_log(seq, entry)

    def release_all(self) -> None:
        """The subscriptions are lost: what waits is applied as it is."""
        self.release_held(force=True)
        self._flush_parked()

    # -- inside ----------------------------------------------------------------------

    def _deliver(self, key: tuple[str, str], entry: Entry) -> None:
        n = entry[2].get("n")
        if n is not None:
            self._seen[key] = n
        self.apply_message(entry)

    def _park(self, key: tuple[str, str], entry: Entry) -> None:
        self.parked += 1
        self._parked.setdefault(key, deque()).append(entry)
        self._parked_count += 1
        if self._parked_count > PARK_LIMIT:
            log.warning("backplane: %d messages wait for the log; applied now", PARK_LIMIT)
            self._flush_parked()

    def _flush_parked(self) -> None:
        for key, queue in list(self._parked.items()):
            while queue:
                self._deliver(key, queue.popleft())
        self._parked.clear()
        self._parked_count = 0

    def _unheard(self, entry: Entry) -> bool:
        """Whether a leaving waits for a message of its node not applied here yet."""
        heard = entry[2].get("heard")
        if not heard:
            return False
        origin = entry[0]
        for where, (n, a) in heard.items():
            since = self._since.get(where)
            if since is not None and a >= since and self._seen.get((origin, where), 0) < n:
                return True
        return False
