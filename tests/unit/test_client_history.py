"""greenchat-join's history and read markers, sans-IO: chathistory batches, dedupe by
msgid, marker placement, unread counts, /history and MARKREAD's debounce
(greenchat/client/history.py), and how blocks look (format.py)."""

from __future__ import annotations

import pytest

from greenchat.client.commands import COMMANDS, FetchHistory, Show, help_text, parse_input
from greenchat.client.format import DIM, HIGHLIGHT, Formatter, history_stamp
from greenchat.client.history import (
    HISTORY_CAPS,
    HOLD_LIMIT,
    MARK_INTERVAL,
    Block,
    Scrollback,
    format_time,
    parse_time,
)
from greenchat.client.state import ClientState
from greenchat.protocol.message import Message, parse, serialize

ME = "me"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
PLAIN = Formatter(color=False)
COLOR = Formatter(color=True)


def scrollback(caps=HISTORY_CAPS, isupport: dict[str, str] | None = None, **kw) -> Scrollback:
    state = ClientState(ME)
    state.caps.update(caps)
    state.isupport.update(isupport or {"CHATHISTORY": "100"})
    return Scrollback(state, **kw)


def stamp(offset: float) -> str:
    return format_time(T0 + offset)


def privmsg(text: str, offset: float, msgid: str, sender="bob", target="#lobby", batch=None):
    tags = f"time={stamp(offset)};msgid={msgid}" + (f";batch={batch}" if batch else "")
    return parse(f"@{tags} :{sender}!u@h PRIVMSG {target} :{text}")


def feed_batch(sb: Scrollback, lines, target="#lobby", active="#lobby", now=0.0, ref="r1"):
    """A whole chathistory batch; the Outcome of its end."""
    opened = sb.feed(parse(f":srv BATCH +{ref} chathistory {target}"), active, now)
    assert not opened.show
    for line in lines:
        tagged = Message(line.command, line.params, line.source, {**line.tags, "batch": ref})
        assert not sb.feed(tagged, active, now).show  # held back for the block
    return sb.feed(parse(f":srv BATCH -{ref}"), active, now)


def history_of(n: int, start: int = 0, **kw) -> list[Message]:
    return [privmsg(f"line {i}", i, f"id{i}", **kw) for i in range(start, start + n)]


def texts(block: Block) -> list[str]:
    return [line.params[-1] for line in block.lines]


def joined(sb: Scrollback, channel="#lobby", active="#lobby"):
    return sb.feed(parse(f":{ME}!u@h JOIN {channel}"), active, 0.0)


# -- times --------------------------------------------------------------------------


def test_server_times_round_trip_in_whole_milliseconds() -> None:
    assert parse_time("2023-11-14T22:13:20.123Z") == pytest.approx(T0 + 0.123)
    assert format_time(T0 + 0.123) == "2023-11-14T22:13:20.123Z"
    assert format_time(parse_time("2024-02-29T23:59:59.999Z")) == "2024-02-29T23:59:59.999Z"
    for bad in (None, "", "yesterday", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z"):
        assert parse_time(bad) is None


def test_history_lines_show_their_own_time_and_a_date_when_not_today(utc) -> None:
    line = privmsg("hi", 0, "a")
    assert history_stamp(line, now=T0 + 60) == "22:13"
    assert history_stamp(line, now=T0 + 86_400) == "2023-11-14 22:13"


# -- on join ------------------------------------------------------------------------


def test_joining_asks_for_the_latest_50_lines() -> None:
    sb = scrollback()
    out = joined(sb)
    assert [serialize(m) for m in out.send] == ["CHATHISTORY LATEST #lobby * 50"]
    assert out.show  # the JOIN itself still shows


def test_no_history_request_without_the_caps_or_when_nothing_is_shown() -> None:
    assert joined(scrollback(caps=("batch", "server-time"))).send == []
    assert joined(scrollback(caps=("draft/chathistory",))).send == []  # no batch: no telling
    assert joined(scrollback(join_lines=0)).send == []
    other = scrollback().feed(parse(":bob!u@h JOIN #lobby"), "#lobby", 0.0)
    assert other.send == []  # someone else's JOIN


def test_a_small_server_maximum_caps_the_join_request() -> None:
    out = joined(scrollback(isupport={"CHATHISTORY": "20"}))
    assert serialize(out.send[0]) == "CHATHISTORY LATEST #lobby * 20"


def test_a_batch_becomes_one_block_of_its_lines_in_order() -> None:
    sb = scrollback()
    joined(sb)
    out = feed_batch(sb, history_of(3))
    assert out.block is not None and not out.show
    assert out.block.target == "#lobby" and out.block.kind == "join"
    assert texts(out.block) == ["line 0", "line 1", "line 2"]
    assert out.block.marker_after is None  # no marker known


def test_an_empty_batch_on_join_shows_nothing() -> None:
    sb = scrollback()
    joined(sb)
    out = feed_batch(sb, [])
    assert out.block is not None and out.block.lines == ()
    assert PLAIN.history(out.block, ME) == []


def test_live_lines_before_the_joins_history_show_after_it() -> None:
    sb = scrollback()
    joined(sb)
    early = privmsg("said meanwhile", 10, "live1")
    assert not sb.feed(early, "#lobby", 0.5).show  # waits
    assert sb.feed(privmsg("elsewhere", 11, "x", target="#dev"), "#lobby", 0.5).show
    out = feed_batch(sb, [*history_of(2), early])  # stored before the history was read
    assert texts(out.block) == ["line 0", "line 1"] and out.released == [early]
    assert sb.feed(privmsg("later", 12, "live2"), "#lobby", 1.0).show


def test_live_lines_wait_for_the_history_only_so_long() -> None:
    sb = scrollback()
    joined(sb)  # at 0.0
    early = privmsg("said meanwhile", 10, "live1")
    sb.feed(early, "#lobby", 1.0)
    assert sb.next_due(1.0) == pytest.approx(HOLD_LIMIT - 1.0)
    assert sb.poll(1.0).released == []
    assert sb.poll(HOLD_LIMIT).released == [early]
    assert sb.feed(privmsg("later", 12, "live2"), "#lobby", 4.0).show
    assert isinstance(sb.fetch("#lobby", 5), Message)
    late = feed_batch(sb, history_of(2, start=20), ref="late")  # the join's, very late:
    assert late.block.kind == "more"  # taken for the one still asked for; fine either way
    # A refusal releases them at once; so does a lost connection.
    sb = scrollback()
    joined(sb)
    sb.feed(early, "#lobby", 0.1)
    fail = parse(":srv FAIL CHATHISTORY MESSAGE_ERROR LATEST #lobby :History is unavailable")
    out = sb.feed(fail, "#lobby", 0.2)
    assert out.show and out.released == [early]
    sb = scrollback()
    joined(sb)
    sb.feed(early, "#lobby", 0.1)
    assert sb.disconnected() == [early]


def test_lines_of_other_batches_and_unknown_references_are_live() -> None:
    sb = scrollback()
    assert sb.feed(parse(":srv BATCH +n netsplit a.b c.d"), "#lobby", 0).show
    assert sb.feed(privmsg("live", 1, "x1", batch="n"), "#lobby", 0).show
    assert sb.feed(privmsg("live", 2, "x2", batch="nosuch"), "#lobby", 0).show


def test_nothing_shown_twice_by_msgid() -> None:
    sb = scrollback()
    assert sb.feed(privmsg("line 2", 2, "id2"), "#lobby", 0).show  # seen live first
    joined(sb)
    first = feed_batch(sb, history_of(4))
    assert texts(first.block) == ["line 0", "line 1", "line 3"]
    again = feed_batch(sb, history_of(5), ref="r2")  # a reconnect asks again
    assert texts(again.block) == ["line 4"]
    assert not sb.feed(privmsg("line 4", 4, "id4"), "#lobby", 0).show  # and live: no


def test_a_block_is_marked_as_history_with_each_lines_time(utc) -> None:
    sb = scrollback()
    block = feed_batch(sb, history_of(2)).block
    shown = [line.text for line in PLAIN.history(block, ME, now=T0)]
    assert shown == [
        "── history of #lobby ──",
        "22:13 #lobby <bob> line 0",
        "22:13 #lobby <bob> line 1",
        "── end of history ──",
    ]
    assert all(line.kind == "chat" for line in PLAIN.history(block, ME, now=T0))


def test_history_is_dimmed_and_never_highlighted_as_a_mention(utc) -> None:
    sb = scrollback()
    lines = [privmsg("hey me, look", 0, "m1"), privmsg("psst", 1, "m2", target=ME)]
    block = feed_batch(sb, lines).block
    for line in COLOR.history(block, ME, now=T0)[1:-1]:
        assert DIM in line.text and HIGHLIGHT not in line.text
    live = COLOR.message(privmsg("hey me, look", 0, "m1"), ME, now=T0)
    assert HIGHLIGHT in live.text  # the same line live is a mention


def test_history_lines_are_no_new_activity() -> None:
    sb = scrollback()
    feed_batch(sb, history_of(3), active="#elsewhere")
    assert sb.unread() == {}  # no read marker: nothing known to be unread


# -- read markers -----------------------------------------------------------------------


def markread(sb: Scrollback, target: str, offset: float | None, active="#lobby"):
    value = "*" if offset is None else f"timestamp={stamp(offset)}"
    return sb.feed(parse(f":srv MARKREAD {target} {value}"), active, 0.0)


def test_the_marker_goes_after_the_last_line_at_or_before_it() -> None:
    sb = scrollback()
    joined(sb)
    assert not markread(sb, "#lobby", 2).show  # before 366, never shown
    block = feed_batch(sb, history_of(5)).block
    assert block.marker_after == 2  # line 2 is exactly at the marker
    shown = [line.text for line in PLAIN.history(block, ME)]
    assert shown[3:6] == [shown[3], "── read up to here ──", shown[5]]
    assert shown[3].endswith("line 2") and shown[5].endswith("line 3")
    assert PLAIN.message(parse(":srv MARKREAD #lobby *"), ME) is None


def test_no_marker_line_when_unknown_or_before_every_line() -> None:
    sb = scrollback()
    markread(sb, "#lobby", None)
    assert feed_batch(sb, history_of(3)).block.marker_after is None
    sb = scrollback()
    markread(sb, "#lobby", -10)
    assert feed_batch(sb, history_of(3)).block.marker_after is None
    sb = scrollback()
    markread(sb, "#lobby", 100)  # everything read: the line goes after the last one
    block = feed_batch(sb, history_of(3)).block
    assert block.marker_after == 2
    assert [line.text for line in PLAIN.history(block, ME)][-2:] == [
        "── read up to here ──",
        "── end of history ──",
    ]


def test_no_marker_line_after_older_lines_all_read() -> None:
    sb = scrollback()
    markread(sb, "#lobby", 100)
    feed_batch(sb, history_of(3, start=10))
    sb.fetch("#lobby", 5)
    older = feed_batch(sb, history_of(5, start=5), ref="r2").block
    assert older.kind == "more" and older.marker_after is None
    assert "── read up to here ──" not in [line.text for line in PLAIN.history(older, ME)]


def test_lines_after_the_marker_in_another_window_are_unread() -> None:
    sb = scrollback()
    markread(sb, "#dev", 1, active="#lobby")
    lines = [*history_of(3, target="#dev"), privmsg("mine", 3, "own", sender=ME, target="#dev")]
    out = feed_batch(sb, lines, target="#dev", active="#lobby")
    assert out.changed and sb.unread() == {"#dev": 1}  # line 2; line 1 is read, not mine
    assert sb.feed(privmsg("more", 5, "id5", target="#dev"), "#lobby", 0).changed
    assert sb.unread() == {"#dev": 2}
    # Another client of the account read up to line 2: one left.
    assert markread(sb, "#dev", 2.5, active="#lobby").changed
    assert sb.unread() == {"#dev": 1}
    sb.read("#dev", 10.0)  # switched there
    assert sb.unread() == {}


def test_what_counts_as_unread() -> None:
    sb = scrollback()
    cases = [
        (privmsg("talk", 1, "a"), True),
        (privmsg("\x01ACTION waves\x01", 2, "b"), True),
        (privmsg("\x01VERSION\x01", 3, "c"), False),  # a CTCP request is no talk
        (privmsg("my own", 4, "d", sender=ME), False),
        (parse(f"@time={stamp(5)};msgid=e :bob!u@h NOTICE #lobby :a notice"), False),
        (parse(":greenchat.local NOTICE me :server notice"), False),
    ]
    for msg, counts in cases:
        before = sum(sb.unread().values())
        sb.feed(msg, "#other", 0.0)
        assert sum(sb.unread().values()) == before + counts, msg
    assert sb.feed(privmsg("here", 9, "z"), "#lobby", 0).changed is False  # active: read


def test_private_lines_belong_to_the_other_party() -> None:
    sb = scrollback()
    incoming = privmsg("hi me", 1, "p1", sender="Bob", target=ME)
    outgoing = privmsg("hi bob", 2, "p2", sender=ME, target="bob")
    assert sb.window_of(incoming) == "Bob" and sb.window_of(outgoing) == "bob"
    sb.feed(incoming, "#lobby", 0)
    assert sb.unread() == {"Bob": 1}
    sb.feed(outgoing, "bob", 0)  # case-insensitively the same window
    assert sb.unread() == {"Bob": 1}  # (read() clears it, on switching)
    assert sb.oldest("BOB") == (T0 + 1, "p1")
    assert sb.window_of(parse(":bob!u@h PRIVMSG @#lobby :ops only")) == "#lobby"
    assert sb.window_of(parse(":greenchat.local NOTICE me :hello")) is None


# -- MARKREAD from the client ---------------------------------------------------------------


def sent(messages: list[Message]) -> list[str]:
    return [serialize(m) for m in messages]


def test_shown_lines_in_the_active_window_are_marked_read_with_the_newest_time() -> None:
    sb = scrollback()
    joined(sb)
    out = feed_batch(sb, history_of(3), now=100.0)
    assert sent(out.send) == [f"MARKREAD #lobby timestamp={stamp(2)}"]


def test_markread_waits_between_sends_and_only_when_the_time_grew() -> None:
    sb = scrollback()
    first = sb.feed(privmsg("a", 1, "a"), "#lobby", 100.0)
    assert sent(first.send) == [f"MARKREAD #lobby timestamp={stamp(1)}"]
    # Within the interval: nothing now, one later with the newest line.
    assert sb.feed(privmsg("b", 2, "b"), "#lobby", 100.5).send == []
    assert sb.feed(privmsg("c", 3, "c"), "#lobby", 101.0).send == []
    assert sb.next_due(101.0) == pytest.approx(MARK_INTERVAL - 1.0)
    assert sb.poll(101.5).send == []
    assert sent(sb.poll(100.0 + MARK_INTERVAL).send) == [f"MARKREAD #lobby timestamp={stamp(3)}"]
    assert sb.next_due(103.0) is None and sb.poll(200.0).send == []
    # Read again with nothing newer: nothing to send.
    assert sb.read("#lobby", 300.0) == []


def test_no_markread_behind_the_servers_marker_or_without_the_cap() -> None:
    sb = scrollback()
    markread(sb, "#lobby", 50)  # read further elsewhere
    assert sb.feed(privmsg("old", 10, "o"), "#lobby", 100.0).send == []
    assert sb.read("#lobby", 200.0) == []
    sb = scrollback()
    sb.feed(privmsg("a", 1, "a"), "#lobby", 100.0)
    sb.feed(privmsg("b", 2, "b"), "#lobby", 100.5)  # owed...
    markread(sb, "#lobby", 5)  # ...but another client of the account went past it
    assert sb.next_due(101.0) is None and sb.poll(110.0).send == []
    no_cap = scrollback(caps=("draft/chathistory", "batch", "server-time"))
    assert no_cap.feed(privmsg("a", 1, "a"), "#lobby", 100.0).send == []


def test_a_line_in_another_window_is_not_marked_read() -> None:
    sb = scrollback()
    assert sb.feed(privmsg("a", 1, "a", target="#dev"), "#lobby", 100.0).send == []
    assert sent(sb.read("#dev", 101.0)) == [f"MARKREAD #dev timestamp={stamp(1)}"]


def test_the_owed_markread_keeps_the_time_it_was_owed_for() -> None:
    """Owed while #lobby was active; lines that came after the switch stay unread."""
    sb = scrollback()
    sb.feed(privmsg("a", 1, "a"), "#lobby", 100.0)
    sb.feed(privmsg("b", 2, "b"), "#lobby", 100.5)  # owed: up to line b
    sb.feed(privmsg("c", 3, "c"), "#dev-now-active", 101.0)  # c is #lobby's, not read
    assert sent(sb.poll(103.0).send) == [f"MARKREAD #lobby timestamp={stamp(2)}"]


# -- /history ---------------------------------------------------------------------------------


def test_history_command_parsing() -> None:
    assert parse_input("/history", "#lobby") == FetchHistory("#lobby", 50)
    assert parse_input("/history 20", "#lobby") == FetchHistory("#lobby", 20)
    assert parse_input("/HISTORY 500", "bob") == FetchHistory("bob", 500)  # clamped later
    for bad in ("/history 0", "/history -3", "/history lots", "/history 5 6", "/history ²"):
        action = parse_input(bad, "#lobby")
        assert isinstance(action, Show) and action.error and "usage" in action.text, bad
    no_target = parse_input("/history", None)
    assert isinstance(no_target, Show) and no_target.error
    assert "history" in COMMANDS and "/history [N]" in help_text()
    assert help_text("history").startswith("/history [N] — ")


def test_history_asks_before_the_oldest_line_shown() -> None:
    sb = scrollback()
    assert serialize(sb.fetch("#lobby", 30)) == "CHATHISTORY LATEST #lobby * 30"  # none shown
    sb = scrollback()
    feed_batch(sb, history_of(3, start=10))
    assert serialize(sb.fetch("#lobby", 30)) == "CHATHISTORY BEFORE #lobby msgid=id10 30"
    sb = scrollback()
    sb.feed(parse(f"@time={stamp(7)} :bob!u@h PRIVMSG #lobby :no msgid"), "#lobby", 0)
    assert serialize(sb.fetch("#lobby")) == f"CHATHISTORY BEFORE #lobby timestamp={stamp(7)} 50"


def test_history_is_clamped_to_the_servers_maximum() -> None:
    sb = scrollback(isupport={"CHATHISTORY": "100"})
    assert serialize(sb.fetch("#lobby", 500)).endswith(" 100")
    sb = scrollback(isupport={})  # the server names none: 100
    assert serialize(sb.fetch("#lobby", 500)).endswith(" 100")
    sb = scrollback(isupport={"CHATHISTORY": "25"})
    assert serialize(sb.fetch("#lobby", 500)).endswith(" 25")


def test_history_in_a_private_window_names_the_nick() -> None:
    sb = scrollback()
    sb.feed(privmsg("hi", 4, "p4", sender="bob", target=ME), "bob", 0)
    assert serialize(sb.fetch("bob", 10)) == "CHATHISTORY BEFORE bob msgid=p4 10"
    out = feed_batch(sb, [privmsg("earlier", 1, "p1", sender=ME, target="bob")], target="bob")
    assert out.block.target == "bob" and out.block.kind == "more"


def test_history_without_the_cap_says_the_server_keeps_none() -> None:
    assert scrollback(caps=("batch",)).fetch("#lobby") == "this server keeps no history"


def test_one_history_request_at_a_time_per_window() -> None:
    sb = scrollback()
    feed_batch(sb, history_of(3, start=10))
    assert isinstance(sb.fetch("#lobby", 5), Message)
    assert sb.fetch("#lobby", 5) == "already fetching history of #lobby"
    assert isinstance(sb.fetch("#dev", 5), Message)
    feed_batch(sb, history_of(5, start=5), ref="r2")
    assert serialize(sb.fetch("#lobby", 5)) == "CHATHISTORY BEFORE #lobby msgid=id5 5"


def test_more_history_is_shown_and_the_end_is_said(utc) -> None:
    sb = scrollback()
    feed_batch(sb, history_of(3, start=10))
    sb.fetch("#lobby", 5)
    full = feed_batch(sb, history_of(5, start=5), ref="r2").block
    assert full.kind == "more" and not full.exhausted
    shown = [line.text for line in PLAIN.history(full, ME, now=T0)]
    assert shown[0] == "── earlier history of #lobby ──" and shown[-1] == "── end of history ──"
    sb.fetch("#lobby", 10)
    short = feed_batch(sb, history_of(5), ref="r3").block
    assert short.exhausted and texts(short) == [f"line {i}" for i in range(5)]
    assert PLAIN.history(short, ME, now=T0)[-1].text == (
        "── end of history: nothing earlier in #lobby ──"
    )
    sb.fetch("#lobby", 10)
    empty = feed_batch(sb, [], ref="r4").block
    assert [line.text for line in PLAIN.history(empty, ME, now=T0)] == [
        "22:13 -- no more history in #lobby"
    ]


def test_a_reconnect_forgets_open_batches_and_requests() -> None:
    sb = scrollback()
    sb.fetch("#lobby", 5)
    sb.feed(parse(":srv BATCH +gone chathistory #lobby"), "#lobby", 0)
    sb.disconnected()
    assert sb.feed(privmsg("live", 1, "l1", batch="gone"), "#lobby", 0).show
    assert isinstance(sb.fetch("#lobby", 5), Message)  # not "already fetching"


# -- redaction ------------------------------------------------------------------------------


def test_redact_shows_who_deleted_a_message(utc) -> None:
    line = PLAIN.message(parse(":bob!u@h REDACT #lobby id1 :typo"), ME, now=T0)
    assert line.text == "22:13 #lobby * bob deleted a message (typo)"
    private = PLAIN.message(parse(":bob!u@h REDACT me id2"), ME, now=T0)
    assert private.text == "22:13 * bob deleted a message"
    assert PLAIN.message(parse(":bob!u@h REDACT #lobby"), ME) is None  # malformed


def test_a_redacted_line_in_a_batch_is_not_shown() -> None:
    sb = scrollback()
    lines = [*history_of(3), parse(":bob!u@h REDACT #lobby id1")]
    assert texts(feed_batch(sb, lines).block) == ["line 0", "line 2"]
    assert sb.window_of(parse(":bob!u@h REDACT me id9")) == "bob"
