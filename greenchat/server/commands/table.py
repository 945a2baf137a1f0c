"""The command table: each command registered once, checked in one place.

A handler is registered with the minimum number of parameters it needs,
whether it may run before registration completes and whether only operators
may use it. :func:`dispatch` applies those checks (``421`` unknown command,
``451`` not registered, ``461`` not enough parameters, ``481`` not an
operator) so handlers only deal with their own logic.

A handler that waits (for the thread pool, later for a database) is
registered with ``yields=True`` and waits only through :func:`wait_for`:
while it waits other greenlets run and fan out to its client, and those lines
must not be taken for its replies (labeled-response), so the capture of its
replies pauses around the wait. A handler whose reply may be too big to build
at once is registered with ``paged=True``: it is a generator, and paging.py
sends its reply a page at a time.

A command whose answer or checks read other users' and channels' state is
registered with ``fresh=True``: on a node of a network it first waits for its
node to apply every change made anywhere before it arrived (the backplane's
``catch_up``), so a WHOIS on one node sees the AWAY just confirmed on another.
Messages to channels, the hot path, never wait; a message to a nick waits only
when the nick is not known here (commands/messaging.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import gevent

from greenchat.backplane import Refused, Unavailable
from greenchat.protocol.message import Message
from greenchat.protocol.numerics import (
    ERR_NEEDMOREPARAMS,
    ERR_NOPRIVILEGES,
    ERR_NOTREGISTERED,
    ERR_UNKNOWNCOMMAND,
)
from greenchat.store.base import StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

__all__ = [
    "COMMANDS", "CommandSpec", "caught_up", "command", "dispatch", "wait_for", "wait_for_store",
]  # fmt: skip

# A paged handler returns an iterator (it is a generator); the others None.
Handler = Callable[["ChatServer", "Session", Message], Iterator[None] | None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    handler: Handler
    min_params: int
    before_registration: bool
    oper: bool  # operators only: 481 for anyone else
    yields: bool  # waits (through wait_for): other greenlets run meanwhile
    paged: bool  # a generator: its reply goes out page by page (paging.py)
    fresh: bool  # on a network node, waits to hold every change made before it came
    help: str  # what HELP says: the syntax, a newline, what it does (commands/help.py)


COMMANDS: dict[str, CommandSpec] = {}


def command(
    name: str,
    *,
    min_params: int = 0,
    before_registration: bool = False,
    oper: bool = False,
    yields: bool = False,
    paged: bool = False,
    fresh: bool = False,
    help: str = "",
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``name``; ``help`` is its
    HELP topic (required: a command without one is refused, so none goes undocumented)."""

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"command {name} registered twice")
        if "\n" not in help:
            raise ValueError(f"command {name} needs help: its syntax, a newline, what it does")
        spec = CommandSpec(
            name, handler, min_params, before_registration, oper, yields, paged, fresh, help
        )
        COMMANDS[name] = spec
        return handler

    return register


def dispatch(server: ChatServer, conn: Session, msg: Message) -> Iterator[None] | None:
    """Check and run one command; a paged handler's pages are returned to be paced."""
    name = msg.command.upper()
    spec = COMMANDS.get(name)
    server.metrics.commands[name if spec is not None else "unknown"] += 1
    if spec is None:
        conn.numeric(ERR_UNKNOWNCOMMAND, name, "Unknown command")
    elif not conn.user.registered and not spec.before_registration:
        conn.numeric(ERR_NOTREGISTERED, "You have not registered")
    elif len(msg.params) < spec.min_params:
        conn.numeric(ERR_NEEDMOREPARAMS, name, "Not enough parameters")
    elif spec.oper and "o" not in conn.user.modes:
        conn.numeric(ERR_NOPRIVILEGES, "Permission Denied - You're not an IRC operator")
    else:
        if spec.fresh:
            caught_up(conn)
        try:
            return spec.handler(server, conn, msg)
        except Refused as refused:  # the network's order decided against it (backplane)
            conn.numeric(refused.numeric, *refused.params)
        except Unavailable as exc:
            conn.fail(name, "TEMPORARILY_UNAVAILABLE", f"The network is unavailable: {exc}")
    return None


def caught_up(conn: Session) -> bool:
    """On a node of a network: wait until it applied every change the network made
    before now (the backplane's ``catch_up``), the labeled capture paused as in
    :func:`wait_for`; True then. False at once on a single server: nothing to wait for."""
    backplane = conn.server.hub.backplane
    if backplane is None:
        return False
    with conn.uncaptured():
        backplane.catch_up()
    return True


def wait_for(conn: Session, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in gevent's thread pool, for a ``yields=True`` handler.

    Only this client's reader waits. Lines other greenlets fan out to the
    client meanwhile go out as they come, not into a labeled reply.
    """
    with conn.uncaptured():
        return gevent.get_hub().threadpool.apply(function, args)


def wait_for_store(conn: Session, call: str, *args: Any) -> Any:
    """``store.<call>(*args)`` of the account store (store/base.py) on the store's own
    thread (server/storage.py), for a ``yields=True`` handler; as :func:`wait_for`.
    StoreUnavailable when the store fails (or, in a server never started, is missing)."""
    storage = conn.server.storage
    if storage is None:
        raise StoreUnavailable("the server has no storage open")
    with conn.uncaptured():
        result = storage.run(getattr(storage.store, call), *args)
    if not conn.user.registered:  # a login while registering: its next step takes a turn
        conn.server.registration_lane.take_turn()
    return result
