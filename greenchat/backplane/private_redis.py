"""A ``redis-server`` of one's own: on a Unix socket in a temporary directory, nothing
saved to disk, stopped by its PID. ``greenchat-serve --workers N`` runs its workers'
network on one (greenchat/server/workers.py); the tests run theirs on one too.

    with PrivateRedis() as server:
        url = server.url  # unix:///tmp/gc-redis-.../redis.sock?db=0

:class:`PrivateCluster` is a Redis Cluster of one's own, of three such servers on
loopback TCP, for the tests and ``benchmarks/crossnode.py --cluster``.

Blocking code: the supervisor that uses it is a plain process, not a gevent one.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

__all__ = ["PrivateCluster", "PrivateRedis", "RedisMissing", "redis_server_path"]

START_DEADLINE = 10.0  # seconds until it must answer PING
STOP_WAIT = 5.0  # after SIGTERM, then after SIGKILL
SLOTS = 16384  # a Redis Cluster's hash slots
FORM_DEADLINE = 20.0  # seconds until every node of a cluster says cluster_state:ok
START_TRIES = 3


class RedisMissing(RuntimeError):
    """No ``redis-server`` on PATH; ``str()`` says so in one line."""


def redis_server_path() -> str:
    """Where ``redis-server`` is; :class:`RedisMissing` when it is not on PATH."""
    path = shutil.which("redis-server")
    if path is None:
        raise RedisMissing("redis-server is not on PATH (Debian: apt-get install redis-server)")
    return path


class PrivateRedis:
    """One redis-server process; ``extra`` are more of its command-line options.

    ``preexec_fn`` runs in the child before it executes redis-server (the supervisor
    uses it to tie the child's life to its own)."""

    def __init__(self, *extra: str, preexec_fn: Callable[[], None] | None = None) -> None:
        self.extra = extra
        self.preexec_fn = preexec_fn
        self.dir: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        assert self.dir is not None, "not started"
        return self.dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> PrivateRedis:
        """Start it and wait until it answers; RuntimeError (with its log's last lines)
        when it does not, RedisMissing without redis-server."""
        command = redis_server_path()
        # mkdtemp under /tmp: a Unix socket's path must stay under 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="gc-redis-"))
        self.spawn(command)
        return self

    def restart(self) -> None:
        """A new process on the same socket (empty: nothing is saved)."""
        self.end_process()
        self.spawn()

    def spawn(self, command: str | None = None) -> None:
        """Start the process (again, after :meth:`end_process`) and wait until it answers."""
        argv = [
            command or redis_server_path(),
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
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec_fn,
            start_new_session=True,  # a terminal's Ctrl-C is for whoever started it
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
                    raise RuntimeError(f"redis-server exited at start: {self.log_tail()}")
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if self.socket.exists() and client.ping():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer in {START_DEADLINE:g} s")
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        finally:
            client.close()

    def log_tail(self) -> str:
        """Its log's last lines, on one line."""
        with contextlib.suppress(OSError):
            return " | ".join((self.dir / "redis.log").read_text().splitlines()[-5:])
        return "(no log)"

    def stop(self) -> None:
        """End the process, remove the directory. Twice is fine."""
        self.end_process()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def end_process(self) -> None:
        """SIGTERM, wait; SIGKILL if it lingers, wait again. The directory stays."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_WAIT)

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateCluster:
    """A Redis Cluster of ``masters`` redis-servers on loopback TCP (a cluster cannot run
    on Unix sockets: its nodes tell clients where a slot lives by address), each with
    its share of the slots and no replicas, nothing saved.

    The ports are picked free by the kernel (bound to port 0, then released) just before
    each server starts; a clash with another process in between fails the start, which
    is tried again with new ports. ``server_class`` makes each server (a subclass of
    PrivateRedis)."""

    def __init__(self, masters: int = 3, server_class: type[PrivateRedis] = PrivateRedis) -> None:
        self.masters = masters
        self.server_class = server_class
        self.servers: list[PrivateRedis] = []
        self.addresses: list[tuple[int, int]] = []  # (client port, cluster bus port)

    @property
    def url(self) -> str:
        """Any node's address will do: a cluster client finds the others from it."""
        return f"redis://127.0.0.1:{self.addresses[0][0]}/0"

    @property
    def pids(self) -> list[int]:
        return [server.pid for server in self.servers if server.pid is not None]

    def clients(self) -> list[redis.Redis]:
        """A plain client of each node."""
        return [redis.Redis(port=port, socket_timeout=5) for port, _ in self.addresses]

    def start(self) -> PrivateCluster:
        for attempt in range(START_TRIES):
            try:
                self._start_servers()
                break
            except RuntimeError:  # a port taken between the probe and the start
                self.stop()
                if attempt == START_TRIES - 1:
                    raise
        try:
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_servers(self) -> None:
        for _ in range(self.masters):
            port, bus = _free_port(), _free_port()
            server = self.server_class(
                "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-port", str(bus),
                "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                "--enable-debug-command", "local",  # DEBUG SLEEP: a test's slow shard
            )  # fmt: skip
            self.servers.append(server)
            self.addresses.append((port, bus))
            server.start()

    def _form(self) -> None:
        """Give each node its share of the slots, introduce them, wait until all agree."""
        clients = self.clients()
        try:
            share = SLOTS // self.masters
            for index, client in enumerate(clients):
                last = SLOTS - 1 if index == self.masters - 1 else (index + 1) * share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", index * share, last)
            first_port, first_bus = self.addresses[0]
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", first_port, first_bus)
            deadline = time.monotonic() + FORM_DEADLINE
            while not all(self._ready(client) for client in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not form in {FORM_DEADLINE:g} s")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def _ready(self, client: redis.Redis) -> bool:
        info = client.execute_command("CLUSTER INFO")
        return (
            info.get("cluster_state") == "ok" and int(info["cluster_known_nodes"]) == self.masters
        )

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers, self.addresses = [], []

    def __enter__(self) -> PrivateCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
