"""Shared fixtures: a real server on port 0 (in-process or the installed script) and raw
IRC clients, all cleaned up."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis_cluster
import redis_server
from serve_process import ServeProcess
from transcript import IrcClient, ServerThread
from two_nodes import TwoNodes

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


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """One real Redis Cluster for the session (tests/redis_cluster.py: three masters on
    loopback TCP); skipped without redis-server."""
    if not redis_server.available():
        pytest.skip(redis_server.SKIP_REASON)
    with redis_cluster.RedisCluster() as cluster:
        yield cluster.url


ONE_NODE, TWO_NODES = "one-node", "two-nodes"
INTEGRATION = Path(__file__).parent / "integration"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "single_process(why): runs against one node only, not two (tests/two_nodes.py)",
    )


def pytest_generate_tests(metafunc):
    """The integration suite's servers: one node, and two nodes over Redis
    (tests/two_nodes.py), unless the test is marked ``single_process``."""
    if "topology" not in metafunc.fixturenames:
        return
    if INTEGRATION not in metafunc.definition.path.parents:
        return
    marker = metafunc.definition.get_closest_marker("single_process")
    if marker is not None and not (marker.args and marker.args[0]):
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: single_process needs a why")
    topologies = [ONE_NODE] if marker is not None else [ONE_NODE, TWO_NODES]
    metafunc.parametrize("topology", topologies)


@pytest.fixture
def topology() -> str:
    """One node, outside tests/integration (pytest_generate_tests parametrizes it there)."""
    return ONE_NODE


@pytest.fixture
def make_server(request, topology):
    """Factory: start a server with config overrides (two nodes of one network when the
    topology says so); stopped after the test."""
    started: list[ServerThread | TwoNodes] = []

    def make(**overrides) -> ServerThread | TwoNodes:
        config = replace(ServerConfig(), **overrides)
        if topology == TWO_NODES:
            server = TwoNodes(config, request.getfixturevalue("redis_url")).start()
        else:
            server = ServerThread(config).start()
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
