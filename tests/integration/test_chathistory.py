"""CHATHISTORY over real sockets (IRCv3 draft/chathistory): every subcommand, the
batches, who may read what, pagination without gaps or repeats, and the spec's edge
cases: an unknown msgid, a future time, limits of 0 and over the maximum, BETWEEN
reversed, AROUND the first line, a target the asker may not see."""

from __future__ import annotations

import re
import time

import pytest

from greenchat.protocol.message import parse
from greenchat.server.history import MAX_LIMIT

CAPS = "batch server-time message-tags draft/chathistory"


@pytest.fixture
def room(make_server, connect):
    """alice and bob in #h (flood control off), alice's client, bob's client."""
    server = make_server(flood_rate=0)
    alice = connect(port=server.port).register_with_caps("alice", CAPS)
    bob = connect(port=server.port).register_with_caps("bob", CAPS)
    alice.join("#h")
    bob.join("#h")
    return server, alice, bob


def say(client, target: str, count: int, start: int = 0) -> None:
    client.send(*(f"PRIVMSG {target} :line {n}" for n in range(start, start + count)))
    client.sync()


def batch(client, command: str) -> list[str]:
    """Send ``command``; the lines of the chathistory batch it gets back."""
    client.send(command)
    opened = client.expect(r"BATCH \+(\S+) (chathistory|draft/chathistory-targets)")
    ref, lines = opened[1], []
    while (line := client.read_line()) is not None:
        if re.search(rf" BATCH -{re.escape(ref)}$", line):
            return lines
        assert f"batch={ref}" in line, line
        lines.append(line)
    raise AssertionError("the batch never closed")


def texts(lines: list[str]) -> list[str]:
    return [line.rsplit(" :", 1)[1] for line in lines]


def msgid(line: str) -> str:
    return re.search(r"msgid=([^; ]+)", line)[1]


def test_advertised(room):
    _, alice, _ = room
    alice.send("CAP LS 302")
    assert "draft/chathistory" in alice.read_cap_ls()
    alice.send("VERSION")
    alice.expect(rf"005 alice .*CHATHISTORY={MAX_LIMIT} ")
    alice.expect(r"005 alice .*MSGREFTYPES=msgid,timestamp ")


def test_latest_gives_the_last_lines_ascending_with_time_and_msgid(room):
    _, alice, bob = room
    say(alice, "#h", 5)
    lines = batch(bob, "CHATHISTORY LATEST #h * 3")
    assert texts(lines) == ["line 2", "line 3", "line 4"]
    for line in lines:
        assert re.match(r"@\S*time=\d{4}-\d\d-\d\dT[\d:.]+Z", line), line
        assert ":alice!" in line and " PRIVMSG #h :" in line
    assert len({msgid(line) for line in lines}) == 3


def test_paging_back_by_msgid_neither_skips_nor_repeats(room):
    _, alice, bob = room
    say(alice, "#h", 25)
    seen: list[str] = []
    ref = "*"
    while True:
        command = "LATEST #h *" if ref == "*" else f"BEFORE #h msgid={ref}"
        lines = batch(bob, f"CHATHISTORY {command} 7")
        if not lines:
            break
        seen = texts(lines) + seen
        ref = msgid(lines[0])
    assert seen == [f"line {n}" for n in range(25)]


def test_after_and_between_both_ways(room):
    _, alice, bob = room
    say(alice, "#h", 10)
    every = batch(bob, "CHATHISTORY LATEST #h * 10")
    ids = [msgid(line) for line in every]
    assert texts(batch(bob, f"CHATHISTORY AFTER #h msgid={ids[6]} 10")) == [
        "line 7", "line 8", "line 9"
    ]  # fmt: skip
    forward = batch(bob, f"CHATHISTORY BETWEEN #h msgid={ids[1]} msgid={ids[8]} 3")
    assert texts(forward) == ["line 2", "line 3", "line 4"]
    reverse = batch(bob, f"CHATHISTORY BETWEEN #h msgid={ids[8]} msgid={ids[1]} 3")
    assert texts(reverse) == ["line 5", "line 6", "line 7"]  # counted back from the first


def test_around_the_first_line_and_in_the_middle(room):
    _, alice, bob = room
    say(alice, "#h", 10)
    ids = [msgid(line) for line in batch(bob, "CHATHISTORY LATEST #h * 10")]
    assert texts(batch(bob, f"CHATHISTORY AROUND #h msgid={ids[0]} 4")) == [
        "line 0", "line 1", "line 2", "line 3"
    ]  # fmt: skip
    assert texts(batch(bob, f"CHATHISTORY AROUND #h msgid={ids[5]} 4")) == [
        "line 3", "line 4", "line 5", "line 6"
    ]  # fmt: skip


def test_timestamps_in_the_future_and_far_past(room):
    _, alice, bob = room
    say(alice, "#h", 3)
    future = "timestamp=2999-01-01T00:00:00.000Z"
    assert texts(batch(bob, f"CHATHISTORY BEFORE #h {future} 10")) == [
        "line 0", "line 1", "line 2"
    ]  # fmt: skip
    assert batch(bob, f"CHATHISTORY AFTER #h {future} 10") == []
    past = "timestamp=2000-01-01T00:00:00.000Z"
    assert texts(batch(bob, f"CHATHISTORY AFTER #h {past} 2")) == ["line 0", "line 1"]


def test_limits_of_zero_and_over_the_maximum_mean_the_maximum(room):
    _, alice, bob = room
    say(alice, "#h", MAX_LIMIT + 5)
    assert len(batch(bob, "CHATHISTORY LATEST #h * 0")) == MAX_LIMIT
    over = batch(bob, f"CHATHISTORY LATEST #h * {MAX_LIMIT * 10}")
    assert texts(over)[-1] == f"line {MAX_LIMIT + 4}" and len(over) == MAX_LIMIT


def test_an_unknown_msgid_gives_an_empty_batch(room):
    _, alice, bob = room
    say(alice, "#h", 3)
    assert batch(bob, "CHATHISTORY BEFORE #h msgid=nosuchid 10") == []


def test_bad_requests_get_fail(room, connect):
    server, _, bob = room
    bob.send("CHATHISTORY SIDEWAYS #h * 10")
    bob.expect(r"FAIL CHATHISTORY INVALID_PARAMS SIDEWAYS :")
    bob.send("CHATHISTORY BEFORE #h yesterday 10")
    bob.expect(r"FAIL CHATHISTORY INVALID_PARAMS BEFORE :Invalid message reference")
    bob.send("CHATHISTORY LATEST #h * many")
    bob.expect(r"FAIL CHATHISTORY INVALID_PARAMS LATEST :Invalid limit")
    bob.send("CHATHISTORY BETWEEN #h *")
    bob.expect(r"FAIL CHATHISTORY NEED_MORE_PARAMS BETWEEN :")
    outsider = connect(port=server.port).register_with_caps("eve", CAPS)
    outsider.send("CHATHISTORY LATEST #h * 10")
    outsider.expect(r"FAIL CHATHISTORY INVALID_TARGET LATEST #h :")
    outsider.send("CHATHISTORY LATEST #nowhere * 10")
    outsider.expect(r"FAIL CHATHISTORY INVALID_TARGET LATEST #nowhere :")


def test_a_private_conversation_is_its_two_parties_only(room, connect):
    server, alice, bob = room
    say(alice, "bob", 2)
    bob.send("PRIVMSG alice :reply")
    bob.sync()
    assert texts(batch(alice, "CHATHISTORY LATEST bob * 10")) == ["line 0", "line 1", "reply"]
    assert texts(batch(bob, "CHATHISTORY LATEST alice * 10")) == ["line 0", "line 1", "reply"]
    eve = connect(port=server.port).register_with_caps("eve", CAPS)
    assert batch(eve, "CHATHISTORY LATEST alice * 10") == []
    assert batch(eve, "CHATHISTORY LATEST bob * 10") == []


def test_targets_lists_channels_and_conversations_with_their_last_time(room):
    _, alice, bob = room
    say(alice, "#h", 1)
    say(alice, "bob", 1)
    lines = batch(bob, "CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z "
                       "timestamp=2999-01-01T00:00:00.000Z 10")  # fmt: skip
    found = [re.search(r"CHATHISTORY TARGETS (\S+) timestamp=\S+Z$", line)[1] for line in lines]
    assert found == ["#h", "alice"]


def test_event_playback_replays_channel_changes(room, connect):
    """With draft/event-playback: JOIN, PART, TOPIC, MODE, KICK, NICK and QUIT come
    back in order with the messages, each with its time and a msgid; without it,
    only the messages."""
    server, alice, bob = room
    carol = connect(port=server.port).register_with_caps("carol", CAPS)
    carol.join("#h")
    alice.send("TOPIC #h :history", "MODE #h +v carol", "PRIVMSG #h :hello")
    carol.expect(r"PRIVMSG #h :hello$")  # each client waits for the one before it
    carol.send("NICK carla", "PART #h :bye", "JOIN #h")
    carol.expect(r" 366 carla #h ")
    alice.expect(r"carla!\S+ JOIN #h")
    alice.send("KICK #h carla :out")
    bob.expect(r"KICK #h carla :out$")
    bob.send("PRIVMSG #h :after", "QUIT :gone")
    bob.expect_closed()
    watcher = connect(port=server.port).register_with_caps("dave", CAPS + " draft/event-playback")
    watcher.join("#h")
    lines = batch(watcher, "CHATHISTORY LATEST #h * 100")
    shown = [re.sub(r"^@\S+ :(\w+)!\S+ ", r"\1 ", line) for line in lines]
    assert shown == [
        "alice JOIN #h", "bob JOIN #h", "carol JOIN #h", "alice TOPIC #h :history",
        "alice MODE #h +v carol", "alice PRIVMSG #h :hello", "carol NICK :carla",
        "carla PART #h :bye", "carla JOIN #h", "alice KICK #h carla :out",
        "bob PRIVMSG #h :after", "bob QUIT :Quit: gone", "dave JOIN #h",
    ]  # fmt: skip
    assert all(re.match(r"@(\S+;)?time=\S+;msgid=", line) for line in lines)
    assert len({msgid(line) for line in lines}) == len(lines)
    # Each stored event has the msgid and time its live line had.
    live = parse(next(line for line in watcher.lines if re.search(r":dave!\S+ JOIN #h$", line)))
    stored = parse(lines[-1])
    assert (live.tags["msgid"], live.tags["time"]) == (stored.tags["msgid"], stored.tags["time"])
    assert texts(batch(alice, "CHATHISTORY LATEST #h * 100")) == ["hello", "after"]
    # Paging by an event's msgid skips nothing for either kind of client.
    after = batch(alice, f"CHATHISTORY AFTER #h msgid={msgid(lines[6])} 100")
    assert texts(after) == ["after"]


def test_autoreplay_on_join_for_clients_without_chathistory(make_server, connect):
    server = make_server(flood_rate=0, history_autoreplay=3)
    alice = connect(port=server.port).register_with_caps("alice", CAPS)
    alice.join("#h")
    say(alice, "#h", 5)
    plain = connect(port=server.port)
    plain.register("plain")
    plain.send("JOIN #h")
    plain.expect(r" 366 plain #h ")
    for n in (2, 3, 4):  # the time at the head of the text: no server-time here
        plain.expect(rf"^:alice!\S+ PRIVMSG #h :\[\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\] line {n}$")
    tagged = connect(port=server.port).register_with_caps("tagged", "batch server-time")
    tagged.send("JOIN #h")
    tagged.expect(r" 366 tagged #h ")
    tagged.expect(r"BATCH \+\S+ chathistory #h$")
    for n in (2, 3, 4):
        tagged.expect(rf"^@batch=\S+;time=\S+ :alice!\S+ PRIVMSG #h :line {n}$")
    tagged.expect(r"BATCH -\S+$")
    asker = connect(port=server.port).register_with_caps("asker", CAPS)
    asker.join("#h")
    asker.sync()
    assert not [line for line in asker.lines if "line " in line]  # it asks by itself


def test_without_batch_the_lines_come_plain(room, connect):
    server, alice, _ = room
    say(alice, "#h", 2)
    plain = connect(port=server.port).register_with_caps("plain", "draft/chathistory")
    plain.join("#h")
    plain.send("CHATHISTORY LATEST #h * 10")
    plain.expect(r"^:alice!\S+ PRIVMSG #h :line 0$")
    plain.expect(r"^:alice!\S+ PRIVMSG #h :line 1$")


def wait_for_history(client, target: str, want: list[str], timeout: float = 10.0) -> None:
    """CHATHISTORY LATEST until it shows ``want``: retention runs in the background."""
    deadline = time.monotonic() + timeout
    while (got := texts(batch(client, f"CHATHISTORY LATEST {target} * 100"))) != want:
        assert time.monotonic() < deadline, f"history still {got}, not {want}"
        client.sync()  # a round trip between tries, no sleep


@pytest.mark.single_process("counts the expiries of one server's history recorder")
def test_retention_by_age_and_per_conversation(make_server, connect):
    server = make_server(flood_rate=0, history_max_per_target=3, history_expire_every=0.05)
    alice = connect(port=server.port).register_with_caps("alice", CAPS)
    alice.join("#h")
    say(alice, "#h", 8)
    wait_for_history(alice, "#h", ["line 5", "line 6", "line 7"])
    aged = make_server(flood_rate=0, history_max_age=0.2, history_expire_every=0.05)
    bob = connect(port=aged.port).register_with_caps("bob", CAPS)
    bob.join("#old")
    say(bob, "#old", 3)
    wait_for_history(bob, "#old", [])
    assert aged.server.history.expired == 3 + 1  # and bob's JOIN (event-playback)


@pytest.mark.single_process(
    "makes SQLite refuse writes underneath (PRAGMA query_only); two nodes share Redis"
)
def test_a_failing_store_loses_nothing_and_chathistory_says_so(room):
    """Writes refused underneath (SQLite's query_only, as a read-only disk would): chat
    goes on, CHATHISTORY answers MESSAGE_ERROR, and once the store recovers every
    message is there, in order."""
    server, alice, bob = room
    storage = server.server.storage

    def query_only(on: bool) -> None:
        server.call(storage.run, storage.store._db.execute, f"PRAGMA query_only = {int(on)}")

    query_only(True)
    say(alice, "#h", 3)
    bob.expect(r":alice!\S+ PRIVMSG #h :line 2$")  # chat goes on
    bob.send("CHATHISTORY LATEST #h * 10")
    bob.expect(r"FAIL CHATHISTORY MESSAGE_ERROR LATEST #h :History is unavailable")
    assert server.call(lambda: storage.failures) >= 1
    query_only(False)
    assert texts(batch(bob, "CHATHISTORY LATEST #h * 10")) == ["line 0", "line 1", "line 2"]


def test_join_time_cutoff_hides_what_was_said_before_joining(make_server, connect):
    server = make_server(flood_rate=0, history_query_cutoff="join-time")
    alice = connect(port=server.port).register_with_caps("alice", CAPS)
    alice.join("#c")
    say(alice, "#c", 2)
    bob = connect(port=server.port).register_with_caps("bob", CAPS)
    bob.join("#c")
    say(alice, "#c", 1, start=2)
    bob.expect(r"PRIVMSG #c :line 2$")
    assert texts(batch(bob, "CHATHISTORY LATEST #c * 10")) == ["line 2"]
    assert texts(batch(alice, "CHATHISTORY LATEST #c * 10")) == ["line 0", "line 1", "line 2"]
    bob.send("PART #c")
    bob.join("#c")  # a new join: a new cutoff
    assert batch(bob, "CHATHISTORY LATEST #c * 10") == []


def test_without_history_nothing_is_offered_or_kept(make_server, connect):
    server = make_server(history=False)
    alice = connect(port=server.port)
    alice.send("CAP LS 302")
    caps = alice.read_cap_ls()
    assert "draft/chathistory" not in caps and "draft/event-playback" not in caps
    alice.send("CAP END")
    alice.register("alice")
    alice.send("VERSION")
    first = alice.expect(r" 005 alice .*CHANTYPES=\S+ (\S+)")  # where it would be
    assert not first[1].startswith("CHATHISTORY")
    alice.join("#h")
    alice.send("PRIVMSG #h :not kept", "CHATHISTORY LATEST #h * 10")
    alice.expect(r"FAIL CHATHISTORY MESSAGE_ERROR LATEST #h :This server keeps no history")
    assert server.server.history.pending == []


def test_a_statusmsg_stays_out_of_the_history(room):
    """``PRIVMSG @#h`` is for the ops only: a later CHATHISTORY shows the lines around it,
    not it, to anyone."""
    _, alice, bob = room
    alice.send("PRIVMSG #h :before", "PRIVMSG @#h :ops only", "PRIVMSG #h :after")
    bob.expect(r"PRIVMSG #h :after$")
    assert texts(batch(bob, "CHATHISTORY LATEST #h * 10")) == ["before", "after"]
    assert texts(batch(alice, "CHATHISTORY LATEST #h * 10")) == ["before", "after"]


def test_an_op_moderated_line_stays_out_of_the_history(room, caplog):
    """In a +U channel a line of a member who is not an operator is for the operators
    only: CHATHISTORY does not give it back, and (on two nodes) the operator's node does
    not wait for it to be stored: it never will be."""
    _, alice, bob = room
    alice.send("MODE #h +U")
    bob.expect(r"MODE #h \+U$")
    bob.send("PRIVMSG #h :for the ops")
    alice.expect(r":bob!\S+ PRIVMSG #h :for the ops$")
    alice.send("PRIVMSG #h :for everyone")
    bob.expect(r"PRIVMSG #h :for everyone$")
    assert texts(batch(bob, "CHATHISTORY LATEST #h * 10")) == ["for everyone"]
    assert texts(batch(alice, "CHATHISTORY LATEST #h * 10")) == ["for everyone"]
    assert not [r for r in caplog.records if "was not stored" in r.getMessage()]
