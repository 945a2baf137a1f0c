"""WEBIRC: a trusted web gateway passes the real address of the user it connects for.

A gateway (a web chat in front of greenchat) connects from its own address, so
every user it carries would look the same: one host to ban, one address for the
per-address limits. ``WEBIRC <password> <gateway> <hostname> <ip> [:<flags>]``,
sent before registration, replaces the connection's address with the user's when
the connection comes from a network configured for that password
(``--webirc NAME:PASSWORD:CIDR``); the connection then counts for the user's
address under ``--max-per-ip``, no longer for the gateway's. Anything else is
refused and the connection closed (as Ergo does): a bad WEBIRC is a misconfigured
gateway or a forger.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from typing import TYPE_CHECKING

from greenchat.protocol.numerics import ERR_ALREADYREGISTERED
from greenchat.server.commands.table import command
from greenchat.server.session import display_host

if TYPE_CHECKING:
    from greenchat.protocol.message import Message
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

log = logging.getLogger("greenchat.server")

_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")


@command(
    "WEBIRC",
    min_params=4,
    before_registration=True,
    help="WEBIRC <password> <gateway> <hostname> <ip>\nSent by a trusted web gateway "
    "before registration: the user's real address instead of the gateway's.",
)
def webirc(server: ChatServer, conn: Session, msg: Message) -> None:
    if conn.user.registered:
        conn.numeric(ERR_ALREADYREGISTERED, "You may not reregister")
        return
    password, gateway, hostname, ip_text = msg.params[:4]
    name = _gateway_for(server, conn.user.ip, password)
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        ip = None
    if name is None or ip is None or conn.webirc_gateway:
        why = "bad address" if name and ip is None else "not a trusted gateway"
        log.warning("WEBIRC from %s (%s) refused: %s", conn.user.ip, gateway[:64], why)
        server.metrics.webirc_refused += 1
        conn.disconnect("WEBIRC refused", error="WEBIRC refused: " + why)
        return
    address = str(ip)
    refusal = server.readdress(conn, address)
    if refusal is not None:  # the user's own address is over its limit
        log.info("WEBIRC from %s for %s refused: %s", name, address, refusal)
        conn.disconnect(refusal, error=refusal)
        return
    conn.webirc_gateway = name
    conn.user.ip = address
    conn.user.host = hostname if _HOSTNAME.fullmatch(hostname) else display_host(address)
    log.info("WEBIRC: %s carries %s (%s)", name, conn.user.host, address)


def _gateway_for(server: ChatServer, peer: str, password: str) -> str | None:
    """The name of the configured gateway ``peer`` may be with ``password``, or None."""
    try:
        address = ipaddress.ip_address(peer.removeprefix("::ffff:"))
    except ValueError:
        return None
    found = None
    for name, secret, network in server.config.webirc:
        # Every entry is compared, so the time taken does not tell which one matched.
        matches = hmac.compare_digest(password.encode(), secret.encode())
        if matches and address in ipaddress.ip_network(network) and found is None:
            found = name
    return found
