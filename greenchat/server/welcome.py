"""The replies a client gets on registration: welcome, ISUPPORT, LUSERS, MOTD."""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat import __version__
from greenchat.protocol.casemap import CASEMAPPING, CHANNEL_PREFIXES, STATUSMSG
from greenchat.protocol.masks import EXTBANS
from greenchat.protocol.numerics import (
    ERR_NOMOTD,
    RPL_CREATED,
    RPL_ENDOFMOTD,
    RPL_GLOBALUSERS,
    RPL_ISUPPORT,
    RPL_LOCALUSERS,
    RPL_LUSERCHANNELS,
    RPL_LUSERCLIENT,
    RPL_LUSERME,
    RPL_LUSEROP,
    RPL_LUSERUNKNOWN,
    RPL_MOTD,
    RPL_MOTDSTART,
    RPL_MYINFO,
    RPL_WELCOME,
    RPL_YOURHOST,
)
from greenchat.server.history import isupport_tokens as history_tokens
from greenchat.server.user import BOT_MODE

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

VERSION = f"greenchat-{__version__}"
# +o only through OPER (users may drop it); +r: logged in; +w: wallops; +B: a bot.
USER_MODES = "Biorw"
# Channel modes by ISUPPORT CHANMODES type: A (lists), B (parameter always),
# C (parameter when set), D (flags). Prefix modes (PREFIX) are separate.
LIST_MODES = "beI"  # bans, ban exceptions (EXCEPTS), invite exceptions (INVEX)
KEY_MODES = "k"
LIMIT_MODES = "l"
CHANNEL_MODES = "CUcimnpst"  # +C no CTCP, +U op-moderated, +c no colours
PREFIX_MODES = "ov"
# Modes with a parameter applied per MODE command (MODES=); more are ignored.
MAX_MODE_PARAMS = 4
# Longest channel key (KEYLEN=); a longer one is refused with 696.
KEYLEN = 32
_TOKENS_PER_LINE = 12


def isupport_tokens(server: ChatServer) -> list[str]:
    """The 005 tokens: each one describes something this server really does."""
    cfg = server.config
    tokens = [
        f"AWAYLEN={cfg.awaylen}",
        f"BOT={BOT_MODE}",
        f"CASEMAPPING={CASEMAPPING}",
        f"CHANLIMIT={CHANNEL_PREFIXES}:{cfg.max_channels}",
        f"CHANMODES={LIST_MODES},{KEY_MODES},{LIMIT_MODES},{CHANNEL_MODES}",
        f"CHANNELLEN={cfg.channellen}",
        "EXCEPTS=e",
        f"EXTBAN=,{EXTBANS}",
        "INVEX=I",
        f"CHANTYPES={CHANNEL_PREFIXES}",
        "ELIST=CMNTU",
        f"KEYLEN={KEYLEN}",
        f"KICKLEN={cfg.kicklen}",
        "MAXLIST=" + ",".join(f"{char}:{cfg.max_list_entries}" for char in LIST_MODES),
        f"MODES={MAX_MODE_PARAMS}",
        f"MONITOR={cfg.monitor_limit}",
        f"NETWORK={cfg.network}",
        f"NICKLEN={cfg.nicklen}",
        "PREFIX=(ov)@+",
        f"TARGMAX=PRIVMSG:{cfg.max_targets},NOTICE:{cfg.max_targets},TAGMSG:{cfg.max_targets}",
        f"TOPICLEN={cfg.topiclen}",
        f"STATUSMSG={STATUSMSG}",
        "UTF8ONLY",
        "WHOX",
        *(history_tokens() if cfg.history else ()),
    ]
    return sorted(tokens)


def send_isupport(server: ChatServer, conn: Session, tags: dict[str, str] | None = None) -> None:
    """The 005 lines: at registration, for VERSION, for ISUPPORT (extended-isupport)."""
    tokens = isupport_tokens(server)
    for start in range(0, len(tokens), _TOKENS_PER_LINE):
        chunk = tokens[start : start + _TOKENS_PER_LINE]
        conn.numeric(RPL_ISUPPORT, *chunk, "are supported by this server", tags=tags)


def send_welcome(server: ChatServer, conn: Session) -> None:
    cfg = server.config
    conn.numeric(RPL_WELCOME, f"Welcome to the {cfg.network} IRC Network {conn.user.prefix}")
    conn.numeric(RPL_YOURHOST, f"Your host is {cfg.name}, running version {VERSION}")
    conn.numeric(RPL_CREATED, f"This server was created {server.created_text}")
    all_modes = "".join(sorted(LIST_MODES + KEY_MODES + LIMIT_MODES + CHANNEL_MODES + PREFIX_MODES))
    with_param = "".join(sorted(LIST_MODES + KEY_MODES + LIMIT_MODES + PREFIX_MODES))
    conn.numeric(RPL_MYINFO, cfg.name, VERSION, USER_MODES, all_modes, with_param, trailing=False)
    send_isupport(server, conn)
    send_lusers(server, conn)
    send_motd(server, conn)


def send_lusers(server: ChatServer, conn: Session) -> None:
    hub = server.hub
    users = hub.registered_count
    invisible = hub.invisible_count
    unknown = len(server.sessions) - users  # local connections not registered yet
    most = hub.max_registered
    conn.numeric(
        RPL_LUSERCLIENT,
        f"There are {users - invisible} users and {invisible} invisible on 1 servers",
    )
    if hub.presence.opers:
        conn.numeric(RPL_LUSEROP, str(len(hub.presence.opers)), "operator(s) online")
    if unknown:
        conn.numeric(RPL_LUSERUNKNOWN, str(unknown), "unknown connection(s)")
    conn.numeric(RPL_LUSERCHANNELS, str(len(hub.channels)), "channels formed")
    conn.numeric(RPL_LUSERME, f"I have {users} clients and 0 servers")
    conn.numeric(RPL_LOCALUSERS, str(users), str(most), f"Current local users {users}, max {most}")
    conn.numeric(
        RPL_GLOBALUSERS, str(users), str(most), f"Current global users {users}, max {most}"
    )


def send_motd(server: ChatServer, conn: Session) -> None:
    lines = server.config.motd_lines
    if not lines:
        conn.numeric(ERR_NOMOTD, "MOTD File is missing")
        return
    conn.numeric(RPL_MOTDSTART, f"- {server.config.name} Message of the day - ")
    for line in lines:
        conn.numeric(RPL_MOTD, f"- {line}")
    conn.numeric(RPL_ENDOFMOTD, "End of /MOTD command.")
