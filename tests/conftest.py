"""Shared fixtures: a real server on port 0 (in-process or the installed script) and raw
IRC clients, all cleaned up."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis_server
from serve_process import ServeProcess
from transcript import IrcClient, ServerThread

from greenchat.client import IrcClient as LibraryClient
from greenchat.server.config import ServerConfig

# Fails the run if a process the tests started outlives it (tests/process_guard.py).
pytest_plugins = ["process_guard"]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One real redis-server for the session (tests/redis_server.py), on a Unix socket;
    the tests that need it skip without redis-server."""
    if not redis_server.available():
        pytest.skip(redis_server.SKIP_REASON)
    with redis_server.RedisServer() as server:
        yield server.url


@pytest.fixture
def make_server():
    """Factory: start a server with config overrides; stopped after the test."""
    started: list[ServerThread] = []

    def make(**overrides) -> ServerThread:
        server = ServerThread(replace(ServerConfig(), **overrides)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server) -> ServerThread:
    return make_server()


@pytest.fixture
def connect(server):
    """Factory: a raw client connected to ``server`` (optionally registered)."""
    clients: list[IrcClient] = []

    def make(nick: str | None = None, port: int | None = None) -> IrcClient:
        client = IrcClient(port or server.port)
        clients.append(client)
        if nick:
            client.register(nick)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def clients():
    """Factory: greenchat's own client library (``greenchat.client.IrcClient``) to a
    port; closed after the test."""
    made: list[LibraryClient] = []

    def make(port: int, nick: str, **options) -> LibraryClient:
        client = LibraryClient("127.0.0.1", port, nick, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def serve():
    """Factory: the installed ``greenchat-serve --port 0 ARGS...``; stopped afterwards."""
    started: list[ServeProcess] = []

    def start(*args: str, **kwargs) -> ServeProcess:
        process = ServeProcess(*args, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (``item.report_call``), so a fixture can
    tell in its teardown whether the test failed (the browser tests keep a screenshot)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
