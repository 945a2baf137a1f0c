"""backplane/snapshot.py: a replica written by one hub and loaded into another (pure)."""

from __future__ import annotations

import json

from greenchat.backplane import snapshot
from greenchat.server.events import (
    ChannelModeChanged,
    Joined,
    MetadataChanged,
    TopicSet,
    UserRegistered,
)
from greenchat.server.hub import Hub


def _hub_with_a_channel() -> Hub:
    hub = Hub()
    for nick in ("alice", "bob"):  # remote users of node "n1", as a replica has them
        hub.apply_now(UserRegistered(nick, "~" + nick, "host", nick.title(), node="n1"))
    hub.apply_now(Joined("alice", "#Room"))
    hub.apply_now(Joined("bob", "#Room"))
    hub.apply_now(TopicSet("alice", "#Room", "the topic"))
    changes = (("+", "k", "key"), ("+", "l", "5"), ("+", "b", "*!*@bad"), ("+", "v", "bob"),
               ("+", "e", "a:Good"), ("+", "I", "*!*@friend"))  # fmt: skip
    hub.apply_now(ChannelModeChanged("alice", "#Room", changes))
    hub.apply_now(MetadataChanged("alice", "alice", (("avatar", "a.png"),)))
    hub.apply_now(MetadataChanged("alice", "#Room", (("url", "https://example.test"),)))
    return hub


def test_a_loaded_snapshot_has_the_users_and_channels():
    servers = {"n0": "one.test"}
    state = json.loads(json.dumps(snapshot.take(_hub_with_a_channel(), "n0", servers)))
    other = Hub()
    assert snapshot.load(other, state, "n2") == 2
    assert other.registered_count == 2
    alice = other.nick_owner("ALICE")
    assert alice.node == "n1" and alice.realname == "Alice" and alice.prefix == "alice!~alice@host"
    channel = other.get_channel("#room")
    assert channel.name == "#Room" and channel.topic == "the topic"
    assert channel.join_key == "key" and channel.limit == 5 and "*!*@bad" in channel.bans
    assert [entry[0] for entry in channel.excepts.values()] == ["a:Good"]
    assert list(channel.invexes) == ["*!*@friend"]
    assert {u.nick: modes for u, modes in channel.members.items()} == {
        "alice": {"o"},
        "bob": {"v"},
    }
    assert channel.local == {}  # nobody of the loading node is in it
    assert alice.channels == {"#room": channel}
    assert dict(alice.metadata) == {"avatar": "a.png"}
    assert dict(channel.metadata) == {"url": "https://example.test"}
    assert other.nick_owner("bob").metadata == {}


def test_the_loading_node_s_own_users_are_not_loaded():
    state = snapshot.take(_hub_with_a_channel(), "n0", {"n0": "one.test"})
    other = Hub()
    assert snapshot.load(other, state, "n1") == 0  # n1's users are the loader's own
    assert other.nick_owner("alice") is None
