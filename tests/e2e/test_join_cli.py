"""The installed ``greenchat-join``: interactive in a private tmux, piped, and --listen.

Interactive runs happen in a tmux server of their own (``tmux -L`` with a
unique socket, so a developer's tmux is never touched), 120x30, with
TERM=xterm-256color; the test reads the screen with capture-pane and polls
with a deadline. A shell around the program prints its exit status on the
screen when it ends. Servers are the in-process one on port 0, or a
``greenchat-serve --port 0`` subprocess when the test must stop it.
"""

from __future__ import annotations

import queue
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from join_screen import JOIN, JoinScreen, join_screens
from serve_process import ServeProcess
from tmux_session import DEADLINE, clean_env
from transcript import IrcClient, register_account, wait_for

from greenchat.client import DEFAULT_CAPS
from greenchat.client import IrcClient as GeventClient
from greenchat.client.commands import Quit, Say
from greenchat.client.terminal import ClientThread, Options

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

PROMPT = "#lobby> "


class Tmux(JoinScreen):
    """greenchat-join in a private tmux, 120x30."""

    def write(self, text: str) -> None:
        """Type ``text`` literally and wait until the input line shows it."""
        self.send_text(text)
        self.wait_input(".*" + re.escape(text))

    def type(self, text: str) -> None:
        self.write(text)
        self.keys("Enter")

    def wait_input(self, pattern: str, timeout: float = DEADLINE) -> str:
        prompt = re.escape(PROMPT.rstrip())
        return wait_for(self.input_line, rf"^{prompt} ?{pattern}\s*$", "input line", timeout)

    def wait_ready(self) -> None:
        """Joined (the NAMES reply shown) and the prompt drawn: safe to type."""
        self.wait_screen(r"-- users on #lobby: ")
        self.wait_input("")


@pytest.fixture
def join_tmux() -> Iterator[Callable[..., Tmux]]:
    """Factory: ``greenchat-join ARGS...`` in a private tmux; all killed afterwards."""
    yield from join_screens(Tmux)


def test_help_documents_every_flag() -> None:
    out = subprocess.run([str(JOIN), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    flags = ["--host", "--port", "--nick", "--channel", "--password", "--tls", "--tls-insecure"]
    flags += ["--no-color", "--listen", "--max-retries", "--sasl", "--account"]
    for flag in flags:
        assert flag in out.stdout
    assert "127.0.0.1:8546" in out.stdout and "#lobby" in out.stdout
    for command in ("/join", "/msg", "/me", "/quit", "/raw"):
        assert command in out.stdout


def test_two_clients_chat(server, join_tmux) -> None:
    port = str(server.port)
    alice = join_tmux("--port", port, "--nick", "alice")
    bob = join_tmux("--port", port, "--nick", "bob")
    with alice.screen_on_failure(), bob.screen_on_failure():
        alice.wait_ready()
        bob.wait_ready()
        # Both started at once: bob is in the NAMES alice got, or joined after it.
        alice.wait_screen(r"#lobby --> bob joined|users on #lobby: .*\bbob\b")
        alice.type("hello bob")
        bob.wait_screen(r"^\d\d:\d\d #lobby <alice> hello bob$")
        bob.type("hi alice")
        alice.wait_screen(r"^\d\d:\d\d #lobby <bob> hi alice$")
        # Shown once: the server's echo, not also the typed line or a local copy.
        assert alice.screen().count("hello bob") == 1


def test_message_arriving_keeps_the_half_typed_line(server, connect, join_tmux) -> None:
    raw: IrcClient = connect("rawirc").join("#lobby")
    carol = join_tmux("--port", str(server.port), "--nick", "carol")
    with carol.screen_on_failure():
        carol.wait_ready()
        raw.expect(r"^:carol!\S+ JOIN #lobby")
        carol.write("half")
        raw.send("PRIVMSG #lobby :interrupting you")
        # The line is printed above the prompt, then the prompt is drawn again with
        # what was typed: wait for both, as the screen may be caught in between.
        carol.wait_screen(
            r"#lobby <rawirc> interrupting you$(?:\n.*)*\n" + re.escape(PROMPT) + r"half\s*\Z"
        )
        assert carol.input_line().rstrip() == PROMPT + "half"
        screen = carol.screen().rstrip().splitlines()
        assert any("interrupting you" in line for line in screen[:-1])
        carol.type(" done")
        raw.expect(r"^:carol!\S+ PRIVMSG #lobby :half done$")


def test_me_shows_as_an_action(server, connect, join_tmux) -> None:
    raw: IrcClient = connect("rawme").join("#lobby")
    dave = join_tmux("--port", str(server.port), "--nick", "dave")
    with dave.screen_on_failure():
        dave.wait_ready()
        dave.type("/me waves")
        raw.expect(r"^:dave!\S+ PRIVMSG #lobby :\x01ACTION waves\x01$")
        dave.wait_screen(r"#lobby \* dave waves$")
        raw.send("PRIVMSG #lobby :\x01ACTION waves back\x01")
        dave.wait_screen(r"#lobby \* rawme waves back$")


@pytest.mark.parametrize("how", ["C-d", "C-c", "/quit see you"])
def test_ctrl_d_ctrl_c_and_quit_exit_0(server, connect, join_tmux, how: str) -> None:
    raw: IrcClient = connect("rawquit").join("#lobby")
    erin = join_tmux("--port", str(server.port), "--nick", "erin")
    with erin.screen_on_failure():
        erin.wait_ready()
        raw.expect(r"^:erin!\S+ JOIN #lobby")
        if how.startswith("/"):
            erin.type(how)
        else:
            erin.keys(how)
        quit_line = raw.expect(r"^:erin!\S+ QUIT :(.*)$")
        if how.startswith("/"):
            assert quit_line.group(1).endswith("see you")
        assert erin.exit_status() == 0


def run_piped(args: list[str], stdin: str) -> subprocess.CompletedProcess:
    """greenchat-join in pipe mode with ``stdin`` as its input; waits for it to exit."""
    return subprocess.run(
        [str(JOIN), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=clean_env(),
    )


def test_pipe_mode_sends_every_line_and_exits_0(server, connect) -> None:
    raw: IrcClient = connect("rawpipe").join("#lobby")
    out = run_piped(["--nick", "piper", "--port", str(server.port)], "one\ntwo\n")
    assert out.returncode == 0, out.stderr
    raw.expect(r"^:piper!\S+ PRIVMSG #lobby :one$")
    raw.expect(r"^:piper!\S+ PRIVMSG #lobby :two$")
    raw.expect(r"^:piper!\S+ QUIT")
    assert out.stdout == "" and "Traceback" not in out.stderr


class Lines:
    """A subprocess's stdout, read line by line in the background."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = DEADLINE) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}; got: {self.seen[-10:]}")


def test_listen_prints_plain_lines(server, connect) -> None:
    raw: IrcClient = connect("rawlisten").join("#lobby")
    proc = subprocess.Popen(
        [str(JOIN), "--nick", "ears", "--port", str(server.port), "--listen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        lines = Lines(proc)
        raw.expect(r"^:ears!\S+ JOIN #lobby")
        raw.send("PRIVMSG #lobby :hello listener")
        line = lines.expect(r"hello listener")
        assert re.fullmatch(r"\d\d:\d\d #lobby <rawlisten> hello listener", line), line
        proc.stdin.close()  # EOF: quit
        assert proc.wait(DEADLINE) == 0
        raw.expect(r"^:ears!\S+ QUIT")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_sasl_logs_in_with_the_password_from_the_environment(server, connect) -> None:
    """--sasl, the password in GREENCHAT_PASSWORD: logged in before joining (the account
    in the extended-join JOIN, and WHOIS 330)."""
    register_account(server.port, "saslie", "join-secret-1")
    raw = connect().register_with_caps("rawsasl", "extended-join").join("#lobby")
    proc = subprocess.Popen(
        [str(JOIN), "--nick", "saslie", "--port", str(server.port), "--listen", "--sasl"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(GREENCHAT_PASSWORD="join-secret-1"),
    )
    try:
        raw.expect(r"^:saslie!\S+ JOIN #lobby saslie :?saslie$")
        raw.send("WHOIS saslie")
        raw.expect(r" 330 rawsasl saslie saslie :is logged in as$")
        proc.stdin.close()  # EOF: quit
        assert proc.wait(DEADLINE) == 0
        assert proc.stderr.read() == ""  # no alert: the login worked
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_sasl_at_a_terminal_asks_for_the_password(server, connect, join_tmux) -> None:
    """No GREENCHAT_PASSWORD: a prompt that does not echo, then the chat, logged in."""
    register_account(server.port, "asked", "typed-secret-3")
    raw: IrcClient = connect("rawask")
    session = join_tmux("--port", str(server.port), "--nick", "asked", "--sasl")
    with session.screen_on_failure():
        session.wait_screen(r"^password for asked: $")
        session.send_text("typed-secret-3")
        session.keys("Enter")
        session.wait_screen(r"-- You are now logged in as asked$")
        session.wait_ready()
        assert "typed-secret-3" not in session.screen()
        raw.send("WHOIS asked")
        raw.expect(r" 330 rawask asked asked :is logged in as$")
        session.type("/quit")
        assert session.exit_status() == 0


def test_sasl_with_a_wrong_password_says_so_and_chats_anyway(server, connect) -> None:
    register_account(server.port, "wrongpw", "join-secret-2")
    raw: IrcClient = connect("rawwrong").join("#lobby")
    args = ["--nick", "wrongpw", "--port", str(server.port), "--sasl", "--account", "WrongPW"]
    out = subprocess.run(
        [str(JOIN), *args],
        input="said anyway\n",
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=clean_env(GREENCHAT_PASSWORD="not-it"),
    )
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(
        r"\d\d:\d\d !! not logged in as WrongPW: SASL authentication failed: "
        r"Invalid account credentials; going on without an account\n",
        out.stderr,
    ), out.stderr
    raw.expect(r"^:wrongpw!\S+ PRIVMSG #lobby :said anyway$")
    # Piped, without GREENCHAT_PASSWORD: nobody to ask, so it does not start.
    env = {k: v for k, v in clean_env().items() if k != "GREENCHAT_PASSWORD"}
    refused = subprocess.run(
        [str(JOIN), *args], input="", capture_output=True, text=True, timeout=DEADLINE, env=env
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("greenchat-join: --sasl: no password; set GREENCHAT_PASSWORD")


def test_server_gone_reconnects_visibly_then_exits_nonzero(join_tmux) -> None:
    serve = ServeProcess("--log-level", "WARNING")
    try:
        frank = join_tmux("--port", str(serve.port), "--nick", "frank", "--max-retries", "1")
        with frank.screen_on_failure():
            frank.wait_ready()
            serve.stop()
            frank.wait_screen(r"!! disconnected: .*Server shutting down")
            frank.wait_screen(r"reconnecting in \d+\.\d s \(attempt 1/1\)")
            frank.wait_screen(r"!! gave up after 1 reconnect attempt")
            assert frank.exit_status() == 2
    finally:
        serve.stop()


def test_a_chat_window_keeps_trying_until_the_server_is_back(join_tmux) -> None:
    """No --max-retries: attempts go on and show, and the return is one summary line."""
    serve = ServeProcess("--log-level", "WARNING")
    port = serve.port
    try:
        gina = join_tmux("--port", str(port), "--nick", "gina")
        with gina.screen_on_failure():
            gina.wait_ready()
            serve.stop()
            gina.wait_screen(r"!! disconnected: .*Server shutting down")
            gina.wait_screen(rf"!! cannot connect to 127\.0\.0\.1:{port}: Connection refused")
            gina.wait_screen(r"reconnecting in \d+\.\d s \(attempt 2\)$")  # no "/N": no limit
            serve = ServeProcess("--port", str(port), "--log-level", "WARNING")
            screen = gina.wait_screen(
                rf"-- reconnected to 127\.0\.0\.1:{port} as gina; rejoining #lobby", timeout=15
            )
            after = screen.split("-- reconnected to", 1)[1]
            assert "Welcome" not in after and "connected to" not in after  # no second burst
            assert "!! disconnected: cannot connect" not in screen
            gina.wait_screen(r"#lobby --> gina joined[\s\S]*#lobby --> gina joined")
            gina.type("back again")
            raw = IrcClient(serve.port).register("rawback").join("#lobby")
            gina.type("still here")
            raw.expect(r"^:gina!\S+ PRIVMSG #lobby :still here$")
    finally:
        serve.stop()


def test_pipe_mode_says_cannot_connect_and_fails_fast() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    out = run_piped(["--port", str(port), "--max-retries", "0"], "lost\n")
    assert out.returncode == 2
    stamp = r"\d\d:\d\d !!"
    assert re.fullmatch(
        rf"{stamp} cannot connect to 127\.0\.0\.1:{port}: Connection refused\n"
        rf"{stamp} not connected: not sent\n",
        out.stderr,
    ), out.stderr
    assert time.monotonic() - started < 10


def test_make_join_runs_the_client_with_args(server, connect) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    raw: IrcClient = connect("rawmake").join("#lobby")
    root = Path(__file__).parents[2]
    # -o: treat the venv as up to date; the suite runs in it already.
    out = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "join", f"ARGS=--nick maker --port {server.port}"],
        input="made it\n",
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=root,
        env=clean_env(),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    raw.expect(r"^:maker!\S+ PRIVMSG #lobby :made it$")


# -- the client thread itself, driven from this (non-gevent) thread ---------------------


@pytest.mark.parametrize("echo", [True, False], ids=["echo-message", "local-copy"])
def test_own_messages_show_once(server, connect, echo: bool) -> None:
    """With echo-message the server's echo is shown; without it a local copy: never both."""
    caps = DEFAULT_CAPS if echo else tuple(c for c in DEFAULT_CAPS if c != "echo-message")

    class Thread(ClientThread):
        def _make_client(self) -> GeventClient:
            return GeventClient("127.0.0.1", server.port, "selfie", caps=caps, max_retries=0)

    shown: list[str] = []
    raw: IrcClient = connect("rawself").join("#lobby")
    thread = Thread(Options(color=False), lambda line: shown.append(line.text)).start()
    try:
        raw.expect(r"^:selfie!\S+ JOIN #lobby")
        thread.post(Say("#lobby", "just once"))
        raw.expect(r"^:selfie!\S+ PRIVMSG #lobby :just once$")
        thread.post(Quit("bye"))
        raw.expect(r"^:selfie!\S+ QUIT")
        assert thread.join(DEADLINE)
    finally:
        thread.post(Quit())
    assert thread.client is not None and ("echo-message" in thread.client.caps) is echo
    mine = [line for line in shown if "just once" in line]
    assert len(mine) == 1 and mine[0].endswith("#lobby <selfie> just once"), shown
    assert thread.exit_code == 0


def test_pipe_mode_over_tls_to_a_self_signed_server(make_server, tmp_path) -> None:
    """greenchat-join --tls-insecure talks to greenchat-serve's own TLS port."""
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    server = make_server(tls_port=0, tls_cert=cert_file, tls_key=key_file)
    raw = IrcClient(server.port).register("rawtls").join("#lobby")
    tls_port = server.server.tls_address[1]
    command = ["--nick", "secure", "--port", str(tls_port)]
    # Without --tls-insecure the self-signed certificate is refused.
    refused = run_piped([*command, "--tls", "--max-retries", "0"], "never\n")
    assert refused.returncode != 0 and "certificate" in refused.stderr.lower()
    out = run_piped([*command, "--tls-insecure"], "over tls\n")
    assert out.returncode == 0, out.stderr
    raw.expect(r"^:secure!\S+ PRIVMSG #lobby :over tls$")
    assert not any("never" in line for line in raw.lines)
