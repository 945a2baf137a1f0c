"""AUTHENTICATE: SASL logins (IRCv3 sasl-3.2) with PLAIN and SCRAM-SHA-256.

A client that enabled the ``sasl`` capability names a mechanism, then sends
its messages base64-encoded in 400-byte lines (protocol/sasl.py puts them back
together). PLAIN carries the password, checked against its scrypt hash in the
thread pool; SCRAM-SHA-256 proves knowledge of it against the stored SCRAM keys
(scramp), so the password never reaches the server. Both go through the
failed-login limits (server/login.py). ``AUTHENTICATE *`` aborts; a login
before registration holds registration until it ends (CAP END), and one after
registration is allowed too, as Ergo does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scramp import ScramException

from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message
from greenchat.protocol.numerics import (
    ERR_SASLABORTED,
    ERR_SASLALREADY,
    ERR_SASLFAIL,
    ERR_SASLTOOLONG,
    RPL_SASLMECHS,
    RPL_SASLSUCCESS,
)
from greenchat.protocol.sasl import BadMessage, Reassembly, TooLong, chunks, parse_plain
from greenchat.server.commands.table import command, wait_for_store
from greenchat.server.login import (
    LoginRefused,
    certfp_of,
    check_limits,
    check_password,
    load_account,
    log_in,
    login_failed,
    login_succeeded,
    require_verified,
)
from greenchat.store.base import StoreUnavailable
from greenchat.store.credentials import SCRAM

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

__all__ = ["MECHANISMS", "SaslAttempt", "abort_sasl"]

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "EXTERNAL")


class SaslAttempt:
    """One login in progress on a session: the mechanism, the message being
    reassembled and, for SCRAM, scramp's server and the step reached."""

    __slots__ = ("account", "mechanism", "message", "refusal", "scram", "step")

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.message = Reassembly()
        self.scram = None  # scramp's ScramServer, for SCRAM-SHA-256
        self.step = 0  # SCRAM: 0 client-first, 1 client-final, 2 the closing empty message
        self.account = ""  # the name the client gave
        self.refusal: LoginRefused | None = None  # why SCRAM's first step was refused


@command(
    "AUTHENTICATE",
    min_params=1,
    before_registration=True,
    yields=True,
    help=(
        "AUTHENTICATE <mechanism or data>\n"
        "Logs in to an account with SASL (PLAIN, SCRAM-SHA-256, EXTERNAL), after "
        "CAP REQ :sasl."
    ),
)
def authenticate(server: ChatServer, conn: Session, msg: Message) -> None:
    param = msg.params[0]
    if param == "*":
        _end(conn)
        conn.numeric(ERR_SASLABORTED, "SASL authentication aborted")
    elif not conn.has_cap("sasl"):
        conn.numeric(ERR_SASLFAIL, "SASL authentication failed: enable the sasl capability first")
    elif conn.sasl is None:
        _begin(server, conn, param)
    else:
        _continue(server, conn, conn.sasl, param)


def abort_sasl(conn: Session) -> None:
    """Registration is completing mid-login (CAP END): the login ends, 906."""
    if conn.sasl is not None:
        _end(conn)
        conn.numeric(ERR_SASLABORTED, "SASL authentication aborted")


def _begin(server: ChatServer, conn: Session, mechanism: str) -> None:
    if conn.user.account:
        conn.numeric(ERR_SASLALREADY, "You have already authenticated using SASL")
        return
    mechanism = mechanism.upper()
    if mechanism not in MECHANISMS:
        conn.numeric(RPL_SASLMECHS, ",".join(MECHANISMS), "are available SASL mechanisms")
        conn.numeric(ERR_SASLFAIL, "SASL authentication failed")
        return
    conn.sasl = SaslAttempt(mechanism)
    _send(server, conn, b"")


def _continue(server: ChatServer, conn: Session, attempt: SaslAttempt, param: str) -> None:
    try:
        message = attempt.message.feed(param)
        if message is None:
            return  # more lines follow
        if attempt.mechanism == "PLAIN":
            _plain(server, conn, message)
        elif attempt.mechanism == "EXTERNAL":
            _external(server, conn, message)
        else:
            _scram(server, conn, attempt, message)
    except TooLong:
        _end(conn)
        conn.numeric(ERR_SASLTOOLONG, "SASL message too long")
    except BadMessage as exc:
        _fail(conn, f"SASL authentication failed: {exc}")
    except LoginRefused as exc:
        _fail(conn, f"SASL authentication failed: {exc}")


def _plain(server: ChatServer, conn: Session, message: bytes) -> None:
    authzid, name, password = parse_plain(message)
    if authzid and authzid != name:
        raise BadMessage("logging in as another account (an authzid) is not allowed")
    account = check_password(server, conn, name, password)
    _succeed(server, conn, account.name)


def _external(server: ChatServer, conn: Session, message: bytes) -> None:
    """The TLS client certificate is the credential (NickServ CERT ADD listed it);
    the message is empty, or names the account (an authzid) it must then be."""
    certfp = certfp_of(conn)
    if not certfp:
        raise BadMessage("EXTERNAL needs a TLS client certificate")
    try:
        account = wait_for_store(conn, "find_by_certfp", certfp)
    except StoreUnavailable:
        raise LoginRefused("Logins are temporarily unavailable; try again later") from None
    wanted = message.decode("utf-8", "replace")
    if account is None or (wanted and casefold(wanted) != casefold(account.name)):
        raise login_failed(server, conn, wanted or certfp)
    require_verified(account)
    _succeed(server, conn, account.name)


def _scram(server: ChatServer, conn: Session, attempt: SaslAttempt, message: bytes) -> None:
    """client-first -> server-first; client-final -> server-final; then an empty
    message from the client ends it (RFC 5802, as IRCv3 SASL carries it)."""
    text = message.decode("utf-8", "replace")
    if attempt.step == 0:
        attempt.scram = SCRAM.make_server(lambda name: _scram_keys(server, conn, attempt, name))
        try:
            attempt.scram.set_client_first(text)
        except ScramException as exc:
            if attempt.refusal is not None:  # raised in _scram_keys; scramp wraps it
                raise attempt.refusal from None
            raise BadMessage(f"not a SCRAM client-first message ({exc})") from None
        attempt.step = 1
        _send(server, conn, attempt.scram.get_server_first().encode())
    elif attempt.step == 1:
        try:
            attempt.scram.set_client_final(text)
        except ScramException:
            raise login_failed(server, conn, attempt.account) from None
        attempt.step = 2
        _send(server, conn, attempt.scram.get_server_final().encode())
    elif message:
        raise BadMessage("SCRAM is over: expected an empty message")
    else:
        login_succeeded(server, conn, attempt.account)
        _succeed(server, conn, attempt.account)


def _scram_keys(
    server: ChatServer, conn: Session, attempt: SaslAttempt, name: str
) -> tuple[bytes, bytes, bytes, int]:
    """scramp's auth_fn: the stored SCRAM keys of account ``name``."""
    try:
        check_limits(server, conn, name)
        account = load_account(server, conn, name)
        if account is None:
            raise login_failed(server, conn, name)
        require_verified(account)
    except LoginRefused as exc:
        attempt.refusal = exc
        raise
    attempt.account = account.name
    c = account.credentials
    return c.scram_salt, c.scram_stored_key, c.scram_server_key, c.scram_iterations


def _send(server: ChatServer, conn: Session, message: bytes) -> None:
    for piece in chunks(message):
        conn.send(Message("AUTHENTICATE", (piece,)))


def _end(conn: Session) -> None:
    """The login is over. scramp's server holds our auth_fn, which holds the attempt:
    dropping it frees both at once, not at the cycle collector's next pass."""
    if conn.sasl is not None:
        conn.sasl.scram = None
        conn.sasl = None


def _succeed(server: ChatServer, conn: Session, account: str) -> None:
    _end(conn)
    log_in(server, conn, account)
    conn.numeric(RPL_SASLSUCCESS, "SASL authentication successful")


def _fail(conn: Session, text: str) -> None:
    _end(conn)
    conn.numeric(ERR_SASLFAIL, text)
