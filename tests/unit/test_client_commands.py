"""greenchat-join's input: slash commands, completion, nick defaults, flags (all pure)."""

from __future__ import annotations

import random
import re

import pytest

from greenchat.cli import LINE_MODE_RETRIES, UsageError, build_join_parser, join_options
from greenchat.client.commands import (
    COMMANDS,
    DEFAULT_QUIT,
    Act,
    Join,
    Part,
    Quit,
    Say,
    Send,
    Show,
    Switch,
    complete,
    default_nick,
    help_text,
    parse_input,
    sanitize_nick,
    split_text,
)
from greenchat.protocol.message import Message, serialize


def sent(line: str, target: str | None = "#lobby") -> str:
    """The IRC line a command sends."""
    action = parse_input(line, target)
    assert isinstance(action, Send), action
    return serialize(action.message)


def is_usage_error(action: object) -> bool:
    return isinstance(action, Show) and action.error and action.text.startswith("usage:")


# -- plain text -------------------------------------------------------------------


def test_plain_text_goes_to_the_current_target() -> None:
    assert parse_input("hello there", "#lobby") == Say("#lobby", "hello there")
    assert parse_input("  spaced  ", "bob") == Say("bob", "  spaced  ")


def test_blank_input_does_nothing() -> None:
    assert parse_input("", "#lobby") is None
    assert parse_input("   ", "#lobby") is None


def test_double_slash_sends_a_literal_slash() -> None:
    assert parse_input("//etc/passwd is a file", "#a") == Say("#a", "/etc/passwd is a file")


def test_text_without_a_target_explains_what_to_do() -> None:
    action = parse_input("hello", None)
    assert isinstance(action, Show) and action.error and "/join" in action.text


# -- commands -----------------------------------------------------------------------


def test_join() -> None:
    assert parse_input("/join #rust", "#lobby") == Join("#rust")
    assert parse_input("/join rust", "#lobby") == Join("#rust")
    assert parse_input("/JOIN #secret key123", None) == Join("#secret", "key123")
    assert is_usage_error(parse_input("/join", "#lobby"))
    assert is_usage_error(parse_input("/join #a,#b", "#lobby"))


def test_part() -> None:
    assert parse_input("/part", "#lobby") == Part("#lobby")
    assert parse_input("/part #other see you", "#lobby") == Part("#other", "see you")
    assert parse_input("/part off to bed", "#lobby") == Part("#lobby", "off to bed")
    assert is_usage_error(parse_input("/part", "bob"))  # a nick is not a channel


def test_msg_switches_the_target() -> None:
    assert parse_input("/msg bob hi there", "#lobby") == Say("bob", "hi there", switch=True)
    assert parse_input("/msg #dev ship it", None) == Say("#dev", "ship it", switch=True)
    assert parse_input("/msg bob", "#lobby") == Switch("bob")
    assert is_usage_error(parse_input("/msg", "#lobby"))


def test_me() -> None:
    assert parse_input("/me waves", "#lobby") == Act("#lobby", "waves")
    assert is_usage_error(parse_input("/me", "#lobby"))
    assert isinstance(parse_input("/me waves", None), Show)


def test_commands_that_just_send_a_line() -> None:
    assert sent("/nick newname") == "NICK newname"
    assert is_usage_error(parse_input("/nick", "#a"))
    assert sent("/names") == "NAMES #lobby"
    assert sent("/names #other") == "NAMES #other"
    assert sent("/names", target="bob") == "NAMES"
    assert sent("/topic") == "TOPIC #lobby"
    assert sent("/topic the new topic") == "TOPIC #lobby :the new topic"
    assert sent("/topic #other") == "TOPIC #other"
    assert sent("/topic #other a topic") == "TOPIC #other :a topic"
    assert sent("/who") == "WHO #lobby"
    assert sent("/who al*") == "WHO al*"
    assert sent("/whois alice") == "WHOIS alice"
    assert is_usage_error(parse_input("/whois", "#a"))
    assert sent("/away gone fishing") == "AWAY :gone fishing"
    assert sent("/away") == "AWAY"
    assert sent("/list") == "LIST"
    assert sent("/list >3") == "LIST >3"
    assert sent("/raw MODE #lobby +t") == "MODE #lobby +t"
    assert sent("/raw PRIVMSG #a :two words") == "PRIVMSG #a :two words"
    assert is_usage_error(parse_input("/raw", "#a"))


def test_quit() -> None:
    assert parse_input("/quit", "#a") == Quit(DEFAULT_QUIT)
    assert parse_input("/quit see you all", "#a") == Quit("see you all")


def test_help_and_unknown_commands() -> None:
    full = parse_input("/help", "#a")
    assert isinstance(full, Show) and not full.error
    for name in COMMANDS:
        assert f"/{name} " in full.text
    one = parse_input("/help join", "#a")
    assert isinstance(one, Show) and one.text == help_text("join") and "\n" not in one.text
    unknown = parse_input("/frobnicate now", "#a")
    assert isinstance(unknown, Show) and unknown.error
    assert "unknown command /frobnicate" in unknown.text and help_text() in unknown.text


def test_every_spec_command_is_known() -> None:
    spec = [
        "join",
        "part",
        "msg",
        "me",
        "nick",
        "names",
        "topic",
        "who",
        "whois",
        "away",
        "list",
        "quit",
        "help",
        "raw",
    ]
    assert set(spec) <= set(COMMANDS)
    for name in spec:
        action = parse_input(f"/{name}", "#lobby")
        assert not (isinstance(action, Show) and "unknown" in action.text), name


# -- completion -------------------------------------------------------------------------


NICKS = ["alice", "Albert", "bob", "[x]"]


def test_complete_commands() -> None:
    assert complete("/jo", NICKS) == (-3, ["/join "])
    assert complete("/w", NICKS) == (-2, ["/who ", "/whois "])
    assert complete("/", NICKS)[1] == [f"/{name} " for name in COMMANDS]


def test_complete_nicks_any_case() -> None:
    assert complete("al", NICKS) == (-2, ["Albert: ", "alice: "])  # line start: address form
    assert complete("hi AL", NICKS) == (-2, ["Albert", "alice"])
    assert complete("/msg b", NICKS) == (-1, ["bob"])
    assert complete("{", NICKS) == (-1, ["[x]: "])  # rfc1459: { is lower-case [
    assert complete("zed", NICKS) == (-3, [])


def test_complete_channels() -> None:
    assert complete("/join #lo", NICKS, ["#lobby", "#dev"]) == (-3, ["#lobby"])
    assert complete("#", NICKS, ["#lobby", "#dev"]) == (-1, ["#dev", "#lobby"])


# -- nicks and long text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "nick"),
    [
        ("alice", "alice"),
        ("john.doe", "johndoe"),
        ("123abc", "abc"),
        ("-x", "x"),
        ("Åsa", "sa"),
        ("a" * 40, "a" * 16),
        ("...", ""),
    ],
)
def test_sanitize_nick(raw: str, nick: str) -> None:
    assert sanitize_nick(raw) == nick


def test_default_nick_from_the_environment_or_guest() -> None:
    assert default_nick({"USER": "carol.smith"}) == "carolsmith"
    assert default_nick({"USER": "", "LOGNAME": "dave"}) == "dave"
    guest = default_nick({"USER": "999"}, random.Random(1))
    assert guest.startswith("guest") and guest[5:].isdigit() and len(guest) == 9


def test_split_text_fits_each_piece_in_a_line() -> None:
    assert split_text("short") == ["short"]
    words = " ".join(f"word{i}" for i in range(200))
    pieces = split_text(words, limit=100)
    assert all(len(p.encode()) <= 100 for p in pieces)
    assert " ".join(pieces) == words
    wide = "é" * 300  # two bytes each: never cut inside a character
    pieces = split_text(wide, limit=101)
    assert all(len(p.encode()) <= 101 for p in pieces) and "".join(pieces) == wide


# -- flags -----------------------------------------------------------------------------------


def options(*argv: str, interactive: bool = True, ask=None, **env: str):
    return join_options(build_join_parser().parse_args(list(argv)), env, interactive, ask)


def test_zero_flags_defaults() -> None:
    o = options(USER="erin")
    assert (o.host, o.port, o.nick, o.channels) == ("127.0.0.1", 8546, "erin", ("#lobby",))
    assert o.color and not o.tls and not o.listen


def test_a_prompt_keeps_reconnecting_and_scripts_fail_fast() -> None:
    assert options().max_retries is None  # until the user quits
    assert options(interactive=False).max_retries == LINE_MODE_RETRIES
    assert options("--listen").max_retries == LINE_MODE_RETRIES
    assert options("--max-retries", "3").max_retries == 3
    assert options("--max-retries", "0", interactive=False).max_retries == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "abc"], "--port: expected an integer, got 'abc'"),
        (["--port", "0"], "--port: must be at least 1, got 0"),
        (["--port", "99999"], "--port: must be at most 65535, got 99999"),
        (["--max-retries", "-1"], "--max-retries: must be at least 0, got -1"),
        (["--channel", "#a b"], "--channel: '#a b' is not a valid channel name"),
        (["--channel", "bad,chan"], "--channel: 'bad,chan' is not a valid channel name"),
        (["--channel", "#"], "--channel: '#' is not a valid channel name"),
        (["--nick", "9lives"], "--nick: '9lives' is not a valid nick"),
        (["--nick", "a b"], "--nick: 'a b' is not a valid nick"),
        (["--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_flags_get_one_line_and_exit_2(capsys, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        build_join_parser().parse_args(argv)
    assert exited.value.code == 2
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.startswith(f"greenchat-join: {message}")
    assert rest == ["Try 'greenchat-join --help' for more information."]


def test_flags() -> None:
    o = options("--nick", "zed", "--channel", "dev", "--channel", "#ops", "--channel", "#dev")
    assert o.nick == "zed" and o.channels == ("#dev", "#ops")
    assert options("--tls-insecure").tls and not options("--tls-insecure").tls_verify
    assert options("--tls").tls_verify
    assert not options("--no-color").color
    assert not options(NO_COLOR="1").color
    assert options("--max-retries", "1").max_retries == 1
    assert options("--listen", "--password", "pw").password == "pw"


def test_sasl_takes_the_password_from_the_environment_or_asks() -> None:
    assert options().sasl is None
    o = options("--sasl", "--nick", "zed", GREENCHAT_PASSWORD="s3cret")
    assert o.sasl == ("zed", "s3cret") and "s3cret" not in repr(o)
    named = options("--sasl", "--account", "Zed", USER="erin", GREENCHAT_PASSWORD="p")
    assert named.sasl == ("Zed", "p") and named.nick == "erin"
    asked: list[str] = []
    o = options("--sasl", USER="erin", ask=lambda prompt: asked.append(prompt) or "typed")
    assert o.sasl == ("erin", "typed") and asked == ["password for erin: "]
    assert options("--sasl", GREENCHAT_PASSWORD="env", ask=lambda _: "typed").sasl[1] == "env"


@pytest.mark.parametrize(
    ("argv", "ask", "message"),
    [
        (["--sasl"], None, "--sasl: no password; set GREENCHAT_PASSWORD (stdin is no terminal"),
        (["--sasl"], lambda _: "", "--sasl: no password; set GREENCHAT_PASSWORD or type it"),
        (["--account", "zed"], None, "--account names the account for --sasl: add --sasl"),
    ],
)
def test_sasl_without_a_password_is_refused(argv, ask, message) -> None:
    with pytest.raises(UsageError, match=f"^{re.escape(message)}"):
        options(*argv, ask=ask)


def test_ctrl_c_at_the_password_prompt_is_no_password() -> None:
    def interrupted(prompt: str) -> str:
        raise KeyboardInterrupt

    with pytest.raises(UsageError, match="no password"):
        options("--sasl", ask=interrupted)


def test_message_type_is_the_protocol_one() -> None:
    action = parse_input("/nick x", None)
    assert isinstance(action, Send) and action.message == Message("NICK", ("x",))
