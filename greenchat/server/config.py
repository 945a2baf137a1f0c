"""Server configuration: one dataclass, filled from command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 8546
DEFAULT_SENDQ = 1024 * 1024


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    name: str = "greenchat.local"
    network: str = "greenchat"
    motd_path: Path | None = None
    password: str | None = None
    max_clients: int = 10_000
    sendq: int = DEFAULT_SENDQ
    # Keepalive: PING a client silent for ping_interval seconds; drop it when
    # nothing arrives for ping_timeout more (Ergo and InspIRCd use about 2 min).
    ping_interval: float = 90.0
    ping_timeout: float = 60.0
    registration_timeout: float = 60.0
    # How long a closing connection may take to flush its last lines.
    close_grace: float = 2.0
    # Nagle's algorithm stays on by default, as in InspIRCd and ngIRCd: at a
    # steady message rate the kernel then merges a client's small writes that
    # follow unacknowledged data into one segment, which halves server CPU per
    # delivery (benchmarks/README.md). TCP_NODELAY sends every flush at once.
    tcp_nodelay: bool = False
    nicklen: int = 30
    channellen: int = 64
    topiclen: int = 390
    kicklen: int = 390
    max_targets: int = 4  # targets of one PRIVMSG/NOTICE/TAGMSG (TARGMAX)
    max_channels: int = 100  # channels one user may be in (CHANLIMIT)
    awaylen: int = 390
    max_list_entries: int = 100  # +b list size per channel (MAXLIST)
    monitor_limit: int = 100  # nicks one client may MONITOR
    whowas_size: int = 1000  # nick history entries kept for WHOWAS
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
        if self.motd_path is None:
            self.motd_lines = []
            return
        text = Path(self.motd_path).read_text(encoding="utf-8", errors="replace")
        self.motd_lines = text.splitlines() or [""]
