"""The registration lane: how much of the event loop connections that have not
registered yet may take at a time, so that a storm of them cannot stall chat.

A thousand clients that connect at once move in step: each has a line waiting,
the loop serves every ready socket in one pass, and at ~0.35 ms a line (a SCRAM
login is about five lines and a store lookup) one pass took 350 ms, while a
registered user's PING waited behind it (issue 14's login storm).

So every piece of work for a connection still registering (a chunk it sent, the
store's answer to its login) first takes a turn here. While the current slice
(a couple of milliseconds) has time left it goes on at once; otherwise it waits,
in arrival order, for a later pass of the loop, its bytes already read. Each pass
a zero-delay timer, which fires only after the loop has polled again (so
everything else that became ready has had its turn), opens a new slice and lets
waiting work go until that slice is used up, at least one piece of it. Registered
users never wait here. The slice bounds the time the lane takes per pass, not its
throughput: with nothing else to do the loop just turns over faster.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable

import gevent
from gevent.hub import Waiter

__all__ = ["RegistrationLane"]


class RegistrationLane:
    """Time slices of the event loop for connections that are still registering."""

    __slots__ = ("_clock", "_opened", "_slice", "_timer", "_waiting", "waits")

    def __init__(
        self, slice_seconds: float, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._clock = clock
        self._slice = slice_seconds  # 0: no lane, every turn goes on at once
        self._opened: float | None = None  # when the current slice began; None: idle
        self._waiting: deque[Waiter] = deque()
        self._timer = None  # the hub loop's zero-delay timer, made on first use
        self.waits = 0  # turns that had to wait for a later pass (a metric)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def take_turn(self) -> None:
        """Wait, if this pass of the loop has given the lane its slice, for a later one.

        Call it from the connection's own greenlet before doing work for it.
        """
        if not self._slice:
            return
        opened = self._opened
        if opened is None:  # the first turn since the lane went idle: a new slice
            self._opened = self._clock()
            self._arm()
            return
        if not self._waiting and self._clock() - opened < self._slice:
            return
        self.waits += 1
        waiter = Waiter()
        self._waiting.append(waiter)
        try:
            waiter.get()
        except BaseException:  # killed while waiting (the server stops): leave the line
            with contextlib.suppress(ValueError):
                self._waiting.remove(waiter)
            raise

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = gevent.get_hub().loop.timer(0.0, ref=False)
        self._timer.start(self._next_slice)

    def _next_slice(self) -> None:
        """The loop has polled again since the slice opened: open the next one and let
        waiting turns go (in the hub, each runs until its greenlet waits again)."""
        waiting = self._waiting
        if not waiting:
            self._opened = None  # idle: the next turn opens a slice itself
            return
        opened = self._opened = self._clock()
        while waiting:
            waiting.popleft().switch(None)
            if self._clock() - opened >= self._slice:
                break
        self._arm()
