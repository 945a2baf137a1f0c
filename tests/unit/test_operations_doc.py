"""docs/operations.md documents every setting with its real default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from greenchat.server.config import OPTIONS, ServerConfig

DOC = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
SETTINGS = DOC.split("## What a client sees")[0]  # the settings table, not the limits one
ROWS = {m[1]: m[2] for m in re.finditer(r"^\| `([a-z-]+)` \| ([^|]+) \|", SETTINGS, re.M)}


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_every_option_has_a_row_with_its_default(option):
    assert option.name in ROWS, f"{option.name} is missing from docs/operations.md"
    default = getattr(ServerConfig(), option.attr)
    shown = ROWS[option.name].strip()
    if default in (None, {}, []):
        assert shown == "none"
    elif isinstance(default, bool):
        assert shown == f"`{str(default).lower()}`"
    elif isinstance(default, list):
        assert shown == f"`{','.join(default)}`"
    elif isinstance(default, float) and default.is_integer():
        assert shown == f"`{int(default)}`"
    else:
        assert shown == f"`{default}`"


def test_no_row_names_an_option_that_does_not_exist():
    names = {o.name for o in OPTIONS}
    assert set(ROWS) <= names, set(ROWS) - names
