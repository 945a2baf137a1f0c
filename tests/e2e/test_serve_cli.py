"""The installed ``greenchat-serve`` console script, run as a real subprocess."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from serve_process import SERVE
from transcript import IrcClient
from ws_client import WsClient

from greenchat.server.config import OPTIONS

pytestmark = pytest.mark.e2e


def test_help_documents_every_flag():
    out = subprocess.run([str(SERVE), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for option in OPTIONS:
        assert (option.flag if option.kind != "opers" else "--oper") in out.stdout
    assert "--config FILE" in out.stdout
    assert "127.0.0.1" in out.stdout and "8546" in out.stdout


def test_chat_logs_and_sigterm_shutdown(serve, tmp_path):
    motd = tmp_path / "motd"
    motd.write_text("hello from the motd\n")
    server = serve("--name", "irc.test", "--motd", str(motd), "--password", "pw")
    alice = IrcClient(server.port)
    alice.send("PASS pw", "NICK alice", "USER a 0 * :Alice")
    alice.expect(r"^:irc\.test 001 alice ")
    alice.expect(r"^:irc\.test 372 alice :- hello from the motd$")
    alice.join("#lobby")
    bob = IrcClient(server.port)
    bob.send("PASS pw")
    bob.register("bob").join("#lobby")
    alice.send("PRIVMSG #lobby :over the wire")
    bob.expect(r"^:alice!~a@127\.0\.0\.1 PRIVMSG #lobby :over the wire$")
    server.wait_log(r"connect from 127\.0\.0\.1:\d+")
    bob.send("QUIT :done")
    bob.expect_closed()
    server.wait_log(r"disconnect bob from 127\.0\.0\.1:\d+: Quit: done")
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    lines = alice.expect_closed()
    assert "ERROR :Server shutting down" in lines
    assert server.proc.wait(10) == 0
    assert time.monotonic() - started < 5
    assert "pw" not in "\n".join(line for line in server.stderr if "PASS" in line)


def test_sigint_also_exits_cleanly(serve):
    server = serve()
    client = IrcClient(server.port).register("x")
    server.proc.send_signal(signal.SIGINT)
    assert "ERROR :Server shutting down" in client.expect_closed()
    assert server.proc.wait(10) == 0


def test_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [str(SERVE), "--port", str(port), "--db", ":memory:"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert out.returncode == 1
    assert out.stderr == (
        f"greenchat-serve: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def test_unknown_host_is_one_plain_line():
    out = subprocess.run(
        [str(SERVE), "--host", "256.0.0.1", "--db", ":memory:"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("greenchat-serve: cannot listen on 256.0.0.1:8546: ")
    assert len(out.stderr.splitlines()) == 1 and out.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "greenchat-serve: --port: must be at most 65535, got 99999"),
        (["--tls-port", "70000"], "greenchat-serve: --tls-port: must be at most 65535"),
        (["--port", "abc"], "greenchat-serve: --port: expected an integer, got 'abc'"),
    ],
)
def test_out_of_range_values_are_one_line_and_exit_2(args, message):
    out = subprocess.run([str(SERVE), *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    first, *rest = out.stderr.splitlines()
    assert first.startswith(message) and "Traceback" not in out.stderr
    assert rest == ["Try 'greenchat-serve --help' for more information."]


def test_start_says_once_where_it_listens_and_how_to_connect(serve):
    server = serve()
    banner = []
    while len(banner) < 3:  # the rest of what it printed after the first line
        banner.append(server.proc.stdout.readline().strip())
    # `make join` when make started it (as `make test` does), else the script.
    join = rf'(make join ARGS="--port {server.port}"|greenchat-join --port {server.port})'
    assert re.fullmatch(rf"to chat, in another terminal:  {join}", banner[0]), banner
    assert banner[1] == f"or with any IRC client:        irssi -c 127.0.0.1 -p {server.port}"
    logs = server.wait_log(r"started greenchat\.local \(pid \d+\): IRC on 127\.0\.0\.1:")
    assert "listening" not in logs  # stdout said that already


def test_an_unread_stderr_does_not_stop_the_chat(serve):
    """Logging goes through a queue: a full log pipe must not block the event loop."""
    server = serve("--log-level", "DEBUG", read_stderr=False)
    # Two log lines (connect, disconnect) per short visit: far more than a pipe holds.
    for _ in range(600):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
    alice = IrcClient(server.port).register("alice").join("#still")
    bob = IrcClient(server.port).register("bob").join("#still")
    alice.send("PRIVMSG #still :the log pipe is full")
    bob.expect(r"^:alice!\S+ PRIVMSG #still :the log pipe is full$")


def test_stalled_member_memory_stays_bounded(serve):
    """A member that never reads cannot make the server hold more than its sendq.
    (History off: the flood's lines waiting to be stored would count here.)"""
    server = serve(
        "--sendq", "65536", "--log-level", "WARNING", "--flood-rate", "0", "--no-history"
    )
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", server.port))
    stalled.sendall(b"NICK stalled\r\nUSER s 0 * :s\r\nJOIN #lobby\r\n")
    watcher = IrcClient(server.port, timeout=30).register("watcher").join("#lobby")
    sender = IrcClient(server.port).register("sender").join("#lobby")
    process = psutil.Process(server.proc.pid)
    rss_before = process.memory_info().rss
    count = 20_000
    body = "".join(f"PRIVMSG #lobby :{i} {'m' * 400}\r\n" for i in range(count))
    sender.send_in_background(body.encode())
    peak = rss_before
    for _ in range(10):
        watcher.count_lines(b" PRIVMSG #lobby :", count // 10)
        peak = max(peak, process.memory_info().rss)
    watcher.sync()
    assert any(line.startswith(":stalled!") and "SendQ exceeded" in line for line in watcher.lines)
    # 20,000 lines of ~450 bytes are 9 MB: none of it may pile up in the server.
    assert peak - rss_before < 8 * 1024 * 1024, (rss_before, peak)
    stalled.close()


@pytest.mark.skipif(os.environ.get("GREENCHAT_SKIP_DEFAULT_PORT") == "1", reason="opt-out")
def test_make_serve_target_exists():
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    assert re.search(r"^serve:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_oper_flag_is_documented_validated_and_works(serve):
    out = subprocess.run(
        [str(SERVE), "--oper", "admin:pw", "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    assert "--oper NAME:PASSWORD" in out.stdout and "scrypt" in out.stdout
    bad = subprocess.run(
        [str(SERVE), "--oper", "nopassword"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2
    assert "expected NAME:PASSWORD" in bad.stderr and "Traceback" not in bad.stderr
    server = serve("--oper", "admin:hunter2-xyz", "--log-level", "DEBUG")
    client = IrcClient(server.port).register("boss")
    client.send("OPER admin hunter2-xyz")
    client.expect(r" 381 boss :You are now an IRC operator$")
    server.wait_log(r"opered up as admin")
    assert "hunter2" not in "\n".join(server.stderr)


def test_metrics_port_serves_metrics_and_health(serve):
    import urllib.request

    server = serve("--metrics-port", "0")
    line = server.proc.stdout.readline()
    match = re.search(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", line)
    assert match, line
    with urllib.request.urlopen(match[1] + "/healthz", timeout=10) as response:
        assert response.status == 200
    counted = IrcClient(server.port).register("counted")
    with urllib.request.urlopen(match[1] + "/metrics", timeout=10) as response:
        text = response.read().decode()
    registered = r'greenchat_connections\{(?=[^}]*state="registered")(?=[^}]*transport="tcp")'
    assert re.search(registered + r"[^}]*\} 1\.0$", text, re.M), text
    counted.close()
    assert server.wait_log(r"metrics on http://127\.0\.0\.1:\d+/metrics")


def test_the_installed_server_serves_the_page_it_announces(serve):
    """The banner's 'or in a web browser' URL is the page, and the same URL a WebSocket
    that speaks IRC: what a newcomer opens after `make serve`."""
    server = serve("--log-level", "WARNING")
    deadline = time.monotonic() + 10
    url = None
    while url is None and time.monotonic() < deadline:
        line = server.proc.stdout.readline()
        assert line, "the banner ended without the page's URL"
        match = re.search(r"or in a web browser: +(http://\S+)", line)
        url = match[1] if match else None
    assert url is not None
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200 and b"greenchat" in response.read()
    host, port = re.match(r"http://([\d.]+):(\d+)/", url).groups()
    client = WsClient((host, int(port)))
    try:
        client.accepted(subprotocols=["text.ircv3.net"])
        client.register("browser").join("#lobby")
    finally:
        client.close()
