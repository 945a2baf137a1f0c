"""A bot built on the third-party ``irc`` library (jaraco/irc) chats with a raw client,
and registers its nick as an account with NickServ."""

from __future__ import annotations

import threading
import time

import irc.client
import pytest

pytestmark = pytest.mark.e2e


class EchoBot:
    """Joins #lobby, answers '!ping' with 'pong <nick>' and records what it saw."""

    def __init__(self, port: int) -> None:
        self.reactor = irc.client.Reactor()
        self.conn = self.reactor.server().connect("127.0.0.1", port, "libbot")
        self.joined = threading.Event()
        self.seen: list[tuple[str, str, str]] = []
        self.topic_seen = threading.Event()
        self.stop = threading.Event()
        for event, handler in (
            ("welcome", self.on_welcome),
            ("join", self.on_join),
            ("pubmsg", self.on_pubmsg),
            ("topic", self.on_topic),
        ):
            self.conn.add_global_handler(event, handler)

    def on_welcome(self, conn, event) -> None:
        conn.join("#lobby")

    def on_join(self, conn, event) -> None:
        if event.source.nick == conn.get_nickname():
            self.joined.set()

    def on_pubmsg(self, conn, event) -> None:
        text = event.arguments[0]
        self.seen.append((event.source.nick, event.target, text))
        if text == "!ping":
            conn.privmsg(event.target, f"pong {event.source.nick}")
        elif text == "!topic":
            conn.topic(event.target, "set by the bot")

    def on_topic(self, conn, event) -> None:
        self.topic_seen.set()

    def run(self, deadline: float) -> None:
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.reactor.process_once(timeout=0.05)
        self.conn.quit("bot done")
        self.reactor.process_once(timeout=0.1)


def test_library_bot_answers_raw_client(server, connect):
    bot = EchoBot(server.port)
    thread = threading.Thread(target=bot.run, args=(time.monotonic() + 20,), daemon=True)
    thread.start()
    try:
        assert bot.joined.wait(10), "bot never joined"
        human = connect("human").join("#lobby")
        assert any(line.endswith(" 353 human = #lobby :@libbot human") for line in human.lines)
        human.send("PRIVMSG #lobby :!ping")
        human.expect(r"^:libbot!~libbot@127\.0\.0\.1 PRIVMSG #lobby :pong human$")
        human.send("PRIVMSG #lobby :!topic")
        human.expect(r"^:libbot!\S+ TOPIC #lobby :set by the bot$")
        assert bot.topic_seen.wait(5)
        assert ("human", "#lobby", "!ping") in bot.seen
    finally:
        bot.stop.set()
        thread.join(5)
    human.expect(r"^:libbot!\S+ QUIT :Quit: bot done$")


class RegisteringBot:
    """Once welcomed, registers its nick with NickServ and records the replies."""

    def __init__(self, port: int, password: str) -> None:
        self.reactor = irc.client.Reactor()
        self.conn = self.reactor.server().connect("127.0.0.1", port, "accbot")
        self.password = password
        self.notices: list[str] = []
        self.created = threading.Event()
        self.logged_in: list[str] = []  # accounts from 900 (RPL_LOGGEDIN)
        self.said_logged_in = threading.Event()
        self.stop = threading.Event()
        self.conn.add_global_handler("welcome", self.on_welcome)
        self.conn.add_global_handler("privnotice", self.on_privnotice)
        self.conn.add_global_handler("loggedin", self.on_loggedin)

    def on_welcome(self, conn, event) -> None:
        conn.privmsg("NickServ", f"REGISTER {self.password}")

    def on_privnotice(self, conn, event) -> None:
        if event.source.nick == "NickServ":
            self.notices.append(event.arguments[0])
            if event.arguments[0].startswith("Account created"):
                self.created.set()

    def on_loggedin(self, conn, event) -> None:
        self.logged_in.append(event.arguments[1])  # (nick!user@host, account, text)
        self.said_logged_in.set()

    def run(self, deadline: float) -> None:
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.reactor.process_once(timeout=0.05)
        self.conn.quit("bot done")
        self.reactor.process_once(timeout=0.1)


def test_library_bot_registers_with_nickserv(server, connect):
    bot = RegisteringBot(server.port, "bot-pass-1234")
    thread = threading.Thread(target=bot.run, args=(time.monotonic() + 20,), daemon=True)
    thread.start()
    try:
        assert bot.created.wait(10), f"no 'Account created' from NickServ: {bot.notices}"
        assert bot.notices[-1] == "Account created: accbot. You are now logged in."
        # NickServ's notice goes out before the login is done (loading read markers may
        # wait for the store); the 900 comes with the login itself.
        assert bot.said_logged_in.wait(10), "no 900 after the account was created"
        human = connect("human")
        human.send("WHOIS accbot")
        human.expect(r" 330 human accbot accbot :is logged in as$")
        human.send("PRIVMSG NickServ :INFO accbot")
        human.expect(r"NOTICE human :Logged in now as: accbot$")
        assert bot.said_logged_in.wait(5) and bot.logged_in == ["accbot"]
    finally:
        bot.stop.set()
        thread.join(5)
