"""The HistoryStore contract (greenchat/store/base.py), run against every implementation,
as tests/contract/test_account_store.py does for accounts: appending in batches, the
total order, both kinds of bound, latest and earliest pages, targets, expiry."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_account_store import FACTORIES, Factory

from greenchat.store.base import HistoryBound, HistoryItem, HistoryStore, StoreUnavailable


@pytest.fixture(params=sorted(FACTORIES))
def factory(request, tmp_path: Path) -> Factory:
    return FACTORIES[request.param](tmp_path)


@pytest.fixture
def store(factory: Factory):
    opened = factory.open()
    yield opened
    opened.close()


def item(n: int, target: str = "#room", when: float | None = None, **fields) -> HistoryItem:
    values = {
        "target": target,
        "msgid": f"m{n}",
        "time": 1000.0 + n if when is None else when,
        "command": "PRIVMSG",
        "source": "alice!a@host",
        "account": "alice",
        "params": (target, f"line {n}"),
    }
    return HistoryItem(**(values | fields))


def texts(items: list[HistoryItem]) -> list[str]:
    return [i.params[-1] for i in items]


def fill(store: HistoryStore, count: int, target: str = "#room") -> None:
    store.append_history([item(n, target) for n in range(count)])


def test_items_come_back_as_appended_with_a_rising_seq(store):
    first = item(1, tags="+draft/react=x", params=("#room", "hello :) there"))
    store.append_history([first, item(2, command="NOTICE", account="")])
    got = store.history("#room", None, None, 10, latest=True)
    assert [i.msgid for i in got] == ["m1", "m2"]
    assert got[0].params == ("#room", "hello :) there") and got[0].tags == "+draft/react=x"
    assert got[1].command == "NOTICE" and got[1].account == ""
    assert 0 < got[0].seq < got[1].seq
    assert store.history("#other", None, None, 10, latest=True) == []


def test_latest_and_earliest_pages_are_ascending(store):
    fill(store, 10)
    assert texts(store.history("#room", None, None, 3, latest=True)) == [
        "line 7", "line 8", "line 9"
    ]  # fmt: skip
    assert texts(store.history("#room", None, None, 3, latest=False)) == [
        "line 0", "line 1", "line 2"
    ]  # fmt: skip


def test_msgid_bounds_are_exclusive_and_page_without_gaps_or_repeats(store):
    fill(store, 25)
    seen: list[str] = []
    before = None
    while page := store.history("#room", None, before, 7, latest=True):
        seen = texts(page) + seen
        before = HistoryBound(msgid=page[0].msgid)
    assert seen == [f"line {n}" for n in range(25)]
    between = store.history("#room", HistoryBound(msgid="m3"), HistoryBound(msgid="m7"), 10, False)
    assert texts(between) == ["line 4", "line 5", "line 6"]


def test_time_bounds_are_exclusive(store):
    fill(store, 10)  # times 1000 ... 1009
    got = store.history("#room", HistoryBound(time=1002.0), HistoryBound(time=1005.0), 10, False)
    assert texts(got) == ["line 3", "line 4"]


def test_not_before_cuts_older_lines_off(store):
    fill(store, 10)  # times 1000 ... 1009
    got = store.history("#room", None, None, 10, latest=False, not_before=1007.0)
    assert texts(got) == ["line 7", "line 8", "line 9"]
    older = store.history("#room", None, HistoryBound(msgid="m8"), 10, True, not_before=1007.0)
    assert texts(older) == ["line 7"]


def test_same_time_lines_keep_their_order(store):
    store.append_history([item(n, when=5000.0) for n in range(5)])
    assert texts(store.history("#room", None, None, 10, latest=False)) == [
        f"line {n}" for n in range(5)
    ]


def test_lines_read_in_the_order_of_their_times_whichever_batch_came_first(store):
    # Two nodes (or workers) sharing a store each write their own lines, a batch at a
    # time: one's batch can land after the other's later line. Readers see time order.
    store.append_history([item(0), item(2), item(4)])
    store.append_history([item(1), item(3), item(5, when=1004.0)])  # 5: one time with 4
    order = ["line 0", "line 1", "line 2", "line 3", "line 4", "line 5"]
    assert texts(store.history("#room", None, None, 10, latest=False)) == order
    assert texts(store.history("#room", None, None, 2, latest=True)) == order[-2:]
    assert texts(store.history("#room", HistoryBound(msgid="m1"), None, 2, False)) == order[2:4]
    after = store.history("#room", HistoryBound(time=1001.0), HistoryBound(time=1004.0), 9, False)
    assert texts(after) == ["line 2", "line 3"]
    seqs = [i.seq for i in store.history("#room", None, None, 10, latest=False)]
    assert seqs == sorted(set(seqs))


def test_the_writers_proposed_seqs_order_lines_of_one_millisecond(store):
    # Stored times are whole milliseconds (what server-time shows); the writers propose
    # their events' times in microseconds, and those decide the order.
    store.append_history([item(2, when=3000.0, seq=3_000_000_700)])
    store.append_history([item(1, when=3000.0, seq=3_000_000_300)])
    assert texts(store.history("#room", None, None, 10, latest=False)) == ["line 1", "line 2"]


def test_two_writers_of_one_microsecond_both_keep_their_lines(factory):
    if factory.reopen is None:
        pytest.skip("one writer: nothing else opens a :memory: store")
    first, second = factory.open(), factory.reopen()
    try:
        first.append_history([item(1, when=2000.0), item(2, when=2000.0)])
        second.append_history([item(0, when=1999.0), item(3, when=2000.0)])
        got = first.history("#room", None, None, 10, latest=False)
        assert texts(got) == ["line 0", "line 1", "line 2", "line 3"]
        assert len({i.seq for i in got}) == 4
    finally:
        first.close()
        second.close()


def test_a_msgid_the_target_lacks_matches_nothing(store):
    fill(store, 5)
    fill(store, 5, target="#other")
    assert store.history("#room", HistoryBound(msgid="nope"), None, 10, False) == []
    # a msgid of another target is no bound here
    store.append_history([item(99, target="#other")])
    assert store.history("#room", None, HistoryBound(msgid="m99"), 10, True) == []


def test_targets_with_lines_in_a_window(store):
    store.append_history([item(1, "#a", when=10.0), item(2, "#b", when=20.0)])
    store.append_history([item(3, "#a", when=30.0), item(4, "#c", when=40.0)])
    assert store.history_targets(["#a", "#b", "#c", "#d"], 0.0, 35.0, 10) == [
        ("#b", 20.0), ("#a", 30.0)
    ]  # fmt: skip
    assert store.history_targets(["#a", "#b", "#c"], 0.0, 100.0, 2) == [
        ("#b", 20.0), ("#a", 30.0)
    ]  # fmt: skip


def test_private_conversations_are_found_by_either_party(store):
    store.append_history([item(1, "dm:a:alice a:bob"), item(2, "dm:a:bob n:carol")])
    assert sorted(store.conversations_of("a:bob")) == ["dm:a:alice a:bob", "dm:a:bob n:carol"]
    assert store.conversations_of("a:alice") == ["dm:a:alice a:bob"]
    assert store.conversations_of("n:dave") == []


def test_one_batch_of_many_conversations_lands_whole(store):
    # What one writer's turn holds on a busy server: lines of many channels and private
    # conversations interleaved (on a cluster: a part per slot, on every primary).
    channels = [f"#c{n}" for n in range(40)]
    privates = [f"dm:a:p{n} a:q{n % 3}" for n in range(12)]
    targets = channels + privates
    batch = [item(n, targets[n % len(targets)], when=100.0 + n) for n in range(3 * len(targets))]
    store.append_history(batch)
    store.append_history(batch)  # sent again after a lost answer: nothing twice
    for index, target in enumerate(targets):
        got = store.history(target, None, None, 10, latest=False)
        assert [i.msgid for i in got] == [f"m{index + k * len(targets)}" for k in range(3)]
    assert store.conversations_of("a:q1") == sorted(privates[1::3])
    last = [(target, 100.0 + 2 * len(targets) + n) for n, target in enumerate(targets)]
    assert store.history_targets(targets, 0.0, 1000.0, 100) == last
    assert store.expire_history(100.0 + len(targets), 0, batch=1000) == len(targets)
    assert store.expire_history(0.0, 1, batch=1000) == len(targets)
    assert [len(store.history(t, None, None, 10, False)) for t in targets] == [1] * len(targets)


def test_expiry_by_age_and_per_target_in_batches(store):
    store.append_history([item(n, "#old", when=float(n)) for n in range(10)])
    store.append_history([item(100 + n, "#big", when=1000.0 + n) for n in range(10)])
    assert store.expire_history(5.0, 0, batch=3) == 3  # a batch at a time
    assert store.expire_history(5.0, 0, batch=100) == 2
    assert texts(store.history("#old", None, None, 100, False))[0] == "line 5"
    assert store.expire_history(0.0, 4, batch=100) == 6 + 1  # #big down to 4, #old to 4
    assert len(store.history("#big", None, None, 100, False)) == 4
    assert texts(store.history("#big", None, None, 100, False))[0] == "line 106"
    assert store.expire_history(0.0, 4, batch=100) == 0


def test_events_are_left_out_for_messages_only(store):
    join = item(1, command="JOIN", params=("#room",))
    store.append_history([item(0), join, item(2, command="TAGMSG", params=("#room",)), item(3)])
    assert [i.msgid for i in store.history("#room", None, None, 10, True)] == [
        "m0", "m1", "m2", "m3"
    ]  # fmt: skip
    only = store.history("#room", None, None, 10, True, messages_only=True)
    assert [i.msgid for i in only] == ["m0", "m2", "m3"]
    # A bound may still name an event's msgid.
    after = store.history("#room", HistoryBound(msgid="m1"), None, 10, False, messages_only=True)
    assert [i.msgid for i in after] == ["m2", "m3"]


def test_one_item_is_found_and_deleted_by_msgid(store):
    fill(store, 3)
    assert store.history_item("#room", "m1").params == ("#room", "line 1")
    assert store.history_item("#other", "m1") is None
    assert store.delete_history("#other", "m1") is False
    assert store.delete_history("#room", "m1") is True
    assert store.delete_history("#room", "m1") is False
    assert store.history_item("#room", "m1") is None
    assert texts(store.history("#room", None, None, 10, False)) == ["line 0", "line 2"]


def test_read_markers_only_move_forward(store):
    assert store.read_markers("Alice") == {}
    assert store.set_read_marker("Alice", "#room", 100.5) == 100.5
    assert store.set_read_marker("alice", "#room", 50.0) == 100.5  # never back
    assert store.set_read_marker("ALICE", "bob", 7.0) == 7.0
    assert store.set_read_marker("alice", "#room", 200.25) == 200.25
    assert store.read_markers("alice") == {"#room": 200.25, "bob": 7.0}
    assert store.read_markers("carol") == {}


def test_history_survives_a_reopen(factory):
    if factory.reopen is None:
        pytest.skip("nothing survives a close")
    store = factory.open()
    fill(store, 3)
    store.close()
    again = factory.reopen()
    try:
        assert texts(again.history("#room", None, None, 10, False)) == [
            "line 0", "line 1", "line 2"
        ]  # fmt: skip
    finally:
        again.close()


def test_a_closed_store_is_unavailable(factory):
    store = factory.open()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.append_history([item(1)])
    with pytest.raises(StoreUnavailable):
        store.history("#room", None, None, 10, True)
