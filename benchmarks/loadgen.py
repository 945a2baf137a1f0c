"""The load generator shared by greenchat's benchmarks (fanout.py, bench.py).

Raw gevent sockets, no IRC library: a benchmark client must cost the
generator far less than it costs the server, or the generator is what gets
measured. The pieces:

* :class:`Client`: one registered connection, with readers for every need:
  ``lines_until`` (line by line, for the few lines of registration),
  ``drain_until`` (big reads, no per-line work, for backlogs such as a JOIN
  storm), ``receive`` (counts PRIVMSG lines), ``receive_timed`` (also parses
  the send time carried in each line and records its latency) and
  ``count_available`` (non-blocking, for receivers that are polled).
* :func:`connect_all` registers clients with bounded concurrency (so the
  server's listen backlog never overflows), spread over several loopback
  source addresses when asked (``127.0.0.1``, ``127.0.0.2`` ...), and
  :func:`join_storm` / :func:`finish_sync` make them all join one channel.
* :class:`Fleet` spreads clients over this process and ``procs - 1`` worker
  processes (copies of this module in ``--worker`` mode, one JSON object per
  line on stdin/stdout). ``Fleet.call(func, **params)`` runs the same
  function on every process's share of clients at once; functions may leave
  greenlets running between calls (workers read their commands
  cooperatively). Times are ``CLOCK_MONOTONIC``, shared by all processes.
* Measuring: server CPU from ``/proc/PID/task/*/schedstat`` (nanoseconds, all
  threads), server memory from ``/proc/PID/status``, the generator's own CPU
  from ``getrusage``; machine description, medians and percentiles.

Transports (``FleetSpec.transport``, :data:`TRANSPORTS`): ``tcp``, IRC lines
on a plain socket, and ``ws``, IRC over WebSocket as the IRCv3 websocket spec
has it (https://ircv3.net/specs/extensions/websocket), to greenchat's web
listener: :func:`ws_upgrade` does the HTTP/1.1 upgrade (``101``, subprotocol
``text.ircv3.net``, ``Sec-WebSocket-Accept`` checked) and a
:class:`WsClient` sends every line as one masked text frame (mask key 0, so
the payload goes unchanged) and reads the server's unmasked frames. Its
counting readers (``drain_until``, ``receive``) never parse frames: every
line is a frame of its own, so ``" PRIVMSG #"`` or a sync token never
straddles a frame header, and they scan the raw byte stream, keeping only a
short tail between reads; only ``lines_until`` (registration) parses frames.
The TCP path is untouched by it (:class:`Client` is the TCP client).

Clients are named ``b0``, ``b1`` ... by index (``w0``, ``w1`` ... over
WebSocket, so that fleets of both transports can share a server); indexes
are global over the fleet and the main process always holds the lowest ones
(the senders).
"""

if __name__ == "__main__":  # a worker process: the only place this module patches
    from gevent import monkey

    monkey.patch_all()

import base64
import contextlib
import datetime
import hashlib
import importlib
import json
import os
import platform
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gevent
import psutil
import scramp.core
import scramp.utils
from gevent.event import Event
from gevent.fileobject import FileObjectPosix
from gevent.lock import BoundedSemaphore
from scramp import ScramClient, ScramMechanism

PATTERN = b" PRIVMSG #"
STAMP = b" :T"  # a timed message's text starts with T<send time in ns>
RECV_BYTES = 256 * 1024
FD_CAP = 20_000
IP_BIND_ADDRESS_NO_PORT = 24  # Linux: pick the source port at connect(), not bind()
# Numerics in the 4xx/5xx range that are normal during registration.
HARMLESS_ERRORS = {b"422"}  # ERR_NOMOTD
TRANSPORTS = ("tcp", "ws")
NICK_PREFIX = {"tcp": "b", "ws": "w"}  # same length: the lines are as long over both
WS_SUBPROTOCOL = "text.ircv3.net"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's, for Sec-WebSocket-Accept
WS_ZERO_MASK = b"\0\0\0\0"  # a legal mask key that leaves the payload as it is
WS_MAX_HEAD = 16 * 1024  # bytes of the server's handshake answer
KEEP = len(PATTERN) - 1  # raw-stream readers carry this much over: a match may straddle reads

# One receive buffer per process: a greenlet reads into it and is done with
# the data before it can yield, so greenlets never see each other's bytes.
_BUFFER = bytearray(RECV_BYTES)
_VIEW = memoryview(_BUFFER)


# -- limits and measurements ---------------------------------------------------------


def raise_fd_limit(needed: int = 0) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; fail if ``needed`` won't fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else FD_CAP
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if needed > target:
        raise RuntimeError(f"need about {needed} file descriptors per process, limit {target}")
    return target


def process_cpu_clock(pid: int) -> int:
    """Linux's CPU-time clock of process ``pid`` (all its threads, those that ended too):
    ``clock_getcpuclockid(pid)``, which Python lacks, is ``(~pid << 3) | CPUCLOCK_SCHED``."""
    return ((~pid) << 3) | 2


def cpu_seconds(pid: int | None) -> tuple[float, float, float] | None:
    """(user, system, total) CPU seconds used so far by process ``pid`` and the
    processes under it (``greenchat-serve --workers N``: its workers and their
    redis-server; a single server has none).

    user and system come from psutil in clock ticks (10 ms); total is the
    scheduler's nanosecond run time of the whole process (its CPU-time clock:
    every thread, including those that have ended: a thread pool that lets an
    idle thread go must not make the total go down), so short runs are still
    measured precisely. Where that clock cannot be read, the sum of the live
    threads' ``/proc/PID/task/*/schedstat`` run times.
    """
    if pid is None:
        return None
    under = psutil.Process(pid).children(recursive=True)
    readings = [_one_cpu_seconds(pid)]
    for child in under:
        with contextlib.suppress(psutil.Error, OSError):
            readings.append(_one_cpu_seconds(child.pid))
    user, system, total = (sum(parts) for parts in zip(*readings, strict=True))
    return user, system, total


def _one_cpu_seconds(pid: int) -> tuple[float, float, float]:
    times = psutil.Process(pid).cpu_times()
    total = times.user + times.system
    try:
        return times.user, times.system, time.clock_gettime(process_cpu_clock(pid))
    except OSError:
        pass
    with contextlib.suppress(OSError):
        nanoseconds = []
        for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended
                nanoseconds.append(int(task.read_text().split()[0]))
        if nanoseconds:
            total = sum(nanoseconds) / 1e9
    return times.user, times.system, total


def cpu_delta(
    before: tuple[float, float, float] | None, after: tuple[float, float, float] | None
) -> tuple[float, float, float] | None:
    """(user, system, total) seconds between two :func:`cpu_seconds` readings."""
    if before is None or after is None:
        return None
    user, system, total = (a - b for a, b in zip(after, before, strict=True))
    return user, system, total


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memory_kb(pid: int, field: str = "VmRSS") -> int:
    """A ``/proc/PID/status`` memory field (VmRSS, VmHWM ...) in KiB, summed over the
    process and those under it (--workers: the workers and their redis-server)."""
    total = _one_memory_kb(pid, field)
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(OSError, KeyError, psutil.Error):
            total += _one_memory_kb(child.pid, field)
    return total


def _one_memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/{pid}/status")


class RssSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a greenlet; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak_kb = memory_kb(pid)
        self._job = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError, KeyError):
                self.peak_kb = max(self.peak_kb, memory_kb(self.pid))
            gevent.sleep(self.interval)

    def stop(self) -> int:
        """Stop sampling (one last sample) and return the peak in KiB."""
        self._job.kill()
        with contextlib.suppress(OSError, KeyError):
            self.peak_kb = max(self.peak_kb, memory_kb(self.pid))
        return self.peak_kb


# -- one client ---------------------------------------------------------------------------


class Client:
    """A raw, registered IRC connection that counts the PRIVMSG lines it receives."""

    __slots__ = ("count", "nick", "sock", "tagged", "tail")

    def __init__(self, sock: socket.socket, nick: str) -> None:
        self.sock = sock
        self.nick = nick
        self.tail = b""  # bytes read but not consumed yet (a partial line, or more)
        self.count = 0
        self.tagged = 0  # complete lines with ``receive``'s ``also`` pattern (account tags)

    def read_chunk(self, context: bytes = b"") -> bytes:
        """One big read; ``ConnectionError`` (naming the last line seen) at end of stream."""
        n = self.sock.recv_into(_VIEW)
        if not n:
            said = context.rstrip().rpartition(b"\n")[2][-300:].decode(errors="replace")
            raise ConnectionError(f"{self.nick}: server closed the connection; last {said!r}")
        return bytes(_VIEW[:n])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    @staticmethod
    def wire(data: bytes) -> bytes:
        """What ``data`` (CRLF-terminated lines) looks like on this client's connection."""
        return data

    def lines_until(self, done: Callable[[bytes], bool]) -> int:
        """Read lines until ``done(line)``; keep what follows; return PRIVMSGs skipped.

        Every line is checked for ERROR and error numerics: use it where few
        lines are expected (registration), :meth:`drain_until` elsewhere.
        """
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
            data = rest + self.read_chunk(data)

    def drain_until(self, token: bytes) -> int:
        """Read until a complete line contains ``token``; return the PRIVMSG lines before it.

        Big reads and no per-line Python work, so a long backlog (a JOIN
        storm, a burst) costs little. What follows that line is kept.
        """
        data, strays = self.tail, 0
        while True:
            at = data.find(token)
            if at >= 0 and (end := data.find(b"\n", at)) >= 0:
                self.tail = data[end + 1 :]
                return strays + data.count(PATTERN, 0, at)
            cut = data.rfind(b"\n", 0, at if at >= 0 else len(data)) + 1
            strays += data.count(PATTERN, 0, cut)
            data = data[cut:] + self.read_chunk(data)

    def receive(self, target: int, also: bytes = b"") -> None:
        """Count complete PRIVMSG lines until ``target`` have arrived (in ``self.count``).

        With ``also`` (e.g. ``b"@account="``), the complete lines' occurrences of
        that pattern are counted too, in ``self.tagged``: what the fan-out put on
        the wire, checked at no per-line cost.
        """
        recv_into, buf, view = self.sock.recv_into, _BUFFER, _VIEW
        count, tail, recent = self.count, self.tail, b""
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
                joined = tail + view[:start]
                count += joined.count(PATTERN)
                if also:
                    self.tagged += joined.count(also)
            count += buf.count(PATTERN, start, last)
            if also:
                self.tagged += buf.count(also, start, last)
            tail = bytes(view[last:n])
            recent = bytes(view[max(0, last - 512) : last])  # for the error message
            self.count = count
        self.tail = tail

    def receive_timed(self, target: int, latencies_us: list[int]) -> None:
        """Like :meth:`receive`, and record each line's latency from its ``T<ns>`` stamp.

        A chunk's lines all get the time of the read that brought them.
        """
        count, tail = self.count, self.tail
        while count < target:
            chunk = self.read_chunk(tail)
            now = time.monotonic_ns()
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            for line in data[:cut].split(b"\n"):
                at = line.find(PATTERN)
                if at < 0:
                    continue
                count += 1
                stamp = line.find(STAMP, at)
                if stamp >= 0:
                    end = line.find(b" ", stamp + 3)
                    latencies_us.append((now - int(line[stamp + 3 : end])) // 1000)
            tail = data[cut:]
            self.count = count
        self.tail = tail

    def count_available(self) -> bool:
        """Count the complete PRIVMSG lines that can be read without waiting.

        The socket must have a timeout of 0 (see :func:`nonblocking`). Returns
        False once the server has closed the connection.
        """
        while True:
            try:
                chunk = self.read_chunk(self.tail)
            except BlockingIOError:
                return True
            except ConnectionError:
                return False
            data = self.tail + chunk
            cut = data.rfind(b"\n") + 1
            self.count += data.count(PATTERN, 0, cut)
            self.tail = data[cut:]


class WsClient(Client):
    """A registered IRC connection over WebSocket (after :func:`ws_upgrade`).

    ``send`` turns CRLF-terminated lines into masked text frames, one per
    line. ``lines_until`` parses the server's frames (registration: few
    lines); ``drain_until`` and ``receive`` scan the raw byte stream instead,
    like their TCP versions but without looking for line ends: each line is
    a frame of its own, so neither ``" PRIVMSG #"`` nor a sync token can have
    a frame header inside it, and a frame header (2 bytes for a line under
    126 bytes) cannot complete one. They carry the last few bytes of a read
    over to the next, so a match split by a read is counted once. After them
    ``tail`` no longer starts at a frame boundary: ``lines_until`` refuses
    then.
    """

    __slots__ = ("framed",)

    def __init__(self, sock: socket.socket, nick: str, tail: bytes = b"") -> None:
        super().__init__(sock, nick)
        self.tail = tail  # what came right behind the 101 answer
        self.framed = True  # tail starts at a frame boundary

    @staticmethod
    def wire(data: bytes) -> bytes:
        return ws_frames(data)

    def send(self, data: bytes) -> None:
        self.sock.sendall(ws_frames(data))

    def lines_until(self, done: Callable[[bytes], bool]) -> int:
        if not self.framed:
            raise RuntimeError(f"{self.nick}: lines_until after a raw-stream read")
        skipped = 0
        data = self.tail
        while True:
            lines, used = self._messages(data)
            for line, end in lines:
                check_line(line, self.nick)
                if done(line):
                    self.tail = data[end:]
                    return skipped
                skipped += PATTERN in line
            data = data[used:] + self.read_chunk(data)

    def _messages(self, data: bytes) -> tuple[list[tuple[bytes, int]], int]:
        """The complete data messages at the start of ``data``, each with its end offset,
        and the offset after the last complete frame. Pings are answered; a Close raises."""
        out: list[tuple[bytes, int]] = []
        pos, size = 0, len(data)
        while pos + 2 <= size:
            first, second = data[pos], data[pos + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                length, head = int.from_bytes(data[pos + 2 : pos + 4]), 4
            elif length == 127:
                length, head = int.from_bytes(data[pos + 2 : pos + 10]), 10
            end = pos + head + length
            if second & 0x80 or not first & 0x80:
                raise RuntimeError(f"{self.nick}: a masked or fragmented frame from the server")
            if pos + head > size or end > size:
                break
            opcode, payload = first & 0x0F, data[pos + head : end]
            if opcode in (0x1, 0x2):
                out.append((payload, end))
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2]) if len(payload) >= 2 else None
                said = payload[2:].decode(errors="replace")
                raise ConnectionError(f"{self.nick}: WebSocket closed ({code} {said!r})")
            elif opcode == 0x9:  # Ping: Pong with the same payload
                self.sock.sendall(ws_frame(payload, 0xA))
            pos = end
        return out, pos

    def drain_until(self, token: bytes) -> int:
        self.framed = False
        keep = max(len(token), len(PATTERN)) - 1
        data, strays = self.tail, 0
        while True:
            at = data.find(token)
            if at >= 0:
                self.tail = data[at + len(token) :]
                return strays + data.count(PATTERN, 0, at)
            # Count the matches that start before the kept bytes (all complete: keep >= KEEP).
            cut = max(0, len(data) - keep)
            strays += data.count(PATTERN, 0, cut + KEEP)
            data = data[cut:] + self.read_chunk(data)

    def receive(self, target: int, also: bytes = b"") -> None:
        if also:
            raise NotImplementedError("tag counting over WebSocket is not implemented")
        self.framed = False
        recv_into, buf, view = self.sock.recv_into, _BUFFER, _VIEW
        count, tail, recent = self.count, self.tail, b""
        if len(tail) > KEEP:  # left by drain_until: count it, keep its last bytes
            count += tail.count(PATTERN)
            tail = tail[-KEEP:]
        while count < target:
            n = recv_into(view)
            if not n:
                said = recent.decode(errors="replace")
                raise ConnectionError(
                    f"{self.nick}: connection closed after {count} deliveries; last {said!r}"
                )
            if tail:  # only a match across the two reads: neither part holds a whole one
                count += (tail + view[: min(n, KEEP)]).count(PATTERN)
            count += buf.count(PATTERN, 0, n)
            tail = bytes(view[n - KEEP : n]) if n >= KEEP else (tail + bytes(view[:n]))[-KEEP:]
            recent = bytes(view[max(0, n - 300) : n])  # for the error message
            self.count = count
        self.count, self.tail = count, tail

    def receive_timed(self, target: int, latencies_us: list[int]) -> None:
        raise NotImplementedError("latency over WebSocket is not measured")

    def count_available(self) -> bool:
        raise NotImplementedError("polled WebSocket receivers are not implemented")


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final client frame, masked with the zero key (so ``payload`` is sent as it is)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + WS_ZERO_MASK + payload


def ws_frames(data: bytes) -> bytes:
    """CRLF-terminated IRC lines as text frames, one per line, without line endings."""
    return b"".join(ws_frame(line) for raw in data.split(b"\n") if (line := raw.rstrip(b"\r")))


def ws_upgrade(sock: socket.socket, nick: str, host: str, port: int) -> WsClient:
    """The WebSocket handshake on a connected socket: ``GET /`` asking for
    ``text.ircv3.net``; fails unless the answer is ``101`` with that subprotocol
    and the right ``Sec-WebSocket-Accept``. No Origin header (not a browser)."""
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s"
        b"\r\n\r\n" % (host.encode(), port, key, WS_SUBPROTOCOL.encode())
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > WS_MAX_HEAD:
            raise ConnectionError(f"{nick}: no complete WebSocket handshake answer: {data[:300]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    if status.split(" ", 2)[1:2] != ["101"]:
        raise RuntimeError(f"{nick}: WebSocket handshake refused: {status!r} {rest[:200]!r}")
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    if fields.get("sec-websocket-protocol") != WS_SUBPROTOCOL:
        got = fields.get("sec-websocket-protocol")
        raise RuntimeError(f"{nick}: WebSocket subprotocol {got!r}, not {WS_SUBPROTOCOL}")
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
    if (got := fields.get("sec-websocket-accept")) != accept:
        raise RuntimeError(f"{nick}: Sec-WebSocket-Accept {got!r}, expected {accept!r}")
    return WsClient(sock, nick, rest)


def check_line(line: bytes, nick: str) -> None:
    """Fail loudly on ERROR or an error numeric (other than the harmless ones)."""
    words = line.split(b" ", 2)
    code = words[1] if len(words) > 1 else b""
    numeric_error = code.isdigit() and code[:1] in b"45" and code not in HARMLESS_ERRORS
    if line.startswith(b"ERROR") or numeric_error:
        raise RuntimeError(f"{nick}: server said {line.decode(errors='replace')!r}")


def last_word(line: bytes) -> bytes:
    return line.rstrip(b"\r").rsplit(b" ", 1)[-1].removeprefix(b":")


def nonblocking(clients: Iterable[Client], on: bool = True) -> None:
    """Switch sockets to non-blocking (timeout 0) for polling, or back."""
    for client in clients:
        client.sock.settimeout(0.0 if on else None)


def timed_text(size: int) -> bytes:
    """A message text ``T<now in ns> xxx...`` of about ``size`` bytes."""
    head = f"T{time.monotonic_ns()} "
    return (head + "x" * max(1, size - len(head))).encode()


# -- connecting ------------------------------------------------------------------------------


def source_address(index: int, sources: int) -> str | None:
    """The loopback source address of client ``index``: 127.0.0.1 .. 127.0.0.<sources>."""
    if sources <= 1:
        return None
    return f"127.0.0.{1 + index % sources}"


def open_socket(host: str, port: int, source: str | None, rcvbuf: int | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        sock.settimeout(60)
        sock.connect((host, port))
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def connect(
    host: str,
    port: int,
    index: int,
    caps: str = "",
    source: str | None = None,
    rcvbuf: int | None = None,
    transport: str = "tcp",
    prefix: str = "",
    login: bool = False,
) -> Client:
    """Connect and register as ``b<index>`` (requesting ``caps``); return after 001.

    With ``transport="ws"``, ``port`` is greenchat's web port: the client
    upgrades to a WebSocket first and is ``w<index>``. ``prefix`` replaces
    the nick's letter. With ``login``, the client also requests ``sasl`` and
    logs in to the account named as its nick (:func:`bench_password`, made
    by :func:`register_accounts`) with SCRAM-SHA-256 before ``CAP END``.
    """
    nick = f"{prefix or NICK_PREFIX[transport]}{index}"
    if login:
        caps = " ".join(filter(None, (caps, "sasl")))
    sock = open_socket(host, port, source, rcvbuf)
    if transport == "tcp":
        client = Client(sock, nick)
    else:
        try:
            client = ws_upgrade(sock, nick, host, port)
        except BaseException:
            sock.close()
            raise
    if caps:
        client.send(f"CAP REQ :{caps}\r\n".encode())
    client.send(f"NICK {nick}\r\nUSER {nick} 0 * :bench\r\n".encode())
    if login:
        client.send(b"AUTHENTICATE " + SCRAM_MECHANISM.encode() + b"\r\n")
        sasl_scram(client, nick, bench_password(nick))
        client.send(b"CAP END\r\n")
    elif caps:
        client.lines_until(lambda line: b" CAP " in line and b" ACK " in line)
        client.send(b"CAP END\r\n")
    welcome = f" 001 {nick} ".encode()
    client.lines_until(lambda line: welcome in line)
    return client


def connect_all(
    host: str,
    port: int,
    indexes: range,
    concurrency: int = 100,
    caps: str = "",
    sources: int = 1,
    rcvbuf: Callable[[int], int | None] | None = None,
    transport: str = "tcp",
    prefix: str = "",
    logins: int = 0,
) -> list[Client]:
    """Register clients ``indexes`` with at most ``concurrency`` registrations in flight.

    Those with an index below ``logins`` log in to their accounts (SCRAM) first.
    """
    gate = BoundedSemaphore(concurrency)

    def one(index: int) -> Client:
        with gate:
            size = rcvbuf(index) if rcvbuf else None
            source = source_address(index, sources)
            return connect(host, port, index, caps, source, size, transport, prefix, index < logins)

    jobs = [gevent.spawn(one, i) for i in indexes]
    try:
        gevent.joinall(jobs, raise_error=True)
    except BaseException:
        gevent.killall(jobs)
        # A killed job's value is its GreenletExit: close only the clients made.
        close_all([job.value for job in jobs if isinstance(job.value, Client)])
        raise
    return [job.value for job in jobs]


def sync_token(tag: str) -> bytes:
    """What a sync PINGs with and waits for: no nick, channel or server text contains it."""
    return f"sync.{tag}.end".encode()


# Greenlets left running by join_storm, keyed by sync tag, until finish_sync.
_BACKGROUND: dict[str, list[gevent.Greenlet]] = {}


def join_storm(
    clients: list[Client],
    first: int,
    channel: str,
    tag: str,
    skip: Sequence[int] = (),
    deadline: float = 300.0,
) -> dict[str, Any]:
    """Every client sends JOIN at once; return when each has its 366 (end of NAMES).

    The clients then keep draining (JOIN lines of later joiners) in the
    background until :func:`finish_sync` with the same ``tag``. Clients at
    global indexes in ``skip`` read up to their 366 and then stop reading.
    Returns ``last_366`` (monotonic time) and ``sent`` (when the JOINs were out).
    """
    stopped = set(skip)
    got: list[float] = []
    done = Event()

    def member(client: Client, index: int) -> int:
        client.drain_until(f" 366 {client.nick} ".encode())
        got.append(time.monotonic())
        if len(got) == len(clients):
            done.set()
        return 0 if index in stopped else client.drain_until(sync_token(tag))

    jobs = [gevent.spawn(member, c, first + i) for i, c in enumerate(clients)]
    for job in jobs:
        job.link_exception(lambda _job: done.set())
    line = f"JOIN {channel}\r\n".encode()
    for client in clients:
        client.send(line)
    sent = time.monotonic()
    done.wait(timeout=deadline)
    failed = next((job for job in jobs if job.exception), None)
    if failed or len(got) < len(clients):
        gevent.killall(jobs, block=False)
        why = failed.exception if failed else f"no 366 within {deadline:g} s"
        raise RuntimeError(f"JOIN {channel}: {why}")
    _BACKGROUND[tag] = jobs
    return {"last_366": max(got, default=sent), "sent": sent}


def finish_sync(
    clients: list[Client],
    first: int,
    tag: str,
    skip: Sequence[int] = (),
    deadline: float = 300.0,
) -> dict[str, Any]:
    """PING with ``tag`` and wait until every client (not in ``skip``) has read its PONG.

    Clients already draining in the background (after :func:`join_storm`)
    finish there; the others read up to the PONG now. Returns the PRIVMSG
    lines that arrived before the PONG (``strays``) and the time it ended.
    """
    stopped = set(skip)
    ping = b"PING :" + sync_token(tag) + b"\r\n"
    waiting = [c for i, c in enumerate(clients) if first + i not in stopped]
    background = _BACKGROUND.pop(tag, None)
    for client in waiting:
        client.send(ping)
    if background is None:
        jobs = [gevent.spawn(c.drain_until, sync_token(tag)) for c in waiting]
    else:
        jobs = [j for i, j in enumerate(background) if first + i not in stopped]
    with gevent.Timeout(deadline, RuntimeError(f"no PONG :{tag} within {deadline:g} s")):
        gevent.joinall(jobs, raise_error=True)
    strays = sum(job.value or 0 for job in jobs)
    return {"strays": strays, "done": time.monotonic()}


def sync_all(clients: list[Client], tag: str) -> int:
    """PING every client and drain up to its PONG; return stray PRIVMSGs seen."""
    return finish_sync(clients, 0, tag)["strays"]


def close_all(clients: list[Client]) -> None:
    for client in clients:
        with contextlib.suppress(OSError):
            client.sock.setblocking(False)
            client.sock.send(client.wire(b"QUIT :done\r\n"))
        client.sock.close()


# -- accounts: REGISTER, SASL SCRAM-SHA-256 ------------------------------------------------------

SCRAM_MECHANISM = "SCRAM-SHA-256"
SASL_CHUNK = 400  # bytes of base64 per AUTHENTICATE line (IRCv3 SASL 3.1)
# 902 nick locked, 904 failed, 905 too long, 906 aborted, 907 already, 908 mechanisms.
SASL_FAILURES = {b"902", b"904", b"905", b"906", b"907", b"908"}
REGISTRATION_CAP = "draft/account-registration"


class LoginFailed(RuntimeError):
    """The server refused a SASL login (904 ...) or an account registration (FAIL)."""


def bench_password(name: str) -> str:
    """The password of benchmark account ``name`` (ASCII: SASLprep leaves it as it is)."""
    return f"bench-{name}-pw"


def _words(line: bytes) -> list[bytes]:
    """The line's words without its source prefix (``:server``)."""
    words = line.rstrip(b"\r").split(b" ")
    return words[1:] if words[0].startswith(b":") else words


def register_account(
    host: str,
    port: int,
    name: str,
    password: str,
    source: str | None = None,
    exist_ok: bool = False,
) -> None:
    """Make account ``name`` through the server: ``REGISTER name * password`` before
    connection registration (draft/account-registration's before-connect), then QUIT.
    The server hashes the password (scrypt, ~30-60 ms in its thread pool). With
    ``exist_ok``, ``FAIL REGISTER ACCOUNT_EXISTS`` is fine too (a server kept from
    an earlier run: the benchmark's passwords are always the same)."""
    client = Client(open_socket(host, port, source, None), name)
    try:
        client.send(f"CAP REQ :{REGISTRATION_CAP}\r\nREGISTER {name} * {password}\r\n".encode())

        def done(line: bytes) -> bool:
            words = _words(line)
            refused = words[:1] == [b"CAP"] and b"NAK" in words
            if exist_ok and words[:3] == [b"FAIL", b"REGISTER", b"ACCOUNT_EXISTS"]:
                return True
            if refused or words[:2] == [b"FAIL", b"REGISTER"]:
                raise LoginFailed(f"{name}: server said {line.decode(errors='replace')!r}")
            return words[:2] == [b"REGISTER", b"SUCCESS"]

        client.lines_until(done)
    finally:
        close_all([client])


def register_accounts(
    host: str,
    port: int,
    names: Sequence[str],
    concurrency: int = 16,
    sources: int = 1,
    exist_ok: bool = False,
) -> None:
    """:func:`register_account` for every name (its :func:`bench_password`), at most
    ``concurrency`` at a time; the first failure raises."""
    gate = BoundedSemaphore(concurrency)

    def one(index: int, name: str) -> None:
        source = source_address(index, sources)
        with gate:
            register_account(host, port, name, bench_password(name), source, exist_ok)

    jobs = [gevent.spawn(one, i, name) for i, name in enumerate(names)]
    try:
        gevent.joinall(jobs, raise_error=True)
    except BaseException:
        gevent.killall(jobs)
        raise


def sasl_reply(client: Client) -> bytes:
    """The server's next AUTHENTICATE message, its 400-byte lines put back together and
    decoded (``+``: empty); ``LoginFailed`` on a SASL error numeric instead."""
    pieces: list[bytes] = []

    def done(line: bytes) -> bool:
        words = _words(line)
        if words[:1] == [b"AUTHENTICATE"] and len(words) > 1:
            pieces.append(b"" if words[1] == b"+" else words[1])
            return True
        if words[:1] and words[0] in SASL_FAILURES:
            raise LoginFailed(f"{client.nick}: server said {line.decode(errors='replace')!r}")
        return False

    while True:
        client.lines_until(done)
        if len(pieces[-1]) < SASL_CHUNK:
            return base64.b64decode(b"".join(pieces))


def sasl_send(client: Client, message: str) -> None:
    """``message`` base64-encoded in AUTHENTICATE lines of 400 bytes (``+`` ends a
    message whose last line was full, and is the empty message)."""
    data = base64.b64encode(message.encode())
    lines = [data[i : i + SASL_CHUNK] for i in range(0, len(data), SASL_CHUNK)]
    if not data or len(lines[-1]) == SASL_CHUNK:
        lines.append(b"+")
    client.send(b"".join(b"AUTHENTICATE " + line + b"\r\n" for line in lines))


def sasl_wait(client: Client, code: bytes) -> None:
    """Read up to numeric ``code`` (903 ...); ``LoginFailed`` on another SASL numeric."""

    def done(line: bytes) -> bool:
        words = _words(line)
        if words[:1] == [code]:
            return True
        if words[:1] and words[0] in SASL_FAILURES:
            raise LoginFailed(f"{client.nick}: server said {line.decode(errors='replace')!r}")
        return False

    client.lines_until(done)


def sasl_scram(client: Client, name: str, password: str) -> None:
    """Log in with SCRAM-SHA-256 once ``AUTHENTICATE SCRAM-SHA-256`` is sent (the
    ``sasl`` cap requested before it); return at 903. scramp's ``ScramClient``
    makes the proof (PBKDF2 of the password: :func:`remember_salted_password`
    does that ahead) and checks the server's signature."""
    scram = ScramClient([SCRAM_MECHANISM], name, password)
    sasl_reply(client)  # "AUTHENTICATE +": go on
    sasl_send(client, scram.get_client_first())
    scram.set_server_first(sasl_reply(client).decode())
    sasl_send(client, scram.get_client_final())
    scram.set_server_final(sasl_reply(client).decode())  # the server knew the keys
    client.send(b"AUTHENTICATE +\r\n")
    sasl_wait(client, b"903")


def scram_salt(host: str, port: int, name: str, source: str | None = None) -> tuple[bytes, int]:
    """Account ``name``'s SCRAM salt and iteration count, as its server-first message
    gives them to anyone who asks; then ``AUTHENTICATE *`` (906: aborted, not a
    failed login) and QUIT."""
    client = Client(open_socket(host, port, source, None), name)
    try:
        client.send(f"CAP REQ :sasl\r\nAUTHENTICATE {SCRAM_MECHANISM}\r\n".encode())
        sasl_reply(client)
        sasl_send(client, ScramClient([SCRAM_MECHANISM], name, "-").get_client_first())
        fields = dict(f.split("=", 1) for f in sasl_reply(client).decode().split(","))
        client.send(b"AUTHENTICATE *\r\n")
        client.lines_until(lambda line: _words(line)[:1] == [b"906"])
        return base64.b64decode(fields["s"]), int(fields["i"])
    finally:
        close_all([client])


# SCRAM's SaltedPassword = PBKDF2(password, salt, i), by (hash, password, salt, i).
_SALTED: dict[tuple[Any, bytes, bytes, int], bytes] = {}
_REAL_HI = scramp.utils.hi


def _remembered_hi(hf: Any, password: bytes, salt: bytes, iterations: Any) -> bytes:
    found = _SALTED.get((hf, password, salt, int(iterations)))
    return found if found is not None else _REAL_HI(hf, password, salt, iterations)


def remember_salted_password(password: str, salt: bytes, iterations: int) -> None:
    """Work out SCRAM's SaltedPassword for ``password`` now (PBKDF2, about 1.5 ms), so
    that a later ``ScramClient`` login that is given this salt finds it instead of
    deriving it again. RFC 5802 (section 5) lets a client cache it, as the server
    announces the same salt at every login; scramp has no such cache, so its
    ``hi`` is replaced, in this process, by a lookup that falls back to the real one."""
    hf = ScramMechanism(SCRAM_MECHANISM).hf
    key = (hf, password.encode(), salt, iterations)
    _SALTED[key] = _REAL_HI(*key)
    scramp.core.hi = _remembered_hi


# -- several processes ------------------------------------------------------------------------


def split(n: int, parts: int) -> list[range]:
    """Split range(n) into ``parts`` consecutive, nearly equal ranges."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(parts)]


def func_ref(func: Callable[..., Any]) -> str:
    """``module:name`` of a module-level function, importable from benchmarks/."""
    module = func.__module__
    if module == "__main__":
        module = Path(sys.modules["__main__"].__file__ or "").stem
    return f"{module}:{func.__qualname__}"


def resolve(ref: str) -> Callable[..., Any]:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass
class FleetSpec:
    """How to build a fleet of registered clients (``port``: the web port for ``ws``)."""

    host: str
    port: int
    clients: int
    procs: int = 1
    concurrency: int = 100
    caps: str = ""
    sources: int = 1
    slow_from: int | None = None  # clients from this index on get SO_RCVBUF slow_rcvbuf
    slow_rcvbuf: int = 4096
    transport: str = "tcp"  # or "ws" (TRANSPORTS)
    prefix: str = ""  # the nicks' letter instead of NICK_PREFIX[transport]
    logins: int = 0  # clients below this index log in (SCRAM) to the account named as the nick

    def rcvbuf(self, index: int) -> int | None:
        if self.slow_from is not None and index >= self.slow_from:
            return self.slow_rcvbuf
        return None


def connect_share(spec: FleetSpec, share: range) -> list[Client]:
    raise_fd_limit(len(share) + 64)
    return connect_all(
        spec.host, spec.port, share, spec.concurrency, spec.caps, spec.sources, spec.rcvbuf,
        spec.transport, spec.prefix, spec.logins,
    )  # fmt: skip


class WorkerProcess:
    """The main process's handle on one ``loadgen.py --worker`` process."""

    def __init__(self, spec: FleetSpec, share: range) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.share = share
        self.send({"op": "connect", "spec": asdict(spec), "first": share.start, "stop": share.stop})

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

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send({"op": "quit"})
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Fleet:
    """``spec.clients`` registered clients over this process and ``procs - 1`` workers.

    Use as a context manager: leaving it closes every client and worker.
    """

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        self.shares = split(spec.clients, spec.procs)
        self.local: list[Client] = []
        self.workers = [WorkerProcess(spec, share) for share in self.shares[1:]]
        try:
            self.local = connect_share(spec, self.shares[0])
            for worker in self.workers:
                worker.reply()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, func: Callable[..., dict[str, Any]], **params: Any) -> list[dict[str, Any]]:
        """Run ``func(clients, first, **params)`` in every process at once; local result first.

        Each result gains ``cpu`` (the CPU the call used in that process) and
        ``cpu_total`` (that process's CPU so far).
        """
        ref = func_ref(func)
        for worker in self.workers:
            worker.send({"op": "call", "func": ref, "params": params})
        results = [run_call(func, self.local, self.shares[0].start, params)]
        results += [worker.reply() for worker in self.workers]
        return results

    def cpu_totals(self) -> list[float]:
        """Every generator process's CPU seconds so far (this process first)."""
        return [r["cpu_total"] for r in self.call(noop)]

    def join(
        self, channel: str, tag: str = "joined", skip: Sequence[int] = (), deadline: float = 300.0
    ) -> None:
        """Make every client join ``channel`` (a JOIN storm), then sync all of them.

        Clients at the global indexes in ``skip`` stop reading after their 366.
        """
        self.call(join_storm, channel=channel, tag=tag, skip=list(skip), deadline=deadline)
        self.call(finish_sync, tag=tag, skip=list(skip), deadline=deadline)

    def sync(self, tag: str, skip: Sequence[int] = (), deadline: float = 120.0) -> int:
        """PING every client (not in ``skip``) and wait for its PONG; return stray PRIVMSGs."""
        results = self.call(finish_sync, tag=tag, skip=list(skip), deadline=deadline)
        return sum(r["strays"] for r in results)

    def close(self) -> None:
        close_all(self.local)
        self.local = []
        for worker in self.workers:
            worker.close()
        self.workers = []


def noop(clients: list[Client], first: int) -> dict[str, Any]:
    return {}


def run_call(
    func: Callable[..., dict[str, Any]], clients: list[Client], first: int, params: dict[str, Any]
) -> dict[str, Any]:
    before = own_cpu_seconds()
    result = func(clients, first, **params)
    after = own_cpu_seconds()
    return {**result, "cpu": after - before, "cpu_total": after}


def worker_main() -> int:
    """``--worker``: serve the main process's commands, one JSON line each way.

    stdin is read cooperatively, so greenlets a call leaves behind keep
    running while the worker waits for the next command.
    """
    raise_fd_limit()
    stdin = FileObjectPosix(sys.stdin.fileno(), "r", close=False)
    clients: list[Client] = []
    first = 0

    def reply(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    try:
        for line in stdin:
            msg = json.loads(line)
            if msg["op"] == "connect":
                first = msg["first"]
                clients = connect_share(FleetSpec(**msg["spec"]), range(first, msg["stop"]))
                reply({"clients": len(clients)})
            elif msg["op"] == "call":
                reply(run_call(resolve(msg["func"]), clients, first, msg["params"]))
            elif msg["op"] == "quit":
                break
    except Exception as exc:
        traceback.print_exc()
        reply({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        close_all(clients)
    return 0


# -- numbers and reporting --------------------------------------------------------------------


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median of every float field over the runs (fields absent from a run are skipped)."""
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    return {
        k: statistics.median(r[k] for r in runs if isinstance(r.get(k), float | int)) for k in keys
    }


def percentiles(values: Sequence[float], points: Sequence[float] = (50, 90, 99)) -> dict[str, Any]:
    """``p50``, ``p90`` ... (nearest rank) and ``max`` of ``values``; empty dict if none."""
    if not values:
        return {}
    ordered = sorted(values)
    out: dict[str, Any] = {}
    for p in points:
        rank = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        out[f"p{p:g}"] = ordered[rank]
    out["max"] = ordered[-1]
    return out


def cdf_points(values: Sequence[float], points: int = 200) -> list[list[float]]:
    """[value, fraction] pairs tracing the empirical CDF of ``values`` (for plots)."""
    if not values:
        return []
    ordered = sorted(values)
    n = len(ordered)
    step = max(1, n // points)
    idx = sorted({*range(0, n, step), n - 1})
    return [[ordered[i], (i + 1) / n] for i in idx]


def stream_totals(
    rounds: list[dict[str, Any]], t0: float, cpu: tuple[float, float, float] | None
) -> tuple[dict[str, Any], list[float]]:
    """What a streamed workload's rounds add up to: deliveries, wall, percentiles,
    generator and server CPU; and the sampled latencies in ms (for more figures)."""
    wall = max(r["last"] for r in rounds) - t0
    delivered = sum(r["delivered"] for r in rounds)
    expected = sum(r["expected"] for r in rounds)
    latencies_ms = [us / 1000 for r in rounds for us in r["latencies_us"]]
    gen_cpu = [r["cpu"] for r in rounds]
    totals: dict[str, Any] = {
        "complete": delivered == expected,
        "expected": expected,
        "delivered": delivered,
        "wall_s": wall,
        "deliveries_per_s": delivered / wall,
        **{f"{k}_ms": v for k, v in percentiles(latencies_ms).items()},
        "generator_cpu_s": sum(gen_cpu),
        "generator_core_util": max(gen_cpu) / wall,
    }
    if cpu:
        totals["server_cpu_s"] = cpu[2]
        totals["server_us_per_delivery"] = cpu[2] * 1e6 / max(delivered, 1)
    if errors := [e for r in rounds for e in r["errors"]]:
        totals["errors"] = errors[:5]
    return totals, latencies_ms


def machine_info() -> dict[str, Any]:
    """CPU, cores, OS, Python, gevent and greenchat versions, git commit, date."""
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
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
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


if __name__ == "__main__":
    if sys.argv[1:] != ["--worker"]:
        sys.exit("usage: loadgen.py --worker (started by Fleet; not a command of its own)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import loadgen  # the module proper, so that workloads share its state

    sys.exit(loadgen.worker_main())
