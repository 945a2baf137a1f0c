"""Real IRC clients (irssi in tmux, weechat-headless) chat with a raw test client, and
log in to accounts with SASL: weechat with SCRAM-SHA-256, irssi with PLAIN.

Each client gets a temporary home so the user's own configuration is never read
or written, and only the processes started here are stopped. ``make test``
installs the clients (``make test-deps``); without them these tests skip. The
SASL tests put a line tap (tests/line_tap.py) between client and server to see
which mechanism the client chose; the server's own view (WHOIS 330, the
account in extended-join) says it logged in.
"""

from __future__ import annotations

import base64
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from line_tap import LineTap
from tmux_session import DEADLINE, TmuxSession, clean_env
from transcript import IrcClient, register_account, wait_for

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


def irssi_sasl_config(port: int, account: str, password: str) -> str:
    """IRSSI_CONFIG plus a network ``gc`` on 127.0.0.1:``port`` that logs in with SASL PLAIN."""
    network = f"""\
servers = (
  {{ address = "127.0.0.1"; port = "{port}"; chatnet = "gc"; use_tls = "no"; }}
);
chatnets = {{
  gc = {{
    type = "IRC";
    sasl_mechanism = "PLAIN";
    sasl_username = "{account}";
    sasl_password = "{password}";
  }};
}};
"""
    return IRSSI_CONFIG.replace("servers = ( );\n", network)


@pytest.fixture
def irssi_factory(server, tmp_path) -> Iterator[Callable[..., Irssi]]:
    """Start irssi (in tmux, temp home, no flood delay) as irbot: by default connected to
    ``server``; or with a config file and how to connect (``-c gc``, a network in it)."""
    binary = require("irssi")
    require("tmux")
    sessions: list[Irssi] = []

    def start(config: str = IRSSI_CONFIG, connect: Sequence[str] = ()) -> Irssi:
        home = tmp_path / f"irssi-home{len(sessions)}"
        (home / ".irssi").mkdir(parents=True)
        (home / ".irssi" / "config").write_text(config)
        command = [binary, f"--home={home / '.irssi'}", "-n", "irbot"]
        command += connect or ["-c", "127.0.0.1", "-p", str(server.port)]
        sessions.append(Irssi(home))
        sessions[-1].start(command, width=160, height=50)
        return sessions[-1]

    yield start
    for session in sessions:
        session.kill()


@pytest.fixture
def irssi(irssi_factory) -> Irssi:
    """irssi connected to ``server`` as irbot."""
    return irssi_factory()


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


def test_irssi_sends_and_shows_statusmsg(irssi: Irssi, connect) -> None:
    """STATUSMSG with irssi: its /msg @#lobby reaches only the ops (the raw client, who
    made the channel); a NOTICE to +#lobby shows in irssi once it is voiced."""
    with irssi.screen_on_failure():
        op = connect("rawop").join("#lobby")
        irssi.wait_screen(r"Welcome to the greenchat IRC Network irbot")
        irssi.type("/join #lobby")
        op.expect(r"^:irbot!\S+ JOIN #lobby")
        irssi.type("/msg @#lobby for the ops only")
        op.expect(r"^:irbot!\S+ PRIVMSG @#lobby :for the ops only$")
        op.send("MODE #lobby +v irbot", "NOTICE +#lobby :to the voiced")
        irssi.wait_screen(r"rawop.*to the voiced")


def test_irssi_shows_a_multiline_message_as_its_lines(irssi: Irssi, connect) -> None:
    """irssi 1.4 does not speak draft/multiline: a client's multiline batch reaches it as
    the batch's lines, in order (the fallback), while the sender's echo is one batch."""
    with irssi.screen_on_failure():
        sender = connect()
        sender.register_with_caps("mlsender", "draft/multiline batch echo-message")
        sender.join("#lobby")
        irssi.wait_screen(r"Welcome to the greenchat IRC Network irbot")
        irssi.type("/join #lobby")
        sender.expect(r"^:irbot!\S+ JOIN #lobby")
        sender.send(
            "BATCH +m draft/multiline #lobby",
            "@batch=m PRIVMSG #lobby :first of three",
            "@batch=m PRIVMSG #lobby :second of three",
            "@batch=m PRIVMSG #lobby :third of three",
            "BATCH -m",
        )
        sender.expect(r" BATCH \+\S+ draft/multiline #lobby$")  # its echo: one batch
        irssi.wait_screen(r"mlsender.*first of three[\s\S]*second of three[\s\S]*third of three")


# --- weechat-headless: commands at startup, the logger plugin as its screen --


class Weechat:
    """``weechat-headless`` with a temp ``--dir``, loading only the irc and logger plugins.

    The Debian package brings no fifo plugin (that is in weechat-plugins, a
    recommendation), so everything weechat does is given up front: ``-r`` adds
    and connects the server, whose ``command`` option joins #lobby and says a
    line once registered. The logger plugin (flush delay 0) writes each
    buffer's lines to ``logs/``, which the test reads as the client's view.
    """

    def __init__(self, binary: str, port: int, home: Path, settings: Sequence[str] = ()) -> None:
        """``settings``: more commands before it connects (``/set irc.server.gc...``)."""
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
            *settings,
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

    def server_log(self) -> str:
        """The server buffer's lines so far (connection, SASL, the welcome burst)."""
        logs = sorted((self.home / "weechat" / "logs").glob("irc.server.gc.weechatlog"))
        return "".join(path.read_text(errors="replace") for path in logs)

    def wait_server_log(self, pattern: str, timeout: float = DEADLINE) -> str:
        return wait_for(self.server_log, pattern, "weechat server buffer log", timeout)

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
def weechat_factory(server, tmp_path) -> Iterator[Callable[..., Weechat]]:
    """Start weechat against ``server`` (or ``port``) on demand; always stopped afterwards."""
    binary = require("weechat-headless")
    started: list[Weechat] = []

    def start(settings: Sequence[str] = (), port: int | None = None) -> Weechat:
        started.append(Weechat(binary, port or server.port, tmp_path, settings))
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


def test_weechat_gets_the_lobbys_last_lines_on_join(weechat_factory, make_server, connect):
    """--history-autoreplay: weechat asks for no chathistory, yet sees what was said
    before it came, with the times the lines were said (server-time, in a batch)."""
    server = make_server(history_autoreplay=3)
    raw: IrcClient = connect(port=server.port).register_with_caps(
        "rawwee", "echo-message server-time"
    )
    raw.join("#lobby")
    for n in range(4):
        raw.send(f"PRIVMSG #lobby :before weechat {n}")
        raw.expect(rf"PRIVMSG #lobby :before weechat {n}$")
    weechat = weechat_factory(port=server.port)
    raw.expect(r" :weebot!\S+ PRIVMSG #lobby :hello from weechat$", timeout=DEADLINE)
    log = weechat.wait_log(r"\t@rawwee\tbefore weechat 3$")
    assert "before weechat 0" not in log  # three lines, the last three
    assert re.search(r"\t@rawwee\tbefore weechat 1\n.*\t@rawwee\tbefore weechat 2\n", log)


# --- SASL: accounts made with NickServ, then logins by real clients ----------


@pytest.fixture
def tap(server) -> Iterator[LineTap]:
    """A line tap in front of ``server``: what the client sends, line by line."""
    relay = LineTap(server.port)
    yield relay
    relay.close()


def watch_lobby(connect, nick: str) -> IrcClient:
    """A raw client in #lobby with extended-join: JOINs name the joiner's account."""
    raw = connect().register_with_caps(nick, "extended-join")
    return raw.join("#lobby")


def test_weechat_logs_in_with_sasl_scram_sha_256(weechat_factory, connect, server, tap) -> None:
    password = "wee-secret-42"
    register_account(server.port, "weebot", password)
    raw = watch_lobby(connect, "rawscram")
    weechat = weechat_factory(
        [
            "/set irc.server.gc.sasl_mechanism scram-sha-256",
            "/set irc.server.gc.sasl_username weebot",
            f"/set irc.server.gc.sasl_password {password}",
        ],
        port=tap.port,
    )
    # The account in the JOIN (extended-join): logged in before it joined.
    raw.expect(r"^:weebot!~?weechat@127\.0\.0\.1 JOIN #lobby weebot :weechat e2e$", DEADLINE)
    raw.send("WHOIS weebot")
    raw.expect(r" 330 rawscram weebot weebot :is logged in as$")
    weechat.wait_server_log(r"\tSASL authentication successful$")
    sent = tap.text()
    assert "AUTHENTICATE SCRAM-SHA-256" in sent and "AUTHENTICATE PLAIN" not in sent
    assert password not in sent and base64.b64encode(password.encode()).decode() not in sent
    assert weechat.stop() == 0


def test_irssi_logs_in_with_sasl_plain(irssi_factory, connect, server, tap) -> None:
    password = "irssi-secret-42"
    register_account(server.port, "irbot", password)
    raw = watch_lobby(connect, "rawplain")
    irssi = irssi_factory(irssi_sasl_config(tap.port, "irbot", password), ["-c", "gc"])
    with irssi.screen_on_failure():
        irssi.wait_screen(r"SASL authentication succeeded")
        irssi.wait_screen(r"Welcome to the greenchat IRC Network irbot")
        tap.wait_sent(r"^AUTHENTICATE PLAIN$")
        irssi.type("/join #lobby")
        raw.expect(r"^:irbot!~?irssi@127\.0\.0\.1 JOIN #lobby irbot :irssi e2e$", DEADLINE)
        raw.send("WHOIS irbot")
        raw.expect(r" 330 rawplain irbot irbot :is logged in as$")
        irssi.type("/quit logged out")
        raw.expect(r"^:irbot!\S+ QUIT :Quit: logged out$")


def test_weechat_shows_a_bots_whois_line(weechat_factory, connect, server) -> None:
    """Bot mode with weechat: a raw client sets +B; weechat's WHOIS of it shows 335."""
    bot = connect("rawbot")
    bot.send("MODE rawbot +B")
    bot.expect(r" MODE rawbot :?\+B$")
    weechat = weechat_factory(['/set irc.server.gc.command "/whois rawbot"'])
    weechat.wait_server_log(r"rawbot.* is a bot on ")
    assert weechat.stop() == 0
