"""Hypothesis over command dispatch: random lines from several sessions, invariants after each.

A :class:`ChatServer` is built but never started: each session is a real
:class:`ServerSession` over a ``socketpair``, and lines go through a real
``LineFramer`` and ``ServerSession._handle_line`` (decode, parse, dispatch), as
the reader loop would hand them over. The lines come from a grammar that
hits real state (nicks that collide under rfc1459 case mapping, channels
that exist, modes with and without their parameters) plus some fully random
ones. After every step the hub, the connections and the presence tables
must agree, no handler may have logged an internal error, and every line
the server sent must be a well-formed IRC line.

Closing is cooperative in the server (``disconnect`` only marks the
connection; its reader's ``_finish`` cleans up later), so a closing session
stays in the hub until a ``Reap`` step finishes it: other sessions may act
on it in between, as they can on a real server.

The over-long replies this test found (ERROR, PONG and CAP echoing a long
parameter) are pinned by ``test_reply_fits_512_bytes``.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import gevent
import pytest
from gevent import socket
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from greenchat.protocol.casemap import casefold
from greenchat.protocol.framing import MAX_LINE_BYTES, LineFramer
from greenchat.protocol.message import parse
from greenchat.server.commands import COMMANDS
from greenchat.server.config import ServerConfig
from greenchat.server.oper import hash_password
from greenchat.server.outgoing import variant_of
from greenchat.server.server import SUPPORTED_CAPS, ChatServer
from greenchat.server.session import Session as ServerSession
from greenchat.server.welcome import CHANNEL_MODES

# Hashed once: a scrypt hash costs ~30 ms, and each correct OPER costs as much again.
OPER_PASSWORD = "hunter2"
OPER_HASH = hash_password(OPER_PASSWORD)
MAX_OPEN = 5  # sessions that may send at once

# Small limits so the fuzzer reaches the "full" branches within a few steps.
CONFIG = {
    "port": 0,
    "nicklen": 9,
    "max_channels": 3,
    "max_list_entries": 3,
    "monitor_limit": 3,
    "max_targets": 4,
    "whowas_size": 5,
    "sendq": 16 * 1024 * 1024,  # output is drained every step; never the limit here
    "close_grace": 0.1,
    "opers": {"admin": OPER_HASH, "broken": "scrypt$zz$zz"},
}


# -- the grammar ---------------------------------------------------------------

# Nicks: bob[ == BOB{ and Carol| == carol\ under rfc1459; then unknown and invalid ones.
VALID_NICKS = ["alice", "Alice", "ALICE", "bob[", "BOB{", "Carol|", "carol\\", "dave", "g1", "G2"]
NICKS = [*VALID_NICKS, "ghost", "toolongnick", "9lives", "-dash", "#a", "a,b", "a*", "n!u@h"]
# Channels: #[x] == #{X}; '&c' and '#' and '#x:y' are invalid, so is the long one.
VALID_CHANNELS = ["#a", "#A", "#b", "#[x]", "#{X}"]
CHANNELS = [*VALID_CHANNELS, "#B", "#é", "&c", "#", "#x:y", "#" + "c" * 70]
CHANNEL_LISTS = ["#a,#b", "#a,#A", "#a,,#b", "#a,#b,#B,#[x]", "0"]
TEXTS = [
    "",
    "hi",
    "hello world",
    ":",
    "::x",
    " lead",
    "é ünï 🎉",
    "a,b,c",
    "\x01ACTION waves\x01",
    "x" * 200,
    "y" * 480,  # near the 512-byte limit: over it (dropped) after most commands
]
KEYS = ["secret", "k", ":bad", "a,b", "z" * 40, "*"]
LIMITS = ["1", "2", "0", "007", "-1", "10000000000", "\u0661"]  # Arabic-Indic 1: int() takes it
MASKS = ["*!*@*", "alice", "bob[*", "*!~*@*", "x!y@z", ":m", "*"]
MODE_STRINGS = [
    "+o", "-o", "+v", "-v", "+b", "-b", "+k", "-k", "+l", "-l", "+i", "-i", "+m", "-m",
    "+n", "-n", "+t", "-t", "+s", "-s", "+p", "+ovb", "+kl", "-o+v", "+ooooo", "+bbbb",
    "+z", "+", "-", "+iw", "-w", "+w", "+x",
]  # fmt: skip
USER_MODE_STRINGS = ["+i", "-i", "+w", "-w", "+o", "-o", "+iw", "-iw+x", "+Z", ""]
CAP_NAMES = sorted(SUPPORTED_CAPS)
TAGS = ["@label=L1 ", "@+draft/react=x ", "@label=a\\sb;+t=1 ", "@+x=" + "v" * 5000 + " "]


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, chosen with the given weights.

    ``st.one_of`` weighs its distinct branches alike (a branch repeated is
    counted once), so weights need an explicit draw.
    """
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(min_value=0, max_value=len(pool) - 1).flatmap(pool.__getitem__)


nicks = st.sampled_from(NICKS)
channels = weighted((3, st.sampled_from(VALID_CHANNELS)), (1, st.sampled_from(CHANNELS)))
channel_lists = st.sampled_from(CHANNELS + CHANNEL_LISTS)
texts = st.sampled_from(TEXTS) | st.text(max_size=20).filter(lambda t: "\n" not in t)
targets = st.sampled_from(
    [*NICKS, *CHANNELS, "alice,#a", "#a,#A,#b", "alice,bob[,Carol|,dave,#a", ",", ""]
)
mode_arg = st.sampled_from(NICKS + KEYS + LIMITS + MASKS)
mode_args = st.lists(mode_arg, max_size=5)
channel_modes = st.sampled_from(MODE_STRINGS) | st.text(
    "+-ovbeIklimnpstCUcqx", min_size=1, max_size=6
)
words = st.sampled_from(NICKS + CHANNELS + KEYS + LIMITS + MASKS + ["+", "-", "*", "0", "302"])
one_of_ = st.sampled_from


def cmd(name: str, *parts: str | st.SearchStrategy, text: bool = False) -> st.SearchStrategy[str]:
    """Lines ``name <part>...``: a part is a fixed word or a strategy (of a word or
    a list of words); ``text`` adds a trailing parameter (always with ':')."""
    strategies = [p if isinstance(p, st.SearchStrategy) else st.just(p) for p in parts]
    if text:
        strategies.append(texts.map(lambda t: ":" + t))

    def join(values: tuple) -> str:
        flat = [w for v in values for w in (v if isinstance(v, list) else [v])]
        return " ".join([name, *flat])

    return st.tuples(*strategies).map(join)


# Repeated entries weigh more: the commands that change nicks, channels and modes.
command_lines = st.one_of(
    cmd("JOIN", channel_lists),
    cmd("JOIN", channels),
    cmd("JOIN", channels),
    cmd("JOIN", channels, one_of_(KEYS)),
    cmd("PART", channel_lists, text=True),
    cmd("PART", channels),
    cmd("KICK", channels, nicks, text=True),
    cmd("KICK", channels, nicks),
    cmd("KICK", channel_lists, "alice,bob[,ghost"),
    cmd("NICK", nicks),
    cmd("NICK", nicks),
    cmd("MODE", channels, channel_modes, mode_args),
    cmd("MODE", channels, channel_modes, mode_args),
    cmd("MODE", channels, channel_modes, mode_args),
    cmd("MODE", channels, one_of_(["+b", "-b", "+k", "-k", "+l", "+o", "-o", "+v"]), mode_arg),
    cmd("MODE", channels),
    cmd("MODE", nicks, one_of_(USER_MODE_STRINGS)),
    cmd("TOPIC", channels, text=True),
    cmd("TOPIC", channels),
    cmd("RENAME", channels, channels, text=True),
    cmd("INVITE", nicks, channels),
    cmd("INVITE", nicks, channels),
    cmd("PRIVMSG", targets, text=True),
    cmd("NOTICE", targets, text=True),
    cmd("TAGMSG", targets),
    cmd("QUIT", text=True),
    cmd("WHO", words, one_of_(["", "o", "%tcuihsnfdlaor,7"])),
    cmd("WHOIS", nicks),
    cmd("WHOIS", "x", "alice,bob[,ghost"),
    cmd("WHOWAS", nicks, one_of_(["", "1", "-1", "x"])),
    cmd("NAMES", channel_lists),
    cmd("LIST", one_of_(["", ">0", "<2", "#a,>0", "#b"])),
    cmd("AWAY", text=True),
    cmd("AWAY"),
    cmd("MONITOR", one_of_("+-"), "alice,BOB{,ghost,9x,g1"),
    cmd("MONITOR", "+", nicks),
    cmd("MONITOR", one_of_(["C", "L", "S", "X", "-"])),
    cmd("CAP", "REQ", st.lists(one_of_(CAP_NAMES), max_size=3).map(lambda c: ":" + " ".join(c))),
    cmd("CAP", one_of_(["LS 302", "LS", "END", "LIST", "REQ :-echo-message", "REQ bogus", "X"])),
    cmd("SETNAME", text=True),
    # Rare: a check of the "admin" password costs ~30 ms ("broken" has a malformed hash).
    cmd("OPER", one_of_(["admin", "broken", "nobody"]), one_of_([OPER_PASSWORD, "wrong"])),
    cmd("KILL", nicks, text=True),
    cmd("CHGHOST", nicks, one_of_(["u", "~new", "x" * 20]), one_of_(["h.example", "-bad", "::1"])),
    cmd("WALLOPS", text=True),
    cmd("ISON", st.lists(nicks, max_size=4)),
    cmd("USERHOST", st.lists(nicks, max_size=4)),
    one_of_(["PING x", "PONG", "MOTD", "LUSERS", "VERSION", "TIME ghost", "INFO", "ADMIN"]),
    one_of_(["HELP", "HELP join", "HELPOP nope", "LINKS", "ISUPPORT", "LANGUAGE en de"]),
    one_of_(["INVITE", "WEBIRC pw gw host 1.2.3.4", "LIST C<5,T>1,!#a*", "AWAY *"]),
    one_of_(
        [
            "BATCH +m draft/multiline #a",
            "@batch=m PRIVMSG #a :part",
            "BATCH -m",
            "@batch=m;draft/multiline-concat PRIVMSG #a :more",
            "BATCH +x other #a",
        ]
    ),
    one_of_(["PASS x", "USER a b c :d"]),
)


@st.composite
def any_command_lines(draw) -> str:
    """Every name in the command table, upper or lower case, with arbitrary words."""
    name = draw(st.sampled_from(sorted(COMMANDS)))
    if draw(st.booleans()):
        name = name.lower()
    params = draw(st.lists(words, max_size=4))
    extra = draw(st.none() | texts)
    if extra is not None:
        params.append(":" + extra)
    return " ".join([name, *params])


tags = weighted((14, st.just("")), (3, st.sampled_from(TAGS[:3])), (1, st.just(TAGS[3])))
# Mostly grammar lines (a few with tags); some from the whole command table; some noise.
input_lines = weighted(
    (14, st.tuples(tags, command_lines).map("".join)),
    (3, st.tuples(tags, any_command_lines()).map("".join)),
    (1, st.binary(max_size=60)),
    (1, st.text(max_size=60)),
)


# What a step does: mostly a line from one of the open sessions (``who`` is
# taken modulo their number), sometimes a session comes or goes.
@dataclass(frozen=True)
class Send:
    who: int
    line: str | bytes


@dataclass(frozen=True)
class Connect:
    nick: str
    caps: tuple[str, ...]
    register: bool


@dataclass(frozen=True)
class Reap:
    """Finish every closing session (QUIT, KILL, a wrong OPER password)."""


@dataclass(frozen=True)
class HangUp:
    who: int


who = st.integers(min_value=0, max_value=MAX_OPEN - 1)
connects = st.builds(
    Connect,
    st.sampled_from(VALID_NICKS),
    st.lists(st.sampled_from(CAP_NAMES), unique=True, max_size=5).map(tuple),
    st.sampled_from([True, True, True, False]),
)


# Mostly a line; now and then a session comes or goes.
actions = weighted(
    (16, st.builds(Send, who, input_lines)),
    (2, connects),
    (1, st.just(Reap())),
    (1, st.builds(HangUp, who)),
)


# -- sessions ------------------------------------------------------------------


@dataclass(eq=False)
class Session:
    """One client: the server-side ServerSession, our end of its socket, its framer."""

    conn: ServerSession
    peer: socket.socket
    framer: LineFramer
    pending: bytes = b""  # output received but not yet a complete line

    def feed(self, data: bytes) -> None:
        """Hand complete lines to the connection, as its reader would."""
        for item in self.framer.feed(data):
            if self.conn.close_reason is not None:
                break  # the reader stops handling lines once closing starts
            self.conn._handle_line(item)

    def send(self, text: str) -> None:
        self.feed(text.encode() + b"\r\n")

    def drain(self) -> list[bytes]:
        """What the server sent so far, as complete lines (never blocks)."""
        data = b""
        while True:
            try:
                chunk = self.peer.recv(1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        *complete, self.pending = (self.pending + data).split(b"\n")
        return complete


class ErrorRecords(logging.Handler):
    """Collects ERROR records: a handler's exception is caught and logged by the server."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


# -- the state machine ---------------------------------------------------------


class DispatchMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.server = ChatServer(ServerConfig(**CONFIG))
        self.hub = self.server.hub
        self.sessions: list[Session] = []  # open and closing, not yet finished
        self.finished: list[ServerSession] = []
        self.bad_output: list[bytes] = []
        self.ports = itertools.count(40000)
        self.guests = itertools.count(1)
        # "No exception escapes": the server logs what its handlers raise, and
        # gevent reports what a greenlet (a writer) raises to the hub.
        self.errors = ErrorRecords()
        logging.getLogger("greenchat").addHandler(self.errors)
        self.gevent_hub = gevent.get_hub()
        self.gevent_hub.handle_error = self._greenlet_error

    def teardown(self) -> None:
        try:
            for session in list(self.sessions):
                self._finish(session, "Test over")
            self.pump()
            assert not self.hub.users and not self.hub.nicks and not self.hub.channels
            assert not self.server.sessions
            assert self.hub.registered_count == 0 and self.hub.invisible_count == 0
            presence = self.hub.presence
            assert not presence.watchers and not presence.opers and not presence.wallops
        finally:
            logging.getLogger("greenchat").removeHandler(self.errors)
            del self.gevent_hub.handle_error

    def _greenlet_error(self, context, type_, value, tb) -> None:
        self.errors.records.append(f"greenlet {context!r}: {type_.__name__}: {value}")

    # -- helpers -------------------------------------------------------------

    @property
    def open_sessions(self) -> list[Session]:
        return [s for s in self.sessions if s.conn.close_reason is None]

    def pump(self) -> None:
        """Let the flusher send (it runs when the hub does) and read everything sent."""
        for _ in range(20):
            gevent.sleep(0)
            for session in self.sessions:
                self._check_output(session.drain())
            if not any(s.conn.writer for s in self.sessions):
                break

    def _check_output(self, lines: list[bytes]) -> None:
        for raw in lines:
            if not _well_formed(raw):
                self.bad_output.append(raw)

    def _finish(self, session: Session, reason: str) -> None:
        """What the reader greenlet does when the stream ends (ServerSession.serve)."""
        conn = session.conn
        self._check_output(session.drain())  # room for the last lines
        conn._finish(conn.close_reason or reason)
        self._check_output(session.drain())
        session.peer.close()
        self.sessions.remove(session)
        self.finished.append(conn)

    def _connect(self, nick: str, caps: tuple[str, ...], register: bool) -> None:
        server_end, peer = socket.socketpair()
        peer.settimeout(0)  # drain() must never block
        conn = ServerSession(self.server, server_end, ("127.0.0.1", next(self.ports)))
        self.server.sessions.add(conn)  # as ChatServer._serve does
        self.hub.add_user(conn.user)
        session = Session(conn, peer, LineFramer())
        self.sessions.append(session)
        if caps:
            session.send("CAP LS 302")
            session.send("CAP REQ :" + " ".join(caps))
        session.send(f"NICK {nick}")
        if not conn.user.nick:  # taken: a nick nobody else uses
            session.send(f"NICK guest{next(self.guests)}")
        if register:
            session.send("USER u 0 * :Real Name")
            if caps:
                session.send("CAP END")
            assert conn.user.registered
        self.pump()

    # -- the one rule: a step is one action -------------------------------------

    @initialize(
        nicks=st.lists(st.sampled_from(VALID_NICKS), min_size=3, max_size=3),
        joins=st.lists(st.sampled_from(["", "#a", "#a,#b", "#A,#[x]"]), min_size=3, max_size=3),
        oper=st.sampled_from([False, False, True]),
    )
    def start(self, nicks: list[str], joins: list[str], oper: bool) -> None:
        """Three users, most already sharing channels, the first maybe an operator:
        the interesting states come sooner (a random OPER line rarely succeeds)."""
        for nick, channels in zip(nicks, joins, strict=True):
            self._connect(nick, (), register=True)
            if channels:
                self.sessions[-1].send(f"JOIN {channels}")
        if oper:
            self.sessions[0].send(f"OPER admin {OPER_PASSWORD}")
            assert "o" in self.sessions[0].conn.user.modes
        self.pump()

    @rule(action=actions)
    def step(self, action: Send | Connect | Reap | HangUp) -> None:
        sessions = self.open_sessions
        match action:
            case Send(who, text) if sessions:
                data = text if isinstance(text, bytes) else text.encode()
                sessions[who % len(sessions)].feed(data + b"\r\n")
            case Connect(nick, caps, register) if len(sessions) < MAX_OPEN:
                self._connect(nick, caps, register)
            case Reap():
                # The readers of closing connections see end-of-stream and clean up.
                for session in list(self.sessions):
                    if session.conn.close_reason is not None:
                        self._finish(session, "ServerSession closed")
            case HangUp(who) if sessions:
                # The client closed its socket: the reader finishes, no close_reason set.
                self._finish(sessions[who % len(sessions)], "ServerSession closed")
        self.pump()
        if not self.open_sessions:  # keep the run going: someone reconnects
            self._connect("alice", (), register=True)

    # -- invariants ------------------------------------------------------------

    @invariant()
    def no_internal_errors(self) -> None:
        assert not self.errors.records, "\n".join(self.errors.records)

    @invariant()
    def output_is_well_formed(self) -> None:
        assert not self.bad_output, self.bad_output[:3]

    @invariant()
    def sessions_are_the_hubs_connections(self) -> None:
        assert self.server.sessions == {s.conn for s in self.sessions}
        assert self.hub.users == {s.conn.user for s in self.sessions}

    @invariant()
    def nick_table_matches_connections(self) -> None:
        hub = self.hub
        named = [c for c in hub.users if c.nick]
        for conn in named:
            assert hub.nicks.get(casefold(conn.nick)) is conn, conn
        for key, conn in hub.nicks.items():
            assert conn in hub.users, (key, conn)
            assert key == casefold(conn.nick), (key, conn)
        assert len(hub.nicks) == len(named)

    @invariant()
    def registered_users_are_consistent(self) -> None:
        hub = self.hub
        registered = [c for c in hub.users if c.registered]
        for conn in registered:
            assert conn.nick and conn.username
            assert conn.prefix == f"{conn.nick}!{conn.username}@{conn.host}"
        for conn in hub.users:
            assert conn.variant == variant_of(conn.caps.enabled), conn
        assert hub.registered_count == len(registered)
        assert hub.invisible_count == sum("i" in c.modes for c in registered)

    @invariant()
    def channel_membership_agrees_both_ways(self) -> None:
        hub = self.hub
        for key, channel in hub.channels.items():
            assert key == channel.key == casefold(channel.name)
            assert channel.members, f"empty channel {channel.name} kept"
            for member, status in channel.members.items():
                assert member in hub.users and member.registered, member
                assert member.channels.get(key) is channel, (member, channel.name)
                assert status <= {"o", "v"}
        for conn in hub.users:
            assert len(conn.channels) <= self.server.config.max_channels
            for key, channel in conn.channels.items():
                assert hub.channels.get(key) is channel, (conn, key)
                assert conn in channel.members, (conn, key)

    @invariant()
    def channel_modes_are_valid(self) -> None:
        for channel in self.hub.channels.values():
            assert channel.modes <= set(CHANNEL_MODES)
            assert 0 <= channel.limit <= 1_000_000_000
            assert len(channel.bans) <= self.server.config.max_list_entries
            for folded, (mask, _setter, _when) in channel.bans.items():
                assert folded == casefold(mask)

    @invariant()
    def presence_matches_user_modes(self) -> None:
        conns = self.hub.users
        presence = self.hub.presence
        assert presence.opers == {c for c in conns if "o" in c.modes}
        assert presence.wallops == {c for c in conns if "w" in c.modes}
        for conn in conns:
            assert bool(conn.oper_name) == ("o" in conn.modes), conn

    @invariant()
    def monitor_lists_agree_both_ways(self) -> None:
        presence = self.hub.presence
        for conn in self.hub.users:
            assert len(conn.monitoring) <= self.server.config.monitor_limit
            for key, nick in conn.monitoring.items():
                assert key == casefold(nick)
                assert conn in presence.watchers.get(key, {}), (conn, key)
        for key, watching in presence.watchers.items():
            assert watching, f"empty watcher list for {key}"
            for conn in watching:
                assert conn in self.hub.users and key in conn.monitoring, (conn, key)

    @invariant()
    def finished_sessions_are_gone_everywhere(self) -> None:
        hub = self.hub
        members = {m for channel in hub.channels.values() for m in channel.members}
        watchers = {w for watching in hub.presence.watchers.values() for w in watching}
        nick_owners = set(hub.nicks.values())
        for session in self.finished:
            assert session.close_reason is not None
            assert session not in self.server.sessions
            conn = session.user
            assert conn not in hub.users and conn not in nick_owners
            assert conn not in members and conn not in watchers
            assert not conn.channels, conn
            assert conn not in hub.presence.opers and conn not in hub.presence.wallops


def _well_formed(raw: bytes) -> bool:
    """A server line: UTF-8, parses, body (after tags) within 512 bytes with CRLF."""
    if not raw.endswith(b"\r"):
        return False
    try:
        msg = parse(raw[:-1].decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and InvalidMessage both
        return False
    body = raw.split(b" ", 1)[1] if raw.startswith(b"@") else raw
    return msg is not None and len(body) + 1 <= MAX_LINE_BYTES


# About 10 s on a 2-core machine: 250 runs of up to 60 steps. Most of a run's
# cost is Hypothesis itself; a successful OPER adds ~30 ms of scrypt.
DispatchMachine.TestCase.settings = settings(
    max_examples=250,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_dispatch_state_machine = DispatchMachine.TestCase


@pytest.mark.parametrize(
    "text",
    [
        "QUIT :" + "y" * 480,
        "PING :" + "y" * 480,
        "CAP REQ :" + "x" * 500,
        "CAP REQ :" + "batch " * 83,
    ],
    ids=["ERROR after QUIT", "PONG", "CAP NAK", "CAP ACK of repeats"],
)
def test_reply_fits_512_bytes(text: str) -> None:
    """Found by the state machine: replies that echo a long parameter are clipped."""
    assert len(text) + 2 <= MAX_LINE_BYTES
    server = ChatServer(ServerConfig(port=0))
    server_end, peer = socket.socketpair()
    peer.settimeout(0)
    conn = ServerSession(server, server_end, ("127.0.0.1", 40000))
    server.sessions.add(conn)
    server.hub.add_user(conn.user)
    session = Session(conn, peer, LineFramer())
    session.send("NICK alice")
    session.send("USER u 0 * :Real Name")
    session.send(text)
    conn._finish(conn.close_reason or "Test over")  # flushes what is queued, then closes
    lines = session.drain()
    peer.close()
    assert [raw for raw in lines if len(raw) + 1 > MAX_LINE_BYTES] == []
