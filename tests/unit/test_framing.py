"""LineFramer: line splitting independent of how the stream is chunked, and length caps."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenchat.protocol.framing import (
    MAX_LINE_BYTES,
    MAX_TAG_BYTES,
    MAX_UNTERMINATED_BYTES,
    FramingError,
    LineFramer,
    LineTooLong,
)

STREAM = b"PING a\r\nPRIVMSG #c :hi there\n\r\n\n@t=1 :n!u@h NOTICE x :y\r\nQUIT\n"
LINES = [b"PING a", b"PRIVMSG #c :hi there", b"@t=1 :n!u@h NOTICE x :y", b"QUIT"]


def feed_chunks(framer: LineFramer, chunks: list[bytes]) -> list[bytes | LineTooLong]:
    out: list[bytes | LineTooLong] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in pairwise(points)]


def body(n: int) -> bytes:
    """A message body of exactly ``n`` bytes (line ending excluded)."""
    return b"PRIVMSG #c :" + b"x" * (n - len(b"PRIVMSG #c :"))


def tags(n: int) -> bytes:
    """A tag section of exactly ``n`` bytes, '@' and trailing space included."""
    return b"@a=" + b"v" * (n - len(b"@a= ")) + b" "


# --- chunking -----------------------------------------------------------------


def test_whole_stream_at_once() -> None:
    framer = LineFramer()
    assert framer.feed(STREAM) == LINES
    assert framer.pending == 0


def test_byte_by_byte() -> None:
    framer = LineFramer()
    assert feed_chunks(framer, [bytes([b]) for b in STREAM]) == LINES
    assert framer.pending == 0


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
@settings(max_examples=300)
def test_random_chunk_splits(cuts: list[int]) -> None:
    framer = LineFramer()
    assert feed_chunks(framer, split_at(STREAM, cuts)) == LINES
    assert framer.pending == 0


def test_empty_feed_returns_nothing() -> None:
    framer = LineFramer()
    assert framer.feed(b"") == []
    assert framer.pending == 0


def test_trailing_partial_line_stays_pending() -> None:
    framer = LineFramer()
    assert framer.feed(b"PING a\r\nPRIV") == [b"PING a"]
    assert framer.pending == 4
    assert framer.feed(b"MSG #c") == []
    assert framer.pending == 10
    assert framer.feed(b" :hi\r\nNI") == [b"PRIVMSG #c :hi"]
    assert framer.feed(b"CK x\n") == [b"NICK x"]
    assert framer.pending == 0


def test_cr_split_from_lf_across_feeds() -> None:
    framer = LineFramer()
    assert framer.feed(b"PING\r") == []
    assert framer.feed(b"\n") == [b"PING"]


# --- line endings -------------------------------------------------------------


def test_crlf_and_bare_lf_both_end_lines() -> None:
    assert LineFramer().feed(b"A\r\nB\nC\r\n") == [b"A", b"B", b"C"]


def test_empty_lines_skipped() -> None:
    assert LineFramer().feed(b"\r\n\n\r\n\nA\n\n\r\n") == [b"A"]


def test_only_the_final_cr_is_stripped() -> None:
    # A stray CR inside a line is kept: the parser rejects it later.
    assert LineFramer().feed(b"A\rB\r\r\n") == [b"A\rB\r"]


def test_bare_cr_does_not_end_a_line() -> None:
    framer = LineFramer()
    assert framer.feed(b"A\rB\r") == []
    assert framer.pending == 4


# --- length caps --------------------------------------------------------------


def test_body_of_512_bytes_with_crlf_is_fine() -> None:
    line = body(MAX_LINE_BYTES - 2)
    assert LineFramer().feed(line + b"\r\n") == [line]


def test_body_over_512_bytes_is_dropped_and_stream_goes_on() -> None:
    line = body(MAX_LINE_BYTES - 1)
    out = LineFramer().feed(b"A\r\n" + line + b"\r\nB\r\n")
    assert out == [b"A", LineTooLong(len(line), tags_too_long=False), b"B"]


def test_overlong_body_with_bare_lf_counts_crlf() -> None:
    line = body(MAX_LINE_BYTES - 1)
    assert LineFramer().feed(line + b"\n") == [LineTooLong(len(line), False)]


def test_overlong_line_fed_byte_by_byte() -> None:
    line = body(2000)
    framer = LineFramer()
    out = feed_chunks(framer, [bytes([b]) for b in line + b"\r\nNEXT\r\n"])
    assert out == [LineTooLong(len(line), False), b"NEXT"]


def test_tag_section_at_limit_is_fine() -> None:
    line = tags(MAX_TAG_BYTES) + b"PING"
    assert LineFramer().feed(line + b"\r\n") == [line]


def test_tag_section_over_limit_is_dropped() -> None:
    line = tags(MAX_TAG_BYTES + 1) + b"PING"
    out = LineFramer().feed(line + b"\r\nNEXT\r\n")
    assert out == [LineTooLong(len(line), tags_too_long=True), b"NEXT"]


def test_tags_only_line_over_limit_is_dropped() -> None:
    line = b"@a=" + b"v" * MAX_TAG_BYTES
    assert LineFramer().feed(line + b"\n") == [LineTooLong(len(line), True)]


def test_long_tags_plus_full_body_is_fine() -> None:
    line = tags(8000) + body(MAX_LINE_BYTES - 2)
    assert LineFramer().feed(line + b"\r\n") == [line]


def test_tags_within_limit_but_body_too_long() -> None:
    line = tags(8000) + body(MAX_LINE_BYTES - 1)
    assert LineFramer().feed(line + b"\r\n") == [LineTooLong(len(line), False)]


def test_custom_limits() -> None:
    framer = LineFramer(max_line=10, max_tags=8, max_unterminated=30)
    out = framer.feed(b"12345678\r\n123456789\r\n@a=1234 X\r\n@a=12345 X\r\n")
    assert out == [
        b"12345678",
        LineTooLong(9, False),
        b"@a=1234 X",
        LineTooLong(10, True),
    ]
    with pytest.raises(FramingError):
        framer.feed(b"x" * 31)


# --- unterminated data ----------------------------------------------------------


def test_unterminated_at_limit_is_pending() -> None:
    framer = LineFramer()
    assert framer.feed(b"x" * MAX_UNTERMINATED_BYTES) == []
    assert framer.pending == MAX_UNTERMINATED_BYTES


def test_unterminated_over_limit_raises() -> None:
    framer = LineFramer()
    with pytest.raises(FramingError):
        framer.feed(b"A\r\n" + b"x" * (MAX_UNTERMINATED_BYTES + 1))
    assert framer.pending == 0


def test_unterminated_over_limit_byte_by_byte_raises() -> None:
    framer = LineFramer()
    for _ in range(MAX_UNTERMINATED_BYTES):
        assert framer.feed(b"x") == []
    with pytest.raises(FramingError):
        framer.feed(b"x")


def test_unterminated_over_limit_in_chunks_raises() -> None:
    framer = LineFramer()
    chunk = b"x" * 1000
    with pytest.raises(FramingError):
        for _ in range(MAX_UNTERMINATED_BYTES // len(chunk) + 1):
            framer.feed(chunk)


def test_framing_error_is_not_line_too_long() -> None:
    assert issubclass(FramingError, Exception)
    assert not isinstance(LineTooLong(1, False), Exception)


# --- property: chunking never changes the result ----------------------------------

_line_bytes = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.integers(min_value=500, max_value=700).map(body),
    st.integers(min_value=8100, max_value=8300).map(lambda n: tags(n) + b"PING"),
)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_line_bytes, max_size=8))
    endings = draw(st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=len(lines)))
    tail = draw(st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")))
    return b"".join(a + b for a, b in zip(lines, endings, strict=False)) + tail


@given(streams(), st.lists(st.integers(min_value=0, max_value=20000), max_size=30))
@settings(max_examples=200)
def test_chunking_is_invisible(data: bytes, cuts: list[int]) -> None:
    whole = LineFramer()
    expected = whole.feed(data)
    chunked = LineFramer()
    cuts = [c % (len(data) + 1) for c in cuts]
    assert feed_chunks(chunked, split_at(data, cuts)) == expected
    assert chunked.pending == whole.pending
    for item in expected:
        if isinstance(item, bytes):
            assert item and b"\n" not in item
