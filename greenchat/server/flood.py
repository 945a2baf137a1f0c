"""Flood control: a per-client token bucket with "fakelag" semantics.

Every line a client sends costs one token; tokens come back at ``rate`` per
second up to ``burst``. A client with tokens left is served at once. A client
without is not refused: its lines wait, in order, and are handled as tokens
come back (the server "lags" it, as InspIRCd and Ergo do), so a paste or a
burst of JOINs arrives late rather than lost. What decides a disconnect is the
receive queue, the bytes read but not yet handled (``Session`` enforces
it): past that limit the client gets ``ERROR :Excess Flood``.

Pure and clock-driven (the caller passes ``now``), so it is tested without
sockets or sleeps.
"""

from __future__ import annotations

__all__ = ["UNLIMITED", "TokenBucket"]

UNLIMITED = 1 << 62


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst = burst
        self.rate = rate  # tokens per second; 0 turns flood control off
        self.tokens = float(burst)
        self.stamp = now

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allowance(self, now: float) -> int:
        """How many lines may be handled now (every one when flood control is off)."""
        if self.rate <= 0:
            return UNLIMITED
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
            self.stamp = now
        return int(self.tokens)

    def spend(self, lines: int) -> None:
        """Take the tokens of ``lines`` handled lines (at most the allowance)."""
        if self.rate > 0:
            self.tokens -= lines

    def wait(self) -> float:
        """Seconds from the last :meth:`allowance` until the next line may be handled."""
        if self.rate <= 0 or self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate
