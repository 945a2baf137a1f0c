"""idle: memory per connection with 10,000 registered, idle clients.

The server's resident memory (``VmRSS`` in ``/proc/PID/status``) is read
after it has started, then again once 10,000 clients have registered, all
answered a PING and a moment has passed; the difference divided by the
clients is the cost of one idle connection. The clients join no channel.
Registration speed and its server CPU come for free.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from loadgen import Fleet, FleetSpec, cpu_delta, cpu_seconds, memory_kb

from workloads import Case, Metric, Options, Server, Workload

SETTLE_S = 1.0  # let the server finish what registration left (queues, timers)


def cases(server: str, opts: Options) -> list[Case]:
    if opts.quick:
        return [Case("N=40", {"clients": 40, "settle": 0.1})]
    return [Case("N=10000", {"clients": 10_000})]


def run(server: Server, params: dict[str, Any], opts: Options) -> dict[str, Any]:
    n = params["clients"]
    settle = params.get("settle", SETTLE_S)
    gevent.sleep(settle)
    rss_before = memory_kb(server.pid)
    cpu_before = cpu_seconds(server.pid)
    spec = FleetSpec(server.host, server.port, n, opts.procs, opts.concurrency, "", opts.sources)
    t0 = time.monotonic()
    with Fleet(spec) as fleet:
        connect_s = time.monotonic() - t0
        fleet.sync("idle")
        cpu = cpu_delta(cpu_before, cpu_seconds(server.pid))
        gevent.sleep(settle)
        rss_after = memory_kb(server.pid)
        hwm = memory_kb(server.pid, "VmHWM")
    result: dict[str, Any] = {
        "clients": n,
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "rss_peak_kb": hwm,
        "kb_per_connection": (rss_after - rss_before) / n,
        "register_s": connect_s,
        "registrations_per_s": n / connect_s,
    }
    if cpu:
        result |= {"server_cpu_s": cpu[2], "server_us_per_registration": cpu[2] * 1e6 / n}
    return result


IDLE = Workload(
    name="idle",
    title="Idle connections: 10,000 registered clients, no channel",
    description=(
        "Server VmRSS before and after 10,000 clients registered (NICK/USER, 001, "
        "PING/PONG) and sat idle; KB per connection = growth / clients."
    ),
    metrics=(
        Metric("kb_per_connection", "KB/connection", "{:.1f}", ratio=True),
        Metric("rss_before_kb", "RSS before KB"),
        Metric("rss_after_kb", "RSS after KB"),
        Metric("registrations_per_s", "registrations/s", ratio=True),
        Metric("server_us_per_registration", "server µs/registration", "{:.0f}", ratio=True),
    ),
    cases=cases,
    scales_out=True,
    run=run,
)
