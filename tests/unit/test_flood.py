"""The flood-control token bucket, driven by a fake clock."""

from __future__ import annotations

import pytest

from greenchat.server.flood import UNLIMITED, TokenBucket


def test_a_full_bucket_allows_the_burst_at_once():
    bucket = TokenBucket(burst=10, rate=2.0, now=0.0)
    assert bucket.allowance(0.0) == 10
    bucket.spend(10)
    assert bucket.allowance(0.0) == 0
    assert bucket.wait() == pytest.approx(0.5)


def test_tokens_come_back_at_the_rate_up_to_the_burst():
    bucket = TokenBucket(burst=10, rate=2.0, now=0.0)
    bucket.spend(10)
    assert bucket.allowance(1.0) == 2
    bucket.spend(2)
    assert bucket.allowance(1.25) == 0
    assert bucket.wait() == pytest.approx(0.25)
    assert bucket.allowance(100.0) == 10  # never more than the burst


def test_partial_tokens_count_toward_the_next_line():
    bucket = TokenBucket(burst=3, rate=4.0, now=0.0)
    bucket.spend(3)
    assert bucket.allowance(0.1) == 0  # 0.4 tokens
    assert bucket.wait() == pytest.approx(0.15)
    assert bucket.allowance(0.25) == 1


def test_rate_zero_turns_it_off():
    bucket = TokenBucket(burst=1, rate=0.0, now=0.0)
    assert not bucket.enabled
    assert bucket.allowance(0.0) == UNLIMITED
    bucket.spend(1000)
    assert bucket.allowance(0.0) == UNLIMITED
    assert bucket.wait() == 0.0


def test_a_clock_going_backwards_takes_nothing():
    bucket = TokenBucket(burst=5, rate=1.0, now=10.0)
    bucket.spend(5)
    assert bucket.allowance(9.0) == 0
    assert bucket.allowance(11.0) == 1
