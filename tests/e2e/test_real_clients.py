"""Real IRC clients (irssi in tmux, weechat-headless) chat with a raw test client.

Each client gets a temporary home so the user's own configuration is never read
or written, and only the processes started here are stopped. ``make test``
installs the clients (``make test-deps``); without them these tests skip.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tmux_session import DEADLINE, TmuxSession, clean_env
from transcript import IrcClient, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]


def require(binary: str) -> str:
    """The path of ``binary``, or skip the test saying how to get it."""
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (`make test-deps` installs it)")
    return path


# --- irssi, inside a private tmux server -----------------------------------


class Irssi(TmuxSession):
    """irssi in a private tmux, 160x50."""

    def __init__(self, home: Path) -> None:
        super().__init__(clean_env(HOME=str(home)), "irssi screen")

    def type(self, text: str) -> None:
        """Type ``text``, wait until the input line shows it, then press Enter.

        Waiting keeps the text and the Enter apart, so irssi's paste
        detection never sees them as one burst.
        """
        self.send_text(text)
        self.wait_screen(re.escape(text) + r"\s*\Z")
        self.keys("Enter")


IRSSI_CONFIG = """\
servers = ( );
settings = {
  core = {
    real_name = "irssi e2e";
    user_name = "irssi";
    nick = "irbot";
    settings_autosave = "no";
  };
  "irc/core" = { cmd_queue_speed = "0msec"; cmds_max_at_once = "100"; };
};
"""


@pytest.fixture
def irssi(server, tmp_path) -> Iterator[Irssi]:
    """irssi (in tmux, temp home, no flood delay) connected to ``server`` as irbot."""
    binary = require("irssi")
    require("tmux")
    home = tmp_path / "irssi-home"
    (home / ".irssi").mkdir(parents=True)
    (home / ".irssi" / "config").write_text(IRSSI_CONFIG)
    command = [binary, f"--home={home / '.irssi'}", "-n", "irbot"]
    command += ["-c", "127.0.0.1", "-p", str(server.port)]
    session = Irssi(home)
    try:
        session.start(command, width=160, height=50)
        yield session
    finally:
        session.kill()


def test_irssi_chats_with_a_raw_client(irssi: Irssi, connect) -> None:
    with irssi.screen_on_failure():
        raw = connect("rawirc").join("#lobby")
        irssi.wait_screen(r"Welcome to the greenchat IRC Network irbot")
        irssi.type("/join #lobby")
        raw.expect(r"^:irbot!~?irssi@127\.0\.0\.1 JOIN #lobby")
        irssi.wait_screen(r"irbot \S+ has joined #lobby")

        irssi.type("hello from irssi")
        raw.expect(r"^:irbot!\S+ PRIVMSG #lobby :hello from irssi$")

        raw.send("PRIVMSG #lobby :hi irssi, rawirc here")
        irssi.wait_screen(r"<[@+ ]?rawirc> hi irssi, rawirc here$")

        irssi.type("/quit irssi done")
        raw.expect(r"^:irbot!\S+ QUIT :Quit: irssi done$")


# --- weechat-headless: commands at startup, the logger plugin as its screen --


class Weechat:
    """``weechat-headless`` with a temp ``--dir``, loading only the irc and logger plugins.

    The Debian package brings no fifo plugin (that is in weechat-plugins, a
    recommendation), so everything weechat does is given up front: ``-r`` adds
    and connects the server, whose ``command`` option joins #lobby and says a
    line once registered. The logger plugin (flush delay 0) writes each
    buffer's lines to ``logs/``, which the test reads as the client's view.
    """

    def __init__(self, binary: str, port: int, home: Path) -> None:
        self.home = home
        on_connect = r"/join #lobby\;/msg #lobby hello from weechat"
        startup = [
            "/set logger.file.flush_delay 0",
            "/set irc.server_default.anti_flood_prio_high 0",
            f"/server add gc 127.0.0.1/{port} -notls",
            "/set irc.server.gc.nicks weebot",
            "/set irc.server.gc.username weechat",
            "/set irc.server.gc.realname weechat e2e",
            f'/set irc.server.gc.command "{on_connect}"',
            "/connect gc",
        ]
        command = [binary, "--dir", str(home / "weechat"), "--stdout", "-s", "-P", "irc,logger"]
        self.output = home / "weechat.out"
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(
                [*command, "-r", ";".join(startup)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env(HOME=str(home)),
            )

    def channel_log(self) -> str:
        """Everything weechat's logger wrote for #lobby so far (empty before the join)."""
        logs = sorted((self.home / "weechat" / "logs").glob("*#lobby*.weechatlog"))
        return "".join(path.read_text(errors="replace") for path in logs)

    def wait_log(self, pattern: str, timeout: float = DEADLINE) -> str:
        return wait_for(self.channel_log, pattern, "weechat #lobby log", timeout)

    def stop(self) -> int | None:
        """SIGTERM (weechat runs ``/quit -yes``), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None


@pytest.fixture
def weechat_factory(server, tmp_path) -> Iterator[Callable[[], Weechat]]:
    """Start weechat against ``server`` on demand; always stopped afterwards."""
    binary = require("weechat-headless")
    started: list[Weechat] = []

    def start() -> Weechat:
        started.append(Weechat(binary, server.port, tmp_path))
        return started[-1]

    yield start
    for client in started:
        client.stop()


def test_weechat_chats_with_a_raw_client(weechat_factory, connect) -> None:
    raw: IrcClient = connect("rawwee").join("#lobby")
    weechat = weechat_factory()  # joins and speaks once registered
    raw.expect(r"^:weebot!~?weechat@127\.0\.0\.1 JOIN #lobby", timeout=DEADLINE)
    raw.expect(r"^:weebot!\S+ PRIVMSG #lobby :hello from weechat$", timeout=DEADLINE)
    weechat.wait_log(r"\tweebot .* has joined #lobby$")

    raw.send("PRIVMSG #lobby :hi weechat, rawwee here")
    weechat.wait_log(r"\t[@+]?rawwee\thi weechat, rawwee here$")

    assert weechat.stop() == 0
    raw.expect(r"^:weebot!\S+ QUIT :Quit: ", timeout=DEADLINE)
