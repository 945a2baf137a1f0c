"""Start and stop the IRC servers that greenchat's benchmarks compare.

These servers can be measured side by side:

``greenchat``
    ``greenchat-serve`` from the same virtualenv as this Python, on port 0,
    with a 4 MiB sendq (bursts are buffered rather than cut off).
``greenchat-nodelay``
    The same with ``--tcp-nodelay`` (Nagle's algorithm off), to show what the
    default costs or saves; only the workloads that list it run it.
``greenchat@REV``
    An older greenchat (``bench.py --baseline REV``): ``benchmarks/baseline.py``
    prepares its tree and registers it in :data:`BASELINES`; it runs on this
    same interpreter with greenchat's benchmark flags, less those its
    ``--help`` does not list (named in its description).
``threaded``
    ``benchmarks/baselines/threaded_server.py``: the seed's thread-per-client
    design speaking just enough IRC (a baseline, not a product).
``ngircd`` / ``inspircd``
    The Debian packages (``make bench-peers`` installs them), each run in the
    foreground as a child process with a config rendered from the templates in
    ``benchmarks/peers/`` into the caller's temporary directory: loopback only,
    flood limits relaxed, no DNS or ident lookups (see ``peers/README.md``).

Every server listens on 127.0.0.1 only. ``start`` returns once a probe client
has registered (``NICK``/``USER`` answered with ``001``), so the server is
really serving; ``stop`` ends exactly the process that ``start`` started.
``start(..., metrics=True)`` runs greenchat with ``--metrics-port 0`` and
reads its ``/metrics`` URL from its banner (``RunningServer.metrics_url``);
``start(..., web=True)`` runs it with its web listener on (``--web-port 0``
instead of ``--no-web``: IRC over WebSocket) and reads where from the banner
(``RunningServer.web_address``). Only greenchat (and the baselines whose
``--help`` lists ``--web-port``) has either.

Servers run in their own session, so no signal meant for the harness reaches
them: a harness calls :func:`exit_on_sigterm`, and an atexit hook stops what
is still running. Every PID started is also appended to the file named by
``$GREENCHAT_PID_LOG`` when set (``tests/process_guard.py`` sets it and ends
whatever outlived the test run).

The module works with and without gevent's monkey-patching: it only uses
``socket``, ``subprocess`` and ``time``, and every wait polls with a deadline.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import itertools
import os
import re
import resource
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
THREADED = HERE / "baselines" / "threaded_server.py"
NAMES = ("greenchat", "greenchat-nodelay", "threaded", "ngircd", "inspircd")
# greenchat run with other flags: name -> the extra flags.
VARIANTS = {"greenchat-nodelay": ("--tcp-nodelay",)}
# greenchat --workers N (bench.py --workers N,M): N processes on one port, one network
# over a private redis-server; its CPU and RSS are the whole tree's (loadgen.py).
WORKER_PREFIX = "greenchat-w"


def add_workers_variant(count: int) -> str:
    """Register ``greenchat-wN`` (``--workers N``) as a variant; its name."""
    name = f"{WORKER_PREFIX}{count}"
    VARIANTS[name] = ("--workers", str(count))
    return name


# Older greenchat trees (baseline.Baseline, registered by bench.py --baseline), by name:
# each has .command() (its greenchat-serve), .args(flags) (the ones it knows), .describe().
BASELINES: dict[str, Any] = {}
HOST = "127.0.0.1"
GREENCHAT_SENDQ = 4 * 1024 * 1024
# Accounts in memory: no greenchat.db in the run directory. Passed only to a greenchat
# that knows --db, so a baseline from before it gets no "flags left out" note for it.
MEMORY_DB = ("--db", ":memory:")
START_DEADLINE = 30.0
STOP_DEADLINE = 10.0
FD_FALLBACK = 1 << 20  # soft RLIMIT_NOFILE when the hard limit is "unlimited"
LOG_CAP = 64 * 1024 * 1024  # ngIRCd's log stops growing here (see _raise_fd_limit_cap_log)
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
METRICS_RE = re.compile(r"metrics on (http://\S+/metrics)")  # greenchat's banner, --metrics-port
# greenchat's banner ("or in a web browser: http://HOST:PORT/") or its INFO log ("web on ...").
WEB_RE = re.compile(r"(?:in a web browser:|web on)\s+http://\[?([^\s/\]]+)\]?:(\d+)/")
# Where Debian puts the daemons; a non-root PATH often lacks the sbin folders.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
PID_LOG_ENV = "GREENCHAT_PID_LOG"
_probe_ids = itertools.count()
_running: dict[int, RunningServer] = {}  # started and not yet stopped, by PID


@dataclass
class RunningServer:
    """A server started by :func:`start`; hand it to :func:`stop` when done."""

    name: str
    host: str
    port: int
    pid: int
    proc: subprocess.Popen
    log: Path | None = field(default=None, repr=False)  # its stdout + stderr
    metrics_url: str | None = None  # its /metrics (greenchat started with metrics=True)
    web_address: tuple[str, int] | None = None  # its web listener (started with web=True)


class ServerStartError(RuntimeError):
    """The server did not come up (the message ends with the tail of its log)."""


# -- what can run here ----------------------------------------------------------------


def _which(program: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    return shutil.which(program, path=path)


def _greenchat_cmd() -> list[str]:
    script = Path(sys.executable).parent / "greenchat-serve"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys, greenchat.cli; sys.exit(greenchat.cli.serve_main())"]


def available() -> list[str]:
    """The servers of ``NAMES`` that can run on this machine, in that order."""
    greenchat = (Path(sys.executable).parent / "greenchat-serve").exists() or bool(
        importlib.util.find_spec("greenchat")
    )
    found = ["greenchat", *VARIANTS] if greenchat else []
    found.append("threaded")
    found += [name for name in ("ngircd", "inspircd") if _which(name)]
    return found


# -- process hygiene ---------------------------------------------------------------------


def record_pid(pid: int) -> None:
    """Append ``pid`` to ``$GREENCHAT_PID_LOG`` (if set), for the test run's process guard."""
    if path := os.environ.get(PID_LOG_ENV):
        with contextlib.suppress(OSError), open(path, "a") as log:
            log.write(f"{pid}\n")


def _ignore(signum: int, frame: object) -> None:
    pass


def exit_on_sigterm() -> None:
    """Turn SIGTERM and SIGHUP into ``SystemExit`` in this process.

    Servers run in their own session and never see the signal that ends their
    harness; as SystemExit it unwinds the harness's ``finally`` blocks and
    atexit hooks, which stop them.
    """

    def handler(signum: int, frame: object) -> None:
        # A second signal must not cut the cleanup short. A Python no-op, not
        # SIG_IGN: an ignored signal would be inherited by what the cleanup starts.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _ignore)
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


# -- starting ---------------------------------------------------------------------------


def _raise_fd_limit() -> None:
    """preexec_fn: lift the child's soft RLIMIT_NOFILE to the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_FALLBACK if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _raise_fd_limit_cap_log() -> None:
    """preexec_fn for ngIRCd: as above, and files it writes stop growing at LOG_CAP bytes.

    ngIRCd logs every failed write, and when thousands of benchmark clients
    hang up at the end it logs one line per QUIT per departed member: the log
    grows quadratically (115 MB for 2,000 clients). With SIGXFSZ ignored,
    writes past RLIMIT_FSIZE just fail (EFBIG) and ngIRCd carries on.
    """
    _raise_fd_limit()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LOG_CAP, LOG_CAP))


def free_port(host: str = HOST) -> int:
    """A port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def render(template: Path, target: Path, **values: object) -> Path:
    """Fill ``$name`` placeholders of ``template`` and write the result to ``target``."""
    text = string.Template(template.read_text()).substitute({k: str(v) for k, v in values.items()})
    target.write_text(text)
    return target


def known(name: str) -> bool:
    """A server :func:`start` can run: one of ``NAMES`` or a registered baseline."""
    return name in NAMES or name in VARIANTS or name in BASELINES


def _check_known(name: str) -> None:
    if not known(name):
        names = ", ".join([*NAMES, *BASELINES])
        raise ValueError(f"unknown server {name!r}; expected one of {names}")


def _greenchat_family(name: str) -> bool:
    return name == "greenchat" or name in VARIANTS or name in BASELINES


def memory_db(flags: frozenset[str] | None = None) -> tuple[str, ...]:
    """MEMORY_DB for this tree's greenchat (``flags`` None) or a baseline that lists --db."""
    return MEMORY_DB if flags is None or "--db" in flags else ()


def _command(
    name: str,
    rundir: Path,
    port: int,
    max_clients: int,
    metrics: bool = False,
    web: bool = False,
    db: Path | None = None,
) -> list[str]:
    if _greenchat_family(name):
        flags = [
            "--host", HOST,
            "--port", "0",
            "--log-level", "WARNING",
            "--max-clients", str(max_clients),
            "--sendq", str(GREENCHAT_SENDQ),
            "--flood-rate", "0",
            # The generator reads in bulk and answers no PING while it drains: a JOIN
            # storm of 20,000, or 100,000 registrations, outlasts the default 90 + 60 s.
            "--ping-interval", "900",
            # The web listener only where IRC over WebSocket is measured.
            *(("--web-host", HOST, "--web-port", "0") if web else ("--no-web",)),
            *VARIANTS.get(name, ()),
            *(("--metrics-port", "0") if metrics else ()),
        ]  # fmt: skip
        if base := BASELINES.get(name):
            store = ("--db", str(db)) if db and "--db" in base.flags else memory_db(base.flags)
            return [*base.command(), *base.args(flags), *store]
        return [*_greenchat_cmd(), *flags, *(("--db", str(db)) if db else memory_db())]
    if db:
        raise ServerStartError(f"{name} has no account store")
    if metrics:
        raise ServerStartError(f"{name} has no Prometheus metrics listener")
    if web:
        raise ServerStartError(f"{name} has no WebSocket listener")
    if name == "threaded":
        return [sys.executable, str(THREADED), "--host", HOST, "--port", "0"]
    values = {"port": port, "rundir": rundir, "max_clients": max_clients}
    binary = _which(name)
    if binary is None:
        raise ServerStartError(f"{name} is not installed (run `make bench-peers`)")
    if name == "ngircd":
        conf = render(PEERS / "ngircd" / "ngircd.conf.template", rundir / "ngircd.conf", **values)
        return [binary, "--nodaemon", "--passive", "--config", str(conf)]
    if name == "inspircd":
        conf = render(
            PEERS / "inspircd" / "inspircd.conf.template", rundir / "inspircd.conf", **values
        )
        # --runasroot only permits running as root; it does nothing for other users.
        return [binary, "--nofork", "--runasroot", "--config", str(conf)]
    raise ValueError(f"unknown server {name!r}; expected one of {', '.join(NAMES)}")


def _log_tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace").strip()
        if text:
            return "\n" + "\n".join(text.splitlines()[-lines:])
    return ""


def _wait_listening_line(proc: subprocess.Popen, log: Path, deadline: float) -> tuple[str, int]:
    """Poll the log for the 'listening on HOST:PORT' line the server prints."""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if match := LISTEN_RE.search(log.read_text(errors="replace")):
                return match[1], int(match[2])
        if proc.poll() is not None:
            raise ServerStartError(f"exited with status {proc.returncode}")
        time.sleep(0.01)
    raise ServerStartError("printed no 'listening on HOST:PORT' line in time")


def _wait_metrics_line(proc: subprocess.Popen, log: Path, deadline: float) -> str:
    """The ``/metrics`` URL of greenchat's banner line ``  metrics on http://HOST:PORT/metrics``.

    The banner is one write, so the line is there with the 'listening on' one;
    the poll covers a slower write.
    """
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if match := METRICS_RE.search(log.read_text(errors="replace")):
                return match[1]
        if proc.poll() is not None:
            raise ServerStartError(f"exited with status {proc.returncode}")
        time.sleep(0.01)
    raise ServerStartError("printed no 'metrics on http://...' line in time (no --metrics-port?)")


def _wait_web_line(proc: subprocess.Popen, log: Path, deadline: float) -> tuple[str, int]:
    """(host, port) of greenchat's web listener, from its banner's
    ``  or in a web browser: http://HOST:PORT/`` line (printed with the 'listening on' one)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if match := WEB_RE.search(log.read_text(errors="replace")):
                return match[1], int(match[2])
        if proc.poll() is not None:
            raise ServerStartError(f"exited with status {proc.returncode}")
        time.sleep(0.01)
    raise ServerStartError(
        "printed no 'in a web browser: http://...' line in time (no --web-port?)"
    )


def has_accounts(name: str) -> bool:
    """Whether server ``name`` has greenchat's accounts (--db: REGISTER, SASL, account-tag)."""
    if not known(name) or not _greenchat_family(name):
        return False
    base = BASELINES.get(name)
    return base is None or not base.flags or "--db" in base.flags


def has_web(name: str) -> bool:
    """Whether server ``name`` has greenchat's web listener (IRC over WebSocket)."""
    if not known(name) or not _greenchat_family(name):
        return False
    base = BASELINES.get(name)
    return base is None or not base.flags or "--web-port" in base.flags


def probe_registration(host: str, port: int, timeout: float = 5.0) -> bool:
    """Connect, register as a throwaway nick, return True once ``001`` arrives."""
    nick = f"probe{os.getpid() % 10000}x{next(_probe_ids)}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"NICK {nick}\r\nUSER probe 0 * :startup probe\r\n".encode())
            tail = b""
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                sock.settimeout(max(0.01, end - time.monotonic()))
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                *lines, tail = (tail + chunk).split(b"\n")
                for line in lines:
                    words = line.split()
                    if words[:1] == [b"PING"] and len(words) > 1:  # some servers ping first
                        sock.sendall(b"PONG " + words[1] + b"\r\n")
                    if len(words) > 1 and words[1] == b"001":
                        with contextlib.suppress(OSError):
                            sock.sendall(b"QUIT :probe done\r\n")
                        return True
    except OSError:
        return False
    return False


def _listener(pid: int, port: int) -> str:
    """Who listens on TCP ``port``: "ours" (process ``pid`` or one under it), "other",
    "none" or "unknown".

    Read from /proc (Linux): the LISTEN sockets on that port in /proc/net/tcp*
    against the socket inodes among the process's file descriptors.
    """
    inodes: set[str] = set()
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError):
                for row in Path(table).read_text().splitlines()[1:]:
                    fields = row.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        if not inodes:
            return "none"
        mine = {os.readlink(fd) for one in _tree(pid) for fd in Path(f"/proc/{one}/fd").iterdir()}
    except (OSError, ValueError, IndexError):
        return "unknown"
    return "ours" if any(f"socket:[{inode}]" in mine for inode in inodes) else "other"


def _tree(pid: int) -> list[int]:
    """``pid`` and the processes under it (--workers: the workers listen, not ``pid``)."""
    found, waiting = [], [pid]
    while waiting:
        one = waiting.pop()
        found.append(one)
        for task in Path(f"/proc/{one}/task").iterdir():
            with contextlib.suppress(OSError):
                waiting += [int(child) for child in (task / "children").read_text().split()]
    return found


def _wait_registration(proc: subprocess.Popen, host: str, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(f"exited with status {proc.returncode}")
        owner = _listener(proc.pid, port)
        if owner == "other":  # InspIRCd keeps running when its <bind> fails
            raise ServerStartError(f"port {port} is taken by another process")
        left = deadline - time.monotonic()
        if owner != "none" and probe_registration(host, port, timeout=min(3.0, max(0.1, left))):
            return
        time.sleep(0.02)
    raise ServerStartError(f"did not register a client on {host}:{port} in time")


def _start_once(
    name: str,
    rundir: Path,
    max_clients: int,
    deadline: float,
    metrics: bool = False,
    web: bool = False,
    db: Path | None = None,
) -> RunningServer:
    port = free_port() if name in ("ngircd", "inspircd") else 0
    cmd = _command(name, rundir, port, max_clients, metrics, web, db)
    base = BASELINES.get(name)
    if metrics and base is not None and "--metrics-port" in base.dropped:
        raise ServerStartError(f"{name} does not know --metrics-port")
    if web and base is not None and "--web-port" in base.dropped:
        raise ServerStartError(f"{name} has no web listener (no --web-port)")
    return launch(name, cmd, rundir, deadline, port, metrics, web)


def launch(
    name: str,
    cmd: list[str],
    rundir: Path,
    deadline: float,
    port: int = 0,
    metrics: bool = False,
    web: bool = False,
    append_log: bool = False,
) -> RunningServer:
    """Run ``cmd`` as server ``name`` in ``rundir`` (its output in ``NAME.log``, appended
    to with ``append_log``: a restart on the same files); return once it listens (on
    ``port``, or where its log says for 0) and registers a client; stopped if it does
    not by ``deadline``. Stopped at exit if still running."""
    log = rundir / f"{name}.log"
    with log.open("ab" if append_log else "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=rundir,
            # Only setrlimit/signal calls: safe between fork and exec.
            preexec_fn=_raise_fd_limit_cap_log if name == "ngircd" else _raise_fd_limit,
            start_new_session=True,  # a Ctrl-C in the harness's terminal doesn't reach it
        )
    record_pid(proc.pid)
    server = RunningServer(name, HOST, port, proc.pid, proc, log)
    _running[proc.pid] = server
    try:
        if port == 0:
            server.host, server.port = _wait_listening_line(proc, log, deadline)
        if metrics:
            server.metrics_url = _wait_metrics_line(proc, log, deadline)
        if web:
            server.web_address = _wait_web_line(proc, log, deadline)
        _wait_registration(proc, server.host, server.port, deadline)
    except BaseException:
        stop(server)
        raise
    return server


def start(
    name: str,
    tmpdir: Path,
    max_clients: int = 20000,
    metrics: bool = False,
    web: bool = False,
    db: bool = False,
) -> RunningServer:
    """Start server ``name`` on a free loopback port; return once it registers a client.

    With ``metrics`` (greenchat and its baselines only), also its metrics
    listener on a free loopback port: ``metrics_url`` says where. With
    ``web`` (greenchat, and the baselines that have it; :func:`has_web`), its
    web listener too: ``web_address`` says where. With ``db`` (greenchat; the
    others raise ``ServerStartError``), its accounts are kept in a SQLite file,
    ``tmpdir/NAME/greenchat.db``, made afresh (any left from an earlier case is
    removed), instead of ``--db :memory:``.

    ``tmpdir/NAME/`` receives ``NAME.log`` (the server's stdout and stderr)
    and, for the peers, the rendered config (and InspIRCd's pid file and log).
    Servers that cannot listen on port 0 get a port picked just before the
    start; if another process takes it first, the start is retried on a new
    port (three tries in all).
    """
    _check_known(name)
    rundir = Path(tmpdir) / name
    rundir.mkdir(parents=True, exist_ok=True)
    store = rundir / "greenchat.db" if db else None
    if store is not None:
        for path in (store, *(store.with_name(store.name + end) for end in ("-wal", "-shm"))):
            path.unlink(missing_ok=True)
    tries = 3 if name in ("ngircd", "inspircd") else 1
    for attempt in range(1, tries + 1):
        deadline = time.monotonic() + START_DEADLINE
        try:
            return _start_once(name, rundir, max_clients, deadline, metrics, web, store)
        except ServerStartError as exc:
            log = rundir / f"{name}.log"
            if attempt == tries:
                raise ServerStartError(f"{name}: {exc}{_log_tail(log)}") from None
            with contextlib.suppress(OSError):
                log.rename(rundir / f"{name}.try{attempt}.log")
    raise AssertionError("unreachable")


# -- stopping ---------------------------------------------------------------------------


def stop(server: RunningServer, deadline: float = STOP_DEADLINE) -> None:
    """SIGTERM the server's own PID, wait up to ``deadline`` s, then SIGKILL it."""
    proc = server.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=deadline)
    # Only once it is gone: a stop cut short (SystemExit) leaves it to the atexit hook.
    _running.pop(server.pid, None)


@atexit.register
def _stop_leftovers() -> None:
    """Stop servers a crashed harness left running (they have their own session,
    so a Ctrl-C in the terminal does not reach them)."""
    for server in list(_running.values()):
        stop(server)


# -- describing ---------------------------------------------------------------------------


def _first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def _debian_version(package: str) -> str | None:
    if not shutil.which("dpkg-query"):
        return None
    out = _first_line(["dpkg-query", "-W", "-f=${Version}\n", package])
    return out or None


# Facts about each server that explain its numbers, measured or read from its source.
# "listen_backlog" is what `ss -ltn` shows; more connects in flight than that
# overflow the accept queue and the kernel's SYN retransmissions add whole seconds.
FACTS: dict[str, dict[str, Any]] = {
    "greenchat": {
        "kind": "gevent, one greenlet per connection (this project)",
        "listen_backlog": 128,
        "notes": [
            f"--sendq {GREENCHAT_SENDQ} (4 MiB), --flood-rate 0 (flood control off, as "
            "the peers' configs relax theirs) and --log-level WARNING for benchmarks"
        ],
    },
    "greenchat-nodelay": {
        "kind": "greenchat with --tcp-nodelay: every flush is sent at once (no Nagle)",
        "listen_backlog": 128,
        "notes": [
            f"--sendq {GREENCHAT_SENDQ} (4 MiB), --flood-rate 0 (flood control off, as "
            "the peers' configs relax theirs) and --log-level WARNING for benchmarks"
        ],
    },
    "threaded": {
        "kind": "one OS thread per client; broadcast = blocking sendall to each member under "
        "one global lock, from the sender's thread (the seed's design)",
        "listen_backlog": 4096,
        "notes": ["a baseline, not a product: benchmarks/baselines/threaded_server.py"],
    },
    "ngircd": {
        "kind": "C, single-threaded event loop (epoll)",
        "listen_backlog": 10,
        "notes": [
            "listen backlog 10 is compiled in: keep connects in flight at about 10",
            "per-client write buffer is compiled in at 32 KiB; a client whose buffer "
            "cannot be flushed below that is disconnected (Write buffer space exhausted)",
            "handles at most 3 commands per client per loop turn; MaxPenaltyTime = 0 "
            "removes the added delays",
            "started as root it runs as the user nobody",
            f"its log is capped at {LOG_CAP // 2**20} MiB (it logs every failed write "
            "while clients hang up)",
        ],
    },
    "inspircd": {
        "kind": "C++, single-threaded event loop (epoll)",
        "listen_backlog": 4096,
        "notes": [
            "registrations complete on a once-a-second timer: 001 arrives up to 1 s "
            "after NICK/USER, so connect many clients at once",
            "exits with status 10 on SIGTERM (its normal SIGTERM exit code)",
        ],
    },
}


def describe(name: str) -> dict[str, Any]:
    """What the results JSON records about server ``name``: version, kind, config, notes."""
    _check_known(name)
    info: dict[str, Any] = {"name": name}
    if base := BASELINES.get(name):
        own = base.describe()
        kind = "greenchat at an older revision (the baseline), on this interpreter and gevent"
        facts = FACTS["greenchat"] | {"kind": kind}
        return info | facts | own | {"notes": [*facts["notes"], *own.get("notes", [])]}
    if name == "greenchat" or name in VARIANTS:
        import greenchat

        info["version"] = greenchat.__version__
    elif name == "threaded":
        info["version"] = f"baseline (Python {sys.version.split()[0]})"
        info["source"] = str(THREADED.relative_to(HERE.parent))
    else:
        binary = _which(name)
        info["version"] = _first_line([binary, "--version"]) if binary else None
        info["debian_package"] = _debian_version(name)
        info["config"] = str((PEERS / name / f"{name}.conf.template").relative_to(HERE.parent))
        info["installed"] = binary is not None
    if name.startswith(WORKER_PREFIX):
        return info | _workers_facts(VARIANTS[name][1])
    return info | FACTS[name]


def _workers_facts(count: str) -> dict[str, Any]:
    facts = FACTS["greenchat"]
    kind = f"greenchat-serve --workers {count}: {count} processes on one port (SO_REUSEPORT)"
    note = (
        "one network over a private redis-server on a Unix socket; server CPU and RSS are "
        "the supervisor's, every worker's and redis-server's; history in that Redis "
        "(--db redis, which --workers gives for --db :memory:)"
    )
    return facts | {"kind": kind, "notes": [*facts["notes"], note]}
