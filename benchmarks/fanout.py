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

Over WebSocket too (``--transports tcp,ws``)
-----------------------------------------------
``--transports`` lists the transports to measure, ``tcp`` (the default) and
``ws``: IRC over WebSocket (https://ircv3.net/specs/extensions/websocket) to
greenchat's web listener. With ``ws`` the server is started with
``--web-port 0`` instead of ``--no-web`` and its web port is read from its
banner's ``or in a web browser: http://HOST:PORT/`` line (``--web-port``
gives it for ``--server``). Each transport gets a fleet of N clients of its
own, in a channel of its own (``#fanout`` over TCP, ``#fan-ws`` over
WebSocket, as long as ``b123`` and ``w123``, the nicks of the two fleets, so
every line is as long over both), on the same server process, all joined
before the first repetition; the repetitions then alternate (tcp 1, ws 1,
tcp 2, ws 2 ...), so that whatever else loads the machine weighs on both.
A WebSocket client upgrades ``GET /`` with subprotocol ``text.ircv3.net``
(the ``101``, the subprotocol and ``Sec-WebSocket-Accept`` are checked),
sends every line as one masked text frame (mask key 0: the payload goes as
it is) and counts ``" PRIVMSG #"`` in the raw byte stream of the server's
frames, carrying the last 9 bytes over between reads: each line is a frame
of its own, so the pattern (or a sync token) never has a frame header inside
it. The TCP clients are exactly those of a TCP-only run. With both
transports the report ends with ``ws/tcp``: the ratio of the medians of
server CPU per delivery, the median of the paired ratios (each ws repetition
over the tcp one just before it) and the issue's target, at most 1.5x
(``WS_TARGET``); the JSON's ``median`` and ``join_s`` are then per transport
and ``ws_vs_tcp`` has the ratios. ``--baseline REV`` at a revision whose
``--help`` lists no ``--web-port`` (before the web listener) measures tcp
only and says why (``skipped_transports`` in the JSON).

Logged-in senders, with and without account-tag (``--accounts``, ``--with-caps``)
---------------------------------------------------------------------------------
``--accounts`` makes an account for each sender (``--accounts all``: for every
client) through the server before its fleet connects (``REGISTER <nick> *
<password>`` before connection registration, draft/account-registration;
``loadgen.register_accounts``), and those clients log in with SASL
SCRAM-SHA-256 (scramp's ``ScramClient``) before ``CAP END``. Every receiver
then also counts the ``@account=`` tags in the complete lines it gets
(``row["tagged"]``), and the JSON's ``account_tags`` compares them with the
deliveries: a fleet that asked for ``account-tag`` must have one on every
line (all come from logged-in senders), another none (exit status 1 if
not). ``--with-caps CAPS`` measures two TCP fleets on one server, ``without``
(``b0`` ... in ``#fanout``, the ``--caps``) and ``with`` (``a0`` ... in
``#fan-cp``, the ``--caps`` and CAPS), joined before the first repetition,
repetitions alternating as with ``--transports``; the report ends with
``with/without`` (ratio of the medians of server CPU per delivery, and of
the paired repetitions) against issue 14's target for account-tag, at most
1.10x (``CAPS_TARGET``), and the JSON has ``with_vs_without``::

    python benchmarks/fanout.py --accounts --with-caps account-tag --repeat 5

Channel lists (``--with-lists N``)
----------------------------------
``--with-lists N`` measures two TCP fleets on one server, like ``--with-caps``:
``without`` (``b0`` ... in ``#fanout``) and ``lists`` (``l0`` ... in ``#fan-ls``),
whose channel has N bans, N ban exceptions (+e) and N invite exceptions (+I) that
match none of its members (N at most the server's ``--max-list-entries``, 100 by
default). In both, one more client (``setter``) creates the channel first, so it,
not a sender, is the operator, sets the lists, and leaves once the fleet is in: every
line is then a plain member's, checked against the bans and exceptions before it
goes out. The report ends with ``lists/without`` against issue 17's target, at most
1.05x (``LISTS_TARGET``)::

    python benchmarks/fanout.py --with-lists 100 --repeat 5

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
        [--baseline REV|PATH] [--server HOST:PORT --server-pid PID [--web-port P]]
        [--metrics [--metrics-url URL] [--scrape-interval 0.02]]
        [--transports tcp|ws|tcp,ws] [--accounts [senders|all]] [--with-caps CAPS]
        [--with-lists N] [--json PATH]

    # WebSocket vs TCP, 1,000 members, one server, interleaved repetitions:
    python benchmarks/fanout.py --clients 1000 --transports tcp,ws --repeat 5
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
import statistics  # noqa: E402
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
    NICK_PREFIX,
    TRANSPORTS,
    Client,
    Fleet,
    FleetSpec,
    close_all,
    cpu_delta,
    cpu_seconds,
    machine_info,
    medians,
    raise_fd_limit,
    register_accounts,
)
from loadgen import connect as loadgen_connect  # noqa: E402
from servers import METRICS_RE, WEB_RE, exit_on_sigterm, memory_db, record_pid  # noqa: E402

CHANNEL = "#fanout"
# One channel per transport, of the same length: the lines are as long over both.
CHANNELS = {"tcp": CHANNEL, "ws": "#fan-ws"}
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
# The target: a delivery over WebSocket costs the server at most this times TCP's.
WS_TARGET = 1.5
# --with-caps: the fleet that requests them, its channel (as long as #fanout) and nick letter.
WITH_CAPS = ("with", "#fan-cp", "a")
WITHOUT_CAPS = "without"
# Issue 14's target: with account-tag (and the senders logged in), a delivery costs the
# server at most this times a delivery without it.
CAPS_TARGET = 1.10
ACCOUNT_TAG = b"@account="  # counted in what the receivers get, with --accounts
# --with-lists: the fleet whose channel has the lists, its channel and nick letter.
WITH_LISTS = ("lists", "#fan-ls", "l")
# Issue 17's target: with +b, +e and +I lists of 100 masks on the channel, a delivery
# costs the server at most this times a delivery in a channel without them.
LISTS_TARGET = 1.05


@dataclass(frozen=True)
class Series:
    """One fleet of the benchmark: its name in the results, transport, caps, channel, nicks."""

    name: str
    transport: str
    caps: str
    channel: str
    prefix: str


def series_plan(args: argparse.Namespace) -> list[Series]:
    """The fleets to measure: one per transport, or with --with-caps, "without" (the
    --caps) and "with" (the --caps and --with-caps), both over TCP."""
    if args.with_lists:
        name, channel, prefix = WITH_LISTS
        return [
            Series(WITHOUT_CAPS, "tcp", args.caps, CHANNEL, NICK_PREFIX["tcp"]),
            Series(name, "tcp", args.caps, channel, prefix),
        ]
    if args.with_caps:
        name, channel, prefix = WITH_CAPS
        both = " ".join(filter(None, (args.caps, args.with_caps)))
        return [
            Series(WITHOUT_CAPS, "tcp", args.caps, CHANNEL, NICK_PREFIX["tcp"]),
            Series(name, "tcp", both, channel, prefix),
        ]
    return [Series(t, t, args.caps, CHANNELS[t], NICK_PREFIX[t]) for t in args.transports]


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
    p.add_argument(
        "--transports",
        default="tcp",
        help="comma-separated, of tcp and ws (IRC over WebSocket, greenchat's web listener):"
        " each its own fleet of --clients in its own channel on the same server, repetitions"
        " interleaved (tcp 1, ws 1, tcp 2 ...); with both, the ws/tcp ratios are reported",
    )
    p.add_argument("--web-port", type=int, help="the --server's web port (for --transports ws)")
    p.add_argument(
        "--accounts",
        nargs="?",
        const="senders",
        choices=("senders", "all"),
        help="make an account for each sender (or every client) through the server"
        " (REGISTER) and log them in with SASL SCRAM-SHA-256 before joining; every"
        " receiver then also counts the '@account=' tags it gets",
    )
    p.add_argument(
        "--with-caps",
        metavar="CAPS",
        help="also measure a fleet that requests CAPS (e.g. account-tag) besides --caps, in a"
        " channel of its own on the same server, repetitions interleaved with the fleet"
        " without; reports with/without server CPU per delivery",
    )
    p.add_argument(
        "--with-lists",
        type=int,
        metavar="N",
        help="also measure a fleet in a channel with N bans, N +e and N +I masks that match"
        " none of its members (senders not operators), repetitions interleaved with the"
        " fleet without; reports lists/without server CPU per delivery",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    args = p.parse_args(argv)
    args.metrics = args.metrics or args.metrics_url is not None
    args.transports = list(
        dict.fromkeys(t.strip() for t in args.transports.split(",") if t.strip())
    )
    if not args.transports or any(t not in TRANSPORTS for t in args.transports):
        p.error(f"--transports: a comma-separated list of {', '.join(TRANSPORTS)}")
    if args.web_port is not None and not args.server:
        p.error("--web-port is for --server (a started server's is read from its banner)")
    if args.with_caps is not None and args.transports != ["tcp"]:
        p.error("--with-caps compares two TCP fleets: leave --transports at tcp")
    if args.with_lists is not None and (args.with_caps or args.transports != ["tcp"]):
        p.error("--with-lists compares two TCP fleets: no --with-caps, --transports tcp")
    if args.with_lists is not None and not 1 <= args.with_lists <= 10_000:
        p.error("--with-lists: 1 to 10,000 masks")
    if args.accounts and "ws" in args.transports:
        p.error("--accounts is over TCP only")
    if args.server and "ws" in args.transports and args.web_port is None:
        p.error("--transports ws with --server needs --web-port")
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
    web_address: tuple[str, int] | None = None  # its web listener (IRC over WebSocket)


def default_server_flags(clients: int, metrics: bool = False, web: bool = False) -> list[str]:
    """greenchat's flags for ``clients`` connections (all transports together)."""
    max_clients = str(max(10_000, 2 * clients))
    # Flood control off: the senders' bursts are the measurement, not abuse.
    flags = ["--port", "0", "--log-level", "WARNING", "--max-clients", max_clients,
             "--flood-rate", "0"]  # fmt: skip
    flags += ["--web-port", "0"] if web else ["--no-web"]  # the page's port only for ws
    return flags + (["--metrics-port", "0"] if metrics else [])


def default_server_cmd(clients: int, metrics: bool = False, web: bool = False) -> list[str]:
    script = Path(sys.executable).parent / "greenchat-serve"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "greenchat.cli"]
    return [*base, *default_server_flags(clients, metrics, web), *memory_db()]


def start_server(
    cmd: list[str], timeout: float = 30.0, metrics: bool = False, web: bool = False
) -> ServerHandle:
    """Start the server in its own session and wait for its 'listening on' line.

    With ``metrics``, also for the ``metrics on http://HOST:PORT/metrics`` line
    greenchat prints right after it (``--metrics-port``); with ``web``, for its
    web listener's ``or in a web browser: http://HOST:PORT/`` line
    (``--web-port``). It is stopped at exit too: its own session keeps it from
    signals meant for this script.
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
                elif server.port and (match := METRICS_RE.search(line)):
                    server.metrics_url = match[1]
                elif server.port and (match := WEB_RE.search(line)):
                    server.web_address = (match[1], int(match[2]))
                have = (server.metrics_url or not metrics, server.web_address or not web)
                if server.port and all(have):
                    return server
                if server.port and "Ctrl-C" in line:  # the banner's last line
                    break
        if server.port and metrics and not server.metrics_url:
            raise RuntimeError(
                f"server printed no 'metrics on http://...' line (does it know --metrics-port?):"
                f" {shlex.join(cmd)}"
            )
        if server.port:
            raise RuntimeError(
                f"server printed no 'in a web browser: http://...' line (does it know"
                f" --web-port?): {shlex.join(cmd)}"
            )
        raise RuntimeError(f"server exited without a 'listening on' line: {shlex.join(cmd)}")
    except BaseException:
        stop_server(server)
        raise


def show(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def attach_server(address: str, pid: int | None, web_port: int | None = None) -> ServerHandle:
    host, _, port = address.rpartition(":")
    server = ServerHandle(host or "127.0.0.1", int(port), pid)
    if web_port is not None:
        server.web_address = (server.host, web_port)
    return server


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
    tag: bytes = b""  # also counted in the receivers' lines (Client.receive's ``also``)
    finished: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    done: Event = field(default_factory=Event)

    def receiver(self, client: Client, target: int) -> None:
        try:
            if self.tag:
                client.receive(target, self.tag)
            else:
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


def build_payload(sender: int, messages: int, size: int, run: int, channel: str = CHANNEL) -> bytes:
    lines = []
    for i in range(messages):
        head = f"r{run}s{sender}m{i} "
        text = (head + "x" * size)[:size]
        lines.append(f"PRIVMSG {channel} :{text}\r\n")
    return "".join(lines).encode()


def fanout_round(
    clients: list[Client],
    first: int,
    senders: int,
    messages: int,
    size: int,
    run: int,
    deadline: float,
    channel: str = CHANNEL,
    tag: str = "",
) -> dict[str, Any]:
    """One repetition in one generator process (run by ``Fleet.call`` in each).

    The process holding the senders (global indexes below ``senders``) sends
    their bursts to ``channel`` (over WebSocket a frame per line, framed
    before the sends); every process counts its clients' deliveries until
    all are in, a receiver fails or ``deadline`` seconds pass. Returns
    ``complete``, ``last`` (time of the last delivery, or of giving up),
    ``delivered`` and ``errors``; with ``tag`` (``@account=``), also
    ``tagged``: the complete lines received that carry it.
    """
    for client in clients:
        client.count = client.tagged = 0
    window = Window(len(clients), tag.encode())
    jobs = [
        gevent.spawn(window.receiver, c, expected_for(first + i, senders, messages))
        for i, c in enumerate(clients)
    ]
    for s in range(max(0, senders - first)):
        sender = clients[s]
        payload = sender.wire(build_payload(first + s, messages, size, run, channel))
        gevent.spawn(sender.sock.sendall, payload)
    window.done.wait(timeout=deadline)
    gevent.killall(jobs, block=False)
    delivered = sum(c.count for c in clients)
    tagged = {"tagged": sum(c.tagged for c in clients)} if tag else {}
    if window.pending:  # incomplete: the window ends now
        return {"complete": False, "last": time.monotonic(), "delivered": delivered,
                "errors": window.errors[:3]} | tagged  # fmt: skip
    return {"complete": True, "last": max(window.finished, default=time.monotonic()),
            "delivered": delivered, "errors": []} | tagged  # fmt: skip


def run_once(
    fleet: Fleet,
    server: Server,
    args: argparse.Namespace,
    run: int,
    transport: str = "tcp",
    series: Series | None = None,
) -> dict[str, Any]:
    """One repetition: send the burst, wait for every delivery, take the numbers, sync.

    ``fleet`` is the ``transport``'s fleet, in that transport's channel (or
    ``series``'s, in its channel). With ``args.metrics_url``, the deliveries
    counter is read before and after, and ``/metrics`` is scraped while the
    burst is in flight (``row["metrics"]``). With ``args.accounts``, the
    receivers count the account tags they get (``row["tagged"]``).
    """
    if series is None:
        series = Series(transport, transport, args.caps, CHANNELS[transport], "")
    tag = ACCOUNT_TAG.decode() if getattr(args, "accounts", None) else ""
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
            channel=series.channel,
            tag=tag,
        )
        server_after = cpu_seconds(server.pid)
    finally:
        if scraper:
            scraper.stop()
    row: dict[str, Any] = {"transport": series.transport}
    if series.name != series.transport:
        row["series"] = series.name
    row |= measure(args, run, rounds, t0, cpu_delta(server_before, server_after))
    if tag:
        row["tagged"] = sum(r.get("tagged", 0) for r in rounds)
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


def print_run(row: dict[str, Any], label: str | None = None) -> None:
    print(format_row(label or f"run {row['run']}", row), flush=True)
    if "server_user_s" in row:
        print(
            f"         server CPU {row['server_cpu_s']:.3f} s (user {row['server_user_s']:.2f}"
            f" + sys {row['server_sys_s']:.2f}) for {row['delivered']:,} deliveries",
            flush=True,
        )
    if "metrics" in row:
        print(f"         metrics: {scrape.describe(row['metrics'])}", flush=True)


def ws_vs_tcp(series: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """WebSocket / TCP (:func:`ratio_of` with ``WS_TARGET``; None unless both ran)."""
    return ratio_of(series, "tcp", "ws", WS_TARGET)


def with_vs_without(series: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """--with-caps: the fleet with them / the fleet without (``CAPS_TARGET``)."""
    return ratio_of(series, WITHOUT_CAPS, WITH_CAPS[0], CAPS_TARGET)


def lists_vs_without(series: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """--with-lists: the fleet in the channel with them / the one without (``LISTS_TARGET``)."""
    return ratio_of(series, WITHOUT_CAPS, WITH_LISTS[0], LISTS_TARGET)


def ratio_of(
    series: dict[str, list[dict[str, Any]]], base: str, over: str, target: float
) -> dict[str, Any] | None:
    """Series ``over`` / series ``base``, from the complete repetitions of both (None
    unless both ran).

    ``server_us_per_delivery`` and ``deliveries_per_s`` are ratios of the
    medians; ``paired`` are the ratios of each ``over`` repetition to the
    ``base`` one just before it (the same machine state, as near as it gets),
    and ``paired_median`` their median. ``met``: the median ratio within ``target``.
    """
    below = [r for r in series.get(base, []) if r["complete"]]
    above = [r for r in series.get(over, []) if r["complete"]]
    if not below or not above:
        return None
    key = "server_us_per_delivery"
    low, high = medians(below), medians(above)
    out: dict[str, Any] = {
        "base": base,
        "over": over,
        "target_max": target,
        "repetitions": min(len(below), len(above)),
        f"{base}_us_per_delivery": low.get(key),
        f"{over}_us_per_delivery": high.get(key),
    }
    for name in (key, "deliveries_per_s", "wall_s"):
        if low.get(name) and high.get(name) is not None:
            out[name] = high[name] / low[name]
    by_run = {r["run"]: r for r in below}
    paired = [w[key] / by_run[w["run"]][key] for w in above
              if w["run"] in by_run and key in w and by_run[w["run"]].get(key)]  # fmt: skip
    if paired:
        out["paired"] = paired
        out["paired_median"] = statistics.median(paired)
    if key in out:
        out["met"] = out[key] <= target
    return out


def describe_ratio(found: dict[str, Any]) -> str:
    """The ws/tcp (or with/without) line of the report."""
    key = "server_us_per_delivery"
    base, over = found.get("base", "tcp"), found.get("over", "ws")
    if key not in found:
        return f"{over}/{base}: server CPU per delivery not measured"
    text = (
        f"{over}/{base}: server µs/delivery {found[f'{over}_us_per_delivery']:.3f} / "
        f"{found[f'{base}_us_per_delivery']:.3f} = {found[key]:.3f}x"
    )
    if "paired_median" in found:
        text += f" (paired repetitions: median {found['paired_median']:.2f}x,"
        text += f" {min(found['paired']):.2f}-{max(found['paired']):.2f})"
    if "deliveries_per_s" in found:
        text += f", deliveries/s {found['deliveries_per_s']:.2f}x"
    verdict = "met" if found["met"] else "NOT met"
    return text + f"; target <= {found['target_max']:g}x: {verdict}"


def account_tags(args: argparse.Namespace, plan: list[Series], runs: list[dict]) -> dict | None:
    """With --accounts: the ``@account=`` tags each series' receivers got, against the
    deliveries (every line is from a logged-in sender: a series whose clients asked
    for account-tag must have one on every line, the others on none); ``ok``."""
    if not getattr(args, "accounts", None):
        return None
    found: dict[str, Any] = {}
    for series in plan:
        rows = [r for r in runs if r.get("series", r["transport"]) == series.name]
        delivered = sum(r["delivered"] for r in rows)
        wanted = delivered if "account-tag" in series.caps.split() else 0
        tagged = sum(r.get("tagged", 0) for r in rows)
        found[series.name] = {"tagged": tagged, "delivered": delivered, "expected": wanted}
    found["ok"] = all(v["tagged"] == v["expected"] for v in found.values())
    return found


PARAMETERS = ("clients", "senders", "messages", "size", "repeat", "procs", "sources", "deadline",
              "caps", "metrics", "scrape_interval", "transports", "accounts",
              "with_caps", "with_lists")  # fmt: skip


def write_json(
    path: Path,
    args: argparse.Namespace,
    server: ServerHandle,
    runs: list[dict[str, Any]],
    summary: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """The results: with one transport ``median`` is its medians; with several,
    ``median`` is {transport: medians}, ``join_s`` {transport: seconds} and
    ``ws_vs_tcp`` the ratios (:func:`ws_vs_tcp`). ``runs`` has every repetition
    of every transport, in the order run (each row names its ``transport``)."""
    data = {
        "benchmark": "fanout",
        "parameters": {k: getattr(args, k) for k in PARAMETERS},
        "server": {
            "command": args.server_cmd_used,
            "address": f"{server.host}:{server.port}",
            "started_by_benchmark": server.proc is not None,
        }
        | ({"baseline": args.baseline_info} if args.baseline_info else {})
        | ({"metrics_url": args.metrics_url} if args.metrics else {})
        | ({"web_address": show(server.web_address)} if server.web_address else {}),
        "machine": machine_info(),
        "runs": runs,
        "median": summary,
        **(extra or {}),
    }
    if skipped := getattr(args, "skipped_transports", None):
        data["skipped_transports"] = skipped
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


def fleet_spec(
    args: argparse.Namespace, server: Server, transport: str = "tcp", series: Series | None = None
) -> FleetSpec:
    """The fleet of ``transport`` (or of ``series``: its caps and nicks, and with
    --accounts its senders, or all its clients, logged in)."""
    if series is not None:
        transport = series.transport
    host, port = server.host, server.port
    if transport == "ws":
        web = getattr(server, "web_address", None)
        if web is None:
            raise RuntimeError("--transports ws: the server has no web listener (--web-port)")
        host, port = web
    return FleetSpec(
        host=host,
        port=port,
        clients=args.clients,
        procs=args.procs,
        concurrency=args.connect_concurrency,
        caps=args.caps if series is None else series.caps,
        sources=args.sources,
        transport=transport,
        prefix="" if series is None else series.prefix,
        logins=logins(args),
    )


def logins(args: argparse.Namespace) -> int:
    """How many clients of each fleet log in (the lowest indexes: the senders first)."""
    accounts = getattr(args, "accounts", None)
    return {None: 0, "senders": args.senders, "all": args.clients}[accounts]


def make_accounts(args: argparse.Namespace, server: Server, series: Series) -> float:
    """Register the accounts ``series``'s fleet logs in to (REGISTER through the server,
    its nicks as names); the seconds it took (0 without --accounts)."""
    count = logins(args)
    if not count:
        return 0.0
    t = time.monotonic()
    names = [f"{series.prefix}{i}" for i in range(count)]
    register_accounts(server.host, server.port, names, sources=args.sources, exist_ok=True)
    return time.monotonic() - t


def channel_setter(args: argparse.Namespace, server: Server, series: Series) -> Client | None:
    """--with-lists: a client that creates ``series.channel`` before its fleet joins (so
    that no sender is its operator) and, in the ``lists`` fleet's, sets the lists."""
    if not args.with_lists:
        return None
    setter = loadgen_connect(server.host, server.port, 0, prefix=f"set{series.prefix}")
    lines = [f"JOIN {series.channel}"]
    if series.name == WITH_LISTS[0]:
        for n in range(args.with_lists):  # MODES=4: a few masks per line
            lines.append(f"MODE {series.channel} +beI nobody{n}!*@*.invalid "
                         f"friend{n}!*@*.invalid guest{n}!*@*.invalid")  # fmt: skip
    lines.append("PING :lists-set")
    setter.send("".join(f"{line}\r\n" for line in lines).encode())
    data = setter.tail
    while b"lists-set" not in data:
        data += setter.read_chunk(data)
    setter.tail = b""
    taken = data.count(f" MODE {series.channel} +beI ".encode())
    if series.name == WITH_LISTS[0] and taken != args.with_lists:
        raise RuntimeError(f"the server took {taken} of the {args.with_lists} mask triples")
    return setter


def benchmark(
    args: argparse.Namespace, server: Server, strict: bool = True
) -> dict[str, tuple[list[dict[str, Any]], float]]:
    """Connect and join, then ``args.repeat`` repetitions; {series: (rows, join time)}.

    Every series (:func:`series_plan`: a transport of ``args.transports``, or
    with ``--with-caps`` the fleets without and with them) gets a fleet of
    ``args.clients`` of its own in a channel of its own, all joined before the
    first repetition; the repetitions then alternate (tcp 1, ws 1, tcp 2, ws
    2 ...), so that whatever else the machine does weighs on both alike. An
    incomplete repetition raises ``RuntimeError``, or with ``strict=False``
    ends every series (its row says how many deliveries were missing).
    """
    if args.senders > len(range(args.clients // args.procs)):
        raise RuntimeError("the main generator process must hold all senders: lower --procs")
    plan = series_plan(args)
    several = len(plan) > 1
    with contextlib.ExitStack() as stack:
        fleets, joins = {}, {}
        for series in plan:
            registered = make_accounts(args, server, series)
            if registered:
                print(f"{logins(args)} accounts of {series.name} registered in {registered:.1f} s")
            t = time.monotonic()
            setter = channel_setter(args, server, series)
            fleet = stack.enter_context(Fleet(fleet_spec(args, server, series=series)))
            fleets[series.name] = fleet
            fleet.join(series.channel, deadline=args.deadline)
            if setter is not None:
                setter.send(f"PART {series.channel}\r\n".encode())
                setter.drain_until(b" PART " + series.channel.encode())
                close_all([setter])
            joins[series.name] = time.monotonic() - t
            if series.name in TRANSPORTS:
                over = f" over {series.transport}" if several or series.transport != "tcp" else ""
            elif args.with_lists:
                lists = f"{args.with_lists} masks each" if series.name == WITH_LISTS[0] else "none"
                over = f" (lists: {lists})"
            else:
                over = f" ({series.name} {args.with_caps})"
            print(
                f"{args.clients} clients joined {series.channel}{over} in"
                f" {joins[series.name]:.1f} s",
                flush=True,
            )
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in plan}
        for run in range(1, args.repeat + 1):
            for series in plan:
                row = run_once(fleets[series.name], server, args, run, series=series)
                name = series.name
                print_run(row, f"{name} {run}" if several or name != "tcp" else None)
                runs[name].append(row)
                if row.get("extra_deliveries"):
                    print(f"WARNING: {row['extra_deliveries']} deliveries beyond the expected")
                if not row["complete"]:
                    if strict:
                        raise RuntimeError(incomplete_message(row, args.deadline))
                    print(incomplete_message(row, args.deadline), flush=True)
                    return {n: (runs[n], joins[n]) for n in runs}
        return {n: (runs[n], joins[n]) for n in runs}


def main(argv: Sequence[str] | None = None) -> int:
    exit_on_sigterm()  # so the finally blocks and the atexit hook stop the server
    args = parse_args(argv)
    raise_fd_limit(len(series_plan(args)) * (args.clients // args.procs) + 64)
    # The baseline's exported tree (in a temporary folder) goes once the server has stopped.
    with contextlib.ExitStack() as stack:
        args.baseline_info = None
        args.skipped_transports = {}
        if args.baseline is not None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="greenchat-fanout-")))
            try:
                base = stack.enter_context(baseline.prepared(args.baseline, tmp))
            except baseline.BaselineError as exc:
                print(f"fanout.py: --baseline {args.baseline}: {exc}", file=sys.stderr)
                return 2
            if "ws" in args.transports and base.flags and "--web-port" not in base.flags:
                why = f"{base.name} has no web listener (its --help lists no --web-port)"
                print(f"fanout.py: skipping ws: {why}", file=sys.stderr)
                args.transports.remove("ws")
                args.skipped_transports["ws"] = why
                if not args.transports:
                    print("fanout.py: no transport left to measure", file=sys.stderr)
                    return 2
            clients = len(series_plan(args)) * args.clients
            flags = default_server_flags(clients, args.metrics, "ws" in args.transports)
            cmd = [*base.command(), *base.args(flags), *memory_db(base.flags)]
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
    web = "ws" in args.transports
    if args.server:
        server = attach_server(args.server, args.server_pid, args.web_port)
        args.server_cmd_used = None
        if server.pid is None:
            print("no --server-pid: server CPU is not measured", file=sys.stderr)
    else:
        if cmd is None:
            clients = len(series_plan(args)) * args.clients
            cmd = (
                shlex.split(args.server_cmd)
                if args.server_cmd
                else default_server_cmd(clients, args.metrics, web)
            )
        args.server_cmd_used = shlex.join(cmd)
        try:
            server = start_server(cmd, metrics=args.metrics and not args.metrics_url, web=web)
        except RuntimeError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        args.metrics_url = args.metrics_url or server.metrics_url
    try:
        over = f" web {show(server.web_address)}" if web and server.web_address else ""
        print(
            f"fanout: N={args.clients} S={args.senders} M={args.messages} size={args.size}"
            f" R={args.repeat} P={args.procs} transports {','.join(args.transports)}"
            f" server {server.host}:{server.port}{over} pid {server.pid}"
        )
        series = benchmark(args, server)
    except (RuntimeError, OSError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_server(server)
    plan = [s.name for s in series_plan(args)]
    runs = [row for rows, _ in series.values() for row in rows]
    runs.sort(key=lambda row: (row["run"], plan.index(row.get("series", row["transport"]))))
    extra: dict[str, Any] = {}
    if len(series) == 1:
        summary: dict[str, Any] = medians(runs)
        print(format_row("median", summary))
    else:
        summary = {t: medians(rows) for t, (rows, _) in series.items()}
        for name, found in summary.items():
            print(format_row(f"{name} med", found))
        extra["join_s"] = {t: join_s for t, (_, join_s) in series.items()}
        rows_by = {t: rows for t, (rows, _) in series.items()}
        for key, ratio in (("ws_vs_tcp", ws_vs_tcp(rows_by)),
                           ("with_vs_without", with_vs_without(rows_by)),
                           ("lists_vs_without", lists_vs_without(rows_by))):  # fmt: skip
            if ratio is not None:
                extra[key] = ratio
                print(describe_ratio(ratio))
    tags = account_tags(args, series_plan(args), runs)
    if tags is not None:
        extra["account_tags"] = tags
        counts = [f"{n} {v['tagged']:,} of {v['delivered']:,} lines"
                  for n, v in tags.items() if n != "ok"]  # fmt: skip
        verdict = "as expected" if tags["ok"] else "NOT as expected"
        print(f"account tags: {', '.join(counts)} ({verdict})")
    if args.json:
        write_json(args.json, args, server, runs, summary, extra)
    if tags is not None and not tags["ok"]:
        print("FAILED: the account tags received are not the expected ones", file=sys.stderr)
        return 1
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
