"""The seam between nodes of one network.

A single server has no backplane: :meth:`Hub.apply <greenchat.server.hub.Hub.apply>`
applies every event at once. With ``--backplane redis://...`` the server is one
node of a network (:mod:`greenchat.backplane.redis`): every node keeps a replica
of the network's users and channels, Redis puts every change in one order, and
every node applies that order (DESIGN.md, decision 11).

A change the network refuses when its turn comes (the nick was taken a moment
before, the +l channel filled up) raises :class:`Refused` in the handler that
proposed it; a network that cannot be reached raises :class:`Unavailable`.
The command table turns both into replies (commands/table.py).
"""

from __future__ import annotations

__all__ = ["Refused", "Unavailable"]


class Refused(Exception):
    """The network's order decided against a change: reply ``numeric params...``."""

    def __init__(self, numeric: str, *params: str) -> None:
        super().__init__(numeric, *params)
        self.numeric = numeric
        self.params = params


class Unavailable(Exception):
    """The network (Redis) cannot be reached now: ``FAIL <command> TEMPORARILY_UNAVAILABLE``."""
