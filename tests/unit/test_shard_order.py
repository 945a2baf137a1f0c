"""The order between a cluster's log shard and its channel shards (shard_order.py),
without Redis: entries fed in the orders two connections can deliver them."""

from __future__ import annotations

from greenchat.backplane.shard_order import HOLD_LIMIT, PARK_LIMIT, ShardOrder

ROOM = "gc:net:{h:#room}:pub"


class Text(str):
    """An entry's event, as a line: the log names its kind."""

    @property
    def kind(self) -> str:
        return str(self)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Node:
    """A receiver: what it applied, in order, and its log position."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.applied: list[str] = []
        self.last_seq = 0
        self.order = ShardOrder(self.message, self.log, self.clock)

    def message(self, entry) -> None:
        self.applied.append(entry[3])

    def log(self, seq: int, entry) -> None:
        self.last_seq = seq
        self.applied.append(entry[3])
        self.order.log_applied(seq)

    def receive_message(self, origin: str, text: str, extra: dict) -> None:
        self.order.message(ROOM, (origin, 0, extra, Text(text)), self.last_seq)

    def receive_log(self, seq: int, origin: str, text: str, extra: dict | None = None) -> None:
        self.order.log_entry(seq, (origin, 1, extra or {}, Text(text)))


def sender_marks(count: int, applied: int) -> list[dict]:
    sender = ShardOrder(lambda entry: None, lambda seq, entry: None)
    return [sender.message_mark(ROOM, applied) for _ in range(count)]


def test_a_message_waits_for_the_join_its_sender_had_applied():
    node = Node()
    node.receive_log(1, "a", "JOIN watcher")
    node.order.joined(ROOM, 1)
    first, second = sender_marks(2, applied=2)  # sent after the talker's JOIN (entry 2)
    node.receive_message("a", "hello", first)
    node.receive_message("a", "again", second)
    assert node.applied == ["JOIN watcher"]
    node.receive_log(2, "a", "JOIN talker")
    assert node.applied == ["JOIN watcher", "JOIN talker", "hello", "again"]


def test_a_part_waits_for_the_messages_sent_before_it():
    node = Node()
    node.receive_log(1, "b", "JOIN watcher")
    node.order.joined(ROOM, 1)
    node.receive_log(2, "a", "JOIN talker")
    sender = ShardOrder(lambda entry: None, lambda seq, entry: None)
    marks = [sender.message_mark(ROOM, 2) for _ in range(3)]
    heard = sender.leaving_mark([ROOM, "gc:net:{h:#other}:pub"])
    assert heard == {ROOM: [3, 2]}  # nothing was said on #other
    node.receive_log(3, "a", "PART talker", {"heard": heard})
    node.receive_log(4, "b", "TOPIC")  # held behind it: the log keeps its order
    assert node.applied[-1] == "JOIN talker" and node.order.holding
    for i, mark in enumerate(marks):
        node.receive_message("a", f"line {i}", mark)
    assert node.applied[2:] == ["line 0", "line 1", "line 2", "PART talker", "TOPIC"]
    assert not node.order.holding and node.last_seq == 4


def test_a_part_does_not_wait_for_messages_sent_before_we_subscribed():
    """Sent before our JOIN took effect: they were never coming here."""
    node = Node()
    heard = {ROOM: [7, 1]}  # its last message was sent at entry 1
    node.receive_log(1, "a", "JOIN talker")
    node.receive_log(2, "b", "JOIN watcher")
    node.order.joined(ROOM, 2)
    node.receive_log(3, "a", "PART talker", {"heard": heard})
    assert node.applied == ["JOIN talker", "JOIN watcher", "PART talker"]


def test_a_part_does_not_wait_on_a_channel_we_are_not_subscribed_to():
    node = Node()
    node.receive_log(1, "a", "PART talker", {"heard": {ROOM: [3, 0]}})
    assert node.applied == ["PART talker"]


def test_a_lost_message_holds_the_log_for_hold_limit_at_most():
    node = Node()
    node.order.joined(ROOM, 1)
    node.receive_log(1, "b", "JOIN watcher")
    node.receive_log(2, "a", "PART talker", {"heard": {ROOM: [1, 1]}})
    node.order.release_held()
    assert node.order.holding
    node.clock.now += HOLD_LIMIT
    node.order.release_held()
    assert not node.order.holding and node.applied[-1] == "PART talker"
    assert node.order.holds_expired == 1


def test_a_lost_connection_applies_what_waits():
    node = Node()
    node.order.joined(ROOM, 1)
    node.receive_log(1, "b", "JOIN watcher")
    node.receive_message("a", "early", {"a": 5, "n": 1})
    node.receive_log(2, "a", "PART talker", {"heard": {ROOM: [2, 1]}})
    node.order.release_all()
    assert node.applied == ["JOIN watcher", "PART talker", "early"]
    assert node.order.last_received(node.last_seq) == 2


def test_messages_of_one_sender_keep_their_order_behind_a_parked_one():
    node = Node()
    node.receive_message("a", "first", {"a": 1, "n": 1})  # waits for entry 1
    node.receive_message("a", "second", {"a": 0, "n": 2})  # ready, but behind it
    node.receive_message("b", "other", {"a": 0, "n": 1})  # another sender: no wait
    assert node.applied == ["other"]
    node.receive_log(1, "a", "JOIN")
    assert node.applied == ["other", "JOIN", "first", "second"]


def test_too_many_parked_messages_are_applied_as_they_are():
    node = Node()
    for n in range(PARK_LIMIT + 1):
        node.receive_message("a", f"m{n}", {"a": 99, "n": n + 1})
    assert len(node.applied) == PARK_LIMIT + 1 and node.applied[0] == "m0"


def test_a_resubscription_is_sure_only_from_the_next_entry():
    node = Node()
    node.order.resubscribed([ROOM], 5)
    node.receive_log(5, "a", "PART early", {"heard": {ROOM: [1, 4]}})  # sent before: no wait
    node.receive_log(6, "a", "PART late", {"heard": {ROOM: [2, 5]}})  # sent after: waits
    assert node.applied == ["PART early"] and node.order.holding
    node.receive_message("a", "said", {"a": 5, "n": 2})
    assert node.applied == ["PART early", "said", "PART late"]
