"""slow: 10% of a room stops reading; do the other 90% still get their lines, and how fast?

N=1000 members; the last 10% (indexes 900-999) connect with a 4 KiB receive
buffer, read up to the end of their JOIN and then never read again. 10
senders each write 2,000 lines of 400 bytes in one burst, about 9 MB for
every member: more than the ~3 MB the kernel buffers on loopback for a
member that does not read plus greenchat's 4 MiB sendq, so the sendq limit
is reached. Measured on the 900
healthy members: deliveries/s and latency (every 20th times each line from
the ``T<ns>`` stamp set when the burst was built). The server's RSS is
sampled every 20 ms for its peak, which the sendq should bound.

The same workload runs twice, each on a fresh server: ``control`` (nobody
stops reading, the 100 would-be slow members read like the rest) and
``10% slow``; ``vs control`` is the healthy members' throughput ratio.
Afterwards each stalled member is drained to see whether the server
disconnected it (``ERROR :SendQ exceeded`` then end of stream).
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from loadgen import (
    Client,
    Fleet,
    FleetSpec,
    RssSampler,
    cpu_delta,
    cpu_seconds,
    memory_kb,
    stream_totals,
    timed_text,
)

from workloads import (
    CPU_PER_DELIVERY,
    DELIVERIES,
    GENERATOR_UTIL,
    Case,
    Metric,
    Options,
    Server,
    Workload,
)

CHANNEL = "#slow"
STALL_CHECK_S = 3.0  # how long a stalled member is drained to see whether it was dropped


def cases(server: str, opts: Options) -> list[Case]:
    if opts.quick:
        base = {"clients": 40, "senders": 2, "messages": 20, "size": 400, "deadline": 5.0,
                "stall_check": 0.5}  # fmt: skip
    elif server == "threaded":
        # A stuck member blocks this server only once ~3 MB sit in the kernel's
        # buffers for it, and it manages ~150k deliveries/s: a room of 200 gets
        # there in seconds (so its ratios against greenchat are left out).
        base = {"clients": 200, "senders": 10, "messages": 2000, "size": 400, "deadline": 30.0}
    else:
        base = {"clients": 1000, "senders": 10, "messages": 2000, "size": 400, "deadline": 60.0}
    return [Case("control", {**base, "slow": 0.0}), Case("10% slow", {**base, "slow": 0.1})]


def burst(client: Client, messages: int, size: int) -> None:
    """Send ``messages`` timed lines in one sendall."""
    line = b"PRIVMSG " + CHANNEL.encode() + b" :"
    client.send(b"".join(line + timed_text(size) + b"\r\n" for _ in range(messages)))


def receiver(client: Client, target: int, latencies: list[int] | None, done: list[float]) -> None:
    if latencies is None:
        client.receive(target)
    else:
        client.receive_timed(target, latencies)
    done.append(time.monotonic())


def slow_round(
    clients: list[Client],
    first: int,
    senders: int,
    messages: int,
    size: int,
    healthy: int,
    sample_every: int,
    deadline: float,
) -> dict[str, Any]:
    """Burst from the senders; healthy members (index < ``healthy``) count and time lines."""
    for client in clients:
        client.count = 0
    mine = [i for i in range(len(clients)) if first + i < healthy]
    latencies: list[int] = []
    done: list[float] = []
    jobs = []
    for i in mine:
        target = messages * (senders - (first + i < senders))
        sample = latencies if (first + i) % sample_every == 0 else None
        jobs.append(gevent.spawn(receiver, clients[i], target, sample, done))
    for s in range(max(0, senders - first)):
        gevent.spawn(burst, clients[s], messages, size)
    gevent.joinall(jobs, timeout=deadline)
    gevent.killall(jobs, block=False)
    complete = len(done) == len(jobs)
    return {
        "delivered": sum(clients[i].count for i in mine),
        "expected": sum(messages * (senders - (first + i < senders)) for i in mine),
        "last": max(done) if complete and done else time.monotonic(),
        "latencies_us": latencies,
        "errors": [str(j.exception) for j in jobs if j.exception][:3],
    }


def drain_to_eof(client: Client) -> bool:
    """Read until the server closes the connection (True); runs until killed otherwise."""
    try:
        while True:
            client.read_chunk()
    except ConnectionError:
        return True


def stalled_status(clients: list[Client], first: int, healthy: int, wait: float) -> dict[str, Any]:
    """Drain the stalled members for ``wait`` s: how many had been disconnected?"""
    jobs = [gevent.spawn(drain_to_eof, c) for i, c in enumerate(clients) if first + i >= healthy]
    gevent.joinall(jobs, timeout=wait)
    gevent.killall(jobs, block=False)
    return {"stalled": len(jobs), "disconnected": sum(1 for j in jobs if j.value)}


def run(server: Server, params: dict[str, Any], opts: Options) -> dict[str, Any]:
    n = params["clients"]
    healthy = n - round(n * params["slow"])
    spec = FleetSpec(
        server.host,
        server.port,
        n,
        opts.procs,
        opts.concurrency,
        "",
        opts.sources,
        slow_from=healthy if healthy < n else None,
    )
    if params["senders"] > healthy or params["senders"] > n // opts.procs:
        raise RuntimeError("senders must be healthy members held by the main process")
    stalled = list(range(healthy, n))
    with Fleet(spec) as fleet:
        fleet.join(CHANNEL, skip=stalled)
        rss_before = memory_kb(server.pid)
        sampler = RssSampler(server.pid)
        cpu_before, t0 = cpu_seconds(server.pid), time.monotonic()
        rounds = fleet.call(
            slow_round,
            senders=params["senders"],
            messages=params["messages"],
            size=params["size"],
            healthy=healthy,
            sample_every=params.get("sample_every", 20),
            deadline=params["deadline"],
        )
        cpu = cpu_delta(cpu_before, cpu_seconds(server.pid))
        wait = params.get("stall_check", STALL_CHECK_S)
        status = fleet.call(stalled_status, healthy=healthy, wait=wait)
        peak = sampler.stop()
    result = summarize(rounds, t0, cpu, params, healthy)
    result |= {
        "rss_before_kb": rss_before,
        "rss_peak_kb": peak,
        "rss_growth_kb": peak - rss_before,
        "stalled": n - healthy,
        "stalled_disconnected": sum(s["disconnected"] for s in status),
    }
    return result


def summarize(
    rounds: list[dict[str, Any]],
    t0: float,
    cpu: tuple[float, float, float] | None,
    params: dict[str, Any],
    healthy: int,
) -> dict[str, Any]:
    totals, _ = stream_totals(rounds, t0, cpu)
    result = {"members": params["clients"], "healthy": healthy, **totals}
    result["delivered_fraction"] = totals["delivered"] / max(totals["expected"], 1)
    return result


def derive(by_label: dict[str, dict[str, Any]]) -> None:
    """The slow run's healthy throughput and p99 relative to the control run."""
    control, slow = by_label.get("control"), by_label.get("10% slow")
    if not control or not slow or "deliveries_per_s" not in control:
        return
    slow["vs_control"] = slow.get("deliveries_per_s", 0) / control["deliveries_per_s"]
    if control.get("p99_ms") and slow.get("p99_ms") is not None:
        slow["p99_vs_control"] = slow["p99_ms"] / control["p99_ms"]


SLOW = Workload(
    name="slow",
    title="Slow consumers: 1,000 members, 10% stop reading, 10 senders x 2,000 lines of 400 B",
    description=(
        "Healthy members' (the 900 that read) deliveries/s and burst latency with and without "
        "100 members that never read; `vs control` = throughput ratio (target >= 0.9). "
        "Peak server RSS sampled every 20 ms; `dropped` = stalled members the server "
        "disconnected."
    ),
    metrics=(
        DELIVERIES,
        Metric("vs_control", "vs control", "{:.2f}"),
        Metric("delivered_fraction", "delivered", "{:.1%}"),
        Metric("p50_ms", "p50 ms", "{:.0f}"),
        Metric("p99_ms", "p99 ms", "{:.0f}", ratio=True),
        CPU_PER_DELIVERY,
        Metric("rss_growth_kb", "RSS growth KB", ratio=True),
        Metric("stalled_disconnected", "dropped"),
        GENERATOR_UTIL,
    ),
    cases=cases,
    run=run,
    derive=derive,
)
