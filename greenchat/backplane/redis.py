"""One node of a network whose nodes share their state through Redis.

Every node keeps a replica of the network: all users and channels, its own
users with their sessions, the others' as Users with no session
(``user.node`` names their node). Redis is the one sequencer:

- **The log.** Every change of state (a registration, NICK, JOIN, MODE, QUIT...)
  goes through one Lua script that numbers it, keeps it in a stream and
  publishes it on the log channel. Every node, the proposer too, applies the
  log in that order after the same checks (checks.py), so replicas converge
  and races have one winner: of two registrations of a nick, or two joins to
  a +l 1 channel, the first in the log wins everywhere and the other
  proposer's client gets 433 or 471. A handler that proposes waits for its
  turn; the listener applies the change then, with the handler's labeled reply
  resumed, and hands it what applying returned, so its replies (and a
  labeled-response batch) come out as on a single server, and a storm of
  changes is applied in one go, its lines coalesced per client.
- **Messages.** A PRIVMSG, NOTICE or TAGMSG is published once, on its
  channel's own Redis channel (or on the target user's node's), and fanned
  out by each node to its own members. The sender's node delivers its own at
  once. A run of messages to one Redis channel is one PUBLISH, a line each. A
  node subscribes only to the channels it has members in, before its first
  member's JOIN is proposed, so it misses nothing sent after that JOIN.
- **Order.** One publisher connection sends a node's changes and messages in
  the order made, and one subscriber connection receives the log and the
  channels: Redis delivers them in the order it ran them, so a JOIN comes
  before the joiner's first message and a PART after their last, everywhere.
- **Liveness.** Each node refreshes a heartbeat key with a TTL, from a thread
  (heartbeat.py: a busy event loop does not delay it); a node that finds
  another's key gone quits that node's users (``*.net *.split``), and their
  nicks are free again. A node taken for dead while alive disconnects the
  users the others quit.
- **Gaps.** Log entries carry their number; a node that sees one skipped
  (it was disconnected) reads the missing ones from the stream before going on.

Redis I/O runs in three greenlets of its own (publisher, listener, reaper) and
the heartbeat thread;
the hub is only ever called between their waits, so it still never yields.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import deque
from contextlib import nullcontext, suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import gevent
import redis
from gevent.event import AsyncResult
from gevent.event import Event as Flag

from greenchat.backplane import Refused, Unavailable, snapshot
from greenchat.backplane.checks import verdict
from greenchat.backplane.connection import FAILURES, client_for, is_cluster
from greenchat.backplane.heartbeat import HeartbeatThread, beat
from greenchat.backplane.shard_order import Entry, ShardOrder
from greenchat.backplane.subscriber import Subscriber
from greenchat.protocol.casemap import casefold
from greenchat.protocol.numerics import ERR_NICKNAMEINUSE
from greenchat.server import events
from greenchat.server.events import (
    Event,
    Joined,
    Kicked,
    Messaged,
    NickChanged,
    Parted,
    Quit,
    StoreChanged,
    UserRegistered,
)
from greenchat.server.session import current_session

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

__all__ = ["RedisBackplane"]

log = logging.getLogger("greenchat.backplane")

HEARTBEAT_EVERY = 2.0  # seconds between a node's heartbeats (and its look for dead nodes)
HEARTBEAT_TTL = 6  # seconds a heartbeat lives; one missing this long again is a dead node
# How long a handler waits for its change's turn while the log does not move: a storm
# of changes may take minutes to apply, but each is waited for as long as others come.
PROPOSAL_STALL = 5.0
SUBSCRIBE_TIMEOUT = 5.0
OUTBOX_LIMIT = 50_000  # changes and messages waiting to be published, at most
PIPELINE_BATCH = 1_000  # sent to Redis in one write
STREAM_LENGTH = 100_000  # log entries the stream keeps (about) for nodes that fell behind
RETRY_EVERY = 0.5  # seconds between reconnection attempts
SPLIT_REASON = "*.net *.split"
LISTENER_TURN = 0.02  # seconds the listener applies the log before letting others run
LISTENER_TURN_MAX = 0.5  # ...at most, however long the others took (_let_others_run)
RUN_BYTES = 64 * 1024  # about the most envelopes one PUBLISH carries
READY = b"ready"  # a heartbeat's value once the node holds the network's state
SNAPSHOT_TIMEOUT = 5.0  # how long a new node waits for a live one to send the network's state
ROLL_KEEP = 3600.0  # seconds a node without a heartbeat stays in the roll
ROLL_LATELY = 60.0  # a node that beat this long ago may be alive (clocks of machines differ)
CATCH_UP_TIMEOUT = 2.0  # a query waits at most this long for its node to catch up

# Number the change, keep it in the stream, publish it: one step in Redis.
# KEYS: sequence counter, stream, log channel. ARGV: the envelope, stream length.
# On a cluster the log channel is a shard channel (SPUBLISH), in the keys' slot.
_SEQUENCE = """
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-1', 'e', ARGV[1])
redis.call('PUBLISH', KEYS[3], seq .. ' ' .. ARGV[1])
return seq
"""
_SEQUENCE_SHARDED = _SEQUENCE.replace("'PUBLISH'", "'SPUBLISH'")

_LOG = object()  # the outbox's mark for "through the sequencing script"


class _Proposal:
    """A handler waiting for its change's turn."""

    __slots__ = ("outcome", "session")

    def __init__(self, session: Session | None) -> None:
        # What applying it returned (an _Applied), or an exception: refused, unreachable.
        self.outcome: AsyncResult = AsyncResult()
        self.session = session  # the proposer's: its labeled reply resumes as it applies


class _Applied:
    """A proposal's outcome once the listener applied it: what the applier returned."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result


class RedisBackplane:
    """This node's link to the network on the Redis at ``url``."""

    def __init__(self, server: ChatServer, url: str, network: str) -> None:
        self.server = server
        self.hub = server.hub
        self.url = url
        self.node = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        # How every envelope this node publishes begins (see _envelope): its own
        # messages come back on the channels it is subscribed to, and are skipped.
        self._own_envelope = json.dumps([self.node], ensure_ascii=False)[:-1].encode() + b","
        # The network's own keys and channels share one hash tag: on a cluster, one
        # slot, so that one script numbers, keeps and publishes each change. Chat
        # channels and nodes spread over the slots (channel_of, node_channel_of).
        prefix = f"gc:{{{network}}}:"
        self.prefix = prefix
        self.spread = f"gc:{network}:"
        self.log_channel = prefix + "log"
        self.snapshot_channel = prefix + "snap"  # "send me the state": nodes joining late
        self.node_channel = self.node_channel_of(self.node)
        self.sequence_keys = (prefix + "seq", prefix + "stream", self.log_channel)
        # A Redis Cluster or a single Redis: None while it cannot be asked (the
        # listener asks again once it reaches it, _know_kind).
        self.cluster: bool | None = is_cluster(url)
        try:
            self._make_clients()
        except FAILURES:  # gone again since it answered: as if it had not
            self.cluster = None
            self._make_clients()
        self.roll = prefix + "nodes"  # node -> the time of its last heartbeat
        self.epoch_key = prefix + "epoch"  # the log's mark: another one after a data loss
        self._epoch: bytes | None = None
        self.heart = HeartbeatThread(
            url, self.heartbeat_key(self.node), self._heartbeat_value,
            HEARTBEAT_EVERY, HEARTBEAT_TTL, self.roll, self.node,
        )  # fmt: skip
        self.heart.cluster = bool(self.cluster)
        # On a cluster: the order between the log's shard and the channels' (used only
        # then: a single Redis keeps it by itself).
        self.order = ShardOrder(self._apply_entry, self._apply_log)
        self.outbox: deque[tuple[Any, str, int]] = deque()  # (channel, payload, pid)
        self.pending: dict[int, _Proposal] = {}
        self.subscribed: set[str] = set()  # Redis channels of the chat channels we have
        self._confirmations: dict[str, Flag] = {}
        self.last_seq = 0
        self._bootstrapped = False
        self.connected = False  # the listener is subscribed and in step
        self.running = False
        self._wake = Flag()
        self._stopping = Flag()
        self._next_pid = 0
        self._applying = 0  # > 0 while a change is being applied here
        self._registering: set[str] = set()  # casefolded nicks of our registrations waiting
        self.server_names: dict[str, str] = {}  # node -> its --name (WHOIS 312, WHO)
        self._reaped: dict[str, float] = {}  # dead node -> when we quit its users
        self._missing_since: dict[str, float] = {}  # node -> when its heartbeat was first gone
        self._greenlets: list[gevent.Greenlet] = []
        # catch_up(): queries waiting for the next read of the log's head, and the
        # ones whose head was read, waiting for this node to apply up to it (in order).
        self._head_waiters: list[AsyncResult] = []
        self._head_reader: gevent.Greenlet | None = None
        self._behind: deque[tuple[int, list[AsyncResult]]] = deque()
        # For metrics.py and the log.
        self.published = 0
        self.received = 0
        self.dropped = 0
        self.reconnects = 0
        self.gaps_filled = 0
        self.log_losses = 0  # times Redis came back without log entries this node had
        self.late_loops = 0  # heartbeat greenlet turns that came HEARTBEAT_TTL/2 late
        self.taken_for_dead = 0  # our users another node quit, taking this one for dead

    def _make_clients(self) -> None:
        """The connections, for a single Redis or a cluster (as self.cluster says)."""
        cluster, url = bool(self.cluster), self.url
        options = {"socket_connect_timeout": 3.0, "socket_timeout": 5.0}
        self.publisher = client_for(url, cluster, **options)
        self.control = client_for(url, cluster, **options)
        self.reader = client_for(url, cluster, **options)  # the listener's own reads (gaps)
        self.listen_client = client_for(url, cluster, socket_connect_timeout=3.0)
        self.sequence = None if cluster else self.publisher.register_script(_SEQUENCE)
        self.subscriber = Subscriber(self.listen_client, cluster)

    def _know_kind(self) -> None:
        """Ask whether the Redis is a cluster, if that was not known (it could not be
        reached at the start); a cluster gets the clients that route by slot."""
        if self.cluster is not None:
            return
        found = is_cluster(self.url)
        if found is None:
            raise redis.ConnectionError("the Redis cannot be asked what it is")
        if found:
            old = (self.publisher, self.control, self.reader, self.listen_client)
            self.cluster = True
            try:
                self._make_clients()
            except FAILURES:
                self.cluster = None  # asked again at the next try
                raise
            for client in old:
                client.close()
        self.cluster = found
        self.heart.cluster = found

    # -- names ------------------------------------------------------------

    def channel_of(self, name: str) -> str:
        """The Redis channel of chat channel ``name``: named after the name the channel
        was created with (``Channel.route``), so a RENAME changes no subscription (a
        line said right after it reaches every node); on a cluster, in the slot of the
        channel's history (the store's ``{h:<channel>}``)."""
        channel = self.hub.get_channel(name)
        return self._route(channel.route if channel is not None else casefold(name))

    def _route(self, route: str) -> str:
        return f"{self.spread}{{h:{route}}}:pub"

    def node_channel_of(self, node: str) -> str:
        return f"{self.spread}{{n:{node}}}"

    def heartbeat_key(self, node: str) -> str:
        return f"{self.prefix}alive:{node}"

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        """Join the network: subscribe, then start publishing and beating. A Redis
        that cannot be reached now is retried in the background (commands that
        need the network get TEMPORARILY_UNAVAILABLE until then)."""
        self.running = True
        self.hub.backplane = self
        self.heart.start()
        for loop in (self._listen_loop, self._publish_loop, self._heartbeat_loop):
            self._greenlets.append(gevent.spawn(loop))
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        while not self.connected and time.monotonic() < deadline:
            gevent.sleep(0.01)
        if self.connected:
            log.info("backplane: node %s on %s", self.node, _shown(self.url))
        else:
            log.error("backplane: %s unreachable; retrying", _shown(self.url))

    def stop(self) -> None:
        """Leave: flush what waits to be published, stop the greenlets by their flag."""
        deadline = time.monotonic() + 2.0
        while self.outbox and self.connected and time.monotonic() < deadline:
            gevent.sleep(0.01)
        self.running = False
        self._stopping.set()
        self._wake.set()
        self.subscriber.close()  # the listener's read returns; never killed mid-read
        gevent.joinall(self._greenlets, timeout=3.0)
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self.heart.stop()
        with suppress(*FAILURES):
            pipe = self.control.pipeline(transaction=False)
            pipe.delete(self.heartbeat_key(self.node))
            pipe.zrem(self.roll, self.node)
            pipe.execute()
        for client in (self.publisher, self.control, self.reader, self.listen_client):
            client.close()

    # -- proposing (handlers, through Hub.apply) ----------------------------

    def propose(self, event: Event, extra: dict[str, Any]) -> Any:
        """Put a local change in the network's order and apply it at its turn."""
        if type(event) is Messaged:
            return self._message(event)
        if type(event) is Joined:
            self._subscribe_for(event.channel)
        if type(event) is Quit and not self.connected:
            return self._quit_alone(event)
        if type(event) is StoreChanged:
            return self._announce(event)
        if type(event) is UserRegistered:
            extra = {**extra, "server": self.server.config.name}
        if self.cluster and (type(event) is Parted or type(event) is Quit):
            extra = self._with_heard(event, extra)
        if self._applying or gevent.getcurrent() in self._greenlets:
            # Proposed while a change is applied (a KILL's disconnect, an observer's
            # follow-up): it takes its turn after, without anyone waiting for it.
            self._send(_LOG, self._envelope(0, event, extra), 0)
            return None
        if not self.connected:
            raise Unavailable("the network is not reachable")
        self._next_pid += 1
        pid = self._next_pid
        session = current_session()
        proposal = self.pending[pid] = _Proposal(session)
        if type(event) is UserRegistered:
            self._registering.add(casefold(event.nick))
        self._send(_LOG, self._envelope(pid, event, extra), pid)
        try:
            with session.uncaptured() if session is not None else nullcontext():
                outcome = self._wait_turn(proposal)
        finally:
            if session is not None and session.output_held:
                session.release_flushes()  # flushed with what the handler sends now
            self.pending.pop(pid, None)  # from now on its turn is applied as anyone's
            if type(event) is UserRegistered:
                self._registering.discard(casefold(event.nick))
        if isinstance(outcome, BaseException):
            if type(event) is Quit:  # a user leaving cannot be refused: leave here at least
                return self._quit_alone(event)
            raise outcome
        return outcome.result

    # -- queries (commands/table.py: a command marked fresh) ----------------

    def catch_up(self) -> None:
        """Wait until this node has applied every change the network's log held when
        called: a query (WHOIS, NAMES, a message to a nick not known here yet) then
        sees what its client already saw confirmed on another node. One read of the
        log's head serves every query waiting when it starts. Out of reach, or slow
        (CATCH_UP_TIMEOUT), it answers from what this node holds."""
        if not self.connected or self._applying or gevent.getcurrent() in self._greenlets:
            return
        waiter = AsyncResult()
        self._head_waiters.append(waiter)
        if self._head_reader is None or self._head_reader.dead:
            self._head_reader = gevent.spawn(self._read_heads)
        waiter.wait(CATCH_UP_TIMEOUT)

    def _read_heads(self) -> None:
        """Read the log's head for the queries waiting, until none is."""
        while self._head_waiters:
            batch, self._head_waiters = self._head_waiters, []
            try:
                head = int(self.control.get(self.sequence_keys[0]) or 0)
            except (*FAILURES, ValueError):
                head = 0  # answer from the replica
            if head > self.last_seq:
                self._behind.append((head, batch))
            else:
                for waiter in batch:
                    waiter.set()

    def _release_caught_up(self) -> None:
        """Wake the queries whose head this node has now applied."""
        behind = self._behind
        while behind and behind[0][0] <= self.last_seq:
            for waiter in behind.popleft()[1]:
                waiter.set()

    def _wait_turn(self, proposal: _Proposal) -> Any:
        """The proposal's outcome; Unavailable once the log stood still for
        PROPOSAL_STALL seconds without reaching it."""
        seen = self.last_seq
        while True:
            try:
                return proposal.outcome.get(timeout=PROPOSAL_STALL)
            except gevent.Timeout:
                if self.last_seq == seen or not self.connected:
                    return Unavailable("the network did not answer in time")
                seen = self.last_seq

    def _apply_now(self, event: Event, foreign: bool = False) -> Any:
        """Apply here; ``foreign``: another node's change (Hub.foreign says so meanwhile)."""
        self._applying += 1
        was, self.hub.foreign = self.hub.foreign, foreign
        try:
            return self.hub.apply_now(event)
        finally:
            self.hub.foreign = was
            self._applying -= 1

    def _message(self, event: Messaged) -> Any:
        """Deliver here now, and publish once for the other nodes that need it. Out of
        reach, the sender hears that only this node's users got it."""
        relay = self._apply_now(event)
        channel = self.hub.get_channel(event.target)
        if channel is not None:
            remote = len(channel.local) < len(channel.members)  # members elsewhere
            where = self._route(channel.route)  # the channel is at hand: no second lookup
        else:
            target = self.hub.nick_owner(event.target)
            remote = target is not None and bool(target.node)
            where = self.node_channel_of(target.node) if remote else ""  # type: ignore[union-attr]
        if remote:
            if not self.connected:
                self.dropped += 1
                raise Unavailable("only this server's users got it")
            mark = self.order.message_mark(where, self.last_seq) if self.cluster else {}
            self._send(where, self._envelope(0, event, mark), 0)
        return relay

    def _subscribe_for(self, name: str) -> None:
        """Subscribe to chat channel ``name`` before its JOIN is proposed: nothing sent
        there after the JOIN is missed."""
        channel = self.channel_of(name)
        if channel not in self.subscribed and self.connected:
            flag = self._confirmations[channel] = Flag()
            self.subscribed.add(channel)
            self.subscriber.subscribe(channel)
            if gevent.getcurrent() in self._greenlets:
                return  # the listener itself cannot wait for what it reads
            self._wait_confirmed(flag)

    def _wait_confirmed(self, flag: Flag) -> None:
        """Until Redis confirms a subscription: the listener reads it after what came
        before (in a storm, a long backlog), so as long as the log moves; Unavailable
        once it stood still for PROPOSAL_STALL seconds."""
        seen = self.last_seq
        while not flag.wait(PROPOSAL_STALL):
            if self.last_seq == seen or not self.connected:
                raise Unavailable("the network did not answer in time")
            seen = self.last_seq

    def _with_heard(self, event: Parted | Quit, extra: dict[str, Any]) -> dict[str, Any]:
        """A leaving of ours, marked with our last message on each channel it leaves
        (shard_order.py: the others apply it after those)."""
        if type(event) is Parted:
            names = [event.channel]
        else:
            user = self.hub.nick_owner(event.nick)
            names = [c.name for c in user.channels.values()] if user is not None else []
        heard = self.order.leaving_mark([self.channel_of(name) for name in names])
        return {**extra, "heard": heard} if heard else extra

    def _quit_alone(self, event: Quit) -> Any:
        """A local user leaves while the network is out of reach: gone here now, and
        told to the others when it comes back (the outbox keeps it)."""
        result = self._apply_now(event)
        self._send(_LOG, self._envelope(0, event, {}), 0, force=True)
        return result

    def _announce(self, event: StoreChanged) -> None:
        """The store is written already: applied here, and the others told, in the log's
        order but without waiting (out of reach: when it is back, the outbox keeps it)."""
        self._apply_now(event)
        self._send(_LOG, self._envelope(0, event, {}), 0, force=True)

    def _envelope(self, pid: int, event: Event, extra: dict[str, Any]) -> str:
        return json.dumps(
            [self.node, pid, extra, events.to_dict(event)],
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def _send(self, channel: Any, payload: str, pid: int, force: bool = False) -> None:
        if len(self.outbox) >= OUTBOX_LIMIT and not force:
            self.dropped += 1
            raise Unavailable("too much is waiting for the network")
        self.outbox.append((channel, payload, pid))
        self._wake.set()

    # -- the publisher ------------------------------------------------------

    def _publish_loop(self) -> None:
        while self.running:
            self._wake.wait()
            self._wake.clear()
            while self.outbox and self.running:
                size = min(PIPELINE_BATCH, len(self.outbox))
                batch = [self.outbox.popleft() for _ in range(size)]
                try:
                    self._publish(batch)
                except FAILURES as exc:
                    self._lost(batch, exc)
                    gevent.sleep(RETRY_EVERY)

    def _publish(self, batch: list[tuple[Any, str, int]]) -> None:
        """One pipeline: each log entry through the numbering script; each run of
        messages to one Redis channel as one PUBLISH of their envelopes, a line each
        (a burst to a room costs Redis, and each node reading it, one message per run,
        not one per line). Runs never reach past a log entry: the order stays."""
        pipe = self.publisher.pipeline(transaction=False)
        # A cluster's pipeline sends each shard its part: the log's and each channel's
        # order stays, the order between shards does not (see _on_message).
        publish = pipe.spublish if self.cluster else pipe.publish
        keys = list(self.sequence_keys)
        run_channel, run = None, []
        for channel, payload, _ in batch:
            if run and (channel != run_channel or self._run_full(run, payload)):
                publish(run_channel, "\n".join(run))
                run = []
            if channel is _LOG:
                self._sequence(pipe, keys, payload)
            else:
                run_channel = channel
                run.append(payload)
        if run:
            publish(run_channel, "\n".join(run))
        pipe.execute()
        self.published += len(batch)

    def _sequence(self, pipe: Any, keys: list[str], payload: str) -> None:
        """The numbering script, in the pipeline: by its SHA on a single Redis; on a
        cluster as EVAL, which any shard that owns the slot (after a failover too) runs
        without having been told the script first."""
        if self.sequence is not None:
            self.sequence(keys=keys, args=[payload, STREAM_LENGTH], client=pipe)
        else:
            pipe.execute_command("EVAL", _SEQUENCE_SHARDED, len(keys), *keys, payload,
                                 STREAM_LENGTH)  # fmt: skip

    @staticmethod
    def _run_full(run: list[str], payload: str) -> bool:
        """Whether ``payload`` would take one PUBLISH past RUN_BYTES (its length
        counted as it goes would cost each message; this is a rough cap)."""
        return len(run) * (len(payload) + 1) > RUN_BYTES

    def _lost(self, batch: list[tuple[Any, str, int]], exc: BaseException) -> None:
        """Redis failed under a batch: its proposers hear so; messages are counted lost."""
        log.warning("backplane: publishing %d failed: %s", len(batch), exc)
        self.dropped += len(batch)
        for _, _, pid in batch:
            proposal = self.pending.get(pid)
            if proposal is not None and not proposal.outcome.ready():
                proposal.outcome.set(Unavailable("the network is not reachable"))

    # -- the listener ---------------------------------------------------------

    def _listen_loop(self) -> None:
        """Subscribe, fill any gap, apply what comes; on a failure start over."""
        while self.running:
            try:
                self._know_kind()
                early = self._subscribe_all()
                self._fill_gap(None)
                if self.cluster:
                    self.order.resubscribed(list(self.subscribed), self.last_seq + 1)
                if not self._bootstrapped:
                    self._bootstrap()
                    self._bootstrapped = True
                # Now others may ask us for the state; again at once after a Redis
                # restart, which lost every heartbeat: a node starting then must find us.
                self._beat()
                self.connected = True
                for message in early:
                    self._on_message(message)
                turn, turn_length = time.monotonic(), LISTENER_TURN
                while self.running:
                    message = self._next_message(0.05 if self.order.holding else 1.0)
                    if message is not None:
                        self._on_message(message)
                    if self.order.holding:
                        self.order.release_held()
                    if time.monotonic() - turn > turn_length:
                        turn_length = self._let_others_run()
                        turn = time.monotonic()
            except (*FAILURES, ValueError) as exc:
                if not self.running:
                    break
                self._disconnected(exc)
                gevent.sleep(RETRY_EVERY)

    @staticmethod
    def _let_others_run() -> float:
        """Yield in a long backlog (a storm of registrations must not starve the
        heartbeat, or the other nodes take this one for dead); how long the next turn
        of applying may be: twice what the others took, so that flushing what a turn
        made (a JOIN storm dirties every member, a send each) stays a third of the
        time at most, however many members there are."""
        start = time.monotonic()
        gevent.sleep(0)
        return min(max(LISTENER_TURN, 2 * (time.monotonic() - start)), LISTENER_TURN_MAX)

    def _subscribe_all(self) -> list[dict[str, Any]]:
        """Subscribe to everything again; the messages that came meanwhile, to be read
        once the log is in step (a Redis that lost its data numbers its log anew: an
        entry read now would be taken for one applied before)."""
        self.subscriber.close()
        self.subscriber.refresh()  # a cluster: where each slot is now
        channels = [self.log_channel, self.node_channel, self.snapshot_channel, *self.subscribed]
        self.subscriber.subscribe(*channels)
        waiting = set(channels)
        early: list[dict[str, Any]] = []
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        while waiting:
            message = self._next_message(max(0.0, deadline - time.monotonic()))
            if message is None:
                if time.monotonic() >= deadline:
                    raise redis.TimeoutError("no subscription confirmation")
                continue
            if message["type"] == "subscribe":
                waiting.discard(_text(message["channel"]))
                self._on_message(message)  # a handler may wait for it (_subscribe_for)
            else:
                early.append(message)
        return early

    def _next_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message on any subscription, waiting at most ``timeout``."""
        return self.subscriber.next_message(timeout)

    def _disconnected(self, exc: BaseException) -> None:
        if self.connected:
            log.warning("backplane: lost %s: %s; reconnecting", _shown(self.url), exc)
            self.reconnects += 1
        self.connected = False
        self.order.release_all()
        while self._behind:  # they answer from the replica
            for waiter in self._behind.popleft()[1]:
                waiter.set()
        # Proposals already published stay pending: their turn is read back from the
        # stream once subscribed again (or they time out). Those Redis did not take were
        # told so by the publisher (_lost).

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "subscribe":
            flag = self._confirmations.pop(_text(message["channel"]), None)
            if flag is not None:
                flag.set()
            return
        if kind != "message":
            return
        channel, raw = _text(message["channel"]), message["data"]
        if channel == self.log_channel:
            seq_text, _, data = _text(raw).partition(" ")
            self._on_log(int(seq_text), data)
        elif channel == self.snapshot_channel:
            self._answer_snapshot(_text(raw))
        elif not raw.startswith(self._own_envelope):  # ours were delivered when sent
            for data in _text(raw).split("\n"):  # a run of messages (see _publish)
                entry = self._read(data)
                if entry is None:
                    continue
                if self.cluster:
                    self.order.message(channel, entry, self.last_seq)
                else:
                    self._apply_entry(entry)

    def _on_log(self, seq: int, data: str) -> None:
        """The log's entry ``seq``: applied in order (a gap read from the stream first;
        on a cluster perhaps held, shard_order.py)."""
        last = self.order.last_received(self.last_seq)
        if last and seq > last + 1:
            self.order.release_held(force=True)  # the stream has what follows them
            self._fill_gap(seq)
            last = self.last_seq
        if seq <= last:
            return  # had it already (gap filling read it)
        entry = self._read(data)
        if entry is None:
            self.last_seq = seq
        elif self.cluster:
            self.order.log_entry(seq, entry)
        else:
            self._apply_log(seq, entry)

    def _apply_log(self, seq: int, entry: Entry) -> None:
        self.last_seq = seq
        self._apply_entry(entry)
        if self._behind:
            self._release_caught_up()
        if self.cluster:
            self.order.log_applied(seq)

    def _read(self, data: str) -> Entry | None:
        """One envelope, read: (origin, pid, extra, event); None if unreadable."""
        self.received += 1
        try:
            origin, pid, extra, payload = json.loads(data)
            return origin, pid, extra, events.from_dict(payload)
        except (ValueError, TypeError, events.EventError) as exc:
            log.warning("backplane: unreadable entry skipped: %s", exc)
            return None

    def _apply_entry(self, entry: Entry) -> None:
        """One envelope, checked and applied in the network's order."""
        try:
            self._apply(*entry)
        except Exception:  # a bug costs this one change, not the node's link
            log.exception("backplane: applying %s from %s failed", entry[3].kind, entry[0])

    # -- joining a network that already has users -------------------------------

    def _bootstrap(self) -> None:
        """Ask a live node for the network's state, load it, go on from its log number.

        Subscribed first, so every change after the snapshot reaches us (the ones it
        already holds are skipped by their number, a gap is read from the stream).
        """
        ready = self._ready_nodes()
        if not ready:
            # The first node, or the first few started at once: none holds any state yet
            # (one still asking for it must not answer), so the network starts empty.
            return
        request = os.urandom(4).hex()
        key = f"{self.prefix}snapshot:{self.node}:{request}"
        publish = self.reader.spublish if self.cluster else self.reader.publish
        publish(self.snapshot_channel, json.dumps([self.node, request]))
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT
        while (data := self.reader.get(key)) is None:
            if time.monotonic() > deadline:
                log.warning("backplane: no node sent the network's state; starting without it")
                return
            gevent.sleep(0.02)
        self.reader.delete(key)
        seq, state = json.loads(data)
        users = snapshot.load(self.hub, state, self.node)
        self.server_names.update(state.get("servers", {}))
        self.last_seq = max(self.last_seq, seq)
        log.info(
            "backplane: joined the network: %d users, %d channels (log at %d)",
            users, len(state["channels"]), seq,
        )  # fmt: skip

    def _ready_nodes(self) -> list[str]:
        """The other nodes alive that hold the network's state: those of the roll that
        beat lately, whose heartbeat says ready. Nodes long gone leave the roll."""
        now = time.time()
        self.reader.zremrangebyscore(self.roll, "-inf", now - ROLL_KEEP)
        recent = self.reader.zrangebyscore(self.roll, now - ROLL_LATELY, "+inf")
        lately = [_text(node) for node in recent]
        others = [node for node in lately if node != self.node]
        if not others:
            return []
        beats = self.reader.mget([self.heartbeat_key(node) for node in others])
        return [node for node, value in zip(others, beats, strict=True) if value == READY]

    def _answer_snapshot(self, data: str) -> None:
        """Another node joins: one live node (the first to claim the request) writes its
        replica, with the number of the last change it holds."""
        requester, request = json.loads(data)
        if requester == self.node:
            return
        claim = f"{self.prefix}snapclaim:{requester}:{request}"
        if not self.reader.set(claim, self.node, nx=True, ex=60):
            return
        servers = {**self.server_names, self.node: self.server.config.name}
        state = snapshot.take(self.hub, self.node, servers)  # no yield between this and last_seq
        payload = json.dumps([self.last_seq, state], ensure_ascii=False, separators=(",", ":"))
        self.reader.set(f"{self.prefix}snapshot:{requester}:{request}", payload, ex=60)

    def _fill_gap(self, upto: int | None) -> None:
        """Apply the log entries after ``last_seq`` (up to ``upto``, excluded) that we
        did not receive, from the stream."""
        if upto is None:  # (re)connected: where is the log now?
            now, restarted = self._where_the_log_is()
            if restarted:
                # Every entry of its new log is one this node has not applied: read
                # them all (made while this node was reconnecting: others came first).
                log.warning(
                    "backplane: Redis lost its data (restarted empty?); applying its new"
                    " log from the start (%d entries; was at %d)", now, self.last_seq,
                )  # fmt: skip
                self.log_losses += 1
                self.last_seq = 0
            elif not self.last_seq or now < self.last_seq:
                if self.last_seq:  # a restart without persistence, a failover to an empty one
                    log.warning("backplane: Redis lost the log (at %d, was %d)", now, self.last_seq)
                    self.log_losses += 1
                self.last_seq = now
                self._release_caught_up()
                return
        end = "+" if upto is None else f"{upto - 1}-1"
        entries = self.reader.xrange(self.sequence_keys[1], f"{self.last_seq + 1}-0", end)
        for entry_id, fields in entries:
            seq = int(_text(entry_id).split("-")[0])
            if seq <= self.last_seq:
                continue
            self.last_seq = seq
            self.gaps_filled += 1
            origin, pid, extra, payload = json.loads(_text(fields[b"e"]))
            self._apply(origin, pid, extra, events.from_dict(payload))
        self._release_caught_up()
        if self.cluster:
            self.order.log_applied(self.last_seq)

    def _where_the_log_is(self) -> tuple[int, bool]:
        """The log's last number, and whether Redis started a new log since this node
        last looked (it lost its data: the log's mark, set by the first node to look,
        is another one)."""
        pipe = self.reader.pipeline(transaction=False)
        pipe.get(self.sequence_keys[0])
        pipe.set(self.epoch_key, os.urandom(8).hex(), nx=True)
        pipe.get(self.epoch_key)
        head, _, epoch = pipe.execute()
        restarted = self._epoch is not None and epoch != self._epoch
        self._epoch = epoch
        return int(head or 0), restarted

    def _apply(self, origin: str, pid: int, extra: dict[str, Any], event: Event) -> None:
        """One change in the network's order: checked, then applied here."""
        ours = origin == self.node
        if ours and (type(event) is Messaged or type(event) is StoreChanged):
            return  # applied here when it was sent
        if not ours and extra.get("reap") == self.node:
            if self._reaped_alive(event):
                touched = self._channels_touched(event)
                self._apply_now(event, foreign=True)  # gone here too, as everywhere
                self._unsubscribe_empty(touched)
            return
        if not ours and type(event) is UserRegistered:
            event = replace(event, node=origin)
            self.server_names[origin] = extra.get("server") or self.server.config.name
            self._evict_unregistered(event.nick)
        elif not ours and type(event) is NickChanged:
            self._evict_unregistered(event.new)
        found = verdict(self.server, event, "" if ours else origin, extra)
        proposal = self.pending.get(pid) if ours else None
        if found is not None:
            if proposal is not None and isinstance(found, Refused):
                proposal.outcome.set(found)
            elif proposal is not None:
                proposal.outcome.set(Unavailable("the change no longer applies"))
            return
        touched = self._channels_touched(event)
        if ours and type(event) is Joined and self.cluster:
            self.order.joined(self.channel_of(event.channel), self.last_seq)
        if proposal is not None:
            self._apply_proposed(proposal, event)
        else:
            self._apply_now(event, foreign=not ours)
        self._unsubscribe_empty(touched)

    def _reaped_alive(self, event: Event) -> bool:
        """Another node took this one for dead (no heartbeat for HEARTBEAT_TTL: a hung
        process) and quit our user everywhere else. The user is not in the other
        replicas any more, so it cannot stay here either: it is disconnected, as in a
        netsplit (its client reconnects), and the QUIT is applied here too (True)."""
        user = self.hub.nick_owner(getattr(event, "nick", ""))
        if user is None or user.node or not user.registered:
            return False
        if not self.taken_for_dead:
            log.warning(
                "backplane: the network took this node for dead (its heartbeat was missed);"
                " disconnecting the users it quit"
            )
        self.taken_for_dead += 1
        if user.session is not None:
            user.session.disconnect(SPLIT_REASON)
        return True

    def _apply_proposed(self, proposal: _Proposal, event: Event) -> None:
        """Apply a local handler's change here, in the listener, at its turn, and hand
        the handler what it returned. Not handed to the handler's greenlet to apply: the
        listener would wait a turn of the event loop for each change, and every change
        would be flushed to every member alone (no coalescing). Its labeled reply
        resumes first, so its lines (and what follows until it goes on) are in it."""
        if proposal.session is not None:
            proposal.session.resume_capture()
            proposal.session.hold_flushes()  # until its handler goes on (propose)
        try:
            result = self._apply_now(event)
        except Exception:
            proposal.outcome.set(Unavailable("the change failed here"))
            raise
        proposal.outcome.set(_Applied(result))

    def _evict_unregistered(self, nick: str) -> None:
        """A local connection still registering held ``nick``: another node's user
        now has it, so ours has to pick another. Told 433 now, unless its own
        registration is waiting for its turn: that is refused with 433 then."""
        key = casefold(nick)
        holder = self.hub.nicks.get(key)
        if holder is None or holder.registered or holder.node:
            return
        del self.hub.nicks[key]
        holder.nick = ""
        if holder.session is not None and key not in self._registering:
            holder.session.numeric(ERR_NICKNAMEINUSE, nick, "Nickname is already in use")

    def _channels_touched(self, event: Event) -> list[tuple[str, str]]:
        """The chat channels a leaving change may leave with no members here, and their
        Redis channels (found before the change: an emptied channel is gone after)."""
        if type(event) in (Parted, Kicked):
            names = [event.channel]  # type: ignore[attr-defined]
        elif type(event) is Quit:
            user = self.hub.nick_owner(event.nick)
            names = [c.name for c in user.channels.values()] if user is not None else []
        else:
            return []
        return [(name, self.channel_of(name)) for name in names]

    def _unsubscribe_empty(self, touched: list[tuple[str, str]]) -> None:
        for name, redis_channel in touched:
            channel = self.hub.get_channel(name)
            if (channel is not None and channel.local) or redis_channel not in self.subscribed:
                continue
            if self._route_heard(redis_channel):
                continue
            self.subscribed.discard(redis_channel)
            self.order.left(redis_channel)
            # On a failure, the next connection subscribes only to what is left.
            with suppress(*FAILURES):
                self.subscriber.unsubscribe(redis_channel)

    def _route_heard(self, redis_channel: str) -> bool:
        """Whether another channel with members here uses ``redis_channel``: a renamed
        channel keeps the one of its first name, which a new channel of that name
        shares. Looked for only when a RENAME has happened here (rare)."""
        if not self.hub.renamed:
            return False
        return any(
            channel.local and self.channel_of(channel.name) == redis_channel
            for channel in self.hub.channels.values()
        )

    # -- liveness -------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        """Tell the heartbeat thread the loop runs, and look for dead nodes."""
        last = time.monotonic()
        while self.running:
            now = time.monotonic()
            self.heart.loop_alive()
            if now - last > HEARTBEAT_EVERY + HEARTBEAT_TTL / 2:
                log.warning("backplane: the event loop ran %.1f s late (busy)",
                            now - last - HEARTBEAT_EVERY)  # fmt: skip
                self.late_loops += 1
            last = now
            try:
                self._reap_dead()
            except FAILURES as exc:
                log.debug("backplane: looking for dead nodes failed: %s", exc)
            self._stopping.wait(HEARTBEAT_EVERY)

    def _beat(self) -> None:
        """Say at once that this node is alive and holds the network's state (a node
        joining asks those); the heartbeat thread says it again from now on."""
        beat(self.control, self.heartbeat_key(self.node), READY, HEARTBEAT_TTL, self.roll,
             self.node)  # fmt: skip
        self.heart.beat_now()

    def _heartbeat_value(self) -> bytes | None:
        """What the heartbeat thread sets: nothing until this node holds the state."""
        return READY if self._bootstrapped and self.running else None

    def _reap_dead(self) -> None:
        """Quit the users of every node whose heartbeat is gone (once per node)."""
        if not self.connected:
            return
        nodes = sorted({user.node for user in self.hub.users if user.node})
        if not nodes:
            return
        alive = self.control.mget([self.heartbeat_key(node) for node in nodes])
        now = time.monotonic()
        for node, beating in zip(nodes, alive, strict=True):
            if beating is not None:
                self._missing_since.pop(node, None)
                continue
            # Missing for a whole TTL more, not once: after a Redis restart every key is
            # gone until each node's next beat.
            since = self._missing_since.setdefault(node, now)
            if now - since < HEARTBEAT_TTL or now - self._reaped.get(node, -1e9) < HEARTBEAT_TTL:
                continue
            self._reaped[node] = now
            users = [user for user in self.hub.users if user.node == node and user.registered]
            log.warning("backplane: node %s is gone; quitting its %d users", node, len(users))
            for user in users:
                quit_ = Quit(user.nick, SPLIT_REASON)
                self._send(_LOG, self._envelope(0, quit_, {"reap": node}), 0, force=True)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _shown(url: str) -> str:
    """The URL without a password, for the log."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return f"{scheme}://{rest}"
