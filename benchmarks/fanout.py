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
The load generator is gevent with raw sockets. Connects and registrations
are bounded by a semaphore so the server's listen backlog never overflows.
Each client waits for its ``001`` and then its ``366`` (end of NAMES); once
all have joined, every client sends a ``PING`` and drains its socket up to
the ``PONG``, so no JOIN traffic is left in flight. The same sync runs before
every repetition.

Receivers read with large ``recv_into`` calls into a buffer shared by all
greenlets of the process (nothing yields between a read and its counting) and
count ``" PRIVMSG #"`` only in complete lines, keeping the partial last line
for the next read, so a match is never split or counted twice.

With ``--procs P`` the clients are split over P processes: the main one holds
the senders and its share of receivers; the others are copies of this script
in ``--worker`` mode that speak one JSON object per line on stdin/stdout and
act on the main process's commands (connect, sync, go), which gives them a
common start barrier. Deliveries are timed with ``CLOCK_MONOTONIC``, which is
shared by all processes.

By default the script starts ``greenchat-serve --port 0`` itself and stops it
with SIGTERM at the end; ``--server HOST:PORT --server-pid PID`` measures an
already running server instead.

Usage::

    python benchmarks/fanout.py [--clients 1000] [--senders 10] [--messages 200]
        [--size 64] [--repeat 3] [--procs 1] [--server-cmd "..."]
        [--server HOST:PORT --server-pid PID] [--json PATH]
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import IO, Any  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.lock import BoundedSemaphore  # noqa: E402

CHANNEL = "#fanout"
PATTERN = b" PRIVMSG #"
RECV_BYTES = 256 * 1024
FD_CAP = 20_000
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
# Numerics in the 4xx/5xx range that are normal during registration.
HARMLESS_ERRORS = {b"422"}  # ERR_NOMOTD

# One receive buffer per process: a greenlet reads into it and counts the
# lines before it can yield, so the greenlets never see each other's data.
_BUFFER = bytearray(RECV_BYTES)
_VIEW = memoryview(_BUFFER)


# -- command line -------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000, help="channel members (N)")
    p.add_argument("--senders", type=int, default=10, help="members that send (S)")
    p.add_argument("--messages", type=int, default=200, help="lines per sender (M)")
    p.add_argument("--size", type=int, default=64, help="bytes of text per line")
    p.add_argument("--repeat", type=int, default=3, help="repetitions (R)")
    p.add_argument("--procs", type=int, default=1, help="generator processes (P)")
    p.add_argument("--deadline", type=float, default=120.0, help="seconds allowed per run")
    p.add_argument("--connect-concurrency", type=int, default=100, help="connects in flight")
    p.add_argument("--server-cmd", help="command that starts the server (prints HOST:PORT)")
    p.add_argument("--server", metavar="HOST:PORT", help="measure a running server")
    p.add_argument("--server-pid", type=int, help="PID of the --server process, for its CPU")
    p.add_argument(
        "--caps",
        default="",
        help="IRCv3 caps every client requests, e.g. 'server-time message-tags'",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    if args.clients < 2 or not 1 <= args.senders <= args.clients:
        p.error("need --clients >= 2 and 1 <= --senders <= --clients")
    if args.messages < 1 or args.size < 1 or args.repeat < 1 or args.procs < 1:
        p.error("--messages, --size, --repeat and --procs must be positive")
    if args.server_pid and not args.server:
        p.error("--server-pid needs --server")
    return args


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; fail if ``needed`` won't fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else FD_CAP
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if needed > target:
        sys.exit(f"need about {needed} file descriptors per process, limit is {target}")
    return target


# -- the server -----------------------------------------------------------------


@dataclass
class ServerHandle:
    host: str
    port: int
    pid: int | None
    proc: subprocess.Popen | None = None


def default_server_cmd(clients: int) -> list[str]:
    script = Path(sys.executable).parent / "greenchat-serve"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "greenchat.cli"]
    max_clients = str(max(10_000, 2 * clients))
    return [*base, "--port", "0", "--log-level", "WARNING", "--max-clients", max_clients]


def start_server(cmd: list[str], timeout: float = 30.0) -> ServerHandle:
    """Start the server in its own session and wait for its 'listening on' line."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    with gevent.Timeout(timeout, RuntimeError(f"server did not start: {shlex.join(cmd)}")):
        for line in proc.stdout:
            if match := LISTEN_RE.search(line):
                return ServerHandle(match[1], int(match[2]), proc.pid, proc)
    stop_server(ServerHandle("", 0, proc.pid, proc))
    raise RuntimeError(f"server exited without a 'listening on' line: {shlex.join(cmd)}")


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


def cpu_seconds(pid: int | None) -> tuple[float, float, float] | None:
    """(user, system, total) CPU seconds used so far by process ``pid``.

    user and system come from psutil in clock ticks (10 ms); total is the sum
    of the scheduler's nanosecond run times of all threads when Linux has
    them, so short runs are still measured precisely.
    """
    if pid is None:
        return None
    times = psutil.Process(pid).cpu_times()
    total = times.user + times.system
    with contextlib.suppress(OSError, ValueError):
        tasks = Path(f"/proc/{pid}/task").glob("*/schedstat")
        total = sum(int(t.read_text().split()[0]) for t in tasks) / 1e9
    return times.user, times.system, total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- one client -----------------------------------------------------------------


class Client:
    """A raw IRC connection that counts the PRIVMSG lines it receives."""

    __slots__ = ("count", "nick", "sock", "tail")

    def __init__(self, sock: socket.socket, nick: str) -> None:
        self.sock = sock
        self.nick = nick
        self.tail = b""  # the partial line after the last newline
        self.count = 0

    def lines_until(self, done: Callable[[bytes], bool]) -> int:
        """Read lines until ``done(line)``; keep what follows; return PRIVMSGs skipped."""
        skipped = 0
        data = self.tail
        while True:
            *lines, rest = data.split(b"\n")
            for i, line in enumerate(lines):
                check_line(line, self.nick)
                if done(line):
                    self.tail = b"\n".join([*lines[i + 1 :], rest])
                    return skipped
                skipped += PATTERN in line
            chunk = self.sock.recv(RECV_BYTES)
            if not chunk:
                raise ConnectionError(f"{self.nick}: server closed the connection")
            data = rest + chunk

    def receive(self, target: int) -> None:
        """Count complete PRIVMSG lines until ``target`` have arrived."""
        recv_into, buf, view = self.sock.recv_into, _BUFFER, _VIEW
        count, tail, recent = 0, self.tail, b""
        while count < target:
            n = recv_into(view)
            if not n:
                said = recent.rstrip().rpartition(b"\n")[2].decode(errors="replace")
                raise ConnectionError(
                    f"{self.nick}: connection closed after {count} deliveries; last line {said!r}"
                )
            last = buf.rfind(b"\n", 0, n) + 1
            if not last:
                tail += bytes(view[:n])
                continue
            start = 0
            if tail:
                start = buf.find(b"\n", 0, n) + 1
                count += (tail + view[:start]).count(PATTERN)
            count += buf.count(PATTERN, start, last)
            tail = bytes(view[last:n])
            recent = bytes(view[max(0, last - 512) : last])  # for the error message
            self.count = count
        self.tail = tail


def check_line(line: bytes, nick: str) -> None:
    """Fail loudly on ERROR or an error numeric (other than the harmless ones)."""
    words = line.split(b" ", 2)
    code = words[1] if len(words) > 1 else b""
    numeric_error = code.isdigit() and code[:1] in b"45" and code not in HARMLESS_ERRORS
    if line.startswith(b"ERROR") or numeric_error:
        raise RuntimeError(f"{nick}: server said {line.decode(errors='replace')!r}")


def last_word(line: bytes) -> bytes:
    return line.rstrip(b"\r").rsplit(b" ", 1)[-1].removeprefix(b":")


def connect(host: str, port: int, index: int, caps: str = "") -> Client:
    """Connect, register (requesting ``caps``) and join; return once NAMES has ended."""
    nick = f"b{index}"
    sock = socket.create_connection((host, port), timeout=60)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = Client(sock, nick)
    if caps:
        sock.sendall(f"CAP REQ :{caps}\r\n".encode())
    sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :fanout bench\r\n".encode())
    if caps:
        client.lines_until(lambda line: b" CAP " in line and b" ACK " in line)
        sock.sendall(b"CAP END\r\n")
    welcome = f" 001 {nick} ".encode()
    client.lines_until(lambda line: welcome in line)
    sock.sendall(f"JOIN {CHANNEL}\r\n".encode())
    end_of_names = f" 366 {nick} ".encode()
    client.lines_until(lambda line: end_of_names in line)
    return client


def connect_all(
    host: str, port: int, indexes: range, concurrency: int, caps: str = ""
) -> list[Client]:
    gate = BoundedSemaphore(concurrency)

    def one(index: int) -> Client:
        with gate:
            return connect(host, port, index, caps)

    jobs = [gevent.spawn(one, i) for i in indexes]
    gevent.joinall(jobs, raise_error=True)
    return [job.value for job in jobs]


def sync_all(clients: list[Client], tag: str) -> int:
    """PING every client and drain up to its PONG; return stray PRIVMSGs seen."""

    def one(client: Client) -> int:
        client.sock.sendall(f"PING :{tag}\r\n".encode())
        token = tag.encode()
        return client.lines_until(lambda line: b" PONG " in line and last_word(line) == token)

    jobs = [gevent.spawn(one, c) for c in clients]
    gevent.joinall(jobs, raise_error=True)
    return sum(job.value for job in jobs)


def close_all(clients: list[Client]) -> None:
    for client in clients:
        with contextlib.suppress(OSError):
            client.sock.sendall(b"QUIT :done\r\n")
        client.sock.close()


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


def expected_for(index: int, args: argparse.Namespace) -> int:
    """Lines client ``index`` should get: every sender's but its own."""
    return args.messages * (args.senders - (index < args.senders))


@dataclass
class Round:
    """What one process saw of one repetition."""

    complete: bool
    last: float  # CLOCK_MONOTONIC time of the last delivery (or of giving up)
    delivered: int
    errors: list[str]


def receive_round(
    clients: list[Client], first_index: int, args: argparse.Namespace, deadline: float
) -> Round:
    """Count one repetition's deliveries until all are in, a receiver fails or time is up."""
    for client in clients:
        client.count = 0
    window = Window(len(clients))
    jobs = [
        gevent.spawn(window.receiver, c, expected_for(first_index + i, args))
        for i, c in enumerate(clients)
    ]
    window.done.wait(timeout=deadline)
    gevent.killall(jobs, block=False)
    delivered = sum(c.count for c in clients)
    if window.pending:  # incomplete: the window ends now
        return Round(False, time.monotonic(), delivered, window.errors[:3])
    return Round(True, max(window.finished), delivered, [])


def build_payload(sender: int, args: argparse.Namespace, run: int) -> bytes:
    lines = []
    for i in range(args.messages):
        head = f"r{run}s{sender}m{i} "
        text = (head + "x" * args.size)[: args.size]
        lines.append(f"PRIVMSG {CHANNEL} :{text}\r\n")
    return "".join(lines).encode()


def run_once(
    clients: list[Client],
    workers: list["Worker"],
    server: ServerHandle,
    args: argparse.Namespace,
    run: int,
) -> dict[str, Any]:
    """One repetition: send the burst, wait for every delivery, take the numbers, sync."""
    payloads = [build_payload(s, args, run) for s in range(args.senders)]
    server_before, gen_before = cpu_seconds(server.pid), own_cpu_seconds()
    t0 = time.monotonic()
    for w in workers:
        w.send({"op": "go", "deadline": args.deadline})
    for client, payload in zip(clients[: args.senders], payloads, strict=True):
        gevent.spawn(client.sock.sendall, payload)
    mine = receive_round(clients, 0, args, args.deadline)
    server_after, gen_after = cpu_seconds(server.pid), own_cpu_seconds()
    results = [w.result() for w in workers]
    rounds = [mine, *(Round(**r["round"]) for r in results)]
    gen_cpu = [gen_after - gen_before, *(r["cpu"] for r in results)]
    combined = Round(
        all(r.complete for r in rounds),
        max(r.last for r in rounds),
        sum(r.delivered for r in rounds),
        [e for r in rounds for e in r.errors],
    )
    row = measure(args, run, combined, t0, server_before, server_after, gen_cpu)
    if combined.complete:  # whatever arrives before the PONG was delivered more than once
        row["extra_deliveries"] = sync_all_procs(clients, workers, f"after{run}")
    return row


def sync_all_procs(clients: list[Client], workers: list["Worker"], tag: str) -> int:
    return sync_all(clients, tag) + sum(w.sync(tag) for w in workers)


def measure(
    args: argparse.Namespace,
    run: int,
    result: Round,
    t0: float,
    before: tuple[float, float, float] | None,
    after: tuple[float, float, float] | None,
    gen_cpu: list[float],
) -> dict[str, Any]:
    expected = args.senders * args.messages * (args.clients - 1)
    wall, delivered = result.last - t0, result.delivered
    row: dict[str, Any] = {
        "run": run,
        "complete": result.complete,
        "expected": expected,
        "delivered": delivered,
        "wall_s": wall,
        "deliveries_per_s": delivered / wall if wall > 0 else None,
        "generator_cpu_s": sum(gen_cpu),
        "generator_cpu_s_per_proc": gen_cpu,
        "generator_max_core_util": max(gen_cpu) / wall if wall > 0 else None,
    }
    if result.errors:
        row["errors"] = result.errors
    if before and after:
        user, system, total = (a - b for a, b in zip(after, before, strict=True))
        row |= {
            "server_user_s": user,
            "server_sys_s": system,
            "server_cpu_s": total,
            "server_core_util": total / wall if wall > 0 else None,
            "server_us_per_delivery": total * 1e6 / max(delivered, 1),
        }
    return row


# -- worker processes (--procs) ----------------------------------------------------


class Worker:
    """The main process's handle on one ``--worker`` process."""

    def __init__(self, server: ServerHandle, indexes: range, args: argparse.Namespace) -> None:
        cmd = [sys.executable, __file__, "--worker"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.indexes = indexes
        self.send(
            {
                "op": "connect",
                "host": server.host,
                "port": server.port,
                "first": indexes.start,
                "stop": indexes.stop,
                "concurrency": args.connect_concurrency,
                "senders": args.senders,
                "messages": args.messages,
                "caps": args.caps,
            }
        )

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"generator worker {self.proc.pid} exited")
        message = json.loads(line)
        if "error" in message:
            raise RuntimeError(f"generator worker {self.proc.pid}: {message['error']}")
        return message

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.reply()

    def sync(self, tag: str) -> int:
        return self.request({"op": "sync", "tag": tag})["strays"]

    def result(self) -> dict[str, Any]:
        return self.reply()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send({"op": "quit"})
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def worker_main() -> int:
    """``--worker``: serve the main process's commands, one JSON line each way."""
    raise_fd_limit(0)
    out: IO[str] = sys.stdout
    clients: list[Client] = []
    cfg: dict[str, Any] = {}

    def reply(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        for line in sys.stdin:
            msg = json.loads(line)
            op = msg["op"]
            if op == "connect":
                cfg = msg
                idx = range(msg["first"], msg["stop"])
                clients = connect_all(
                    msg["host"], msg["port"], idx, msg["concurrency"], msg.get("caps", "")
                )
                reply({"joined": len(clients)})
            elif op == "sync":
                reply({"strays": sync_all(clients, msg["tag"])})
            elif op == "go":
                reply(worker_round(clients, cfg, msg["deadline"]))
            elif op == "quit":
                break
    except Exception as exc:
        reply({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        close_all(clients)
    return 0


def worker_round(clients: list[Client], cfg: dict[str, Any], deadline: float) -> dict[str, Any]:
    args = argparse.Namespace(senders=cfg["senders"], messages=cfg["messages"])
    before = own_cpu_seconds()
    result = receive_round(clients, cfg["first"], args, deadline)
    return {"round": dataclasses.asdict(result), "cpu": own_cpu_seconds() - before}


# -- reporting --------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import greenchat

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gevent": gevent.__version__,
        "greenchat": greenchat.__version__,
        "git_commit": git_describe(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def git_describe() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


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


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def print_run(row: dict[str, Any]) -> None:
    print(format_row(f"run {row['run']}", row), flush=True)
    if "server_user_s" in row:
        print(
            f"         server CPU {row['server_cpu_s']:.3f} s (user {row['server_user_s']:.2f}"
            f" + sys {row['server_sys_s']:.2f}) for {row['delivered']:,} deliveries",
            flush=True,
        )


def write_json(
    path: Path,
    args: argparse.Namespace,
    server: ServerHandle,
    runs: list[dict[str, Any]],
    summary: dict[str, float],
) -> None:
    params = {
        k: getattr(args, k)
        for k in ("clients", "senders", "messages", "size", "repeat", "procs", "deadline", "caps")
    }
    data = {
        "benchmark": "fanout",
        "parameters": params,
        "server": {
            "command": args.server_cmd_used,
            "address": f"{server.host}:{server.port}",
            "started_by_benchmark": server.proc is not None,
        },
        "machine": machine_info(),
        "runs": runs,
        "median": summary,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


# -- main -------------------------------------------------------------------------


def incomplete_message(row: dict[str, Any], deadline: float) -> str:
    got = f"run {row['run']}: only {row['delivered']:,} of {row['expected']:,} deliveries arrived"
    if row.get("errors"):
        return got + ": " + "; ".join(row["errors"])
    return got + f" within the {deadline:g} s deadline"


def split(n: int, parts: int) -> list[range]:
    """Split range(n) into ``parts`` consecutive, nearly equal ranges."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(parts)]


def benchmark(args: argparse.Namespace, server: ServerHandle) -> list[dict[str, Any]]:
    shares = split(args.clients, args.procs)
    if args.senders > len(shares[0]):
        sys.exit("the main generator process must hold all senders: lower --procs")
    t = time.monotonic()
    workers = [Worker(server, share, args) for share in shares[1:]]
    try:
        clients = connect_all(
            server.host, server.port, shares[0], args.connect_concurrency, args.caps
        )
        for w in workers:
            w.reply()
        sync_all_procs(clients, workers, "joined")
        print(f"{args.clients} clients joined {CHANNEL} in {time.monotonic() - t:.1f} s")
        runs = []
        for run in range(1, args.repeat + 1):
            row = run_once(clients, workers, server, args, run)
            print_run(row)
            runs.append(row)
            if row.get("extra_deliveries"):
                print(f"WARNING: {row['extra_deliveries']} deliveries beyond the expected")
            if not row["complete"]:
                raise RuntimeError(incomplete_message(row, args.deadline))
        close_all(clients)
        return runs
    finally:
        for w in workers:
            w.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main()
    raise_fd_limit(args.clients // args.procs + 64)
    if args.server:
        server = attach_server(args.server, args.server_pid)
        args.server_cmd_used = None
        if server.pid is None:
            print("no --server-pid: server CPU is not measured", file=sys.stderr)
    else:
        cmd = shlex.split(args.server_cmd) if args.server_cmd else default_server_cmd(args.clients)
        args.server_cmd_used = shlex.join(cmd)
        server = start_server(cmd)
    print(
        f"fanout: N={args.clients} S={args.senders} M={args.messages} size={args.size}"
        f" R={args.repeat} P={args.procs} server {server.host}:{server.port} pid {server.pid}"
    )
    try:
        runs = benchmark(args, server)
    except (RuntimeError, OSError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_server(server)
    summary = medians(runs)
    print(format_row("median", summary))
    if args.json:
        write_json(args.json, args, server, runs, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
