"""The installed ``greenchat-serve`` console script as a subprocess, for e2e and fault tests."""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import psutil

SERVE = Path(sys.executable).parent / "greenchat-serve"


class ServeProcess:
    """``greenchat-serve --port 0 ...`` with its stderr collected in the background."""

    def __init__(
        self,
        *args: str,
        preexec_fn: Callable[[], None] | None = None,
        read_stderr: bool = True,
    ) -> None:
        """``read_stderr=False``: nobody reads the server's stderr pipe (it fills up)."""
        self.proc = subprocess.Popen(
            [str(SERVE), "--port", "0", *_web_port(args), *_db(args), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=preexec_fn,  # e.g. a lower descriptor limit for the EMFILE test
        )
        self.stderr: list[str] = []
        if read_stderr:
            threading.Thread(target=self._collect, daemon=True).start()
        line = self.proc.stdout.readline()  # blocks until ready or exit
        match = re.search(r"listening on ([\d.]+):(\d+)", line)
        if not match:
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r} {self.stderr}")
        self.port = int(match.group(2))
        self._web_port: int | None = None
        self._banner_read = False

    @property
    def web_port(self) -> int | None:
        """The web (and WebSocket) port from the banner's 'or in a web browser' line;
        None without one (``--no-web``).

        Read from stdout on first use, not at start: a test may read the banner itself.
        """
        if not self._banner_read:
            self._banner_read = True
            # The banner is printed in one go: its lines are all there to read.
            while (line := self.proc.stdout.readline()) and "Ctrl-C stops" not in line:
                match = re.search(r"or in a web browser: +http://[\d.]+:(\d+)/", line)
                if match:
                    self._web_port = int(match.group(1))
                    break
        return self._web_port

    def _collect(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def wait_log(self, pattern: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.stderr):
                if regex.search(line):
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line matching {pattern!r}: {self.stderr[-10:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

    def logs(self, pattern: str) -> list[str]:
        """Every log line so far that matches ``pattern``."""
        regex = re.compile(pattern)
        return [line for line in list(self.stderr) if regex.search(line)]

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def open_descriptors(self) -> int:
        return self.ps.num_fds()

    def rss(self) -> int:
        return self.ps.memory_info().rss


def _web_port(args: tuple[str, ...]) -> list[str]:
    """``--web-port 0`` unless the test chose: two servers must not both want 8547."""
    if any(arg == "--no-web" or arg.startswith("--web-port") for arg in args):
        return []
    return ["--web-port", "0"]


def _db(args: tuple[str, ...]) -> list[str]:
    """``--db :memory:`` unless the test chose a file (``--db``, or ``db`` in its
    ``--config`` file, which a flag would override): no greenchat.db left behind."""
    if any(arg.startswith("--db") for arg in args):
        return []
    for flag, value in itertools.pairwise(args):
        if flag == "--config":
            try:
                if "db" in tomllib.loads(Path(value).read_text()):
                    return []
            except (OSError, ValueError):
                pass  # the server refuses the file itself
    return ["--db", ":memory:"]
