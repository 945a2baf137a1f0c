"""``greenchat-serve --workers N``: N server processes on one port, one network.

The supervisor is a plain process (no gevent, no hub): it

* reserves each port the workers will share (bound with SO_REUSEPORT, never
  listening, so the kernel hands connections only to the workers and a restarted
  worker finds its port still ours; port 0 is resolved here, once, for all);
* starts a private ``redis-server`` on a Unix socket in a temporary directory
  (greenchat/backplane/private_redis.py) unless ``--backplane`` names one;
* starts the workers: ``greenchat-serve`` again, with the same arguments plus the
  resolved ports and the backplane (and ``--db redis`` for ``--db :memory:``, which
  would give each worker a memory of its own; a file they share), and
  ``GREENCHAT_WORKER`` set to the worker's number, which makes it listen with
  SO_REUSEPORT and print one ``ready`` line;
* restarts a worker that dies (at once after a long life, after a doubling pause,
  1 s to 30 s, when it keeps dying young), passes SIGHUP on (each worker re-reads
  the config file), and on SIGTERM or SIGINT stops the workers, then Redis.

Each child is in a session of its own, so a terminal's Ctrl-C reaches only the
supervisor, which stops the workers before their Redis; each also gets SIGTERM from
the kernel should the supervisor itself die (PR_SET_PDEATHSIG).

Signals wake one ``select`` through :func:`signal.set_wakeup_fd`: no polling.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from greenchat.server.config import REDIS_DB, ServerConfig, show_address
from greenchat.store.sqlite import MEMORY

if TYPE_CHECKING:  # imported when used: a worker reads this module before gevent patches
    from greenchat.backplane.private_redis import PrivateRedis

__all__ = ["WORKER_ENV", "StartFailed", "Supervisor", "ready_line", "worker_number"]

WORKER_ENV = "GREENCHAT_WORKER"  # set in each worker's environment: its number, from 1
READY_PREFIX = "greenchat-worker-ready "
SERVE = Path(sys.executable).parent / "greenchat-serve"

READY_DEADLINE = 30.0  # seconds a worker may take to listen
STOP_DEADLINE = 30.0  # after SIGTERM, before SIGKILL (sessions are told and flushed first)
LONG_LIFE = 10.0  # a worker that ran this long is restarted at once
FIRST_PAUSE, LAST_PAUSE = 1.0, 30.0  # between restarts of one that keeps dying young

# The ports the workers share: (config attribute, the host attribute it listens on).
SHARED_PORTS = (
    ("port", "host"),
    ("tls_port", "host"),
    ("web_port", "web_host"),
    ("web_tls_port", "web_host"),
)
PR_SET_PDEATHSIG = 1


class StartFailed(Exception):
    """The workers could not be started; ``str()`` says why in one line, ``status`` is the
    exit status for it (1: could not listen or run; 2: a setting, as for one process)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def worker_number() -> int | None:
    """This process's number as a worker of ``--workers``, or None when it is not one."""
    value = os.environ.get(WORKER_ENV, "")
    return int(value) if value.isdigit() else None


def ready_line(addresses: dict[str, tuple[str, int] | None]) -> str:
    """What a worker prints on stdout once it listens: for its supervisor, not a person."""
    return READY_PREFIX + json.dumps(addresses)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Worker:
    number: int
    process: subprocess.Popen | None = None
    started: float = 0.0
    ready: dict | None = None  # the addresses it reported
    pause: float = FIRST_PAUSE  # before the next restart, when it dies young
    restart_at: float | None = None
    _pending: bytes = field(default=b"", repr=False)


class Supervisor:
    """Runs ``config.workers`` workers; ``argv`` are the arguments greenchat-serve got."""

    def __init__(self, config: ServerConfig, argv: Sequence[str]) -> None:
        self.config = config
        self.argv = list(argv)
        self.redis: PrivateRedis | None = None
        self.backplane = config.backplane
        self.reserved: dict[str, socket.socket] = {}
        self.workers = [Worker(number) for number in range(1, config.workers + 1)]
        self.selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self.stopping = False

    # -- starting -------------------------------------------------------------------

    def start(self) -> None:
        """Reserve the ports, start Redis and every worker, and wait until all listen.
        StartFailed (after undoing what was started) when any of that fails."""
        try:
            self._reserve_ports()
            if self.backplane is None:
                self._start_redis()
            self._catch_signals()
            for worker in self.workers:
                self._spawn(worker)
            self._wait_ready()
        except BaseException:
            self._stop_all()
            raise

    def _reserve_ports(self) -> None:
        for attr, host_attr in SHARED_PORTS:
            port = getattr(self.config, attr)
            if port is None or (attr.startswith("web") and not self.config.web):
                continue
            host = getattr(self.config, host_attr)
            sock = self._reserve(host, port)
            self.reserved[attr] = sock

    @staticmethod
    def _reserve(host: str, port: int) -> socket.socket:
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
        except OSError as exc:
            why = exc.strerror or exc
            raise StartFailed(f"cannot listen on {show_address(host, port)}: {why}") from None
        return sock

    def port_of(self, attr: str) -> int | None:
        sock = self.reserved.get(attr)
        return None if sock is None else sock.getsockname()[1]

    def _start_redis(self) -> None:
        from greenchat.backplane.private_redis import PrivateRedis, RedisMissing

        self.redis = PrivateRedis(preexec_fn=_die_with_parent)
        try:
            self.redis.start()
        except RedisMissing as exc:
            message = f"--workers without --backplane needs redis-server: {exc}"
            raise StartFailed(message, 2) from None
        except (OSError, RuntimeError) as exc:
            raise StartFailed(f"cannot start redis-server: {exc}") from None
        self.backplane = self.redis.url

    def _catch_signals(self) -> None:
        self._wake_write.setblocking(False)
        signal.set_wakeup_fd(self._wake_write.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, _noted)  # the byte on the wakeup socket says which
        self.selector.register(self._wake_read, selectors.EVENT_READ, None)

    def worker_argv(self, worker: Worker) -> list[str]:
        """greenchat-serve's own arguments, then what this worker must use instead:
        flags override the config file, and a later flag an earlier one."""
        extra = ["--workers", "1", "--backplane", self.backplane]
        if self.config.db == MEMORY:  # one memory each would not be shared: Redis is
            extra += ["--db", REDIS_DB]
        for attr, _ in SHARED_PORTS:
            port = self.port_of(attr)
            if port is not None:
                extra += ["--" + attr.replace("_", "-"), str(port)]
        if self.config.metrics_port is not None:  # one each: a scrape must name its worker
            port = self.config.metrics_port
            extra += ["--metrics-port", str(port + worker.number - 1 if port else 0)]
        return [str(SERVE), *self.argv, *extra]

    def _spawn(self, worker: Worker) -> None:
        env = dict(os.environ, **{WORKER_ENV: str(worker.number)})
        worker.process = subprocess.Popen(
            self.worker_argv(worker),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,  # its ready line; its logs go to our stderr
            env=env,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        worker.started = time.monotonic()
        worker.ready = None
        worker.restart_at = None
        worker._pending = b""
        self.selector.register(worker.process.stdout, selectors.EVENT_READ, worker)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE
        while not all(worker.ready for worker in self.workers) and not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StartFailed(f"the workers did not listen within {READY_DEADLINE:g} s")
            self._step(left, starting=True)

    # -- running ----------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT; then stop everything. Exit status 0."""
        try:
            while not self.stopping:
                self._step(self._next_restart_in(), starting=False)
        finally:
            self._stop_all()
        return 0

    def _next_restart_in(self) -> float | None:
        due = [w.restart_at for w in self.workers if w.restart_at is not None]
        return None if not due else max(0.0, min(due) - time.monotonic())

    def _step(self, timeout: float | None, starting: bool) -> None:
        """Wait for a signal, a worker's output or a restart that is due; handle it."""
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                self._on_signals(self._wake_read.recv(64))
            else:
                self._on_output(key.data)
        self._reap(starting)
        now = time.monotonic()
        for worker in self.workers:
            if worker.restart_at is not None and worker.restart_at <= now and not self.stopping:
                self._spawn(worker)
                _say(f"worker {worker.number} restarted (pid {worker.process.pid})")

    def _on_signals(self, signums: bytes) -> None:
        for signum in signums:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.stopping = True
            elif signum == signal.SIGHUP:
                self._send_all(signal.SIGHUP)

    def _on_output(self, worker: Worker) -> None:
        """A worker's stdout: its ready line, or end of file when it exits."""
        stream = worker.process.stdout
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            self.selector.unregister(stream)
            return
        worker._pending += chunk
        while b"\n" in worker._pending:
            line, worker._pending = worker._pending.split(b"\n", 1)
            text = line.decode(errors="replace")
            if text.startswith(READY_PREFIX):
                worker.ready = json.loads(text.removeprefix(READY_PREFIX))

    def _reap(self, starting: bool) -> None:
        """Workers that exited: at start, a failure to report; later, a restart to plan."""
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is None:
                continue
            self._forget(worker)
            status = process.returncode
            if starting:
                raise StartFailed(f"worker {worker.number} exited with status {status}",
                                  2 if status == 2 else 1)  # fmt: skip
            if self.stopping:
                continue
            self._plan_restart(worker, status)

    def _forget(self, worker: Worker) -> None:
        process, worker.process = worker.process, None
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(process.stdout)
        process.stdout.close()

    def _plan_restart(self, worker: Worker, status: int) -> None:
        lived = time.monotonic() - worker.started
        if lived >= LONG_LIFE:
            worker.pause = FIRST_PAUSE
            worker.restart_at = time.monotonic()
        else:
            worker.restart_at = time.monotonic() + worker.pause
            worker.pause = min(LAST_PAUSE, worker.pause * 2)
        how = f"signal {-status}" if status < 0 else f"status {status}"
        wait = worker.restart_at - time.monotonic()
        _say(f"worker {worker.number} exited ({how}) after {lived:.1f} s; "
             f"restarting it in {wait:.0f} s")  # fmt: skip

    # -- stopping ---------------------------------------------------------------------

    def _send_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)

    def _stop_all(self) -> None:
        """SIGTERM to every worker, wait (SIGKILL past STOP_DEADLINE), then Redis."""
        self.stopping = True
        self._send_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_DEADLINE
        for worker in self.workers:
            process = worker.process
            if process is None:
                continue
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self._forget(worker)
        if self.redis is not None:
            self.redis.stop()
        for sock in self.reserved.values():
            sock.close()
        signal.set_wakeup_fd(-1)


def _noted(signum, frame) -> None:
    """A signal handler that does nothing: the wakeup socket carries the signal."""


def _say(text: str) -> None:
    print(f"greenchat-serve: {text}", file=sys.stderr, flush=True)
