"""SASL messages over AUTHENTICATE without sockets: chunking both ways, PLAIN."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenchat.protocol.sasl import (
    CHUNK,
    MAX_MESSAGE,
    BadMessage,
    Reassembly,
    TooLong,
    chunks,
    parse_plain,
)


@pytest.mark.parametrize("size", [0, 1, 299, 300, 301, 600, 1000])
def test_chunks_reassemble_to_the_message(size):
    message = bytes(range(256)) * 4
    message = message[:size]
    pieces = chunks(message)
    assert all(len(p) <= CHUNK for p in pieces)
    reader = Reassembly()
    results = [reader.feed(p) for p in pieces]
    assert results[:-1] == [None] * (len(pieces) - 1)
    assert results[-1] == message


def test_a_message_of_exactly_400_bytes_of_base64_ends_with_a_plus():
    message = b"x" * 300  # 400 bytes of base64
    assert chunks(message) == [base64.b64encode(message).decode(), "+"]
    assert chunks(b"") == ["+"]


def test_garbage_is_a_bad_message_and_the_next_one_starts_clean():
    reader = Reassembly()
    with pytest.raises(BadMessage):
        reader.feed("!!!not base64")
    assert reader.feed(base64.b64encode(b"ok").decode()) == b"ok"


def test_too_long_lines_and_messages():
    reader = Reassembly()
    with pytest.raises(TooLong):
        reader.feed("A" * (CHUNK + 1))
    with pytest.raises(TooLong):  # the limit is reached line by line
        for _ in range(MAX_MESSAGE // CHUNK + 1):
            reader.feed("A" * CHUNK)
    assert reader.feed("+") == b""  # and it starts clean after


def test_plain():
    assert parse_plain(b"\0alice\0secret pw") == ("", "alice", "secret pw")
    assert parse_plain(b"alice\0alice\0pw") == ("alice", "alice", "pw")
    for bad in (b"alice\0pw", b"\0\0pw", b"\0alice\0", b"\xff\0a\0b", b"a\0b\0c\0d"):
        with pytest.raises(BadMessage):
            parse_plain(bad)


@given(st.lists(st.text(max_size=500), max_size=30))
def test_any_lines_give_a_message_or_a_clean_error(lines):
    reader = Reassembly()
    for line in lines:
        try:
            result = reader.feed(line)
        except (BadMessage, TooLong):
            continue
        assert result is None or isinstance(result, bytes)
