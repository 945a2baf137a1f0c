"""The Redis store's server for the contract tests: the session's redis-server
(``redis_url``, tests/conftest.py), started by the first test of the ``redis`` factory;
those tests skip without it."""

from __future__ import annotations

import pytest
import redis_server


@pytest.fixture(autouse=True)
def _redis_for_the_redis_factory(request: pytest.FixtureRequest) -> None:
    """A FACTORIES entry is a function of tmp_path alone, so the ``redis`` one finds the
    session's server through redis_server.SHARED, set here first (autouse fixtures run
    before the ``factory`` fixture that calls it)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("factory") == "redis":
        redis_server.SHARED.url = request.getfixturevalue("redis_url")
