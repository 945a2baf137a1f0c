"""rfc1459 case folding and nick/channel validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenchat.protocol.casemap import (
    CASEMAPPING,
    casefold,
    is_channel_name,
    split_status,
    valid_channel,
    valid_nick,
)


def test_casemapping_name() -> None:
    assert CASEMAPPING == "rfc1459"


def test_ascii_letters_fold() -> None:
    assert casefold("ABCXYZ abcxyz") == "abcxyz abcxyz"


def test_rfc1459_specials_fold() -> None:
    assert casefold("[]\\~") == "{}|^"
    assert casefold("{}|^") == "{}|^"


@pytest.mark.parametrize(
    ("a", "b"),
    [("Nick[a]", "nick{A}"), ("FOO\\BAR", "foo|bar"), ("x~y", "X^Y"), ("#Chan[1]", "#chan{1}")],
)
def test_equivalent_names_fold_equal(a: str, b: str) -> None:
    assert casefold(a) == casefold(b)


@pytest.mark.parametrize(("a", "b"), [("nick", "nick_"), ("a-b", "a_b"), ("`x", "@x")])
def test_distinct_names_stay_distinct(a: str, b: str) -> None:
    assert casefold(a) != casefold(b)


def test_non_ascii_is_left_alone() -> None:
    # Only the rfc1459 set folds; Unicode case is not touched.
    assert casefold("ÉCOLE") == "École"


@given(st.text(max_size=30))
@settings(max_examples=200)
def test_casefold_is_idempotent_and_length_preserving(name: str) -> None:
    folded = casefold(name)
    assert casefold(folded) == folded
    assert len(folded) == len(name)


@pytest.mark.parametrize(
    "nick",
    ["a", "Nick", "nick123", "n-i-c-k", "[bot]", "{x}", "\\o|", "`tick", "_u", "^x"],
)
def test_valid_nicks(nick: str) -> None:
    assert valid_nick(nick, 30)


@pytest.mark.parametrize(
    "nick",
    [
        "",
        "1nick",
        "-nick",
        "#nick",
        "&nick",
        ":nick",
        "ni ck",
        "ni,ck",
        "ni*ck",
        "ni?ck",
        "ni!ck",
        "ni@ck",
        "ni.ck",
        "nick\n",
        "nick\r",
        "nick\0",
        "nïck",
        "~nick",
    ],
)
def test_invalid_nicks(nick: str) -> None:
    assert not valid_nick(nick, 30)


def test_nick_length_limit() -> None:
    assert valid_nick("a" * 9, 9)
    assert not valid_nick("a" * 10, 9)


@pytest.mark.parametrize(
    "name", ["#a", "#chan", "#Chan-1", "##dev", "#c++", "#ü", "#a.b", "#[x]", "#!@$"]
)
def test_valid_channels(name: str) -> None:
    assert valid_channel(name, 50)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "#",
        "chan",
        "&chan",
        "+chan",
        "!chan",
        "#a b",
        "#a,b",
        "#a\x07b",
        "#a:b",
        "#a\nb",
        "#a\rb",
        "#a\0b",
        "#a\tb",
        " #a",
    ],
)
def test_invalid_channels(name: str) -> None:
    assert not valid_channel(name, 50)


def test_channel_length_limit() -> None:
    assert valid_channel("#" + "a" * 49, 50)
    assert not valid_channel("#" + "a" * 50, 50)


@pytest.mark.parametrize(("target", "expected"), [("#x", True), ("x", False), ("", False)])
def test_is_channel_name(target: str, expected: bool) -> None:
    assert is_channel_name(target) is expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("@#x", ("@", "#x")),
        ("+#x", ("+", "#x")),
        ("@+#x", ("+", "#x")),
        ("+@#x", ("+", "#x")),
        ("#x", ("", "#x")),
        ("@nick", ("", "@nick")),
        ("@", ("", "@")),
        ("", ("", "")),
    ],
)
def test_split_status(target: str, expected: tuple[str, str]) -> None:
    assert split_status(target) == expected
