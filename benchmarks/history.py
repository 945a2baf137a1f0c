"""History benchmarks (issue 15): storing, CHATHISTORY queries, fan-out cost, kill -9.

One script, four parts (``--part store,query,fanout,kill9``; all by default), each
writing ``<part>.json`` into ``--out`` (``benchmarks/results/issue15/``), and a
``summary.md`` rebuilt from every part's JSON found there, with the issue's targets:

``store``
    Sustained storing rate with the event loop's lag meanwhile, two ways.

    * ``e2e``: a real ``greenchat-serve`` (``--db`` in a temporary folder, ``--flood-rate
      0``, ``--no-web``, ``--metrics-port 0``); ``--senders`` sender processes (one
      connection each, alone in a channel of its own: nothing is fanned out, only
      parsed, applied and stored) send ``PRIVMSG`` at ``rate / senders`` lines/s each, in
      a batch every 10 ms, for ``--duration`` s; a probe process sends ``PING :T<ns>``
      every 10 ms on a fixed schedule and times each ``PONG`` (acknowledging every read
      at once, ``TCP_QUICKACK``, as the logins workload's prober). Messages accepted/s:
      what the senders sent, all answered by the ``PONG`` after it; stored/s: the rows
      the SQLite file gained in the window (counted past the last seq seen, read from
      this process, which costs the server nothing); ``greenchat_history_pending``
      scraped every 2 s and the ``greenchat_event_loop_lag_seconds`` histogram's delta
      over the window.
    * ``inproc``: the storing path alone, without sockets or parsing: a process of its
      own (``history.py _inproc``) builds a real ``ChatServer`` on a temporary ``--db``,
      started (storage open, the ``HistoryRecorder`` writing), puts ``--senders`` users
      in a channel each, and applies ``Messaged`` events through ``hub.apply`` at the
      offered rate: every 10 ms each sender's share, in chunks of ``--chunk`` events
      with ``gevent.sleep(0)`` between (as a reader handles the lines of one 16 KiB
      read, then yields). A greenlet sleeping 1 ms at a time measures the loop's lag;
      ``store.append_history`` is wrapped to record every write batch (start, duration,
      size), on the storage thread.

    Both sweep the offered rate (``--rates`` for inproc, ``--e2e-rates``); the report
    gives the highest rate sustained (stored/s >= 97% of what was offered, the backlog
    at the end under 100 ms worth) with a lag p99 <= 5 ms.

``query``
    A SQLite file of ``--rows`` (1,000,000) stored messages in ONE channel, ``#big``,
    written with ``SqliteStore.append_history`` in batches of 10,000 (in a temporary
    folder, deleted afterwards). (a) ``store.history`` called directly: LATEST 100 and
    BEFORE a random msgid 100, ``--queries`` times each, for messages only and for every
    stored line (draft/event-playback); (b) a real server on that file, a client in
    ``#big`` with ``draft/chathistory batch server-time message-tags`` and one also with
    ``draft/event-playback``, ``CHATHISTORY LATEST #big * 100`` and ``CHATHISTORY BEFORE
    #big msgid=<random> 100`` ``--queries`` times each, timed from the send to the
    batch's end line (an upper bound of the server's time; a PING on the same
    connection gives the floor), with the delta of ``greenchat_history_read_seconds``
    (the store's share); and ``EXPLAIN QUERY PLAN`` of the very SQL the store runs
    (taken with the connection's trace callback), before the runs and after them
    (closing a connection runs ``PRAGMA optimize``, which may ANALYZE), which must name
    the msgid index.

``fanout``
    fanout.py's method (N members in ``#fanout``, S senders x M lines in one
    ``sendall`` each; server CPU per delivery) against two servers started side by
    side, ``history on`` (the default) and ``history off`` (``--no-history``), both with a
    SQLite file of their own, each with its fleet joined before the first repetition;
    repetitions alternate on, off, on, off ... Reported: medians and on/off (ratio of
    the medians, and of the paired repetitions). ``server_us_per_delivery`` is read at
    the last delivery (fanout.py's window); ``..._with_store`` also waits until the
    burst's messages are in the file (for history on), so it counts all their storing.

``kill9``
    A server on a fresh ``--db``; one client with ``echo-message message-tags`` sends
    ``PRIVMSG`` at ``--kill-rate`` lines/s and records each echoed msgid (an echo means
    the server accepted the line); at a random moment in the middle of
    ``--kill-seconds`` this script SIGKILLs the server (its own PID), restarts it on
    the same file, and counts how many echoed msgids are in it (read directly).
    ``--kills`` repetitions: lost per kill, min/median/max, beside the write batch
    sizes the inproc harness measures at that rate.

``--quick`` shrinks everything to seconds (the smoke test). Usage::

    python benchmarks/history.py                            # every part, full sizes
    python benchmarks/history.py --part store --rates 50000 --duration 20
    python benchmarks/history.py --quick --out /tmp/h15     # tiny, seconds
    python benchmarks/history.py --part store --server-flags=--no-history   # the hub alone
    python benchmarks/history.py --part store --tree /tmp/copy   # greenchat/ from a copy
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import scrape  # noqa: E402
import servers  # noqa: E402

PARTS = ("store", "query", "fanout", "kill9")
DEFAULT_OUT = HERE / "results" / "issue15"
HOST = servers.HOST
TICK = 0.010  # senders and feeders send a batch every 10 ms
LAG_TARGET_MS = 5.0
STORE_TARGET = 50_000  # messages/s
BATCH_INTERVAL_TARGET_MS = 10.0
QUERY_TARGET_MS = 2.0
FANOUT_TARGET = 1.15
SUSTAINED = 0.97  # stored/s at least this share of what was offered
BIG = "#big"
KILL_CHANNEL = "#k"
CHATHISTORY_CAPS = "draft/chathistory batch server-time message-tags"
SERVER_FLAGS: list[str] = []  # --server-flags: given to every server this script starts

# Full sizes, and --quick's (the smoke test).
FULL = {
    "duration": 20.0, "rates": "20000,35000,50000,70000,100000",
    "e2e_rates": "20000,35000,50000,70000", "senders": 4, "chunk": 250,
    "rows": 1_000_000, "queries": 1000,
    "clients": 1000, "fan_senders": 10, "messages": 200, "repeat": 9,
    "kills": 10, "kill_rate": 2000, "kill_seconds": 5.0,
}  # fmt: skip
QUICK = {
    "duration": 1.5, "rates": "2000", "e2e_rates": "2000", "senders": 2, "chunk": 250,
    "rows": 20_000, "queries": 50,
    "clients": 20, "fan_senders": 2, "messages": 20, "repeat": 2,
    "kills": 1, "kill_rate": 500, "kill_seconds": 1.5,
}  # fmt: skip


# -- numbers ---------------------------------------------------------------------------


def pct(values: Sequence[float], points: Sequence[float] = (50, 99)) -> dict[str, float]:
    """``p50``, ``p99`` (nearest rank) and ``max``; empty without values."""
    return loadgen.percentiles(values, points)


def with_unit(found: dict[str, float], unit: str, scale: float = 1.0) -> dict[str, float]:
    return {f"{k}_{unit}": v * scale for k, v in found.items()}


# -- servers ---------------------------------------------------------------------------


def start_server(
    tmp: Path, name: str, db: Path, extra: Sequence[str] = (), metrics: bool = False
) -> servers.RunningServer:
    """``greenchat-serve`` on a free loopback port with ``--db db`` and ``extra`` flags;
    returns once a probe client has registered. Stopped at exit if still running
    (servers.py's atexit hook: it is in servers._running)."""
    cmd = [
        *servers._greenchat_cmd(),
        "--host", HOST, "--port", "0", "--log-level", "WARNING", "--no-web",
        "--flood-rate", "0", "--sendq", str(servers.GREENCHAT_SENDQ),
        "--max-clients", "20000", "--db", str(db),
        *(("--metrics-port", "0") if metrics else ()),
        *SERVER_FLAGS,
        *extra,
    ]  # fmt: skip
    deadline = time.monotonic() + servers.START_DEADLINE
    try:
        server = servers.launch(name, cmd, tmp, deadline, metrics=metrics, append_log=True)
    except servers.ServerStartError as exc:
        log = servers._log_tail(tmp / f"{name}.log")
        raise servers.ServerStartError(f"{name}: {exc}{log}") from None
    server.command = cmd  # type: ignore[attr-defined]
    return server


def kill_server(server: servers.RunningServer) -> float:
    """SIGKILL the server's own PID and reap it; when the signal was sent (monotonic)."""
    with contextlib.suppress(ProcessLookupError):
        server.proc.send_signal(signal.SIGKILL)
    sent = time.monotonic()
    server.proc.wait(timeout=10)
    servers._running.pop(server.pid, None)
    return sent


def remove_db(db: Path) -> None:
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)


class Rows:
    """Counts a history file's rows (nothing is deleted here) from this process,
    read-only, each read its own transaction: the server pays nothing. A seq is a
    line's time in microseconds, so each read counts the rows past the last seq seen
    (one server stamps rising times: a new row never goes below it)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.conn: sqlite3.Connection | None = None
        self.rows = 0
        self.last_seq = 0

    def count(self) -> int:
        if self.conn is None:
            try:
                self.conn = sqlite3.connect(
                    f"file:{self.db}?mode=ro", uri=True, isolation_level=None, timeout=5
                )
            except sqlite3.Error:
                return 0
        try:
            query = "SELECT count(*), max(seq) FROM history WHERE seq > ?"
            more, last = self.conn.execute(query, (self.last_seq,)).fetchone()
        except sqlite3.Error:
            return self.rows
        if more:
            self.rows, self.last_seq = self.rows + more, last
        return self.rows

    def messages(self, after: int = 0) -> int:
        """PRIVMSG rows past the first ``after`` (JOINs and other events are stored too)."""
        self.count()
        assert self.conn is not None
        query = (
            "SELECT count(*) FROM (SELECT command FROM history ORDER BY seq LIMIT -1 OFFSET ?)"
            " WHERE command = 'PRIVMSG'"
        )
        return self.conn.execute(query, (after,)).fetchone()[0]

    def settle(self, quiet: float = 0.2, deadline: float = 10.0) -> int:
        """Wait until the count stops moving for ``quiet`` s (the JOINs were written)."""
        end = time.monotonic() + deadline
        last, since = self.count(), time.monotonic()
        while time.monotonic() < end and time.monotonic() - since < quiet:
            gevent.sleep(0.02)
            now = self.count()
            if now != last:
                last, since = now, time.monotonic()
        return last

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def wait_rows(rows: Rows, wanted: int, deadline: float, every: float = 0.005) -> int:
    """Poll until the file has ``wanted`` rows or ``deadline`` (monotonic) passes."""
    got = rows.count()
    while got < wanted and time.monotonic() < deadline:
        gevent.sleep(every)
        got = rows.count()
    return got


# -- worker processes (``history.py _sender`` / ``_probe`` / ``_inproc``) ---------------


class Worker:
    """A worker process of this script: prints ``ready``, waits for ``go`` on stdin,
    prints its result as the last line of JSON."""

    def __init__(self, *argv: str) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.argv = argv

    def ready(self, timeout: float = 60.0) -> None:
        assert self.proc.stdout is not None
        with gevent.Timeout(timeout, RuntimeError(f"worker {self.argv[:1]} not ready")):
            line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"worker {self.argv[:1]}: {line!r} instead of 'ready'")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with gevent.Timeout(timeout, RuntimeError(f"worker {self.argv[:1]}: no result")):
            text = self.proc.stdout.read()
            self.proc.wait()
        lines = [line for line in text.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"worker {self.argv[:1]} exited {self.proc.returncode}: {text!r}")
        return json.loads(lines[-1])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _wait_go() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")


def sender_main(argv: Sequence[str]) -> int:
    """``_sender HOST PORT INDEX CHANNEL RATE DURATION SIZE``: one connection alone in
    CHANNEL sends RATE lines/s (a batch every 10 ms) for DURATION s, then PINGs and
    waits for the PONG (every line before it has been handled)."""
    host, port, index, channel = argv[0], int(argv[1]), int(argv[2]), argv[3]
    rate, duration, size = float(argv[4]), float(argv[5]), int(argv[6])
    client = loadgen.connect(host, port, index, prefix="s")
    client.send(f"JOIN {channel}\r\n".encode())
    client.drain_until(f" 366 {client.nick} ".encode())
    line = f"PRIVMSG {channel} :{client.nick} {'x' * size}\r\n".encode()
    token = loadgen.sync_token(client.nick)
    _wait_go()
    reader = gevent.spawn(client.drain_until, token)
    start = time.monotonic()
    end, at, owed, sent, behind = start + duration, start, 0.0, 0, 0.0
    while at < end:
        owed += rate * TICK
        n = int(owed)
        owed -= n
        if n:
            client.sock.sendall(line * n)
            sent += n
        at += TICK
        delay = at - time.monotonic()
        behind = max(behind, -delay)
        if delay > 0:
            gevent.sleep(delay)
    sent_by = time.monotonic()
    client.send(b"PING :" + token + b"\r\n")
    reader.join(timeout=120)
    pong = time.monotonic() if reader.successful() else None
    print(
        json.dumps(
            {"sent": sent, "start": start, "sent_by": sent_by, "pong": pong, "max_behind_s": behind}
        )
    )
    return 0


def probe_main(argv: Sequence[str]) -> int:
    """``_probe HOST PORT DURATION EVERY``: PING :T<ns> every EVERY s on a fixed schedule
    for DURATION s; every PONG's round trip (µs), acknowledging each read at once."""
    host, port, duration, every = argv[0], int(argv[1]), float(argv[2]), float(argv[3])
    client = loadgen.connect(host, port, 0, prefix="p")
    rtts: list[int] = []
    _wait_go()
    pinged = 0

    def read() -> None:
        tail = b""
        while True:
            chunk = client.read_chunk(tail)
            now = time.monotonic_ns()
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            for line in data[:cut].split(b"\n"):
                if b" PONG " in line:
                    word = loadgen.last_word(line)
                    if word[:1] == b"T":
                        rtts.append((now - int(word[1:])) // 1000)
            tail = data[cut:]

    reader = gevent.spawn(read)
    start = time.monotonic()
    at = start
    while at < start + duration:
        client.send(b"PING :T%d\r\n" % time.monotonic_ns())
        pinged += 1
        at += every
        delay = at - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
    end = time.monotonic() + 2.0
    while len(rtts) < pinged and time.monotonic() < end:
        gevent.sleep(0.01)
    reader.kill()
    ms = [us / 1000 for us in rtts]
    print(json.dumps({"pinged": pinged, "ponged": len(rtts), **with_unit(pct(ms), "ms")}))
    return 0


def inproc_main(argv: Sequence[str]) -> int:
    """``_inproc``: the storing path in isolation (see the module's ``store`` part)."""
    p = argparse.ArgumentParser(prog="history.py _inproc")
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--chunk", type=int, default=250)
    p.add_argument("--size", type=int, default=40)
    args = p.parse_args(argv)

    from greenchat.protocol.caps import CapNegotiation
    from greenchat.server.collector import settle_after_start
    from greenchat.server.config import ServerConfig
    from greenchat.server.events import Joined, Messaged, UserRegistered
    from greenchat.server.outgoing import new_msgid
    from greenchat.server.server import ChatServer
    from greenchat.server.user import User

    config = ServerConfig(
        host=HOST, port=0, web=False, db=args.db, log_level="WARNING", flood_rate=0.0
    )
    server = ChatServer(config)
    server.start()
    settle_after_start()
    hub, history = server.hub, server.history
    store = server.storage.store
    batches: list[tuple[float, float, int]] = []  # (start, seconds, items), storage thread
    real_append = store.append_history

    writes = {"started": 0}

    def timed_append(items: Sequence[Any]) -> None:
        writes["started"] += 1
        t = time.perf_counter()
        try:
            real_append(items)
        finally:
            batches.append((t, time.perf_counter() - t, len(items)))

    store.append_history = timed_append
    senders = []
    for k in range(args.senders):
        nick, channel = f"s{k}", f"#h{k}"
        user = User(HOST, HOST, lambda data: None, CapNegotiation(server.supported_caps))
        hub.add_user(user)
        hub.claim_nick(user, nick)
        hub.apply(UserRegistered(nick, "s", HOST, "bench"))
        hub.apply(Joined(nick, channel))
        senders.append((nick, channel))
    apply = hub.apply
    text = "x" * args.size

    lags_ms: list[float] = []
    pending: list[int] = []
    stop = {"lag": False}

    def lag_probe() -> None:
        while not stop["lag"]:
            t = time.perf_counter()
            gevent.sleep(0.001)
            lags_ms.append(max(0.0, (time.perf_counter() - t - 0.001) * 1000))

    def pending_sampler() -> None:
        while not stop["lag"]:
            pending.append(len(history.pending))
            gevent.sleep(0.01)

    offered = [0] * len(senders)

    def feed(k: int, nick: str, channel: str, start: float, end: float) -> None:
        per_tick = args.rate / len(senders) * TICK
        at, owed = start, 0.0
        while at < end:
            owed += per_tick
            n = int(owed)
            owed -= n
            while n:
                for _ in range(min(args.chunk, n)):
                    apply(Messaged("PRIVMSG", nick, channel, text, "", new_msgid()))
                done = min(args.chunk, n)
                offered[k] += done
                n -= done
                if n:
                    gevent.sleep(0)
            at += TICK
            delay = at - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)

    _wait_go()
    # One second idle first: the lag of the loop with nothing to do.
    probe = gevent.spawn(lag_probe)
    sampler = gevent.spawn(pending_sampler)
    gevent.sleep(1.0)
    idle_lags = list(lags_ms)
    lags_ms.clear()
    idle_cpu = os.times()
    start = time.perf_counter()
    end = start + args.duration
    feeders = [
        gevent.spawn(feed, k, nick, channel, start + k * TICK / len(senders), end)
        for k, (nick, channel) in enumerate(senders)
    ]
    gevent.joinall(feeders)
    window_end = time.perf_counter()
    cpu_end = os.times()
    pending_at_end = len(history.pending)
    stop["lag"] = True
    probe.join()
    sampler.join()
    window_lags = list(lags_ms)
    total = sum(offered)
    deadline = time.perf_counter() + 120
    while (history.pending or writes["started"] > len(batches)) and (
        time.perf_counter() < deadline
    ):
        gevent.sleep(0.005)
    drained = time.perf_counter()
    dropped = history.dropped
    server.stop()

    window = window_end - start
    inside = [b for b in batches if start <= b[0] + b[1] <= window_end]
    stored_in_window = sum(n for _, _, n in inside)
    starts = [b[0] for b in batches if start <= b[0] <= window_end]
    intervals_ms = [(b - a) * 1000 for a, b in itertools.pairwise(starts)]
    sizes = [n for t, _, n in batches if start <= t <= window_end]
    writes_ms = [s * 1000 for t, s, _ in batches if start <= t <= window_end]
    lag_buckets = dict(
        zip(
            [*map(str, server.metrics.loop_lag.bounds), "+Inf"],
            server.metrics.loop_lag.counts,
            strict=True,
        )
    )
    cpu = (cpu_end.user + cpu_end.system) - (idle_cpu.user + idle_cpu.system)
    result = {
        "rate": args.rate,
        "duration_s": window,
        "senders": len(senders),
        "chunk": args.chunk,
        "offered": total,
        "offered_per_s": total / window,
        "stored_in_window": stored_in_window,
        "stored_per_s": stored_in_window / window,
        "stored_total": sum(n for _, _, n in batches),
        "dropped": dropped,
        "pending_max": max(pending, default=0),
        "pending_at_end": pending_at_end,
        "drain_s": drained - window_end,
        "lag_samples": len(window_lags),
        **with_unit(pct(window_lags, (50, 90, 99, 99.9)), "ms"),
        "idle_lag_p99_ms": pct(idle_lags).get("p99"),
        "batches": len(sizes),
        **with_unit(pct(sizes, (50, 99)), "items", 1),
        "batch_mean_items": statistics.fmean(sizes) if sizes else None,
        **with_unit(pct(intervals_ms, (50, 99)), "interval_ms"),
        **with_unit(pct(writes_ms, (50, 99)), "write_ms"),
        "process_cpu_s": cpu,
        "process_core_util": cpu / window,
        "server_lag_buckets": lag_buckets,
    }
    result["sustained"] = sustained(result)
    print(json.dumps(result))
    return 0


def sustained(row: dict[str, Any]) -> bool:
    """What was offered (>= 97% of the rate asked for) is stored as fast (>= 97%), and
    the backlog at the end is under 100 ms worth of messages."""
    rate, offered = row["rate"], row["offered_per_s"]
    return bool(
        offered >= SUSTAINED * rate
        and not row.get("dropped")
        and row["stored_per_s"] >= SUSTAINED * offered
        and row["pending_at_end"] <= max(1000, 0.1 * rate)
    )


WORKERS = {"_sender": sender_main, "_probe": probe_main, "_inproc": inproc_main}


# -- part: store -----------------------------------------------------------------------


def run_inproc(
    tmp: Path, args: argparse.Namespace, rate: float, duration: float, senders: int | None = None
) -> dict:
    db = tmp / f"inproc-{int(rate)}.db"
    remove_db(db)
    worker = Worker(
        "_inproc",
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--db",
        str(db),
        "--senders",
        str(senders or args.senders),
        "--chunk",
        str(args.chunk),
    )
    try:
        worker.ready()
        worker.go()
        return worker.result(timeout=duration + 180)
    finally:
        worker.close()
        remove_db(db)


def run_e2e(tmp: Path, args: argparse.Namespace, rate: float) -> dict[str, Any]:
    """One real server, ``args.senders`` sender processes and a probe, for one rate."""
    db = tmp / f"e2e-{int(rate)}.db"
    remove_db(db)
    server = start_server(tmp, f"e2e-{int(rate)}", db, metrics=True)
    workers: list[Worker] = []
    rows = Rows(db)
    try:
        per = rate / args.senders
        workers = [
            Worker(
                "_sender",
                server.host,
                str(server.port),
                str(k),
                f"#h{k}",
                str(per),
                str(args.duration),
                "40",
            )
            for k in range(args.senders)
        ]
        workers.append(Worker("_probe", server.host, str(server.port), str(args.duration), "0.01"))
        for worker in workers:
            worker.ready()
        seq0 = rows.settle()
        before = scrape.samples(scrape.scrape(server.metrics_url)[1])
        cpu0 = loadgen.cpu_seconds(server.pid)
        for worker in workers:
            worker.go()
        t_go = time.monotonic()
        pending: list[float] = []
        stored_at: list[tuple[float, int]] = []
        next_scrape = t_go + 2.0
        while (now := time.monotonic()) < t_go + args.duration:
            stored_at.append((now - t_go, rows.count() - seq0))
            if now >= next_scrape:
                found = scrape.samples(scrape.scrape(server.metrics_url)[1])
                pending.append(scrape.sample(found, "greenchat_history_pending") or 0)
                next_scrape += 2.0
            gevent.sleep(min(0.25, max(0.0, t_go + args.duration - now)))
        t_end = time.monotonic()
        seq_end = rows.count()
        cpu1 = loadgen.cpu_seconds(server.pid)
        after = scrape.samples(scrape.scrape(server.metrics_url)[1])
        pending.append(scrape.sample(after, "greenchat_history_pending") or 0)
        results = [w.result(timeout=args.duration + 150) for w in workers]
        senders, probe = results[:-1], results[-1]
        accepted = sum(r["sent"] for r in senders)
        answered = all(r["pong"] is not None for r in senders)
        last_pong = max((r["pong"] or t_end) for r in senders)
        wait_rows(rows, seq0 + accepted, time.monotonic() + 60, every=0.05)
        drained = time.monotonic()
        rows.settle()
        stored_total = rows.messages(seq0)
        final = scrape.samples(scrape.scrape(server.metrics_url)[1])
        dropped = (scrape.sample(final, "greenchat_history_dropped_total") or 0) - (
            scrape.sample(before, "greenchat_history_dropped_total") or 0
        )
        lag = scrape.histogram(after, "greenchat_event_loop_lag_seconds").minus(
            scrape.histogram(before, "greenchat_event_loop_lag_seconds")
        )
        window = t_end - t_go
        cpu = loadgen.cpu_delta(cpu0, cpu1)
        row: dict[str, Any] = {
            "rate": rate,
            "duration_s": window,
            "senders": args.senders,
            "accepted": accepted,
            "offered_per_s": accepted / args.duration,
            "accepted_per_s": accepted / max(window, last_pong - t_go),
            "all_answered": answered,
            "sender_max_behind_s": max(r["max_behind_s"] for r in senders),
            "stored_in_window": seq_end - seq0,
            "stored_per_s": (seq_end - seq0) / window,
            "stored_total": stored_total,
            "lost": accepted - stored_total,
            "dropped": dropped,
            "drain_s": drained - t_end,
            "pending_scraped": pending,
            "pending_max": max(pending, default=0),
            "ping": probe,
            "ping_p50_ms": probe.get("p50_ms"),
            "ping_p99_ms": probe.get("p99_ms"),
            "server_lag_samples": lag.count,
            "server_lag_p99_bound_ms": (
                None if lag.count <= 0 else lag.quantile_bound(0.99) * 1000
            ),
            "server_lag_buckets": lag.counts(),
            "server_cpu_s": cpu[2] if cpu else None,
            "server_core_util": cpu[2] / window if cpu else None,
            "stored_curve": stored_at[:: max(1, len(stored_at) // 40)],
        }
        return row
    finally:
        for worker in workers:
            worker.close()
        rows.close()
        servers.stop(server)
        remove_db(db)


def part_store(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    inproc, e2e = [], []
    for rate in parse_rates(args.e2e_rates) if "e2e" in args.store_modes else ():
        row = run_e2e(tmp, args, rate)
        e2e.append(row)
        print(
            f"store e2e {rate:>8,.0f}/s: accepted {row['accepted_per_s']:,.0f}/s, stored"
            f" {row['stored_per_s']:,.0f}/s, pending max {row['pending_max']:,.0f}, PING p50"
            f" {fmt(row['ping_p50_ms'])} p99 {fmt(row['ping_p99_ms'])} ms, server lag p99 <="
            f" {fmt(row['server_lag_p99_bound_ms'])} ms, server core {row['server_core_util']:.0%}",
            flush=True,
        )
    for rate in parse_rates(args.rates) if "inproc" in args.store_modes else ():
        row = run_inproc(tmp, args, rate, args.duration)
        inproc.append(row)
        print(
            f"store inproc {rate:>8,.0f}/s: offered {row['offered_per_s']:,.0f}/s, stored"
            f" {row['stored_per_s']:,.0f}/s, pending max {row['pending_max']:,}, end"
            f" {row['pending_at_end']:,}; lag p50 {fmt(row.get('p50_ms'))} p99"
            f" {fmt(row.get('p99_ms'))} max {fmt(row.get('max_ms'))} ms; batches p50"
            f" {row.get('p50_items')} p99 {row.get('p99_items')} items, every p50"
            f" {fmt(row.get('p50_interval_ms'))} p99 {fmt(row.get('p99_interval_ms'))} ms;"
            f" {'sustained' if row['sustained'] else 'NOT sustained'}",
            flush=True,
        )
    return {"e2e": e2e, "inproc": inproc, "verdict": store_verdict(e2e, inproc)}


def store_verdict(e2e: list[dict], inproc: list[dict]) -> dict[str, Any]:
    def ok(row: dict, lag_key: str) -> bool:
        lag = row.get(lag_key)
        return bool(lag is not None and lag <= LAG_TARGET_MS)

    good_inproc = [r for r in inproc if r["sustained"] and ok(r, "p99_ms")]
    good_e2e = [
        r
        for r in e2e
        if r["offered_per_s"] >= SUSTAINED * r["rate"]
        and r["stored_per_s"] >= SUSTAINED * r["offered_per_s"]
        and r["lost"] == 0
        and ok(r, "ping_p99_ms")
    ]
    best_inproc = max((r["rate"] for r in good_inproc), default=None)
    best_e2e = max((r["rate"] for r in good_e2e), default=None)
    at_target = [r for r in inproc if r["rate"] == STORE_TARGET]
    intervals = [r.get("p99_interval_ms") for r in at_target if r.get("p99_interval_ms")]
    return {
        "target_per_s": STORE_TARGET,
        "lag_target_ms": LAG_TARGET_MS,
        "best_inproc_rate": best_inproc,
        "best_e2e_rate": best_e2e,
        "inproc_met": bool(best_inproc and best_inproc >= STORE_TARGET),
        "e2e_met": bool(best_e2e and best_e2e >= STORE_TARGET),
        "batch_interval_p99_ms_at_target": intervals[0] if intervals else None,
        "batch_interval_met": bool(intervals and intervals[0] <= BATCH_INTERVAL_TARGET_MS),
    }


def parse_rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


# -- part: query -----------------------------------------------------------------------


def build_history(db: Path, rows: int, seed: int) -> tuple[list[str], float]:
    """``rows`` messages in #big, stored in batches of 10,000; (msgids, rows/s)."""
    from greenchat.server.outgoing import new_msgid
    from greenchat.store.base import HistoryItem
    from greenchat.store.sqlite import SqliteStore

    rng = random.Random(seed)
    store = SqliteStore(str(db))
    msgids: list[str] = []
    start = time.time() - rows * 0.01  # one line every 10 ms, up to now
    took = 0.0
    try:
        for first in range(0, rows, 10_000):
            batch = []
            for i in range(first, min(rows, first + 10_000)):
                nick = f"u{rng.randrange(50)}"
                msgid = new_msgid()
                msgids.append(msgid)
                text = f"line {i} " + "x" * rng.randrange(10, 120)
                batch.append(
                    HistoryItem(
                        BIG,
                        msgid,
                        round(start + i * 0.01, 3),
                        "PRIVMSG",
                        f"{nick}!~{nick}@127.0.0.1",
                        "",
                        (BIG, text),
                        "",
                    )
                )
            t = time.perf_counter()
            store.append_history(batch)
            took += time.perf_counter() - t
            gevent.sleep(0)
    finally:
        store.close()
    return msgids, rows / took


def _accepts_messages_only() -> bool:
    """Whether this tree's ``SqliteStore.history`` has ``messages_only`` (event-playback)."""
    import inspect

    from greenchat.store.sqlite import SqliteStore

    return "messages_only" in inspect.signature(SqliteStore.history).parameters


# What is asked of the store, as CHATHISTORY asks it: (name, messages_only). A client
# without draft/event-playback gets messages only (a condition on the command).
STORE_MODES = (("events", False), ("messages", True))


def _history_call(store: Any, ref: Any, messages_only: bool) -> list:
    if _accepts_messages_only():
        return store.history(BIG, None, ref, 100, True, 0.0, messages_only)
    return store.history(BIG, None, ref, 100, True)


def _analyzed(db: Path) -> bool:
    """Whether the file has planner statistics (sqlite_stat1: ANALYZE, PRAGMA optimize)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        found = "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
        return conn.execute(found).fetchone() is not None
    finally:
        conn.close()


def query_plan(db: Path, ref: str) -> dict[str, Any]:
    """The SQL that LATEST and BEFORE msgid=... run in the store (taken with the
    connection's trace callback, values expanded) and the query plan of each."""
    from greenchat.store.base import HistoryBound
    from greenchat.store.sqlite import SqliteStore

    store = SqliteStore(str(db))
    found: dict[str, Any] = {}
    try:
        modes = STORE_MODES if _accepts_messages_only() else STORE_MODES[:1]
        for mode, messages_only in modes:
            for name, bound in (("latest", None), ("before", HistoryBound(msgid=ref))):
                seen: list[str] = []
                store._db.set_trace_callback(seen.append)
                _history_call(store, bound, messages_only)
                store._db.set_trace_callback(None)
                sql = next(s for s in seen if s.lstrip().upper().startswith("SELECT"))
                plan = [row[3] for row in store._db.execute("EXPLAIN QUERY PLAN " + sql)]
                found[f"{name}_{mode}"] = {"sql": sql, "plan": plan}
    finally:
        store.close()
    before = [v for k, v in found.items() if k.startswith("before")]
    found["msgid_index_used"] = all(
        any("history_by_msgid" in step for step in v["plan"]) for v in before
    )
    found["analyzed"] = _analyzed(db)
    found["full_scans"] = [
        step
        for v in found.values()
        if isinstance(v, dict)
        for step in v["plan"]
        # A scan of a table; not of the page the store wraps as one JSON row.
        if step.startswith("SCAN") and not step.startswith("SCAN (subquery")
    ]
    return found


def pick(msgids: list[str], rng: random.Random) -> str:
    """A random msgid with at least 100 lines before it (no copy of the list: copying a
    million references between two timed queries would evict the caches they use)."""
    return msgids[rng.randrange(100, len(msgids))]


def time_store_calls(db: Path, msgids: list[str], queries: int, seed: int) -> dict[str, Any]:
    """``store.history`` called here directly, LATEST 100 and BEFORE <random msgid> 100."""
    from greenchat.store.base import HistoryBound
    from greenchat.store.sqlite import SqliteStore

    rng = random.Random(seed + 1)
    store = SqliteStore(str(db))
    out: dict[str, Any] = {}
    try:
        for _ in range(20):  # warm the page cache and the statement cache
            _history_call(store, None, False)
        modes = STORE_MODES if _accepts_messages_only() else STORE_MODES[:1]
        for mode, messages_only in modes:
            for name in ("latest", "before"):
                ms, lines = [], set()
                for _ in range(queries):
                    ref = HistoryBound(msgid=pick(msgids, rng)) if name == "before" else None
                    t = time.perf_counter()
                    got = _history_call(store, ref, messages_only)
                    ms.append((time.perf_counter() - t) * 1000)
                    lines.add(len(got))
                out[f"{name}_{mode}"] = {
                    "queries": queries,
                    "lines": sorted(lines),
                    **with_unit(pct(ms), "ms"),
                    "mean_ms": statistics.fmean(ms),
                }
    finally:
        store.close()
    return out


class HistoryClient:
    """A raw connection in #big asking CHATHISTORY, reading each batch to its end."""

    def __init__(self, host: str, port: int, index: int, caps: str) -> None:
        self.client = loadgen.connect(host, port, index, caps=caps, prefix="q")
        self.client.send(f"JOIN {BIG}\r\n".encode())
        self.client.drain_until(f" 366 {self.client.nick} ".encode())
        self.tail = self.client.tail

    def ask(self, command: str) -> tuple[float, int]:
        """Send ``command``; (ms until the batch's end line, lines in the batch)."""
        sock = self.client.sock
        t = time.perf_counter()
        sock.sendall(command.encode() + b"\r\n")
        data, lines, ref = self.tail, 0, None
        while True:
            cut = data.rfind(b"\n") + 1
            for line in data[:cut].split(b"\n")[:-1]:
                if ref is None:
                    at = line.find(b" BATCH +")
                    if at >= 0:
                        ref = line[at + 8 :].split(b" ", 1)[0]
                    elif b" FAIL " in line or line.startswith(b"FAIL"):
                        raise RuntimeError(f"{command}: {line!r}")
                    continue
                if b" BATCH -" + ref in line:
                    took = (time.perf_counter() - t) * 1000
                    self.tail = data[cut:]  # nothing follows the batch but what came after
                    return took, lines
                lines += 1
            data = data[cut:] + self.client.read_chunk(data)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def ping(self) -> float:
        """One PING's round trip (ms) on this connection: the floor under every ask."""
        sock = self.client.sock
        t = time.perf_counter()
        sock.sendall(b"PING :floor\r\n")
        data = self.tail
        while (at := data.find(b" PONG ")) < 0 or data.find(b"\n", at) < 0:
            data += self.client.read_chunk(data)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        took = (time.perf_counter() - t) * 1000
        self.tail = data[data.find(b"\n", at) + 1 :]
        return took

    def close(self) -> None:
        loadgen.close_all([self.client])


# The server's histograms of a query: one in the store, and the whole command (a
# CHATHISTORY's handler from its start to its reply queued); ms-keys of each row.
SERVER_HISTOGRAMS = {
    "store_read": "greenchat_history_read_seconds",
    "command": "greenchat_chathistory_seconds",
}


def _server_seconds(url: str) -> dict[str, scrape.Histogram]:
    """Each of SERVER_HISTOGRAMS the server has (a tree may lack one), by key."""
    found = scrape.samples(scrape.scrape(url)[1])
    return {
        key: scrape.histogram(found, name)
        for key, name in SERVER_HISTOGRAMS.items()
        if scrape.sample(found, name + "_count") is not None
    }


def time_server_queries(
    tmp: Path, db: Path, msgids: list[str], queries: int, seed: int
) -> dict[str, Any]:
    """A real server on ``db``; CHATHISTORY LATEST and BEFORE, from a client without
    draft/event-playback (messages only) and from one with it (every stored line)."""
    rng = random.Random(seed + 2)
    t = time.monotonic()
    server = start_server(tmp, "query", db, metrics=True)
    started = time.monotonic() - t
    out: dict[str, Any] = {"server_start_s": started}
    clients = {"messages": CHATHISTORY_CAPS, "events": CHATHISTORY_CAPS + " draft/event-playback"}
    try:
        for index, (mode, caps) in enumerate(clients.items()):
            client = HistoryClient(server.host, server.port, index, caps)
            try:
                for _ in range(20):
                    client.ask(f"CHATHISTORY LATEST {BIG} * 100")
                pings = [client.ping() for _ in range(200)]
                out[f"ping_{mode}"] = with_unit(pct(pings), "ms")
                for name in ("latest", "before"):
                    sub = name.upper()
                    before = _server_seconds(server.metrics_url)
                    ms, lines = [], set()
                    for _ in range(queries):
                        ref = "msgid=" + pick(msgids, rng) if name == "before" else "*"
                        took, got = client.ask(f"CHATHISTORY {sub} {BIG} {ref} 100")
                        ms.append(took)
                        lines.add(got)
                    row = {
                        "queries": queries,
                        "lines": sorted(lines),
                        **with_unit(pct(ms), "ms"),
                        "mean_ms": statistics.fmean(ms),
                    }
                    after = _server_seconds(server.metrics_url)
                    for key in before.keys() & after.keys():
                        delta = after[key].minus(before[key])
                        row[f"{key}_p50_bound_ms"] = delta.quantile_bound(0.5) * 1000
                        row[f"{key}_p99_bound_ms"] = delta.quantile_bound(0.99) * 1000
                        row[f"{key}_mean_ms"] = delta.sum / max(delta.count, 1) * 1000
                        row[f"{key}_buckets"] = delta.counts()
                    out[f"{name}_{mode}"] = row
            finally:
                client.close()
        cpu = loadgen.cpu_seconds(server.pid)
        out["server_cpu_s_total"] = cpu[2] if cpu else None
    finally:
        servers.stop(server)
    return out


QUERY_CASES = tuple(f"{n}_{m}" for m in ("messages", "events") for n in ("latest", "before"))


def part_query(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    db = tmp / "query.db"
    remove_db(db)
    try:
        t = time.monotonic()
        msgids, insert_rate = build_history(db, args.rows, args.seed)
        built = time.monotonic() - t
        size_mb = db.stat().st_size / 2**20
        print(
            f"query: {args.rows:,} rows in {BIG} stored in {built:.1f} s"
            f" ({insert_rate:,.0f} rows/s in append_history), file {size_mb:.0f} MiB",
            flush=True,
        )
        plan = query_plan(db, msgids[len(msgids) // 2])
        for key, found in plan.items():
            if isinstance(found, dict):
                print(f"query: EXPLAIN QUERY PLAN {key}: " + " | ".join(found["plan"]))
        store = time_store_calls(db, msgids, args.queries, args.seed)
        for name, found in store.items():
            print(
                f"query: store.history {name}: p50 {found['p50_ms']:.3f} ms, p99"
                f" {found['p99_ms']:.3f} ms, max {found['max_ms']:.3f} ms",
                flush=True,
            )
        server = time_server_queries(tmp, db, msgids, args.queries, args.seed)
        # Again now: closing a connection runs PRAGMA optimize, which may ANALYZE the
        # table (sqlite_stat1), and the planner may then choose another plan.
        plan_after = query_plan(db, msgids[len(msgids) // 2])
        for key, found in plan_after.items():
            if isinstance(found, dict) and found["plan"] != plan[key]["plan"]:
                print(
                    f"query: after the runs (stat1 {plan_after['analyzed']}), {key}: "
                    + " | ".join(found["plan"])
                )
        for name in QUERY_CASES:
            found = server[name]
            print(
                f"query: CHATHISTORY {name}: round trip p50 {found['p50_ms']:.3f} ms, p99"
                f" {found['p99_ms']:.3f} ms, max {found['max_ms']:.3f} ms ({found['lines']}"
                f" lines); on the server p99 <= {fmt(found.get('command_p99_bound_ms'), 'g')}"
                f" ms, in the store p99 <= {fmt(found.get('store_read_p99_bound_ms'), 'g')} ms",
                flush=True,
            )
        worst_rtt = max(server[n]["p99_ms"] for n in QUERY_CASES)
        # The target is the server's time: its own histogram of the command, where the
        # tree has it (a bucket's upper bound), else the round trip (an upper bound too).
        on_server = [server[n].get("command_p99_bound_ms") for n in QUERY_CASES]
        worst_server = max(on_server) if None not in on_server else worst_rtt
        worst_store = max(found["p99_ms"] for found in store.values())
        return {
            "rows": args.rows,
            "layout": f"all {args.rows:,} rows in one channel, {BIG} (PRIVMSG from 50 nicks)",
            "build_s": built,
            "append_rows_per_s": insert_rate,
            "file_mib": size_mb,
            "plan": plan,
            "plan_after": plan_after,
            "store": store,
            "server": server,
            "verdict": {
                "target_p99_ms": QUERY_TARGET_MS,
                "worst_round_trip_p99_ms": worst_rtt,
                "worst_store_call_p99_ms": worst_store,
                "worst_server_p99_bound_ms": worst_server,
                "server_measured": None not in on_server,
                "round_trip_met": worst_rtt <= QUERY_TARGET_MS,
                "server_met": worst_server <= QUERY_TARGET_MS,
                "store_call_met": worst_store <= QUERY_TARGET_MS,
                "msgid_index_used": plan["msgid_index_used"],
                "msgid_index_used_after": plan_after["msgid_index_used"],
                "met": worst_server <= QUERY_TARGET_MS and plan["msgid_index_used"],
            },
        }
    finally:
        remove_db(db)


# -- part: fanout ----------------------------------------------------------------------


def part_fanout(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    import fanout

    ns = argparse.Namespace(
        clients=args.clients,
        senders=args.fan_senders,
        messages=args.messages,
        size=64,
        deadline=120.0,
        caps="",
        metrics_url=None,
        scrape_interval=0.02,
        accounts=None,
    )
    loadgen.raise_fd_limit(2 * args.clients + 64)
    plan = (("on", ()), ("off", ("--no-history",)))
    started: dict[str, servers.RunningServer] = {}
    dbs = {name: tmp / f"fanout-{name}.db" for name, _ in plan}
    rows_of = {name: Rows(db) for name, db in dbs.items()}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in plan}
    try:
        with contextlib.ExitStack() as stack:
            fleets = {}
            for name, extra in plan:
                remove_db(dbs[name])
                server = started[name] = start_server(tmp, f"fanout-{name}", dbs[name], extra)
                spec = loadgen.FleetSpec(host=server.host, port=server.port, clients=args.clients)
                t = time.monotonic()
                fleets[name] = stack.enter_context(loadgen.Fleet(spec))
                fleets[name].join(fanout.CHANNEL, deadline=120)
                print(
                    f"fanout: {args.clients} clients joined {fanout.CHANNEL} on history"
                    f" {name} in {time.monotonic() - t:.1f} s",
                    flush=True,
                )
            burst = args.fan_senders * args.messages
            for run in range(1, args.repeat + 1):
                for name, _ in plan:
                    server, rows = started[name], rows_of[name]
                    seq0 = rows.count() if name == "on" else 0
                    cpu0 = loadgen.cpu_seconds(server.pid)
                    t0 = time.monotonic()
                    rounds = fleets[name].call(
                        fanout.fanout_round,
                        senders=ns.senders,
                        messages=ns.messages,
                        size=ns.size,
                        run=run,
                        deadline=ns.deadline,
                        channel=fanout.CHANNEL,
                    )
                    cpu1 = loadgen.cpu_seconds(server.pid)
                    stored = None
                    if name == "on":
                        deadline = time.monotonic() + 20
                        stored = wait_rows(rows, seq0 + burst, deadline, every=0.002) - seq0
                    cpu2 = loadgen.cpu_seconds(server.pid)
                    row = {"transport": "tcp", "series": name}
                    row |= fanout.measure(ns, run, rounds, t0, loadgen.cpu_delta(cpu0, cpu1))
                    with_store = loadgen.cpu_delta(cpu0, cpu2)
                    if with_store:
                        row["server_cpu_s_with_store"] = with_store[2]
                        row["server_us_per_delivery_with_store"] = (
                            with_store[2] * 1e6 / max(row["delivered"], 1)
                        )
                    if stored is not None:
                        row["stored"] = stored
                    if not row["complete"]:
                        raise RuntimeError(fanout.incomplete_message(row, ns.deadline))
                    row["extra_deliveries"] = fleets[name].sync(f"after{run}{name}")
                    runs[name].append(row)
                    fanout.print_run(row, f"{name} {run}")
    finally:
        for rows in rows_of.values():
            rows.close()
        for server in started.values():
            servers.stop(server)
        for db in dbs.values():
            remove_db(db)
    ratio = fanout.ratio_of(runs, "off", "on", FANOUT_TARGET)
    key = "server_us_per_delivery_with_store"
    on_med = statistics.median(r[key] for r in runs["on"])
    off_med = statistics.median(r[key] for r in runs["off"])
    by_run = {r["run"]: r for r in runs["off"]}
    paired = [r[key] / by_run[r["run"]][key] for r in runs["on"]]
    ratio_store = {
        "on_us_per_delivery": on_med,
        "off_us_per_delivery": off_med,
        "ratio": on_med / off_med,
        "paired": paired,
        "paired_median": statistics.median(paired),
        "target_max": FANOUT_TARGET,
        "met": on_med / off_med <= FANOUT_TARGET,
    }
    print(fanout.describe_ratio(ratio))
    print(
        f"on/off with the burst's storing: {on_med:.3f} / {off_med:.3f} µs ="
        f" {ratio_store['ratio']:.3f}x (paired median {ratio_store['paired_median']:.3f}x)"
    )
    stored_ok = all(r.get("stored") == args.fan_senders * args.messages for r in runs["on"])
    return {
        "parameters": {
            "clients": args.clients,
            "senders": args.fan_senders,
            "messages": args.messages,
            "size": 64,
            "repeat": args.repeat,
        },
        "servers": {name: started_command(started, name) for name, _ in plan},
        "runs": [row for run in zip(runs["on"], runs["off"], strict=True) for row in run],
        "median": {name: loadgen.medians(rows) for name, rows in runs.items()},
        "on_vs_off": ratio,
        "on_vs_off_with_store": ratio_store,
        "every_message_stored": stored_ok,
        "verdict": {
            "target_max": FANOUT_TARGET,
            "ratio": ratio["server_us_per_delivery"],
            "ratio_with_store": ratio_store["ratio"],
            "met": ratio["met"] and ratio_store["met"],
        },
    }


def started_command(started: dict[str, servers.RunningServer], name: str) -> str:
    server = started.get(name)
    return " ".join(getattr(server, "command", [])) if server else ""


# -- part: kill9 -----------------------------------------------------------------------


class EchoSender:
    """One client with echo-message: sends ``k<n>`` lines at a steady rate and records
    every echoed line's msgid (the server accepted it)."""

    def __init__(self, host: str, port: int) -> None:
        self.client = loadgen.connect(host, port, 0, caps="echo-message message-tags", prefix="k")
        self.client.send(f"JOIN {KILL_CHANNEL}\r\n".encode())
        self.client.drain_until(f" 366 {self.client.nick} ".encode())
        self.echoed: dict[int, str] = {}  # line number -> msgid
        self.sent = 0
        self.closed_at: float | None = None

    def read(self) -> None:
        tail = self.client.tail
        marker = f" PRIVMSG {KILL_CHANNEL} :k".encode()
        try:
            while True:
                data = tail + self.client.read_chunk(tail)
                cut = data.rfind(b"\n") + 1
                for line in data[:cut].split(b"\n"):
                    at = line.find(marker)
                    if at < 0 or not line.startswith(b"@"):
                        continue
                    tags = dict(
                        t.partition(b"=")[::2] for t in line[1 : line.find(b" ")].split(b";")
                    )
                    number = int(line[at + len(marker) :].rstrip(b"\r").split(b" ", 1)[0])
                    self.echoed[number] = tags[b"msgid"].decode()
                tail = data[cut:]
        except OSError:
            self.closed_at = time.monotonic()

    def send(self, rate: float, duration: float) -> None:
        start = time.monotonic()
        at, owed = start, 0.0
        with contextlib.suppress(OSError):
            while at < start + duration:
                owed += rate * TICK
                n = int(owed)
                owed -= n
                if n:
                    first, self.sent = self.sent, self.sent + n
                    lines = "".join(f"PRIVMSG {KILL_CHANNEL} :k{first + i} x\r\n" for i in range(n))
                    self.client.sock.sendall(lines.encode())
                at += TICK
                delay = at - time.monotonic()
                if delay > 0:
                    gevent.sleep(delay)


def one_kill(tmp: Path, args: argparse.Namespace, number: int, rng: random.Random) -> dict:
    db = tmp / f"kill-{number}.db"
    remove_db(db)
    server = start_server(tmp, f"kill-{number}", db)
    restarted = None
    try:
        sender = EchoSender(server.host, server.port)
        reader = gevent.spawn(sender.read)
        writer = gevent.spawn(sender.send, args.kill_rate, args.kill_seconds)
        kill_after = rng.uniform(0.3, 0.8) * args.kill_seconds
        gevent.sleep(kill_after)
        echoed_before = len(sender.echoed)
        killed_at = kill_server(server)
        reader.join(timeout=10)
        writer.kill()
        echoed = dict(sender.echoed)
        loadgen.close_all([sender.client])
        restarted = start_server(tmp, f"kill-{number}-restart", db)
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
        try:
            stored = {
                row[0]
                for row in conn.execute(
                    "SELECT msgid FROM history WHERE target = ? AND command = 'PRIVMSG'",
                    (KILL_CHANNEL,),
                )
            }
        finally:
            conn.close()
        accepted = set(echoed.values())
        lost = sorted((n for n, m in echoed.items() if m not in stored))
        return {
            "kill_after_s": kill_after,
            "sent": sender.sent,
            "echoed": len(accepted),
            "echoed_at_kill_call": echoed_before,
            "stored": len(stored),
            "lost": len(lost),
            "lost_lines": lost[:50],
            "lost_are_the_last": lost == sorted(echoed)[len(echoed) - len(lost) :],
            "stored_not_echoed": len(stored - accepted),
            "eof_after_kill_ms": (
                (sender.closed_at - killed_at) * 1000 if sender.closed_at else None
            ),
        }
    finally:
        for running in (server, restarted):
            if running is not None:
                servers.stop(running)
        remove_db(db)


def part_kill9(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed + 9)
    kills = []
    for number in range(1, args.kills + 1):
        row = one_kill(tmp, args, number, rng)
        kills.append(row)
        print(
            f"kill9 {number}: after {row['kill_after_s']:.2f} s, {row['echoed']:,} echoed,"
            f" {row['stored']:,} stored, lost {row['lost']}",
            flush=True,
        )
    lost = [k["lost"] for k in kills]
    # The batches at that rate from ONE sender, as here: a batch of lines every 10 ms.
    batch = run_inproc(tmp, args, float(args.kill_rate), min(3.0, args.kill_seconds), senders=1)
    summary = {
        "rate": args.kill_rate,
        "kills": len(kills),
        "lost_min": min(lost),
        "lost_median": statistics.median(lost),
        "lost_max": max(lost),
        "batch_at_rate": {
            k: batch.get(k)
            for k in (
                "p50_items",
                "p99_items",
                "max_items",
                "batch_mean_items",
                "p50_interval_ms",
                "p99_interval_ms",
                "p99_write_ms",
            )
        },
    }
    summary["met"] = summary["lost_max"] <= max(1, batch.get("max_items") or 1)
    print(
        f"kill9: lost per kill min {summary['lost_min']} median {summary['lost_median']}"
        f" max {summary['lost_max']}; write batches at {args.kill_rate}/s: p50"
        f" {batch.get('p50_items')} p99 {batch.get('p99_items')} max"
        f" {batch.get('max_items')} items",
        flush=True,
    )
    return {"kills": kills, "summary": summary, "verdict": {"met": summary["met"]}}


# -- the summary -----------------------------------------------------------------------


def summary_md(out: Path) -> str:
    parts = {
        p: json.loads((out / f"{p}.json").read_text())
        for p in PARTS
        if (out / f"{p}.json").exists()
    }
    lines = [
        "# History benchmarks (issue 15)",
        "",
        "Made by `benchmarks/history.py`; each part's JSON is beside this file.",
        "",
    ]
    targets = []
    if "store" in parts:
        data = parts["store"]
        lines += [f"## store (`{data['command']}`)", ""]
        if data["e2e"]:
            lines += [
                "End to end (a real server, sender processes, a PING probe):",
                "",
                "| offered/s | accepted/s | stored/s | lost | pending max | PING p50 ms |"
                " PING p99 ms | server lag p99 <= ms | server core |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for r in data["e2e"]:
                lines.append(
                    f"| {r['rate']:,.0f} | {r['accepted_per_s']:,.0f} | {r['stored_per_s']:,.0f} |"
                    f" {r['lost']:,} | {r['pending_max']:,.0f} | {fmt(r['ping_p50_ms'])} |"
                    f" {fmt(r['ping_p99_ms'])} | {fmt(r['server_lag_p99_bound_ms'], 'g')} |"
                    f" {r['server_core_util']:.0%} |"
                )
            lines.append("")
        if data["inproc"]:
            lines += [
                "The storing path alone (in-process, `hub.apply` of `Messaged` events):",
                "",
                "| asked/s | offered/s | stored/s | dropped | pending max | pending at end |"
                " lag p50 ms | lag p99 ms | lag max ms | batch p50/p99 items |"
                " batch every p50/p99 ms | write p99 ms | sustained |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in data["inproc"]:
                lines.append(
                    f"| {r['rate']:,.0f} | {r['offered_per_s']:,.0f} | {r['stored_per_s']:,.0f} |"
                    f" {r.get('dropped', 0):,} | {r['pending_max']:,} | {r['pending_at_end']:,} |"
                    f" {fmt(r.get('p50_ms'))} |"
                    f" {fmt(r.get('p99_ms'))} | {fmt(r.get('max_ms'))} |"
                    f" {r.get('p50_items')}/{r.get('p99_items')} |"
                    f" {fmt(r.get('p50_interval_ms'))}/{fmt(r.get('p99_interval_ms'))} |"
                    f" {fmt(r.get('p99_write_ms'))} | {'yes' if r['sustained'] else 'no'} |"
                )
            lines.append("")
        v = data["verdict"]
        targets.append(
            (
                f">= {STORE_TARGET:,} stored/s with lag p99 <= {LAG_TARGET_MS:g} ms, end to end",
                f"best {fmt(v['best_e2e_rate'], ',.0f')}/s",
                v["e2e_met"],
            )
        )
        targets.append(
            (
                f">= {STORE_TARGET:,} stored/s with lag p99 <= {LAG_TARGET_MS:g} ms, storing path",
                f"best {fmt(v['best_inproc_rate'], ',.0f')}/s",
                v["inproc_met"],
            )
        )
        targets.append(
            (
                f"write batches every <= {BATCH_INTERVAL_TARGET_MS:g} ms at"
                f" {STORE_TARGET:,}/s (p99)",
                f"{fmt(v['batch_interval_p99_ms_at_target'])} ms",
                v["batch_interval_met"],
            )
        )
    if "query" in parts:
        data = parts["query"]
        lines += [
            f"## query (`{data['command']}`)",
            "",
            f"{data['layout']}; built in {data['build_s']:.1f} s"
            f" ({data['append_rows_per_s']:,.0f} rows/s), {data['file_mib']:.0f} MiB; the"
            f" server started on it in {data['server']['server_start_s']:.1f} s."
            " `messages`: a client without draft/event-playback (the store filters on"
            " the command), `events`: with it. A PING on the same connection takes"
            f" {fmt(data['server'].get('ping_messages', {}).get('p50_ms'), '.3f')} ms (p50):"
            " the round trip adds the client's reading of 100 lines to the server's time."
            " The server's own times are bucket bounds of its histograms:"
            " greenchat_chathistory_seconds (the whole command, from its handler's start to"
            " its reply queued) and greenchat_history_read_seconds (the store's query).",
            "",
            "| query | store call p50 ms | p99 ms | in the server's store p99 <= ms |"
            " on the server p50 <= ms | p99 <= ms | mean ms |"
            " CHATHISTORY round trip p50 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in QUERY_CASES:
            s_, c = data["store"].get(name), data["server"][name]
            kind, mode = name.split("_")
            label = "LATEST * 100" if kind == "latest" else "BEFORE msgid=<random> 100"
            lines.append(
                f"| {label} ({mode}) | {fmt(s_ and s_['p50_ms'], '.3f')} |"
                f" {fmt(s_ and s_['p99_ms'], '.3f')} |"
                f" {fmt(c.get('store_read_p99_bound_ms'), 'g')} |"
                f" {fmt(c.get('command_p50_bound_ms'), 'g')} |"
                f" {fmt(c.get('command_p99_bound_ms'), 'g')} |"
                f" {fmt(c.get('command_mean_ms'), '.3f')} | {c['p50_ms']:.3f} |"
                f" {c['p99_ms']:.3f} | {c['max_ms']:.3f} |"
            )
        lines += ["", "EXPLAIN QUERY PLAN of the SQL the store runs:", "", "```"]
        for key, found in data["plan"].items():
            if isinstance(found, dict):
                lines += [f"-- {key}", found["sql"], *found["plan"]]
        lines += ["```", ""]
        after = data.get("plan_after", {})
        changed = [k for k, v in after.items()
                   if isinstance(v, dict) and v["plan"] != data["plan"][k]["plan"]]  # fmt: skip
        if changed:
            lines += [
                "After the timed runs (closing connections ran PRAGMA optimize; sqlite_stat1"
                f" {'present' if after.get('analyzed') else 'absent'}), the planner chose:",
                "",
                "```",
            ]
            for key in changed:
                lines += [f"-- {key}", *after[key]["plan"]]
            lines += ["```", ""]
        v = data["verdict"]
        targets.append(
            (
                f"CHATHISTORY LATEST/BEFORE 100 on {data['rows']:,} rows p99 <="
                f" {QUERY_TARGET_MS:g} ms on the server, msgid through an index",
                f"worst p99 <= {fmt(v.get('worst_server_p99_bound_ms'), 'g')} ms on the server"
                f" (round trip {v['worst_round_trip_p99_ms']:.3f} ms, store call"
                f" {v['worst_store_call_p99_ms']:.3f} ms), index"
                f" {'used' if v['msgid_index_used'] else 'NOT used'}",
                v["met"],
            )
        )
    if "fanout" in parts:
        data = parts["fanout"]
        p = data["parameters"]
        lines += [
            f"## fanout (`{data['command']}`)",
            "",
            f"{p['clients']:,} members, {p['senders']} senders x {p['messages']} lines,"
            f" {p['repeat']} repetitions alternating on, off.",
            "",
            "| history | server µs/delivery | with its storing | deliveries/s |",
            "|---|---|---|---|",
        ]
        for name in ("on", "off"):
            m = data["median"][name]
            lines.append(
                f"| {name} | {m['server_us_per_delivery']:.3f} |"
                f" {m['server_us_per_delivery_with_store']:.3f} |"
                f" {m['deliveries_per_s']:,.0f} |"
            )
        r, s = data["on_vs_off"], data["on_vs_off_with_store"]
        lines += [
            "",
            f"on/off: {r['server_us_per_delivery']:.3f}x (paired repetitions: median"
            f" {r['paired_median']:.3f}x, {min(r['paired']):.3f}-{max(r['paired']):.3f});"
            f" with the storing: {s['ratio']:.3f}x (paired median {s['paired_median']:.3f}x).",
            "",
        ]
        v = data["verdict"]
        targets.append(
            (
                f"fan-out CPU/delivery history on / off <= {FANOUT_TARGET:g}x",
                f"{v['ratio']:.3f}x ({v['ratio_with_store']:.3f}x with the storing)",
                v["met"],
            )
        )
    if "kill9" in parts:
        data = parts["kill9"]
        s = data["summary"]
        b = s["batch_at_rate"]
        lines += [
            f"## kill9 (`{data['command']}`)",
            "",
            f"{s['kills']} kills at {s['rate']:,} lines/s: lost per kill min {s['lost_min']},"
            f" median {s['lost_median']}, max {s['lost_max']}. Write batches at that rate"
            f" (in-process): p50 {b['p50_items']}, p99 {b['p99_items']}, max"
            f" {b['max_items']} items, every p50 {fmt(b['p50_interval_ms'])} ms.",
            "",
            "| kill after s | echoed | stored | lost | stored, not echoed |",
            "|---|---|---|---|---|",
        ]
        for k in data["kills"]:
            lines.append(
                f"| {k['kill_after_s']:.2f} | {k['echoed']:,} | {k['stored']:,} |"
                f" {k['lost']} | {k['stored_not_echoed']} |"
            )
        lines.append("")
        targets.append(
            (
                "kill -9 loses at most the last write batch",
                f"lost max {s['lost_max']}, batch max {b['max_items']}",
                data["verdict"]["met"],
            )
        )
    if targets:
        lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {t} | {m} | {'yes' if ok else 'NO'} |" for t, m, ok in targets]
        lines.append("")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--part", default=",".join(PARTS), help="comma-separated, of " + ", ".join(PARTS)
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON and summary")
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds (the smoke test)")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument(
        "--server-flags",
        default="",
        metavar="FLAGS",
        help="more greenchat-serve flags for every server started, e.g. '--no-history'"
        " (the fanout part's own --no-history server aside)",
    )
    p.add_argument(
        "--tree",
        type=Path,
        metavar="DIR",
        help="run greenchat from this checkout (a folder holding greenchat/) instead of the"
        " installed one: servers, the in-process harness and the store calls (for"
        " experiments on a copy)",
    )
    g = p.add_argument_group("store")
    g.add_argument("--store-modes", default="e2e,inproc", help="e2e, inproc or both")
    g.add_argument("--duration", type=float, help="seconds per rate (20)")
    g.add_argument("--rates", help="offered rates for inproc, comma-separated")
    g.add_argument("--e2e-rates", help="offered rates for e2e, comma-separated")
    g.add_argument("--senders", type=int, help="sender processes / senders in-process (4)")
    g.add_argument("--chunk", type=int, help="inproc: events applied between yields (250)")
    g = p.add_argument_group("query")
    g.add_argument("--rows", type=int, help="stored messages (1,000,000)")
    g.add_argument("--queries", type=int, help="queries of each kind (1000)")
    g = p.add_argument_group("fanout")
    g.add_argument("--clients", type=int, help="members of the room (1000)")
    g.add_argument("--fan-senders", type=int, help="senders (10)")
    g.add_argument("--messages", type=int, help="lines per sender (200)")
    g.add_argument("--repeat", type=int, help="repetitions of each (9)")
    g = p.add_argument_group("kill9")
    g.add_argument("--kills", type=int, help="repetitions (10)")
    g.add_argument("--kill-rate", type=int, help="lines/s sent (2000)")
    g.add_argument("--kill-seconds", type=float, help="seconds of sending; the kill is inside")
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.parts = [x.strip() for x in args.part.split(",") if x.strip()]
    if not args.parts or any(x not in PARTS for x in args.parts):
        p.error(f"--part: a comma-separated list of {', '.join(PARTS)}")
    args.store_modes = [x.strip() for x in args.store_modes.split(",") if x.strip()]
    if not args.store_modes or any(x not in ("e2e", "inproc") for x in args.store_modes):
        p.error("--store-modes: e2e, inproc or both")
    return args


def use_tree(tree: Path) -> None:
    """Import greenchat from ``tree`` here and in every process started from now on
    (PYTHONPATH comes before the editable install's path); checked in a child."""
    if not (tree / "greenchat" / "__init__.py").exists():
        sys.exit(f"--tree {tree}: no greenchat/ package there")
    sys.path.insert(0, str(tree))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(tree), os.environ.get("PYTHONPATH")])
    )
    found = subprocess.run(
        [sys.executable, "-c", "import greenchat; print(greenchat.__file__)"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    ).stdout.strip()
    if not found.startswith(str(tree)):
        sys.exit(f"--tree {tree}: a child imports greenchat from {found}")


def tree_digest(tree: Path | None) -> str:
    """A short digest of the greenchat/ sources measured (the tree moves under us)."""
    import hashlib

    root = (tree or HERE.parent) / "greenchat"
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in WORKERS:
        return WORKERS[argv[0]](argv[1:])
    servers.exit_on_sigterm()
    args = parse_args(argv)
    SERVER_FLAGS[:] = shlex.split(args.server_flags)
    if args.tree is not None:
        use_tree(args.tree.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/history.py " + " ".join(argv)
    parts = {"store": part_store, "query": part_query, "fanout": part_fanout, "kill9": part_kill9}
    with tempfile.TemporaryDirectory(prefix="greenchat-history-") as tmp_name:
        tmp = Path(tmp_name)
        for name in args.parts:
            t, load, digest = time.monotonic(), os.getloadavg(), tree_digest(args.tree)
            found = parts[name](tmp, args)
            # Other load on the machine moves every number: the load averages say how much.
            # The sources' digest before and after: others edit the tree meanwhile.
            data = {
                "part": name,
                "command": command.strip(),
                "quick": args.quick,
                "seconds": time.monotonic() - t,
                "loadavg_before": load,
                "loadavg_after": os.getloadavg(),
                "tree": str(args.tree or ""),
                "server_flags": SERVER_FLAGS,
                "greenchat_digest_before": digest,
                "greenchat_digest_after": tree_digest(args.tree),
                **found,
                "machine": loadgen.machine_info(),
            }
            path = args.out / f"{name}.json"
            path.write_text(json.dumps(data, indent=2) + "\n")
            print(f"wrote {path}", flush=True)
    (args.out / "summary.md").write_text(summary_md(args.out))
    print(f"wrote {args.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
