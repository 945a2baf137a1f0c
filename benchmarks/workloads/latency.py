"""latency: a steady stream into a big room; send-to-arrival latency and CPU per delivery.

N=2000 members; 10 senders write 50 lines a second in total (5 each,
staggered) for 20 s, about 100,000 deliveries a second. Each line's text
starts with ``T<CLOCK_MONOTONIC ns>`` taken just before its send; every 20th
member reads as soon as data arrives and records each line's latency, the
others are polled every 100 ms and only count (so the generator stays cheap
and its own scheduling delays touch only the sampled readers).
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from loadgen import (
    Client,
    Fleet,
    FleetSpec,
    cdf_points,
    cpu_delta,
    cpu_seconds,
    nonblocking,
    stream_totals,
    timed_text,
)

from workloads import (
    CPU_PER_DELIVERY,
    DELIVERIES,
    GENERATOR_UTIL,
    SERVER_UTIL,
    Case,
    Metric,
    Options,
    Server,
    Workload,
)

CHANNEL = "#latency"


def cases(server: str, opts: Options) -> list[Case]:
    if opts.quick:
        params = {"clients": 30, "senders": 3, "rate": 30, "duration": 1.0, "sample_every": 5}
        return [Case("N=30", params)]
    params = {"clients": 2000, "senders": 10, "rate": 50, "duration": 20.0, "sample_every": 20}
    return [Case("N=2000, 50 msg/s", params)]


def sender(client: Client, start: float, interval: float, count: int, size: int) -> None:
    """Send ``count`` timed lines, one every ``interval`` s from ``start`` (no catching up)."""
    for k in range(count):
        delay = start + k * interval - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        client.send(b"PRIVMSG " + CHANNEL.encode() + b" :" + timed_text(size) + b"\r\n")


def poll(clients: list[Client], targets: list[int], every: float, end: float) -> list[str]:
    """Count the unsampled members' lines every ``every`` s until all are in or ``end``."""
    pending = list(zip(clients, targets, strict=True))
    errors: list[str] = []
    nonblocking(clients)
    try:
        while pending and time.monotonic() < end:
            gevent.sleep(every)
            still = []
            for client, target in pending:
                if not client.count_available():
                    errors.append(f"{client.nick}: server closed the connection")
                elif client.count < target:
                    still.append((client, target))
            pending = still
    finally:
        nonblocking(clients, False)
    return errors


def latency_round(
    clients: list[Client],
    first: int,
    senders: int,
    rate: float,
    duration: float,
    size: int,
    sample_every: int,
    poll_every: float,
    grace: float,
) -> dict[str, Any]:
    """One process's part: send (if it holds senders), time the sampled, count the rest."""
    start = time.monotonic() + 0.05
    interval = senders / rate
    count = max(1, round(duration * rate / senders))
    for s in range(max(0, senders - first)):
        offset = s * interval / senders
        gevent.spawn(sender, clients[s], start + offset, interval, count, size)
    for client in clients:
        client.count = 0
    targets = [count * (senders - (first + i < senders)) for i in range(len(clients))]
    sampled = [i for i in range(len(clients)) if (first + i) % sample_every == 0]
    latencies: list[int] = []
    timed = [
        gevent.spawn(clients[i].receive_timed, targets[i], latencies) for i in sampled
    ]  # fmt: skip
    rest = [i for i in range(len(clients)) if (first + i) % sample_every]
    end = start + duration + grace
    errors = poll([clients[i] for i in rest], [targets[i] for i in rest], poll_every, end)
    gevent.joinall(timed, timeout=max(0.0, end - time.monotonic()))
    gevent.killall(timed, block=False)
    errors += [str(job.exception) for job in timed if job.exception]
    delivered = sum(c.count for c in clients)
    return {
        "delivered": delivered,
        "expected": sum(targets),
        "last": time.monotonic(),
        "latencies_us": latencies,
        "errors": errors[:3],
    }


def run(server: Server, params: dict[str, Any], opts: Options) -> dict[str, Any]:
    spec = FleetSpec(
        server.host, server.port, params["clients"], opts.procs, opts.concurrency, "", opts.sources
    )
    with Fleet(spec) as fleet:
        fleet.join(CHANNEL)
        before = cpu_seconds(server.pid)
        t0 = time.monotonic()
        rounds = fleet.call(
            latency_round,
            senders=params["senders"],
            rate=params["rate"],
            duration=params["duration"],
            size=params.get("size", 64),
            sample_every=params["sample_every"],
            poll_every=params.get("poll_every", 0.1),
            grace=params.get("grace", 15.0),
        )
        cpu = cpu_delta(before, cpu_seconds(server.pid))
    return summarize(rounds, t0, cpu, params)


def summarize(
    rounds: list[dict[str, Any]],
    t0: float,
    cpu: tuple[float, float, float] | None,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Latency percentiles (ms), deliveries/s and CPU per delivery over the whole stream."""
    totals, latencies_ms = stream_totals(rounds, t0, cpu)
    result = {"members": params["clients"], **totals}
    result["samples"] = len(latencies_ms)
    result["cdf_ms"] = cdf_points(latencies_ms)
    if cpu:
        result["server_core_util"] = cpu[2] / totals["wall_s"]
    return result


LATENCY = Workload(
    name="latency",
    title="Latency: 2,000 members, 50 lines/s from 10 senders for 20 s (~100k deliveries/s)",
    description=(
        "Each line carries its send time; every 20th member timestamps arrivals "
        "(latency = arrival - send, CLOCK_MONOTONIC), the rest are polled and counted. "
        "CPU per delivery is over the whole stream."
    ),
    metrics=(
        Metric("p50_ms", "p50 ms", "{:.2f}", ratio=True),
        Metric("p90_ms", "p90 ms", "{:.2f}"),
        Metric("p99_ms", "p99 ms", "{:.2f}", ratio=True),
        Metric("max_ms", "max ms", "{:.1f}"),
        CPU_PER_DELIVERY,
        DELIVERIES,
        Metric("delivered", "delivered"),
        SERVER_UTIL,
        GENERATOR_UTIL,
    ),
    cases=cases,
    run=run,
    variants=("greenchat-nodelay",),
    scales_out=True,
)
