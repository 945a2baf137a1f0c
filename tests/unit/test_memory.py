"""The memory trimmer runs after an exodus, not during steady churn."""

from __future__ import annotations

import sys

import pytest

from greenchat.server.memory import MIN_PEAK, Trimmer


def test_steady_churn_never_trims():
    trimmer = Trimmer()
    for _ in range(1000):
        trimmer.connected(500)
        trimmer.disconnected(499)
    assert trimmer._pending is None and trimmer.trims == 0


def test_small_servers_never_trim():
    trimmer = Trimmer()
    trimmer.connected(MIN_PEAK - 1)
    trimmer.disconnected(0)
    assert trimmer._pending is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_halving_trims_once_the_departed_are_gone():
    trimmer = Trimmer()
    trimmer.connected(1000)
    for left in range(999, 399, -1):
        trimmer.disconnected(left)
    pending = trimmer._pending
    assert pending is not None  # one trim scheduled for the whole wave
    pending.join(timeout=5)
    assert trimmer.trims == 1 and trimmer.peak == 500
    for left in range(399, 249, -1):
        trimmer.disconnected(left)
    trimmer._pending.join(timeout=5)
    assert trimmer.trims == 2
