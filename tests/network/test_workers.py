"""``greenchat-serve --workers N`` (greenchat/server/workers.py): the installed console
script, its worker processes on one port (SO_REUSEPORT), the private redis-server it
starts, kill -9 of a worker, SIGHUP and SIGTERM passed on."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import psutil
import pytest
import redis_server
from serve_process import SERVE
from transcript import IrcClient

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not redis_server.available(), reason=redis_server.SKIP_REASON),
]

CLIENTS = 16  # enough that SO_REUSEPORT's hash sends some to each of 2 workers


def _workers(server) -> list[psutil.Process]:
    """The supervisor's worker processes (not its redis-server)."""
    return [p for p in server.ps.children() if "redis-server" not in p.name()]


def _redis(server) -> list[psutil.Process]:
    return [p for p in server.ps.children() if "redis-server" in p.name()]


def _served_by(worker: psutil.Process, port: int) -> int:
    """How many connections to ``port`` this worker holds."""
    return sum(
        1
        for c in worker.net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def test_one_port_many_workers_one_network(serve):
    server = serve("--workers", "2", "--flood-rate", "0")
    workers = _workers(server)
    assert len(workers) == 2 and len(_redis(server)) == 1
    clients = [IrcClient(server.port).register(f"user{i}").join("#room") for i in range(CLIENTS)]
    try:
        for client in clients:
            client.sync()
        held = [_served_by(worker, server.port) for worker in workers]
        assert sum(held) == CLIENTS and all(held), held  # both workers have users
        first, last = clients[0], clients[-1]
        first.send("PRIVMSG #room :hello from one worker")
        for client in clients[1:]:
            client.expect(r":user0!\S+ PRIVMSG #room :hello from one worker")
        last.send("WHOIS user0")
        last.expect(r" 311 \S+ user0 ")
        last.send("LUSERS")
        last.expect(rf" 251 \S+ :There are {CLIENTS} users")
    finally:
        for client in clients:
            client.close()


def _one_on_each(server, nick: str, caps: str = "") -> list[IrcClient]:
    """Clients of ``server`` until each worker holds one (the kernel picks by a hash of
    the addresses): the first client on each, registered as ``nick``1, ``nick``2..."""
    workers, chosen, spare = _workers(server), {}, []
    for _ in range(64):
        client = IrcClient(server.port)
        client.send("PING :where")  # answered before registration: the connection is up
        client.expect(r"PONG")
        port = client.sock.getsockname()[1]
        owner = next(w.pid for w in workers if port in _client_ports(w))
        (spare if owner in chosen else chosen.setdefault(owner, [])).append(client)
        if len(chosen) == len(workers):
            break
    for other in spare:
        other.close()
    clients = [found[0] for found in chosen.values()]
    for number, client in enumerate(clients, 1):
        if caps:
            client.register_with_caps(f"{nick}{number}", caps)
        else:
            client.register(f"{nick}{number}")
    return clients


def _client_ports(worker: psutil.Process) -> set[int]:
    return {c.raddr.port for c in worker.net_connections("tcp") if c.raddr}


def test_workers_sharing_one_db_file_store_each_line_once(serve, tmp_path):
    server = serve("--workers", "2", "--db", str(tmp_path / "shared.db"), "--flood-rate", "0")
    one, two = _one_on_each(server, "talker", "batch draft/chathistory server-time")
    try:
        one.join("#h")
        two.join("#h")
        one.expect(r":talker2!\S+ JOIN #h")
        for n in range(3):
            one.send(f"PRIVMSG #h :one {n}")
            two.expect(rf"PRIVMSG #h :one {n}")
            two.send(f"PRIVMSG #h :two {n}")
            one.expect(rf"PRIVMSG #h :two {n}")
        said = [f"{who} {n}" for n in range(3) for who in ("one", "two")]
        deadline = time.monotonic() + 10
        while (got := _history(one, "#h")) != said:  # the other worker writes in batches
            assert time.monotonic() < deadline, got
            time.sleep(0.05)
    finally:
        one.close()
        two.close()


def _history(client, target: str) -> list[str]:
    client.send(f"CHATHISTORY LATEST {target} * 100")
    ref = client.expect(r"BATCH \+(\S+) chathistory")[1]
    texts = []
    while (line := client.read_line()) is not None and f"BATCH -{ref}" not in line:
        if " PRIVMSG " in line:
            texts.append(line.rsplit(" :", 1)[1])
    return texts


def test_a_killed_worker_is_restarted_and_its_users_quit_everywhere(serve):
    server = serve("--workers", "2")
    clients = [IrcClient(server.port).register(f"user{i}").join("#room") for i in range(CLIENTS)]
    try:
        for client in clients:
            client.sync()
        victim = _workers(server)[0]
        theirs = {c.raddr.port for c in victim.net_connections("tcp") if c.raddr}
        gone = [i for i, c in enumerate(clients) if c.sock.getsockname()[1] in theirs]
        stays = [c for i, c in enumerate(clients) if i not in gone]
        assert gone and stays
        victim.send_signal(signal.SIGKILL)
        server.wait_log(r"worker \d exited \(signal 9\)")
        server.wait_log(r"worker \d restarted \(pid \d+\)", timeout=15)
        _wait_for(lambda: len(_workers(server)) == 2, 10, "two workers again")
        stays[0].expect(rf":user{gone[0]}!\S+ QUIT :\*\.net \*\.split", timeout=30)
        again = IrcClient(server.port).register(f"user{gone[0]}")  # its nick is free again
        again.close()
    finally:
        for client in clients:
            client.close()


def test_sighup_reaches_every_worker_and_sigterm_stops_them_all(serve):
    server = serve("--workers", "2")
    workers = _workers(server)
    redis = _redis(server)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"worker 1 greenchat\.server: configuration reloaded")
    server.wait_log(r"worker 2 greenchat\.server: configuration reloaded")
    assert server.stop() == 0
    assert not [p for p in workers + redis if p.is_running() and p.status() != "zombie"]


def test_without_redis_server_it_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bin"
    path.mkdir()
    for tool in ("python3",):  # nothing named redis-server on this PATH
        os.symlink(shutil.which(tool), path / tool)
    result = subprocess.run(
        [str(SERVE), "--workers", "2", "--port", "0", "--no-web", "--db", ":memory:"],
        env=dict(os.environ, PATH=str(path)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "greenchat-serve: --workers without --backplane needs redis-server: redis-server "
        "is not on PATH (Debian: apt-get install redis-server)"
    ]
    assert result.stdout == ""


def test_a_port_in_use_exits_1_with_one_line(tmp_path):
    with socket_in_use() as port:
        result = subprocess.run(
            [str(SERVE), "--workers", "2", "--port", str(port), "--no-web", "--db", ":memory:"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"greenchat-serve: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


class socket_in_use:
    """A port some other program listens on (without SO_REUSEPORT)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return self.sock.getsockname()[1]

    def __exit__(self, *exc_info) -> None:
        self.sock.close()
