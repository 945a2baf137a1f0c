"""A real ``redis-server`` for the tests: the product's own private one
(greenchat/backplane/private_redis.py: a Unix socket in a temporary directory, nothing
saved to disk, stopped by its PID), with a plain client to look at or upset it.

    with RedisServer() as server:
        store = RedisStore(server.url)

``tests/conftest.py`` makes one per session (the ``redis_url`` fixture) and hands its
URL to the ``redis`` factory of the contract tests through :data:`SHARED` (and the
session's Redis Cluster's, ``redis_cluster_url``, to the ``redis-cluster`` one).
"""

from __future__ import annotations

import shutil

import redis

from greenchat.backplane.private_redis import PrivateRedis

__all__ = ["SHARED", "SKIP_REASON", "RedisServer", "available", "shared_cluster_url", "shared_url"]

SKIP_REASON = "redis-server is not installed (make test-deps installs it)"


def available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer(PrivateRedis):
    """One redis-server process; ``extra`` are more of its command-line options."""

    def client(self) -> redis.Redis:
        """A plain client (tests use it to look at or upset the server)."""
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)


class _Shared:
    url: str | None = None
    cluster_url: str | None = None  # the session's Redis Cluster (tests/redis_cluster.py)


# The session's server URLs, set by tests/contract/conftest.py before a redis factory runs.
SHARED = _Shared()


def shared_url() -> str:
    if SHARED.url is None:
        raise RuntimeError("no redis-server: the redis_url fixture (tests/contract) sets it")
    return SHARED.url


def shared_cluster_url() -> str:
    if SHARED.cluster_url is None:
        raise RuntimeError("no cluster: the redis_cluster_url fixture (tests/contract) sets it")
    return SHARED.cluster_url
