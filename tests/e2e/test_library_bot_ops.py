"""A channel operator bot on the ``irc`` library (jaraco/irc): MODE, TOPIC and KICK.

The bot joins ``#ops`` first, so it operates the channel, and two raw clients
(alice and bob) join after it. The bot runs its reactor in a thread; the test
hands it commands through a queue and waits for the events it records, each
wait with a deadline. Replies follow modern.ircdocs.horse.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import irc.client
import pytest
from transcript import IrcClient

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

CHANNEL = "#ops"
DEADLINE = 5.0


@dataclass(frozen=True)
class Seen:
    """One event as the bot's library parsed it."""

    type: str
    source: str
    target: str
    arguments: tuple[str, ...]


class OpsBot:
    """Joins ``#ops`` and runs commands handed to it from the test thread."""

    def __init__(self, port: int, nick: str = "opbot") -> None:
        self.nick = nick
        self.reactor = irc.client.Reactor()
        self.conn = self.reactor.server().connect("127.0.0.1", port, nick)
        self.conn.add_global_handler("welcome", lambda conn, _: conn.join(CHANNEL))
        self.conn.add_global_handler("all_events", self._record, -10)
        self.seen: list[Seen] = []
        self._changed = threading.Condition()
        self._commands: queue.SimpleQueue[Callable[[irc.client.ServerConnection], object]]
        self._commands = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ops-bot", daemon=True)

    def _record(self, conn: irc.client.ServerConnection, event: irc.client.Event) -> None:
        source = event.source.nick if event.source and "!" in event.source else event.source
        seen = Seen(event.type, source or "", event.target or "", tuple(event.arguments))
        with self._changed:
            self.seen.append(seen)
            self._changed.notify_all()

    def _run(self) -> None:
        deadline = time.monotonic() + 25
        while not self._stop.is_set() and time.monotonic() < deadline:
            while not self._commands.empty():
                self._commands.get()(self.conn)
            self.reactor.process_once(timeout=0.02)
        if self.conn.is_connected():
            self.conn.quit("bot done")
            self.reactor.process_once(timeout=0.1)

    def start(self) -> OpsBot:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def do(self, command: Callable[[irc.client.ServerConnection], object]) -> None:
        """Run ``command(connection)`` on the bot's thread."""
        self._commands.put(command)

    def wait(self, type_: str, **match: object) -> Seen:
        """The first recorded event of ``type_`` whose fields equal ``match``."""
        deadline = time.monotonic() + DEADLINE
        with self._changed:
            while True:
                for seen in self.seen:
                    if seen.type == type_ and all(getattr(seen, k) == v for k, v in match.items()):
                        return seen
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    recent = [s for s in self.seen if s.type != "all_raw_messages"][-15:]
                    raise AssertionError(f"bot saw no {type_} {match}; recent: {recent}")
                self._changed.wait(remaining)


@dataclass
class Ops:
    """The bot operating ``#ops`` with two plain members."""

    bot: OpsBot
    alice: IrcClient
    bob: IrcClient


@pytest.fixture
def ops(server, connect) -> Iterator[Ops]:
    bot = OpsBot(server.port).start()
    try:
        bot.wait("join", source=bot.nick, target=CHANNEL)
        bot.wait("endofnames")
        alice = connect("alice").join(CHANNEL)
        bob = connect("bob").join(CHANNEL)
        assert any(line.endswith(f" 353 bob = {CHANNEL} :@opbot alice bob") for line in bob.lines)
        bot.wait("join", source="bob", target=CHANNEL)
        yield Ops(bot, alice, bob)
    finally:
        bot.stop()


def test_topic_set_by_operator(ops: Ops) -> None:
    ops.bot.do(lambda c: c.topic(CHANNEL, "ops drill at noon"))
    for member in (ops.alice, ops.bob):
        member.expect(rf"^:opbot!\S+ TOPIC {CHANNEL} :ops drill at noon$")
    ops.bot.wait("topic", source="opbot", target=CHANNEL, arguments=("ops drill at noon",))
    ops.alice.send(f"TOPIC {CHANNEL}")
    ops.alice.expect(rf" 332 alice {CHANNEL} :ops drill at noon$")
    ops.alice.expect(rf" 333 alice {CHANNEL} opbot\S* \d+$")


def test_mode_t_limits_topic_to_operators(ops: Ops) -> None:
    # +t is often a default: "+t" may be a no-op, so expect "-t" and then "+t".
    for change in ("+t", "-t"):
        ops.bot.do(lambda c, change=change: c.mode(CHANNEL, change))
    ops.alice.expect(rf"^:opbot!\S+ MODE {CHANNEL} -t$")
    ops.alice.send(f"TOPIC {CHANNEL} :anyone may")
    ops.bob.expect(rf"^:alice!\S+ TOPIC {CHANNEL} :anyone may$")
    ops.bot.wait("topic", source="alice", arguments=("anyone may",))

    ops.bot.do(lambda c: c.mode(CHANNEL, "+t"))
    ops.alice.expect(rf"^:opbot!\S+ MODE {CHANNEL} \+t$")
    ops.bot.wait("mode", source="opbot", target=CHANNEL, arguments=("+t",))
    ops.alice.send(f"TOPIC {CHANNEL} :not any more")
    ops.alice.expect(rf" 482 alice {CHANNEL} :")


def test_mode_m_voice_and_op(ops: Ops) -> None:
    ops.bot.do(lambda c: c.mode(CHANNEL, "+m"))
    for member in (ops.alice, ops.bob):
        member.expect(rf"^:opbot!\S+ MODE {CHANNEL} \+m$")

    ops.bob.send(f"PRIVMSG {CHANNEL} :can anyone hear me")
    ops.bob.expect(rf" 404 bob {CHANNEL} :")

    ops.bot.do(lambda c: c.mode(CHANNEL, "+v alice"))
    for member in (ops.alice, ops.bob):
        member.expect(rf"^:opbot!\S+ MODE {CHANNEL} \+v alice$")
    ops.alice.send(f"PRIVMSG {CHANNEL} :voiced and heard")
    ops.bob.expect(rf"^:alice!\S+ PRIVMSG {CHANNEL} :voiced and heard$")
    ops.bot.wait("pubmsg", source="alice", arguments=("voiced and heard",))

    ops.bot.do(lambda c: c.mode(CHANNEL, "+o bob"))
    for member in (ops.alice, ops.bob):
        member.expect(rf"^:opbot!\S+ MODE {CHANNEL} \+o bob$")
    ops.bot.wait("mode", source="opbot", arguments=("+o", "bob"))
    ops.bob.send(f"PRIVMSG {CHANNEL} :operators may speak")
    ops.alice.expect(rf"^:bob!\S+ PRIVMSG {CHANNEL} :operators may speak$")
    ops.bob.send(f"NAMES {CHANNEL}")
    ops.bob.expect(rf" 353 bob = {CHANNEL} :@opbot \+alice @bob$")


def test_kick_removes_a_member(ops: Ops) -> None:
    ops.bot.do(lambda c: c.kick(CHANNEL, "alice", "behave"))
    for member in (ops.alice, ops.bob):
        member.expect(rf"^:opbot!\S+ KICK {CHANNEL} alice :behave$")
    ops.bot.wait("kick", source="opbot", target=CHANNEL, arguments=("alice", "behave"))

    ops.bob.send(f"NAMES {CHANNEL}")
    ops.bob.expect(rf" 353 bob = {CHANNEL} :@opbot bob$")
    ops.alice.send(f"PRIVMSG {CHANNEL} :still here?")
    ops.alice.expect(rf" 404 alice {CHANNEL} :")  # +n: outsiders cannot send

    ops.bob.send(f"KICK {CHANNEL} opbot :not an operator")
    ops.bob.expect(rf" 482 bob {CHANNEL} :")
