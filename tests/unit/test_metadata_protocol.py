"""protocol/metadata.py without sockets: keys, values, the capability's value, and what a
METADATA command asks (any parameters: a request or a problem, never an exception)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from greenchat.protocol.metadata import (
    MAX_KEY_BYTES,
    MAX_KEYS,
    MAX_VALUE_BYTES,
    Problem,
    Request,
    capability_value,
    fits_a_line,
    parse_request,
    valid_key,
    value_problem,
)
from greenchat.server.metadata import _newer


def test_keys_are_lowercase_words_without_colons():
    for key in ("avatar", "display-name", "a.b/c_d-9", "k" * MAX_KEY_BYTES):
        assert valid_key(key), key
    for key in ("", "Avatar", "a:b", ":a", "a b", "é", "k" * (MAX_KEY_BYTES + 1), "a\n"):
        assert not valid_key(key), key


def test_values_are_bounded_in_bytes_not_characters():
    assert value_problem("") is None
    assert value_problem("x" * MAX_VALUE_BYTES) is None
    assert value_problem("é" * (MAX_VALUE_BYTES // 2)) is None
    assert "too long" in value_problem("é" * (MAX_VALUE_BYTES // 2 + 1))


def test_a_value_fits_the_line_of_its_longest_reply():
    assert fits_a_line("greenchat.local", 30, "#" + "c" * 63, "k" * 64, "x" * MAX_VALUE_BYTES)
    long_channel = "#" + "é" * 63  # 127 bytes
    assert not fits_a_line("greenchat.local", 30, long_channel, "k" * 64, "x" * MAX_VALUE_BYTES)
    assert fits_a_line("greenchat.local", 30, long_channel, "k" * 64, "x" * 200)


def test_a_login_keeps_the_account_within_its_keys():
    stored = {f"s{n}": "v" for n in range(MAX_KEYS - 1)}
    own = {"s0": "changed", "new1": "a", "new2": "b"}
    assert _newer(own, stored) == [("s0", "changed"), ("new1", "a")]  # room for one more
    assert _newer({"s1": "v"}, stored) == []  # nothing new


def test_the_capability_says_before_connect_and_the_limits():
    tokens = dict(t.partition("=")[::2] for t in capability_value().split(","))
    assert tokens == {
        "before-connect": "",
        "max-subs": "50",
        "max-keys": "30",
        "max-value-bytes": "300",
        "max-key-bytes": "64",
    }


def test_requests_and_problems():
    assert parse_request(["*", "get", "a", "b"]) == Request("*", "GET", ("a", "b"))
    assert parse_request(["#c", "SET", "k"]) == Request("#c", "SET", ("k",))
    assert parse_request(["#c", "SET", "k", ""]) == Request("#c", "SET", ("k", ""))
    assert parse_request(["*", "SUBS"]) == Request("*", "SUBS", ())
    invalid = Problem("SUBCOMMAND_INVALID", ("frob",), "Invalid subcommand")
    assert parse_request(["*", "frob"]) == invalid
    for params in (["*"], [], ["", "LIST"], ["*", "GET"], ["*", "SET"], ["*", "SUB"]):
        assert parse_request(params).code == "", params  # 461
    assert parse_request(["*", "SET", "k", "v", "w"]).code == ""


@given(st.lists(st.text(max_size=20), max_size=6))
def test_any_parameters_give_a_request_or_a_problem(params):
    result = parse_request(params)
    assert isinstance(result, Request | Problem)
    if isinstance(result, Request):
        assert result.subcommand in {"GET", "LIST", "SET", "CLEAR", "SUB", "UNSUB", "SUBS", "SYNC"}


@given(st.text(max_size=80))
def test_any_key_is_judged_without_an_exception(key):
    assert valid_key(key) in (True, False)
    assert value_problem(key) is None or isinstance(value_problem(key), str)
