"""The store interface: records, errors, and the calls every implementation offers.

Calls are plain blocking functions: the server makes them off the event loop
(``greenchat.server.storage``), never from the hub. Names are given as typed
(``Alice``, ``#Lobby``) and looked up case-insensitively (rfc1459, as the
server's nicks and channels); records keep the name as first registered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

__all__ = [
    "PRIVATE_PREFIX",
    "Account",
    "AccountExists",
    "AccountStore",
    "ChannelExists",
    "Credentials",
    "HistoryBound",
    "HistoryItem",
    "HistoryStore",
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
    # +e and +I entries: (mode letter "e" or "I", mask, set by, when)
    exceptions: tuple[tuple[str, str, str, float], ...] = ()
    access: dict[str, str] = field(default_factory=dict)  # account name -> modes, "o" or "v"
    metadata: dict[str, str] = field(default_factory=dict)  # IRCv3 metadata: key -> value


# A private conversation's key (HistoryItem.target): this prefix, then its two
# parties, sorted, with a space between; a party is "a:<account>" or "n:<nick>",
# casefolded (server/history.py). Channels are keyed by their casefolded name.
PRIVATE_PREFIX = "dm:"


class HistoryItem(NamedTuple):
    """One stored line of a conversation: a message, or a change played back with
    ``draft/event-playback`` (JOIN, PART, QUIT, NICK, TOPIC, MODE, KICK).

    A named tuple, not a frozen dataclass: a page of history makes a hundred of them,
    and a frozen dataclass's ``__init__`` costs several times a tuple's.

    ``target`` is the conversation's key (the server's: a channel's casefolded
    name, or the two parties of a private conversation); ``params`` are the
    line's parameters after its command, as sent; ``seq`` is the store's total
    order: on append, the writer's proposal (its event's time in microseconds,
    rising within the process; 0: the item's time), kept unless another line of
    the conversation has it, then the next free one, so a store shared by several
    processes reads in the order of their events' times, however their batches
    interleave; lines of a batch keep their order.
    """

    target: str
    msgid: str
    time: float  # unix time: the server-time recipients saw
    command: str  # PRIVMSG, NOTICE, TAGMSG, JOIN, ...
    source: str  # nick!user@host
    account: str  # the sender's account; '' when not logged in
    params: tuple[str, ...]
    tags: str = ""  # the sender's client-only tags, escaped
    seq: int = 0


def proposed_seq(item: HistoryItem) -> int:
    """The seq a store gives ``item`` unless taken: the writer's, else its time in µs."""
    return item.seq or int(item.time * 1_000_000)


@dataclass(frozen=True, slots=True)
class HistoryBound:
    """One end of a history query, exclusive: a stored message (by msgid) or a time."""

    msgid: str = ""
    time: float = 0.0


class HistoryStore(Protocol):
    """Stored conversations. Every call may raise StoreUnavailable."""

    def append_history(self, items: Sequence[HistoryItem]) -> None:
        """Store ``items`` in order, in one transaction (a batch of the writer)."""

    def history(
        self,
        target: str,
        after: HistoryBound | None,
        before: HistoryBound | None,
        limit: int,
        latest: bool,
        not_before: float = 0.0,
        messages_only: bool = False,
    ) -> list[HistoryItem]:
        """Up to ``limit`` items of ``target`` strictly between the bounds (None: no
        bound) and no older than ``not_before``, in ascending order: the latest of
        them when ``latest``, else the earliest; only PRIVMSG, NOTICE and TAGMSG
        when ``messages_only`` (a client without event-playback). A bound naming a
        msgid ``target`` does not have matches nothing."""

    def history_item(self, target: str, msgid: str) -> HistoryItem | None:
        """The item of ``target`` with this msgid (REDACT checks who sent it)."""

    def delete_history(self, target: str, msgid: str) -> bool:
        """Delete that item (REDACT); False if ``target`` has no such msgid."""

    def read_markers(self, account: str) -> dict[str, float]:
        """The account's read markers (draft/read-marker): conversation -> time."""

    def set_read_marker(self, account: str, target: str, when: float) -> float:
        """Move the account's marker of ``target`` to ``when`` unless it is there or
        later already (a marker never goes back); the marker's time after."""

    def history_targets(
        self, targets: Sequence[str], since: float, until: float, limit: int
    ) -> list[tuple[str, float]]:
        """Which of ``targets`` have items with times in [since, until], and the
        latest such time of each, earliest first, at most ``limit``."""

    def conversations_of(self, party: str) -> list[str]:
        """The private conversations' keys that ``party`` is one of the two of."""

    def expire_history(self, older_than: float, keep_per_target: int, batch: int) -> int:
        """Delete at most ``batch`` items that are older than ``older_than`` or beyond
        the newest ``keep_per_target`` of their target (0: no such limit); how many."""


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

    def account_metadata(self, name: str) -> dict[str, str]:
        """The account's IRCv3 metadata, key -> value; {} for an account that has none,
        or does not exist."""

    def set_account_metadata(self, name: str, changes: Sequence[tuple[str, str | None]]) -> bool:
        """Set each ``(key, value)`` of ``changes`` (a value of None deletes the key), in
        one transaction. False if there is no such account."""

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
