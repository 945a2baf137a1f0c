"""greenchat-join's display formatting: pure functions, no terminal, no sockets."""

from __future__ import annotations

import time
import zlib

import pytest

from greenchat.client.events import (
    ClientEvent,
    Connected,
    Disconnected,
    GaveUp,
    MessageEvent,
    Reconnecting,
    Registered,
    SaslFailed,
    SaslSucceeded,
)
from greenchat.client.format import (
    DIM,
    HIGHLIGHT,
    PALETTE,
    Formatter,
    clean,
    mentions,
    nick_color,
    timestamp,
    use_color,
)
from greenchat.client.terminal import ReconnectQuieter
from greenchat.protocol.message import parse

NOW = 1_700_000_000.0  # a fixed "now" for lines without server-time
COLOR = Formatter(color=True)
PLAIN = Formatter(color=False)


def show(line: str, me: str = "me", fmt: Formatter = PLAIN) -> str | None:
    result = fmt.message(parse(line), me, now=NOW)
    return None if result is None else result.text


# -- colours ------------------------------------------------------------------------


def test_nick_colour_is_stable_and_case_insensitive() -> None:
    # crc32, not hash(): the same in every process, whatever PYTHONHASHSEED is.
    assert nick_color("alice") == PALETTE[zlib.crc32(b"alice") % len(PALETTE)]
    assert nick_color("Alice") == nick_color("alice") == nick_color("ALICE")
    assert nick_color("Nick[a]") == nick_color("nick{A}")  # rfc1459 case mapping


def test_nick_colours_spread_over_the_palette() -> None:
    colours = {nick_color(f"user{i}") for i in range(200)}
    assert colours <= set(PALETTE) and len(colours) >= 10
    assert len(PALETTE) == 12


def test_nick_is_drawn_in_its_colour(utc) -> None:
    text = show(":alice!a@h PRIVMSG #lobby :hi", fmt=COLOR)
    assert f"\x1b[{nick_color('alice')}malice\x1b[0m" in text


def test_no_color_means_no_escape_sequences_at_all() -> None:
    lines = [
        ":alice!a@h PRIVMSG #lobby :hi me",
        ":alice!a@h PRIVMSG #lobby :\x01ACTION waves\x01",
        ":alice!a@h JOIN #lobby",
        ":alice!a@h PART #lobby :bye",
        ":alice!a@h QUIT :gone",
        ":alice!a@h NICK alicia",
        ":alice!a@h KICK #lobby bob :out",
        ":srv 401 me bob :No such nick/channel",
        "ERROR :Closing link",
    ]
    for line in lines:
        text = show(line)
        assert text is not None and "\x1b" not in text, line


def test_use_color_follows_the_flag_and_no_color_env() -> None:
    assert use_color(False, {}) is True
    assert use_color(True, {}) is False
    assert use_color(False, {"NO_COLOR": "1"}) is False
    assert use_color(False, {"NO_COLOR": ""}) is True  # no-color.org: empty means unset


# -- messages ---------------------------------------------------------------------------


def test_channel_message(utc) -> None:
    assert show(":alice!a@h PRIVMSG #lobby :hello there") == "22:13 #lobby <alice> hello there"


def test_action_shows_as_star_nick_text(utc) -> None:
    line = ":alice!a@h PRIVMSG #lobby :\x01ACTION waves\x01"
    assert show(line) == "22:13 #lobby * alice waves"
    assert show(":alice!a@h PRIVMSG me :\x01ACTION pokes you\x01") == "22:13 * alice pokes you"


def test_other_ctcp_requests_are_not_shown() -> None:
    assert show(":alice!a@h PRIVMSG me :\x01VERSION\x01") is None


def test_private_and_own_messages(utc) -> None:
    assert show(":alice!a@h PRIVMSG me :psst") == "22:13 *alice* psst"
    assert show(":me!m@h PRIVMSG alice :hi") == "22:13 -> *alice* <me> hi"
    assert show(":me!m@h PRIVMSG #lobby :hi all") == "22:13 #lobby <me> hi all"


def test_notices(utc) -> None:
    assert show(":alice!a@h NOTICE #lobby :note") == "22:13 #lobby -alice- note"
    assert show(":irc.example NOTICE me :server says") == "22:13 -irc.example- server says"


def test_mention_of_own_nick_is_highlighted() -> None:
    text = show(":alice!a@h PRIVMSG #lobby :hey Me, look", fmt=COLOR)
    assert text is not None and HIGHLIGHT in text
    assert HIGHLIGHT not in show(":alice!a@h PRIVMSG #lobby :hey meme, look", fmt=COLOR)
    assert HIGHLIGHT not in show(":me!m@h PRIVMSG #lobby :talking about me", fmt=COLOR)
    assert HIGHLIGHT in show(":alice!a@h PRIVMSG me :a private word", fmt=COLOR)


def test_mentions_matches_whole_nicks_in_any_case() -> None:
    assert mentions("bob: hi", "bob")
    assert mentions("hi BOB!", "bob")
    assert mentions("ping [x]", "[X]")
    assert not mentions("bobby", "bob")
    assert not mentions("bob_", "bob")
    assert not mentions("anything", "")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (":alice!a@h JOIN #lobby", "#lobby --> alice joined"),
        (":alice!a@h JOIN :#lobby", "#lobby --> alice joined"),
        (":alice!a@h PART #lobby :bye", "#lobby <-- alice left (bye)"),
        (":alice!a@h PART #lobby", "#lobby <-- alice left"),
        (":alice!a@h QUIT :Quit: gone", "<-- alice quit (Quit: gone)"),
        (":alice!a@h NICK alicia", "--- alice is now known as alicia"),
        (":op!o@h KICK #lobby bob :behave", "#lobby <-- bob was kicked by op (behave)"),
        (":op!o@h TOPIC #lobby :new topic", "#lobby --- op set the topic: new topic"),
        (":op!o@h MODE #lobby +o bob", "#lobby --- op sets mode +o bob"),
    ],
)
def test_membership_events_are_dimmed(utc, line: str, expected: str) -> None:
    assert show(line) == f"22:13 {expected}"
    coloured = show(line, fmt=COLOR)
    assert DIM in coloured


# -- timestamps ---------------------------------------------------------------------------


def test_server_time_tag_gives_the_timestamp_in_local_time(monkeypatch) -> None:
    line = "@time=2024-01-02T03:04:05.678Z :alice!a@h PRIVMSG #lobby :hi"
    try:
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
        assert show(line) == "03:04 #lobby <alice> hi"
        monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30, no daylight saving
        time.tzset()
        assert show(line) == "08:34 #lobby <alice> hi"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_without_server_time_the_arrival_time_is_used(utc) -> None:
    assert timestamp(parse("PRIVMSG #a :x"), now=0) == "00:00"
    assert timestamp(parse("@time=garbage PRIVMSG #a :x"), now=3600) == "01:00"
    assert timestamp(None, now=NOW) == "22:13"


# -- numerics and plumbing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (":srv 401 me bob :No such nick/channel", "!! bob: No such nick/channel"),
        (":srv 433 me bob :Nickname is already in use", "!! bob: Nickname is already in use"),
        (":srv 001 me :Welcome to the network me", "-- Welcome to the network me"),
        (":srv 353 me = #lobby :@alice bob", "-- users on #lobby: @alice bob"),
        (":srv 332 me #lobby :the topic", "-- topic of #lobby: the topic"),
        (":srv 301 me bob :lunch", "-- bob is away: lunch"),
        (":srv 254 me 3 :channels formed", "-- 3 channels formed"),
        (":srv 265 me 2 5 :Current local users 2, max 5", "-- Current local users 2, max 5"),
        (":srv 322 me #lobby 4 :chat here", "-- #lobby 4: chat here"),
        (":srv 422 me :MOTD File is missing", "-- MOTD File is missing"),
        (":srv 311 me bob ~b host * :Bob B", "-- bob is ~b@host (Bob B)"),
        (":srv 312 me bob irc.example :A server", "-- bob is on irc.example (A server)"),
        (
            ":srv 317 me bob 6 0 :seconds idle, signon",
            "-- bob has been idle 6 s, signed on 1970-01-01 00:00",
        ),
        (":srv 319 me bob :@#lobby #dev", "-- bob is in @#lobby #dev"),
        (":srv 352 me #lobby ~b host srv bob H :0 Bob B", "-- #lobby bob (~b@host) H Bob B"),
        (":srv 333 me #lobby alice 0", "-- topic of #lobby set by alice at 1970-01-01 00:00"),
    ],
)
def test_numerics_are_readable(utc, line: str, expected: str) -> None:
    assert show(line) == f"22:13 {expected}"


def test_errors_are_alerts_and_plumbing_is_hidden() -> None:
    assert PLAIN.message(parse(":srv 404 me #x :Cannot send"), "me").kind == "alert"
    assert PLAIN.message(parse("ERROR :Closing Link"), "me").kind == "alert"
    assert PLAIN.message(parse(":a!b@c PRIVMSG #x :hi"), "me").kind == "chat"
    for line in ("PING :x", ":srv PONG srv :x", ":srv CAP me ACK :echo-message", ":s 005 me A :x"):
        assert show(line) is None, line
    assert show(":srv 366 me #lobby :End of /NAMES list") is None


def test_untrusted_text_cannot_send_escape_sequences(utc) -> None:
    text = show(":evil!e@h PRIVMSG #lobby :\x1b[2J\x1b]0;pwned\x07\x02bold\x02 \x0304red\x03 ok")
    assert text == "22:13 #lobby <evil> [2J]0;pwnedbold red ok"
    assert clean("a\tb\r\nc\x9bd") == "a bcd"


# -- client events ------------------------------------------------------------------------


def test_a_sasl_login_shows_once(utc) -> None:
    """Success: the server's 900 in its own words; failure: one alert with the reason
    (the numerics 903-908 are hidden: the client's event says it)."""
    logged_in = ":srv 900 me me!u@h alice :You are now logged in as alice"
    assert show(logged_in) == "22:13 -- You are now logged in as alice"
    assert PLAIN.event(SaslSucceeded("alice", "SCRAM-SHA-256", time=NOW), "me") is None
    for numeric in ("903", "904", "905", "906", "907", "908"):
        assert show(f":srv {numeric} me :SASL authentication whatever") is None
    assert show("AUTHENTICATE +") is None
    failed = PLAIN.event(SaslFailed("alice", "Invalid account credentials", "904", time=NOW), "me")
    assert failed.kind == "alert"
    assert failed.text == (
        "22:13 !! not logged in as alice: Invalid account credentials; going on without an account"
    )


def test_connection_events(utc) -> None:
    reconnect = PLAIN.event(Reconnecting(1, 2.06, 5, time=NOW), "me")
    assert reconnect.text == "22:13 !! reconnecting in 2.1 s (attempt 1/5)"
    assert reconnect.kind == "alert"
    forever = PLAIN.event(Reconnecting(7, 41.0, None, time=NOW), "me")
    assert forever.text == "22:13 !! reconnecting in 41.0 s (attempt 7)"
    lost = PLAIN.event(Disconnected("server closed the connection", True, time=NOW), "me")
    assert lost.text == "22:13 !! disconnected: server closed the connection"
    refused = "cannot connect to 127.0.0.1:8546: Connection refused"
    never = PLAIN.event(Disconnected(refused, True, connected=False, time=NOW), "me")
    assert never.text == f"22:13 !! {refused}"  # never connected: not "disconnected"
    gave_up = PLAIN.event(GaveUp(1, "connection refused", time=NOW), "me")
    assert gave_up.text == "22:13 !! gave up after 1 reconnect attempt"
    assert PLAIN.event(GaveUp(0, "connection refused", time=NOW), "me") is None
    message = PLAIN.event(MessageEvent(parse(":a!b@c PRIVMSG #x :hi"), time=NOW), "me")
    assert message.text == "22:13 #x <a> hi"


def _burst(nick: str = "me") -> list[MessageEvent]:
    lines = [
        f":srv 001 {nick} :Welcome to the greenchat IRC Network {nick}",
        f":srv 002 {nick} :Your host is srv",
        f":srv 005 {nick} CHANTYPES=# :are supported by this server",
        f":srv 251 {nick} :There are 2 users",
        f":srv 375 {nick} :- srv Message of the day -",
        f":srv 372 {nick} :- hello",
        f":srv 376 {nick} :End of /MOTD command.",
        f":{nick}!u@h JOIN #lobby",
    ]
    return [MessageEvent(parse(line)) for line in lines]


def _session() -> list[ClientEvent]:
    return [
        Connected("127.0.0.1", 8546, False),
        Registered("me", frozenset()),
        *_burst(),
    ]


def test_a_reconnect_shows_one_summary_instead_of_the_welcome_burst() -> None:
    summaries: list[str] = []
    quieter = ReconnectQuieter(lambda: summaries.append("summary"))
    first = [e for e in _session() if quieter.shows(e)]
    assert len(first) == 10 and summaries == []  # the first time: everything
    lost = Disconnected("server closed the connection", True)
    refused = Disconnected("cannot connect", True, connected=False)
    assert quieter.shows(lost) and quieter.shows(Reconnecting(1, 0.7, None))
    assert quieter.shows(refused)
    again = [e for e in _session() if quieter.shows(e)]
    # Only our JOIN is left, after the summary the end of the MOTD triggered.
    assert [e.message.command for e in again] == ["JOIN"] and summaries == ["summary"]


def test_a_reconnect_hides_the_login_numerics_but_not_a_failed_login() -> None:
    quieter = ReconnectQuieter(lambda: None)
    logged_in = MessageEvent(parse(":srv 900 me me!u@h me :You are now logged in as me"))
    connected = Connected("127.0.0.1", 8546, False)
    assert [quieter.shows(e) for e in (connected, logged_in)] == [True, True]
    for event in _session()[1:]:
        quieter.shows(event)
    assert not quieter.shows(connected) and not quieter.shows(logged_in)  # reconnected
    assert quieter.shows(SaslFailed("me", "Invalid account credentials", "904"))


def test_a_burst_without_motd_numerics_ends_at_the_first_join() -> None:
    summaries: list[str] = []
    quieter = ReconnectQuieter(lambda: summaries.append("summary"))
    events: list[ClientEvent] = [Registered("me", frozenset()), *_burst()]
    assert all(quieter.shows(e) for e in events)
    burst = [e for e in _burst() if e.message.command not in ("375", "372", "376")]
    shown = [e for e in [Registered("me", frozenset()), *burst] if quieter.shows(e)]
    assert shown == [burst[-1]] and summaries == ["summary"]  # the same JOIN object
    later = MessageEvent(parse(":srv 311 me bob u h * :Bob"))  # WHOIS reply: shown again
    assert quieter.shows(later)
