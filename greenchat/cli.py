"""Console entry points. The only place that monkey-patches the standard library."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from greenchat import __version__
from greenchat.server.config import DEFAULT_PORT, DEFAULT_SENDQ, ServerConfig
from greenchat.server.oper import parse_oper_spec

if TYPE_CHECKING:
    from greenchat.client.terminal import Options


def build_serve_parser() -> argparse.ArgumentParser:
    defaults = ServerConfig()
    parser = argparse.ArgumentParser(
        prog="greenchat-serve",
        description=(
            "Run the greenchat IRC server. With no flags it listens on "
            f"127.0.0.1:{DEFAULT_PORT}; connect any IRC client (irssi, weechat, "
            "hexchat) or a raw socket and join #lobby."
        ),
    )
    parser.add_argument(
        "--host",
        default=defaults.host,
        help="address to listen on (default: %(default)s; 0.0.0.0 listens on every interface)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="TCP port to listen on; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--name",
        default=defaults.name,
        help="server name shown in message prefixes and numerics (default: %(default)s)",
    )
    parser.add_argument(
        "--motd",
        type=Path,
        metavar="FILE",
        help="text file sent as the message of the day (default: none, clients get 422)",
    )
    parser.add_argument(
        "--password", help="connection password clients must send with PASS (default: none)"
    )
    parser.add_argument(
        "--max-clients",
        type=int,
        default=defaults.max_clients,
        help="most simultaneous connections; more wait to be accepted (default: %(default)s)",
    )
    parser.add_argument(
        "--sendq",
        type=int,
        default=DEFAULT_SENDQ,
        metavar="BYTES",
        help="per-client send queue limit in bytes; a client whose queue overflows is "
        "disconnected with 'SendQ exceeded' (default: %(default)s)",
    )
    parser.add_argument(
        "--tcp-nodelay",
        action="store_true",
        help="send each flush at once (TCP_NODELAY) instead of letting the kernel merge "
        "small writes while earlier data is unacknowledged (Nagle, the default): lower "
        "latency on slow links, about twice the CPU per delivery at steady rates",
    )
    parser.add_argument(
        "--oper",
        action="append",
        default=[],
        type=_oper_spec,
        metavar="NAME:PASSWORD",
        help="add a server operator who logs in with /OPER NAME PASSWORD; repeatable. "
        "Only a salted scrypt hash of the password is kept (note that command-line "
        "arguments are visible to other local users)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging verbosity on stderr (default: %(default)s)",
    )
    parser.add_argument("--version", action="version", version=f"greenchat {__version__}")
    return parser


def _oper_spec(text: str) -> tuple[str, str]:
    """``NAME:PASSWORD`` -> ``(NAME, scrypt hash)``; the message never repeats the password."""
    try:
        return parse_oper_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        name=args.name,
        motd_path=args.motd,
        password=args.password,
        max_clients=args.max_clients,
        sendq=args.sendq,
        tcp_nodelay=args.tcp_nodelay,
        opers=dict(args.oper),
    )


def serve_main(argv: list[str] | None = None) -> int:
    """``greenchat-serve``: run the server until SIGTERM or SIGINT."""
    args = build_serve_parser().parse_args(argv)
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from greenchat.server.server import ChatServer

    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = config_from_args(args)
    try:
        server = ChatServer(config)
        server.start()
    except OSError as exc:
        logging.getLogger("greenchat").error(
            "cannot start: %s (%s:%s)", exc.strerror or exc, config.host, config.port
        )
        return 1
    # Printed for scripts and tests that start the server on port 0.
    print(f"greenchat listening on {server.address[0]}:{server.address[1]}", flush=True)
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, gevent.spawn, server.stop)
    server.wait_stopped()
    return 0


def build_join_parser() -> argparse.ArgumentParser:
    from greenchat.client.commands import help_text  # lazy: see join_main

    parser = argparse.ArgumentParser(
        prog="greenchat-join",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=help_text() + "\n\nCtrl-C, Ctrl-D and /quit leave the server and exit 0.",
        description=(
            f"Chat on a greenchat (or any IRC) server. With no flags it connects to "
            f"127.0.0.1:{DEFAULT_PORT} with your login name as nick and joins #lobby. "
            "On a terminal it shows a prompt (type /help); with stdin from a pipe it "
            "sends each line to the channel and exits once the server has them."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="server address (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="server port (default: %(default)s)"
    )
    parser.add_argument(
        "--nick", help="nick to use (default: $USER made a valid nick, else guestNNNN)"
    )
    parser.add_argument(
        "--channel",
        action="append",
        metavar="#CHANNEL",
        help="channel to join; repeatable, the first is where typed or piped lines go "
        "(default: #lobby)",
    )
    parser.add_argument("--password", help="connection password (PASS), if the server wants one")
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
        type=int,
        default=5,
        metavar="N",
        help="reconnect attempts after the server goes away before exiting with "
        "status 2 (default: %(default)s; 0: never reconnect)",
    )
    parser.add_argument("--version", action="version", version=f"greenchat {__version__}")
    return parser


def join_options(args: argparse.Namespace, environ: Mapping[str, str]) -> Options:
    """The UI's options from the parsed flags and the environment ($USER, NO_COLOR)."""
    from greenchat.client.commands import default_nick
    from greenchat.client.format import use_color
    from greenchat.client.terminal import Options

    channels = [c if c.startswith("#") else "#" + c for c in args.channel or ["#lobby"]]
    return Options(
        host=args.host,
        port=args.port,
        nick=args.nick or default_nick(environ),
        channels=tuple(dict.fromkeys(channels)),
        password=args.password,
        tls=args.tls or args.tls_insecure,
        tls_verify=not args.tls_insecure,
        color=use_color(args.no_color, environ),
        listen=args.listen,
        max_retries=max(0, args.max_retries),
    )


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
    from greenchat.client.terminal import run

    return run(join_options(args, os.environ))


if __name__ == "__main__":
    sys.exit(serve_main())
