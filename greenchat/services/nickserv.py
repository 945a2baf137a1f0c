"""NickServ: register your nick as an account, log in to it, keep it yours.

Spoken to with ``/msg NickServ <command>`` (or the ``NS``/``NICKSERV``
commands); it answers with NOTICEs, as Ergo's does. Every command that reads or
writes the store waits off the event loop (server/login.py, ``wait_for_store``);
passwords are hashed and checked in the thread pool and never logged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold
from greenchat.server.commands.table import wait_for, wait_for_store
from greenchat.server.events import Killed
from greenchat.server.login import (
    MIN_PASSWORD,
    LoginRefused,
    RegistrationRefused,
    certfp_of,
    check_password,
    log_in,
    log_out,
    normalize_certfp,
    register_account,
)
from greenchat.server.shared_store import ACCOUNT, announce
from greenchat.services.base import Handler, Reply, Service
from greenchat.store.credentials import make_credentials

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

__all__ = ["NICKSERV"]

UNAVAILABLE = "Accounts are temporarily unavailable (storage is failing); try again later."


def _register(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """REGISTER <password> [email]: your current nick becomes an account."""
    if not args or len(args) > 2 or (len(args) == 2 and "@" not in args[1]):
        reply("Syntax: REGISTER <password> [email] (a password is one word)")
        return
    if conn.user.account:
        reply(f"You are already logged in as {conn.user.account}.")
        return
    name, email = conn.user.nick, args[1] if len(args) > 1 else ""
    try:
        account = register_account(server, conn, name, args[0], email)
    except RegistrationRefused as exc:
        reply(f"Not registered: {exc}.")
        return
    if not account.verified:
        reply(f"Account created: {name}. A code was sent to {email}: send VERIFY {name} <code>.")
        return
    reply(f"Account created: {name}. You are now logged in.")
    log_in(server, conn, name)


def _identify(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """IDENTIFY [account] <password>."""
    if not args:
        reply("Syntax: IDENTIFY [account] <password>")
        return
    if conn.user.account:
        reply(f"You are already logged in as {conn.user.account}.")
        return
    name, password = (args[0], args[1]) if len(args) > 1 else (conn.user.nick, args[0])
    try:
        account = check_password(server, conn, name, password)
    except LoginRefused as exc:
        reply(f"Could not log you in: {exc}.")
        return
    reply(f"You are now logged in as {account.name}.")
    log_in(server, conn, account.name)


def _logout(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    if not conn.user.account:
        reply("You are not logged in.")
        return
    reply("You are now logged out.")
    log_out(server, conn)


def _info(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """INFO [account]: what is public about an account."""
    name = args[0] if args else conn.user.account or conn.user.nick
    account = wait_for_store(conn, "get_account", name)
    if account is None:
        reply(f"No account is registered as {name}.")
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(account.registered_at))
    reply(f"Account: {account.name}")
    reply(f"Registered at: {when}")
    email = account.settings.get("email") or account.email
    if email and casefold(conn.user.account) == casefold(account.name):
        reply(f"E-mail: {email} (only you see it)")
    online = [u.nick for u in server.hub.nicks.values() if u.account == account.name]
    if online:
        reply(f"Logged in now as: {', '.join(sorted(online))}")


def _passwd(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """PASSWD <current password> <new password>."""
    if len(args) < 2:
        reply("Syntax: PASSWD <current password> <new password>")
        return
    if not conn.user.account:
        reply("Log in first.")
        return
    try:
        check_password(server, conn, conn.user.account, args[0])
    except LoginRefused as exc:
        reply(f"Password not changed: {exc}.")
        return
    if len(args[1]) < MIN_PASSWORD:
        reply(f"Choose a password of at least {MIN_PASSWORD} characters.")
        return
    credentials = wait_for(conn, make_credentials, args[1])
    wait_for_store(conn, "set_credentials", conn.user.account, credentials)
    reply("Password changed.")


def _drop(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """DROP <password>: delete your account (and the channels it founded)."""
    if not args:
        reply("Syntax: DROP <password>   (deletes your account, for good)")
        return
    name = conn.user.account
    if not name:
        reply("Log in first.")
        return
    try:
        check_password(server, conn, name, args[0])
    except LoginRefused as exc:
        reply(f"Account not dropped: {exc}.")
        return
    wait_for_store(conn, "drop_account", name)
    server.registered_nicks.discard(casefold(name))
    server.channel_registry.account_dropped(name)  # its channels and access entries went too
    announce(server, ACCOUNT, name)
    for user in list(server.hub.nicks.values()):
        if user.account == name and user.session is not None:
            log_out(server, user.session)
    reply(f"Account {name} dropped.")


def _ghost(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """GHOST <nick>: disconnect another session of your account holding ``nick``."""
    if not args:
        reply("Syntax: GHOST <nick>")
        return
    target = server.hub.nick_owner(args[0])
    if target is None or not target.registered:
        reply(f"No one is using the nick {args[0]}.")
    elif target is conn.user:
        reply("You cannot ghost yourself.")
    elif not conn.user.account or (
        target.account != conn.user.account and casefold(target.nick) != casefold(conn.user.account)
    ):
        reply(f"{target.nick} is not yours to ghost: log in to its account first.")
    else:
        reason = f"GHOST command used by {conn.user.nick}"
        server.hub.apply(Killed(conn.user.nick, target.nick, reason))
        reply(f"{target.nick} has been ghosted.")


# NickServ SET: the settings there are, and how a value is checked ('' clears one).
SETTINGS: dict[str, tuple[str, object]] = {
    "EMAIL": ("an e-mail address, shown to you in INFO", lambda v: "@" in v and " " not in v),
}


def _set(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """SET <setting> [value]: change a setting of your account (no value clears it)."""
    name = conn.user.account
    if not name:
        reply("Log in first.")
        return
    key = args[0].upper() if args else ""
    if key not in SETTINGS:
        for setting, (text, _) in SETTINGS.items():
            reply(f"SET {setting} [value]: {text}")
        return
    value = " ".join(args[1:])
    if value and not SETTINGS[key][1](value):
        reply(f"That is not {SETTINGS[key][0].split(',')[0]}.")
        return
    wait_for_store(conn, "set_setting", name, key.lower(), value)
    reply(f"{key} is now {value}." if value else f"{key} is cleared.")


def _cert(server: ChatServer, conn: Session, reply: Reply, args: list[str]) -> None:
    """CERT LIST | ADD [fingerprint] | DEL <fingerprint>: TLS client certificates that
    log in to your account (SASL EXTERNAL)."""
    name = conn.user.account
    if not name:
        reply("Log in first.")
        return
    sub = args[0].upper() if args else "LIST"
    if sub == "LIST":
        account = wait_for_store(conn, "get_account", name)
        for certfp in account.certfps if account else ():
            reply(certfp)
        reply(f"{len(account.certfps) if account else 0} certificate(s) for {name}.")
    elif sub in ("ADD", "DEL"):
        _cert_change(conn, reply, name, sub, args[1] if len(args) > 1 else "")
    else:
        reply("Syntax: CERT LIST | CERT ADD [fingerprint] | CERT DEL <fingerprint>")


def _cert_change(conn: Session, reply: Reply, name: str, sub: str, given: str) -> None:
    certfp = normalize_certfp(given) if given else certfp_of(conn)
    if not certfp:
        reply("Give a SHA-256 fingerprint, or connect with a TLS client certificate.")
    elif sub == "ADD" and wait_for_store(conn, "add_certfp", name, certfp):
        reply(f"Certificate {certfp} added: it logs in to {name} (SASL EXTERNAL).")
    elif sub == "ADD":
        reply(f"Certificate {certfp} is already listed (by this or another account).")
    elif wait_for_store(conn, "remove_certfp", name, certfp):
        reply(f"Certificate {certfp} removed.")
    else:
        reply(f"Certificate {certfp} is not listed for {name}.")


COMMANDS: dict[str, tuple[Handler, str]] = {
    "REGISTER": (_register, "REGISTER <password> [email]: make your nick an account"),
    "IDENTIFY": (_identify, "IDENTIFY [account] <password>: log in"),
    "LOGOUT": (_logout, "LOGOUT: log out"),
    "INFO": (_info, "INFO [account]: what is known of an account"),
    "PASSWD": (_passwd, "PASSWD <current> <new>: change your password"),
    "DROP": (_drop, "DROP <password>: delete your account"),
    "GHOST": (_ghost, "GHOST <nick>: disconnect your other session using a nick"),
    "SET": (_set, "SET <setting> [value]: change a setting of your account (SET lists them)"),
    "CERT": (_cert, "CERT LIST | ADD [fingerprint] | DEL <fingerprint>: certificates that log in"),
}

NICKSERV = Service("NickServ", COMMANDS, unavailable=UNAVAILABLE)
