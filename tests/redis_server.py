"""A real ``redis-server`` for the tests: on a Unix socket in a temporary directory, with
nothing saved to disk, stopped by its PID.

    with RedisServer() as server:
        store = RedisStore(server.url)

``tests/contract/conftest.py`` makes one per session (the ``redis_url`` fixture) and
hands its URL to the ``redis`` factory of the contract tests through :data:`SHARED`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import redis
from process_guard import end_processes

__all__ = ["SHARED", "SKIP_REASON", "RedisServer", "available", "shared_url"]

START_DEADLINE = 10.0  # seconds until it must answer PING
STOP_WAIT = 5.0  # after SIGTERM, then after SIGKILL
SKIP_REASON = "redis-server is not installed (make test-deps installs it)"


def available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    """One redis-server process; ``extra`` are more of its command-line options."""

    def __init__(self, *extra: str) -> None:
        self.extra = extra
        self.dir: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        assert self.dir is not None, "not started"
        return self.dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def client(self) -> redis.Redis:
        """A plain client (tests use it to look at or upset the server)."""
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    def start(self) -> RedisServer:
        # mkdtemp under /tmp: a Unix socket's path must stay under 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="gc-redis-"))
        self._spawn()
        return self

    def restart(self) -> None:
        """A new process on the same socket (empty: nothing is saved)."""
        self._end_process()
        self._spawn()

    def _spawn(self) -> None:
        command = [
            "redis-server",
            "--port", "0",  # no TCP listener: the socket only
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.dir / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise

    def _wait_until_answering(self) -> None:
        """PING until PONG, the process dies, or START_DEADLINE passes; the pause
        between tries grows from 1 ms (it usually answers within a few)."""
        deadline, pause = time.monotonic() + START_DEADLINE, 0.001
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited at start: {self._log_tail()}")
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if self.socket.exists() and client.ping():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer in {START_DEADLINE:g} s")
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        finally:
            client.close()

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join((self.dir / "redis.log").read_text().splitlines()[-5:])
        return "(no log)"

    def stop(self) -> None:
        """End the process, remove the directory. Twice is fine."""
        self._end_process()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _end_process(self) -> None:
        """SIGTERM by PID, wait; SIGKILL if it lingers, wait again (process_guard's)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(psutil.NoSuchProcess):
            end_processes([psutil.Process(process.pid)], STOP_WAIT)
        process.wait(timeout=STOP_WAIT)  # reaped already: only its returncode is set

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class _Shared:
    url: str | None = None


# The session's server URL, set by tests/contract/conftest.py before a redis factory runs.
SHARED = _Shared()


def shared_url() -> str:
    if SHARED.url is None:
        raise RuntimeError("no redis-server: the redis_url fixture (tests/contract) sets it")
    return SHARED.url
