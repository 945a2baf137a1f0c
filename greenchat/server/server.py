"""The chat server: accepts connections and ties connections, hub and commands together.

One gevent ``StreamServer`` with a ``Pool`` sized by ``max_clients`` runs one
:class:`Connection` reader per client. A keepalive greenlet sweeps all
connections periodically: it PINGs quiet clients, drops those that never
answer and those that never finish registering.
"""

from __future__ import annotations

import logging
import socket
import time

import gevent
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer

from greenchat.protocol.message import Message
from greenchat.protocol.numerics import ERR_UNKNOWNERROR
from greenchat.server.commands import dispatch
from greenchat.server.config import ServerConfig
from greenchat.server.connection import Connection
from greenchat.server.flusher import Flusher
from greenchat.server.hub import Hub
from greenchat.server.labeled import send_labeled

__all__ = ["ChatServer"]

log = logging.getLogger("greenchat.server")

# Capabilities fully implemented (name -> CAP LS 302 value). cap-notify only
# promises that a change of this list would be announced; it never changes
# at run time.
SUPPORTED_CAPS = {
    "away-notify": "",
    "batch": "",
    "cap-notify": "",
    "chghost": "",
    "echo-message": "",
    "extended-join": "",
    "extended-monitor": "",
    "invite-notify": "",
    "labeled-response": "",
    "message-tags": "",
    "multi-prefix": "",
    "server-time": "",
    "setname": "",
    "standard-replies": "",
    "userhost-in-names": "",
}


class ChatServer:
    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.config.load_motd()
        self.hub = Hub()
        self.flusher = Flusher()
        self.supported_caps = dict(SUPPORTED_CAPS)
        self.created_text = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self.pool = Pool(self.config.max_clients)
        self._stream = StreamServer(
            (self.config.host, self.config.port), self._handle, spawn=self.pool
        )
        self._keepalive: gevent.Greenlet | None = None
        self.stopping = False
        self._stopped = Event()

    # -- lifecycle -----------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): with port 0 this is the port the OS chose."""
        return self._stream.address[0], self._stream.server_port

    def start(self) -> None:
        self._stream.start()
        self._keepalive = gevent.spawn(self._keepalive_loop)
        host, port = self.address
        log.info("greenchat listening on %s:%s as %s", host, port, self.config.name)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block this greenlet until :meth:`stop` has finished."""
        return self._stopped.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, tell every client, let writers flush, then close."""
        if self.stopping:
            return
        self.stopping = True
        log.info("shutting down: %d connections", len(self.hub.connections))
        self._stream.close()
        if self._keepalive is not None:
            self._keepalive.kill(block=False)
        for conn in list(self.hub.connections):
            conn.disconnect("Server shutting down", error="Server shutting down")
        self.pool.join(timeout=timeout)
        self.pool.kill(block=True, timeout=1)
        self._stream.stop(timeout=0)
        self._stopped.set()
        log.info("stopped")

    # -- per connection ------------------------------------------------------

    def _handle(self, sock: socket.socket, address: tuple) -> None:
        if self.config.tcp_nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(self, sock, address)
        self.hub.add_connection(conn)
        log.info("connect from %s:%s", address[0], address[1])
        if self.stopping:
            conn.disconnect("Server shutting down", error="Server shutting down")
        conn.serve()

    def dispatch(self, conn: Connection, msg: Message) -> None:
        """Run one command; a bug in a handler costs that command, not the server."""
        label = msg.tags.get("label") if msg.tags else None
        if label and conn.has_cap("labeled-response"):
            captured = conn.capture_output()
            try:
                self._run(conn, msg)
            finally:
                conn.release_output()
            send_labeled(self, conn, label, captured)
        else:
            self._run(conn, msg)

    def _run(self, conn: Connection, msg: Message) -> None:
        try:
            dispatch(self, conn, msg)
        except Exception:
            log.exception("error handling %r from %r", msg, conn)
            conn.numeric(ERR_UNKNOWNERROR, msg.command.upper()[:20] or "*", "Internal error")

    # -- keepalive -----------------------------------------------------------

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
        for conn in list(self.hub.connections):
            if conn.close_reason is not None:
                continue
            if not conn.registered and now - conn.connected_at > cfg.registration_timeout:
                conn.disconnect("Registration timed out")
                continue
            quiet = now - conn.last_active
            if quiet > cfg.ping_interval + cfg.ping_timeout:
                conn.disconnect(f"Ping timeout: {int(quiet)} seconds")
            elif quiet > cfg.ping_interval and not conn.ping_sent:
                conn.ping_sent = True
                conn.enqueue(ping)
