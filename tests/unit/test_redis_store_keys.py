"""RedisStore's pure helpers: key names and their hash tags (what one script touches sits
in one Redis Cluster slot), and which Redis errors mean "unavailable"."""

from __future__ import annotations

import pytest
from redis import exceptions as rx
from redis.crc import key_slot

from greenchat.protocol.casemap import casefold
from greenchat.store.redis_store import Keys, _where, hash_tag, unavailable_cause

# Conversation keys as the server makes them: casefolded channels (rfc1459 folds [] to
# {}), private conversations; and some made to trip a naive hash tag.
TARGETS = ["#room", casefold("#Room[1]"), "#a}b", "#{", "#}", "dm:a:alice n:bob{x}", "#a b"]


def slot(key: str) -> int:
    return key_slot(key.encode())


@pytest.mark.parametrize(
    "key",
    ["plain", "gc:n:{r}:accounts", "a{b}c{d}", "a{}{b}", "a{b", "}{x}", "{x}}", "{}"],
)
def test_hash_tag_is_what_redis_cluster_hashes(key):
    assert slot(hash_tag(key)) == slot(key)


def test_every_key_starts_with_the_network():
    keys = Keys("net1")
    made = [
        keys.accounts,
        keys.account("alice"),
        keys.certfp,
        keys.channels,
        keys.channel("#room"),
        keys.conversations,
        keys.dms("a:alice"),
        keys.markers("alice"),
        *keys.conversation("#room"),
    ]
    assert all(key.startswith("gc:net1:") for key in made)


@pytest.mark.parametrize("target", TARGETS)
def test_a_conversations_keys_share_one_slot(target):
    keys = Keys("greenchat").conversation(target)
    assert len({slot(key) for key in keys}) == 1
    assert len(set(keys)) == 5


def test_different_conversations_never_share_a_key():
    keys = Keys("greenchat")
    made = [key for target in [*TARGETS, "#a}:seq", "#a"] for key in keys.conversation(target)]
    assert len(made) == len(set(made))


def test_conversations_spread_over_slots():
    keys = Keys("greenchat")
    slots = {slot(keys.conversation(f"#channel{n}")[0]) for n in range(50)}
    assert len(slots) > 40


@pytest.mark.parametrize("name", ["alice", casefold("Alice[away]"), "#Room{1}", "x}y"])
def test_the_registry_is_one_slot_whatever_the_names(name):
    keys = Keys("greenchat")
    made = [keys.accounts, keys.account(name), keys.certfps(name), keys.settings(name)]
    made += [keys.certfp, keys.channels, keys.channel(name), keys.access(name)]
    assert {hash_tag(key) for key in made} == {"r"}


@pytest.mark.parametrize("network", ["", "a{b}", "a:b", "a b"])
def test_a_network_name_that_would_break_the_layout_is_refused(network):
    with pytest.raises(ValueError):
        Keys(network)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (rx.ConnectionError("Error 111 connecting"), "cannot reach Redis"),
        (rx.TimeoutError("Timeout reading from socket"), "did not answer"),
        (rx.BusyLoadingError("Redis is loading the dataset in memory"), "loading"),
        (rx.AuthenticationError("invalid password"), "refused the credentials"),
        (rx.OutOfMemoryError("command not allowed", status_code="OOM"), "out of memory"),
        (rx.ReadOnlyError("You can't write", status_code="READONLY"), "read-only"),
        (rx.ResponseError("MISCONF Redis is configured to save RDB snapshots"), "snapshot"),
        (rx.ResponseError("BUSY Redis is busy running a script"), "busy"),
        # A Redis Cluster's, and its client's (RedisClusterException is no RedisError).
        (rx.ClusterDownError("The cluster is down", status_code="CLUSTERDOWN"), "is down"),
        (rx.TryAgainError("Multiple keys request", status_code="TRYAGAIN"), "moving keys"),
        (rx.MovedError("3999 127.0.0.1:6381"), "moving keys (slot 3999 to 127.0.0.1:6381)"),
        (rx.AskError("3999 127.0.0.1:6381"), "moving keys"),
        (rx.ClusterError("TTL exhausted."), "kept redirecting"),
        (rx.SlotNotCoveredError('Slot "7" is not covered by the cluster.'), "every slot"),
        (rx.RedisClusterException("Redis Cluster cannot be connected. Please"), "any node"),
        (rx.RedisClusterException("startup_nodes could not agree on a valid"), "disagree"),
    ],
)
def test_failures_underneath_are_unavailable_in_words(error, words):
    cause = unavailable_cause(error)
    assert cause is not None and words in cause and "\n" not in cause


@pytest.mark.parametrize(
    "error",
    [
        rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        rx.ResponseError("ERR syntax error"),
        rx.DataError("Invalid input of type: 'dict'"),
        rx.RedisClusterException("EVALSHA - all keys must map to the same key slot"),
    ],
)
def test_a_bug_is_not_called_unavailable(error):
    assert unavailable_cause(error) is None


def test_urls_are_shown_without_a_password():
    assert _where("redis://:s3cret@db.internal:6380/2") == "redis://db.internal:6380/2"
    assert _where("rediss://user:s3cret@db.internal/0") == "rediss://db.internal/0"
    assert _where("unix:///run/redis.sock?db=1") == "unix:///run/redis.sock"
