"""Give memory back to the system after many clients have left.

When thousands of connections close, Python frees every object, but glibc's
malloc keeps the freed pages mapped for reuse, so the server's RSS stays near
its peak. ``malloc_trim(0)`` returns the free pages (about two thirds of what
1,000 departed clients held, measured in tests/fault). It costs milliseconds,
so it runs only when the number of connections has halved since the last
peak (a second later, once the departed have finished closing): a few times
in even the largest exodus, never during steady churn. Elsewhere than glibc
it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import gevent

__all__ = ["Trimmer"]

MIN_PEAK = 64  # below this there is too little to give back to be worth a call
SETTLE_S = 1.0


def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


class Trimmer:
    __slots__ = ("_pending", "_trim", "peak", "trims")

    def __init__(self) -> None:
        self._trim = _malloc_trim()
        self._pending: gevent.Greenlet | None = None
        self.peak = 0
        self.trims = 0

    def connected(self, count: int) -> None:
        self.peak = max(self.peak, count)

    def disconnected(self, count: int) -> None:
        """Called as a connection goes, with how many are left."""
        if self.peak >= MIN_PEAK and count <= self.peak // 2:
            self.peak = count
            if self._trim is not None and self._pending is None:
                # Later: the departed connections' greenlets and buffers are
                # freed only once each has finished closing.
                self._pending = gevent.spawn_later(SETTLE_S, self._run)

    def _run(self) -> None:
        self._pending = None
        self._trim(0)
        self.trims += 1

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.kill(block=False)
