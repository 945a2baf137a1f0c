"""The chat server: accepts connections and ties sessions, hub and commands together.

A gevent ``StreamServer`` (``listener.Listener``; a second one for TLS) runs
one :class:`Session` (session.py) reader per client in a ``Pool``. Admission is checked
first: past ``max_clients`` a new connection gets ``ERROR :Server full``, past
``max_per_ip`` from one address ``ERROR :Too many connections from your
address``. A keepalive greenlet sweeps all connections periodically: it PINGs
quiet clients, drops those that never answer and those that never finish
registering. :meth:`ChatServer.reload` applies a new configuration (SIGHUP).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING

import gevent
from gevent.event import Event
from gevent.pool import Pool

from greenchat.metrics import ServerMetrics
from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message
from greenchat.protocol.metadata import CAPABILITY as METADATA
from greenchat.protocol.metadata import capability_value as metadata_value
from greenchat.protocol.numerics import ERR_UNKNOWNERROR
from greenchat.server.caps import (
    CHANNEL_RENAME,
    EXTENDED_ISUPPORT,
    LANGUAGES_CAP,
    MULTILINE,
    NO_IMPLICIT_NAMES,
    PRE_AWAY,
    STS,
    languages_value,
    multiline_value,
    sts_value,
)
from greenchat.server.channel_registry import ChannelRegistry
from greenchat.server.commands import COMMANDS, dispatch, multiline
from greenchat.server.commands.accounts import CAPABILITY as ACCOUNT_REGISTRATION
from greenchat.server.commands.accounts import CAPABILITY_VALUE as ACCOUNT_REGISTRATION_VALUE
from greenchat.server.commands.channel_ops import renamed_replies
from greenchat.server.commands.sasl import MECHANISMS
from greenchat.server.config import OPTIONS, REDIS_DB, ConfigError, ServerConfig
from greenchat.server.events import KINDS
from greenchat.server.flusher import Flusher
from greenchat.server.history import CAPABILITY as HISTORY_CAPABILITY
from greenchat.server.history import EVENT_PLAYBACK, HistoryRecorder
from greenchat.server.hub import REDACTION, Hub
from greenchat.server.labeled import LabeledReply
from greenchat.server.lane import RegistrationLane
from greenchat.server.listener import (
    Listener,
    TlsHandshakeError,
    make_tls_context,
    show_address,
    tls_handshake,
)
from greenchat.server.login import LoginLimiter
from greenchat.server.memory import Trimmer
from greenchat.server.metrics_http import MetricsListener
from greenchat.server.paging import pace
from greenchat.server.read_markers import CAPABILITY as READ_MARKER
from greenchat.server.read_markers import ReadMarkers
from greenchat.server.session import Session
from greenchat.server.shared_store import StoreFollower
from greenchat.server.storage import Storage
from greenchat.server.transport import Transport, transport_for
from greenchat.server.web import WebHandler
from greenchat.services import SERVICES
from greenchat.store.base import AccountStore
from greenchat.store.sqlite import MEMORY, SqliteStore

if TYPE_CHECKING:
    from greenchat.backplane.redis import RedisBackplane
    from greenchat.server.user import User

__all__ = ["ChatServer"]

log = logging.getLogger("greenchat.server")

# Capabilities fully implemented (name -> CAP LS 302 value). cap-notify only
# promises that a change of this list would be announced; it never changes
# at run time.
SUPPORTED_CAPS = {
    "account-notify": "",
    "account-tag": "",
    "away-notify": "",
    "batch": "",
    "cap-notify": "",
    "chghost": "",
    ACCOUNT_REGISTRATION: ACCOUNT_REGISTRATION_VALUE,
    "echo-message": "",
    "extended-join": "",
    "extended-monitor": "",
    HISTORY_CAPABILITY: "",
    EVENT_PLAYBACK: "",
    "invite-notify": "",
    "labeled-response": "",
    "message-tags": "",
    "multi-prefix": "",
    REDACTION: "",
    READ_MARKER: "",
    "sasl": ",".join(MECHANISMS),
    "server-time": "",
    "setname": "",
    "standard-replies": "",
    "userhost-in-names": "",
    NO_IMPLICIT_NAMES: "",
    PRE_AWAY: "",
    EXTENDED_ISUPPORT: "",
    LANGUAGES_CAP: languages_value(),
    MULTILINE: multiline_value(),
    CHANNEL_RENAME: "",
    METADATA: metadata_value(),
}


# Offered only with --history: they read or change what is stored.
HISTORY_CAPS = (HISTORY_CAPABILITY, EVENT_PLAYBACK, REDACTION)

# Settings ChatServer reads only at start (their Option says restart=True).
RESTART_ONLY = frozenset(option.attr for option in OPTIONS if option.restart)

# Commands whose parameters are passwords: never written to the log.
SECRET_COMMANDS = frozenset({"PASS", "OPER", "AUTHENTICATE", "WEBIRC"})


class ChatServer:
    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.config.load_motd()
        self.metrics = ServerMetrics(COMMANDS, KINDS)
        self.hub = Hub(self.config.whowas_size, self.config.name)
        self.hub.observe(self.metrics.on_event)
        self.hub.observe(functools.partial(renamed_replies, self))
        # ChanServ's channels: restored by start(), their changes saved as they happen.
        self.channel_registry = ChannelRegistry(self.hub)
        self.hub.observe(self.channel_registry.on_event)
        # Every message, stored in batches off the loop (CHATHISTORY reads it back).
        self.history = HistoryRecorder(self)
        if self.config.history:
            self.hub.observe(self.history.on_event)
            self.hub.observe(self.history.before_event, before=True)
        # Another node's change of the store we share: our copies of it follow.
        self.hub.observe(StoreFollower(self).on_event)
        # Who read how far (MARKREAD), by account; the observer follows logins.
        self.read_markers = ReadMarkers(self)
        self.hub.observe(self.read_markers.on_event)
        self.sessions: set[Session] = set()  # the local ones, each with its user in the hub
        self.flusher = Flusher()
        # Work for connections still registering takes turns here (lane.py).
        self.registration_lane = RegistrationLane(self.config.registration_slice)
        self.supported_caps = dict(SUPPORTED_CAPS)
        if not self.config.history:
            for cap in HISTORY_CAPS:
                del self.supported_caps[cap]
        if self.config.verify_command is not None:  # new accounts need an e-mail address and VERIFY
            self.supported_caps[ACCOUNT_REGISTRATION] += ",email-required"
        self._sts_caps: dict[bool, dict[str, str]] = {}  # secure -> the caps with sts (caps_for)
        self.services = SERVICES  # NickServ...: casefolded nick -> Service
        self.login_limiter = LoginLimiter()  # failed logins, per address and per account
        # Every account's name, casefolded: a nick that is one is reserved (nick_guard.py).
        self.registered_nicks: set[str] = set()
        self.created_text = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self.pool = Pool()  # admission is counted in _admit, not by the pool
        self.per_ip: Counter[str] = Counter()
        self.trimmer = Trimmer()
        self._exempt = _networks(self.config.max_per_ip_exempt)
        cfg = self.config
        self._stream = Listener(
            (cfg.host, cfg.port), self._handle, spawn=self.pool, reuse_port=cfg.reuse_port
        )
        self._tls_stream: Listener | None = None
        self.tls_context = None
        if cfg.tls_port is not None or cfg.web_tls_port is not None:
            self.tls_context = _tls_context(cfg)
        if cfg.tls_port is not None:
            self._tls_stream = Listener(
                (cfg.host, cfg.tls_port), self._over_tls(self._handle), spawn=self.pool,
                reuse_port=cfg.reuse_port,
            )  # fmt: skip
        # The browser client and IRC over WebSocket (web.py).
        self.web_trusted_proxies = _networks(cfg.web_trusted_proxies)
        self._web_stream: Listener | None = None
        self._web_tls_stream: Listener | None = None
        self._web: WebHandler | None = None
        if cfg.web:
            self._web = web = WebHandler(self)
            self._web_stream = Listener(
                (cfg.web_host, cfg.web_port), web.handle, spawn=self.pool,
                reuse_port=cfg.reuse_port,
            )  # fmt: skip
            if cfg.web_tls_port is not None:
                self._web_tls_stream = Listener(
                    (cfg.web_host, cfg.web_tls_port), self._over_tls(web.handle),
                    spawn=self.pool, reuse_port=cfg.reuse_port,
                )  # fmt: skip
        self.metrics_listener: MetricsListener | None = None
        if self.config.metrics_port is not None:
            self.metrics_listener = MetricsListener(
                self, self.config.metrics_host, self.config.metrics_port
            )
        # Accounts and registered channels, opened by start() (a bad file refuses to
        # start before any port is bound) and closed by stop() once sessions are gone.
        self.storage: Storage | None = None
        # One node of a network over Redis (--backplane), started by start().
        self.backplane: RedisBackplane | None = None
        if self.config.backplane:
            # Imported only here: a single server does not load redis-py at all.
            from greenchat.backplane.redis import RedisBackplane

            self.backplane = RedisBackplane(self, self.config.backplane, self.config.network)
        self._keepalive: gevent.Greenlet | None = None
        self._lag_probe: gevent.Greenlet | None = None
        self.stopping = False
        self._stopped = Event()

    # -- lifecycle -----------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): with port 0 this is the port the OS chose."""
        return self._stream.address[0], self._stream.server_port

    def caps_for(self, transport: str) -> dict[str, str]:
        """What CAP LS offers a connection over ``transport``: with a TLS listener and
        --sts-duration, IRC over TCP and TLS also gets ``sts`` (a WebSocket does not)."""
        tls = self.tls_address
        duration = self.config.sts_duration
        if tls is None or duration is None or transport not in ("tcp", "tls"):
            return self.supported_caps
        secure = transport == "tls"
        caps = self._sts_caps.get(secure)
        if caps is None:
            policy = sts_value(secure, tls[1], duration)
            caps = self._sts_caps[secure] = {**self.supported_caps, STS: policy}
        return caps

    @property
    def tls_address(self) -> tuple[str, int] | None:
        return _bound(self._tls_stream)

    @property
    def web_address(self) -> tuple[str, int] | None:
        """Where the page and its WebSocket are (None with --no-web)."""
        return _bound(self._web_stream)

    @property
    def web_tls_address(self) -> tuple[str, int] | None:
        return _bound(self._web_tls_stream)

    def server_name_of(self, user: User) -> str:
        """The name of the server ``user`` is on (WHOIS 312, WHO): another node's, as
        it registered the user, or this one's."""
        if user.node and self.backplane is not None:
            return self.backplane.server_names.get(user.node, self.config.name)
        return self.config.name

    @property
    def _listeners(self) -> list[Listener]:
        streams = (self._stream, self._tls_stream, self._web_stream, self._web_tls_stream)
        return [stream for stream in streams if stream is not None]

    def _open_store(self) -> AccountStore:
        """The --db store: SQLite (a file, or memory), or the backplane's Redis."""
        if self.config.db != REDIS_DB:
            return SqliteStore(self.config.db)
        from greenchat.store.redis_store import RedisStore  # redis-py only when asked for

        return RedisStore(self.config.backplane, self.config.network)

    def start(self) -> None:
        """Open the database, then listen. StoreError (a database that cannot be used)
        or ListenError (a port that cannot be bound) leave nothing open."""
        self.storage = Storage.opening(self._open_store)
        started: list[Listener] = []
        try:
            self.storage.start_checkpoints()
            names = self.storage.run(self.storage.store.account_names)
            self.registered_nicks = {casefold(name) for name in names}
            self.channel_registry.load(self.storage)  # registered channels, in the hub
            if self.backplane is not None:  # in the network before the first client
                self.backplane.start()
            for stream in self._listeners:
                stream.start()
                started.append(stream)
            if self.metrics_listener is not None:
                self.metrics_listener.start()
        except BaseException:
            for stream in started:
                stream.close()
            self.channel_registry.close()
            self.storage.close()
            self.storage = None
            raise
        if self.config.history:
            self.history.start()
        self._keepalive = gevent.spawn(self._keepalive_loop)
        self._lag_probe = gevent.spawn(self._measure_loop_lag)
        # Worded unlike the "listening on" line cli.py prints on stdout: in a
        # terminal the two streams interleave.
        also = f", TLS on {show_address(*self.tls_address)}" if self.tls_address else ""
        if self.web_address is not None:
            also += f", web on http://{show_address(*self.web_address)}/"
        if self.web_tls_address is not None:
            also += f", https://{show_address(*self.web_tls_address)}/"
        if self.metrics_listener is not None:
            also += f", metrics on http://{show_address(*self.metrics_listener.address)}/metrics"
        also += f", accounts in {_where(self.config.db)}"
        log.info(
            "started %s (pid %d): IRC on %s%s",
            self.config.name,
            os.getpid(),
            show_address(*self.address),
            also,
        )

    def reload(self, new: ServerConfig) -> None:
        """Apply ``new`` (already checked) to the running server; nobody is dropped.

        Settings read only at start (addresses, ports, server name, WHOWAS
        size) keep their running values, with a warning. The MOTD and the TLS
        certificate are read again; a TLS file that does not load keeps the
        old certificate.
        """
        old = self.config
        if new.tls_port is not None and self._tls_stream is not None:
            try:
                self.tls_context = _tls_context(new)
            except ConfigError as exc:
                log.error("reload: keeping the old TLS certificate: %s", exc)
                new.tls_cert, new.tls_key = old.tls_cert, old.tls_key
        names = {option.attr: option.name for option in OPTIONS}
        changed = []
        for f in fields(old):
            value = getattr(new, f.name)
            if value == getattr(old, f.name):
                continue
            if f.name in RESTART_ONLY:
                log.warning("reload: %s changed; it takes effect after a restart", names[f.name])
                continue
            setattr(old, f.name, value)
            if f.name in names:  # not the derived motd_lines
                changed.append(names[f.name])
        self._exempt = _networks(old.max_per_ip_exempt)
        self._sts_caps.clear()  # --sts-duration, for the connections to come
        logging.getLogger().setLevel(old.log_level)
        for conn in self.sessions:
            conn.flood.burst, conn.flood.rate = old.flood_burst, old.flood_rate
        log.info("configuration reloaded; changed: %s", ", ".join(changed) or "nothing")

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block this greenlet until :meth:`stop` has finished."""
        return self._stopped.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, tell every client, let writers flush, then close."""
        if self.stopping:
            return
        self.stopping = True
        log.info("shutting down: %d connections", len(self.sessions))
        for stream in self._listeners:
            stream.close()
        if self._web is not None:
            self._web.close_idle()
        for greenlet in (self._keepalive, self._lag_probe):
            if greenlet is not None:
                greenlet.kill(block=False)
        self.trimmer.cancel()
        for conn in list(self.sessions):
            conn.disconnect("Server shutting down", error="Server shutting down")
        self.pool.join(timeout=timeout)
        self.pool.kill(block=True, timeout=1)
        for stream in self._listeners:
            stream.stop(timeout=0)
        if self.metrics_listener is not None:
            self.metrics_listener.stop()
        if self.backplane is not None:  # after the sessions: their QUITs reach the network
            self.backplane.stop()
        if self.storage is not None:  # after the sessions: none of them still waits on it
            self.channel_registry.close()  # what registered channels have not saved yet
            self.history.close()  # every message accepted is stored before the exit
            self.storage.close()
        self._stopped.set()
        log.info("stopped")

    # -- per connection ------------------------------------------------------

    def _handle(self, sock: socket.socket, address: tuple) -> None:
        self.serve_transport(transport_for(sock), address)

    def serve_transport(self, transport: Transport, address: tuple) -> None:
        """A session over ``transport`` (TCP, TLS, or a WebSocket past its handshake,
        web.py), once admitted; returns when it ends."""
        # Setting a session up is a turn of registration work too: a thousand
        # accepted at once would otherwise be set up in one pass of the loop.
        self.registration_lane.take_turn()
        if self.config.tcp_nodelay:
            transport.set_nodelay()
        refusal = self._admit(address[0])
        if refusal is not None:
            self._refuse(transport, address, refusal)
            return
        self.per_ip[address[0]] += 1
        counted = [address[0]]  # the address this connection counts for (WEBIRC moves it)
        try:
            self._serve(transport, address, counted)
        finally:
            self._release(counted[0])
            self.trimmer.disconnected(len(self.sessions))

    def _over_tls(self, handle: Callable[[socket.socket, tuple], None]):
        """``handle`` behind a TLS handshake (bounded in time); for both TLS listeners."""

        def handle_tls(sock: socket.socket, address: tuple) -> None:
            self.registration_lane.take_turn()  # a handshake costs a millisecond or two
            try:
                tls = tls_handshake(self.tls_context, sock, self.config.tls_handshake_timeout)
            except TlsHandshakeError as exc:
                log.info("TLS from %s:%s: %s", address[0], address[1], exc)
                return
            try:
                handle(tls, address)
            finally:
                tls.close()

        return handle_tls

    def _admit(self, ip: str) -> str | None:
        """Why a new connection from ``ip`` is refused, or None to accept it."""
        cfg = self.config
        if len(self.sessions) >= cfg.max_clients:
            return "Server full"
        if (
            cfg.max_per_ip
            and self.per_ip[ip] >= cfg.max_per_ip
            and not self.exempt_from_address_limits(ip)
        ):
            return "Too many connections from your address"
        return None

    def exempt_from_address_limits(self, ip: str) -> bool:
        """Whether ``ip`` is in max-per-ip-exempt (loopback by default): no limit per
        address applies to it (connections, failed logins)."""
        try:
            address = ipaddress.ip_address(ip.removeprefix("::ffff:"))
        except ValueError:
            return False
        return any(address in network for network in self._exempt)

    def _refuse(self, transport: Transport, address: tuple, reason: str) -> None:
        log.info("refused %s:%s: %s", address[0], address[1], reason)
        with contextlib.suppress(OSError), gevent.Timeout(1, False):
            transport.sendall(transport.final(f"ERROR :{reason}\r\n".encode()))

    def _release(self, ip: str) -> None:
        left = self.per_ip[ip] - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            del self.per_ip[ip]

    def readdress(self, conn: Session, ip: str) -> str | None:
        """WEBIRC: count ``conn`` for the user's own address ``ip`` instead of its
        gateway's, under the same limit per address; why not, or None once done."""
        counted = conn.counted_address
        if (
            self.config.max_per_ip
            and self.per_ip[ip] >= self.config.max_per_ip
            and not self.exempt_from_address_limits(ip)
        ):
            return "Too many connections from your address"
        self._release(counted[0])
        self.per_ip[ip] += 1
        counted[0] = ip
        return None

    def _serve(self, transport: Transport, address: tuple, counted: list[str]) -> None:
        conn = Session(self, transport, address)
        conn.counted_address = counted
        self.sessions.add(conn)
        self.hub.add_user(conn.user)
        self.trimmer.connected(len(self.sessions))
        log.info("connect from %s:%s", address[0], address[1])
        if self.stopping:
            conn.disconnect("Server shutting down", error="Server shutting down")
        conn.serve()

    def end_session(self, conn: Session, reason: str) -> None:
        """``conn``'s reader is finishing: the network forgets its user (QUIT to peers)."""
        self.sessions.discard(conn)
        self.hub.remove_user(conn.user, reason)

    def dispatch(self, conn: Session, msg: Message) -> None:
        """Run one command; a bug in a handler costs that command, not the server."""
        if conn.incoming_batch is not None and multiline.collect(self, conn, msg):
            return  # a line of a multiline message, sent when its batch closes
        label = msg.tags.get("label") if msg.tags else None
        if msg.params and msg.command.upper() == "BATCH":  # draft/multiline
            if msg.params[0].startswith("+"):
                label = None  # opening: the reply, and its label, come at the close
            elif conn.incoming_batch is not None:
                label = conn.incoming_batch.tags.get("label")  # closing: the opener's
        if label and conn.has_cap("labeled-response"):
            reply = LabeledReply(self, conn, label)
            reply.capture()
            try:
                self._run(conn, msg, reply.waiting)
            finally:
                reply.release()
            reply.finish()
        else:
            self._run(conn, msg)

    def _run(self, conn: Session, msg: Message, waiting: Callable[[], int] | None = None) -> None:
        try:
            pages = dispatch(self, conn, msg)
            if pages is not None:
                pace(conn, pages, waiting or (lambda: conn.sendq.size))
        except Exception:
            shown = msg.command if msg.command.upper() in SECRET_COMMANDS else repr(msg)
            log.exception("error handling %s from %r", shown, conn)
            conn.numeric(ERR_UNKNOWNERROR, msg.command.upper()[:20] or "*", "Internal error")

    # -- keepalive -----------------------------------------------------------

    def _measure_loop_lag(self, period: float = 0.1) -> None:
        """How late a timer fires: the time every greenlet waits for the loop."""
        while True:
            start = time.monotonic()
            gevent.sleep(period)
            self.metrics.loop_lag.observe(max(0.0, time.monotonic() - start - period))

    def _keepalive_loop(self) -> None:
        cfg = self.config
        period = max(0.05, min(cfg.ping_interval, cfg.ping_timeout, cfg.registration_timeout) / 4)
        while True:
            gevent.sleep(period)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """PING quiet clients; drop the silent and the never-registered."""
        cfg = self.config
        ping = f"PING :{cfg.name}\r\n".encode()
        for conn in list(self.sessions):
            if conn.close_reason is not None:
                continue
            if not conn.user.registered and now - conn.connected_at > cfg.registration_timeout:
                conn.disconnect("Registration timed out")
                continue
            quiet = now - conn.last_active
            if quiet > cfg.ping_interval + cfg.ping_timeout:
                conn.disconnect(f"Ping timeout: {int(quiet)} seconds")
            elif quiet > cfg.ping_interval and not conn.ping_sent:
                conn.ping_sent = True
                conn.enqueue(ping)


def _bound(stream: Listener | None) -> tuple[str, int] | None:
    """A listener's bound (host, port): with port 0, the port the OS chose."""
    if stream is None:
        return None
    return stream.address[0], stream.server_port


def _where(db: str) -> str:
    """Where the accounts are kept, for the start log line."""
    if db == REDIS_DB:
        return "the backplane's Redis"
    if db == MEMORY:
        return f"memory ({MEMORY}: nothing is kept after a stop)"
    return os.path.abspath(db)


def _networks(cidrs: list[str]) -> list:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def _tls_context(config: ServerConfig):
    try:
        return make_tls_context(config.tls_cert, config.tls_key, config.tls_client_ca)
    except OSError as exc:  # SSLError included
        raise ConfigError(f"tls-cert/tls-key/tls-client-ca: cannot load: {exc}") from None
