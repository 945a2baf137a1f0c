"""A locust ``User`` that chats over IRC, built on greenchat's client library.

Every simulated user is one :class:`greenchat.client.IrcClient`. Timings go
to locust as request events:

* ``connect``  - TCP (and TLS, and the WebSocket handshake) connect;
* ``register`` - from connected to the 001 welcome;
* ``join``     - from JOIN to the end of NAMES;
* ``login``    - with ``--sasl``: from connected to SASL SCRAM-SHA-256's 903, the
  account being the user's nick and the password ``--sasl-password``. On first use
  the login fails (904: no such account), so the user makes the account itself
  (NickServ REGISTER, timed as ``create-account``), reconnects and logs in,
  waiting as long as the server's failed-login limit says; a second run against
  the same server (once that limit has passed) measures logins only. Nicks are
  stable under ``--sasl`` (``ls<worker>x<n>``) so a second run finds its accounts;
* ``deliver``  - from a sender's send to a receiver's receipt. The sender puts
  a token in the text (``gc1 <sender> <seq> <send time ns>``); the receiver
  reads it back. Only every k-th delivery per receiver is reported as an
  event (``--sample-every``), so locust's own bookkeeping stays small; the
  rest are counted (``DELIVERIES``) and summed up when the test ends.

Disconnects, ``ERROR`` lines and timeouts are failures carrying the server's
text.

``--host`` is the server's IRC port (``irc://``, ``ircs://``) or its web port
(``ws://``, ``wss://``): then every user speaks IRC over WebSocket.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import time
from collections import Counter
from typing import NamedTuple
from urllib.parse import urlsplit

import gevent
from locust import User, events
from locust.exception import StopUser

from greenchat.client import (
    ClientError,
    Connected,
    Disconnected,
    IrcClient,
    JoinError,
    MessageEvent,
    Registered,
    SaslFailed,
    SaslSucceeded,
)
from greenchat.protocol.message import Message, split_source

TOKEN = "gc1"
# Counted deliveries of this process, sampled or not, and failures by kind.
DELIVERIES: Counter[str] = Counter()
_ids = itertools.count(1)
# Nicks of this process's registered users, for the dms scenario.
ONLINE: dict[str, None] = {}
# --sasl: connections one login may take (fail, create the account, be told to wait, log in).
LOGIN_ATTEMPTS = 4
# The server's 904 text while failed logins from an address (or for an account) are limited.
_RETRY_AFTER = re.compile(r"try again in (\d+) seconds?")


# Default ports: the server's IRC port, and its web port for WebSocket.
_PORTS = {"irc": 8546, "ircs": 8546, "ws": 8547, "wss": 8547}


class Target(NamedTuple):
    """Where to connect, parsed from ``--host``."""

    host: str
    port: int
    tls: bool  # ircs:// or wss://
    websocket: bool  # ws:// or wss://
    path: str = "/"


def parse_host(host: str | None) -> Target:
    """``irc://HOST:PORT`` (``ircs://`` for TLS, or plain ``HOST:PORT``), or the
    WebSocket on the web port: ``ws://HOST:PORT/`` (``wss://`` for TLS)."""
    host = host or "irc://127.0.0.1:8546"
    if "://" not in host:
        host = "irc://" + host
    parts = urlsplit(host)
    if parts.scheme not in _PORTS:
        raise ValueError(f"--host must look like irc://HOST:PORT or ws://HOST:PORT/, not {host!r}")
    return Target(
        parts.hostname or "127.0.0.1", parts.port or _PORTS[parts.scheme],
        tls=parts.scheme in ("ircs", "wss"), websocket=parts.scheme in ("ws", "wss"),
        path=parts.path or "/",
    )  # fmt: skip


def websocket_target(target: Target, ws_host: str | None) -> Target:
    """Where a user that always speaks WebSocket connects: ``ws_host``, ``target``
    itself when it is a WebSocket, else the default web port on ``target``'s host
    (plain ws://: the server has no default port for wss://)."""
    if ws_host:
        return parse_host(ws_host)
    if target.websocket:
        return target
    host = f"[{target.host}]" if ":" in target.host else target.host  # IPv6
    return parse_host(f"ws://{host}:{_PORTS['ws']}/")


def _ms(seconds: float) -> float:
    return seconds * 1000.0


class IrcUser(User):
    """Connects, registers, joins :meth:`channels_to_join` and chats.

    Subclasses choose channels and what one ``chat`` step does; rates and
    sizes come from the command-line options in locustfile.py.
    """

    abstract = True
    websocket = False  # True: over WebSocket whatever --host is (see websocket_target)
    client: IrcClient

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.options = environment.parsed_options
        self.number = next(_ids)
        self.nick = f"u{os.getpid() % 10000}x{self.number}"
        if self.options.sasl:  # the same nicks every run: accounts made once are found again
            self.nick = f"ls{getattr(environment.runner, 'worker_index', 0)}x{self.number}"
        self.seq = 0
        self.leaving = False
        self.stuck = False  # stopped reading on purpose (slow-reader scenario)
        self.stuck_since = 0.0
        self.channels: list[str] = []

    # -- lifecycle -------------------------------------------------------------

    def on_start(self) -> None:
        self.connect()
        for channel in self.channels_to_join():
            self.join(channel)

    def on_stop(self) -> None:
        self.disconnect()

    def channels_to_join(self) -> list[str]:
        return []

    def connect(self) -> None:
        """Connect and register; with ``--sasl`` also log in (making the account first)."""
        failed = self._open()
        tried_creating = False
        for _ in range(LOGIN_ATTEMPTS - 1):
            if failed is None:
                return
            created = False
            if failed.numeric == "904" and not tried_creating:  # no account yet: a first run
                tried_creating, created = True, self._create_account()
            # The server limits failed logins per address, and says how long to wait.
            wait = _RETRY_AFTER.search(failed.reason)
            delay = int(wait.group(1)) if wait else 0
            if not (created or wait) or delay > self.options.irc_timeout:
                break  # e.g. a wrong --sasl-password: no retry mends that
            self.disconnect()
            gevent.sleep(delay)
            failed = self._open()
        if failed is not None:
            self._failure("login", failed.reason)

    def _open(self) -> SaslFailed | None:
        """One connection, registered: the SASL failure if --sasl did not log in."""
        target = parse_host(self.host)
        if self.websocket:
            target = websocket_target(target, self.options.ws_host)
        self.leaving = False
        sasl = (self.nick, self.options.sasl_password) if self.options.sasl else None
        self.client = IrcClient(
            target.host, target.port, self.nick, caps=("server-time",), tls=target.tls,
            tls_verify=False, reconnect=False, connect_timeout=self.options.irc_timeout,
            websocket=target.websocket, websocket_path=target.path,
            sasl=sasl, sasl_mechanisms=("SCRAM-SHA-256",),
        )  # fmt: skip
        self.client.subscribe(self._on_event)
        started = time.perf_counter()
        marks: dict[str, float] = {}
        failures: list[SaslFailed] = []
        unsubscribe = self.client.subscribe(lambda e: self._mark(e, marks, failures))
        try:
            self.client.connect(timeout=self.options.irc_timeout)
        except ClientError as exc:
            unsubscribe()
            name = "register" if "connected" in marks else "connect"
            self._fail(name, started, exc)
            self.client.close()
            raise StopUser() from exc
        unsubscribe()
        self._fire("connect", marks["connected"] - started)
        self._fire("register", marks["registered"] - marks["connected"])
        if "login" in marks:
            self._fire("login", marks["login"] - marks["connected"])
        ONLINE[self.client.nick] = None
        return failures[0] if failures else None

    def _create_account(self) -> bool:
        """NickServ REGISTER on this (unauthenticated) connection: whether it made one."""
        started = time.perf_counter()
        register = Message("PRIVMSG", ("NickServ", f"REGISTER {self.options.sasl_password}"))
        try:
            reply = self.client.request(register, _from_nickserv, self.options.irc_timeout)
        except ClientError as exc:
            self._fail("create-account", started, exc)
            return False
        text = reply.params[-1]
        if text.startswith("Account created"):
            self._fire("create-account", time.perf_counter() - started)
            return True
        if "already registered" not in text:  # there is one: the login failed for another reason
            self._failure("create-account", text)
        return False

    def stop_reading(self) -> None:
        """Become a slow reader: never read again, and expect to be dropped."""
        self.stuck, self.stuck_since = True, time.perf_counter()
        self.client.pause_reading()

    def disconnect(self) -> None:
        self.leaving = True
        ONLINE.pop(self.client.nick, None)
        self.client.quit("load test done", timeout=self.options.irc_timeout)

    def join(self, channel: str) -> None:
        started = time.perf_counter()
        try:
            self.client.join(channel, timeout=self.options.irc_timeout)
        except ClientError as exc:
            self._fail("join", started, exc)
            return
        self.channels.append(channel)
        self._fire("join", time.perf_counter() - started)

    # -- sending ---------------------------------------------------------------

    def say(self, target: str) -> None:
        """Send one token-carrying message of about ``--msg-size`` bytes."""
        self.seq += 1
        head = f"{TOKEN} {self.nick} {self.seq} {time.time_ns()} "
        padding = max(0, self.options.msg_size - len(head))
        try:
            self.client.privmsg(target, head + "x" * padding)
        except ClientError as exc:
            self._fail("send", time.perf_counter(), exc)
            raise StopUser() from exc
        DELIVERIES["sent"] += 1

    # -- receiving ---------------------------------------------------------------

    def _on_event(self, event) -> None:
        if isinstance(event, MessageEvent):
            message = event.message
            if message.command == "PRIVMSG":
                self._on_privmsg(message.params[-1])
            elif message.command == "ERROR" and not self.leaving:
                self._failure("error", message.params[-1] if message.params else "ERROR")
        elif isinstance(event, Disconnected) and not self.leaving:
            if self.stuck and "SendQ exceeded" in event.reason:
                # A reader that stopped reading is supposed to be dropped.
                DELIVERIES["sendq-drops"] += 1
                self._fire("sendq-drop", time.perf_counter() - self.stuck_since)
            else:
                self._failure("disconnect", event.reason)

    def _on_privmsg(self, text: str) -> None:
        if not text.startswith(TOKEN):
            return
        DELIVERIES["delivered"] += 1
        if DELIVERIES["delivered"] % self.options.sample_every:
            return
        sent_ns = int(text.split(" ", 4)[3])
        latency = (time.time_ns() - sent_ns) / 1e9
        self._fire("deliver", latency, request_type="IRC")

    @staticmethod
    def _mark(event, marks: dict[str, float], failures: list[SaslFailed]) -> None:
        if isinstance(event, Connected):
            marks["connected"] = time.perf_counter()
        elif isinstance(event, Registered):
            marks["registered"] = time.perf_counter()
        elif isinstance(event, SaslSucceeded):
            marks["login"] = time.perf_counter()
        elif isinstance(event, SaslFailed):
            failures.append(event)

    # -- locust events -----------------------------------------------------------

    def _fire(self, name: str, seconds: float, request_type: str = "IRC") -> None:
        events.request.fire(
            request_type=request_type, name=name, response_time=_ms(seconds),
            response_length=0, exception=None, context={},
        )  # fmt: skip

    def _fail(self, name: str, started: float, exc: Exception) -> None:
        detail = str(exc)
        if isinstance(exc, JoinError):
            detail = f"{exc.numeric} {exc.text}"
        elif getattr(self, "client", None) is not None and self.client.last_error:
            detail = f"{exc} ({self.client.last_error})"
        events.request.fire(
            request_type="IRC", name=name, response_time=_ms(time.perf_counter() - started),
            response_length=0, exception=Exception(detail), context={},
        )  # fmt: skip

    def _failure(self, name: str, text: str) -> None:
        DELIVERIES[f"failed:{name}"] += 1
        events.request.fire(
            request_type="IRC", name=name, response_time=0, response_length=0,
            exception=Exception(text), context={},
        )  # fmt: skip


def _from_nickserv(message: Message) -> bool:
    return message.command == "NOTICE" and split_source(message.source or "")[0] == "NickServ"


def zipf_room(rooms: int, exponent: float, rng: random.Random) -> int:
    """A room index in [0, rooms) drawn with probability proportional to 1/(i+1)^s."""
    weights = _zipf_weights(rooms, exponent)
    return rng.choices(range(rooms), cum_weights=weights)[0]


_WEIGHTS: dict[tuple[int, float], list[float]] = {}


def _zipf_weights(rooms: int, exponent: float) -> list[float]:
    key = (rooms, exponent)
    if key not in _WEIGHTS:
        total, cumulative = 0.0, []
        for i in range(rooms):
            total += 1.0 / (i + 1) ** exponent
            cumulative.append(total)
        _WEIGHTS[key] = cumulative
    return _WEIGHTS[key]
