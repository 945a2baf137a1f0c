"""Events: a stable serialized form, round-trip tested; the hub hands each to observers."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenchat.server import events
from greenchat.server.events import (
    KINDS,
    VERSION,
    AccountChanged,
    AwayChanged,
    ChannelModeChanged,
    ChannelRenamed,
    Event,
    EventError,
    HostChanged,
    Invited,
    Joined,
    Kicked,
    Killed,
    Messaged,
    MetadataChanged,
    NickChanged,
    Parted,
    Quit,
    RealnameChanged,
    Redacted,
    StoreChanged,
    TopicSet,
    UserModeChanged,
    UserRegistered,
    WallopsSent,
    dumps,
    from_dict,
    loads,
    to_dict,
)

EXAMPLES: list[Event] = [
    UserRegistered("alice", "~alice", "127.0.0.1", "Alice A.", time=1.5),
    NickChanged("alice", "alicia", time=2.0),
    Joined("alice", "#lobby", time=3.0),
    Parted("alice", "#lobby", "bye", time=4.0),
    Kicked("op", "#lobby", "bob", "spam", time=5.0),
    Quit("bob", "Ping timeout: 120 seconds", time=6.0),
    TopicSet("op", "#lobby", "Welcome, é", time=7.0),
    ChannelRenamed("op", "#lobby", "#hall", "tidier", time=7.5),
    ChannelModeChanged("op", "#lobby", (("+", "o", "bob"), ("+", "b", "*!*@x"), ("-", "t", ""))),
    Invited("op", "carol", "#secret", time=8.0),
    UserModeChanged("alice", (("+", "i"), ("-", "w")), time=9.0),
    AwayChanged("alice", "lunch", time=10.0),
    AccountChanged("alice", "Alice", time=10.5),
    RealnameChanged("alice", "Alice B.", time=11.0),
    HostChanged("oper", "alice", "~a", "staff.example", time=12.0),
    Killed("oper", "mallory", "Killed (oper (flood))", time=13.0),
    MetadataChanged("alice", "#c", (("url", "https://example.test"), ("old", None)), time=13.5),
    WallopsSent("oper", "maintenance at noon", time=13.5),
    Messaged("PRIVMSG", "alice", "#lobby", "hi :) \x01ACTION waves\x01", "+draft/reply=1", "m1"),
    Messaged("TAGMSG", "alice", "bob", "", "+typing=active", "m2", time=14.0),
    Redacted("alice", "#lobby", "m1", "typo", "m3", time=15.0),
    StoreChanged("account", "alice", time=16.0),
]


def test_every_kind_has_an_example_and_a_unique_name():
    assert {type(e) for e in EXAMPLES} == set(KINDS.values())
    assert len(KINDS) == len({cls.kind for cls in KINDS.values()})


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.kind)
def test_round_trip(event: Event):
    text = dumps(event)
    assert "\n" not in text
    assert loads(text) == event
    assert loads(text.encode()) == event
    assert from_dict(json.loads(text)) == event
    data = to_dict(event)
    assert data["v"] == VERSION and data["kind"] == event.kind


def test_the_serialized_form_is_stable():
    """Stored and published by later versions: a change here needs a new VERSION."""
    assert dumps(Joined("alice", "#lobby", msgid="m1", time=3.0)) == (
        '{"v":2,"kind":"join","nick":"alice","channel":"#lobby","msgid":"m1","time":3.0}'
    )
    assert dumps(ChannelModeChanged("op", "#c", (("+", "l", "7"),), msgid="m2", time=1.0)) == (
        '{"v":2,"kind":"cmode","by":"op","channel":"#c","changes":[["+","l","7"]],'
        '"msgid":"m2","time":1.0}'
    )


def test_events_are_frozen():
    event = Joined("alice", "#lobby")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.nick = "bob"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"v":1,"kind":"join","nick":"a","channel":"#c"}',
        '{"v":2,"kind":"teleport"}',
        '{"v":2,"kind":"join","nick":"a"}',
        '{"v":2,"kind":"join","nick":"a","channel":"#c","extra":1}',
    ],
)
def test_what_cannot_be_read_is_a_clear_error(text: str):
    with pytest.raises(EventError):
        loads(text)


@given(
    nick=st.text(min_size=1, max_size=30),
    text=st.text(max_size=400),
    when=st.floats(allow_nan=False, allow_infinity=False),
)
def test_any_text_round_trips(nick: str, text: str, when: float):
    event = Messaged("PRIVMSG", nick, "#c", text, "", "id", time=when)
    assert loads(dumps(event)) == event


def test_module_lists_every_event():
    assert set(KINDS.values()) <= {getattr(events, name) for name in events.__all__}
