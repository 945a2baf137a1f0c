"""crowd: 100,000 clients at once in 1,000 rooms, through ``--workers`` (issue 16).

One process here may open at most 20,000 files, so only the ``greenchat-wN`` variants
(bench.py ``--workers``) can hold this many; the generator spreads the clients over
``--procs`` processes (at most 20,000 each) and ``--sources`` loopback addresses
(127.0.0.x: about 28,000 ephemeral ports each). Client ``i`` joins room ``#r<i mod
1000>``; once every client has joined and answered a PING, the first member of each
room says M lines there at once, and every other member must receive every one.

Reported: the time to register and to join, every delivery (``dropped`` must be 0),
the server's resident memory (the supervisor, every worker and redis-server) before
the clients and with them connected, per connection, and the server CPU of the
delivery.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from loadgen import Client, Fleet, FleetSpec, cpu_delta, cpu_seconds, finish_sync, memory_kb
from servers import WORKER_PREFIX

from workloads import Case, Metric, Options, Server, Workload

CLIENTS, ROOMS, LINES = 100_000, 1_000, 5
PER_PROCESS = 20_000  # open files one generator process may have here
PORTS_PER_SOURCE = 28_000  # ephemeral ports one source address has toward one port
SETTLE_S = 1.0
JOIN_DEADLINE = 300.0


def cases(server: str, opts: Options) -> list[Case]:
    if opts.quick:
        return [Case("N=200, 10 rooms", {"clients": 200, "rooms": 10, "lines": 2}, _skip(server))]
    params = {"clients": CLIENTS, "rooms": ROOMS, "lines": LINES}
    skip = _skip(server) or _generator_skip(opts)
    return [Case(f"N={CLIENTS:,}, {ROOMS:,} rooms", params, skip)]


def _skip(server: str) -> str | None:
    if not server.startswith(WORKER_PREFIX):
        return "beyond one process here (at most 20,000 open files): --workers variants only"
    return None


def _generator_skip(opts: Options) -> str | None:
    if opts.procs * PER_PROCESS < CLIENTS + opts.procs * 64:
        return f"needs --procs {-(-CLIENTS // (PER_PROCESS - 64))} or more"
    if opts.sources * PORTS_PER_SOURCE < CLIENTS:
        return f"needs --sources {-(-CLIENTS // PORTS_PER_SOURCE)} or more"
    return None


def join_rooms(clients: list[Client], first: int, rooms: int) -> dict[str, Any]:
    """In a generator process: each client joins its room, up to its 366."""
    for offset, client in enumerate(clients):
        client.send(f"JOIN #r{(first + offset) % rooms}\r\n".encode())
    jobs = [gevent.spawn(client.drain_until, f" 366 {client.nick} ".encode()) for client in clients]
    gevent.joinall(jobs, raise_error=True, timeout=JOIN_DEADLINE)
    if missing := sum(1 for job in jobs if not job.ready()):
        gevent.killall(jobs, block=False)
        raise RuntimeError(f"{missing} clients had no 366 within {JOIN_DEADLINE:g} s")
    return {}


def say_and_count(clients: list[Client], first: int, rooms: int, lines: int) -> dict[str, Any]:
    """In a generator process: the rooms' first members say ``lines`` lines each; every
    other member here counts its deliveries. Lines that arrive later than the deadline
    are missing from the count."""
    receivers = []
    for offset, client in enumerate(clients):
        client.count = 0
        if first + offset >= rooms:
            receivers.append(client)
    jobs = [gevent.spawn(client.receive, lines) for client in receivers]
    for offset, client in enumerate(clients):
        index = first + offset
        if index < rooms:
            room = f"#r{index}"
            client.send(b"".join(f"PRIVMSG {room} :{n} hello\r\n".encode() for n in range(lines)))
    gevent.joinall(jobs, timeout=120.0)
    return {"delivered": sum(client.count for client in receivers), "done": time.monotonic()}


def run(server: Server, params: dict[str, Any], opts: Options) -> dict[str, Any]:
    n, rooms, lines = params["clients"], params["rooms"], params["lines"]
    gevent.sleep(SETTLE_S)
    rss_before = memory_kb(server.pid)
    spec = FleetSpec(server.host, server.port, n, opts.procs, opts.concurrency, "", opts.sources)
    t0 = time.monotonic()
    with Fleet(spec) as fleet:
        register_s = time.monotonic() - t0
        t1 = time.monotonic()
        fleet.call(join_rooms, rooms=rooms)
        fleet.call(finish_sync, tag="crowd", deadline=300.0)
        join_s = time.monotonic() - t1
        gevent.sleep(SETTLE_S)
        rss_after = memory_kb(server.pid)
        cpu_before = cpu_seconds(server.pid)
        t2 = time.monotonic()
        results = fleet.call(say_and_count, rooms=rooms, lines=lines)
        wall = max(r["done"] for r in results) - t2
        cpu = cpu_delta(cpu_before, cpu_seconds(server.pid))
    expected = (n - rooms) * lines
    delivered = sum(r["delivered"] for r in results)
    result: dict[str, Any] = {
        "clients": n,
        "rooms": rooms,
        "register_s": round(register_s, 1),
        "registrations_per_s": round(n / register_s),
        "join_s": round(join_s, 1),
        "expected": expected,
        "delivered": delivered,
        "dropped": expected - delivered,
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "kb_per_connection": (rss_after - rss_before) / n,
        "deliver_s": round(wall, 2),
    }
    if cpu:
        result["server_us_per_delivery"] = cpu[2] * 1e6 / max(delivered, 1)
    return result


CROWD = Workload(
    name="crowd",
    title="A crowd: 100,000 clients in 1,000 rooms at once (--workers only)",
    description=(
        "100,000 registered clients, client i in room #r<i mod 1000>; the first member of "
        "each room says 5 lines; every other member must get each. RSS is the whole "
        "server's (supervisor, workers, redis-server); KB per connection = its growth / "
        "clients. Needs bench.py --workers N --procs 6 --sources 4 or more."
    ),
    metrics=(
        Metric("register_s", "register s", "{:.1f}"),
        Metric("registrations_per_s", "registrations/s"),
        Metric("join_s", "join s", "{:.1f}"),
        Metric("delivered", "delivered"),
        Metric("dropped", "dropped"),
        Metric("rss_after_kb", "RSS KB"),
        Metric("kb_per_connection", "KB/connection", "{:.1f}"),
        Metric("server_us_per_delivery", "server µs/delivery", "{:.2f}"),
    ),
    cases=cases,
    run=run,
    scales_out=True,
)
