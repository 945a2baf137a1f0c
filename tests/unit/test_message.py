"""Parsing and serializing IRC messages: shared vectors, injection guards, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parser_tests.data import msg_join, msg_split, userhost_split

from greenchat.protocol.message import (
    InvalidMessage,
    Message,
    escape_tag_value,
    parse,
    parse_tags,
    serialize,
    split_source,
    unescape_tag_value,
)


def _vector_id(vector: dict) -> str:
    return vector.get("desc") or vector.get("input") or vector.get("source") or "?"


def _atoms_message(atoms: dict) -> Message:
    return Message(
        command=atoms["verb"],
        params=tuple(atoms.get("params") or ()),
        source=atoms.get("source"),
        tags=dict(atoms.get("tags") or {}),
    )


# --- shared vectors (irc-parser-tests) ---------------------------------------


@pytest.mark.parametrize("vector", msg_split["tests"], ids=_vector_id)
def test_msg_split_vectors(vector: dict) -> None:
    msg = parse(vector["input"])
    atoms = vector["atoms"]
    assert msg.tags == (atoms.get("tags") or {})
    assert msg.source == atoms.get("source")
    assert msg.command == atoms["verb"]
    assert list(msg.params) == (atoms.get("params") or [])


@pytest.mark.parametrize("vector", msg_join["tests"], ids=_vector_id)
def test_msg_join_vectors(vector: dict) -> None:
    assert serialize(_atoms_message(vector["atoms"])) in vector["matches"]


@pytest.mark.parametrize("vector", msg_join["tests"], ids=_vector_id)
def test_msg_join_vectors_parse_back(vector: dict) -> None:
    msg = _atoms_message(vector["atoms"])
    assert parse(serialize(msg)) == msg


@pytest.mark.parametrize("vector", userhost_split["tests"], ids=_vector_id)
def test_userhost_split_vectors(vector: dict) -> None:
    atoms = vector["atoms"]
    expected = (atoms.get("nick", ""), atoms.get("user", ""), atoms.get("host", ""))
    assert split_source(vector["source"]) == expected


def test_split_source_server_name() -> None:
    assert split_source("irc.example.com") == ("irc.example.com", "", "")


# --- parse ------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    ["", " ", "   ", ":src", ":src ", "@a=b", "@a=b :src", "@a=b :src  ", " :trailing"],
)
def test_parse_rejects_lines_without_command(line: str) -> None:
    with pytest.raises(InvalidMessage):
        parse(line)


@pytest.mark.parametrize(
    "line",
    [
        "PRIVMSG #c :a\rb",
        "PRIVMSG #c :a\nb",
        "PRIVMSG #c :a\0b",
        "PRIV\0MSG #c",
        ":sr\rc PING",
        "@a=b\0 PING",
        "PING\r",
    ],
)
def test_parse_rejects_cr_lf_nul(line: str) -> None:
    with pytest.raises(InvalidMessage):
        parse(line)


def test_parse_collapses_runs_of_spaces() -> None:
    msg = parse("  @t=1   :nick!u@h   PRIVMSG    #chan    :hello  there ")
    assert msg == Message("PRIVMSG", ("#chan", "hello  there "), "nick!u@h", {"t": "1"})


def test_parse_trailing_only() -> None:
    assert parse("PING :") == Message("PING", ("",))
    assert parse("PING ::") == Message("PING", (":",))


def test_parse_keeps_command_case() -> None:
    assert parse("privmsg x y").command == "privmsg"


def test_parse_tags_skips_empty_items_and_keys() -> None:
    assert parse_tags(";;a=1;;=orphan;b") == {"a": "1", "b": ""}


def test_parse_tags_later_duplicates_win() -> None:
    assert parse_tags("a=1;a=2;a") == {"a": ""}


def test_invalid_message_is_a_value_error() -> None:
    assert issubclass(InvalidMessage, ValueError)


# --- tag escaping -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("", ""),
        ("plain", "plain"),
        ("a;b", "a\\:b"),
        ("a b", "a\\sb"),
        ("a\\b", "a\\\\b"),
        ("a\rb\nc", "a\\rb\\nc"),
        ("; \\\r\n", "\\:\\s\\\\\\r\\n"),
    ],
)
def test_escape_tag_value(raw: str, escaped: str) -> None:
    assert escape_tag_value(raw) == escaped
    assert unescape_tag_value(escaped) == raw


@pytest.mark.parametrize(
    ("escaped", "raw"),
    [("\\b", "b"), ("x\\", "x"), ("\\", ""), ("\\\\n", "\\n"), ("\\:\\s", "; ")],
)
def test_unescape_tag_value_lenient_cases(escaped: str, raw: str) -> None:
    assert unescape_tag_value(escaped) == raw


@given(st.text())
@settings(max_examples=300)
def test_tag_escaping_round_trips(value: str) -> None:
    escaped = escape_tag_value(value)
    assert not any(ch in escaped for ch in "; \r\n")
    assert unescape_tag_value(escaped) == value


# --- serialize ----------------------------------------------------------------


def test_serialize_full_message() -> None:
    msg = Message("PRIVMSG", ("#chan", "hi there"), "n!u@h", {"time": "x", "+draft/r": ""})
    assert serialize(msg) == "@time=x;+draft/r :n!u@h PRIVMSG #chan :hi there"


@pytest.mark.parametrize(
    ("last", "wire"),
    [("word", "word"), ("", ":"), ("two words", ":two words"), (":colon", "::colon")],
)
def test_serialize_last_param_colon_only_when_needed(last: str, wire: str) -> None:
    assert serialize(Message("CMD", ("a", last))) == f"CMD a {wire}"


def test_to_bytes_appends_crlf_and_encodes_utf8() -> None:
    assert Message("PRIVMSG", ("#c", "héllo")).to_bytes() == "PRIVMSG #c héllo\r\n".encode()


@pytest.mark.parametrize("bad", ["\r", "\n", "\0"])
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda b: Message("PING", source=f"sr{b}c"), id="source"),
        pytest.param(lambda b: Message("PING", (f"a{b}b", "x")), id="middle"),
        pytest.param(lambda b: Message("PING", (f"a{b}b",)), id="last"),
        pytest.param(lambda b: Message("PING", ("x", f"some {b}text")), id="trailing"),
        pytest.param(lambda b: Message("PING", (f"{b}",)), id="last-alone"),
        pytest.param(lambda b: Message("PING", tags={f"k{b}": "v"}), id="tag-key"),
        pytest.param(lambda b: Message("PING", tags={f"k{b}": ""}), id="tag-key-novalue"),
        pytest.param(lambda b: Message(f"PING{b}"), id="command"),
        pytest.param(lambda b: Message(f"{b}PING"), id="command-leading"),
    ],
)
def test_serialize_refuses_line_breaks_and_nul(build, bad: str) -> None:
    with pytest.raises(InvalidMessage):
        serialize(build(bad))


def test_serialize_refuses_nul_in_tag_value() -> None:
    with pytest.raises(InvalidMessage):
        serialize(Message("PING", tags={"k": "a\0b"}))


def test_serialize_escapes_cr_lf_in_tag_value() -> None:
    wire = serialize(Message("PING", tags={"k": "a\r\nb"}))
    assert "\r" not in wire and "\n" not in wire
    assert parse(wire).tags == {"k": "a\r\nb"}


@pytest.mark.parametrize("param", ["", "two words", " ", ":colon", ":"])
def test_serialize_refuses_bad_middle_param(param: str) -> None:
    with pytest.raises(InvalidMessage):
        serialize(Message("CMD", (param, "last")))


@pytest.mark.parametrize("source", ["", "a b", " "])
def test_serialize_refuses_bad_source(source: str) -> None:
    with pytest.raises(InvalidMessage):
        serialize(Message("PING", source=source))


@pytest.mark.parametrize(
    "command", ["", "1", "12", "1234", "PRIV MSG", "PRIV1", "12A", ":PING", "PÏNG", "PING\n"]
)
def test_serialize_refuses_invalid_command(command: str) -> None:
    with pytest.raises(InvalidMessage):
        serialize(Message(command))


@pytest.mark.parametrize("command", ["PING", "privmsg", "001", "433", "X"])
def test_serialize_accepts_valid_command(command: str) -> None:
    assert serialize(Message(command)) == command


@pytest.mark.parametrize(
    "key",
    ["", "+", "a b", "a=b", "a;b", "a\n", "/a", "vendor/", "a/b/c", "+/a", "é", "a_b", "@a"],
)
def test_serialize_refuses_invalid_tag_key(key: str) -> None:
    with pytest.raises(InvalidMessage):
        serialize(Message("PING", tags={key: "v"}))


@pytest.mark.parametrize(
    "key", ["a", "time", "+typing", "draft/label", "+example.com/foo-bar", "a-1", "x.y-z/k"]
)
def test_serialize_accepts_valid_tag_key(key: str) -> None:
    assert parse(serialize(Message("PING", tags={key: "v"}))).tags == {key: "v"}


# --- property tests -----------------------------------------------------------

_NO_BREAKS = st.characters(blacklist_characters="\r\n\0")
_NO_BREAKS_OR_SPACE = st.characters(blacklist_characters="\r\n\0 ")
_KEY_PART = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
    min_size=1,
    max_size=12,
)
_VENDOR = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=12)

tag_keys = st.builds(
    lambda client, vendor, name: ("+" if client else "") + (f"{vendor}/" if vendor else "") + name,
    st.booleans(),
    st.none() | _VENDOR,
    _KEY_PART,
)
tag_values = st.text(alphabet=st.characters(blacklist_characters="\0"), max_size=30)
sources = st.none() | st.text(alphabet=_NO_BREAKS_OR_SPACE, min_size=1, max_size=30)
commands = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10
) | st.from_regex(r"[0-9]{3}", fullmatch=True)
middle_params = st.text(alphabet=_NO_BREAKS_OR_SPACE, min_size=1, max_size=20).filter(
    lambda p: not p.startswith(":")
)
last_params = st.text(alphabet=_NO_BREAKS, max_size=40)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    params = draw(st.lists(middle_params, max_size=5))
    if draw(st.booleans()):
        params.append(draw(last_params))
    return Message(
        command=draw(commands),
        params=tuple(params),
        source=draw(sources),
        tags=draw(st.dictionaries(tag_keys, tag_values, max_size=4)),
    )


@given(messages())
@settings(max_examples=300)
def test_serialize_then_parse_round_trips(msg: Message) -> None:
    wire = serialize(msg)
    assert "\r" not in wire and "\n" not in wire and "\0" not in wire
    assert parse(wire) == msg


@given(st.text(max_size=80))
@settings(max_examples=300)
def test_parse_returns_message_or_raises_invalid(text: str) -> None:
    try:
        msg = parse(text)
    except InvalidMessage:
        return
    assert isinstance(msg, Message)
    assert msg.command


@given(st.text(alphabet=" :@;=\\abc\r\n\0", max_size=40))
@settings(max_examples=300)
def test_parse_on_syntax_heavy_text(text: str) -> None:
    try:
        msg = parse(text)
    except InvalidMessage:
        return
    assert isinstance(msg, Message)
    assert " " not in msg.command
