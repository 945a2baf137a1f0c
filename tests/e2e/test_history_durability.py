"""History on disk: every message the server accepted is stored before a SIGTERM'd
``greenchat-serve --db FILE`` exits; after a restart CHATHISTORY returns all of them,
with the msgids and times their recipients saw."""

from __future__ import annotations

import re

import pytest
from transcript import IrcClient

pytestmark = pytest.mark.e2e

CAPS = "batch server-time message-tags draft/chathistory"
COUNT = 500
TAGGED = re.compile(r"^@(\S+) :alice!\S+ PRIVMSG #d :(line \d+)$")


def tags_of(text: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in text.split(";"))


def seen(line: str) -> tuple[str, str, str]:
    """(text, msgid, time) of one of alice's lines."""
    found = TAGGED.match(line)
    assert found, line
    tags = tags_of(found[1])
    return found[2], tags["msgid"], tags["time"]


def history(client: IrcClient) -> list[tuple[str, str, str]]:
    """Everything CHATHISTORY has for #d, paged back 100 at a time."""
    got: list[tuple[str, str, str]] = []
    ref = "*"
    while True:
        command = "LATEST #d *" if ref == "*" else f"BEFORE #d msgid={ref}"
        client.send(f"CHATHISTORY {command} 100")
        batch = client.expect(r"BATCH \+(\S+) chathistory #d")[1]
        page = []
        while not re.search(rf" BATCH -{batch}$", line := client.read_line() or ""):
            page.append(seen(re.sub(rf"(^@|;)batch={batch}(;|(?= ))", r"\1", line)))
        if not page:
            return got
        got = page + got
        ref = page[0][1]


def test_every_accepted_message_survives_sigterm_and_a_restart(serve, tmp_path):
    db = str(tmp_path / "history.db")
    first = serve("--db", db, "--no-web", "--flood-rate", "0")
    alice = IrcClient(first.port).register("alice").join("#d")
    bob = IrcClient(first.port).register_with_caps("bob", CAPS).join("#d")
    alice.send(*(f"PRIVMSG #d :line {n}" for n in range(COUNT)))
    received = [seen(bob.expect(rf"PRIVMSG #d :line {n}$").string) for n in range(COUNT)]
    assert first.stop() == 0  # SIGTERM, right after the last line went out

    second = serve("--db", db, "--no-web")
    carol = IrcClient(second.port).register_with_caps("carol", CAPS).join("#d")
    assert history(carol) == received
