"""The client side of a SASL login (IRCv3 sasl-3.2), sans-IO.

:class:`SaslLogin` picks a mechanism from what the ``sasl`` capability lists,
is fed the server's ``AUTHENTICATE`` lines and SASL numerics (900-908), and
answers with the lines to send. Once :attr:`~SaslLogin.done` it says whether
the login worked; either way registration goes on (CAP END), as irssi and
weechat do: a failed login leaves the connection without an account.

SCRAM-SHA-256 comes first (scramp): the password never leaves the client and
the server proves it knows it too. PLAIN sends the password itself, so it is
used only where nobody on the way can read it: over TLS or to a loopback
address (``plain_safe``). Messages travel as protocol/sasl.py has them:
base64 in 400-byte pieces.
"""

from __future__ import annotations

from collections.abc import Iterable

from scramp import ScramClient, ScramException

from greenchat.protocol.message import Message
from greenchat.protocol.sasl import BadMessage, Reassembly, TooLong, chunks

__all__ = [
    "MECHANISMS",
    "NUMERICS",
    "PLAIN_REFUSED",
    "SaslLogin",
    "check_mechanisms",
    "plain_safe",
]

MECHANISMS = ("SCRAM-SHA-256", "PLAIN")  # the ones we speak, in order of preference
# 900 logged in, 901 logged out, 902 nick locked, 903 success, 904 failure,
# 905 too long, 906 aborted, 907 already logged in, 908 the server's mechanisms.
NUMERICS = frozenset({"900", "901", "902", "903", "904", "905", "906", "907", "908"})
FAILURES = frozenset({"902", "904", "905", "906", "907"})
PLAIN_REFUSED = (
    "refusing SASL PLAIN: without TLS the password would cross the network unencrypted "
    "(connect with TLS, or to a loopback address)"
)


def check_mechanisms(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` upper-cased; ValueError unless they are some of :data:`MECHANISMS`."""
    mechanisms = tuple(name.upper() for name in names)
    if not mechanisms or any(m not in MECHANISMS for m in mechanisms):
        raise ValueError(f"SASL mechanisms must be among {', '.join(MECHANISMS)}")
    return mechanisms


def plain_safe(tls: bool, peer_is_loopback: bool) -> bool:
    """Whether PLAIN may carry the password on this connection."""
    return tls or peer_is_loopback


class SaslLogin:
    """One login attempt on one connection: call :meth:`plan`, then :meth:`begin`,
    then :meth:`feed` each server line in :data:`NUMERICS` or ``AUTHENTICATE``."""

    def __init__(
        self,
        account: str,
        password: str,
        mechanisms: Iterable[str] = MECHANISMS,
        plain_safe: bool = True,
    ) -> None:
        self.account = account
        self._password = password
        self.mechanisms = check_mechanisms(mechanisms)
        self.plain_safe = plain_safe
        self.mechanism = ""  # the one being tried (or that worked)
        self.done = False
        self.succeeded = False
        self.reason = ""  # why not, once done without success
        self.numeric = ""  # the server's failure numeric; '' when the client gave up itself
        self._left: list[str] = []  # mechanisms still to try, best first
        self._message = Reassembly()
        self._scram: ScramClient | None = None
        self._step = 0  # messages from the server so far for this mechanism

    def __repr__(self) -> str:  # never the password
        return f"<SaslLogin {self.account!r} {self.mechanism or 'not started'}>"

    def plan(self, offered: str | None) -> bool:
        """Choose mechanisms from the ``sasl`` capability's value: ``PLAIN,SCRAM-SHA-256``,
        '' when the server lists none (ours are tried in order), None when it does not
        offer the capability. False, and done, when there is nothing to try."""
        if offered is None:
            self._finish("the server does not offer SASL")
            return False
        listed = {m.strip().upper() for m in offered.split(",")} if offered else None
        names = [m for m in self.mechanisms if listed is None or m in listed]
        if "PLAIN" in names and not self.plain_safe:
            names.remove("PLAIN")
            if not names:
                self._finish(PLAIN_REFUSED)
                return False
        if not names:
            ours = ", ".join(self.mechanisms)
            self._finish(f"the server offers SASL {offered}, not {ours}")
            return False
        self._left = names
        return True

    def begin(self) -> list[str]:
        """Name the next mechanism to the server."""
        self.mechanism = self._left.pop(0)
        self._message, self._scram, self._step = Reassembly(), None, 0
        return [f"AUTHENTICATE {self.mechanism}"]

    def give_up(self, reason: str) -> list[str]:
        """Stop now (e.g. no answer in time): the lines that abort the login."""
        if self.done:
            return []
        self._finish(reason)
        return ["AUTHENTICATE *"]

    def feed(self, msg: Message) -> list[str]:
        """One server line; the lines to send in answer."""
        if self.done:
            return []
        command = msg.command.upper()
        if command == "AUTHENTICATE":
            return self._authenticate(msg.params[0] if msg.params else "")
        if command == "903":
            self.succeeded = True
            self._finish("")
        elif command == "908" and len(msg.params) > 2:  # what the server has instead
            listed = {m.strip().upper() for m in msg.params[1].split(",")}
            self._left = [m for m in self._left if m in listed]
        elif command == "904" and self._step == 0 and self._left:
            return self.begin()  # refused before any exchange: the mechanism, so try the next
        elif command in FAILURES:
            self._finish(msg.params[-1] if len(msg.params) > 1 else f"SASL failed ({command})")
            self.numeric = command
        return []

    # -- the exchange ------------------------------------------------------------

    def _authenticate(self, param: str) -> list[str]:
        try:
            message = self._message.feed(param)
        except (BadMessage, TooLong):
            return self.give_up("the server sent a SASL message that is not valid base64")
        if message is None:
            return []  # more pieces follow
        self._step += 1
        try:
            if self.mechanism == "PLAIN":
                return self._plain(message)
            return self._scram_step(message)
        except (ScramException, UnicodeDecodeError) as exc:
            return self.give_up(f"SCRAM-SHA-256 failed: {exc}")

    def _plain(self, message: bytes) -> list[str]:
        if message or self._step > 1:
            return self.give_up("the server sent an unexpected PLAIN challenge")
        credentials = f"{self.account}\0{self.account}\0{self._password}"
        return _lines(credentials.encode())

    def _scram_step(self, message: bytes) -> list[str]:
        """empty -> client-first; server-first -> client-final; server-final
        (checked: the server knew the password) -> an empty message."""
        if self._step == 1:
            if message:
                return self.give_up("the server sent an unexpected SCRAM challenge")
            self._scram = ScramClient(["SCRAM-SHA-256"], self.account, self._password)
            return _lines(self._scram.get_client_first().encode())
        assert self._scram is not None
        if self._step == 2:
            self._scram.set_server_first(message.decode())
            return _lines(self._scram.get_client_final().encode())
        if self._step == 3:
            try:
                self._scram.set_server_final(message.decode())
            except ScramException as exc:
                return self.give_up(f"the server did not prove it knows the password ({exc})")
            return _lines(b"")
        return self.give_up("the server sent more SCRAM messages than there are")

    def _finish(self, reason: str) -> None:
        self.done, self.reason = True, reason


def _lines(message: bytes) -> list[str]:
    return [f"AUTHENTICATE {piece}" for piece in chunks(message)]
