"""One local connection, the :class:`Session`: a reader loop, output flushing, and the
local :class:`~greenchat.server.user.User` it owns.

The reader (the greenlet the StreamServer spawned) reads chunks from the
transport (transport.py: TCP or TLS), frames them into lines and dispatches
each through the command table; it yields after every chunk so output is
flushed before one sender's burst fills other queues. Output is sent by the
server's flusher (flusher.py) once per loop turn with one non-blocking send
of everything queued; only when the socket cannot take it all does a writer
greenlet start, wait for the socket and end once the queue is drained. So an
idle connection costs one greenlet.

Closing is cooperative: :meth:`Session.disconnect` only sets a reason,
queues a final ``ERROR`` and wakes the reader (the transport shuts the read
side), so it is safe to call from anywhere, even in the middle of a fan-out
loop. The reader then sees end-of-stream and cleans up: the hub forgets the
user, the last output is flushed (with a short grace period if a writer has
to wait), the transport closes.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import gevent

from greenchat.protocol.caps import CapNegotiation
from greenchat.protocol.framing import FramingError, LineTooLong
from greenchat.protocol.message import InvalidMessage, Message, clip_line, middle_or_star, parse
from greenchat.protocol.numerics import ERR_INPUTTOOLONG, ERR_UNKNOWNERROR
from greenchat.protocol.websocket import BadLine, Closed
from greenchat.server.flood import TokenBucket
from greenchat.server.outgoing import Relay
from greenchat.server.sendq import SendQueue
from greenchat.server.transport import RECV_BYTES, Transport, transport_for
from greenchat.server.user import User

if TYPE_CHECKING:
    from greenchat.server.commands.sasl import SaslAttempt
    from greenchat.server.server import ChatServer

__all__ = ["Session", "current_session", "display_host"]

log = logging.getLogger("greenchat.session")

# The session whose reader runs in each greenlet: what a handler that waits for
# the network uses to pause its labeled reply's capture (backplane/redis.py).
_BY_GREENLET: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def current_session() -> Session | None:
    """The session this greenlet reads for, or None (the loop, the backplane...)."""
    return _BY_GREENLET.get(gevent.getcurrent())


_COMMAND_WORD = re.compile(rb"^[A-Za-z]+$|^[0-9]{3}$")


def display_host(address: str) -> str:
    """The address as a hostname: IPv4-mapped IPv6 unmapped, and never starting
    with ':' (``::1`` -> ``0::1``, as Ergo does), so it can stand as a parameter."""
    if address.startswith("::ffff:") and "." in address:
        return address[7:]
    return "0" + address if address.startswith(":") else address


def _line_bytes(item: bytes | LineTooLong | BadLine | Closed) -> int:
    if type(item) is bytes:
        return len(item)
    return item.length if isinstance(item, LineTooLong) else 0


def _command_word(line: bytes) -> str:
    """The command of a raw line, upper-cased, or '*' when there is none to name."""
    words = [w for w in line.split(b" ") if w and not w.startswith((b"@", b":"))]
    if words and _COMMAND_WORD.match(words[0]):
        return words[0].decode("ascii").upper()
    return "*"


class Session:
    """One local connection: its transport, reader, framer, flood bucket, send
    queue and capabilities. It owns the local :class:`User` the network sees."""

    __slots__ = (
        "_capture",
        "_paused",
        "batched_lines",
        "caps",
        "close_reason",
        "connected_at",
        "counted_address",
        "flood",
        "incoming_batch",
        "last_active",
        "output_held",
        "password",
        "ping_sent",
        "port",
        "pre_away",
        "put_line",
        "sasl",
        "sendq",
        "server",
        "transport",
        "user",
        "webirc_gateway",
        "writer",
    )

    def __init__(self, server: ChatServer, sock: socket.socket | Transport, address: tuple) -> None:
        self.server = server
        self.transport = sock if isinstance(sock, Transport) else transport_for(sock)
        self.port = address[1]
        self.sendq = SendQueue(server.config.sendq, self._waker(), self._sendq_overflow, self)
        self.writer: gevent.Greenlet | None = None
        cfg = server.config
        self.flood = TokenBucket(cfg.flood_burst, cfg.flood_rate, time.monotonic())
        self.password: str | None = None
        self.pre_away = ""  # draft/pre-away: the AWAY sent before registration
        self.incoming_batch = None  # a draft/multiline message being received
        self.batched_lines = 0  # lines taken into multiline batches (flood control)
        self.webirc_gateway = ""  # the WEBIRC gateway this connection came through
        self.counted_address = [address[0]]  # the per-address count it is in (server.py)
        self.caps = CapNegotiation(server.caps_for(self.transport.name))
        self.close_reason: str | None = None
        self.connected_at = self.last_active = time.monotonic()
        self.ping_sent = False
        self.output_held = False  # hold_flushes: flushes wait for release_flushes
        self.sasl: SaslAttempt | None = None  # an AUTHENTICATE login in progress
        # Where this client's lines go: into the send queue as they are, or for a
        # WebSocket as frames (transport.py).
        self.put_line = self.transport.line_writer(self.sendq.put)
        self.user = User(display_host(address[0]), address[0], self.put_line, self.caps, self)
        self._capture: list[bytes] | None = None  # a labeled reply being gathered
        self._paused: list[bytes] | None = None  # that reply, while the command waits
        self._route()

    def __repr__(self) -> str:
        return f"<Session {self.user.nick or '*'} {self.user.ip}:{self.port}>"

    # -- identity ------------------------------------------------------------

    def has_cap(self, name: str) -> bool:
        return name in self.caps.enabled

    @property
    def target(self) -> str:
        """How numerics address this client: its nick, or '*' before it has one."""
        return self.user.nick or "*"

    # -- output --------------------------------------------------------------

    @property
    def enqueue(self) -> Callable[[bytes], None]:
        """Where this client's output goes: its user's, so a capture catches fan-out too."""
        return self.user.enqueue

    def send(self, msg: Message) -> None:
        # Clipped like numerics: PONG, CAP NAK and the like echo what the client sent.
        self.user.enqueue(clip_line(msg.to_bytes()))

    def fail(self, command: str, code: str, *params: str) -> None:
        """A standard reply: ``FAIL <command> <code> <context...> :<text>``, the text
        last. What the client sent is echoed only where it can stand as a word."""
        words = tuple(map(middle_or_star, params[:-1]))
        self.send(Message("FAIL", (command, code, *words, params[-1]), self.server.config.name))

    def send_relay(self, relay: Relay) -> None:
        """Queue a relayed event in the form this client's capabilities ask for."""
        self.user.send_relay(relay)

    def capture(self, lines: list[bytes]) -> None:
        """Collect what is queued to this client in ``lines`` instead (labeled.py)."""
        self._capture = lines
        self._route()

    def release_output(self) -> None:
        """Queue output for sending again, after a capture."""
        self._capture = None
        self._route()

    @contextlib.contextmanager
    def uncaptured(self) -> Iterator[None]:
        """Send output straight to the queue for a while, e.g. while a labeled
        command waits and other greenlets fan out to this client."""
        capture, self._capture = self._capture, None
        self._paused = capture
        self._route()
        try:
            yield
        finally:
            self._paused = None
            self._capture = capture
            self._route()

    def resume_capture(self) -> None:
        """The change a waiting labeled command proposed is being applied (by the
        backplane's listener): from now its output goes into the command's reply again,
        as it would have on one server, until the command goes on."""
        if self._paused is not None and self._capture is None:
            self._capture = self._paused
            self._route()

    def set_variant(self, variant: int) -> None:
        """The capabilities that change how relayed lines look changed (outgoing.py)."""
        self.user.variant = variant
        self._route()

    def _route(self) -> None:
        """Point the user's output at the capture or at the send queue. Lines go
        through the transport's writer; relays are rendered in the transport's own
        form (a WebSocket's frames) and go in as they are. A capture gathers plain
        lines, which the labeled reply tags before they are sent."""
        user, capture = self.user, self._capture
        if capture is None:
            user.enqueue, user.relay_put = self.put_line, self.sendq.put
            user.relay_variant = user.variant | self.transport.framing
        else:
            user.enqueue = user.relay_put = capture.append
            user.relay_variant = user.variant

    def numeric(
        self, code: str, *params: str, trailing: bool = True, tags: dict[str, str] | None = None
    ) -> None:
        """Queue a numeric reply from the server to this client (with ``tags``: a batch's).

        The last parameter is sent with ':' (it is usually text) unless
        ``trailing`` is false, for replies such as 324 ``+nt``. Middle
        parameters often echo what the client sent (a nick, a channel); one
        that cannot stand as a middle parameter is replaced by '*'.
        """
        params = (self.target, *params)
        name, tags = self.server.config.name, tags or {}
        try:
            data = Message(code, params, name, tags).to_bytes(trailing)
        except InvalidMessage:
            safe = tuple(map(middle_or_star, params[:-1])) + params[-1:]
            data = Message(code, safe, name, tags).to_bytes(trailing)
        self.user.enqueue(clip_line(data))

    def _sendq_overflow(self) -> None:
        self.server.metrics.sendq_overflows += 1
        limit = self.sendq.limit
        self.disconnect(f"SendQ exceeded ({limit} bytes)", error="SendQ exceeded", discard=True)

    def disconnect(self, reason: str, error: str | None = None, discard: bool = False) -> None:
        """Start closing: queue ``ERROR``, stop reading. Never blocks or yields.

        ``reason`` is what channel peers see in the QUIT and what the log says;
        ``error`` is the text of the ERROR line (default: a Closing Link line).
        """
        if self.close_reason is not None:
            return
        self.close_reason = reason
        text = error or f"Closing Link: {self.user.host} ({reason})"
        final = self.transport.final(clip_line(f"ERROR :{text}\r\n".encode()))
        self.sendq.close(final, discard=discard)
        self.transport.wake_reader()  # the reader's pending recv returns end-of-stream

    # -- the greenlets -------------------------------------------------------

    def serve(self) -> None:
        """The reader loop; returns when the connection is finished."""
        _BY_GREENLET[gevent.getcurrent()] = self
        reason = "Connection closed"
        try:
            reason = self._read_loop()
        except OSError as exc:
            reason = f"Connection error: {exc.strerror or exc}"
        finally:
            self._finish(self.close_reason or reason)

    def _read_loop(self) -> str:
        transport = self.transport
        framer = transport.reader(self.sendq.put)  # replies (a WebSocket's Pong) go as they are
        recv = transport.recv
        recvq = self.server.config.recvq
        lane = self.server.registration_lane
        backlog: list = []  # lines read but not handled yet: flood control holds them
        history = self.server.history
        wait = 0.0
        while self.close_reason is None:
            data = transport.recv_within(wait) if backlog else recv(RECV_BYTES)
            if data is not None:
                if not data:
                    return "Connection closed"
                if not self.user.registered:  # a storm of them must not stall chat
                    lane.take_turn()
                self.last_active = time.monotonic()
                self.ping_sent = False
                try:
                    items = framer.feed(data)
                except FramingError:
                    self.disconnect("Input line too long (no newline)")
                    return "Input line too long"
                if not backlog:
                    backlog = items
                else:  # lagged, and still sending: only the receive queue limits it
                    backlog += items
                    if sum(map(_line_bytes, backlog)) > recvq:
                        self.server.metrics.excess_floods += 1
                        self.disconnect("Excess Flood", error="Excess Flood")
                        return "Excess Flood"
            wait = self._handle_due(backlog)
            # An idle connection waits in recv: keep nothing of this chunk alive.
            data = items = None
            if history.backlogged:  # the store is behind: a sender of stored lines waits
                history.hold(self.user)
            # Let output flush (and other readers run) before taking more input.
            gevent.sleep(0)
        return self.close_reason

    def _handle_due(self, backlog: list) -> float:
        """Handle the lines flood control allows now and drop them from ``backlog``.

        Returns the seconds until the next held line may run (0.0 when none
        is held). Operators are exempt.
        """
        bucket = self.flood
        exempt = not bucket.enabled or "o" in self.user.modes
        allowed = len(backlog) if exempt else bucket.allowance(time.monotonic())
        handled = charged = 0
        for item in backlog:
            if charged >= allowed or self.close_reason is not None:
                break
            handled += 1
            batched = self.batched_lines
            self._handle_line(item)
            # A line taken into a multiline batch is part of one message: the batch's
            # BATCH lines pay for it (at most max-lines go free per batch).
            charged += self.batched_lines == batched
        if not exempt:
            bucket.spend(charged)
        if handled == len(backlog) or self.close_reason is not None:
            backlog.clear()
            return 0.0
        del backlog[:handled]
        return bucket.wait()

    def _handle_line(self, item: bytes | LineTooLong | BadLine | Closed) -> None:
        if type(item) is not bytes:
            self._handle_other(item)
            return
        try:
            text = item.decode("utf-8")
        except UnicodeDecodeError:
            self.send(
                Message(
                    "FAIL",
                    (
                        _command_word(item),
                        "INVALID_UTF8",
                        "Message rejected: it is not valid UTF-8",
                    ),
                    self.server.config.name,
                )
            )
            return
        try:
            msg = parse(text)
        except InvalidMessage as exc:
            self.numeric(ERR_UNKNOWNERROR, "*", f"Malformed line: {exc}")
            return
        self.server.dispatch(self, msg)

    def _handle_other(self, item: LineTooLong | BadLine | Closed) -> None:
        """What a framer hands out besides a line: a line it dropped, a WebSocket
        message that was not one line, the end of a WebSocket."""
        if isinstance(item, LineTooLong):
            self.numeric(ERR_INPUTTOOLONG, "Input line was too long")
        elif isinstance(item, BadLine):
            self.numeric(ERR_UNKNOWNERROR, "*", f"Malformed line: {item.reason}")
        else:
            self.disconnect(item.reason)

    def _waker(self) -> Callable[[Session], None]:
        """What the send queue calls, with this session, when it stops being empty.

        Usually the flusher's ``mark`` itself: the call runs once per recipient
        per message, and a method of ours in between was one more Python frame
        each time (a running writer just makes ``flush_now`` a no-op). A
        transport whose writes may wait even when the socket is writable (TLS)
        gets a writer greenlet instead.
        """
        if self.transport.writes_wait:
            return Session._start_writer
        return self.server.flusher.mark

    def _start_writer(self) -> None:
        if self.writer is None:  # else the running writer sends it anyway
            self.writer = gevent.spawn(self._write_loop)

    def hold_flushes(self) -> None:
        """Flush nothing until :meth:`release_flushes`: the backplane's listener applied
        this client's JOIN for its waiting handler, whose NAMES follow in a moment.
        Sent apart, the second write waits behind the first's delayed ACK (Nagle)."""
        self.output_held = True

    def release_flushes(self) -> None:
        """Flush again, what waited first (at the end of this turn of the loop)."""
        self.output_held = False
        if self.sendq.size and self.writer is None:
            self._waker()(self)  # what a first queued chunk does: a flush at the turn's end

    def flush_now(self) -> None:
        """Send what is queued without blocking; a writer greenlet finishes the rest.

        Only for a transport that can send without waiting (``writes_wait`` false).
        """
        if self.writer is not None or self.output_held:
            return
        data = self.sendq.take()
        if not data:
            return
        try:
            sent = self.transport.send_nowait(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._write_failed(exc)
            return
        if sent < len(data):
            self.sendq.unshift(data[sent:])
            self.writer = gevent.spawn(self._write_loop)

    def _write_loop(self) -> None:
        """Wait for the socket and send everything queued; end when the queue is empty."""
        take, sendall = self.sendq.take, self.transport.sendall
        try:
            while data := take():
                sendall(data)
        except OSError as exc:
            self._write_failed(exc)
        finally:
            self.writer = None

    def _write_failed(self, exc: OSError) -> None:
        self.sendq.take()  # nothing more can be sent
        self.disconnect(f"Write error: {exc.strerror or exc}")

    def _finish(self, reason: str) -> None:
        server = self.server
        metrics = server.metrics
        with metrics.lock:  # a scrape counts this session's bytes here or in the totals
            server.sessions.discard(self)
            metrics.add_sent(self.sendq)
        # Outside the (thread) lock: on a network the QUIT waits for its turn.
        server.end_session(self, reason)
        metrics.disconnected(reason)
        self.disconnect(reason)  # no-op when already closing; else queues the ERROR line
        self.transport.set_nodelay()  # the last lines need not wait for ACKs
        if not self.transport.writes_wait:  # else the writer is on it already
            self.flush_now()
        deadline = time.monotonic() + server.config.close_grace
        writer = self.writer
        if writer is not None:  # give the last lines (the ERROR) a moment to go out
            writer.join(timeout=server.config.close_grace)
            writer.kill(block=False)
        self.transport.close(deadline)
        with metrics.lock:
            metrics.add_sent(self.sendq)  # its last lines
        user = self.user
        log.info("disconnect %s from %s:%s: %s", user.nick or "*", user.host, self.port, reason)
        self._unlink()

    def _unlink(self) -> None:
        """Break the references back to this session (its user's, its queue's), so
        reference counting frees it now. Left as cycles, a storm of departures
        feeds the garbage collector tens of thousands of objects, and a full
        collection stops the event loop for 100 ms or more."""
        self.user.session = None
        self.sendq.detach()
