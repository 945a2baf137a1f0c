"""Server configuration: one dataclass, from defaults, a TOML file and flags.

Every setting is an :class:`Option` in :data:`OPTIONS`: its name is both the
command-line flag (``--flood-burst``) and the key in the ``--config`` file
(``flood-burst = 80``), so the two can never drift apart. Flags override the
file, the file overrides the defaults. :func:`load_file` checks a file
completely (unknown keys, wrong types, out-of-range values) and raises
:class:`ConfigError` with a message naming the key, so a bad file is refused
before anything is applied, at start and on SIGHUP alike.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from greenchat.server.oper import hash_password, verify_password

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_WEB_PORT",
    "OPTIONS",
    "REDIS_DB",
    "ConfigError",
    "Option",
    "ServerConfig",
    "build_config",
    "check_option",
    "load_file",
    "plain",
]

DEFAULT_PORT = 8546
DEFAULT_WEB_PORT = 8547
DEFAULT_SENDQ = 1024 * 1024
LOOPBACK = ("127.0.0.0/8", "::1/128")
# --db redis: accounts, registered channels and history in the backplane's Redis.
REDIS_DB = "redis"

# Longest topic, kick reason or away text: what still fits a 512-byte line
# after the prefix, command, nick and channel (RFC 2812's 390-ish in practice).
MAX_TEXT = 390


def show_address(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    name: str = "greenchat.local"
    network: str = "greenchat"
    # Another node's Redis (greenchat/backplane): '' runs this server alone.
    backplane: str | None = None
    # Processes on one port, one network (workers.py); 1: this process serves alone.
    workers: int = 1
    # Listen with SO_REUSEPORT: set for the workers of --workers, not a setting of its own.
    reuse_port: bool = False
    motd: Path | None = None
    password: str | None = None
    verify_command: str | None = None  # sends new accounts their code (account verification)
    log_level: str = "INFO"
    max_clients: int = 10_000
    # Connections from one address; addresses in max_per_ip_exempt (loopback by
    # default, as Ergo does for localhost) are not counted.
    max_per_ip: int = 32
    max_per_ip_exempt: list[str] = field(default_factory=lambda: list(LOOPBACK))
    sendq: int = DEFAULT_SENDQ
    # Flood control (flood.py): lines a client may send at once, then per second
    # (0: off); the bytes of held lines past which it is dropped (Excess Flood).
    # The burst lets a client register and join 50 channels without waiting.
    flood_burst: int = 80
    flood_rate: float = 4.0
    recvq: int = 32 * 1024
    # Keepalive: PING a client silent for ping_interval seconds; drop it when
    # nothing arrives for ping_timeout more (Ergo and InspIRCd use about 2 min).
    ping_interval: float = 90.0
    ping_timeout: float = 60.0
    registration_timeout: float = 60.0
    # Seconds of each event-loop pass that connections still registering (or
    # logging in) may take; the rest wait for a later pass (lane.py), so a storm
    # of a thousand logins cannot stall registered users' chat. 0: no limit.
    registration_slice: float = 0.001
    nick_grace: float = 30.0  # seconds to log in to the account a nick is registered as
    # How long a closing connection may take to flush its last lines.
    close_grace: float = 2.0
    # History retention (server/history.py): older lines, and those beyond the newest
    # N of a conversation, are deleted in the background (0: no such limit).
    # Which channel history a member may read: all of it ("none"), or only what was
    # said since they connected ("registration-time") or joined ("join-time").
    history: bool = True  # store messages for CHATHISTORY; False: none kept, cap not offered
    history_query_cutoff: str = "none"
    history_max_age: float = 7 * 86_400.0
    history_max_per_target: int = 0
    history_autoreplay: int = 0  # lines replayed on JOIN to clients without chathistory
    history_expire_every: float = 60.0  # seconds between expiry passes (tests shorten it)
    # Nagle's algorithm stays on by default, as in InspIRCd and ngIRCd: at a
    # steady message rate the kernel then merges a client's small writes that
    # follow unacknowledged data into one segment, which halves server CPU per
    # delivery (benchmarks/README.md). TCP_NODELAY sends every flush at once.
    tcp_nodelay: bool = False
    tls_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # CAs whose client certificates are accepted
    tls_handshake_timeout: float = 10.0
    # IRCv3 sts, off unless set (and a TLS listener is): how long (seconds) a client keeps
    # to TLS for this server once it has connected over it; 0 asks for TLS each time only.
    # Opt-in, as on Ergo: a client told sts verifies the certificate, so a self-signed
    # one would lock it out.
    sts_duration: int | None = None
    # Prometheus: GET /metrics and /healthz on this port; off unless set.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # The browser client and IRC over WebSocket (web.py), on by default; the TLS
    # variant (https, wss) uses tls_cert and tls_key.
    web: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = DEFAULT_WEB_PORT
    web_tls_port: int | None = None
    web_origins: list[str] = field(default_factory=list)  # empty: the page's own origin
    web_trusted_proxies: list[str] = field(default_factory=list)
    web_handshake_timeout: float = 10.0
    # WEBIRC gateways: (name, password, network its connections come from).
    webirc: list[tuple[str, str, str]] = field(default_factory=list)
    nicklen: int = 30
    channellen: int = 64
    topiclen: int = 390
    kicklen: int = 390
    awaylen: int = 390
    max_targets: int = 4  # targets of one PRIVMSG/NOTICE/TAGMSG (TARGMAX)
    max_channels: int = 100  # channels one user may be in (CHANLIMIT)
    max_list_entries: int = 100  # entries per channel list, +b, +e and +I each (MAXLIST)
    monitor_limit: int = 100  # nicks one client may MONITOR
    whowas_size: int = 1000  # nick history entries kept for WHOWAS
    # Accounts and registered channels (greenchat.store.sqlite); ":memory:" keeps nothing.
    db: str = "greenchat.db"
    # Server operators: name -> password hash ("scrypt$<salt hex>$<hash hex>").
    opers: dict[str, str] = field(default_factory=dict)
    admin_info: tuple[str, str, str] = (
        "greenchat server",
        "Somewhere on the internet",
        "admin@localhost",
    )
    motd_lines: list[str] = field(default_factory=list)

    def load_motd(self) -> None:
        """Read the MOTD file (if any) into ``motd_lines``."""
        if self.motd is None:
            self.motd_lines = []
            return
        text = Path(self.motd).read_text(encoding="utf-8", errors="replace")
        self.motd_lines = text.splitlines() or [""]


class ConfigError(ValueError):
    """A setting is wrong; the message names the key and what is expected."""


@dataclass(frozen=True)
class Option:
    """One setting: ``--NAME`` on the command line, ``NAME = ...`` in the file."""

    name: str  # flag without the dashes and file key, e.g. "flood-burst"
    kind: str  # int, float, str, word, path, bool, choice, networks, origins, opers
    help: str
    metavar: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    restart: bool = False  # read only at start: a reload logs that a restart is needed

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        return "--" + self.name


OPTIONS: tuple[Option, ...] = (
    Option("host", "str", "address to listen on; 0.0.0.0 listens on every interface",
           restart=True),
    Option("port", "int", "TCP port to listen on; 0 picks a free one", minimum=0,
           maximum=65535, restart=True),
    Option("name", "word", "server name shown in message prefixes and numerics", restart=True),
    Option("network", "word", "network name (ISUPPORT NETWORK); with --backplane it also "
           "keeps different networks apart on one Redis"),
    Option("backplane", "str", "make this server one node of a network shared through Redis: "
           "redis://HOST:PORT/DB, rediss://... or unix:///PATH (a node of a Redis Cluster "
           "will do: the others are found from it); every node of the network gives the "
           "same URL and --network", metavar="URL", restart=True),
    Option("workers", "int", "run this many server processes on one port as one network "
           "(SO_REUSEPORT), restarting any that dies; without --backplane they share a "
           "private redis-server (needs redis-server on PATH)", minimum=1, maximum=64,
           restart=True),
    Option("motd", "path", "text file sent as the message of the day (without one clients get "
           "422); re-read on SIGHUP", metavar="FILE"),
    Option("password", "str", "connection password clients must send with PASS"),
    Option("verify-command", "str", "verify new accounts by e-mail: this command (split as a "
           "shell would, run without one) sends the code, with GREENCHAT_ACCOUNT, "
           "GREENCHAT_EMAIL and GREENCHAT_CODE in its environment; REGISTER then needs an "
           "e-mail address, and the account logs in only after VERIFY", metavar="COMMAND"),
    Option("log-level", "choice", "logging verbosity on stderr",
           choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Option("max-clients", "int", "most simultaneous connections; beyond it a new one gets "
           "'ERROR :Server full'", minimum=1, maximum=1_000_000),
    Option("max-per-ip", "int", "most simultaneous connections from one address (0: no "
           "limit); beyond it 'ERROR :Too many connections from your address'", minimum=0,
           maximum=1_000_000),
    Option("max-per-ip-exempt", "networks", "comma-separated addresses or networks not "
           "counted by --max-per-ip ('' for none)", metavar="CIDRS"),
    Option("sendq", "int", "per-client send queue limit in bytes; overflow disconnects that "
           "client with 'SendQ exceeded'", metavar="BYTES", minimum=1024, maximum=1 << 30),
    Option("flood-burst", "int", "lines a client may send at once before flood control "
           "delays the rest", metavar="LINES", minimum=1,
           maximum=100_000),
    Option("flood-rate", "float", "lines per second a client may keep sending; 0 turns "
           "flood control off (operators are always exempt)", metavar="LINES", minimum=0,
           maximum=100_000),
    Option("recvq", "int", "bytes of delayed input a flooding client may have waiting; "
           "beyond it 'ERROR :Excess Flood'", metavar="BYTES", minimum=512,
           maximum=64 << 20),
    Option("ping-interval", "float", "seconds of silence before the server sends PING",
           metavar="SECONDS", minimum=1, maximum=86_400),
    Option("ping-timeout", "float", "seconds after that PING before 'Ping timeout'",
           metavar="SECONDS", minimum=1, maximum=86_400),
    Option("nick-grace", "float", "seconds someone who takes a registered nick has to log "
           "in to its account before being renamed to a Guest nick", metavar="SECONDS",
           minimum=1, maximum=86_400),
    Option("registration-timeout", "float", "seconds a connection may take to register "
           "(NICK/USER/CAP END)", metavar="SECONDS", minimum=1, maximum=86_400),
    Option("registration-slice", "float", "seconds of each pass of the event loop that "
           "connections still registering or logging in may take; the others wait for a "
           "later pass, so a storm of connections cannot stall chat (0: no limit)",
           metavar="SECONDS", minimum=0, maximum=1, restart=True),
    Option("history", "bool", "store every message for CHATHISTORY (--no-history: none is "
           "stored, and draft/chathistory, draft/event-playback and "
           "draft/message-redaction are not offered)", restart=True),
    Option("history-query-cutoff", "choice", "which channel history a member may read with "
           "CHATHISTORY: all of it (none), or only what was said since they connected "
           "(registration-time) or joined the channel (join-time)",
           choices=("none", "registration-time", "join-time")),
    Option("history-max-age", "float", "seconds a stored message is kept for CHATHISTORY "
           "(default 7 days; 0 keeps them all)", metavar="SECONDS", minimum=0,
           maximum=100 * 365 * 86_400),
    Option("history-max-per-target", "int", "most stored messages kept per channel or "
           "private conversation, the oldest deleted first (0: no limit)", minimum=0,
           maximum=1_000_000_000),
    Option("history-autoreplay", "int", "lines of a channel's history replayed on JOIN to "
           "clients without draft/chathistory, with their times (in a batch with the batch "
           "capability; 0: none, as Ergo's default)", metavar="LINES", minimum=0,
           maximum=100),
    Option("tcp-nodelay", "bool", "send each flush at once (TCP_NODELAY) instead of letting "
           "the kernel merge small writes behind unacknowledged data (Nagle): lower latency "
           "on slow links, about twice the CPU per delivery at steady rates"),
    Option("tls-port", "int", "also listen for TLS on this port (needs --tls-cert and "
           "--tls-key)", minimum=0, maximum=65535, restart=True),
    Option("tls-cert", "path", "PEM certificate chain for TLS; re-read on SIGHUP",
           metavar="FILE"),
    Option("tls-key", "path", "PEM private key for TLS; re-read on SIGHUP", metavar="FILE"),
    Option("tls-client-ca", "path", "PEM CA certificates: TLS clients may present a "
           "certificate one of them issued, for NickServ CERT and SASL EXTERNAL (without it "
           "no client certificate is asked for); re-read on SIGHUP", metavar="FILE"),
    Option("tls-handshake-timeout", "float", "seconds a TLS handshake may take",
           metavar="SECONDS", minimum=0.1, maximum=3600),
    Option("sts-duration", "int", "offer IRCv3 sts (with --tls-port and a certificate "
           "clients can verify): seconds a client that connected over TLS keeps to TLS for "
           "this server; 0 upgrades each connection only; off unless set",
           metavar="SECONDS", minimum=0, maximum=10 * 365 * 86400),
    Option("metrics-port", "int", "serve Prometheus metrics (GET /metrics) and a health check "
           "(GET /healthz: 200, 503 while draining) on this port; off unless set", minimum=0,
           maximum=65535, restart=True),
    Option("metrics-host", "str", "address of the metrics listener; keep it private",
           restart=True),
    Option("web", "bool", "serve the browser client and IRC over WebSocket (--no-web: off)",
           restart=True),
    Option("web-host", "str", "address of the web listener", restart=True),
    Option("web-port", "int", "port of the web listener: the page at http://HOST:PORT/ and "
           "its WebSocket at ws://HOST:PORT/; 0 picks a free one", minimum=0, maximum=65535,
           restart=True),
    Option("web-tls-port", "int", "also serve the page and WebSocket over TLS (https, wss) "
           "on this port (needs --tls-cert and --tls-key)", minimum=0, maximum=65535,
           restart=True),
    Option("web-origins", "origins", "comma-separated origins whose pages may open a "
           "WebSocket (scheme://host[:port], or * for any); by default only the page's own",
           metavar="ORIGINS"),
    Option("web-trusted-proxies", "networks", "comma-separated addresses or networks of "
           "reverse proxies whose X-Forwarded-For names the client ('' for none)",
           metavar="CIDRS"),
    Option("web-handshake-timeout", "float", "seconds a web request (or WebSocket "
           "handshake) may take to arrive", metavar="SECONDS", minimum=0.1, maximum=3600),
    Option("nicklen", "int", "longest nick (NICKLEN)", minimum=1, maximum=200),
    Option("channellen", "int", "longest channel name (CHANNELLEN)", minimum=2,
           maximum=200),
    Option("topiclen", "int", "longest topic in bytes (TOPICLEN)", minimum=1,
           maximum=MAX_TEXT),
    Option("kicklen", "int", "longest kick reason in bytes (KICKLEN)", minimum=1,
           maximum=MAX_TEXT),
    Option("awaylen", "int", "longest away message in bytes (AWAYLEN)", minimum=1,
           maximum=MAX_TEXT),
    Option("max-targets", "int", "targets of one PRIVMSG/NOTICE/TAGMSG (TARGMAX)", minimum=1,
           maximum=100),
    Option("max-channels", "int", "channels one user may be in (CHANLIMIT)", minimum=1,
           maximum=10_000),
    Option("max-list-entries", "int", "entries in each channel list: +b, +e, +I (MAXLIST)",
           minimum=1, maximum=10_000),
    Option("monitor-limit", "int", "nicks one client may MONITOR", minimum=0, maximum=10_000),
    Option("whowas-size", "int", "nick history entries kept for WHOWAS", minimum=0,
           maximum=1_000_000,
           restart=True),
    Option("db", "str", "SQLite file for accounts, registered channels and history, "
           "created if missing (relative to the directory the server starts in); :memory: "
           "keeps nothing after the server stops; redis keeps them in the --backplane "
           "Redis, shared by every node", metavar="FILE", restart=True),
    Option("webirc", "gateways", "trusted web gateways that may pass their users' real "
           "addresses with WEBIRC: NAME:PASSWORD:CIDR (the gateway connects from CIDR); in "
           "the file a list of them, on the command line --webirc, repeatable (arguments are "
           "visible to other local users: prefer the file)"),
    Option("opers", "opers", "IRC operators: in the file a table of name = password (or "
           "a scrypt$ hash); on the command line --oper NAME:PASSWORD, repeatable"),
)  # fmt: skip
BY_NAME = {option.name: option for option in OPTIONS}


def check_option(
    option: Option, value: Any, where: str, known_opers: dict[str, str] | None = None
) -> Any:
    """``value`` converted for ``option``; ConfigError naming ``where`` when it is wrong.

    ``known_opers``: the running operators' hashes, kept for unchanged passwords.
    """
    kind = option.kind
    if kind in ("int", "float"):
        ok = isinstance(value, int | float) if kind == "float" else isinstance(value, int)
        if not ok or isinstance(value, bool):
            raise ConfigError(f"{where}: expected {'a number' if kind == 'float' else 'an integer'}"
                              f", got {value!r}")  # fmt: skip
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        if option.minimum is not None and value < option.minimum:
            raise ConfigError(f"{where}: must be at least {plain(option.minimum)}, got {value!r}")
        if option.maximum is not None and value > option.maximum:
            raise ConfigError(f"{where}: must be at most {plain(option.maximum)}, got {value!r}")
        return float(value) if kind == "float" else value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if not isinstance(value, str) and kind not in ("networks", "opers", "origins", "gateways"):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if kind == "word" and (not value or not value.isprintable() or " " in value):
        raise ConfigError(f"{where}: expected a name without spaces, got {value!r}")
    if kind == "path":
        return Path(value) if value else None
    if kind == "choice":
        if value.upper() not in option.choices:
            raise ConfigError(f"{where}: expected one of {', '.join(option.choices)}")
        return value.upper()
    if kind == "networks":
        return _networks(value, where)
    if kind == "origins":
        return _origins(value, where)
    if kind == "opers":
        return _opers(value, where, known_opers or {})
    if kind == "gateways":
        return _gateways(value, where)
    return value


def plain(number: float) -> str:
    """``65535`` rather than ``65535.0``; ``0.1`` stays ``0.1``."""
    return str(int(number)) if float(number).is_integer() else str(number)


def _items(value: Any, where: str, what: str) -> list[str]:
    """A TOML list or a comma-separated string, as its non-empty stripped items."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{where}: expected a list of {what}")
    return [item.strip() for item in items if item.strip()]


def _networks(value: Any, where: str) -> list[str]:
    out = []
    for item in _items(value, where, "addresses or networks"):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(f"{where}: {item!r} is not an address or network") from None
    return out


def _origins(value: Any, where: str) -> list[str]:
    out = []
    for item in (item.rstrip("/").lower() for item in _items(value, where, "origins")):
        scheme, sep, rest = item.partition("://")
        if item != "*" and (scheme not in ("http", "https") or not sep or not rest
                            or "/" in rest or " " in rest):  # fmt: skip
            raise ConfigError(f"{where}: {item!r} is not an origin (scheme://host[:port] or *)")
        out.append(item)
    return out


def _gateways(value: Any, where: str) -> list[tuple[str, str, str]]:
    """``NAME:PASSWORD:CIDR`` items (a list, or one string) -> (name, password, network)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{where}: expected a list of NAME:PASSWORD:CIDR")
    out = []
    for item in items:
        name, _, rest = item.partition(":")
        password, _, cidr = rest.partition(":")  # a CIDR may have colons (IPv6)
        if not name or not password or not cidr or " " in name:
            raise ConfigError(f"{where}: expected NAME:PASSWORD:CIDR, got {name or '?'}:...")
        try:
            network = str(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ConfigError(f"{where}: {cidr!r} is not an address or network") from None
        out.append((name, password, network))
    return out


def _opers(value: Any, where: str, known: dict[str, str]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table of name = password")
    opers = {}
    for name, secret in value.items():
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f"{where}.{name}: expected a password or a scrypt$ hash")
        if any(ch.isspace() for ch in name) or not name.isprintable():
            raise ConfigError(f"{where}.{name}: an operator name may not contain spaces")
        opers[name] = secret if secret.startswith("scrypt$") else _hashed(secret, known.get(name))
    return opers


def _hashed(password: str, running: str | None) -> str:
    """A salted hash of ``password``: the running one if it still matches, so a
    reload does not count an unchanged password as a change (a new salt would)."""
    if running is not None and verify_password(password, running):
        return running
    return hash_password(password)


def load_file(path: Path, known_opers: dict[str, str] | None = None) -> dict[str, Any]:
    """The settings in TOML file ``path``, checked, as ``{attribute: value}``.

    Slow when it has plain-text operator passwords (scrypt): a running server
    calls it in the thread pool, with its operators' hashes as ``known_opers``.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values = {}
    for key, value in data.items():
        option = BY_NAME.get(key) or BY_NAME.get(key.replace("_", "-"))
        if option is None:
            raise ConfigError(f"{path}: unknown key {key!r} (see docs/operations.md)")
        values[option.attr] = check_option(option, value, f"{path}: {key}", known_opers)
    return values


def build_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> ServerConfig:
    """Defaults, then the file, then the flags; checks what only makes sense together."""
    config = replace(ServerConfig(), **file_values)
    config = replace(config, **flag_values)
    if config.tls_port is not None and (config.tls_cert is None or config.tls_key is None):
        raise ConfigError("tls-port needs tls-cert and tls-key")
    if config.web_tls_port is not None and (config.tls_cert is None or config.tls_key is None):
        raise ConfigError("web-tls-port needs tls-cert and tls-key")
    if not config.db:
        raise ConfigError("db: expected a file name, :memory: to keep nothing, or redis")
    if config.db == REDIS_DB and not config.backplane and config.workers == 1:
        raise ConfigError("db: redis keeps accounts in the backplane's Redis: give --backplane "
                          "(or --workers)")  # fmt: skip
    if config.motd is not None:
        try:
            config.load_motd()
        except OSError as exc:
            raise ConfigError(f"motd: cannot read {config.motd}: {exc.strerror or exc}") from None
    return config
