"""The Redis store's servers for the contract tests: the session's redis-server
(``redis_url``, tests/conftest.py) and Redis Cluster (``redis_cluster_url``), each
started by the first test of its factory (``redis``, ``redis-cluster``); those tests
skip without redis-server."""

from __future__ import annotations

import pytest
import redis_server

# A FACTORIES entry -> the session fixture whose URL it needs, and where it finds it.
_URLS = {"redis": ("redis_url", "url"), "redis-cluster": ("redis_cluster_url", "cluster_url")}


@pytest.fixture(autouse=True)
def _redis_for_the_redis_factories(request: pytest.FixtureRequest) -> None:
    """A FACTORIES entry is a function of tmp_path alone, so the ``redis`` ones find the
    session's servers through redis_server.SHARED, set here first (autouse fixtures run
    before the ``factory`` fixture that calls them)."""
    callspec = getattr(request.node, "callspec", None)
    wanted = _URLS.get(callspec.params.get("factory")) if callspec is not None else None
    if wanted is not None:
        fixture, attribute = wanted
        setattr(redis_server.SHARED, attribute, request.getfixturevalue(fixture))
