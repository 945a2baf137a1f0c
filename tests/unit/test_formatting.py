"""Colour and style codes, stripped (+c), and CTCP recognised (+C)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenchat.protocol.formatting import has_formatting, is_ctcp, strip_formatting


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("plain", "plain"),
        ("\x02bold\x02 and \x1ditalic\x1d", "bold and italic"),
        ("\x0304red\x03 \x034,12blue on\x03", "red blue on"),
        ("\x03,5 a comma stays", ",5 a comma stays"),  # no foreground: not a colour pair
        ("\x0312345", "345"),  # two digits at most
        ("\x04ff0000hex\x04 \x04FF0000,00ff00both", "hex both"),
        ("\x1funder\x1estrike\x11mono\x16rev\x0freset", "understrikemonorevreset"),
        ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),
    ],
)
def test_strip_formatting(text: str, plain: str) -> None:
    assert strip_formatting(text) == plain
    assert has_formatting(text) is (text != plain)


@given(st.text())
def test_stripped_text_has_no_codes_left(text: str) -> None:
    assert not has_formatting(strip_formatting(text))


@pytest.mark.parametrize(
    ("text", "ctcp"),
    [
        ("\x01VERSION\x01", True),
        ("\x01PING 123\x01", True),
        ("\x01ACTION waves\x01", False),
        ("\x01action waves\x01", False),
        ("\x01ACTION\x01", False),  # the trailing \x01 is not part of the verb
        ("\x01ACTIONS\x01", True),
        ("\x01ACTION", False),
        ("hello \x01", False),
        ("", False),
    ],
)
def test_is_ctcp(text: str, ctcp: bool) -> None:
    assert is_ctcp(text) is ctcp
