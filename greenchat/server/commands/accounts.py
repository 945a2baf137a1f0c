"""REGISTER and VERIFY: making an account from the client (IRCv3 draft/account-registration).

``REGISTER <account> {<email> | *} <password>`` makes the account (``*`` as the
account: the current nick) and logs the client in; it works before connection
registration too (``before-connect``) and for a name other than the nick
(``custom-account-name``). Replies are standard replies: ``REGISTER SUCCESS``,
or ``FAIL REGISTER <code>``. With ``--verify-command`` the server verifies new
accounts (``email-required``): REGISTER needs an e-mail address, the command
sends the code, the reply is ``REGISTER VERIFICATION_REQUIRED``, and
``VERIFY <account> <code>`` verifies the account and logs the client in.
See https://ircv3.net/specs/extensions/account-registration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenchat.protocol.message import Message
from greenchat.server.commands.table import command
from greenchat.server.login import (
    LoginRefused,
    RegistrationRefused,
    log_in,
    register_account,
    verify_account,
)
from greenchat.store.base import StoreUnavailable

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

CAPABILITY = "draft/account-registration"
CAPABILITY_VALUE = "before-connect,custom-account-name"


def _reply(server: ChatServer, conn: Session, *params: str) -> None:
    conn.send(Message(params[0], params[1:], server.config.name))


@command(
    "REGISTER",
    min_params=3,
    before_registration=True,
    yields=True,
    help=(
        "REGISTER <account> <email or *> <password>\n"
        "Creates an account (draft/account-registration), before or after "
        "connecting; * for no email, or your nick as the account."
    ),
)
def register(server: ChatServer, conn: Session, msg: Message) -> None:
    name, email, password = msg.params[:3]
    name = conn.user.nick if name == "*" else name
    if not conn.has_cap(CAPABILITY):
        _reply(server, conn, "FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", name or "*",
               f"Enable the {CAPABILITY} capability first")  # fmt: skip
    elif not name:
        _reply(server, conn, "FAIL", "REGISTER", "NEED_NICK", "*", "Choose a nick first")
    elif conn.user.account:
        _reply(server, conn, "FAIL", "REGISTER", "ALREADY_AUTHENTICATED", name,
               f"You are already logged in as {conn.user.account}")  # fmt: skip
    elif email != "*" and "@" not in email:
        _reply(server, conn, "FAIL", "REGISTER", "INVALID_EMAIL", name, "Not an e-mail address")
    else:
        _create(server, conn, name, "" if email == "*" else email, password)


def _create(server: ChatServer, conn: Session, name: str, email: str, password: str) -> None:
    try:
        account = register_account(server, conn, name, password, email)
    except RegistrationRefused as exc:
        _reply(server, conn, "FAIL", "REGISTER", exc.code, name, str(exc))
        return
    except StoreUnavailable:
        text = "Accounts are temporarily unavailable (storage is failing); try again later"
        _reply(server, conn, "FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", name, text)
        return
    if not account.verified:
        text = f"A code was sent to {email}: VERIFY {account.name} <code>"
        _reply(server, conn, "REGISTER", "VERIFICATION_REQUIRED", account.name, text)
        return
    _reply(server, conn, "REGISTER", "SUCCESS", account.name, "Account created")
    log_in(server, conn, account.name)


@command(
    "VERIFY",
    min_params=2,
    before_registration=True,
    yields=True,
    help=("VERIFY <account> <code>\nCompletes a registration that needed a code sent by email."),
)
def verify(server: ChatServer, conn: Session, msg: Message) -> None:
    name, code = msg.params[:2]
    if server.config.verify_command is None:
        _reply(server, conn, "FAIL", "VERIFY", "INVALID_CODE", name,
               "No verification is pending: this server does not verify accounts")  # fmt: skip
        return
    try:
        account = verify_account(server, conn, name, code)
    except LoginRefused as exc:
        code_name = "TEMPORARILY_UNAVAILABLE" if exc.unavailable else "INVALID_CODE"
        _reply(server, conn, "FAIL", "VERIFY", code_name, name, str(exc))
        return
    _reply(server, conn, "VERIFY", "SUCCESS", account.name, "Account verified")
    if not conn.user.account:
        log_in(server, conn, account.name)
