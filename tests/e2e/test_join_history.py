"""The installed ``greenchat-join`` shows history and read markers, against the installed
``greenchat-serve`` on port 0: what was said before it joined, marked as history with
each line's own time; older lines with /history; the read marker after reconnecting
as the same account; the MARKREADs it sends, as another session of that account
sees them; unread lines of another window on the prompt; deleted messages.

The client runs interactively in a private tmux (tests/tmux_session.py), 120x30;
its screen is read with the pane's scrollback. Other people are raw sockets
(tests/transcript.py). Every wait is a poll with a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from join_screen import JoinScreen, join_screens
from tmux_session import DEADLINE
from transcript import IrcClient, register_account, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

PASSWORD = "history-secret-1"
BEGIN, END = "── history of #lobby ──", "── end of history ──"
MARKER = "── read up to here ──"


class Tmux(JoinScreen):
    """greenchat-join in a private tmux; ``screen()`` includes what scrolled away."""

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")

    def styled(self) -> str:
        """The visible pane with its escape sequences (dim, highlight...)."""
        return self.tmux("capture-pane", "-p", "-e", "-J", "-t", "t")

    def wait_input(self, pattern: str) -> str:
        return wait_for(self.input_line, pattern, "input line", DEADLINE)

    def type(self, text: str) -> None:
        self.send_text(text)
        self.wait_input(re.escape(text) + r"\s*$")
        self.keys("Enter")

    def wait_ready(self, channel: str = "#lobby") -> None:
        self.wait_screen(rf"-- users on {re.escape(channel)}: ")
        self.wait_input(rf"^{re.escape(channel)}( \[.*\])?> ?$")


@pytest.fixture
def join_tmux() -> Iterator[Callable[..., Tmux]]:
    """Factory: ``greenchat-join ARGS...`` in a private tmux; all killed afterwards."""
    yield from join_screens(Tmux)


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """Clean-ups registered during the test, run after it."""
    with contextlib.ExitStack() as cleanups:
        yield cleanups


@pytest.fixture
def server(serve):
    """``greenchat-serve --port 0`` without flood control (the talkers say a lot)."""
    return serve("--flood-rate", "0", "--log-level", "WARNING")


@pytest.fixture
def talker(server) -> Iterator[IrcClient]:
    """Someone in #lobby whose own lines come back with their time and msgid."""
    client = IrcClient(server.port).register_with_caps(
        "talker", "server-time echo-message message-tags"
    )
    client.join("#lobby")
    yield client
    client.close()


def say(client: IrcClient, *texts: str) -> dict[str, tuple[str, str]]:
    """Send each text to #lobby; text -> (server time, msgid) from the echoes."""
    client.send(*(f"PRIVMSG #lobby :{text}" for text in texts))
    said = {}
    for text in texts:
        echo = client.expect(rf"^@(\S+) :talker!\S+ PRIVMSG #lobby :{re.escape(text)}$")
        tags = dict(tag.split("=", 1) for tag in echo[1].split(";"))
        said[text] = (tags["time"], tags["msgid"])
    return said


def hhmm(server_time: str) -> str:
    """A server time as greenchat-join shows it: local HH:MM."""
    return datetime.fromisoformat(server_time).astimezone().strftime("%H:%M")


def block(screen: str, begin: str = BEGIN, nth: int = -1) -> list[str]:
    """The lines of the ``nth`` history block headed ``begin`` on the screen (the last
    one by default), up to its closing "── end of history..." separator."""
    lines = screen.splitlines()
    starts = [i for i, line in enumerate(lines) if line == begin]
    assert starts, f"no {begin!r} on the screen:\n{screen}"
    rest = lines[starts[nth] + 1 :]
    ends = [i for i, line in enumerate(rest) if line.startswith(END.rstrip(" ─"))]
    assert ends, f"the block under {begin!r} never ends:\n{screen}"
    return rest[: ends[0]]


def account_session(port: int, nick: str, account: str) -> IrcClient:
    """Another session of ``account`` (SASL PLAIN) that sees its MARKREAD broadcasts."""
    client = IrcClient(port)
    client.send("CAP LS 302", f"NICK {nick}", f"USER {nick} 0 * :{nick}")
    offered = client.read_cap_ls()
    assert "draft/read-marker" in offered, offered
    client.send("CAP REQ :sasl draft/read-marker server-time")
    client.expect(r" CAP \S+ ACK ")
    client.send("AUTHENTICATE PLAIN")
    client.expect(r"^AUTHENTICATE \+$")
    credentials = base64.b64encode(f"\0{account}\0{PASSWORD}".encode()).decode()
    client.send(f"AUTHENTICATE {credentials}")
    client.expect(r" 903 ")
    client.send("CAP END")
    client.expect(rf" 001 {nick} ")
    return client


def test_join_shows_what_was_said_before_as_history_with_its_times(
    server, talker, join_tmux
) -> None:
    said = say(talker, "first words", "second words, viewer", "third words")
    viewer = join_tmux("--port", str(server.port), "--nick", "viewer")
    with viewer.screen_on_failure():
        viewer.wait_ready()
        screen = viewer.wait_screen(rf"^{re.escape(END)}$")
        assert block(screen) == [
            f"{hhmm(when)} #lobby <talker> {text}" for text, (when, _) in said.items()
        ]
        # After the JOIN (and its names), before anything said from now on.
        assert screen.index("#lobby --> viewer joined") < screen.index(BEGIN)
        say(talker, "live words, viewer")
        screen = viewer.wait_screen(r"^\d\d:\d\d #lobby <talker> live words, viewer$")
        assert screen.index(END) < screen.index("live words")
        assert screen.count("second words") == 1
        # Dimmed, and not highlighted although it names viewer; the live line is.
        styled = {
            text: next(line for line in viewer.styled().splitlines() if text in line)
            for text in ("first words", "second words", "live words")
        }
        assert "\x1b[2m#lobby <talker> second words" in styled["second words"]
        assert "\x1b[1;7m" not in styled["second words"]
        assert "\x1b[1;7m#lobby <talker> live words" in styled["live words"]


def test_history_command_fetches_older_lines_until_there_are_none(
    server, talker, join_tmux
) -> None:
    said = say(talker, *(f"line {n:02d}" for n in range(60)))
    viewer = join_tmux("--port", str(server.port), "--nick", "viewer")
    with viewer.screen_on_failure():
        viewer.wait_ready()
        screen = viewer.wait_screen(rf"^{re.escape(END)}$")
        shown = [line.rsplit("> ", 1)[1] for line in block(screen)]
        assert shown == [f"line {n:02d}" for n in range(10, 60)]  # the last 50
        viewer.type("/history 5")
        more = "── earlier history of #lobby ──"
        screen = viewer.wait_screen(rf"^{re.escape(more)}$[\s\S]*^{re.escape(END)}$")
        lines = block(screen, more)
        assert lines == [f"{hhmm(said[f'line {n:02d}'][0])} #lobby <talker> line {n:02d}"
                         for n in range(5, 10)]  # fmt: skip
        viewer.type("/history 500")  # clamped to the server's 100: all that is left
        last = "── end of history: nothing earlier in #lobby ──"
        screen = viewer.wait_screen(rf"^{re.escape(last)}$")
        assert [line.rsplit("> ", 1)[1] for line in block(screen, more)] == [
            f"line {n:02d}" for n in range(5)
        ]
        viewer.type("/history")
        screen = viewer.wait_screen(r"^\d\d:\d\d -- no more history in #lobby$")
        for n in range(60):  # each line once
            assert len(re.findall(rf"<talker> line {n:02d}$", screen, re.M)) == 1, n


def test_history_in_a_private_window_and_on_a_server_without_history(
    server, talker, serve, join_tmux
) -> None:
    earlier = IrcClient(server.port).register("viewer")  # viewer's earlier visit
    talker.send("PRIVMSG viewer :are you there?")
    earlier.expect(r"PRIVMSG viewer :are you there\?$")
    earlier.send("QUIT")
    earlier.expect_closed()
    viewer = join_tmux("--port", str(server.port), "--nick", "viewer")
    with viewer.screen_on_failure():
        viewer.wait_ready()
        viewer.type("/msg talker")
        viewer.wait_input(r"^talker> ?$")
        viewer.type("/history")
        viewer.wait_screen(
            r"^── earlier history of talker ──$\n\d\d:\d\d \*talker\* are you there\?$"
        )
    bare = serve("--no-history", "--log-level", "WARNING")
    other = join_tmux("--port", str(bare.port), "--nick", "viewer")
    with other.screen_on_failure():
        other.wait_ready()
        other.type("/history")
        other.wait_screen(r"^\d\d:\d\d -- this server keeps no history$")
        assert "── history" not in other.screen()


def test_read_marker_markread_and_unread_across_sessions_of_an_account(
    server, talker, join_tmux, stack
) -> None:
    register_account(server.port, "dora", PASSWORD)
    watcher = account_session(server.port, "dorawatch", "dora")
    stack.callback(watcher.close)
    said = say(talker, "before 1", "before 2")
    args = ("--port", str(server.port), "--nick", "dora", "--sasl")
    first = join_tmux(*args, GREENCHAT_PASSWORD=PASSWORD)
    with first.screen_on_failure():
        first.wait_screen(r"-- You are now logged in as dora$")
        first.wait_ready()
        screen = first.wait_screen(rf"^{re.escape(END)}$")
        assert MARKER not in screen  # nothing read yet: no marker
        # Shown in the active window: read, up to the newest line shown.
        watcher.expect(rf"MARKREAD #lobby timestamp={said['before 2'][0]}$")
        said |= say(talker, "live 1")
        first.wait_screen(r"#lobby <talker> live 1$")
        # At most one MARKREAD every 2 s: this one may wait, but it comes.
        watcher.expect(rf"MARKREAD #lobby timestamp={said['live 1'][0]}$")
        first.type("/quit")
        assert first.exit_status() == 0
    said |= say(talker, "after 1", "after 2")
    second = join_tmux(*args, GREENCHAT_PASSWORD=PASSWORD)
    with second.screen_on_failure():
        second.wait_ready()
        screen = second.wait_screen(rf"^{re.escape(END)}$")
        texts = [line if line == MARKER else line.rsplit("> ", 1)[1] for line in block(screen)]
        assert texts == ["before 1", "before 2", "live 1", MARKER, "after 1", "after 2"]
        watcher.expect(rf"MARKREAD #lobby timestamp={said['after 2'][0]}$")
        # Another window: what is said in #lobby meanwhile is unread there...
        second.type("/join #dev")
        second.wait_ready("#dev")
        said |= say(talker, "while away")
        second.wait_input(r"^#dev \[#lobby 1\]> ?$")
        # ...until the user switches back: read, and the server told.
        second.type("/join #lobby")
        second.wait_input(r"^#lobby> ?$")
        watcher.expect(rf"MARKREAD #lobby timestamp={said['while away'][0]}$")
        # Read on another device: the server's MARKREAD clears the unread mark here.
        second.type("/join #dev")
        second.wait_input(r"^#dev> ?$")
        said |= say(talker, "read elsewhere")
        second.wait_input(r"^#dev \[#lobby 1\]> ?$")
        watcher.send(f"MARKREAD #lobby timestamp={said['read elsewhere'][0]}")
        watcher.expect(rf"MARKREAD #lobby timestamp={said['read elsewhere'][0]}$")
        second.wait_input(r"^#dev> ?$")
        # Saying something in a window reads it too, up to one's own line.
        second.type("/join #lobby")
        second.wait_input(r"^#lobby> ?$")
        second.type("my reply")
        reply = talker.expect(r"^@\S*?time=([^;\s]+)\S* :dora!\S+ PRIVMSG #lobby :my reply$")
        watcher.expect(rf"MARKREAD #lobby timestamp={reply[1]}$")


def test_a_deleted_message_is_shown_as_deleted(server, talker, join_tmux) -> None:
    talker.send("CAP LS 302")
    assert "draft/message-redaction" in talker.read_cap_ls()
    talker.send("CAP REQ draft/message-redaction")
    talker.expect(r" CAP \S+ ACK ")
    viewer = join_tmux("--port", str(server.port), "--nick", "viewer")
    with viewer.screen_on_failure():
        viewer.wait_ready()
        talker.expect(r":viewer!\S+ JOIN #lobby")
        said = say(talker, "oops, wrong window")
        viewer.wait_screen(r"#lobby <talker> oops, wrong window$")
        talker.send(f"REDACT #lobby {said['oops, wrong window'][1]} :wrong window")
        viewer.wait_screen(r"^\d\d:\d\d #lobby \* talker deleted a message \(wrong window\)$")
