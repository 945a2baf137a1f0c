"""Channel fan-out benchmark for greenchat: deliveries per second and server CPU per delivery.

What is measured
----------------
N clients register (``NICK bI`` / ``USER``) and join one channel. S of them
(the *senders*) then each write M ``PRIVMSG #channel :<text>`` lines as fast
as they can, all at once, in one ``sendall``. The server must deliver every
line to every other member, so one repetition expects ``S * M * (N - 1)``
deliveries (a sender does not get its own lines back).

For each repetition the benchmark records, over the window from the first
send to the last expected delivery:

* wall time and deliveries per second;
* the server's CPU time (user + system of its PID, via psutil) and so the
  server CPU microseconds per delivery, the number to compare across changes;
* the load generator's own CPU time (``getrusage``): if it nears one core per
  generator process, the generator and not the server is the bottleneck and
  ``--procs`` should be raised.

How
---
The load generator is ``loadgen.py`` (gevent, raw sockets). Registrations
are bounded by a semaphore so the server's listen backlog never overflows;
then every client sends its JOIN at once and drains the JOIN lines of the
others until a ``PING``/``PONG`` sync, so no JOIN traffic is left in flight.
The same sync runs after every repetition, and any PRIVMSG still arriving
before the ``PONG`` is reported as ``extra_deliveries``.

Receivers read with large ``recv_into`` calls into a buffer shared by all
greenlets of the process (nothing yields between a read and its counting) and
count ``" PRIVMSG #"`` only in complete lines, keeping the partial last line
for the next read, so a match is never split or counted twice.

With ``--procs P`` the clients are split over P processes (``loadgen.Fleet``):
the main one holds the senders and its share of receivers, the others are
``loadgen.py --worker`` processes run the same round function on their share.
Deliveries are timed with ``CLOCK_MONOTONIC``, which all processes share.
``--sources K`` spreads the clients over the source addresses 127.0.0.1 ..
127.0.0.K.

``--metrics`` also measures greenchat's Prometheus endpoint under load
(``scrape.py``): the server is started with ``--metrics-port 0`` (its URL is
read from the ``metrics on http://...`` line of its banner, or given with
``--metrics-url``), ``/metrics`` is scraped every ``--scrape-interval``
seconds from a greenlet of the generator while each burst is in flight, each
scrape's wall time is recorded, and ``greenchat_deliveries_total`` is read
just before the burst and once every line has arrived: its rise must equal
the deliveries the clients counted (the exit status is 1 if not). The
scrapes cost the server CPU, which the repetition's numbers include: compare
CPU per delivery across changes without ``--metrics``.

By default the script starts ``greenchat-serve --port 0`` itself and stops it
with SIGTERM at the end, also when the script itself gets SIGTERM or SIGHUP;
``--server HOST:PORT --server-pid PID`` measures an already running server
instead. ``--baseline REV`` measures greenchat at git revision REV (or the
checkout at a path containing ``/``) instead of the working tree, on this same
interpreter, with the flags it knows (``baseline.py``); run the script with
and without it to compare, or use ``bench.py --baseline REV``, which measures
both in one run and reports current/baseline. ``--server-cmd`` starts any
other command that prints ``listening on HOST:PORT``, e.g. another
virtualenv's ``greenchat-serve --port 0 --flood-rate 0``. ``bench.py`` runs
this same benchmark (as its ``fanout`` and ``bigroom`` workloads) against
several servers.

Usage::

    python benchmarks/fanout.py [--clients 1000] [--senders 10] [--messages 200]
        [--size 64] [--repeat 3] [--procs 1] [--sources 1] [--server-cmd "..."]
        [--baseline REV|PATH] [--server HOST:PORT --server-pid PID] [--json PATH]
        [--metrics [--metrics-url URL] [--scrape-interval 0.02]]
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import atexit  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Protocol  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline  # noqa: E402
import scrape  # noqa: E402
from loadgen import (  # noqa: E402
    Client,
    Fleet,
    FleetSpec,
    cpu_delta,
    cpu_seconds,
    machine_info,
    medians,
    raise_fd_limit,
)
from servers import METRICS_RE, exit_on_sigterm, record_pid  # noqa: E402

CHANNEL = "#fanout"
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")


# -- command line -------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000, help="channel members (N)")
    p.add_argument("--senders", type=int, default=10, help="members that send (S)")
    p.add_argument("--messages", type=int, default=200, help="lines per sender (M)")
    p.add_argument("--size", type=int, default=64, help="bytes of text per line")
    p.add_argument("--repeat", type=int, default=3, help="repetitions (R)")
    p.add_argument("--procs", type=int, default=1, help="generator processes (P)")
    p.add_argument("--sources", type=int, default=1, help="loopback source addresses")
    p.add_argument("--deadline", type=float, default=120.0, help="seconds allowed per run")
    p.add_argument("--connect-concurrency", type=int, default=100, help="connects in flight")
    p.add_argument("--server-cmd", help="command that starts the server (prints HOST:PORT)")
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="measure greenchat at this git revision (or the checkout at this path, written"
        " with a /) instead of the working tree",
    )
    p.add_argument("--server", metavar="HOST:PORT", help="measure a running server")
    p.add_argument("--server-pid", type=int, help="PID of the --server process, for its CPU")
    p.add_argument(
        "--caps",
        default="",
        help="IRCv3 caps every client requests, e.g. 'server-time message-tags'",
    )
    p.add_argument(
        "--metrics",
        action="store_true",
        help="start the server with --metrics-port 0, scrape /metrics during each burst and"
        " check greenchat_deliveries_total against the deliveries counted",
    )
    p.add_argument(
        "--metrics-url",
        metavar="URL",
        help="the /metrics URL to scrape (implies --metrics; default: from the server's banner)",
    )
    p.add_argument(
        "--scrape-interval", type=float, default=0.02, help="seconds between scrape starts"
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    args = p.parse_args(argv)
    args.metrics = args.metrics or args.metrics_url is not None
    if args.clients < 2 or not 1 <= args.senders <= args.clients:
        p.error("need --clients >= 2 and 1 <= --senders <= --clients")
    if args.messages < 1 or args.size < 1 or args.repeat < 1 or args.procs < 1:
        p.error("--messages, --size, --repeat and --procs must be positive")
    if not 1 <= args.sources <= 254:
        p.error("--sources must be between 1 and 254")
    if args.server_pid and not args.server:
        p.error("--server-pid needs --server")
    if sum(x is not None for x in (args.server, args.server_cmd, args.baseline)) > 1:
        p.error("choose one of --server, --server-cmd and --baseline")
    if args.metrics and args.server and not args.metrics_url:
        p.error("--metrics with --server needs --metrics-url")
    if args.scrape_interval < 0:
        p.error("--scrape-interval must not be negative")
    return args


# -- the server -----------------------------------------------------------------


class Server(Protocol):
    """What the benchmark needs of a server (``ServerHandle``, ``servers.RunningServer``)."""

    host: str
    port: int
    pid: int | None


@dataclass
class ServerHandle:
    host: str
    port: int
    pid: int | None
    proc: subprocess.Popen | None = None
    metrics_url: str | None = None  # from its banner's "metrics on http://..." line


def default_server_flags(clients: int, metrics: bool = False) -> list[str]:
    max_clients = str(max(10_000, 2 * clients))
    # Flood control off: the senders' bursts are the measurement, not abuse.
    flags = ["--port", "0", "--log-level", "WARNING", "--max-clients", max_clients,
             "--flood-rate", "0", "--no-web"]  # fmt: skip
    return flags + (["--metrics-port", "0"] if metrics else [])


def default_server_cmd(clients: int, metrics: bool = False) -> list[str]:
    script = Path(sys.executable).parent / "greenchat-serve"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "greenchat.cli"]
    return [*base, *default_server_flags(clients, metrics)]


def start_server(cmd: list[str], timeout: float = 30.0, metrics: bool = False) -> ServerHandle:
    """Start the server in its own session and wait for its 'listening on' line.

    With ``metrics``, also for the ``metrics on http://HOST:PORT/metrics`` line
    greenchat prints right after it (``--metrics-port``). It is stopped at
    exit too: its own session keeps it from signals meant for this script.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    record_pid(proc.pid)
    server = ServerHandle("", 0, proc.pid, proc)
    atexit.register(stop_server, server)
    assert proc.stdout is not None
    try:
        with gevent.Timeout(timeout, RuntimeError(f"server did not start: {shlex.join(cmd)}")):
            for line in proc.stdout:
                if match := LISTEN_RE.search(line):
                    server.host, server.port = match[1], int(match[2])
                    if not metrics:
                        return server
                elif server.port and (match := METRICS_RE.search(line)):
                    server.metrics_url = match[1]
                    return server
                elif server.port and "Ctrl-C" in line:  # the banner's last line
                    break
        if server.port:
            raise RuntimeError(
                f"server printed no 'metrics on http://...' line (does it know --metrics-port?):"
                f" {shlex.join(cmd)}"
            )
        raise RuntimeError(f"server exited without a 'listening on' line: {shlex.join(cmd)}")
    except BaseException:
        stop_server(server)
        raise


def attach_server(address: str, pid: int | None) -> ServerHandle:
    host, _, port = address.rpartition(":")
    return ServerHandle(host or "127.0.0.1", int(port), pid)


def stop_server(server: ServerHandle) -> None:
    """SIGTERM the server this script started (never an attached one)."""
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- one repetition -------------------------------------------------------------


@dataclass
class Window:
    """Deliveries in flight: each receiver checks in when it has all of its lines."""

    pending: int
    finished: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    done: Event = field(default_factory=Event)

    def receiver(self, client: Client, target: int) -> None:
        try:
            client.receive(target)
        except OSError as exc:
            self.errors.append(str(exc))
            self.done.set()
            return
        self.finished.append(time.monotonic())
        self.pending -= 1
        if not self.pending:
            self.done.set()


def expected_for(index: int, senders: int, messages: int) -> int:
    """Lines client ``index`` should get: every sender's but its own."""
    return messages * (senders - (index < senders))


def build_payload(sender: int, messages: int, size: int, run: int) -> bytes:
    lines = []
    for i in range(messages):
        head = f"r{run}s{sender}m{i} "
        text = (head + "x" * size)[:size]
        lines.append(f"PRIVMSG {CHANNEL} :{text}\r\n")
    return "".join(lines).encode()


def fanout_round(
    clients: list[Client],
    first: int,
    senders: int,
    messages: int,
    size: int,
    run: int,
    deadline: float,
) -> dict[str, Any]:
    """One repetition in one generator process (run by ``Fleet.call`` in each).

    The process holding the senders (global indexes below ``senders``) sends
    their bursts; every process counts its clients' deliveries until all are
    in, a receiver fails or ``deadline`` seconds pass. Returns ``complete``,
    ``last`` (time of the last delivery, or of giving up), ``delivered`` and
    ``errors``.
    """
    for client in clients:
        client.count = 0
    window = Window(len(clients))
    jobs = [
        gevent.spawn(window.receiver, c, expected_for(first + i, senders, messages))
        for i, c in enumerate(clients)
    ]
    for s in range(max(0, senders - first)):
        payload = build_payload(first + s, messages, size, run)
        gevent.spawn(clients[s].send, payload)
    window.done.wait(timeout=deadline)
    gevent.killall(jobs, block=False)
    delivered = sum(c.count for c in clients)
    if window.pending:  # incomplete: the window ends now
        return {"complete": False, "last": time.monotonic(), "delivered": delivered,
                "errors": window.errors[:3]}  # fmt: skip
    return {"complete": True, "last": max(window.finished, default=time.monotonic()),
            "delivered": delivered, "errors": []}  # fmt: skip


def run_once(fleet: Fleet, server: Server, args: argparse.Namespace, run: int) -> dict[str, Any]:
    """One repetition: send the burst, wait for every delivery, take the numbers, sync.

    With ``args.metrics_url``, the deliveries counter is read before and after,
    and ``/metrics`` is scraped while the burst is in flight (``row["metrics"]``).
    """
    url = getattr(args, "metrics_url", None)
    before = scrape.read_counter(url) if url else 0  # outside the measured window
    scraper = scrape.Scraper(url, args.scrape_interval) if url else None
    server_before = cpu_seconds(server.pid)
    t0 = time.monotonic()
    if scraper:
        scraper.start()
    try:
        rounds = fleet.call(
            fanout_round,
            senders=args.senders,
            messages=args.messages,
            size=args.size,
            run=run,
            deadline=args.deadline,
        )
        server_after = cpu_seconds(server.pid)
    finally:
        if scraper:
            scraper.stop()
    row = measure(args, run, rounds, t0, cpu_delta(server_before, server_after))
    if scraper:
        after = scrape.read_counter(url)
        row["metrics"] = scrape.run_metrics(
            scraper, before, after, row["delivered"], row["complete"]
        )
    if row["complete"]:  # whatever arrives before the PONG was delivered more than once
        row["extra_deliveries"] = fleet.sync(f"after{run}")
    return row


def measure(
    args: argparse.Namespace,
    run: int,
    rounds: list[dict[str, Any]],
    t0: float,
    server_cpu: tuple[float, float, float] | None,
) -> dict[str, Any]:
    """One repetition's row from every process's round and the server's CPU."""
    expected = args.senders * args.messages * (args.clients - 1)
    wall = max(r["last"] for r in rounds) - t0
    delivered = sum(r["delivered"] for r in rounds)
    gen_cpu = [r["cpu"] for r in rounds]
    row: dict[str, Any] = {
        "run": run,
        "complete": all(r["complete"] for r in rounds),
        "expected": expected,
        "delivered": delivered,
        "wall_s": wall,
        "deliveries_per_s": delivered / wall if wall > 0 else None,
        "generator_cpu_s": sum(gen_cpu),
        "generator_cpu_s_per_proc": gen_cpu,
        "generator_max_core_util": max(gen_cpu) / wall if wall > 0 else None,
    }
    if errors := [e for r in rounds for e in r["errors"]]:
        row["errors"] = errors
    if server_cpu:
        user, system, total = server_cpu
        row |= {
            "server_user_s": user,
            "server_sys_s": system,
            "server_cpu_s": total,
            "server_core_util": total / wall if wall > 0 else None,
            "server_us_per_delivery": total * 1e6 / max(delivered, 1),
        }
    return row


# -- reporting --------------------------------------------------------------------


METRICS = (
    ("deliveries_per_s", "deliveries/s", "{:,.0f}"),
    ("server_us_per_delivery", "server µs/delivery", "{:.3f}"),
    ("server_core_util", "server core util", "{:.0%}"),
    ("wall_s", "wall s", "{:.3f}"),
    ("generator_cpu_s", "generator CPU s", "{:.3f}"),
    ("generator_max_core_util", "generator core util", "{:.0%}"),
)


def format_row(label: str, row: dict[str, Any]) -> str:
    parts = [f"{name} {fmt.format(row[key])}" for key, name, fmt in METRICS if key in row]
    return f"{label:>7}: " + ", ".join(parts)


def print_run(row: dict[str, Any]) -> None:
    print(format_row(f"run {row['run']}", row), flush=True)
    if "server_user_s" in row:
        print(
            f"         server CPU {row['server_cpu_s']:.3f} s (user {row['server_user_s']:.2f}"
            f" + sys {row['server_sys_s']:.2f}) for {row['delivered']:,} deliveries",
            flush=True,
        )
    if "metrics" in row:
        print(f"         metrics: {scrape.describe(row['metrics'])}", flush=True)


PARAMETERS = ("clients", "senders", "messages", "size", "repeat", "procs", "sources", "deadline",
              "caps", "metrics", "scrape_interval")  # fmt: skip


def write_json(
    path: Path,
    args: argparse.Namespace,
    server: ServerHandle,
    runs: list[dict[str, Any]],
    summary: dict[str, float],
) -> None:
    data = {
        "benchmark": "fanout",
        "parameters": {k: getattr(args, k) for k in PARAMETERS},
        "server": {
            "command": args.server_cmd_used,
            "address": f"{server.host}:{server.port}",
            "started_by_benchmark": server.proc is not None,
        }
        | ({"baseline": args.baseline_info} if args.baseline_info else {})
        | ({"metrics_url": args.metrics_url} if args.metrics else {}),
        "machine": machine_info(),
        "runs": runs,
        "median": summary,
    }
    if args.metrics:
        data["metrics"] = scrape.summarize(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


# -- main -------------------------------------------------------------------------


def incomplete_message(row: dict[str, Any], deadline: float) -> str:
    got = f"run {row['run']}: only {row['delivered']:,} of {row['expected']:,} deliveries arrived"
    if row.get("errors"):
        return got + ": " + "; ".join(row["errors"])
    return got + f" within the {deadline:g} s deadline"


def fleet_spec(args: argparse.Namespace, server: Server) -> FleetSpec:
    return FleetSpec(
        host=server.host,
        port=server.port,
        clients=args.clients,
        procs=args.procs,
        concurrency=args.connect_concurrency,
        caps=args.caps,
        sources=args.sources,
    )


def benchmark(
    args: argparse.Namespace, server: Server, strict: bool = True
) -> tuple[list[dict[str, Any]], float]:
    """Connect and join, then ``args.repeat`` repetitions; return the rows and the join time.

    An incomplete repetition raises ``RuntimeError``, or with ``strict=False``
    ends the series (its row says how many deliveries were missing).
    """
    if args.senders > len(range(args.clients // args.procs)):
        raise RuntimeError("the main generator process must hold all senders: lower --procs")
    t = time.monotonic()
    with Fleet(fleet_spec(args, server)) as fleet:
        fleet.join(CHANNEL, deadline=args.deadline)
        join_s = time.monotonic() - t
        print(f"{args.clients} clients joined {CHANNEL} in {join_s:.1f} s", flush=True)
        runs = []
        for run in range(1, args.repeat + 1):
            row = run_once(fleet, server, args, run)
            print_run(row)
            runs.append(row)
            if row.get("extra_deliveries"):
                print(f"WARNING: {row['extra_deliveries']} deliveries beyond the expected")
            if not row["complete"]:
                if strict:
                    raise RuntimeError(incomplete_message(row, args.deadline))
                print(incomplete_message(row, args.deadline), flush=True)
                break
        return runs, join_s


def main(argv: Sequence[str] | None = None) -> int:
    exit_on_sigterm()  # so the finally blocks and the atexit hook stop the server
    args = parse_args(argv)
    raise_fd_limit(args.clients // args.procs + 64)
    # The baseline's exported tree (in a temporary folder) goes once the server has stopped.
    with contextlib.ExitStack() as stack:
        args.baseline_info = None
        if args.baseline is not None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="greenchat-fanout-")))
            try:
                base = stack.enter_context(baseline.prepared(args.baseline, tmp))
            except baseline.BaselineError as exc:
                print(f"fanout.py: --baseline {args.baseline}: {exc}", file=sys.stderr)
                return 2
            flags = default_server_flags(args.clients, args.metrics)
            cmd = [*base.command(), *base.args(flags)]
            if "--metrics-port" in base.dropped:
                print(f"fanout.py: --metrics: {base.name} has no --metrics-port", file=sys.stderr)
                return 2
            args.baseline_info = base.describe() | {"name": base.name}
            print(f"baseline {base.name}: {base.source} (greenchat {base.version})")
            for note in args.baseline_info["notes"]:
                print(f"  {note}")
            return run_server(args, cmd)
        return run_server(args, None)


def run_server(args: argparse.Namespace, cmd: list[str] | None) -> int:
    """Start (or attach to) the server, run the benchmark, stop the server; the exit status."""
    if args.server:
        server = attach_server(args.server, args.server_pid)
        args.server_cmd_used = None
        if server.pid is None:
            print("no --server-pid: server CPU is not measured", file=sys.stderr)
    else:
        if cmd is None:
            cmd = (
                shlex.split(args.server_cmd)
                if args.server_cmd
                else default_server_cmd(args.clients, args.metrics)
            )
        args.server_cmd_used = shlex.join(cmd)
        try:
            server = start_server(cmd, metrics=args.metrics and not args.metrics_url)
        except RuntimeError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        args.metrics_url = args.metrics_url or server.metrics_url
    try:
        print(
            f"fanout: N={args.clients} S={args.senders} M={args.messages} size={args.size}"
            f" R={args.repeat} P={args.procs} server {server.host}:{server.port} pid {server.pid}"
        )
        runs, _ = benchmark(args, server)
    except (RuntimeError, OSError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_server(server)
    summary = medians(runs)
    print(format_row("median", summary))
    if args.json:
        write_json(args.json, args, server, runs, summary)
    if args.metrics:
        found = scrape.summarize(runs)
        print(f"metrics: {scrape.describe(found)}")
        if found["counter_agrees"] is False:
            print(
                f"FAILED: {scrape.COUNTER} rose by {found['deliveries_counter']:,}; the clients"
                f" counted {found['delivered']:,} deliveries",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
