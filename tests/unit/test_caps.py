"""CapNegotiation: LS versions, chunking, atomic REQ, LIST and END."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenchat.protocol.caps import CapNegotiation

SUPPORTED = {
    "cap-notify": "",
    "message-tags": "",
    "multi-prefix": "",
    "sasl": "PLAIN,EXTERNAL",
    "server-time": "",
}


def negotiation(supported: dict[str, str] | None = None) -> CapNegotiation:
    return CapNegotiation(SUPPORTED if supported is None else supported)


def many_caps(n: int) -> dict[str, str]:
    return {f"vendor.example/cap-number-{i:03d}": ("v" * (i % 7)) for i in range(n)}


def words_of(replies: list[tuple[str, ...]]) -> list[str]:
    return [w for reply in replies for w in reply[-1].split()]


def test_initial_state() -> None:
    caps = negotiation()
    assert caps.version == 0
    assert not caps.in_progress
    assert caps.enabled == set()


def test_supported_is_shared_and_never_modified() -> None:
    # One mapping serves every connection (memory per idle client matters).
    source = dict(SUPPORTED)
    caps = CapNegotiation(source)
    caps.handle("LS", ["302"])
    caps.handle("REQ", ["multi-prefix"])
    assert caps.supported is source and source == SUPPORTED


# --- LS -----------------------------------------------------------------------


def test_ls_301_lists_names_without_values() -> None:
    caps = negotiation()
    assert caps.handle("LS", []) == [
        ("LS", "cap-notify message-tags multi-prefix sasl server-time")
    ]
    assert caps.version == 301
    assert caps.in_progress
    assert caps.enabled == set()


def test_ls_302_lists_values_and_implies_cap_notify() -> None:
    caps = negotiation()
    replies = caps.handle("LS", ["302"])
    assert replies == [
        ("LS", "cap-notify message-tags multi-prefix sasl=PLAIN,EXTERNAL server-time")
    ]
    assert caps.version == 302
    assert caps.in_progress
    assert caps.enabled == {"cap-notify"}


def test_ls_302_without_cap_notify_support_enables_nothing() -> None:
    caps = negotiation({"multi-prefix": "", "sasl": "PLAIN"})
    assert caps.handle("LS", ["302"]) == [("LS", "multi-prefix sasl=PLAIN")]
    assert caps.enabled == set()


def test_ls_higher_version_is_treated_as_302() -> None:
    caps = negotiation()
    assert caps.handle("LS", ["303"]) == negotiation().handle("LS", ["302"])
    assert "cap-notify" in caps.enabled


def test_ls_version_never_goes_down() -> None:
    caps = negotiation()
    caps.handle("LS", ["302"])
    caps.handle("LS", [])
    assert caps.version == 302
    assert caps.handle("LS", ["301"])[0][1].count("=") == 1


@pytest.mark.parametrize("arg", ["abc", "", "-302", "30 2", "³", "٣٠٢", "9" * 5000])
def test_ls_malformed_version_means_301(arg: str) -> None:
    caps = negotiation()
    assert caps.handle("LS", [arg]) == [
        ("LS", "cap-notify message-tags multi-prefix sasl server-time")
    ]
    assert caps.version == 301


def test_ls_with_no_caps() -> None:
    assert negotiation({}).handle("LS", ["302"]) == [("LS", "")]


@pytest.mark.parametrize("sub", ["ls", "Ls", "LS"])
def test_subcommand_is_case_insensitive(sub: str) -> None:
    assert negotiation().handle(sub, []) is not None


# --- chunking -----------------------------------------------------------------


def test_ls_302_chunks_with_continuation_marker() -> None:
    supported = many_caps(60)
    caps = negotiation(supported)
    replies = caps.handle("LS", ["302"])
    assert len(replies) > 1
    for reply in replies[:-1]:
        assert reply[:2] == ("LS", "*")
        assert len(reply) == 3
    assert len(replies[-1]) == 2 and replies[-1][0] == "LS"
    for reply in replies:
        assert 0 < len(reply[-1]) <= 400
    expected = [f"{n}={v}" if v else n for n, v in sorted(supported.items())]
    assert words_of(replies) == expected


def test_ls_301_never_chunks() -> None:
    supported = many_caps(60)
    replies = negotiation(supported).handle("LS", [])
    assert len(replies) == 1
    assert replies[0][0] == "LS" and "*" not in replies[0]
    assert replies[0][1].split() == sorted(supported)


def test_oversized_single_cap_gets_its_own_line() -> None:
    huge = "x" * 450
    replies = negotiation({"a": "", huge: "", "b": ""}).handle("LS", ["302"])
    assert words_of(replies) == ["a", "b", huge]
    assert all(reply[-1] for reply in replies)


def test_list_302_chunks_too() -> None:
    supported = many_caps(60)
    caps = negotiation(supported)
    caps.handle("LS", ["302"])
    names = list(supported)
    for start in range(0, len(names), 10):  # each REQ must fit one line
        assert caps.handle("REQ", [" ".join(names[start : start + 10])])[0][0] == "ACK"
    replies = caps.handle("LIST", [])
    assert len(replies) > 1
    assert all(reply[:2] == ("LIST", "*") for reply in replies[:-1])
    assert words_of(replies) == sorted(supported)


# --- REQ ----------------------------------------------------------------------


def test_req_too_long_to_echo_is_naked() -> None:
    caps = negotiation()
    text = " ".join(["batch"] * 83)  # 497 bytes: its ACK would not fit a 512-byte line
    assert caps.handle("REQ", [text]) == [("NAK", text)]
    assert not caps.enabled


def test_req_acks_and_enables() -> None:
    caps = negotiation()
    assert caps.handle("REQ", ["multi-prefix server-time"]) == [("ACK", "multi-prefix server-time")]
    assert caps.enabled == {"multi-prefix", "server-time"}
    assert caps.in_progress


def test_req_unknown_cap_naks_whole_request() -> None:
    caps = negotiation()
    assert caps.handle("REQ", ["multi-prefix bogus server-time"]) == [
        ("NAK", "multi-prefix bogus server-time")
    ]
    assert caps.enabled == set()
    assert caps.in_progress


def test_req_remove_with_dash() -> None:
    caps = negotiation()
    caps.handle("REQ", ["multi-prefix server-time"])
    assert caps.handle("REQ", ["-multi-prefix"]) == [("ACK", "-multi-prefix")]
    assert caps.enabled == {"server-time"}


def test_req_add_and_remove_together() -> None:
    caps = negotiation()
    caps.handle("REQ", ["multi-prefix"])
    assert caps.handle("REQ", ["-multi-prefix sasl"]) == [("ACK", "-multi-prefix sasl")]
    assert caps.enabled == {"sasl"}


def test_req_remove_unknown_naks_and_keeps_state() -> None:
    caps = negotiation()
    caps.handle("REQ", ["multi-prefix"])
    assert caps.handle("REQ", ["-multi-prefix -bogus"]) == [("NAK", "-multi-prefix -bogus")]
    assert caps.enabled == {"multi-prefix"}


def test_req_remove_not_enabled_is_harmless() -> None:
    caps = negotiation()
    assert caps.handle("REQ", ["-sasl"]) == [("ACK", "-sasl")]
    assert caps.enabled == set()


def test_req_does_not_match_values() -> None:
    caps = negotiation()
    assert caps.handle("REQ", ["sasl=PLAIN"]) == [("NAK", "sasl=PLAIN")]
    assert caps.enabled == set()


def test_req_is_case_sensitive() -> None:
    assert negotiation().handle("REQ", ["SASL"]) == [("NAK", "SASL")]


@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([*SUPPORTED, "bogus", "other", "-"])),
        min_size=1,
        max_size=6,
    ),
    st.sets(st.sampled_from(sorted(SUPPORTED))),
)
@settings(max_examples=200)
def test_req_is_atomic(words: list[tuple[bool, str]], before: set[str]) -> None:
    caps = negotiation()
    caps.enabled = set(before)
    text = " ".join(("-" if remove else "") + name for remove, name in words)
    replies = caps.handle("REQ", [text])
    if all(name in SUPPORTED for _, name in words):
        adds = {name for remove, name in words if not remove}
        removes = {name for remove, name in words if remove}
        assert replies == [("ACK", text)]
        assert caps.enabled == (before | adds) - removes
    else:
        assert replies == [("NAK", text)]
        assert caps.enabled == before


# --- LIST and END -------------------------------------------------------------


def test_list_shows_enabled_caps() -> None:
    caps = negotiation()
    assert caps.handle("LIST", []) == [("LIST", "")]
    caps.handle("REQ", ["sasl multi-prefix"])
    assert caps.handle("LIST", []) == [("LIST", "multi-prefix sasl")]


def test_list_does_not_start_negotiation() -> None:
    caps = negotiation()
    caps.handle("LIST", [])
    assert not caps.in_progress


def test_end_clears_in_progress() -> None:
    caps = negotiation()
    caps.handle("LS", ["302"])
    caps.handle("REQ", ["sasl"])
    assert caps.handle("END", []) == []
    assert not caps.in_progress
    assert caps.enabled == {"cap-notify", "sasl"}


def test_end_without_negotiation() -> None:
    caps = negotiation()
    assert caps.handle("END", []) == []
    assert not caps.in_progress


@pytest.mark.parametrize(
    "sub", ["FOO", "NEW", "DEL", "ACK", "NAK", "", "chunked", "_ls", "__init__"]
)
def test_unknown_subcommand_returns_none(sub: str) -> None:
    caps = negotiation()
    assert caps.handle(sub, []) is None
    assert not caps.in_progress
    assert caps.enabled == set()
