"""pyproject.toml stays in the form that installs quietly (the first `make serve`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression():
    # The table form ({ text = "MIT" }) makes setuptools print deprecation blocks.
    assert PYPROJECT["project"]["license"] == "MIT"
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]  # reads that form


def test_editable_install_is_a_plain_path_entry():
    # With the package at the root and no package-dir, setuptools installs an import
    # finder and prints a warning block about folders shadowing the package.
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"": "."}


def test_console_scripts():
    assert PYPROJECT["project"]["scripts"] == {
        "greenchat-serve": "greenchat.cli:serve_main",
        "greenchat-join": "greenchat.cli:join_main",
    }
