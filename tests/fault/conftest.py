"""The fault bench: a server under test, bystanders chatting beside the fault, and the
checks every fault ends with (issue 7, "Hardening").

Each fault test gets ``bench``, a factory that starts a server with config overrides,
warms it up, connects three bystanders, records a baseline and lets the bystanders
chat (numbered lines in ``#c``) while the test runs its fault. The bystanders are also
in ``#f``, where the fault's clients go: they see those clients' lines and QUITs, while
the fault's clients get none of the chatter. ``Bench.aftermath`` then checks what the
issue asks for after every fault:

1. the server's resource counts return to the baseline (polled, 10 s deadline);
2. a fresh client is registered (gets ``001`` and the end of the MOTD) within 1 s;
3. every bystander is still connected and got every numbered line of every other
   bystander, in order, and none of the lines the fault must never deliver;
4. the server's RSS is back within 10 % of the baseline (subprocess only);
5. the server logged no error and printed no traceback.

The fixture is parametrized over two ways of running the server, because no single
one can measure everything honestly:

* ``thread``: in this process (``ServerThread``). Counts live greenlets on the
  server's hub, ``Session`` objects still alive after a collection, the hub's
  connections, nicks, channels and per-address counters, the pool, and the accepted
  sockets (psutil, local port = the server's). Its RSS would include the test's own
  memory, so it is not checked here.
* ``process``: the installed ``greenchat-serve`` (``ServeProcess``). Counts its open
  descriptors and sockets and checks its RSS and its log. Marked ``e2e``, as the
  other tests that run the console scripts are.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import re
import threading
import time
from collections.abc import Callable

import gevent
import greenlet
import psutil
import pytest
from serve_process import ServeProcess
from transcript import IrcClient, ServerThread

from greenchat.server.session import Session
from greenchat.server.user import User

CHANNEL = "#c"  # the bystanders chat here
FAULT_CHANNEL = "#f"  # the fault's clients join this one, the bystanders watch it
BYSTANDERS = ("b0", "b1", "b2")
# Each bystander sends a numbered line this often: active enough to answer for itself
# under ping_interval=1, and slower than the flooder test's flood_rate=5.
CHAT_INTERVAL = 0.3
BASELINE_DEADLINE = 10.0
FRESH_CLIENT_BUDGET = 1.0
RSS_SLACK = 1.10


# -- servers under test ------------------------------------------------------------------


class ThreadTarget:
    """An in-process server: greenlets and objects counted on its own hub."""

    kind = "thread"

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.port = server.port
        self._tracebacks = io.StringIO()
        self._records: list[logging.LogRecord] = []
        self._handler = _ListHandler(self._records)
        logging.getLogger("greenchat").addHandler(self._handler)

        def capture_tracebacks() -> None:
            # What gevent prints for a greenlet that died of an exception.
            gevent.get_hub().exception_stream = self._tracebacks

        server.call(capture_tracebacks)

    def counts(self) -> dict[str, int]:
        chat = self.server.server

        def on_hub() -> dict[str, int]:
            hub = gevent.get_hub()
            gc.collect()  # a Session and its send queue form a cycle
            greenlets = connections = users = 0
            for obj in gc.get_objects():
                if isinstance(obj, greenlet.greenlet):
                    # Spawned on this hub (the count includes the one running this).
                    greenlets += obj.parent is hub and not obj.dead
                elif type(obj) is Session:
                    connections += 1
                elif type(obj) is User:
                    users += 1
            hub_state = chat.hub
            return {
                "greenlets": greenlets,
                "connection objects": connections,
                "user objects": users,
                "hub connections": len(chat.sessions),
                "hub users": len(hub_state.users),
                "registered": hub_state.registered_count,
                "nicks": len(hub_state.nicks),
                "channels": len(hub_state.channels),
                "per-address counters": sum(chat.per_ip.values()),
                "pool": len(chat.pool),
            }

        counts = self.server.call(on_hub)
        counts["accepted sockets"] = _accepted_sockets(psutil.Process(), self.port)
        return counts

    def rss(self) -> int | None:
        return None  # polluted by the test's own memory in this process

    def problems(self) -> list[str]:
        found = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in list(self._records)]
        printed = self._tracebacks.getvalue()
        return [*found, printed] if printed else found

    def close(self) -> None:
        logging.getLogger("greenchat").removeHandler(self._handler)
        self.server.stop()


class ProcessTarget:
    """The installed ``greenchat-serve``: descriptors, sockets and RSS of a real process."""

    kind = "process"

    def __init__(self, overrides: dict) -> None:
        self.process = ServeProcess("--log-level", "WARNING", *_flags(overrides))
        self.port = self.process.port

    def counts(self) -> dict[str, int]:
        assert self.process.proc.poll() is None, f"server exited: {self.process.stderr[-20:]}"
        return {
            "open descriptors": self.process.open_descriptors(),
            "accepted sockets": _accepted_sockets(self.process.ps, self.port),
        }

    def rss(self) -> int | None:
        return self.process.rss()

    def problems(self) -> list[str]:
        return self.process.logs(r"Traceback| (ERROR|CRITICAL) ")

    def close(self) -> None:
        self.process.stop()


class _ListHandler(logging.Handler):
    def __init__(self, records: list) -> None:
        super().__init__(logging.ERROR)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _accepted_sockets(process: psutil.Process, port: int) -> int:
    """TCP sockets of ``process`` on the server's port, the listener excepted."""
    return sum(
        1
        for conn in process.net_connections("tcp")
        if conn.laddr and conn.laddr.port == port and conn.status != psutil.CONN_LISTEN
    )


def _flags(overrides: dict) -> list[str]:
    flags: list[str] = []
    for attr, value in overrides.items():
        name = "--" + attr.replace("_", "-")
        if isinstance(value, bool):
            flags.append(name if value else "--no-" + name[2:])
        else:
            flags += [name, str(value)]
    return flags


# -- bystanders ----------------------------------------------------------------------------


class Bystander(threading.Thread):
    """A registered client in ``#c`` and ``#f`` that chats numbered lines in ``#c`` and
    reads everything.

    It owns its socket from :meth:`start` on: it answers PING, sends
    ``seq NICK N`` every CHAT_INTERVAL seconds, and after :meth:`stop_chatting`
    sends ``done NICK N`` (N: how many it sent) and reads on until it has seen
    the ``done`` line of every other bystander.
    """

    def __init__(self, port: int, nick: str, peers: tuple[str, ...]) -> None:
        super().__init__(name=f"bystander-{nick}", daemon=True)
        self.nick = nick
        self.peers = [p for p in peers if p != nick]
        self.client = IrcClient(port, timeout=10).register(nick)
        self.client.join(CHANNEL).join(FAULT_CHANNEL)
        self.lines: list[str] = []
        self.sent = 0
        self.closed = False
        self.error: BaseException | None = None
        self._stop_chatting = threading.Event()
        self._lock = threading.Lock()
        self._done_from: set[str] = set()

    def run(self) -> None:
        try:
            self._chat()
        except BaseException as exc:  # reported by Bench.finish_bystanders
            self.error = exc

    def _chat(self) -> None:
        client = self.client
        next_send = time.monotonic()
        said_done = False
        while True:
            now = time.monotonic()
            if self._stop_chatting.is_set():
                if not said_done:
                    client.send(f"PRIVMSG {CHANNEL} :done {self.nick} {self.sent}")
                    said_done = True
                if self._done_from >= set(self.peers):
                    return
            elif now >= next_send:
                client.send(f"PRIVMSG {CHANNEL} :seq {self.nick} {self.sent}")
                self.sent += 1
                next_send += CHAT_INTERVAL
            try:
                line = client.read_line(max(0.01, min(next_send - now, 0.1)))
            except TimeoutError:
                continue
            if line is None:
                self.closed = True
                return
            if line.startswith("PING "):
                client.send("PONG " + line[5:])
            with self._lock:
                self.lines.append(line)
            match = re.match(rf"^:(\S+?)!\S+ PRIVMSG {CHANNEL} :done ", line)
            if match:
                self._done_from.add(match.group(1))

    def stop_chatting(self) -> None:
        self._stop_chatting.set()

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def numbers(self, pattern: str) -> list[int]:
        """The numbers (group 1) of the received lines matching ``pattern``, in order."""
        regex = re.compile(pattern)
        return [int(m.group(1)) for line in self.snapshot() if (m := regex.search(line))]


class RssNotBack(AssertionError):
    """RSS stayed more than 10 % above the baseline (apart, so a test can mark it known)."""


# -- the bench -------------------------------------------------------------------------------


class Bench:
    def __init__(self, target: ThreadTarget | ProcessTarget, request) -> None:
        self.target = target
        self._request = request
        self.port = target.port
        self.bystanders: list[Bystander] = []
        self.baseline: dict[str, int] = {}
        self.baseline_rss: int | None = None
        self._clients: list[IrcClient] = []
        self._fresh = 0

    def begin(self) -> Bench:
        # Warm up the code paths the bystanders and the fault use, so that their
        # first-use allocations are part of the baseline rather than growth.
        warm = self.client("warmup").join("#warm")
        warm.send("PRIVMSG #warm :warming up", "PART #warm", "QUIT")
        warm.expect_closed()
        self.bystanders = [Bystander(self.port, nick, BYSTANDERS) for nick in BYSTANDERS]
        self.baseline = self._settled_counts()
        self.baseline_rss = self.target.rss()
        for bystander in self.bystanders:
            bystander.start()
        return self

    def client(self, nick: str | None = None, timeout: float = 10.0, **kwargs) -> IrcClient:
        """A test client (registered when ``nick`` is given), closed at teardown."""
        client = IrcClient(self.port, timeout=timeout, **kwargs)
        self._clients.append(client)
        return client.register(nick) if nick else client

    # -- observing ----------------------------------------------------------------

    def wait_seen(self, pattern: str, timeout: float = 10.0) -> None:
        """Wait until every bystander has received a line matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        for bystander in self.bystanders:
            while not any(regex.search(line) for line in bystander.snapshot()):
                if time.monotonic() > deadline or not bystander.is_alive():
                    raise AssertionError(
                        f"{bystander.nick} did not see {pattern!r} within {timeout}s: "
                        f"{bystander.snapshot()[-10:]}"
                    )
                time.sleep(0.02)

    def _settled_counts(self) -> dict[str, int]:
        """Counts once two reads in a row agree (registration replies may still flush)."""
        deadline = time.monotonic() + BASELINE_DEADLINE
        last = self.target.counts()
        while True:
            time.sleep(0.1)
            now = self.target.counts()
            if now == last:
                return now
            if time.monotonic() > deadline:
                raise AssertionError(f"counts never settled: {last} then {now}")
            last = now

    def wait_baseline(self, when: str) -> None:
        deadline = time.monotonic() + BASELINE_DEADLINE
        while True:
            counts = self.target.counts()
            if counts == self.baseline:
                return
            if time.monotonic() > deadline:
                diff = {
                    key: (self.baseline.get(key), value)
                    for key, value in counts.items()
                    if self.baseline.get(key) != value
                }
                raise AssertionError(
                    f"{self.target.kind} server: counts not back to baseline {when} within "
                    f"{BASELINE_DEADLINE}s; (baseline, now): {diff}"
                )
            time.sleep(0.1)

    # -- the aftermath ------------------------------------------------------------

    def fresh_client_is_answered(self) -> float:
        """Register a new client; return how long the ``001`` and MOTD end took."""
        self._fresh += 1
        nick = f"fresh{self._fresh}"
        started = time.monotonic()
        client = IrcClient(self.port, timeout=5)
        try:
            client.register(nick)
            took = time.monotonic() - started
            client.send("QUIT")
            client.expect_closed()
        finally:
            client.close()
        assert took < FRESH_CLIENT_BUDGET, f"a fresh client took {took:.2f}s to register"
        return took

    def finish_bystanders(self, forbidden: tuple[str, ...] = ()) -> None:
        """Every bystander still connected, got every other's numbered lines in order."""
        for bystander in self.bystanders:
            bystander.stop_chatting()
        deadline = time.monotonic() + 10
        for bystander in self.bystanders:
            bystander.join(max(0.1, deadline - time.monotonic()))
        for bystander in self.bystanders:
            assert bystander.error is None, f"{bystander.nick}: {bystander.error!r}"
            assert not bystander.closed, (
                f"{bystander.nick} was disconnected: {bystander.snapshot()[-5:]}"
            )
            assert not bystander.is_alive(), (
                f"{bystander.nick} never saw the others' last line: {bystander.snapshot()[-5:]}"
            )
        by_nick = {b.nick: b for b in self.bystanders}
        for bystander in self.bystanders:
            lines = bystander.snapshot()
            for peer in bystander.peers:
                sent = by_nick[peer].sent
                got = bystander.numbers(rf"^:{peer}!\S+ PRIVMSG {CHANNEL} :seq {peer} (\d+)$")
                assert sent > 0
                assert got == list(range(sent)), (
                    f"{bystander.nick} got {len(got)} of {peer}'s {sent} lines ({_gaps(got, sent)})"
                )
            leaks = [line for line in lines if any(text in line for text in forbidden)]
            assert not leaks, f"{bystander.nick} received what it must not: {leaks[:3]}"
            errors = [line for line in lines if line.startswith("ERROR")]
            assert not errors, f"{bystander.nick}: {errors}"

    def rss_is_back(self) -> None:
        if self.baseline_rss is None:
            return
        limit = self.baseline_rss * RSS_SLACK
        deadline = time.monotonic() + 2  # time for the last frees; RSS rarely shrinks later
        while (rss := self.target.rss()) > limit:
            if time.monotonic() > deadline:
                raise RssNotBack(
                    f"RSS {rss / 2**20:.1f} MiB, baseline {self.baseline_rss / 2**20:.1f} MiB "
                    f"(+{(rss / self.baseline_rss - 1) * 100:.1f} %, at most 10 % allowed)"
                )
            time.sleep(0.1)

    def known_rss_gap(self, reason: str) -> None:
        """Mark the test as an expected failure of the RSS check only (strict: it must
        fail that check, and any other failure still fails the test)."""
        if self.baseline_rss is not None:
            marker = pytest.mark.xfail(raises=RssNotBack, strict=True, reason=reason)
            self._request.applymarker(marker)

    def aftermath(self, forbidden: tuple[str, ...] = ()) -> None:
        """The checks every fault ends with (see the module docstring)."""
        self.wait_baseline("after the fault")
        self.fresh_client_is_answered()
        self.wait_baseline("after a fresh client came and went")
        self.finish_bystanders(forbidden)
        self.rss_is_back()
        problems = self.target.problems()
        assert not problems, f"the server logged errors: {problems[:5]}"

    def close(self) -> None:
        for bystander in self.bystanders:
            bystander.stop_chatting()
            bystander.client.close()
        for client in self._clients:
            client.close()
        self.target.close()


def _gaps(got: list[int], sent: int) -> str:
    missing = sorted(set(range(sent)) - set(got))
    disorder = got != sorted(got)
    return f"missing {missing[:10]}{' and out of order' if disorder else ''}"


@pytest.fixture(params=["thread", pytest.param("process", marks=pytest.mark.e2e)])
def bench(request, make_server) -> Callable[..., Bench]:
    """Factory: ``bench(**ServerConfig overrides)`` -> a started :class:`Bench`."""
    benches: list[Bench] = []

    def start(**overrides) -> Bench:
        if request.param == "thread":
            target: ThreadTarget | ProcessTarget = ThreadTarget(make_server(**overrides))
        else:
            target = ProcessTarget(overrides)
        bench = Bench(target, request)
        benches.append(bench)
        return bench.begin()

    yield start
    for bench in benches:
        with contextlib.suppress(Exception):
            bench.close()
