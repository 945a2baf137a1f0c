"""The store interface: records, errors, and the calls every implementation offers.

Calls are plain blocking functions: the server makes them off the event loop
(``greenchat.server.storage``), never from the hub. Names are given as typed
(``Alice``, ``#Lobby``) and looked up case-insensitively (rfc1459, as the
server's nicks and channels); records keep the name as first registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Account",
    "AccountExists",
    "AccountStore",
    "ChannelExists",
    "Credentials",
    "RegisteredChannel",
    "StoreError",
    "StoreUnavailable",
]


class StoreError(Exception):
    """The store cannot be opened: corrupt, unreadable, locked, or a newer schema.

    Raised at start only; its text is the one line the operator sees.
    """


class StoreUnavailable(Exception):
    """A read or write failed underneath (an I/O error, a full disk, a lost
    connection). Nothing was changed; the same call may succeed later."""


class AccountExists(Exception):
    """An account (or a channel registration) by that name exists already."""


class ChannelExists(AccountExists):
    """A channel by that name is registered already."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What is kept for a password: a scrypt hash for PLAIN and NickServ, and the
    SCRAM-SHA-256 keys (RFC 5802), which let SCRAM log in without the password."""

    password_hash: str  # "scrypt$<salt hex>$<hash hex>"
    scram_salt: bytes
    scram_stored_key: bytes
    scram_server_key: bytes
    scram_iterations: int


@dataclass(frozen=True, slots=True)
class Account:
    name: str  # as registered
    credentials: Credentials
    registered_at: float  # unix time
    email: str = ""
    verified: bool = True  # False until VERIFY, when the server asks for it
    verify_code: str = ""  # what VERIFY must give, while not verified
    certfps: tuple[str, ...] = ()  # TLS client certificate SHA-256 fingerprints (hex)
    settings: dict[str, str] = field(default_factory=dict)  # NickServ SET


@dataclass(frozen=True, slots=True)
class RegisteredChannel:
    name: str  # as registered
    founder: str  # the founder's account name
    registered_at: float
    topic: str = ""
    topic_setter: str = ""
    topic_time: float = 0.0
    modes: str = ""  # simple modes as letters: "nt"
    key: str = ""  # +k
    limit: int = 0  # +l; 0 for none
    bans: tuple[tuple[str, str, float], ...] = ()  # (mask, set by, when)
    access: dict[str, str] = field(default_factory=dict)  # account name -> modes, "o" or "v"


class AccountStore(Protocol):
    """Accounts and registered channels. Every call may raise StoreUnavailable."""

    # -- accounts --------------------------------------------------------------------

    def create_account(self, account: Account) -> None:
        """Add ``account``; AccountExists if the name is taken (whatever its case).
        Fingerprints in ``account.certfps`` another account lists are left out."""

    def get_account(self, name: str) -> Account | None: ...

    def account_names(self) -> list[str]:
        """The name of every account, as registered: the server keeps them in memory
        to know a registered nick when someone takes it, without asking the store."""

    def find_by_certfp(self, certfp: str) -> Account | None:
        """The account that listed this certificate fingerprint (CERT ADD)."""

    def set_credentials(self, name: str, credentials: Credentials) -> bool:
        """A new password; False if there is no such account."""

    def set_verified(self, name: str) -> bool: ...

    def add_certfp(self, name: str, certfp: str) -> bool:
        """False if the account is missing or the fingerprint listed already
        (by this account or another: a certificate names one account)."""

    def remove_certfp(self, name: str, certfp: str) -> bool: ...

    def set_setting(self, name: str, key: str, value: str) -> bool:
        """NickServ SET; an empty value removes the setting."""

    def drop_account(self, name: str) -> bool:
        """Delete the account, its fingerprints, and the channels it founded; and
        its entries in other channels' access lists (the next owner of the name
        inherits nothing). False if there is no such account."""

    # -- channels --------------------------------------------------------------------

    def register_channel(self, channel: RegisteredChannel) -> None:
        """Add ``channel``; ChannelExists if registered already."""

    def get_channel(self, name: str) -> RegisteredChannel | None: ...

    def channels(self) -> list[RegisteredChannel]:
        """Every registered channel, to restore at start."""

    def update_channel(self, channel: RegisteredChannel) -> bool:
        """Replace the stored record of ``channel.name`` (topic, modes, bans, access);
        False if it is not registered."""

    def drop_channel(self, name: str) -> bool: ...

    # -- life ------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is pending and close; calls after it raise StoreUnavailable."""
