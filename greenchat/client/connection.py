"""A gevent IRC client: the one client codebase for the terminal client, the
load test, the benchmarks and the tests.

Like the seed's client it splits receiving and sending: a reader loop (in the
supervisor greenlet) and a writer greenlet that drains a bounded outbound
queue, several lines per send. On top of that it negotiates capabilities,
answers PINGs, picks another nick on a collision, reports everything as
events (subscribe a callback or iterate), offers helpers that wait for a
reply with a deadline, and reconnects with exponential backoff and jitter,
rejoining its channels. With ``websocket=True`` it speaks IRC over a WebSocket
(websocket.py) instead of a plain TCP stream. With ``sasl=(account, password)``
it logs in while registering (sasl.py: SCRAM-SHA-256, or PLAIN over TLS or to
a loopback address) and reports the outcome as an event; a failed login still
registers, without an account.

It uses gevent's APIs explicitly and never monkey-patches.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import random
import ssl
from collections.abc import Callable, Iterable, Iterator

import gevent
from gevent import socket
from gevent import ssl as gssl
from gevent.event import AsyncResult, Event
from gevent.queue import Empty, Queue

from greenchat.client.events import (
    ClientEvent,
    Connected,
    Disconnected,
    GaveUp,
    MessageEvent,
    Reconnecting,
    Registered,
    SaslFailed,
    SaslSucceeded,
)
from greenchat.client.sasl import MECHANISMS, NUMERICS, SaslLogin, check_mechanisms, plain_safe
from greenchat.client.state import ChannelState, ClientState
from greenchat.client.websocket import WebSocketLink
from greenchat.protocol.casemap import casefold
from greenchat.protocol.framing import FramingError, LineFramer, LineTooLong
from greenchat.protocol.message import InvalidMessage, Message, parse, serialize, split_source

__all__ = ["DEFAULT_CAPS", "ClientError", "IrcClient", "JoinError"]

log = logging.getLogger("greenchat.client")

# Capabilities the client asks for when the server offers them.
DEFAULT_CAPS = (
    "server-time",
    "echo-message",
    "message-tags",
    "batch",
    "multi-prefix",
    "away-notify",
    "cap-notify",
)
# Errors a server answers a JOIN with, instead of the channel's NAMES.
JOIN_ERRORS = {"403", "405", "471", "473", "474", "475", "476", "477", "479"}
_SERVER_LINE_LIMIT = 64 * 1024  # servers may send long tagged lines; be lenient
_tokens = itertools.count(1)
# What a session reads and writes: a TCP (or TLS) socket, or a WebSocket over one.
_Stream = socket.socket | WebSocketLink


class ClientError(Exception):
    """The client cannot do what was asked (not connected, no reply in time...)."""


class JoinError(ClientError):
    def __init__(self, channel: str, numeric: str, text: str) -> None:
        super().__init__(f"cannot join {channel}: {text} ({numeric})")
        self.channel, self.numeric, self.text = channel, numeric, text


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _drain(queue: Queue) -> None:
    while True:
        try:
            queue.get_nowait()
        except Empty:
            return


class IrcClient:
    """One IRC connection, kept alive until :meth:`quit` or :meth:`close`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8546,
        nick: str = "guest",
        *,
        user: str | None = None,
        realname: str | None = None,
        password: str | None = None,
        channels: Iterable[str] = (),
        caps: Iterable[str] = DEFAULT_CAPS,
        tls: bool = False,
        tls_verify: bool = True,
        tls_cafile: str | None = None,
        reconnect: bool = True,
        max_retries: int | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        outbound_limit: int = 1000,
        connect_timeout: float = 10.0,
        websocket: bool = False,
        websocket_path: str = "/",
        sasl: tuple[str, str] | None = None,
        sasl_mechanisms: Iterable[str] = MECHANISMS,
        sasl_timeout: float = 15.0,
    ) -> None:
        """``websocket``: ``port`` is the server's web port (and ``tls`` means wss://).
        ``sasl``: (account, password) to log in with on every connection, trying
        ``sasl_mechanisms`` in order; a login not over within ``sasl_timeout`` is abandoned.
        """
        self.host, self.port = host, port
        self.wanted_nick = nick
        self.user = user or nick
        self.realname = realname or nick
        self.password = password
        self.wanted_caps = tuple(caps)
        self.tls, self.tls_verify, self.tls_cafile = tls, tls_verify, tls_cafile
        self.reconnect, self.max_retries = reconnect, max_retries
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.outbound_limit = outbound_limit
        self.connect_timeout = connect_timeout
        self.websocket, self.websocket_path = websocket, websocket_path
        self.sasl, self.sasl_mechanisms = sasl, check_mechanisms(sasl_mechanisms)
        self.sasl_timeout = sasl_timeout
        self.state = ClientState(nick)
        # Channels to be in: joined on every (re)connect.
        self.wanted_channels: dict[str, str] = {casefold(c): c for c in channels}
        # A tuple, replaced on (un)subscribe: emitting (once per server line) needs no copy.
        self._listeners: tuple[Callable[[ClientEvent], None], ...] = ()
        self._out: Queue | None = None  # the current session's outbound queue
        self._sock: _Stream | None = None
        self._supervisor: gevent.Greenlet | None = None
        self._closing = False
        self.registered = Event()
        self.stopped = Event()
        self._reading = Event()
        self._reading.set()
        self.last_error = ""
        self._cap_ls: dict[str, str] = {}  # offered capability -> its value
        self._login: SaslLogin | None = None  # the SASL login in progress
        self._login_timer: gevent.Greenlet | None = None
        self._peer_loopback = False

    # -- properties ------------------------------------------------------------

    @property
    def nick(self) -> str:
        return self.state.nick

    @property
    def caps(self) -> frozenset[str]:
        return frozenset(self.state.caps)

    @property
    def account(self) -> str:
        """The account we are logged in to ('' when none), as the server said (900)."""
        return self.state.account

    @property
    def connected(self) -> bool:
        return self._out is not None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> IrcClient:
        """Start connecting (and reconnecting) in the background."""
        if self._supervisor is None:
            self._supervisor = gevent.spawn(self._supervise)
        return self

    def connect(self, timeout: float = 10.0) -> IrcClient:
        """Start and wait until registered; raise :class:`ClientError` on failure."""
        self.start()
        gevent.wait([self.registered, self.stopped], timeout=timeout, count=1)
        if not self.registered.is_set():
            raise ClientError(f"not registered within {timeout}s: {self.last_error or 'no reply'}")
        return self

    def quit(self, reason: str = "", timeout: float = 5.0) -> None:
        """Send QUIT, wait for the server to close the connection, stop reconnecting."""
        self._closing = True
        if self._out is not None:
            self.send(Message("QUIT", (reason,) if reason else ()))
            self.stopped.wait(timeout)
        self.close()

    def close(self) -> None:
        """Stop at once: no QUIT, no reconnect."""
        self._closing = True
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self._supervisor is not None:
            if sock is not None:  # let the reader notice the closed socket and finish
                self._supervisor.join(timeout=2)
            self._supervisor.kill(block=False)  # e.g. asleep in a reconnect backoff
        self.stopped.set()

    def pause_reading(self) -> None:
        """Stop reading from the server: simulates a stuck client (load tests)."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    # -- events --------------------------------------------------------------

    def subscribe(self, listener: Callable[[ClientEvent], None]) -> Callable[[], None]:
        """Call ``listener(event)`` for every event (in the reader: it must not block).

        Returns a function that unsubscribes it.
        """
        self._listeners += (listener,)

        def unsubscribe() -> None:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

        return unsubscribe

    def events(self, timeout: float | None = None) -> Iterator[ClientEvent]:
        """Iterate over events as they come; ends after ``GaveUp`` or on ``timeout``."""
        queue: Queue = Queue()
        unsubscribe = self.subscribe(queue.put)
        try:
            while True:
                try:
                    event = queue.get(timeout=timeout)
                except Empty:
                    return
                yield event
                if isinstance(event, GaveUp):
                    return
        finally:
            unsubscribe()

    def _emit(self, event: ClientEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener %r failed", listener)

    # -- sending -------------------------------------------------------------

    def send(self, line: str | Message) -> None:
        """Queue one line; waits (cooperatively) while the outbound queue is full."""
        out = self._out
        if out is None:
            raise ClientError("not connected")
        text = serialize(line) if isinstance(line, Message) else line
        if "\r" in text or "\n" in text or "\0" in text:
            raise ClientError("a line cannot contain CR, LF or NUL")
        out.put(text.encode() + b"\r\n")

    def privmsg(self, target: str, text: str) -> None:
        self.send(Message("PRIVMSG", (target, text)))

    def notice(self, target: str, text: str) -> None:
        self.send(Message("NOTICE", (target, text)))

    def action(self, target: str, text: str) -> None:
        """``/me``: a CTCP ACTION."""
        self.privmsg(target, f"\x01ACTION {text}\x01")

    # -- waiting for replies ---------------------------------------------------

    def wait_for(self, match: Callable[[Message], bool], timeout: float = 10.0) -> Message:
        """The next message for which ``match`` is true; ClientError on timeout."""
        return self.request(None, match, timeout)

    def request(
        self, line: str | Message | None, until: Callable[[Message], bool], timeout: float = 10.0
    ) -> Message:
        """Send ``line`` and wait for the first reply that ``until`` accepts."""
        result: AsyncResult = AsyncResult()

        def listen(event: ClientEvent) -> None:
            if isinstance(event, MessageEvent) and not result.ready() and until(event.message):
                result.set(event.message)

        unsubscribe = self.subscribe(listen)
        try:
            if line is not None:
                self.send(line)
            return result.get(timeout=timeout)
        except gevent.Timeout as exc:
            raise ClientError(f"no reply within {timeout}s") from exc
        finally:
            unsubscribe()

    def sync(self, timeout: float = 10.0) -> None:
        """Round-trip a PING: everything sent before has been handled by the server."""
        token = f"sync{next(_tokens)}"
        self.request(
            Message("PING", (token,)),
            lambda m: m.command == "PONG" and m.params[-1:] == (token,),
            timeout,
        )

    def join(self, channel: str, key: str | None = None, timeout: float = 10.0) -> ChannelState:
        """Join and wait for the end of NAMES; :class:`JoinError` if refused."""
        self.wanted_channels[casefold(channel)] = channel
        folded = casefold(channel)
        if folded in self.state.channels:  # servers say nothing to a repeated JOIN
            return self.state.channels[folded]

        def done(m: Message) -> bool:
            about = len(m.params) > 1 and casefold(m.params[1]) == folded
            return about and (m.command == "366" or m.command in JOIN_ERRORS)

        params = (channel, key) if key else (channel,)
        reply = self.request(Message("JOIN", params), done, timeout)
        if reply.command != "366":
            self.wanted_channels.pop(folded, None)
            raise JoinError(channel, reply.command, reply.params[-1])
        return self.state.channels[folded]

    def part(self, channel: str, reason: str = "") -> None:
        self.wanted_channels.pop(casefold(channel), None)
        self.send(Message("PART", (channel, reason) if reason else (channel,)))

    # -- the connection loop ---------------------------------------------------

    def _supervise(self) -> None:
        attempt = 0
        try:
            while not self._closing:
                reason, connected, registered = self._one_session()
                if registered:
                    attempt = 0
                self.last_error = reason
                if self._closing:
                    self._emit(Disconnected(reason, False, connected))
                    return
                retries_left = self.max_retries is None or attempt < self.max_retries
                if not (self.reconnect and retries_left):
                    self._emit(Disconnected(reason, False, connected))
                    self._emit(GaveUp(attempt, reason))
                    return
                attempt += 1
                delay = self._backoff(attempt)
                self._emit(Disconnected(reason, True, connected))
                self._emit(Reconnecting(attempt, delay, self.max_retries))
                gevent.sleep(delay)
        finally:
            self.stopped.set()

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: half to all of base * 2^(attempt-1), capped."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)

    def _open(self) -> _Stream:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        self._peer_loopback = _is_loopback(sock.getpeername()[0])
        if self.tls:
            sock = self._tls_context().wrap_socket(sock, server_hostname=self.host)
        sock.settimeout(None)
        return self._upgrade(sock) if self.websocket else sock

    def _upgrade(self, sock: socket.socket) -> WebSocketLink:
        """The WebSocket handshake; a refusal (HandshakeError) is an OSError like ECONNREFUSED."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        link = WebSocketLink(sock, f"{host}:{self.port}", self.websocket_path)
        try:
            link.handshake(self.connect_timeout)
        except OSError:
            link.close()
            raise
        return link

    def _tls_context(self) -> gssl.SSLContext:
        # gevent.ssl.create_default_context() would return the stdlib's
        # (blocking) context class: build gevent's cooperative one directly.
        context = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.tls_cafile:
            context.load_verify_locations(self.tls_cafile)
        else:
            context.load_default_certs()
        return context

    def _one_session(self) -> tuple[str, bool, bool]:
        """Connect, register, read until the connection ends: (reason, connected, registered)."""
        self.registered.clear()
        self.state.reset(self.wanted_nick)
        try:
            sock = self._open()
        except (OSError, ssl.SSLError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            return f"cannot connect to {self.host}:{self.port}: {why}", False, False
        self._sock = sock
        self._out = Queue(self.outbound_limit)
        writer = gevent.spawn(self._write_loop, sock, self._out)
        self._emit(Connected(self.host, self.port, self.tls))
        try:
            self._begin_registration()
            reason = self._read_loop(sock)
        except (OSError, ssl.SSLError) as exc:
            reason = f"connection lost: {exc}"
        finally:
            out, self._out = self._out, None
            out.put(None)  # let the writer finish what is queued, then stop
            writer.join(timeout=1)
            writer.kill(block=False)
            _drain(out)  # wake senders blocked on a full queue: the session is over
            with contextlib.suppress(OSError):
                sock.close()
            self._sock = None
            self._end_login()
            self.state.channels.clear()  # rejoined (from wanted_channels) on reconnect
        return reason, True, self.registered.is_set()

    def _write_loop(self, sock: _Stream, out: Queue) -> None:
        """Send what is queued, several lines per send."""
        with contextlib.suppress(OSError, ssl.SSLError):
            while (line := out.get()) is not None:
                batch = [line]
                while len(batch) < 256:
                    try:
                        more = out.get_nowait()
                    except Empty:
                        break
                    if more is None:
                        sock.sendall(b"".join(batch))
                        return
                    batch.append(more)
                sock.sendall(b"".join(batch))

    def _read_loop(self, sock: _Stream) -> str:
        framer = LineFramer(max_line=_SERVER_LINE_LIMIT, max_unterminated=_SERVER_LINE_LIMIT)
        error = ""
        while True:
            if not self._reading.is_set():
                self._reading.wait()  # paused: the server's lines pile up unread
            data = sock.recv(65536)
            if not data:
                return f"server closed the connection{': ' + error if error else ''}"
            try:
                items = framer.feed(data)
            except FramingError:
                return "server sent a line without end"
            for item in items:
                if isinstance(item, LineTooLong):
                    continue
                try:
                    msg = parse(item.decode("utf-8", "replace"))
                except InvalidMessage:
                    continue
                if msg.command == "ERROR":
                    error = msg.params[-1] if msg.params else "ERROR"
                self._handle(msg)

    # -- incoming messages -------------------------------------------------------

    def _handle(self, msg: Message) -> None:
        command = msg.command.upper()
        if command == "PING":
            self.send(Message("PONG", msg.params))
        elif command == "CAP":
            self._on_cap(msg)
        elif self._login is not None and (command == "AUTHENTICATE" or command in NUMERICS):
            self._on_sasl(self._login, msg)
        elif command == "001":
            self._on_welcome(msg)
        elif command in ("432", "433") and not self.registered.is_set():
            self._next_nick(msg)
        elif command == "NICK" and self.state.is_me(split_source(msg.source or "")[0]):
            self.wanted_nick = msg.params[0]  # keep it across reconnects
        self.state.apply(msg)
        self._emit(MessageEvent(msg))

    def _begin_registration(self) -> None:
        self._cap_ls = {}
        if self.wanted_caps or self.sasl:
            self.send("CAP LS 302")
        if self.password:
            self.send(Message("PASS", (self.password,)))
        self.send(Message("NICK", (self.wanted_nick,)))
        self.send(Message("USER", (self.user, "0", "*", self.realname)))

    def _on_cap(self, msg: Message) -> None:
        sub = msg.params[1].upper() if len(msg.params) > 1 else ""
        words = msg.params[-1].split() if len(msg.params) > 2 else []
        if sub == "LS":
            self._cap_ls.update(word.partition("=")[::2] for word in words)
            if msg.params[2] == "*":
                return  # more LS lines follow
            wanted = [c for c in self.wanted_caps if c in self._cap_ls]
            if not self.registered.is_set() and self._plan_login():
                wanted.append("sasl")
            if wanted:
                self.send(Message("CAP", ("REQ", " ".join(wanted))))
            elif not self.registered.is_set():
                self.send("CAP END")
        elif sub in ("ACK", "NAK"):
            if sub == "ACK":
                for word in words:
                    if word.startswith("-"):
                        self.state.caps.discard(word[1:])
                    else:
                        self.state.caps.add(word)
            if self.registered.is_set():
                return
            login = self._login
            if login is not None and not login.mechanism and "sasl" in self.state.caps:
                self._begin_login(login)  # CAP END once it is over
                return
            if login is not None:
                login.give_up("the server refused the sasl capability")
                self._finish_login(login)
            self.send("CAP END")
        elif sub == "DEL":
            self.state.caps.difference_update(words)

    # -- SASL (the exchange itself is sasl.py's) -------------------------------------

    def _plan_login(self) -> bool:
        """With credentials, at the end of CAP LS: whether to ask for ``sasl``."""
        if self.sasl is None:
            return False
        safe = plain_safe(self.tls, self._peer_loopback)
        login = SaslLogin(*self.sasl, mechanisms=self.sasl_mechanisms, plain_safe=safe)
        if not login.plan(self._cap_ls.get("sasl")):
            self._finish_login(login)  # registration goes on without an account
            return False
        self._login = login
        return True

    def _begin_login(self, login: SaslLogin) -> None:
        for line in login.begin():
            self.send(line)
        self._login_timer = gevent.spawn_later(self.sasl_timeout, self._login_timed_out, login)

    def _on_sasl(self, login: SaslLogin, msg: Message) -> None:
        for line in login.feed(msg):
            self.send(line)
        if login.done:
            self._finish_login(login)
            if not self.registered.is_set():
                self.send("CAP END")

    def _login_timed_out(self, login: SaslLogin) -> None:
        if self._login_timer is gevent.getcurrent():
            self._login_timer = None  # this greenlet: not for _end_login to kill
        if login is not self._login:
            return
        with contextlib.suppress(ClientError):  # the connection may be going
            for line in login.give_up(f"no answer to SASL within {self.sasl_timeout:g} s"):
                self.send(line)
            self._finish_login(login)
            if not self.registered.is_set():
                self.send("CAP END")

    def _finish_login(self, login: SaslLogin) -> None:
        """The login is over: say how it went."""
        self._end_login()
        if login.succeeded:
            self._emit(SaslSucceeded(self.state.account or login.account, login.mechanism))
            return
        log.debug("SASL login as %s failed: %s", login.account, login.reason)
        self._emit(SaslFailed(login.account, login.reason, login.numeric))

    def _end_login(self) -> None:
        self._login = None
        timer, self._login_timer = self._login_timer, None
        if timer is not None:
            timer.kill(block=False)

    def _on_welcome(self, msg: Message) -> None:
        self.state.nick = msg.params[0]
        self.registered.set()
        self._emit(Registered(self.state.nick, frozenset(self.state.caps)))
        for channel in self.wanted_channels.values():
            self.send(Message("JOIN", (channel,)))

    def _next_nick(self, msg: Message) -> None:
        """Nick taken or refused during registration: try another one."""
        tried = msg.params[1] if len(msg.params) > 2 else self.state.nick
        if msg.command == "432":  # refused outright: fall back to a safe name
            candidate = f"guest{random.randrange(1000, 10000)}"
        elif len(tried) < 16:
            candidate = tried + "_"
        else:
            candidate = f"{self.wanted_nick[:12]}{random.randrange(1000, 10000)}"
        self.state.nick = candidate
        self.send(Message("NICK", (candidate,)))
