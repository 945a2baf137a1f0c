"""Console entry points. The only place that monkey-patches the standard library."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from greenchat import __version__
from greenchat.server.config import DEFAULT_PORT, DEFAULT_SENDQ, ServerConfig
from greenchat.server.oper import parse_oper_spec


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


if __name__ == "__main__":
    sys.exit(serve_main())
