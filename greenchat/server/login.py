"""Logging in to an account, shared by SASL and NickServ: checking a password
under the failed-login limits, and what a login or logout changes.

The account is read from the store off the event loop and the password hash is
checked in gevent's thread pool: a handler that logs in is registered with
``yields=True``. Passwords are never logged.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import shlex
import subprocess
import time
from typing import TYPE_CHECKING

import gevent
from gevent import monkey

from greenchat.protocol.casemap import casefold, valid_nick
from greenchat.protocol.numerics import RPL_LOGGEDIN, RPL_LOGGEDOUT
from greenchat.server import metadata
from greenchat.server.commands.table import wait_for, wait_for_store
from greenchat.server.events import AccountChanged
from greenchat.server.shared_store import ACCOUNT, announce
from greenchat.store.base import Account, AccountExists, StoreUnavailable
from greenchat.store.credentials import hash_password, make_credentials, verify_password

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

__all__ = [
    "MIN_PASSWORD",
    "LoginLimiter",
    "LoginRefused",
    "RegistrationRefused",
    "certfp_of",
    "check_password",
    "log_in",
    "log_out",
    "normalize_certfp",
    "register_account",
    "send_code",
    "verify_account",
]

MIN_PASSWORD = 5
VERIFY_COMMAND_TIMEOUT = 30.0  # seconds --verify-command may take

log = logging.getLogger("greenchat.login")


class LoginRefused(Exception):
    """A login that failed; ``str()`` is what the client is told."""

    def __init__(self, text: str, unavailable: bool = False) -> None:
        super().__init__(text)
        self.unavailable = unavailable  # the store failed, not the client


class RegistrationRefused(Exception):
    """An account that cannot be made: ``code`` as account-registration names it
    (ACCOUNT_EXISTS, BAD_ACCOUNT_NAME, WEAK_PASSWORD...), ``str()`` the reason."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


class LoginLimiter:
    """Failed logins per key (an address, an account), sans-IO: the clock is passed in.

    The first ``free`` failures cost nothing; after that each one makes the next
    attempt wait, twice as long each time up to ``longest`` seconds. A success
    clears the key. Keys whose wait ran out ``forget`` seconds ago are dropped
    when the table grows, so guessing from many addresses cannot fill memory.
    """

    def __init__(
        self, free: int = 3, first: float = 2.0, longest: float = 300.0, forget: float = 3600.0
    ) -> None:
        self.free, self.first, self.longest, self.forget = free, first, longest, forget
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, may retry at)
        self._prune_at = 1024

    def wait(self, key: str, now: float) -> float:
        """Seconds before ``key`` may try again (0 when it may now)."""
        entry = self._failures.get(key)
        return max(0.0, entry[1] - now) if entry else 0.0

    def failed(self, key: str, now: float) -> None:
        count = self._failures.get(key, (0, now))[0] + 1
        delay = 0.0 if count <= self.free else self.first * 2 ** (count - self.free - 1)
        self._failures[key] = (count, now + min(delay, self.longest))
        if len(self._failures) >= self._prune_at:
            self._prune(now)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        stale = [k for k, (_, until) in self._failures.items() if until + self.forget < now]
        for key in stale:
            del self._failures[key]
        self._prune_at = max(1024, 2 * len(self._failures))


@functools.cache
def _decoy_hash() -> str:
    """A hash to check a password against when the account does not exist, so
    that a wrong name costs as long as a wrong password (no timing oracle)."""
    return hash_password("no such account")


def limiter_keys(server: ChatServer, conn: Session, account: str) -> tuple[str, ...]:
    """What a failure counts against: the account, and the address unless it is exempt
    as from --max-per-ip (loopback by default: a bouncer, a gateway, a load test, where
    one person's wrong passwords must not lock everyone out)."""
    keys = (f"account {casefold(account)}",)
    if server.exempt_from_address_limits(conn.user.ip):
        return keys
    return (*keys, f"address {conn.user.ip}")


def check_limits(server: ChatServer, conn: Session, account: str) -> None:
    """LoginRefused, saying how long to wait, while the address or account is limited."""
    now = time.monotonic()
    wait = max(server.login_limiter.wait(key, now) for key in limiter_keys(server, conn, account))
    if wait > 0:
        server.metrics.logins["limited"] += 1
        seconds = math.ceil(wait)
        raise LoginRefused(f"Too many failed logins; try again in {seconds} seconds")


def login_failed(server: ChatServer, conn: Session, account: str) -> LoginRefused:
    """Count a wrong name or password; the refusal to raise."""
    now = time.monotonic()
    for key in limiter_keys(server, conn, account):
        server.login_limiter.failed(key, now)
    server.metrics.logins["failed"] += 1
    log.info("failed login to %r from %s", account, conn.user.ip)
    return LoginRefused("Invalid account credentials")


def login_succeeded(server: ChatServer, conn: Session, account: str) -> None:
    for key in limiter_keys(server, conn, account):
        server.login_limiter.succeeded(key)


def load_account(server: ChatServer, conn: Session, name: str) -> Account | None:
    """The account from the store; LoginRefused (unavailable) if the store fails."""
    try:
        return wait_for_store(conn, "get_account", name)
    except StoreUnavailable:
        server.metrics.logins["unavailable"] += 1
        raise LoginRefused(
            "Logins are temporarily unavailable (storage is failing); try again later",
            unavailable=True,
        ) from None


def check_password(server: ChatServer, conn: Session, name: str, password: str) -> Account:
    """The account ``name`` if ``password`` is its password, else LoginRefused."""
    check_limits(server, conn, name)
    account = load_account(server, conn, name)
    stored = account.credentials.password_hash if account else None
    if stored is None:
        stored = wait_for(conn, _decoy_hash)
    if not wait_for(conn, verify_password, password, stored) or account is None:
        raise login_failed(server, conn, name)
    login_succeeded(server, conn, name)
    require_verified(account)
    return account


def require_verified(account: Account) -> None:
    """LoginRefused for an account still waiting for VERIFY."""
    if not account.verified:
        raise LoginRefused(f"{account.name} is not verified yet: VERIFY {account.name} <code>")


def _prefix(conn: Session) -> str:
    user = conn.user
    return f"{user.nick or '*'}!{user.username or '*'}@{user.host}"


def log_in(server: ChatServer, conn: Session, account: str) -> None:
    """``conn`` is now logged in as ``account``: 900, and for a registered user the
    AccountChanged event (account-notify, +r)."""
    user = conn.user
    server.metrics.logins["ok"] += 1
    server.read_markers.load(conn, account)  # before JOINs need them (MARKREAD)
    metadata.logged_in(server, conn, account)  # the keys the account keeps
    conn.numeric(RPL_LOGGEDIN, _prefix(conn), account, f"You are now logged in as {account}")
    log.info("%s logged in as %s", _prefix(conn), account)
    if user.registered:
        server.hub.apply(AccountChanged(user.nick, account))
    else:
        user.account = account  # UserRegistered carries it


def log_out(server: ChatServer, conn: Session) -> None:
    user = conn.user
    if not user.account:
        return
    conn.numeric(RPL_LOGGEDOUT, _prefix(conn), "You are now logged out")
    if user.registered:
        server.hub.apply(AccountChanged(user.nick, ""))
    else:
        user.account = ""


def register_account(
    server: ChatServer, conn: Session, name: str, password: str, email: str = ""
) -> Account:
    """Make account ``name`` (NickServ REGISTER, the REGISTER command) and reserve its
    nick; RegistrationRefused saying why not. With --verify-command the account waits
    for VERIFY (``account.verified`` is False) and its code has been sent; else logging
    in is the caller's to do."""
    if not valid_nick(name, server.config.nicklen) or casefold(name) in server.services:
        raise RegistrationRefused("BAD_ACCOUNT_NAME", f"{name} cannot be an account name")
    if len(password) < MIN_PASSWORD or casefold(password) == casefold(name):
        text = f"Choose a password of at least {MIN_PASSWORD} characters, not the name"
        raise RegistrationRefused("WEAK_PASSWORD", text)
    verifying = server.config.verify_command is not None
    if verifying and not email:
        raise RegistrationRefused("INVALID_EMAIL", "An e-mail address is needed to verify it")
    if wait_for_store(conn, "get_account", name) is not None:  # no hashing for nothing
        raise RegistrationRefused("ACCOUNT_EXISTS", f"{name} is already registered")
    credentials = wait_for(conn, make_credentials, password)
    code = f"{secrets.randbelow(10**8):08d}" if verifying else ""
    account = Account(
        name, credentials, time.time(), email=email, verified=not verifying, verify_code=code
    )
    try:
        wait_for_store(conn, "create_account", account)
    except AccountExists:
        raise RegistrationRefused("ACCOUNT_EXISTS", f"{name} is already registered") from None
    if verifying and not send_code(server, conn, account):
        wait_for_store(conn, "drop_account", name)
        raise RegistrationRefused("INVALID_EMAIL", f"The code could not be sent to {email}")
    server.registered_nicks.add(casefold(name))
    announce(server, ACCOUNT, name)
    log.info("account %s registered from %s", name, conn.user.ip)
    return account


def send_code(server: ChatServer, conn: Session, account: Account) -> bool:
    """Run --verify-command to send ``account`` its code; whether it succeeded. Only
    ``conn``'s greenlet waits, its labeled reply paused as in ``wait_for``."""
    command = shlex.split(server.config.verify_command or "")
    env = {
        **os.environ,
        "GREENCHAT_ACCOUNT": account.name,
        "GREENCHAT_EMAIL": account.email,
        "GREENCHAT_CODE": account.verify_code,
    }
    try:
        with conn.uncaptured():
            done = _run(command, env)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("verify-command for %s failed: %s", account.name, exc)
        return False
    if done.returncode != 0:
        log.warning("verify-command for %s exited %d: %s", account.name, done.returncode,
                    done.stderr.decode("utf-8", "replace").strip()[:200])  # fmt: skip
        return False
    return True


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """The command, waited for without holding the hub. Under greenchat-serve (which
    monkey-patches) ``subprocess`` is gevent's: cooperative, on the main loop, where its
    child watchers live. Unpatched (a server in a thread, as the tests run one), the
    standard library's blocks a thread of the pool instead."""
    run = functools.partial(
        subprocess.run, command, env=env, timeout=VERIFY_COMMAND_TIMEOUT, capture_output=True
    )
    if monkey.is_module_patched("subprocess"):
        return run()
    return gevent.get_hub().threadpool.apply(run)


def verify_account(server: ChatServer, conn: Session, name: str, code: str) -> Account:
    """VERIFY: the account, now verified, if ``code`` is its code; else LoginRefused
    (wrong codes count as failed logins: eight digits are not for guessing)."""
    check_limits(server, conn, name)
    account = load_account(server, conn, name)
    if account is None or account.verified or not account.verify_code:
        raise LoginRefused(f"No verification is pending for {name}")
    if not hmac.compare_digest(code.encode(), account.verify_code.encode()):
        raise login_failed(server, conn, name)
    wait_for_store(conn, "set_verified", account.name)
    login_succeeded(server, conn, name)
    return account


_CERTFP = re.compile(r"[0-9a-f]{64}")


def certfp_of(conn: Session) -> str:
    """The SHA-256 fingerprint (hex) of the client's TLS certificate; '' without one."""
    getpeercert = getattr(conn.transport.sock, "getpeercert", None)
    if getpeercert is None:
        return ""  # not TLS
    try:
        der = getpeercert(binary_form=True)
    except (OSError, ValueError):  # closed meanwhile
        return ""
    return hashlib.sha256(der).hexdigest() if der else ""


def normalize_certfp(text: str) -> str:
    """A fingerprint as given (``AB:CD:...`` or hex) in the stored form; '' if not one."""
    fp = text.replace(":", "").strip().lower()
    return fp if _CERTFP.fullmatch(fp) else ""
