"""docs/conformance.md stays true to the code: everything listed, every test real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from greenchat.server.commands import COMMANDS
from greenchat.server.config import ServerConfig
from greenchat.server.server import SUPPORTED_CAPS, ChatServer
from greenchat.server.welcome import (
    CHANNEL_MODES,
    KEY_MODES,
    LIMIT_MODES,
    LIST_MODES,
    PREFIX_MODES,
    USER_MODES,
    isupport_tokens,
)

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "conformance.md").read_text()


def rows_of(section: str) -> dict[str, str]:
    """First-column name -> whole row, for the table under ``## section``."""
    body = DOC.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in body.splitlines():
        match = re.match(r"^\| `([^`|]+)` \|", line)  # names are in backticks
        if match:
            rows[match.group(1)] = line
    return rows


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_documented(name):
    assert name in rows_of("Commands")


@pytest.mark.parametrize("cap", sorted(SUPPORTED_CAPS))
def test_every_capability_is_documented(cap):
    assert cap in rows_of("IRCv3 capabilities")


def test_every_isupport_token_is_documented():
    server = ChatServer(ServerConfig(port=0))
    tokens = {token.split("=", 1)[0] for token in isupport_tokens(server)}
    assert tokens == set(rows_of("ISUPPORT (005)"))


def test_every_mode_is_documented():
    assert {m.lstrip("+") for m in rows_of("Channel modes")} == set(
        LIST_MODES + KEY_MODES + LIMIT_MODES + CHANNEL_MODES + PREFIX_MODES
    )
    assert {m.lstrip("+") for m in rows_of("User modes")} == set(USER_MODES)


def test_every_named_test_exists():
    named = set(re.findall(r"`(test_\w+\.py)::(test_\w+)`", DOC))
    assert named
    sources = {path.name: path.read_text() for path in (ROOT / "tests").rglob("test_*.py")}
    missing = [
        f"{file}::{func}"
        for file, func in sorted(named)
        if file not in sources or not re.search(rf"^def {func}\(", sources[file], re.M)
    ]
    assert not missing
