"""logins: 1,000 clients log in with SASL SCRAM-SHA-256 at once, while a channel chats.

greenchat only (the other servers have no account store in the benchmark
configs; their rows say so). The server keeps its accounts in a SQLite file
of its own in the run's temporary folder (``--db``, made afresh per case) and
runs with its metrics listener.

Set up, outside every measured window:

1. **Accounts**: ``l0`` ... ``l999`` are made through the server itself,
   ``REGISTER lK * <password>`` before connection registration
   (draft/account-registration, before-connect), at most 16 at a time, each
   connection closed once it has its ``REGISTER SUCCESS``. The server hashes
   each password with scrypt in its thread pool (~30-60 ms a core), so this
   takes 20-40 s for 1,000 on two cores; it is timed (``register_s``).
2. **Salts**: each storm process asks the server for its share's SCRAM salt
   (``AUTHENTICATE SCRAM-SHA-256``, a client-first, the server-first's
   ``s=``/``i=``, then ``AUTHENTICATE *``: aborted, not a failed login) and
   works out each account's SaltedPassword (PBKDF2, 4,096 iterations, ~1.5
   ms) ahead, as RFC 5802 lets a client cache it: ``loadgen.remember_salted_password``.
   In the storm, scramp's ``ScramClient`` still makes every proof from the
   server's fresh nonce; only its PBKDF2 is looked up. ``precompute: False``
   leaves it in the window.
3. **Chatters**: 4 clients (``b0`` ...) join ``#chat`` and exchange lines
   stamped ``T<CLOCK_MONOTONIC ns>`` at 50 lines/s in all (staggered), each
   reading as data arrives and recording every line's latency, from before
   the first storm to after the last; and a prober (``p0``, in no channel)
   sends ``PING :T<ns>`` every 10 ms on a fixed schedule and times each
   ``PONG``: how long a ready connection waits for the event loop, with no
   fan-out in it and no Nagle delay (it acknowledges every read at once with
   ``TCP_QUICKACK``; the chatters read as any client does, so their
   latencies include Nagle's and delayed ACKs' tens of ms). They live in the harness's process; the
   storm clients in ``--procs`` worker processes of their own.

Measured, ``repeat`` times (3; the accounts and salts are reused), each
after ``settle`` s (1) for the previous storm's clients to leave and a calm
window of ``quiet`` s (2) for reference latencies:

* the server's ``/metrics`` is scraped (``greenchat_event_loop_lag_seconds``,
  ``greenchat_logins_total``) and its CPU read; then every storm client
  (``lK``, nick = account) connects at once and pipelines ``CAP REQ :sasl``,
  ``NICK``, ``USER``, ``AUTHENTICATE SCRAM-SHA-256``; client-first,
  client-final (after checking nothing), the server-final's signature
  checked by scramp, ``AUTHENTICATE +``, 903, ``CAP END``, 001;
* once every client has its 001 (or failed), the CPU and ``/metrics`` again.

With ``compare_concurrency`` (50), each all-at-once storm is followed by one
in which at most that many clients are between ``connect()`` and 001 at a
time (the others wait in the generator): the same logins, a bounded backlog
of them in the server. Its figures are under ``bounded`` (and
``bounded_...``); the target is read from the all-at-once storms.

Reported: login time from ``connect()`` to 903 (p50/p90/p99/max) and the
wall time from the first connect to the last 903; the event-loop lag
observed during the storm (the histogram's delta: the server times a 0.1 s
sleep, so a storm of a few seconds gives a few samples, pooled over the
repetitions; ``lag_p99_ms`` is the bucket bound the 99th percentile falls
under); the PING round trips and the chatters' latencies of what was sent
during the storms (p99, and the same in the calm windows as ``quiet``);
server CPU over the window and per login; failures: logins that did not
reach 903 and 001, a rise of the counter's ``failed``/``limited``/
``unavailable``, ``ok`` not rising by N, chat lines or PONGs lost (all must
be 0). Target (``LAG_TARGET_MS``): event-loop lag p99 <= 10 ms, read as
both the histogram's p99 bound and the PING round trips' p99 within it (the
histogram alone has a few samples per storm), with no failure.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import time
from typing import Any

import gevent
import scrape
import servers
from gevent.lock import BoundedSemaphore
from loadgen import (
    PATTERN,
    SCRAM_MECHANISM,
    STAMP,
    Client,
    Fleet,
    FleetSpec,
    WorkerProcess,
    bench_password,
    cdf_points,
    close_all,
    connect,
    cpu_delta,
    cpu_seconds,
    func_ref,
    last_word,
    open_socket,
    percentiles,
    register_accounts,
    remember_salted_password,
    sasl_scram,
    scram_salt,
    source_address,
    split,
    timed_text,
)

from workloads import Case, Metric, Options, Server, Workload

CHANNEL = "#chat"
PREFIX = "l"  # storm clients' nicks and accounts: l0, l1 ...
PONG = b" PONG "
LAG_TARGET_MS = 10.0
LAG = "greenchat_event_loop_lag_seconds"
LOGINS_COUNTER = "greenchat_logins_total"
REGISTER_CONCURRENCY = 16  # REGISTERs in flight: keeps the server's thread pool busy
PROBE_CONCURRENCY = 50


def cases(server: str, opts: Options) -> list[Case]:
    if opts.quick:
        params = {"accounts": 20, "chatters": 3, "rate": 30.0, "quiet": 0.3, "repeat": 1,
                  "settle": 0.2, "compare_concurrency": 5}  # fmt: skip
        label = "N=20"
    else:
        params = {"accounts": 1000, "chatters": 4, "rate": 50.0, "quiet": 2.0, "repeat": 3,
                  "settle": 1.0, "compare_concurrency": 50}  # fmt: skip
        label = "N=1000"
    params |= {"metrics": True, "db": True, "precompute": True, "deadline": 120.0}
    return [Case(label, params, skip_reason(server))]


def skip_reason(server: str) -> str | None:
    if servers.has_accounts(server):
        return None
    if server in servers.BASELINES:
        return "no accounts at this revision (its --help lists no --db)"
    if server == "threaded":
        return "no accounts or SASL (the seed's design speaks minimal IRC)"
    return "no account store in the benchmark configs (SASL needs services such as Atheme)"


# -- in the storm processes ----------------------------------------------------------------

# This process's storm clients, logged in, until logins_close.
_STORM: list[Client] = []


def prepare_logins(
    clients: list[Client],
    first: int,
    host: str,
    port: int,
    start: int,
    stop: int,
    sources: int = 1,
    precompute: bool = True,
) -> dict[str, Any]:
    """Accounts ``start`` .. ``stop - 1``: fetch each one's SCRAM salt and work out its
    SaltedPassword now (outside the window; nothing with ``precompute`` false)."""
    if not precompute:
        return {"probed": 0}
    gate = BoundedSemaphore(PROBE_CONCURRENCY)
    counts: set[int] = set()

    def one(index: int) -> None:
        name = f"{PREFIX}{index}"
        with gate:
            salt, iterations = scram_salt(host, port, name, source_address(index, sources))
        remember_salted_password(bench_password(name), salt, iterations)
        counts.add(iterations)

    gevent.joinall([gevent.spawn(one, i) for i in range(start, stop)], raise_error=True)
    return {"probed": stop - start, "iterations": sorted(counts)}


def login_one(host: str, port: int, index: int, sources: int) -> tuple[float, ...]:
    """Connect, log in (SCRAM) and register as ``l<index>``; (started, connected, 903, 001)."""
    name = f"{PREFIX}{index}"
    started = time.monotonic()
    sock = open_socket(host, port, source_address(index, sources), None)
    connected = time.monotonic()
    client = Client(sock, name)
    _STORM.append(client)
    client.send(
        f"CAP REQ :sasl\r\nNICK {name}\r\nUSER {name} 0 * :bench\r\n"
        f"AUTHENTICATE {SCRAM_MECHANISM}\r\n".encode()
    )
    sasl_scram(client, name, bench_password(name))
    logged_in = time.monotonic()
    client.send(b"CAP END\r\n")
    welcome = f" 001 {name} ".encode()
    client.lines_until(lambda line: welcome in line)
    return started, connected, logged_in, time.monotonic()


def login_storm(
    clients: list[Client],
    first: int,
    host: str,
    port: int,
    start: int,
    stop: int,
    sources: int = 1,
    concurrency: int = 0,
    deadline: float = 120.0,
) -> dict[str, Any]:
    """Clients ``start`` .. ``stop - 1`` connect and log in, all at once (or at most
    ``concurrency`` at a time); they stay connected until :func:`logins_close`.
    Returns each one's times (:func:`login_one`) and the errors of those that failed."""
    gate = BoundedSemaphore(concurrency) if concurrency else contextlib.nullcontext()

    def one(index: int) -> tuple[float, ...]:
        with gate:
            return login_one(host, port, index, sources)

    began = time.monotonic()
    jobs = [gevent.spawn(one, i) for i in range(start, stop)]
    gevent.joinall(jobs, timeout=deadline)
    times, errors = [], []
    for job in jobs:
        if job.successful():
            times.append(job.value)
        elif job.ready():
            errors.append(f"{type(job.exception).__name__}: {job.exception}")
        else:
            errors.append(f"no 001 within {deadline:g} s")
    gevent.killall(jobs, block=False)
    return {"began": began, "times": times, "errors": errors}


def logins_close(clients: list[Client], first: int) -> dict[str, Any]:
    """QUIT and close this process's storm clients."""
    closed = len(_STORM)
    close_all(_STORM)
    _STORM.clear()
    return {"closed": closed}


# -- in the harness's process ----------------------------------------------------------------


class Chat:
    """Chatters in CHANNEL: each sends a timed line every ``chatters / rate`` s (staggered)
    and reads as data arrives, recording (send ns, latency µs) for every line it gets.

    And a prober (``prober``, in no channel): ``PING :T<ns>`` every ``ping_every`` s,
    on a fixed schedule whatever the answers, and the round trip of each ``PONG``
    (``pings``): the time a ready connection waits for the server's event loop,
    with no fan-out in it, and no Nagle delay (it acknowledges every read at
    once). The chatters read as any client does: their latencies include
    Nagle's and delayed ACKs' tens of ms, even on an idle server.
    """

    def __init__(
        self, clients: list[Client], rate: float, prober: Client, ping_every: float = 0.01
    ) -> None:
        self.clients, self.rate, self.size = clients, rate, 64
        self.samples: list[tuple[int, int]] = []
        self.pings: list[tuple[int, int]] = []
        self.sent = self.pinged = 0
        self.stopping = False
        self.errors: list[str] = []
        begin = time.monotonic() + 0.05
        interval = len(clients) / rate
        self.senders = [
            gevent.spawn(self._send, c, begin + k * interval / len(clients), interval)
            for k, c in enumerate(clients)
        ]
        self.senders.append(gevent.spawn(self._ping, prober, begin, ping_every))
        self.readers = [gevent.spawn(self._read, c) for c in clients]
        self.readers.append(gevent.spawn(self._read, prober, PONG, self.pings))
        self.prober = prober

    def _ping(self, client: Client, at: float, interval: float) -> None:
        while not self.stopping:
            delay = at - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            client.send(b"PING :T%d\r\n" % time.monotonic_ns())
            self.pinged += 1
            at += interval

    def _send(self, client: Client, at: float, interval: float) -> None:
        head = f"PRIVMSG {CHANNEL} :".encode()
        while not self.stopping:
            delay = at - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            client.send(head + timed_text(self.size) + b"\r\n")
            self.sent += 1
            at += interval

    def _read(self, client: Client, pattern: bytes = PATTERN, into: list | None = None) -> None:
        """Record (stamp, latency µs) of every line with ``pattern`` and a ``:T<ns>``.

        The prober (``pattern`` PONG) acknowledges what it reads at once
        (``TCP_QUICKACK``, which Linux drops again after a while, so after every
        read): greenchat leaves Nagle's algorithm on, and with the client's
        delayed ACK a PONG sent while the previous one is unacknowledged waits
        for the next PING's ACK, 10 ms later, and so does every PONG after it
        (measured: calm windows at 10.1 ms p50 after one slow PONG).
        """
        samples = self.samples if into is None else into
        tail = client.tail
        quick = pattern is PONG
        try:
            while True:
                chunk = client.read_chunk(tail)
                now = time.monotonic_ns()
                if quick:
                    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                data = tail + chunk
                cut = data.rfind(b"\n") + 1
                for line in data[:cut].split(b"\n"):
                    if pattern is PONG:  # ":server PONG server T<ns>" (or ":T<ns>")
                        word = last_word(line) if PONG in line else b""
                        if word[:1] == b"T":
                            samples.append((sent := int(word[1:]), (now - sent) // 1000))
                        continue
                    at = line.find(pattern)
                    stamp = line.find(STAMP, at) if at >= 0 else -1
                    if stamp >= 0:
                        sent = int(line[stamp + 3 : line.find(b" ", stamp + 3)])
                        samples.append((sent, (now - sent) // 1000))
                tail = data[cut:]
        except OSError as exc:
            self.errors.append(str(exc))

    def stop(self, grace: float = 2.0) -> tuple[int, int]:
        """Stop sending, wait up to ``grace`` s for what is in flight; the chat lines
        and the PONGs lost."""
        self.stopping = True
        gevent.joinall(self.senders)
        expected = self.sent * (len(self.clients) - 1)
        end = time.monotonic() + grace
        while len(self.samples) < expected or len(self.pings) < self.pinged:
            if time.monotonic() > end:
                break
            gevent.sleep(0.02)
        gevent.killall(self.readers)
        return expected - len(self.samples), self.pinged - len(self.pings)

    def latencies_ms(self, since: float, until: float, pings: bool = False) -> list[float]:
        """Latencies of the lines (or PING round trips) sent between monotonic
        ``since`` and ``until``."""
        lo, hi = int(since * 1e9), int(until * 1e9)
        found = self.pings if pings else self.samples
        return [us / 1000 for sent, us in found if lo <= sent <= hi]


def call_each(
    workers: list[WorkerProcess], func: Any, params: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``func`` in every worker at once, each with its own parameters; their results."""
    ref = func_ref(func)
    for worker, own in zip(workers, params, strict=True):
        worker.send({"op": "call", "func": ref, "params": own})
    return [worker.reply() for worker in workers]


def metrics_now(url: str) -> dict:
    return scrape.samples(scrape.scrape(url)[1])


def storm_once(
    server: Server,
    workers: list[WorkerProcess],
    shares: list[range],
    params: dict[str, Any],
    opts: Options,
    run: int,
) -> tuple[dict[str, Any], scrape.Histogram]:
    """One storm: its row (``window``: its monotonic start and end, for the chatters'
    latencies, added once all lines are in), and the lag histogram's delta over it."""
    url = server.metrics_url
    assert url is not None
    before = metrics_now(url)
    cpu_before = cpu_seconds(server.pid)
    t0 = time.monotonic()
    rounds = call_each(
        workers,
        login_storm,
        [
            {"host": server.host, "port": server.port, "start": share.start, "stop": share.stop,
             "sources": opts.sources, "concurrency": params.get("storm_concurrency", 0),
             "deadline": params["deadline"]}
            for share in shares
        ],
    )  # fmt: skip
    t1 = time.monotonic()
    cpu = cpu_delta(cpu_before, cpu_seconds(server.pid))
    after = metrics_now(url)
    lag = scrape.histogram(after, LAG).minus(scrape.histogram(before, LAG))
    times = [t for r in rounds for t in r["times"]]
    errors = [e for r in rounds for e in r["errors"]]
    row: dict[str, Any] = {"run": run, "concurrency": params.get("storm_concurrency", 0)}
    row |= {"logins": len(times), "failed": len(errors)}
    if times:
        first = min(t[0] for t in times)
        login_ms = [(t[2] - t[0]) * 1000 for t in times]
        row |= {f"login_{k}_ms": v for k, v in percentiles(login_ms).items()}
        row |= {
            "connect_p99_ms": percentiles([(t[1] - t[0]) * 1000 for t in times])["p99"],
            "welcome_p99_ms": percentiles([(t[3] - t[0]) * 1000 for t in times])["p99"],
            "storm_s": max(t[2] for t in times) - first,
            "storm_to_001_s": max(t[3] for t in times) - first,
            "login_cdf_ms": cdf_points(login_ms, 100),
        }
        row["logins_per_s"] = len(times) / row["storm_s"] if row["storm_s"] > 0 else None

    def rise(result: str) -> float:
        now = scrape.sample(after, LOGINS_COUNTER, result=result) or 0.0
        return now - (scrape.sample(before, LOGINS_COUNTER, result=result) or 0.0)

    ok, bad = rise("ok"), sum(rise(r) for r in ("failed", "limited", "unavailable"))
    row |= {"logins_counted": int(ok), "logins_refused_counted": int(bad)}
    row |= lag_fields(lag)
    if cpu:
        row |= {
            "window_s": t1 - t0,
            "server_cpu_s": cpu[2],
            "server_user_s": cpu[0],
            "server_sys_s": cpu[1],
            "server_ms_per_login": cpu[2] * 1000 / max(1, len(times)),
            "server_core_util": cpu[2] / (t1 - t0),
        }
    gen = [r["cpu"] for r in rounds]
    row |= {"generator_cpu_s": sum(gen), "generator_core_util": max(gen) / (t1 - t0)}
    row["window"] = [t0, t1]
    if errors:
        row["errors"] = errors[:5]
    return row, lag


def lag_fields(lag: scrape.Histogram, prefix: str = "lag") -> dict[str, Any]:
    """The lag histogram's delta as result fields (ms)."""
    bounds = {q: lag.quantile_bound(q) for q in (0.5, 0.99, 1.0)}
    ms = {q: None if b is None else b * 1000 for q, b in bounds.items()}
    return {
        f"{prefix}_samples": int(lag.count),
        f"{prefix}_p50_ms": ms[0.5],
        f"{prefix}_p99_ms": ms[0.99],
        f"{prefix}_max_bound_ms": ms[1.0],
        f"{prefix}_mean_ms": lag.sum * 1000 / lag.count if lag.count else None,
        f"{prefix}_buckets": lag.counts(),
    }


def run(server: Server, params: dict[str, Any], opts: Options) -> dict[str, Any]:
    if server.metrics_url is None:
        raise RuntimeError(f"{server.name} was started without its metrics listener")
    n, pid = params["accounts"], server.pid
    names = [f"{PREFIX}{i}" for i in range(n)]
    result: dict[str, Any] = {"accounts": n, "precompute": params["precompute"]}
    cpu0, t = cpu_seconds(pid), time.monotonic()
    register_accounts(server.host, server.port, names, REGISTER_CONCURRENCY, opts.sources)
    register_s, cpu = time.monotonic() - t, cpu_delta(cpu0, cpu_seconds(pid))
    result |= {"register_s": register_s, "registers_per_s": n / register_s}
    if cpu:
        result["register_server_cpu_s"] = cpu[2]
    print(f"   {n} accounts registered in {register_s:.1f} s", flush=True)
    procs = max(1, opts.procs)
    shares = split(n, procs)
    spec = FleetSpec(server.host, server.port, 0, sources=opts.sources)
    workers: list[WorkerProcess] = []
    runs: list[dict[str, Any]] = []
    lags: list[scrape.Histogram] = []
    quiet: list[tuple[float, float]] = []  # a calm window before each storm
    settle = params.get("settle", 1.0)  # after the previous storm's clients have left
    try:
        for _ in range(procs):
            workers.append(WorkerProcess(spec, range(0)))
            workers[-1].reply()
        t = time.monotonic()
        prepared = call_each(
            workers,
            prepare_logins,
            [{"host": server.host, "port": server.port, "start": s.start, "stop": s.stop,
              "sources": opts.sources, "precompute": params["precompute"]}
             for s in shares],
        )  # fmt: skip
        result["prepare_s"] = time.monotonic() - t
        result["scram_iterations"] = sorted({i for p in prepared for i in p.get("iterations", [])})
        chatters = FleetSpec(server.host, server.port, params["chatters"], 1, opts.concurrency)
        prober = connect(server.host, server.port, 0, prefix="p")
        with contextlib.ExitStack() as stack:
            stack.callback(close_all, [prober])
            fleet = stack.enter_context(Fleet(chatters))
            fleet.join(CHANNEL)
            chat = Chat(fleet.local, params["rate"], prober, params.get("ping_every", 0.01))
            bounded = params.get("compare_concurrency", 0)
            kinds = (0, bounded) if bounded else (0,)  # all at once, then bounded
            plan = [(k, c) for k in range(1, params["repeat"] + 1) for c in kinds]
            for k, in_flight in plan:
                gevent.sleep(settle)
                calm = time.monotonic()
                gevent.sleep(params["quiet"])
                quiet.append((calm, time.monotonic()))
                own = params | {"storm_concurrency": in_flight}
                row, lag = storm_once(server, workers, shares, own, opts, k)
                runs.append(row)
                lags.append(lag)
                print("   " + describe(row), flush=True)
                call_each(workers, logins_close, [{} for _ in workers])
            gevent.sleep(settle)
            lost = chat.stop()
    finally:
        for worker in workers:
            worker.close()
    result |= summarize(runs, lags, chat, quiet, lost, n)
    if chat.errors:
        result.setdefault("errors", []).extend(chat.errors[:3])
    return result


def summarize(
    runs: list[dict[str, Any]],
    lags: list[scrape.Histogram],
    chat: Chat,
    quiet: list[tuple[float, float]],
    lost: tuple[int, int],
    n: int,
) -> dict[str, Any]:
    """The all-at-once storms (``concurrency`` 0): medians, the lag pooled over them,
    the PING and chat latencies during them and in the calm windows; the same for
    the storms with a bounded number in flight under ``bounded`` (a few of its
    figures also as ``bounded_...``); the failures over every storm."""
    for row, calm in zip(runs, quiet, strict=True):
        for name, pings in (("chat", False), ("ping", True)):
            found = chat.latencies_ms(*row["window"], pings=pings)
            row[f"{name}_samples"] = len(found)
            row |= {f"{name}_{k}_ms": v for k, v in percentiles(found).items()}
            before = percentiles(chat.latencies_ms(*calm, pings=pings))
            row[f"{name}_quiet_p99_ms"] = before.get("p99")
    at_once = [i for i, r in enumerate(runs) if not r["concurrency"]]
    limited = [i for i, r in enumerate(runs) if r["concurrency"]]
    result = storms([runs[i] for i in at_once], [lags[i] for i in at_once], chat)
    for name, pings in (("chat", False), ("ping", True)):
        calm = [ms for window in quiet for ms in chat.latencies_ms(*window, pings=pings)]
        result |= {f"{name}_quiet_{k}_ms": v for k, v in percentiles(calm).items()}
    if limited:
        other = storms([runs[i] for i in limited], [lags[i] for i in limited], chat)
        other["concurrency"] = runs[limited[0]]["concurrency"]
        result["bounded"] = other
        for key in ("concurrency", "lag_p99_ms", "lag_samples", "ping_storm_p99_ms",
                    "chat_storm_p99_ms", "login_p50_ms", "login_p99_ms", "storm_s",
                    "server_ms_per_login"):  # fmt: skip
            result[f"bounded_{key}"] = other.get(key)
    result["chat_lost"], result["pings_lost"] = lost
    failed = sum(r["failed"] for r in runs)
    refused = sum(r["logins_refused_counted"] for r in runs)
    counted = sum(r["logins_counted"] for r in runs)
    missing = abs(counted - n * len(runs))
    result |= {
        "failures": failed + refused + missing + max(0, lost[0]) + max(0, lost[1]),
        "failed_logins": failed,
        "logins_counted": counted,
        "logins_expected": n * len(runs),
        "complete": failed == refused == missing == 0 and lost == (0, 0),
        "target_lag_ms": LAG_TARGET_MS,
    }
    lag, ping = result["lag_p99_ms"], result.get("ping_storm_p99_ms")
    if lag is not None and ping is not None:
        result["met"] = lag <= LAG_TARGET_MS and ping <= LAG_TARGET_MS and result["complete"]
    result["runs"] = runs
    if errors := [e for r in runs for e in r.get("errors", [])]:
        result["errors"] = errors[:5]
    return result


def storms(runs: list[dict[str, Any]], lags: list[scrape.Histogram], chat: Chat) -> dict:
    """Medians over ``runs``, their lag histograms pooled, their PING and chat latencies."""
    result: dict[str, Any] = {"repeat": len(runs)}
    keys = ("login_p50_ms", "login_p90_ms", "login_p99_ms", "login_max_ms", "storm_s",
            "storm_to_001_s", "logins_per_s", "connect_p99_ms", "welcome_p99_ms",
            "server_cpu_s", "server_user_s", "server_sys_s", "server_ms_per_login",
            "server_core_util", "generator_cpu_s", "generator_core_util", "chat_p99_ms",
            "ping_p99_ms")  # fmt: skip
    for key in keys:
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        result[key] = statistics.median(values) if values else None
    pooled = lags[0]
    for lag in lags[1:]:
        pooled = scrape.Histogram(
            [(le, a + b) for (le, a), (_, b) in zip(pooled.buckets, lag.buckets, strict=True)],
            pooled.sum + lag.sum,
            pooled.count + lag.count,
        )
    result |= lag_fields(pooled)
    for name, pings in (("chat", False), ("ping", True)):
        during = [ms for r in runs for ms in chat.latencies_ms(*r["window"], pings=pings)]
        result |= {f"{name}_storm_{k}_ms": v for k, v in percentiles(during).items()}
        result[f"{name}_storm_samples"] = len(during)
    return result


def describe(row: dict[str, Any]) -> str:
    def ms(key: str) -> str:
        value = row.get(key)
        return "-" if value is None else f"{value:.1f}"

    flight = f", {row['concurrency']} in flight" if row["concurrency"] else ", all at once"
    return (
        f"storm {row['run']}{flight}: {row['logins']} logins ({row['failed']} failed) in"
        f" {row.get('storm_s', 0):.2f} s; login p50 {ms('login_p50_ms')} p99"
        f" {ms('login_p99_ms')} ms; lag p99 <= {ms('lag_p99_ms')} ms over"
        f" {row['lag_samples']} samples; server {row.get('server_ms_per_login', 0):.2f}"
        f" ms CPU/login"
    )


LOGINS = Workload(
    name="logins",
    title="Logins: 1,000 SASL SCRAM-SHA-256 logins at once while 4 chatters talk (50 lines/s)",
    description=(
        "1,000 accounts made through the server (REGISTER, before-connect) before the"
        " window; then every client connects at once and logs in with SCRAM-SHA-256"
        " (scramp's ScramClient; SaltedPassword worked out ahead), 3 storms. `login` ="
        " connect() to 903; `storm s` = first connect to last 903; `lag p99` = the bucket"
        " bound of greenchat_event_loop_lag_seconds' delta over the storms (a 0.1 s timer,"
        " samples pooled); `PING p99` = round trip of a PING sent every 10 ms by a client"
        " in no channel, `chat p99` = latency of the chatters' lines, both for what was"
        " sent during the storms (`quiet`: in the calm 2 s before each). Target: lag p99"
        f" <= {LAG_TARGET_MS:g} ms by both the histogram and the PINGs, no failure."
        " `bounded`: the same storms with at most 50 logins in flight (connect to 001),"
        " interleaved with the all-at-once ones."
    ),
    metrics=(
        Metric("login_p50_ms", "login p50 ms", "{:.1f}"),
        Metric("login_p99_ms", "login p99 ms", "{:.1f}"),
        Metric("storm_s", "storm s", "{:.2f}"),
        Metric("lag_p99_ms", "lag p99 ms (<=)", "{:g}"),
        Metric("lag_samples", "lag samples"),
        Metric("ping_storm_p99_ms", "PING p99 ms", "{:.1f}"),
        Metric("ping_quiet_p99_ms", "PING quiet p99 ms", "{:.1f}"),
        Metric("chat_storm_p99_ms", "chat p99 ms", "{:.1f}"),
        Metric("chat_quiet_p99_ms", "chat quiet p99 ms", "{:.1f}"),
        Metric("server_ms_per_login", "server ms/login", "{:.2f}"),
        Metric("failures", "failures"),
        Metric("register_s", "register s", "{:.1f}"),
        Metric("bounded_concurrency", "bounded: in flight"),
        Metric("bounded_lag_p99_ms", "bounded lag p99 ms (<=)", "{:g}"),
        Metric("bounded_ping_storm_p99_ms", "bounded PING p99 ms", "{:.1f}"),
        Metric("bounded_login_p99_ms", "bounded login p99 ms", "{:.1f}"),
        Metric("bounded_storm_s", "bounded storm s", "{:.2f}"),
    ),
    cases=cases,
    run=run,
)
