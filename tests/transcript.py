"""Test helpers: a real server in a background thread and a line-oriented IRC test client.

The server runs in its own thread with its own gevent hub, so tests use plain
blocking sockets and never monkey-patch. Every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import replace

import gevent

from greenchat.server.config import ServerConfig
from greenchat.server.server import ChatServer
from greenchat.store.sqlite import MEMORY

DEFAULT_TIMEOUT = 5.0


class ServerThread:
    """A :class:`ChatServer` on 127.0.0.1 port 0, running in a daemon thread."""

    def __init__(
        self, config: ServerConfig | None = None, port: int = 0, web_port: int = 0
    ) -> None:
        # Ports 0 unless a test restarts a server on the ports a previous one had.
        # The web listener on a free port too: two servers must not both want 8547.
        # Accounts in memory unless the test chose a file: no greenchat.db left behind.
        config = config or ServerConfig()
        db = MEMORY if config.db == ServerConfig().db else config.db
        self.config = replace(config, host="127.0.0.1", port=port, web_port=web_port, db=db)
        self.server: ChatServer | None = None
        self._hub = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="greenchat-server", daemon=True)

    def _run(self) -> None:
        try:
            self._hub = gevent.get_hub()
            self.server = ChatServer(self.config)
            self.server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        self.server.wait_stopped()

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10) or self._error:
            raise RuntimeError(f"server did not start: {self._error}")
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.address[1]

    def call(self, func, *args, timeout: float = DEFAULT_TIMEOUT):
        """Run ``func(*args)`` on the server's hub and return its result."""
        done = threading.Event()
        box: list = []

        def run() -> None:
            try:
                box.append(func(*args))
            finally:
                done.set()

        self._hub.loop.run_callback_threadsafe(gevent.spawn, run)
        if not done.wait(timeout):
            raise TimeoutError(f"{func!r} did not finish within {timeout}s")
        return box[0] if box else None

    def stop(self, timeout: float = 10.0) -> None:
        if self.server is not None and not self.server.stopping:
            self._hub.loop.run_callback_threadsafe(gevent.spawn, self.server.stop)
        self._thread.join(timeout)


def until(check, timeout: float = 10.0, what="it"):
    """Poll ``check()`` every 50 ms until it gives something true, and return that; fail
    after ``timeout`` s saying ``what`` (or what ``what()`` says then)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        told = what() if callable(what) else what
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {told}"
        time.sleep(0.05)


def chat_resumes(sender, receiver, channel: str, within: float = 10.0) -> None:
    """``sender``'s line to ``channel`` reaches ``receiver`` within ``within`` seconds,
    sent again every half second (after a failure, the first ones may be lost)."""
    deadline = time.monotonic() + within
    while True:
        sender.send(f"PRIVMSG {channel} :back?")
        try:
            receiver.expect(rf"PRIVMSG {re.escape(channel)} :back\?", timeout=0.5)
            return
        except AssertionError:
            assert time.monotonic() < deadline, f"chat did not resume within {within:g} s"


def wait_for(read, pattern: str, what: str, timeout: float = 10.0) -> str:
    """Poll ``read()`` until ``pattern`` matches (re.M); fail with the last text seen."""
    regex = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while True:
        text = read()
        if regex.search(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: no match for {pattern!r} within {timeout}s:\n{text}")
        time.sleep(0.05)


class IrcSteps:
    """Registering and joining, for a test client with ``send_lines(*lines)`` and
    ``expect(pattern)`` (IrcClient over TCP, ws_client.WsClient over WebSocket)."""

    def register(self, nick: str, user: str | None = None):
        self.send_lines(f"NICK {nick}", f"USER {user or nick} 0 * :{nick} test")
        self.expect(rf" 001 {re.escape(nick)} ")
        self.expect(r" (376|422) ")
        return self

    def join(self, channel: str):
        self.send_lines(f"JOIN {channel}")
        self.expect(rf" 366 \S+ {re.escape(channel)} ")
        return self


def register_account(port: int, name: str, password: str) -> None:
    """An account made as a user makes one: connect as ``name``, ``REGISTER`` with
    NickServ, wait for "Account created", quit (the nick is free again afterwards)."""
    client = IrcClient(port)
    try:
        client.register(name)
        client.send(f"PRIVMSG NickServ :REGISTER {password}")
        client.expect(rf" NOTICE {re.escape(name)} :Account created: ")
        client.send("QUIT")
        client.expect_closed()
    finally:
        client.close()


class IrcClient(IrcSteps):
    """A raw-socket IRC client for tests: send lines, expect lines by regex."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        timeout: float = DEFAULT_TIMEOUT,
        rcvbuf: int | None = None,
        tls: ssl.SSLContext | None = None,
    ):
        """``rcvbuf`` shrinks the kernel receive buffer (set before connecting);
        with ``tls`` the connection is wrapped (handshake included) before use."""
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        else:
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        self.timeout = timeout
        self._buffer = b""
        self._ready: deque[bytes] = deque()  # complete lines not yet read
        self.lines: list[str] = []  # every line received, in order

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    send_lines = send  # the name IrcSteps uses

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_in_background(self, data: bytes) -> threading.Thread:
        """Send a large payload from a thread, so the test can read meanwhile.

        Relayed lines come back to this test's readers while it sends; a
        test that sends megabytes and only then reads would wait on itself
        once the kernel buffers in between are full.
        """
        thread = threading.Thread(target=self.sock.sendall, args=(data,), daemon=True)
        thread.start()
        return thread

    def read_line(self, timeout: float | None = None) -> str | None:
        """The next line, or ``None`` at end of stream. Raises TimeoutError."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self._ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete line received in time")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return None
            if not data:
                return None
            # Split everything received at once: per-line splitting of a large
            # buffer would be quadratic when a test reads megabytes.
            *complete, self._buffer = (self._buffer + data).split(b"\n")
            self._ready.extend(complete)
        line = self._ready.popleft().rstrip(b"\r").decode("utf-8", "replace")
        self.lines.append(line)
        return line

    def count_lines(self, marker: bytes, count: int, timeout: float = 30.0) -> list[bytes]:
        """Read in bulk until ``count`` lines containing ``marker`` arrived; return them.

        Reads as fast as the kernel delivers (a "healthy" reader); other lines
        are appended to :attr:`lines` as usual.
        """
        deadline = time.monotonic() + timeout
        matched: list[bytes] = []
        while len(matched) < count:
            while self._ready and len(matched) < count:
                raw = self._ready.popleft()
                if marker in raw:
                    matched.append(raw.rstrip(b"\r"))
                else:
                    self.lines.append(raw.rstrip(b"\r").decode("utf-8", "replace"))
            if len(matched) >= count:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"only {len(matched)} of {count} lines arrived in time")
            self.sock.settimeout(remaining)
            data = self.sock.recv(1 << 20)
            if not data:
                raise AssertionError(f"disconnected after {len(matched)} of {count} lines")
            *complete, self._buffer = (self._buffer + data).split(b"\n")
            self._ready.extend(complete)
        return matched

    def expect(self, pattern: str, timeout: float | None = None) -> re.Match:
        """Read lines until one matches ``pattern`` (re.search); fail at the deadline."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + (timeout or self.timeout)
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.read_line(max(remaining, 0.001)) if remaining > 0 else None
            except TimeoutError:
                line = None
                remaining = 0
            if line is None:
                reason = "timed out" if remaining <= 0 else "connection closed"
                raise AssertionError(f"{reason} waiting for {pattern!r}; got: {seen[-20:]}")
            seen.append(line)
            match = regex.search(line)
            if match:
                return match

    def expect_closed(self, timeout: float | None = None) -> list[str]:
        """Read until the server closes the connection; return the lines read."""
        deadline = time.monotonic() + (timeout or self.timeout)
        got: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"connection still open; got: {got[-20:]}")
            try:
                line = self.read_line(remaining)
            except TimeoutError as exc:
                raise AssertionError(f"connection still open; got: {got[-20:]}") from exc
            if line is None:
                return got
            got.append(line)

    def register_with_caps(self, nick: str, caps: str) -> IrcClient:
        """Negotiate ``caps`` (space separated) with CAP LS 302, then register."""
        self.send("CAP LS 302", f"NICK {nick}", f"USER {nick} 0 * :{nick} test")
        self.expect(r" CAP \* LS ")
        self.send(f"CAP REQ :{caps}")
        self.expect(rf" CAP {re.escape(nick)} ACK :?{re.escape(caps)}$")
        self.send("CAP END")
        self.expect(rf" 001 {re.escape(nick)} ")
        self.expect(r" (376|422) ")
        return self

    def read_cap_ls(self) -> list[str]:
        """The capabilities of a ``CAP LS 302`` reply (sent already), read across its
        continuation lines (``CAP * LS * :...``)."""
        caps: list[str] = []
        while True:
            match = self.expect(r" CAP \S+ LS (\* )?:?(.*)$")
            caps += match[2].split()
            if not match[1]:
                return caps

    def sync(self, token: str = "sync") -> None:
        """Round-trip a PING so everything sent before it has been handled."""
        self.send(f"PING :{token}")
        self.expect(rf"PONG \S+ :?{re.escape(token)}$")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
