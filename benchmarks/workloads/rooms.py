"""fanout and bigroom: one channel, senders writing unthrottled bursts (fanout.py's benchmark).

Both run ``fanout.benchmark``: N members join one channel, S senders each
write M lines in one ``sendall``, every other member must receive every
line. ``fanout`` is the classic N=1000, 10 x 200; ``bigroom`` asks whether
rooms of 5,000 and 10,000 still get every line to every member (``dropped``
must be 0) and what a delivery costs there.

``fanout`` has one more case for the current greenchat only, ``N=1000
scraped``: the same burst with the server's metrics listener on
(``--metrics-port 0``, which the older revisions ``--baseline`` measures
may not know) and ``/metrics`` scraped every 20 ms while it is in flight
(``fanout.py --metrics``, ``scrape.py``): how long a scrape takes under
that load, and whether ``greenchat_deliveries_total`` rose by exactly the
deliveries the clients counted. Its CPU per delivery includes the scrapes;
the plain ``N=1000`` case is the one compared across servers and revisions.
"""

from __future__ import annotations

from typing import Any

import fanout
import scrape
from loadgen import medians
from servers import WORKER_PREFIX

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

THREADED = "threaded"
SCALED_OUT = 20_000  # members of the room only the --workers variants hold
SCRAPED = "greenchat"  # the server whose fanout also runs a scraped case (--metrics-port)
SCRAPE_INTERVAL = 0.02  # seconds between scrape starts during a burst
# Servers whose 10,000-member setup would take minutes of the run: joining is
# N(N+1)/2 relayed JOIN lines, 50 million for N=10,000.
SLOW_JOINS = {
    THREADED: "thread per client: 50M JOIN lines, one blocking sendall each under a global"
    " lock (N=5000 already takes 1-2 min)",
    "ngircd": "ngIRCd relays JOIN lines at ~5 µs each: 50M for N=10,000 is over 4 min"
    " (see its N=5000 join s)",
}


def fanout_cases(server: str, opts: Options) -> list[Case]:
    if opts.quick:
        cases = [Case("N=20", {"clients": 20, "senders": 2, "messages": 20, "repeat": 1})]
    else:
        # The thread-per-client baseline manages ~150k deliveries/s: 50 lines per
        # sender (0.5M deliveries a repetition) instead of 200 keeps it to seconds.
        messages = 50 if server == THREADED else 200
        params = {"clients": 1000, "senders": 10, "messages": messages, "repeat": 3}
        cases = [Case("N=1000", params)]
    if server == SCRAPED:  # after the plain case, which the targets and ratios read first
        plain = cases[0]
        cases.append(Case(f"{plain.label} scraped", plain.params | {"metrics": True}))
    return cases


def bigroom_cases(server: str, opts: Options) -> list[Case]:
    if opts.quick:
        return [Case("N=50", {"clients": 50, "senders": 2, "messages": 5, "repeat": 1})]
    cases = []
    for n in (5_000, 10_000, SCALED_OUT):
        repeat = 1 if server == THREADED else 3  # its 5,000-member join alone takes a minute
        params = {"clients": n, "senders": 5, "messages": 20, "repeat": repeat, "deadline": 300.0}
        skip = SLOW_JOINS.get(server) if n > 5_000 else None
        if n == SCALED_OUT:
            skip = _scaled_out_skip(server, opts)
        cases.append(Case(f"N={n}", params, skip))
    return cases


def _scaled_out_skip(server: str, opts: Options) -> str | None:
    """Why the 20,000-member room does not run against ``server`` (None: it does)."""
    if not server.startswith(WORKER_PREFIX):
        return "beyond one process here (at most 20,000 open files): --workers variants only"
    if opts.procs < 2:
        return "20,000 connections need --procs 2 or more (20,000 files per process)"
    return None


def run(server: Server, params: dict[str, Any], opts: Options) -> dict[str, Any]:
    """fanout.py's benchmark with these parameters; medians of the repetitions."""
    argv = [
        "--clients", params["clients"],
        "--senders", params["senders"],
        "--messages", params["messages"],
        "--repeat", params["repeat"],
        "--deadline", params.get("deadline", 120.0),
        "--procs", opts.procs,
        "--sources", opts.sources,
        "--connect-concurrency", opts.concurrency,
    ]  # fmt: skip
    if params.get("metrics"):
        if not server.metrics_url:
            raise RuntimeError(f"{server.name} was started without its metrics listener")
        argv += ["--metrics-url", server.metrics_url, "--scrape-interval", SCRAPE_INTERVAL]
    args = fanout.parse_args([str(a) for a in argv])
    runs, join_s = fanout.benchmark(args, server, strict=False)["tcp"]
    result: dict[str, Any] = medians([r for r in runs if r["complete"]] or runs)
    expected = sum(r["expected"] for r in runs)
    delivered = sum(r["delivered"] for r in runs)
    result |= {
        "members": params["clients"],
        "complete": all(r["complete"] for r in runs),
        "expected": expected,
        "delivered": delivered,
        "dropped": expected - delivered,
        "extra_deliveries": sum(r.get("extra_deliveries", 0) for r in runs),
        "join_s": join_s,
        "generator_core_util": result.get("generator_max_core_util"),
        "runs": runs,
    }
    if params.get("metrics"):
        result |= scrape.summarize(runs)
    if errors := [e for r in runs for e in r.get("errors", [])]:
        result["errors"] = errors[:5]
    return result


COMMON = (
    DELIVERIES,
    CPU_PER_DELIVERY,
    SERVER_UTIL,
    Metric("wall_s", "burst s", "{:.2f}"),
    GENERATOR_UTIL,
    Metric("generator_cpu_s", "generator CPU s", "{:.2f}"),
)

FANOUT = Workload(
    name="fanout",
    title="Fan-out: 1,000 members, 10 senders x 200 lines, unthrottled",
    description=(
        "N members in one channel; S senders each write M PRIVMSG lines in one sendall; "
        "every other member must receive every line. Medians of R repetitions."
    ),
    metrics=(
        *COMMON,
        Metric("scrapes", "scrapes"),
        Metric("scrape_ms_median", "scrape ms", "{:.1f}"),
        Metric("scrape_ms_max", "scrape max ms", "{:.1f}"),
        Metric("counter_agrees", "counter = delivered"),
    ),
    cases=fanout_cases,
    run=run,
    variants=("greenchat-nodelay",),
    scales_out=True,
)

BIGROOM = Workload(
    name="bigroom",
    title="Big rooms: 5,000, 10,000 and (--workers) 20,000 members, 5 senders x 20 lines",
    description=(
        "Like fanout with bigger rooms and fewer lines; `dropped` counts deliveries that "
        "never arrived (must be 0). `join s` is the registration and JOIN of all members."
    ),
    metrics=(
        *COMMON[:2],
        Metric("dropped", "dropped"),
        Metric("join_s", "join s", "{:.1f}"),
        *COMMON[2:],
    ),
    cases=bigroom_cases,
    run=run,
    scales_out=True,
)
