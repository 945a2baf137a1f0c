"""``--config`` files, SIGHUP reloads and running out of descriptors, on the installed script."""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import time

import pytest
from serve_process import SERVE
from transcript import IrcClient, wait_for

pytestmark = pytest.mark.e2e


def motd_of(port: int, nick: str) -> list[str]:
    client = IrcClient(port).register(nick)
    client.sync("registered")
    start = len(client.lines)
    client.send("MOTD")
    client.expect(r" 376 ")
    lines = [line.split(" :", 1)[1] for line in client.lines[start:] if " 372 " in line]
    client.close()
    return lines


def test_config_file_with_flags_overriding(serve, tmp_path):
    motd = tmp_path / "motd.txt"
    motd.write_text("from the file\n")
    conf = tmp_path / "greenchat.toml"
    conf.write_text(f'name = "file.example"\nnetwork = "FileNet"\nmotd = "{motd}"\n')
    server = serve("--config", str(conf), "--network", "FlagNet")
    client = IrcClient(server.port).register("reader")
    client.sync()
    assert any(
        line.startswith(":file.example 005 reader ") and "NETWORK=FlagNet" in line
        for line in client.lines
    ), client.lines
    assert motd_of(server.port, "motd1") == ["- from the file"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max-clients = 0", "max-clients: must be at least 1"),
        ("colour = 'green'", "unknown key 'colour'"),
        ("name = ", "not valid TOML"),
    ],
)
def test_bad_config_file_is_refused_at_start(tmp_path, text, message):
    conf = tmp_path / "bad.toml"
    conf.write_text(text + "\n")
    out = subprocess.run(
        [str(SERVE), "--port", "0", "--config", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_sighup_reloads_the_file_and_motd_without_dropping_anyone(serve, tmp_path):
    motd = tmp_path / "motd.txt"
    motd.write_text("first\n")
    conf = tmp_path / "greenchat.toml"
    conf.write_text(f'motd = "{motd}"\nflood-burst = 50\n')
    server = serve("--config", str(conf))
    stays = IrcClient(server.port).register("stays").join("#here")
    assert motd_of(server.port, "m1") == ["- first"]

    motd.write_text("second\n")
    conf.write_text(f'motd = "{motd}"\nflood-burst = 60\nname = "renamed"\n')
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"configuration reloaded; changed: .*flood-burst")
    server.wait_log(r"reload: name changed; it takes effect after a restart")
    assert motd_of(server.port, "m2") == ["- second"]

    conf.write_text("flood-burst = 'lots'\n")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"reload refused, the running configuration stays: .*flood-burst")
    assert motd_of(server.port, "m3") == ["- second"]
    stays.send("PRIVMSG #here :still connected")
    stays.sync()
    assert not any(line.startswith("ERROR") for line in stays.lines)


def test_sighup_with_unchanged_operator_passwords_changes_nothing(serve, tmp_path):
    conf = tmp_path / "greenchat.toml"
    conf.write_text('[opers]\nadmin = "plain text"\n')
    server = serve("--config", str(conf))
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"configuration reloaded; changed: nothing$")
    admin = IrcClient(server.port).register("admin")
    admin.send("OPER admin :plain text")
    admin.expect(r" 381 admin ")


def _low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_out_of_descriptors_is_logged_once_backed_off_and_recovered(serve):
    server = serve("--log-level", "INFO", preexec_fn=_low_descriptor_limit)
    # Far more connections than the 64 descriptors: the rest wait in the backlog.
    flood = []
    for _ in range(120):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        flood.append(sock)
    server.wait_log(r"cannot accept connections: Too many open files")
    cpu_before = sum(server.ps.cpu_times()[:2])
    time.sleep(1.5)
    # No busy loop while the backlog waits: well under a tenth of a core.
    assert sum(server.ps.cpu_times()[:2]) - cpu_before < 0.15
    assert len(server.logs("cannot accept connections")) == 1
    for sock in flood:
        sock.close()
    server.wait_log(r"accepting connections again", timeout=10)

    def answered() -> str:
        client = IrcClient(server.port, timeout=5).register("fresh")
        client.close()
        return "ok"

    wait_for(answered, "ok", "a fresh client after the descriptors came back", timeout=10)
