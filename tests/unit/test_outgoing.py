"""Relay rendering: one serialization per capability variant, shared by all recipients."""

from __future__ import annotations

import re

from greenchat.protocol.message import parse
from greenchat.server.outgoing import (
    EXTENDED_JOIN,
    MESSAGE_TAGS,
    SERVER_TIME,
    Relay,
    add_tags,
    format_server_time,
    variant_of,
)


def test_plain_variant_has_no_tags_and_a_trailing_text():
    relay = Relay("a!~a@h", "PRIVMSG", ("#c", "hi"))
    assert relay.bytes_for(0) == b":a!~a@h PRIVMSG #c :hi\r\n"


def test_each_variant_is_rendered_once_and_shared():
    relay = Relay("a!~a@h", "PRIVMSG", ("#c", "hi"), client_tags="+draft/react=x")
    first = relay.bytes_for(SERVER_TIME | MESSAGE_TAGS)
    assert relay.bytes_for(SERVER_TIME | MESSAGE_TAGS) is first
    assert relay.bytes_for(0) is relay.bytes_for(0)


def test_tags_per_variant():
    relay = Relay("a!~a@h", "PRIVMSG", ("#c", "hi"), client_tags="+x=1")
    timed = parse(relay.bytes_for(SERVER_TIME).decode().rstrip("\r\n"))
    assert set(timed.tags) == {"time"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", timed.tags["time"])
    tagged = parse(relay.bytes_for(MESSAGE_TAGS).decode().rstrip("\r\n"))
    assert tagged.tags["+x"] == "1" and tagged.tags["msgid"]
    both = parse(relay.bytes_for(SERVER_TIME | MESSAGE_TAGS).decode().rstrip("\r\n"))
    assert both.tags["msgid"] == tagged.tags["msgid"]
    assert both.params == ("#c", "hi")


def test_extended_join_params():
    relay = Relay("a!~a@h", "JOIN", ("#c",), trailing=False, ext_params=("#c", "*", "Real Name"))
    assert relay.bytes_for(0) == b":a!~a@h JOIN #c\r\n"
    assert relay.bytes_for(EXTENDED_JOIN) == b":a!~a@h JOIN #c * :Real Name\r\n"


def test_non_trailing_last_param_only_gets_colon_when_needed():
    assert (
        Relay("s", "MODE", ("#c", "+o", "n"), trailing=False).bytes_for(0) == b":s MODE #c +o n\r\n"
    )
    assert Relay("s", "PART", ("#c",), trailing=False).bytes_for(0) == b":s PART #c\r\n"


def test_variant_of_ignores_caps_that_do_not_change_lines():
    assert variant_of({"server-time", "echo-message"}) == SERVER_TIME
    assert variant_of({"message-tags", "extended-join"}) == MESSAGE_TAGS | EXTENDED_JOIN
    assert variant_of(set()) == 0


def test_add_tags_to_lines_with_and_without_tags():
    assert add_tags(b":s PONG s :x\r\n", b"label=1") == b"@label=1 :s PONG s :x\r\n"
    assert add_tags(b"@time=t :s X\r\n", b"batch=b1") == b"@batch=b1;time=t :s X\r\n"


def test_server_time_format():
    assert format_server_time(0.5) == "1970-01-01T00:00:00.500Z"
    # A time stored as whole milliseconds / 1000 (history) shows those milliseconds,
    # though 1764633284.958 is 1764633284.9579999 in binary.
    assert format_server_time(1764633284958 / 1000) == "2025-12-01T23:54:44.958Z"


def test_server_time_of_seconds_taken_in_turn():
    """The last second's text is reused: a different second, back and forth, and a
    time that rounds up into the next second are each shown as themselves."""
    times = [0.5, 86400.25, 0.75, 59.9996, 86400.25]
    shown = [format_server_time(t) for t in times]
    assert shown == [
        "1970-01-01T00:00:00.500Z",
        "1970-01-02T00:00:00.250Z",
        "1970-01-01T00:00:00.750Z",
        "1970-01-01T00:01:00.000Z",
        "1970-01-02T00:00:00.250Z",
    ]
