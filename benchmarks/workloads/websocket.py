"""websocket: the fan-out of ``fanout`` over IRC-over-WebSocket and over TCP, in one run.

``fanout.py --transports tcp,ws`` against one greenchat started with its web
listener (``--web-port 0``): a fleet of 1,000 TCP clients in ``#fanout`` and
one of 1,000 WebSocket clients (``GET /`` upgraded with subprotocol
``text.ircv3.net``, a masked text frame per line sent, the server's frames
counted in the raw stream) in ``#fan-ws``, both joined before the first
repetition; then 10 senders x 200 lines in each room, repetitions
alternating tcp, ws, tcp, ws ... so that other load on the machine weighs on
both. The result is each transport's medians and the ratio of WebSocket to
TCP server CPU per delivery: the target is at most 1.5x (``fanout.WS_TARGET``).

Only greenchat has a web listener: the other servers, and ``--baseline``
revisions whose ``greenchat-serve --help`` lists no ``--web-port``, skip it.
"""

from __future__ import annotations

from typing import Any

import fanout
import servers
from loadgen import medians

from workloads import GENERATOR_UTIL, Case, Metric, Options, Server, Workload

TRANSPORTS = "tcp,ws"


def websocket_cases(server: str, opts: Options) -> list[Case]:
    if opts.quick:
        params = {"clients": 20, "senders": 2, "messages": 20, "repeat": 1}
        label = "N=20"
    else:
        params = {"clients": 1000, "senders": 10, "messages": 200, "repeat": 5}
        label = "N=1000"
    params |= {"transports": TRANSPORTS, "web": True}
    skip = None
    if not servers.has_web(server):
        skip = (
            "no web listener at this revision (its --help lists no --web-port)"
            if server in servers.BASELINES
            else "no IRC over WebSocket (greenchat's web listener only)"
        )
    return [Case(label, params, skip)]


def run(server: Server, params: dict[str, Any], opts: Options) -> dict[str, Any]:
    """fanout.py's benchmark over both transports; each one's medians and ws/tcp."""
    if getattr(server, "web_address", None) is None:
        raise RuntimeError(f"{server.name} was started without its web listener")
    argv = [
        "--clients", params["clients"],
        "--senders", params["senders"],
        "--messages", params["messages"],
        "--repeat", params["repeat"],
        "--deadline", params.get("deadline", 120.0),
        "--procs", opts.procs,
        "--sources", opts.sources,
        "--connect-concurrency", opts.concurrency,
        "--transports", params["transports"],
    ]  # fmt: skip
    args = fanout.parse_args([str(a) for a in argv])
    series = fanout.benchmark(args, server, strict=False)
    result: dict[str, Any] = {"members": params["clients"]}
    runs: list[dict[str, Any]] = []
    for transport, (rows, join_s) in series.items():
        found = medians([r for r in rows if r["complete"]] or rows)
        result |= {
            f"{transport}_us_per_delivery": found.get("server_us_per_delivery"),
            f"{transport}_deliveries_per_s": found.get("deliveries_per_s"),
            f"{transport}_wall_s": found.get("wall_s"),
            f"{transport}_join_s": join_s,
        }
        runs += rows
    runs.sort(key=lambda r: (r["run"], args.transports.index(r["transport"])))
    expected = sum(r["expected"] for r in runs)
    delivered = sum(r["delivered"] for r in runs)
    util = [r["generator_max_core_util"] for r in runs if r.get("generator_max_core_util")]
    result |= {
        "complete": all(r["complete"] for r in runs)
        and all(len(rows) == params["repeat"] for rows, _ in series.values()),
        "expected": expected,
        "delivered": delivered,
        "dropped": expected - delivered,
        "extra_deliveries": sum(r.get("extra_deliveries", 0) for r in runs),
        "generator_core_util": max(util, default=None),
        "runs": runs,
    }
    ratio = fanout.ws_vs_tcp({t: rows for t, (rows, _) in series.items()})
    if ratio is not None:
        result |= {
            "ws_vs_tcp": ratio.get("server_us_per_delivery"),
            "ws_vs_tcp_paired": ratio.get("paired_median"),
            "ws_vs_tcp_deliveries": ratio.get("deliveries_per_s"),
            "target_max": ratio["target_max"],
            "ratios": ratio,
        }
        if "met" in ratio:
            result["met"] = ratio["met"]
    if errors := [e for r in runs for e in r.get("errors", [])]:
        result["errors"] = errors[:5]
    return result


WEBSOCKET = Workload(
    name="websocket",
    title="WebSocket fan-out: 1,000 members over WebSocket vs TCP, 10 senders x 200 lines",
    description=(
        "One greenchat with its web listener on; a room of N TCP clients and a room of N"
        " WebSocket clients (text.ircv3.net, a frame per line); S senders x M lines in each,"
        " repetitions alternating tcp, ws. `WS/TCP` is the ratio of the medians of server CPU"
        f" per delivery (target <= {fanout.WS_TARGET:g}x), `paired` the median of each ws"
        " repetition over the tcp one before it."
    ),
    metrics=(
        Metric("tcp_us_per_delivery", "TCP µs/delivery", "{:.3f}", ratio=True),
        Metric("ws_us_per_delivery", "WS µs/delivery", "{:.3f}", ratio=True),
        Metric("ws_vs_tcp", "WS/TCP", "{:.2f}"),
        Metric("ws_vs_tcp_paired", "WS/TCP paired", "{:.2f}"),
        Metric("tcp_deliveries_per_s", "TCP deliveries/s", ratio=True),
        Metric("ws_deliveries_per_s", "WS deliveries/s", ratio=True),
        Metric("dropped", "dropped"),
        Metric("ws_join_s", "WS join s", "{:.1f}"),
        GENERATOR_UTIL,
    ),
    cases=websocket_cases,
    run=run,
)
