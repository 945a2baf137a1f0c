"""The workloads of ``bench.py``: what each measures, its sizes per server, how it runs.

A :class:`Workload` names its metrics (the columns of its table in
``summary.md``; those with ``ratio`` also get a "vs greenchat" column) and
gives, per server, the :class:`Case` list to run: each case runs against a
freshly started server and returns one flat result dict. A case may be
skipped for a server (the thread-per-client baseline cannot hold every
size); the reason is recorded instead of a result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Server(Protocol):
    """What a workload needs of a running server (``servers.RunningServer``)."""

    name: str
    host: str
    port: int
    pid: int
    metrics_url: str | None
    web_address: tuple[str, int] | None


@dataclass(frozen=True)
class Options:
    """Generator settings from bench.py's command line."""

    procs: int = 1  # generator processes
    sources: int = 1  # loopback source addresses (127.0.0.1 .. 127.0.0.K)
    concurrency: int = 100  # registrations in flight
    quick: bool = False  # tiny sizes (the smoke test)


@dataclass(frozen=True)
class Case:
    """One measurement: a label (the table row, e.g. ``N=5000``) and its parameters.

    ``params["metrics"]`` true: the server starts with its metrics listener
    (``servers.start(metrics=True)``, greenchat only) and ``run`` gets a
    server whose ``metrics_url`` is set; ``params["web"]`` true: with its
    web listener (``servers.start(web=True)``), ``web_address`` set;
    ``params["db"]`` true: its accounts in a fresh SQLite file in the run's
    temporary folder (``servers.start(db=True)``) instead of ``:memory:``.
    """

    label: str
    params: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None  # why this server does not run it


@dataclass(frozen=True)
class Metric:
    """A column of the workload's table: result key, header, format, ratio column or not."""

    key: str
    header: str
    fmt: str = "{:,.0f}"
    ratio: bool = False

    def format(self, value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int | float):
            return self.fmt.format(value)
        return str(value)


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    description: str
    metrics: tuple[Metric, ...]
    cases: Callable[[str, Options], list[Case]]  # (server name, options) -> cases
    run: Callable[[Server, dict[str, Any], Options], dict[str, Any]]
    # Adds values that compare one server's cases ({label: result}), in place.
    derive: Callable[[dict[str, dict[str, Any]]], None] | None = None
    # greenchat variants (servers.VARIANTS) this workload also runs; the others skip them.
    variants: tuple[str, ...] = ()
    # Runs the greenchat-wN variants of bench.py --workers (one network of N processes).
    scales_out: bool = False


def registry() -> dict[str, Workload]:
    """Every workload by name, in the order bench.py runs them."""
    from workloads import (
        accounttag,
        crowd,
        idle,
        joinstorm,
        latency,
        logins,
        rooms,
        slow,
        websocket,
    )

    found = [rooms.FANOUT, rooms.BIGROOM, latency.LATENCY, idle.IDLE, slow.SLOW, joinstorm.STORM,
             websocket.WEBSOCKET, logins.LOGINS, accounttag.ACCOUNTTAG, crowd.CROWD]  # fmt: skip
    return {w.name: w for w in found}


# Columns most workloads share.
DELIVERIES = Metric("deliveries_per_s", "deliveries/s", ratio=True)
CPU_PER_DELIVERY = Metric("server_us_per_delivery", "server µs/delivery", "{:.3f}", ratio=True)
SERVER_UTIL = Metric("server_core_util", "server cores", "{:.2f}")
GENERATOR_UTIL = Metric("generator_core_util", "generator cores", "{:.2f}")
