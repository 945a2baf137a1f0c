"""Two (or more) nodes of one network over the session's redis-server (redis_url).

``nodes(2)`` starts two in-process servers (port 0) with ``--backplane`` on the
session's redis-server (``backplane_url``: a module may name another, the session's
Redis Cluster) and a network name of their own, so tests never see each
other's users. ``redis_server`` is that server, for the tests that upset it.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from transcript import IrcClient, ServerThread

from greenchat.server.config import ServerConfig

_networks = itertools.count(1)


def pytest_generate_tests(metafunc):
    """A module that says ``ON_A_CLUSTER_TOO = True`` runs its tests on the session's
    redis-server and again on its Redis Cluster; not those that ask for ``redis_url``
    themselves (they put something between a node and that one Redis)."""
    if not getattr(metafunc.module, "ON_A_CLUSTER_TOO", False):
        return
    if "backplane_url" not in metafunc.fixturenames:
        return
    kinds = ["redis"] if "redis_url" in metafunc.fixturenames else ["redis", "cluster"]
    metafunc.parametrize("backplane_url", kinds, indirect=True)


@pytest.fixture
def backplane_url(request) -> str:
    """The Redis the nodes share: the session's redis-server, or its Redis Cluster."""
    kind = getattr(request, "param", "redis")
    return request.getfixturevalue("redis_cluster_url" if kind == "cluster" else "redis_url")


@pytest.fixture
def nodes(backplane_url):
    """Factory: ``nodes(n, **config)`` -> n started servers of one new network."""
    started: list[ServerThread] = []

    def make(
        count: int = 2, url: str | None = None, network: str | None = None, **overrides
    ) -> list[ServerThread]:
        """``network``: join that one (a node started later) instead of a new one."""
        network = network or f"net{next(_networks)}"
        url = url or backplane_url
        config = replace(ServerConfig(), backplane=url, network=network, **overrides)
        first = len(started)
        made = [ServerThread(replace(config, name=f"node{first + i}.test")) for i in range(count)]
        for server in made:
            server.start()
            started.append(server)
        return made

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def connect():
    """Factory: ``connect(server, nick=None)`` -> a raw client of that node."""
    clients: list[IrcClient] = []

    def make(server: ServerThread, nick: str | None = None) -> IrcClient:
        client = IrcClient(server.port)
        clients.append(client)
        if nick:
            client.register(nick)
        return client

    yield make
    for client in clients:
        client.close()
