"""Prometheus metrics: counted in one place per cause, read at scrape time.

Nothing here runs per recipient. The server bumps plain integer counters
where a cause happens once (a command dispatched, a flush sent, a session
closed, a fan-out made: one call however many recipients); the hub's events
are counted by an observer; gauges (connections, users, channels) are read
from the server's own state when Prometheus scrapes. :class:`Collector`
turns all of it into metric families for prometheus-client's exposition;
it runs on the metrics listener's own thread, and reads each piece of state
in one step (``list(sessions)``, an integer), so only the move of a closing
session's byte counts into the totals needs a lock.

:class:`Buckets` is a histogram cheap enough for the hot path: one
``bisect`` and one list increment per observation, no lock (the hub is one
thread).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

from gevent.monkey import get_original
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector as _Collector

from greenchat import __version__

_allocate_lock = get_original("_thread", "allocate_lock")

if TYPE_CHECKING:
    from greenchat.server.events import Event
    from greenchat.server.sendq import SendQueue
    from greenchat.server.server import ChatServer

__all__ = ["DISCONNECT_REASONS", "METRIC_NAMES", "Buckets", "Collector", "ServerMetrics"]

# Why a connection ended, by how its reason text starts: a fixed set of labels,
# so they never carry free text. Anything else is "error".
_REASON_PREFIXES = (
    ("Quit", "quit"),
    ("Client Quit", "quit"),
    ("Connection closed", "closed"),
    ("Ping timeout", "ping_timeout"),
    ("Registration timed out", "registration_timeout"),
    ("SendQ exceeded", "sendq_exceeded"),
    ("Excess Flood", "excess_flood"),
    ("Input line too long", "input_too_long"),
    ("Killed", "killed"),
    ("Bad password", "bad_password"),
    ("Password incorrect", "bad_password"),
    ("Server shutting down", "shutdown"),
)
DISCONNECT_REASONS = (*dict.fromkeys(label for _, label in _REASON_PREFIXES), "error")


def disconnect_reason(text: str) -> str:
    """The fixed label for a disconnect's free-text reason."""
    for prefix, label in _REASON_PREFIXES:
        if text.startswith(prefix):
            return label
    return "error"


class Buckets:
    """A histogram's state: counts per upper bound (the last is +Inf), sum and count."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            cumulative.append((_bound(bound), total))
        return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=self.sum)


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


# How a login attempt ended (greenchat_logins_total{result=...}).
LOGIN_RESULTS = ("ok", "failed", "limited", "unavailable")


class ServerMetrics:
    """The counters and histograms the server bumps; plain numbers, read at scrape."""

    def __init__(self, commands: Iterable[str] = (), kinds: Iterable[str] = ()) -> None:
        # Every known label from the start, at 0, so rates are defined before the first one.
        self.commands = Counter(dict.fromkeys([*commands, "unknown"], 0))  # by command
        self.events = Counter(dict.fromkeys(kinds, 0))  # by event kind (an observer of the hub)
        self.disconnects = Counter(dict.fromkeys(DISCONNECT_REASONS, 0))
        self.sendq_overflows = 0
        self.excess_floods = 0
        self.webirc_refused = 0  # WEBIRC from an untrusted address, or a bad password
        self.logins = Counter(dict.fromkeys(LOGIN_RESULTS, 0))  # SASL and NickServ, by result
        # Sent by sessions that have ended; the live ones' are added at scrape time
        # (their send queues count what they hand to the socket: no count per flush).
        self.sent_bytes = 0
        self.sent_lines = 0
        # A native lock: the scrape runs on a thread of its own (metrics_http.py).
        self.lock = _allocate_lock()
        self.registration = Buckets((0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60))
        self.loop_lag = Buckets((0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
        # One CHATHISTORY (or REDACT) query's time in the store (history.py).
        self.history_reads = Buckets((0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1))
        # A whole CHATHISTORY command on the server: checks, the store, the reply queued.
        self.chathistory = Buckets(
            (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.05, 0.25, 1)
        )

    def on_event(self, event: Event) -> None:
        self.events[event.kind] += 1

    def disconnected(self, reason: str) -> None:
        """A session is ending: count why."""
        self.disconnects[disconnect_reason(reason)] += 1

    def add_sent(self, sendq: SendQueue) -> None:
        """Move what ``sendq`` has sent into the totals, under :attr:`lock`, which the
        caller holds: its session is leaving the server's set (and, for its last
        lines, has closed). A scrape, which takes the lock too, then sees those
        bytes once, in the session or in the totals: the counters never go down."""
        self.sent_bytes += sendq.taken
        self.sent_lines += sendq.taken_lines
        sendq.taken = sendq.taken_lines = 0


class Collector(_Collector):
    """Everything about one :class:`ChatServer`, as metric families at scrape time."""

    def __init__(self, server: ChatServer) -> None:
        self.server = server

    def collect(self) -> Iterator:
        metrics, hub = self.server.metrics, self.server.hub
        yield InfoMetricFamily("greenchat", "greenchat's version", value={"version": __version__})
        yield self._connections()
        yield GaugeMetricFamily(
            "greenchat_users", "Registered users on the network", value=hub.registered_count
        )
        yield GaugeMetricFamily("greenchat_channels", "Channels", value=len(hub.channels))
        yield _by_label(
            "greenchat_commands", "Commands received, by command", "command", metrics.commands
        )
        yield _by_label(
            "greenchat_events", "State changes applied, by kind", "kind", metrics.events
        )
        yield CounterMetricFamily(
            "greenchat_deliveries",
            "Relayed lines queued to recipients (one per recipient)",
            value=hub.deliveries,
        )
        with metrics.lock:
            sent_bytes, sent_lines = metrics.sent_bytes, metrics.sent_lines
            for session in list(self.server.sessions):
                sent_bytes += session.sendq.taken
                sent_lines += session.sendq.taken_lines
        yield CounterMetricFamily(
            "greenchat_sent_bytes", "Bytes written to client sockets", value=sent_bytes
        )
        yield CounterMetricFamily(
            "greenchat_sent_lines", "Lines written to client sockets", value=sent_lines
        )
        yield CounterMetricFamily(
            "greenchat_sendq_overflows",
            "Clients dropped because their send queue overflowed",
            value=metrics.sendq_overflows,
        )
        yield CounterMetricFamily(
            "greenchat_webirc_refused",
            "WEBIRC commands refused (not a trusted gateway, a bad password or address)",
            value=metrics.webirc_refused,
        )
        yield CounterMetricFamily(
            "greenchat_excess_floods",
            "Clients dropped for Excess Flood (past --recvq while lagged)",
            value=metrics.excess_floods,
        )
        yield _by_label(
            "greenchat_logins", "Login attempts (SASL, NickServ), by result", "result",
            metrics.logins,
        )  # fmt: skip
        yield CounterMetricFamily(
            "greenchat_store_failures",
            "Account store calls that failed underneath (I/O error, disk full)",
            value=self.server.storage.failures if self.server.storage else 0,
        )
        history = self.server.history
        yield GaugeMetricFamily(
            "greenchat_history_pending",
            "Messages waiting to be stored (they pile up while the store fails)",
            value=len(history.pending),
        )
        yield CounterMetricFamily(
            "greenchat_history_dropped",
            "Messages never stored: past the pending limit while the store failed",
            value=history.dropped,
        )
        yield CounterMetricFamily(
            "greenchat_history_holds",
            "Times a sender's input waited for the history store to catch up",
            value=history.holds,
        )
        yield CounterMetricFamily(
            "greenchat_history_expired",
            "Stored messages deleted by retention (--history-max-age, --history-max-per-target)",
            value=history.expired,
        )
        yield CounterMetricFamily(
            "greenchat_registration_waits",
            "Turns of registering connections that waited for a later pass of the event "
            "loop (--registration-slice)",
            value=self.server.registration_lane.waits,
        )
        yield _by_label(
            "greenchat_disconnects",
            "Connections ended, by reason",
            "reason",
            metrics.disconnects,
        )
        yield metrics.registration.family(
            "greenchat_registration_seconds", "Seconds from connect to the welcome (001)"
        )
        yield metrics.loop_lag.family(
            "greenchat_event_loop_lag_seconds", "How late a 0.1 s timer fires on the event loop"
        )
        yield metrics.history_reads.family(
            "greenchat_history_read_seconds",
            "Seconds one history query took in the store (CHATHISTORY, autoreplay, REDACT)",
        )
        yield metrics.chathistory.family(
            "greenchat_chathistory_seconds",
            "Seconds one CHATHISTORY command took on the server, from its handler's start "
            "to its reply queued (the store's part included)",
        )
        yield hub.fanout_sizes.family(
            "greenchat_fanout_recipients", "Recipients of one fanned-out line"
        )
        yield from self._backplane()

    def _backplane(self) -> Iterator:
        """The link to the other nodes (--backplane); all zero on a single server."""
        link = self.server.backplane
        yield GaugeMetricFamily(
            "greenchat_backplane_connected",
            "1 while this node is subscribed to the network's Redis and in step, else 0",
            value=int(link is not None and link.connected),
        )
        for name, text, attr in (
            ("published", "Changes and messages this node published to the network", "published"),
            ("received", "Changes and messages this node received from the network", "received"),
            ("dropped", "Changes and messages that could not be published (Redis out of "
             "reach, the outbox full)", "dropped"),
            ("reconnects", "Times the subscriber connection to Redis was lost and made "
             "again", "reconnects"),
            ("gaps_filled", "Log entries missed by the subscriber and read back from the "
             "stream", "gaps_filled"),
            ("log_losses", "Times Redis came back without log entries this node had "
             "applied (restarted empty, or failed over to a replica that lagged)",
             "log_losses"),
            ("late_loops", "Times the event loop ran the reaper over HEARTBEAT_TTL/2 s late "
             "(the heartbeat thread beat meanwhile)", "late_loops"),
            ("taken_for_dead", "Local users another node quit, taking this node for dead, "
             "and disconnected here", "taken_for_dead"),
            ("parked", "Messages from a cluster's channel shard that waited for the log "
             "entry their sender had applied", "order.parked"),
            ("held", "Log entries (a PART, a QUIT) that waited for messages sent before "
             "them on a cluster's channel shard", "order.held"),
            ("holds_expired", "Held log entries applied after 1 s without the message "
             "they waited for", "order.holds_expired"),
        ):  # fmt: skip
            value = attrgetter(attr)(link) if link is not None else 0
            yield CounterMetricFamily(f"greenchat_backplane_{name}", text, value=value)

    def _connections(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "greenchat_connections",
            "Local connections by transport and state",
            labels=["transport", "state"],
        )
        counts: Counter[tuple[str, str]] = Counter()
        for session in list(self.server.sessions):
            if session.close_reason is not None:
                state = "closing"
            else:
                state = "registered" if session.user.registered else "registering"
            counts[session.transport.name, state] += 1
        for transport in ("tcp", "tls", "ws", "wss"):
            for state in ("registering", "registered", "closing"):
                family.add_metric([transport, state], counts[transport, state])
        return family


def _by_label(name: str, documentation: str, label: str, values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


# Every metric name a scrape shows (counters with their _total), for docs and dashboards.
METRIC_NAMES = (
    "greenchat_info",
    "greenchat_connections",
    "greenchat_backplane_connected",
    "greenchat_backplane_published_total",
    "greenchat_backplane_received_total",
    "greenchat_backplane_dropped_total",
    "greenchat_backplane_reconnects_total",
    "greenchat_backplane_gaps_filled_total",
    "greenchat_backplane_log_losses_total",
    "greenchat_backplane_late_loops_total",
    "greenchat_backplane_taken_for_dead_total",
    "greenchat_backplane_parked_total",
    "greenchat_backplane_held_total",
    "greenchat_backplane_holds_expired_total",
    "greenchat_users",
    "greenchat_channels",
    "greenchat_commands_total",
    "greenchat_events_total",
    "greenchat_deliveries_total",
    "greenchat_sent_bytes_total",
    "greenchat_sent_lines_total",
    "greenchat_sendq_overflows_total",
    "greenchat_webirc_refused_total",
    "greenchat_excess_floods_total",
    "greenchat_logins_total",
    "greenchat_store_failures_total",
    "greenchat_history_pending",
    "greenchat_history_dropped_total",
    "greenchat_history_holds_total",
    "greenchat_history_expired_total",
    "greenchat_registration_waits_total",
    "greenchat_disconnects_total",
    "greenchat_registration_seconds",
    "greenchat_event_loop_lag_seconds",
    "greenchat_history_read_seconds",
    "greenchat_chathistory_seconds",
    "greenchat_fanout_recipients",
)
