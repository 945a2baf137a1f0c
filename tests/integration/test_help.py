"""HELP and HELPOP: a topic for every command of the command table (704/705/706), the
index, and 524 for an unknown topic."""

from __future__ import annotations

import re

import pytest

from greenchat.server.commands import COMMANDS
from greenchat.server.commands.table import command


def read_topic(client, subject: str) -> list[str]:
    """The text of one help reply to helpme: 704's, then each 705's, up to the 706."""
    first = client.expect(rf" 704 helpme {re.escape(subject)} :(.*)$").group(1)
    lines = [first]
    while " 706 " not in (line := client.read_line()):
        assert f" 705 helpme {subject} :" in line, line
        lines.append(line.split(f" {subject} :", 1)[1])
    assert line.endswith(f" 706 helpme {subject} :End of /HELP"), line
    return lines


def test_help_alone_lists_every_command(connect):
    client = connect("helpme")
    client.send("HELP")
    lines = read_topic(client, "*")
    assert lines[0] == "** Help System **"
    listed = " ".join(lines[3:]).split()
    assert listed == sorted(COMMANDS)


def test_every_command_has_a_topic_with_its_syntax(connect):
    client = connect("helpme")
    for name, spec in sorted(COMMANDS.items()):
        client.send(f"HELP {name.lower()}")
        lines = read_topic(client, name)
        assert lines[0] == spec.help.split("\n")[0] and lines[0].startswith(name), lines
        assert lines[1] == "" and len(lines) > 2
    client.send("HELPOP kill")
    assert read_topic(client, "KILL")[-1] == "Server operators only."


def test_an_unknown_topic_gets_524(connect):
    client = connect("helpme")
    client.send("HELP frobnicate")
    client.expect(r" 524 helpme frobnicate :No help available on this topic$")


def test_a_command_without_help_is_refused():
    with pytest.raises(ValueError, match="needs help"):
        command("NOHELP")(lambda server, conn, msg: None)
    assert "NOHELP" not in COMMANDS
