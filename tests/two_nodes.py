"""Two nodes of one network that a test takes for one server (conftest's ``topology``).

The integration suite runs each test twice: against one :class:`ServerThread`
and against a :class:`TwoNodes` (``[two-nodes]`` in the test's id), two
in-process servers that share the session's redis-server as one network, with
accounts and history in it too (``--db redis``). Every read of ``.port`` gives
the other node's port, so the clients a test makes alternate between the nodes:
the first on node 0, the second on node 1, and so on. Whatever else a test asks
of the server (``.server``, ``.call``) is node 0's.

A test that needs one process is marked ``single_process`` with why, and runs
only against one node.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from transcript import ServerThread, until

from greenchat.server.config import REDIS_DB, ServerConfig

__all__ = ["TwoNodes"]

_networks = itertools.count(1)


class TwoNodes:
    """Two nodes of a network of their own on the Redis at ``redis_url``."""

    def __init__(self, config: ServerConfig, redis_url: str) -> None:
        network = f"suite{next(_networks)}"
        db = REDIS_DB if config.db == ServerConfig().db else config.db
        shared = replace(config, backplane=redis_url, network=network, db=db)
        self.nodes = [ServerThread(shared), ServerThread(shared)]
        self._turns = itertools.cycle(range(len(self.nodes)))

    def start(self) -> TwoNodes:
        for node in self.nodes:
            node.start()
        return self

    @property
    def port(self) -> int:
        """The next node's port: node 0, node 1, node 0..."""
        return self.nodes[next(self._turns)].port

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def stop(self, timeout: float = 10.0) -> None:
        for node in reversed(self.nodes):
            node.stop(timeout)

    def __getattr__(self, name: str) -> Any:
        # config, server, call...: node 0's.
        return getattr(self.nodes[0], name)


def followed(server: Any, channel: str, timeout: float = 10.0) -> None:
    """Until every node holds the same ChanServ record of ``channel``: a node follows
    another's change of a registered channel by reading it again (shared_store.py),
    a moment after the changing node has replied. Nothing to wait for on one node."""
    nodes = getattr(server, "nodes", None)
    if not nodes:
        return

    def agree() -> bool:
        return len({repr(node.server.channel_registry.get(channel)) for node in nodes}) == 1

    until(agree, timeout, f"the nodes' records of {channel} agree")
