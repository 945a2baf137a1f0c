"""joinstorm: 5,000 registered clients all JOIN one channel at once.

Each JOIN is relayed to everyone already in the channel and answered with
the NAMES list, so the storm costs the server O(N^2): N(N+1)/2 JOIN lines
(about 12.5 million for N=5000) and as many nicks in NAMES replies. Measured:
the wall time from the first JOIN sent until every client has its 366 (end
of NAMES), the server CPU seconds until then, and the server CPU until every
client has also drained the JOIN lines of later joiners (a PING/PONG
behind them), which is the whole cost of the storm.
"""

from __future__ import annotations

import time
from typing import Any

from loadgen import Fleet, FleetSpec, cpu_delta, cpu_seconds, finish_sync, join_storm

from workloads import GENERATOR_UTIL, Case, Metric, Options, Server, Workload

CHANNEL = "#storm"


def cases(server: str, opts: Options) -> list[Case]:
    if opts.quick:
        return [Case("N=40", {"clients": 40})]
    return [Case("N=5000", {"clients": 5_000, "deadline": 300.0})]


def run(server: Server, params: dict[str, Any], opts: Options) -> dict[str, Any]:
    n = params["clients"]
    deadline = params.get("deadline", 120.0)
    spec = FleetSpec(server.host, server.port, n, opts.procs, opts.concurrency, "", opts.sources)
    with Fleet(spec) as fleet:
        fleet.sync("registered")
        before = cpu_seconds(server.pid)
        t0 = time.monotonic()
        joined = fleet.call(join_storm, channel=CHANNEL, tag="storm", deadline=deadline)
        at_366 = cpu_seconds(server.pid)
        drained = fleet.call(finish_sync, tag="storm", deadline=deadline)
        after = cpu_seconds(server.pid)
    wall = max(r["last_366"] for r in joined) - t0
    drain_wall = max(r["done"] for r in drained) - t0
    gen_cpu = [a["cpu"] + b["cpu"] for a, b in zip(joined, drained, strict=True)]
    relayed = n * (n + 1) // 2  # JOIN lines, each joiner's own echo included
    result: dict[str, Any] = {
        "clients": n,
        "wall_s": wall,
        "joins_per_s": n / wall,
        "drained_s": drain_wall,
        "join_lines": relayed,
        "generator_cpu_s": sum(gen_cpu),
        "generator_core_util": max(gen_cpu) / drain_wall,
    }
    to_366, total = cpu_delta(before, at_366), cpu_delta(before, after)
    if to_366 and total:
        result |= {
            "server_cpu_s": to_366[2],
            "server_cpu_total_s": total[2],
            "server_us_per_join_line": total[2] * 1e6 / relayed,
        }
    return result


STORM = Workload(
    name="joinstorm",
    title="Join storm: 5,000 registered clients JOIN one channel at once",
    description=(
        "`wall s` = first JOIN sent to the last 366 received; `server CPU s` over that window; "
        "`CPU incl. drain` until every member also read the JOIN lines of later joiners "
        "(N(N+1)/2 lines in all). Target: <= 10 s server CPU for N=5000."
    ),
    metrics=(
        Metric("wall_s", "wall s", "{:.2f}", ratio=True),
        Metric("server_cpu_s", "server CPU s", "{:.2f}", ratio=True),
        Metric("server_cpu_total_s", "CPU incl. drain s", "{:.2f}", ratio=True),
        Metric("drained_s", "drained s", "{:.2f}"),
        Metric("server_us_per_join_line", "µs/JOIN line", "{:.3f}"),
        GENERATOR_UTIL,
    ),
    cases=cases,
    run=run,
)
