"""The registration lane (server/lane.py) on a real gevent loop with a clock the test
moves: each turn of work costs 1 ms of it, and a slice holds 2.5 ms."""

from __future__ import annotations

from collections import Counter

import gevent
import gevent.event
import pytest

from greenchat.server.lane import RegistrationLane


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def run_turns(lane: RegistrationLane, clock: Clock, count: int) -> list[tuple[int, int]]:
    """``count`` greenlets, let go together (one Event: one callback wakes them all, in
    one pass of the loop), each take a turn and work 1 ms; returns (which, loop
    iteration) in the order the work ran."""
    loop = gevent.get_hub().loop
    done: list[tuple[int, int]] = []
    go = gevent.event.Event()

    def work(which: int) -> None:
        go.wait()
        lane.take_turn()
        done.append((which, loop.iteration))
        clock.now += 0.001

    greenlets = [gevent.spawn(work, which) for which in range(count)]
    gevent.idle()  # every one of them has started and waits for the go
    go.set()
    assert len(gevent.joinall(greenlets, timeout=10, raise_error=True)) == count
    return done


def test_turns_past_the_slice_wait_for_later_passes_in_arrival_order(clock):
    lane = RegistrationLane(0.0025, clock=clock)
    done = run_turns(lane, clock, 10)
    assert [which for which, _ in done] == list(range(10))
    per_pass = Counter(iteration for _, iteration in done)
    assert sorted(per_pass.values(), reverse=True) == [3, 3, 3, 1]
    assert lane.waits == 7 and lane.waiting == 0


def test_a_lane_without_a_slice_never_waits(clock):
    lane = RegistrationLane(0.0, clock=clock)
    done = run_turns(lane, clock, 10)
    assert len({iteration for _, iteration in done}) == 1
    assert lane.waits == 0


def test_the_lane_goes_idle_and_opens_a_fresh_slice(clock):
    lane = RegistrationLane(0.0025, clock=clock)
    run_turns(lane, clock, 5)
    gevent.sleep(0.01)  # a few passes with nothing to do
    clock.now += 1.0
    done = run_turns(lane, clock, 3)
    assert len({iteration for _, iteration in done}) == 1  # a new slice, all at once
    assert lane.waits == 2


def test_a_turn_killed_while_waiting_leaves_the_line(clock):
    lane = RegistrationLane(0.0025, clock=clock)
    lane.take_turn()  # opens the slice
    clock.now += 0.01  # and uses it up
    waiting = [gevent.spawn(lane.take_turn) for _ in range(3)]
    gevent.sleep(0)  # they start and join the line
    assert lane.waiting == 3
    waiting[1].kill()
    assert lane.waiting == 2
    assert len(gevent.joinall(waiting, timeout=10)) == 3
    assert all(g.successful() for g in (waiting[0], waiting[2]))
