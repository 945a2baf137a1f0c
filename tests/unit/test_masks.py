"""Wildcard masks: the irc-parser-tests vectors, case mapping, normalization."""

from __future__ import annotations

import time

import pytest
from parser_tests.data import mask_match

from greenchat.protocol.casemap import casefold
from greenchat.protocol.masks import (
    account_glob,
    match_mask,
    normalize_ban,
    normalize_mask,
    parse_ban,
)

_VECTORS = [
    (case["mask"], name, expected)
    for case in mask_match["tests"]
    for key, expected in (("matches", True), ("fails", False))
    for name in case.get(key, [])
]


@pytest.mark.parametrize(("mask", "name", "expected"), _VECTORS)
def test_parser_tests_vectors(mask: str, name: str, expected: bool) -> None:
    assert match_mask(mask, name) is expected


def test_every_vector_file_case_is_used() -> None:
    assert len(_VECTORS) == sum(
        len(c.get("matches", [])) + len(c.get("fails", [])) for c in mask_match["tests"]
    )


@pytest.mark.parametrize(
    ("mask", "name", "expected"),
    [
        ("*", "", True),
        ("*", "a!b@c", True),
        ("", "", True),
        ("", "a", False),
        ("?", "", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "acb", False),
        ("*ab", "aab", True),
        ("ab*ab", "ab", False),
        ("ab*ab", "abab", True),
        ("a**?", "ab", True),
        ("a.b", "aXb", False),  # regex characters are literal
        ("a+", "aa", False),
    ],
)
def test_wildcards(mask: str, name: str, expected: bool) -> None:
    assert match_mask(mask, name) is expected


@pytest.mark.parametrize(
    ("mask", "name"),
    [
        ("NICK!*@*", "nick!u@h"),
        ("nick!*@*", "NiCk!u@h"),
        ("nick[1]!*@*", "NICK{1}!u@h"),  # rfc1459: [ ] \ ~ fold to { } | ^
        ("a\\b~!*@*", "A|B^!u@h"),
        ("*!*@HOST.example", "x!y@host.EXAMPLE"),
    ],
)
def test_rfc1459_case_mapping(mask: str, name: str) -> None:
    assert match_mask(mask, name)


def test_pathological_mask_is_fast() -> None:
    mask = "*a" * 40 + "*b"
    name = "a" * 400
    start = time.perf_counter()
    assert not match_mask(mask, name)
    assert time.perf_counter() - start < 0.05


@pytest.mark.parametrize(
    ("mask", "normal"),
    [
        ("nick", "nick!*@*"),
        ("nick!user", "nick!user@*"),
        ("nick!user@host", "nick!user@host"),
        ("*@host", "*!*@host"),
        ("user@host", "*!user@host"),
        ("!user@", "*!user@*"),
        ("nick!", "nick!*@*"),
        ("host.example.com", "*!*@host.example.com"),
        ("2001:db8::1", "*!*@2001:db8::1"),
        ("*", "*!*@*"),
        ("*!*@*", "*!*@*"),
    ],
)
def test_normalize(mask: str, normal: str) -> None:
    assert normalize_mask(mask) == normal


def test_account_masks_are_kept_and_name_the_account_glob():
    assert normalize_mask("$a:Alice") == "$a:Alice"
    assert normalize_mask("~a:ali*") == "~a:ali*"
    assert account_glob("$a:Alice") == "Alice"
    assert account_glob("~A:ali*") == "ali*"
    assert account_glob("$a") == "*"
    assert account_glob("alice!*@*") is None
    assert account_glob("$alice") is None  # a nick that starts with $? not an account mask


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("m:bob", "m:bob!*@*"),
        ("M:*@host.example", "m:*!*@host.example"),
        ("m:U:*", "m:U:*!*@*"),
        ("u:bob", "U:bob!*@*"),
        ("a:Alice", "a:Alice"),
        ("m:a:alice", "m:a:alice"),
        ("a", "a!*@*"),  # a lone letter is a nick
        ("m:", "*!*@m:"),  # no mask after the letter: a host, as before
    ],
)
def test_normalize_ban(given: str, stored: str) -> None:
    assert normalize_ban(given) == stored


@pytest.mark.parametrize(
    ("mask", "prefix", "account", "matches", "mute"),
    [
        ("bob!*@*", "Bob!~b@h", "", True, False),
        ("m:bob!*@*", "bob!~b@h", "", True, True),
        ("a:al*", "x!y@z", "Alice", True, False),
        ("a:al*", "alice!y@z", "", False, False),
        ("U:*!*@*", "x!y@z", "", True, False),
        ("U:*!*@*", "x!y@z", "acct", False, False),
        ("m:U:*!*@*", "x!y@z", "", True, True),
        ("u:*!*@*", "x!y@z", "", True, False),  # as the channel keeps it: casefolded
        ("$a", "x!y@z", "acct", True, False),
    ],
)
def test_parse_ban_matches(mask, prefix, account, matches, mute) -> None:
    ban = parse_ban(mask)
    assert ban.mute is mute
    assert ban.matches(casefold(prefix), account) is matches
