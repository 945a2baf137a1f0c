"""Every server the benchmarks compare starts, relays a channel message to the others, stops.

greenchat and the threaded baseline always run; ngIRCd and InspIRCd run when
installed (``make bench-peers``) and are skipped otherwise. Each server is
started through ``benchmarks/servers.py`` exactly as the benchmark harness
does, then three raw clients register, join ``#bench`` and each says one line
that the two others must see.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
CHANNEL = "#bench"
DEADLINE = 5.0


def _load(script: str):
    """Import benchmarks/SCRIPT.py (benchmarks/ is a folder of scripts, not a package)."""
    name = f"greenchat_bench_{script}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{script}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


servers = _load("servers")
baseline = _load("baseline")


class RawClient:
    """A blocking IRC connection that reads whole lines, each wait bounded by a deadline."""

    def __init__(self, host: str, port: int, nick: str) -> None:
        self.nick = nick
        self.sock = socket.create_connection((host, port), timeout=DEADLINE)
        self.buffer = b""
        self.seen: list[str] = []  # every line received, for error messages
        self.unmatched: list[str] = []  # received lines no expect() has returned yet

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def expect(self, wanted: str, timeout: float = DEADLINE) -> str:
        """Return (and consume) the first unmatched line containing ``wanted``.

        Lines may arrive in any order (two senders race); PINGs are answered.
        """
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode("utf-8", "replace")
                self.seen.append(line)
                self.unmatched.append(line)
                if line.startswith("PING "):
                    self.send("PONG " + line.split(" ", 1)[1])
                if line.startswith("ERROR") or " 433 " in line:
                    raise AssertionError(f"{self.nick}: server said {line!r}")
            for i, line in enumerate(self.unmatched):
                if wanted in line:
                    del self.unmatched[i]
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.nick}: no {wanted!r} within {timeout}s: {self.seen}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise AssertionError(f"{self.nick}: connection closed; saw {self.seen}")
            self.buffer += chunk

    def send_registration(self) -> None:
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.nick} 0 * :bench servers test")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("QUIT :done")
        self.sock.close()


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", servers.NAMES)
def test_server_relays_channel_messages(name: str, tmp_path: Path) -> None:
    if name not in servers.available():
        pytest.skip(f"{name} is not installed (make bench-peers)")
    assert_relays(servers.start(name, tmp_path, max_clients=100))


@pytest.mark.timeout(30)
def test_baseline_revision_relays_channel_messages(tmp_path: Path) -> None:
    """greenchat at a git revision (here HEAD), exported and run from its own tree."""
    with baseline.prepared("HEAD", tmp_path) as base:
        tree = base.tree
        assert (tree / "greenchat" / "cli.py").is_file() and tree.is_relative_to(tmp_path)
        short = base.name.removeprefix("greenchat@")
        assert base.commit and short != base.name and base.commit.startswith(short)
        servers.BASELINES[base.name] = base
        try:
            server = servers.start(base.name, tmp_path, max_clients=100)
            assert_relays(server)
            assert str(tree) in " ".join(server.proc.args)
            assert servers.describe(base.name)["commit"] == base.commit
        finally:
            servers.BASELINES.pop(base.name)
    assert not tree.exists()  # the exported tree goes with the block


def assert_relays(server) -> None:
    """Three raw clients join #bench and each line reaches the two others; stops the server."""
    clients: list[RawClient] = []
    try:
        assert server.pid == server.proc.pid and server.proc.poll() is None
        assert server.host == "127.0.0.1" and server.port > 0
        tag = os.getpid() % 1000
        clients = [RawClient(server.host, server.port, f"t{tag}n{i}") for i in range(3)]
        # Register all three before waiting: InspIRCd completes registrations
        # on its once-a-second timer, so one at a time would cost a second each.
        for client in clients:
            client.send_registration()
        for client in clients:
            client.expect(f" 001 {client.nick} ")
        for client in clients:
            client.send(f"JOIN {CHANNEL}")
            client.expect(f" 366 {client.nick} ")
        for client in clients:
            client.send(f"PRIVMSG {CHANNEL} :hello from {client.nick}")
        for client in clients:
            for other in clients:
                if other is not client:
                    line = client.expect(f"hello from {other.nick}")
                    assert line.startswith(f":{other.nick}!")
                    assert f" PRIVMSG {CHANNEL} :" in line
            assert not any(f"hello from {client.nick}" in seen for seen in client.seen)
    finally:
        for client in clients:
            client.close()
        servers.stop(server)
    assert server.proc.poll() is not None


FAKE_CLI = """\
import argparse


def serve_main():
    parser = argparse.ArgumentParser(prog="greenchat-serve")
    for flag in ("--host", "--port", "--log-level", "--max-clients"):
        parser.add_argument(flag)
    parser.parse_args()
    return 0
"""


def fake_checkout(root: Path, dependency: str = "gevent>=1") -> Path:
    """An old greenchat that knows only four flags (its --help is all that runs here)."""
    (root / "greenchat").mkdir(parents=True)
    (root / "greenchat" / "__init__.py").write_text('__version__ = "0.0.1-old"\n')
    (root / "greenchat" / "cli.py").write_text(FAKE_CLI)
    project = f'[project]\nname = "greenchat"\ndependencies = ["{dependency}"]\n'
    (root / "pyproject.toml").write_text(project)
    return root


def test_baseline_gets_only_the_flags_it_knows(tmp_path: Path) -> None:
    tree = fake_checkout(tmp_path / "old")
    with baseline.prepared(str(tree), tmp_path) as base:  # a path: used in place
        assert base.name == "greenchat@old" and base.version == "0.0.1-old"
        assert base.tree == tree.resolve() and base.commit is None
        assert {"--host", "--port", "--max-clients"} <= base.flags
        assert "--sendq" not in base.flags
        servers.BASELINES[base.name] = base
        try:
            cmd = servers._command(base.name, tmp_path, 0, 100)
            assert cmd[:2] == [sys.executable, "-c"] and str(base.tree) in cmd[2]
            assert cmd[3:] == ["--host", servers.HOST, "--port", "0", "--log-level", "WARNING",
                               "--max-clients", "100"]  # fmt: skip
            info = servers.describe(base.name)
            left = ["--flood-rate", "--no-web", "--ping-interval", "--sendq"]
            assert info["flags_left_out"] == left
            assert info["version"] == "0.0.1-old" and info["dependencies"]["gevent"]
            left_out = "left out: --flood-rate, --no-web, --ping-interval, --sendq"
            assert any(left_out in note for note in info["notes"])
        finally:
            servers.BASELINES.pop(base.name)
    assert (tree / "greenchat" / "cli.py").exists()  # a checkout is never removed


def test_baseline_errors(tmp_path: Path) -> None:
    with (
        pytest.raises(baseline.BaselineError, match="not a revision"),
        baseline.prepared("no-such-revision-xyz", tmp_path),
    ):
        pass
    missing = fake_checkout(tmp_path / "needs", "no-such-package-xyz>=1")
    with (
        pytest.raises(baseline.BaselineError, match="no-such-package-xyz"),
        baseline.prepared(str(missing), tmp_path),
    ):
        pass
    with pytest.raises(ValueError, match="unknown server"):
        servers.describe("greenchat@nope")


def test_describe_names_every_server() -> None:
    for name in servers.NAMES:
        info = servers.describe(name)
        assert info["name"] == name
        assert "version" in info
    with pytest.raises(ValueError):
        servers.describe("nope")
