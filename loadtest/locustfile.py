"""greenchat load test: thousands of simulated chatters on one server.

Scenarios (pick user classes by name, or tasks by tag; with none, all run, by weight):

* ``LobbyUser``   (tag ``lobby``)  - everyone in #lobby;
* ``RoomsUser``   (tag ``rooms``)  - one room each, room sizes Zipf-distributed;
* ``DmUser``      (tag ``dms``)    - private messages to random online users;
* ``ChurnUser``   (tag ``churn``)  - connect, chat briefly, quit, repeat;
* ``SlowReaderUser`` (tag ``slow-readers``) - joins a room like RoomsUser; a share
  (``--slow-share``) of them stop reading and should be dropped with SendQ exceeded;
* ``WebSocketUser`` (tag ``websocket``) - a LobbyUser over the web port's WebSocket,
  as the browser page talks, at ``--ws-host`` (default ``ws://`` on ``--host``'s host,
  port 8547): it chats with TCP users in the same run. It runs only when named.

``--host`` is ``irc://HOST:PORT`` (``ircs://`` for TLS) or the web port's WebSocket,
``ws://HOST:PORT/`` (``wss://``): then every user connects over WebSocket.

``--sasl``: every user logs in to an account named after its nick with SASL
SCRAM-SHA-256 while connecting (``--sasl-password``, default ``locust-pass``),
creating it with NickServ on first use; run twice for a storm of logins only.

Example (headless, CSV and HTML reports; the server: ``greenchat-serve``)::

    locust -f loadtest/locustfile.py --headless -u 500 -r 100 -t 60s \\
        --host irc://127.0.0.1:8546 --csv results/rooms --html results/rooms.html RoomsUser
    # browsers and TCP clients in one lobby:
    locust -f loadtest/locustfile.py --headless -u 200 -r 50 -t 60s \\
        --host irc://127.0.0.1:8546 LobbyUser WebSocketUser
"""

from __future__ import annotations

import random

from ircuser import DELIVERIES, ONLINE, IrcUser, zipf_room
from locust import between, events, tag, task
from locust.runners import MasterRunner, WorkerRunner


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("greenchat")
    group.add_argument(
        "--msg-interval", type=float, default=10.0,
        help="mean seconds between one user's messages (default 10)",
    )  # fmt: skip
    group.add_argument("--msg-size", type=int, default=80, help="bytes of text per message")
    group.add_argument(
        "--sample-every", type=int, default=10,
        help="report every k-th delivery as a 'deliver' event; count the rest (default 10)",
    )  # fmt: skip
    group.add_argument("--rooms", type=int, default=100, help="rooms for RoomsUser (default 100)")
    group.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of room sizes")
    group.add_argument(
        "--slow-share", type=float, default=0.2,
        help="share of SlowReaderUsers that stop reading (default 0.2)",
    )  # fmt: skip
    group.add_argument(
        "--churn-messages", type=int, default=3, help="messages per ChurnUser visit (default 3)"
    )
    group.add_argument(
        "--irc-timeout", type=float, default=30.0, help="seconds to wait for a reply (default 30)"
    )
    group.add_argument(
        "--ws-host", default=None,
        help="ws://HOST:PORT/ for WebSocketUser (default: --host's host, port 8547)",
    )  # fmt: skip
    group.add_argument(
        "--sasl", action="store_true",
        help="every user logs in with SASL SCRAM-SHA-256 as its nick (a 'login' event), "
        "making the account with NickServ on first use",
    )  # fmt: skip
    group.add_argument(
        "--sasl-password", default="locust-pass",
        help="the password of every --sasl account (default locust-pass)",
    )  # fmt: skip


def _interval(user: IrcUser) -> float:
    mean = user.options.msg_interval
    return random.uniform(0.5 * mean, 1.5 * mean)


class LobbyUser(IrcUser):
    weight = 1
    wait_time = _interval

    def channels_to_join(self) -> list[str]:
        return ["#lobby"]

    @tag("lobby")
    @task
    def chat(self) -> None:
        self.say("#lobby")


class RoomsUser(IrcUser):
    weight = 6
    wait_time = _interval

    def channels_to_join(self) -> list[str]:
        room = zipf_room(self.options.rooms, self.options.zipf, random.Random())
        return [f"#room{room}"]

    @tag("rooms")
    @task
    def chat(self) -> None:
        if self.channels:
            self.say(self.channels[0])


class DmUser(IrcUser):
    weight = 2
    wait_time = _interval

    @tag("dms")
    @task
    def chat(self) -> None:
        others = [nick for nick in ONLINE if nick != self.client.nick]
        if others:
            self.say(random.choice(others))


class ChurnUser(IrcUser):
    weight = 1
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        """Nothing: every task run is a whole visit."""

    def on_stop(self) -> None:
        if getattr(self, "client", None) is not None and not self.client.stopped.is_set():
            self.disconnect()

    @tag("churn")
    @task
    def visit(self) -> None:
        self.connect()
        self.join("#churn")
        for _ in range(self.options.churn_messages):
            self.say("#churn")
            self.client.sync(timeout=self.options.irc_timeout)
        self.disconnect()


class SlowReaderUser(RoomsUser):
    weight = 1

    def on_start(self) -> None:
        super().on_start()
        if random.random() < self.options.slow_share:
            self.stop_reading()

    @tag("slow-readers")
    @task
    def chat(self) -> None:
        if self.channels and not self.stuck:
            self.say(self.channels[0])


class WebSocketUser(LobbyUser):
    """A lobby chatter that connects over WebSocket, whatever ``--host`` is."""

    websocket = True

    @tag("websocket")
    @task
    def chat(self) -> None:
        self.say("#lobby")


@events.init.add_listener
def _websocket_only_when_asked(environment, runner, **_kwargs) -> None:
    """A run that names no class leaves WebSocketUser out: it needs the web port.

    Its weight cannot say so: locust drops a class of weight 0 even when it is named.
    """
    if isinstance(runner, WorkerRunner):
        return  # the master says which classes its workers spawn
    named = getattr(environment.parsed_options, "user_classes", None) or []
    if WebSocketUser.__name__ not in named and WebSocketUser in environment.user_classes:
        environment.user_classes.remove(WebSocketUser)


@events.quitting.add_listener
def _summary(environment, **_kwargs) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    counts = ", ".join(f"{key} {value}" for key, value in sorted(DELIVERIES.items()))
    print(f"greenchat load test (this process): {counts or 'nothing counted'}", flush=True)
