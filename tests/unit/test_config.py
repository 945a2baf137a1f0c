"""Configuration: every option is a flag and a file key; files are checked whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenchat.cli import build_serve_parser, config_from_args
from greenchat.server.config import (
    OPTIONS,
    ConfigError,
    ServerConfig,
    build_config,
    check_option,
    load_file,
)
from greenchat.server.oper import verify_password


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "greenchat.toml"
    path.write_text(text)
    return path


def test_every_option_is_a_config_field_and_a_flag():
    config = ServerConfig()
    flags = {a.dest for a in build_serve_parser()._actions}
    for option in OPTIONS:
        assert hasattr(config, option.attr), option.name
        assert option.attr in flags, option.name


def test_file_values_are_read_and_checked(tmp_path):
    path = write(
        tmp_path,
        'name = "irc.example"\nflood-burst = 20\nflood_rate = 2\ntcp-nodelay = true\n'
        'max-per-ip-exempt = ["10.0.0.0/8"]\nlog-level = "debug"\n',
    )
    values = load_file(path)
    assert values == {
        "name": "irc.example",
        "flood_burst": 20,
        "flood_rate": 2.0,
        "tcp_nodelay": True,
        "max_per_ip_exempt": ["10.0.0.0/8"],
        "log_level": "DEBUG",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope = 1", "unknown key 'nope'"),
        ('flood-burst = "many"', "flood-burst: expected an integer"),
        ("flood-burst = 0", "flood-burst: must be at least 1"),
        ("flood-rate = true", "flood-rate: expected a number"),
        ("tcp-nodelay = 1", "tcp-nodelay: expected true or false"),
        ('log-level = "LOUD"', "log-level: expected one of"),
        ('max-per-ip-exempt = ["not an address"]', "is not an address or network"),
        ("opers = 5", "opers: expected a table"),
        ("port = [", "not valid TOML"),
        ("port = 99999", "port: must be at most 65535, got 99999"),
        ("tls-port = 65536", "tls-port: must be at most 65535"),
        ("ping-interval = inf", "ping-interval: expected a finite number, got inf"),
        ("flood-rate = nan", "flood-rate: expected a finite number"),
        ("topiclen = 1000", "topiclen: must be at most 390"),
        ('name = "my server"', "name: expected a name without spaces"),
        ('network = ""', "network: expected a name without spaces"),
    ],
)
def test_bad_files_are_refused_with_the_key_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_file(write(tmp_path, text))


def test_every_number_has_a_range_that_holds_its_default():
    defaults = ServerConfig()
    for option in OPTIONS:
        if option.kind not in ("int", "float"):
            continue
        assert option.minimum is not None and option.maximum is not None, option.name
        default = getattr(defaults, option.attr)
        if default is not None:  # tls-port: none unless set
            assert option.minimum <= default <= option.maximum, option.name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "99999"], "--port: must be at most 65535, got 99999"),
        (["--port", "abc"], "--port: expected an integer, got 'abc'"),
        (["--tls-port", "-1"], "--tls-port: must be at least 0, got -1"),
        (["--ping-timeout", "nan"], "--ping-timeout: expected a finite number, got nan"),
        (["--log-level", "loud"], "--log-level: expected one of DEBUG, INFO, WARNING, ERROR"),
        (["--nope"], "unrecognized arguments: --nope"),
        (["--port"], "--port: expected one argument"),
    ],
)
def test_a_bad_flag_is_one_line_and_a_pointer_to_help(capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        build_serve_parser().parse_args(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"greenchat-serve: {message}",
        "Try 'greenchat-serve --help' for more information.",
    ]


def test_help_shows_each_range():
    text = build_serve_parser().format_help()
    assert "0 to 65535" in " ".join(text.split())


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(tmp_path / "absent.toml")


def test_opers_in_the_file_are_hashed(tmp_path):
    values = load_file(write(tmp_path, '[opers]\nalice = "s3cret"\nbob = "scrypt$00$00"\n'))
    assert verify_password("s3cret", values["opers"]["alice"])
    assert "s3cret" not in values["opers"]["alice"]
    assert values["opers"]["bob"] == "scrypt$00$00"  # already a hash: kept


def test_a_reload_keeps_the_hash_of_an_unchanged_password(tmp_path):
    path = write(tmp_path, '[opers]\nalice = "s3cret"\nbob = "other"\n')
    running = load_file(path)["opers"]
    again = load_file(path, known_opers=running)["opers"]
    assert again == running  # same salt: the reload sees no change
    path.write_text('[opers]\nalice = "changed"\nbob = "other"\n')
    changed = load_file(path, known_opers=running)["opers"]
    assert changed["bob"] == running["bob"] and changed["alice"] != running["alice"]
    assert verify_password("changed", changed["alice"])


def test_flags_override_the_file_which_overrides_defaults(tmp_path):
    path = write(tmp_path, 'name = "from.file"\nflood-burst = 20\n')
    args = build_serve_parser().parse_args(["--config", str(path), "--flood-burst", "7"])
    config = config_from_args(args)
    assert (config.name, config.flood_burst) == ("from.file", 7)
    assert config.flood_rate == ServerConfig().flood_rate


def test_bad_flag_values_are_refused(capsys):
    with pytest.raises(SystemExit):
        build_serve_parser().parse_args(["--flood-burst", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_tls_port_needs_a_certificate():
    with pytest.raises(ConfigError, match="tls-port needs tls-cert and tls-key"):
        build_config({"tls_port": 6697}, {})


def test_missing_motd_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="motd: cannot read"):
        build_config({"motd": tmp_path / "nope.txt"}, {})


def test_web_origins_are_origins():
    """A list or a comma-separated string; lower-cased, without a trailing '/'."""
    option = next(o for o in OPTIONS if o.name == "web-origins")
    assert check_option(option, "https://Chat.Example.com/, http://x:8547", "w") == [
        "https://chat.example.com",
        "http://x:8547",
    ]
    assert check_option(option, ["*"], "w") == ["*"]
    for bad in ("ftp://x", "chat.example.com", "https://x/path", "https://"):
        with pytest.raises(ConfigError, match="is not an origin"):
            check_option(option, bad, "w")
    with pytest.raises(ConfigError, match="expected a list of origins"):
        check_option(option, 5, "w")


def test_the_database_is_a_file_or_memory(tmp_path):
    assert ServerConfig().db == "greenchat.db"
    args = build_serve_parser().parse_args(["--db", ":memory:"])
    assert config_from_args(args).db == ":memory:"
    path = write(tmp_path, 'db = "/var/lib/greenchat/g.db"\n')
    assert load_file(path) == {"db": "/var/lib/greenchat/g.db"}
    with pytest.raises(ConfigError, match="db: expected a file name, :memory: to keep nothing"):
        build_config(load_file(write(tmp_path, 'db = ""\n')), {})
    with pytest.raises(ConfigError, match="db: expected a file name"):
        config_from_args(build_serve_parser().parse_args(["--db", ""]))
    with pytest.raises(ConfigError, match="db: redis keeps accounts in the backplane's Redis"):
        config_from_args(build_serve_parser().parse_args(["--db", "redis"]))
    shared = build_serve_parser().parse_args(["--db", "redis", "--backplane", "unix:///r.sock"])
    assert config_from_args(shared).db == "redis"
    assert config_from_args(build_serve_parser().parse_args(["--db", "redis", "--workers", "2"]))


def test_webirc_gateways_from_flags_and_the_file(tmp_path):
    """NAME:PASSWORD:CIDR, repeatable on the command line, a list in the file; the CIDR may
    be IPv6 (its colons stay with it); a bad one is named."""
    args = build_serve_parser().parse_args(
        ["--webirc", "kiwi:pw:10.0.0.5", "--webirc", "six:pw2:2001:db8::/32"]
    )
    assert config_from_args(args).webirc == [
        ("kiwi", "pw", "10.0.0.5/32"),
        ("six", "pw2", "2001:db8::/32"),
    ]
    path = write(tmp_path, 'webirc = ["gw:secret:127.0.0.1"]\n')
    args = build_serve_parser().parse_args(["--config", str(path)])
    assert config_from_args(args).webirc == [("gw", "secret", "127.0.0.1/32")]
    refusals = (
        ("kiwi:pw", "expected NAME:PASSWORD:CIDR"),
        ("kiwi:pw:nowhere", "'nowhere' is not an address or network"),
    )
    for bad, message in refusals:
        args = build_serve_parser().parse_args(["--webirc", bad])
        with pytest.raises(ConfigError, match=message):
            config_from_args(args)
