"""Console entry points. The only place that monkey-patches the standard library."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from greenchat import __version__
from greenchat.protocol.casemap import is_channel_name, valid_channel, valid_nick
from greenchat.server.config import (
    BY_NAME,
    DEFAULT_PORT,
    OPTIONS,
    ConfigError,
    Option,
    ServerConfig,
    build_config,
    check_option,
    load_file,
    plain,
    show_address,
)
from greenchat.server.oper import parse_oper_spec

if TYPE_CHECKING:
    from greenchat.client.terminal import Options

# What greenchat-join accepts before it connects; the server may still refuse
# (432 makes the client pick a guest nick, 479 names a channel's limit).
NICK_LIMIT = 200
CHANNEL_LIMIT = 200
# Where greenchat-join --sasl reads the password (never from a flag: others can read those).
PASSWORD_VARIABLE = "GREENCHAT_PASSWORD"


class UsageError(Exception):
    """greenchat-join cannot start as asked; ``str()`` says why (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """Reports a mistake in one line and points at ``--help``, instead of printing the
    whole usage block; exit status 2, as for a bad config file."""

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")
        self.exit(2, f"{self.prog}: {message}\nTry '{self.prog} --help' for more information.\n")


def build_serve_parser() -> argparse.ArgumentParser:
    defaults = ServerConfig()
    parser = _Parser(
        prog="greenchat-serve",
        epilog="Exit status: 0 after SIGTERM or SIGINT, 1 when it cannot start (e.g. cannot "
        "listen), 2 for a bad flag, value, config file or database (--db).",
        description=(
            "Run the greenchat IRC server. With no flags it listens on "
            f"127.0.0.1:{DEFAULT_PORT}; connect any IRC client (irssi, weechat, "
            "hexchat) or a raw socket and join #lobby. Every flag is also a key of "
            "the --config file (docs/operations.md); flags override the file."
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file with any of the settings below (flag names without the dashes); "
        "SIGHUP re-reads it and the MOTD without dropping anyone",
    )
    for option in OPTIONS:
        if option.kind == "opers":
            parser.add_argument(
                "--oper",
                action="append",
                dest="opers",
                type=_oper_spec,
                metavar="NAME:PASSWORD",
                help="add a server operator who logs in with /OPER NAME PASSWORD; "
                "repeatable. Only a salted scrypt hash of the password is kept (note that "
                "command-line arguments are visible to other local users)",
            )
            continue
        if option.kind == "gateways":
            parser.add_argument(
                "--webirc",
                action="append",
                dest="webirc",
                metavar="NAME:PASSWORD:CIDR",
                help=f"{option.help} (default: none)",
            )
            continue
        default = getattr(defaults, option.attr)
        shown = ",".join(default) if isinstance(default, list) else default
        text = f"{option.help} (default: {'none' if shown is None else shown}{_range(option)})"
        kwargs: dict = {"dest": option.attr, "default": None, "help": text.replace("%", "%%")}
        if option.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _flag_type(option)
            kwargs["metavar"] = option.metavar or _METAVARS.get(option.kind, "TEXT")
        parser.add_argument(option.flag, **kwargs)
    parser.add_argument("--version", action="version", version=f"greenchat {__version__}")
    return parser


_METAVARS = {"int": "N", "float": "N", "choice": "LEVEL", "word": "NAME"}


def _range(option: Option) -> str:
    """``; 0 to 65535`` for a numeric option with both bounds, else nothing."""
    if option.minimum is None or option.maximum is None:
        return ""
    return f"; {plain(option.minimum)} to {plain(option.maximum)}"


def _flag_type(option: Option):
    """argparse type for ``option``: the same checks as the config file."""

    def convert(text: str):
        value: object = text
        if option.kind == "int":
            value = _number(text, int)
        elif option.kind == "float":
            value = _number(text, float)
        try:
            return check_option(option, value, option.flag)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(option.flag + ": ")) from None

    return convert


def _number(text: str, kind: type) -> object:
    try:
        return kind(text)
    except ValueError:
        return text  # check_option reports it


def _oper_spec(text: str) -> tuple[str, str]:
    """``NAME:PASSWORD`` -> ``(NAME, scrypt hash)``; the message never repeats the password."""
    try:
        return parse_oper_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def flag_values(args: argparse.Namespace) -> dict:
    """The settings given on the command line, by attribute name."""
    values = {o.attr: getattr(args, o.attr) for o in OPTIONS if o.kind != "opers"}
    values = {k: v for k, v in values.items() if v is not None}
    if args.webirc:  # checked here: one bad item names itself, not the whole list
        values["webirc"] = check_option(BY_NAME["webirc"], args.webirc, "--webirc")
    if args.opers:
        values["opers"] = dict(args.opers)
    return values


def config_from_args(
    args: argparse.Namespace, known_opers: dict[str, str] | None = None
) -> ServerConfig:
    """Defaults, then ``--config`` (if given), then the flags. Raises ConfigError.

    ``known_opers``: the running operators' hashes, reused for unchanged passwords.
    """
    file_values = load_file(args.config, known_opers) if args.config else {}
    return build_config(file_values, flag_values(args))


def serve_main(argv: list[str] | None = None) -> int:
    """``greenchat-serve``: run the server until SIGTERM or SIGINT; SIGHUP reloads."""
    args = build_serve_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"greenchat-serve: {exc}", file=sys.stderr)
        return 2
    if config.workers > 1:
        return _supervise(config, sys.argv[1:] if argv is None else argv)
    from greenchat.server.workers import ready_line, worker_number

    worker = worker_number()  # started by a supervisor (--workers): it reads our stdout
    config.reuse_port = worker is not None
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from greenchat.server.collector import settle_after_start
    from greenchat.server.listener import ListenError
    from greenchat.server.server import ChatServer
    from greenchat.store.base import StoreError

    _log_to_stderr(config.log_level, "" if worker is None else f"worker {worker} ")
    try:
        server = ChatServer(config)
        server.start()
    except ConfigError as exc:  # e.g. a TLS certificate that does not load
        print(f"greenchat-serve: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # "cannot open the database PATH: why"; a restart would not help
        print(f"greenchat-serve: {exc}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"greenchat-serve: {exc}", file=sys.stderr)
        return 1
    settle_after_start()  # the garbage collector's pauses, short from here on
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, gevent.spawn, server.stop)
    gevent.signal_handler(signal.SIGHUP, gevent.spawn, _reload, server, args)
    # Only now, with the signals handled: whoever waits for this line may send them.
    # The first line is for scripts and tests that start the server on port 0.
    metrics = server.metrics_listener.address if server.metrics_listener else None
    if worker is not None:
        addresses = {"irc": server.address, "metrics": metrics}
        print(ready_line(addresses), flush=True)
    else:
        web = [_url("http", server.web_address), _url("https", server.web_tls_address)]
        web = [url for url in web if url]
        metrics_list = [metrics] if metrics else []
        text = welcome_text(server.address, server.tls_address, os.environ, metrics_list, web)
        print(text, flush=True)
    server.wait_stopped()
    return 0


def _supervise(config: ServerConfig, argv: Sequence[str]) -> int:
    """``--workers N``: start N worker processes and watch over them (workers.py)."""
    from greenchat.server.workers import StartFailed, Supervisor

    supervisor = Supervisor(config, argv)
    try:
        supervisor.start()
    except StartFailed as exc:
        print(f"greenchat-serve: {exc}", file=sys.stderr)
        return exc.status
    metrics = [worker.ready["metrics"] for worker in supervisor.workers]
    web = [_url("http", _pair(config.web_host, supervisor.port_of("web_port"))),
           _url("https", _pair(config.web_host, supervisor.port_of("web_tls_port")))]  # fmt: skip
    redis = supervisor.redis
    shared = f"a private redis-server (pid {redis.pid})" if redis else supervisor.backplane
    text = welcome_text(
        (config.host, supervisor.port_of("port")),
        _pair(config.host, supervisor.port_of("tls_port")),
        os.environ,
        [address for address in metrics if address],
        [url for url in web if url],
        workers=f"{config.workers} workers, one network through {shared}",
    )
    print(text, flush=True)
    return supervisor.run()


def _pair(host: str, port: int | None) -> tuple[str, int] | None:
    return None if port is None else (host, port)


def _log_to_stderr(level: str, worker: str = "") -> None:
    """Logs on stderr through a queue: an unread stderr must not stop the chat.
    ``worker``: ``"worker 2 "`` in each line of a --workers worker's log."""
    from greenchat.server.logqueue import QueueingHandler

    sys.stderr.flush()
    handler = QueueingHandler(sys.stderr.fileno())
    form = f"%(asctime)s %(levelname)s {worker}%(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(form))
    logging.basicConfig(level=level, handlers=[handler])


def welcome_text(
    address: tuple[str, int],
    tls_address: tuple[str, int] | None,
    environ: Mapping[str, str],
    metrics_addresses: Sequence[tuple[str, int]] = (),
    web_urls: Sequence[str] = (),
    workers: str = "",
) -> str:
    """Where the server listens and how to connect to it, for the person who started it.
    ``workers``: a line about the processes behind the port (--workers)."""
    host, port = address
    lines = [f"greenchat listening on {show_address(host, port)}"]
    if workers:
        lines.append(f"  {workers}")
    if tls_address is not None:
        lines.append(f"  TLS on {show_address(*tls_address)}")
    for metrics_address in metrics_addresses:
        lines.append(f"  metrics on http://{show_address(*metrics_address)}/metrics")
    near = _reachable(host)
    flags = [f"--host {near}"] if near != "127.0.0.1" else []
    flags += [f"--port {port}"] if port != DEFAULT_PORT else []
    if environ.get("MAKELEVEL"):  # started by `make serve`: the newcomer's path
        join = "make join" + (f' ARGS="{" ".join(flags)}"' if flags else "")
    else:
        join = " ".join(["greenchat-join", *flags])
    lines += [
        f"  to chat, in another terminal:  {join}",
        f"  or with any IRC client:        irssi -c {near} -p {port}",
        *(f"  or in a web browser:           {url}" for url in web_urls),
        "  Ctrl-C stops the server.",
    ]
    return "\n".join(lines)


def _url(scheme: str, address: tuple[str, int] | None) -> str:
    """Where a browser on this machine finds the page ('' when not served)."""
    if address is None:
        return ""
    return f"{scheme}://{show_address(_reachable(address[0]), address[1])}/"


def _reachable(host: str) -> str:
    """An address a local client can connect to when the server listens on ``host``."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _reload(server, args: argparse.Namespace) -> None:
    """SIGHUP: re-read the config file and the MOTD; a bad file changes nothing.

    Read in the thread pool: files, and scrypt for plain-text operator
    passwords, would stall every client on the event loop.
    """
    import gevent

    log = logging.getLogger("greenchat")
    try:
        pool = gevent.get_hub().threadpool
        config = pool.apply(config_from_args, (args, dict(server.config.opers)))
    except ConfigError as exc:
        log.error("reload refused, the running configuration stays: %s", exc)
        return
    server.reload(config)


def build_join_parser() -> argparse.ArgumentParser:
    from greenchat.client.commands import help_text  # lazy: see join_main

    parser = _Parser(
        prog="greenchat-join",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=help_text() + "\n\nCtrl-C, Ctrl-D and /quit leave the server and exit 0. "
        "Exit status 1: a line could not be delivered; 2: a bad flag, no password for --sasl, "
        "or gave up reconnecting.",
        description=(
            f"Chat on a greenchat (or any IRC) server. With no flags it connects to "
            f"127.0.0.1:{DEFAULT_PORT} with your login name as nick and joins #lobby. "
            "On a terminal it shows a prompt (type /help); with stdin from a pipe it "
            "sends each line to the channel and exits once the server has them."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="server address (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=_flag_type(JOIN_PORT),
        default=DEFAULT_PORT,
        metavar="N",
        help="server port (default: %(default)s)",
    )
    parser.add_argument(
        "--nick",
        type=_nick,
        help="nick to use (default: $USER made a valid nick, else guestNNNN)",
    )
    parser.add_argument(
        "--channel",
        action="append",
        type=_channel,
        metavar="#CHANNEL",
        help="channel to join; repeatable, the first is where typed or piped lines go "
        "(default: #lobby)",
    )
    parser.add_argument("--password", help="connection password (PASS), if the server wants one")
    parser.add_argument(
        "--sasl",
        action="store_true",
        help="log in to your account while connecting (SASL SCRAM-SHA-256, or PLAIN over "
        f"TLS or to a loopback address). The password comes from ${PASSWORD_VARIABLE} or, "
        "if that is unset, is asked for on the terminal; never from a flag. A failed login "
        "is shown and the chat goes on without an account",
    )
    parser.add_argument(
        "--account",
        type=_nick,
        metavar="NAME",
        help="the account --sasl logs in to (default: the nick)",
    )
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument(
        "--tls-insecure",
        action="store_true",
        help="TLS without checking the certificate (self-signed servers); implies --tls",
    )
    parser.add_argument(
        "--no-color",
        action="store_true",
        help="no colours or other escape sequences (also when NO_COLOR is set)",
    )
    parser.add_argument(
        "--listen",
        action="store_true",
        help="no prompt: print received messages as plain lines (e.g. '12:01 #lobby "
        "<alice> hello') for scripts; stdin lines are still sent, and EOF quits",
    )
    parser.add_argument(
        "--max-retries",
        type=_flag_type(MAX_RETRIES),
        metavar="N",
        help="reconnect attempts after the server goes away before exiting with status 2 "
        "(default: at a prompt, keep trying until you quit; piped or --listen, "
        f"{LINE_MODE_RETRIES}; 0: never reconnect)",
    )
    parser.add_argument("--version", action="version", version=f"greenchat {__version__}")
    return parser


# greenchat-join's numeric flags, checked and worded like greenchat-serve's.
JOIN_PORT = Option("port", "int", "server port", minimum=1, maximum=65535)
MAX_RETRIES = Option("max-retries", "int", "reconnect attempts", minimum=0, maximum=1_000_000)
# Without a prompt nobody is there to wait: scripts fail after a few attempts.
LINE_MODE_RETRIES = 5


def _nick(text: str) -> str:
    if not valid_nick(text, NICK_LIMIT):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid nick (letters, digits and []\\`_^{{|}}-, "
            f"not starting with a digit or -, at most {NICK_LIMIT} characters)"
        )
    return text


def _channel(text: str) -> str:
    name = text if is_channel_name(text) else "#" + text
    if not valid_channel(name, CHANNEL_LIMIT):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid channel name (no spaces, commas, colons or control "
            f"characters, at most {CHANNEL_LIMIT} characters)"
        )
    return name


def join_options(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    interactive: bool,
    ask_password: Callable[[str], str] | None = None,
) -> Options:
    """The UI's options from the parsed flags and the environment ($USER, NO_COLOR,
    $GREENCHAT_PASSWORD). UsageError when they cannot work.

    ``interactive``: whether a prompt is possible (a terminal on both sides);
    ``ask_password(prompt)``: asks on the terminal (None: stdin is no terminal).
    """
    from greenchat.client.commands import default_nick
    from greenchat.client.format import use_color
    from greenchat.client.terminal import Options

    channels = args.channel or ["#lobby"]
    retries = args.max_retries
    if retries is None and (args.listen or not interactive):
        retries = LINE_MODE_RETRIES
    nick = args.nick or default_nick(environ)
    return Options(
        host=args.host,
        port=args.port,
        nick=nick,
        channels=tuple(dict.fromkeys(channels)),
        password=args.password,
        tls=args.tls or args.tls_insecure,
        tls_verify=not args.tls_insecure,
        color=use_color(args.no_color, environ),
        listen=args.listen,
        max_retries=retries,
        sasl=sasl_credentials(args, nick, environ, ask_password),
    )


def sasl_credentials(
    args: argparse.Namespace,
    nick: str,
    environ: Mapping[str, str],
    ask_password: Callable[[str], str] | None,
) -> tuple[str, str] | None:
    """(account, password) for --sasl, else None; UsageError without a password."""
    if not args.sasl:
        if args.account:
            raise UsageError("--account names the account for --sasl: add --sasl")
        return None
    account = args.account or nick
    password = environ.get(PASSWORD_VARIABLE, "")
    if not password and ask_password is not None:
        try:
            password = ask_password(f"password for {account}: ")
        except (EOFError, KeyboardInterrupt):
            password = ""
    if not password:
        how = "or type it when asked" if ask_password else "(stdin is no terminal to ask on)"
        raise UsageError(f"--sasl: no password; set {PASSWORD_VARIABLE} {how}")
    return account, password


def join_main(argv: list[str] | None = None) -> int:
    """``greenchat-join``: the terminal client.

    No monkey-patching here: the gevent client runs on its own hub in a
    second thread and the prompt (prompt_toolkit, asyncio) in the main thread.
    """
    args = build_join_parser().parse_args(argv)
    # No logging.basicConfig: its handler would keep the real stderr and write
    # through the prompt. Without handlers, warnings reach logging's last-resort
    # handler, which writes to sys.stderr as it is at that moment (the
    # patch_stdout proxy while the prompt runs).
    # Imported here, not at the top: serve_main must monkey-patch before anything
    # imports gevent, ssl or threading.
    from greenchat.client.terminal import interactive_possible, run

    ask = getpass.getpass if sys.stdin.isatty() else None
    try:
        options = join_options(args, os.environ, interactive_possible(), ask)
    except UsageError as exc:
        print(f"greenchat-join: {exc}", file=sys.stderr)
        return 2
    return run(options)


if __name__ == "__main__":
    sys.exit(serve_main())
