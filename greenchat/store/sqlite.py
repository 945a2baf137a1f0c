"""Accounts, registered channels and history in SQLite (the stdlib ``sqlite3``): the
default store.

The only module with SQL in it. One connection, used by one thread at a time
(the server's storage thread, ``greenchat.server.storage``); every call is one
transaction, so a failure underneath (an I/O error, a full disk, a read-only
file) rolls back whole and nothing is half-written.

* A file is opened in WAL mode with ``synchronous=NORMAL`` (a commit survives a
  crash of the process; a power cut may lose the last ones, never consistency)
  and foreign keys on. ``:memory:`` keeps everything in memory and nothing after
  :meth:`SqliteStore.close`.
* The schema is versioned: ``PRAGMA user_version`` counts the steps of
  :data:`MIGRATIONS` applied; opening applies the missing ones in order, each in
  one transaction. A file from a newer greenchat is refused, never downgraded.
* Names are keyed by their rfc1459 casefold (``key`` columns); records keep
  ``name`` as registered.

Opening refuses (:class:`StoreError`, one line naming the file and why) a file
that is not a database or is damaged (``PRAGMA quick_check``), a directory, a
file it may not read or write, a newer schema, and a file another process keeps
locked for longer than :data:`OPEN_BUSY_TIMEOUT`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from greenchat.protocol.casemap import casefold
from greenchat.store.base import (
    PRIVATE_PREFIX,
    Account,
    AccountExists,
    ChannelExists,
    Credentials,
    HistoryBound,
    HistoryItem,
    RegisteredChannel,
    StoreError,
    StoreUnavailable,
    proposed_seq,
)

__all__ = [
    "BUSY_TIMEOUT",
    "MEMORY",
    "MIGRATIONS",
    "OPEN_BUSY_TIMEOUT",
    "SCHEMA_VERSION",
    "SqliteStore",
]

MEMORY = ":memory:"
# How long a statement waits for another process's lock before giving up (at run time:
# StoreUnavailable), and at open ("locked by another process"): longer there, because
# the workers of --workers N on one file open it at the same moment, and on a busy
# machine one's migrations and quick_check can hold the others past 2 s.
BUSY_TIMEOUT = 2.0
OPEN_BUSY_TIMEOUT = 6.0
WAL_SIZE_LIMIT = 8 * 2**20  # bytes the WAL file is cut back to (defer_checkpoints)
# ALTER TABLE ... DROP COLUMN (migration 2).
MIN_SQLITE = (3, 35, 0)


# -- schema ----------------------------------------------------------------------------


# Every name is keyed by its rfc1459 casefold in a ``key`` column (``founder_key``,
# ``account_key``) beside the name as given. Bans are JSON, ``[[mask, set by, when]]``.
# No SQL comments inside CREATE TABLE: ALTER TABLE rewrites that text, and a
# comment next to a dropped column breaks it ("incomplete input").


def _v1_accounts_certfps_channels(db: sqlite3.Connection) -> None:
    """Accounts (settings as JSON), their certificate fingerprints (one certificate
    names one account), registered channels (bans and access lists as JSON)."""
    db.execute(
        """CREATE TABLE accounts (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            scram_salt BLOB NOT NULL,
            scram_stored_key BLOB NOT NULL,
            scram_server_key BLOB NOT NULL,
            scram_iterations INTEGER NOT NULL,
            registered_at REAL NOT NULL,
            email TEXT NOT NULL DEFAULT '',
            verified INTEGER NOT NULL DEFAULT 1,
            verify_code TEXT NOT NULL DEFAULT '',
            settings TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute(
        """CREATE TABLE certfps (
            certfp TEXT PRIMARY KEY,
            account TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE
        )"""
    )
    db.execute("CREATE INDEX certfps_by_account ON certfps (account)")
    db.execute(
        """CREATE TABLE channels (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            founder TEXT NOT NULL,
            founder_key TEXT NOT NULL,
            registered_at REAL NOT NULL,
            topic TEXT NOT NULL DEFAULT '',
            topic_setter TEXT NOT NULL DEFAULT '',
            topic_time REAL NOT NULL DEFAULT 0,
            modes TEXT NOT NULL DEFAULT '',
            channel_key TEXT NOT NULL DEFAULT '',
            user_limit INTEGER NOT NULL DEFAULT 0,
            bans TEXT NOT NULL DEFAULT '[]',
            access TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX channels_by_founder ON channels (founder_key)")


def _v2_settings_and_access_rows(db: sqlite3.Connection) -> None:
    """Account settings and channel access lists as rows of their own tables: a
    dropped account's access entries in other channels can then be found (and
    removed) by key, and a setting changes without rewriting the others."""
    db.execute(
        """CREATE TABLE account_settings (
            account TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (account, name)
        )"""
    )
    db.execute(
        """CREATE TABLE channel_access (
            channel TEXT NOT NULL REFERENCES channels (key) ON DELETE CASCADE,
            account_key TEXT NOT NULL,
            account TEXT NOT NULL,
            modes TEXT NOT NULL,
            PRIMARY KEY (channel, account_key)
        )"""
    )
    db.execute("CREATE INDEX channel_access_by_account ON channel_access (account_key)")
    for key, settings in db.execute("SELECT key, settings FROM accounts").fetchall():
        db.executemany(
            "INSERT INTO account_settings (account, name, value) VALUES (?, ?, ?)",
            [(key, name, value) for name, value in json.loads(settings).items()],
        )
    for key, access in db.execute("SELECT key, access FROM channels").fetchall():
        _insert_access(db, key, json.loads(access))
    db.execute("ALTER TABLE accounts DROP COLUMN settings")
    db.execute("ALTER TABLE channels DROP COLUMN access")


def _v3_history(db: sqlite3.Connection) -> None:
    """Stored conversations (CHATHISTORY): one row per line, ``seq`` their total
    order; msgids and times are looked up by target through indexes. The parties
    of each private conversation, to list a user's (TARGETS)."""
    db.execute(
        """CREATE TABLE history (
            seq INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            msgid TEXT NOT NULL,
            time REAL NOT NULL,
            command TEXT NOT NULL,
            source TEXT NOT NULL,
            account TEXT NOT NULL,
            params TEXT NOT NULL,
            tags TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX history_by_target ON history (target, seq)")
    db.execute("CREATE INDEX history_by_msgid ON history (target, msgid)")
    db.execute("CREATE INDEX history_by_time ON history (target, time)")
    db.execute("CREATE INDEX history_by_age ON history (time)")
    db.execute(
        """CREATE TABLE private_parties (
            party TEXT NOT NULL,
            target TEXT NOT NULL,
            PRIMARY KEY (party, target)
        ) WITHOUT ROWID"""
    )


def _v4_no_age_index(db: sqlite3.Connection) -> None:
    """Expiry by age walks the oldest rows by ``seq`` (times rise with it), so the index
    on time alone only cost every insert a fourth B-tree: about a third of the write
    rate (54,000 rows/s with it, 74,000 without, on the benchmark machine)."""
    db.execute("DROP INDEX IF EXISTS history_by_age")


def _v5_read_markers(db: sqlite3.Connection) -> None:
    """Each account's read marker per conversation (draft/read-marker: MARKREAD)."""
    db.execute(
        """CREATE TABLE read_markers (
            account TEXT NOT NULL,
            target TEXT NOT NULL,
            time REAL NOT NULL,
            PRIMARY KEY (account, target)
        ) WITHOUT ROWID"""
    )


def _v6_channel_exceptions(db: sqlite3.Connection) -> None:
    """A registered channel's +e and +I lists, kept like its bans (JSON)."""
    db.execute("ALTER TABLE channels ADD COLUMN exceptions TEXT NOT NULL DEFAULT '[]'")


def _v7_metadata(db: sqlite3.Connection) -> None:
    """IRCv3 metadata: an account's keys (rows, one changed without the others) and a
    registered channel's (JSON, saved with its state)."""
    db.execute(
        """CREATE TABLE account_metadata (
            account TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (account, name)
        )"""
    )
    db.execute("ALTER TABLE channels ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'")


# A history row as the elements of a JSON array (history(), history_item()): params is
# JSON already.
_HISTORY_COLUMNS = "seq, target, msgid, time, command, source, account, json(params), tags"

# What CHATHISTORY returns to a client without draft/event-playback.
_MESSAGE_COMMANDS = "('PRIVMSG', 'NOTICE', 'TAGMSG')"

# Step N brings a database from user_version N-1 to N. Append; never change one
# that has shipped (files out there are at its version already).
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _v1_accounts_certfps_channels,
    _v2_settings_and_access_rows,
    _v3_history,
    _v4_no_age_index,
    _v5_read_markers,
    _v6_channel_exceptions,
    _v7_metadata,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _insert_access(db: sqlite3.Connection, channel_key: str, access: dict[str, str]) -> None:
    db.executemany(
        "INSERT INTO channel_access (channel, account_key, account, modes) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (channel, account_key) DO UPDATE"
        " SET account = excluded.account, modes = excluded.modes",
        [(channel_key, casefold(name), name, modes) for name, modes in access.items()],
    )


# -- errors ----------------------------------------------------------------------------


def _errorname(exc: sqlite3.Error) -> str:
    return getattr(exc, "sqlite_errorname", "") or ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _runtime_cause(exc: sqlite3.Error) -> str:
    """What went wrong underneath, for StoreUnavailable (and the log line it makes)."""
    name = _errorname(exc)
    return _one_line(f"{exc} ({name})" if name and name not in str(exc) else str(exc))


def _open_cause(exc: sqlite3.Error, path: Path) -> str:
    """Why ``path`` cannot be used, in words an operator can act on."""
    name, text = _errorname(exc), _one_line(str(exc))
    if name == "SQLITE_NOTADB":
        return f"it is not a SQLite database, or it is damaged ({text})"
    if name.startswith("SQLITE_CORRUPT"):
        return f"the file is damaged ({text})"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return (
            f"another process has held a lock on it for more than {OPEN_BUSY_TIMEOUT:g} s "
            "(another greenchat-serve on the same file?)"
        )
    if name.startswith("SQLITE_READONLY"):
        return f"it cannot be written: no permission to write it or its directory ({text})"
    if name.startswith("SQLITE_CANTOPEN"):
        parent = path.parent
        if not parent.is_dir():
            return f"there is no directory {parent}"
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            return "permission denied"
        if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
            return f"permission denied to create it in {parent}"
        return text
    if name.startswith("SQLITE_FULL"):
        return f"the disk is full ({text})"
    if name.startswith("SQLITE_IOERR"):
        return f"an I/O error ({text})"
    return text


# -- the store -------------------------------------------------------------------------


class SqliteStore:
    """:class:`greenchat.store.base.AccountStore` on one SQLite file (or ``:memory:``).

    Opening may take a moment (the integrity check, waiting out another
    process's lock); raises :class:`StoreError`. Calls are blocking and not
    thread-safe: make them from one thread at a time.

    Beyond the interface's words: :meth:`create_account` leaves out fingerprints
    another account lists already (as :meth:`add_certfp` would refuse them), and
    :meth:`drop_account` also takes the account off other channels' access lists,
    so that whoever registers the name next inherits nothing.
    """

    def __init__(self, path: str | os.PathLike[str] = "greenchat.db") -> None:
        self.path = str(path)
        self.memory = self.path == MEMORY
        self._db: sqlite3.Connection | None = self._open()
        # checkpoint()'s own connection (defer_checkpoints), opened when first needed.
        self._checkpointer: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    # -- opening ---------------------------------------------------------------------

    def _refuse(self, cause: str) -> StoreError:
        return StoreError(f"cannot open the database {self.path}: {cause}")

    def _open(self) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            needed = ".".join(map(str, MIN_SQLITE))
            have = sqlite3.sqlite_version
            raise self._refuse(f"needs SQLite {needed} or newer, this Python has {have}")
        path = Path(self.path)
        if not self.memory and path.is_dir():
            raise self._refuse("it is a directory")
        try:
            # isolation_level=None: no implicit transactions; every call says BEGIN itself.
            # check_same_thread=False: opened on the event loop's thread, used on the
            # storage thread (one at a time, which is what sqlite3 needs).
            db = sqlite3.connect(
                self.path, timeout=OPEN_BUSY_TIMEOUT, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        except sqlite3.Error as exc:
            raise self._refuse(_open_cause(exc, path)) from None
        try:
            self._prepare(db)
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")  # from now on
        except StoreError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise self._refuse(_open_cause(exc, path)) from None
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]  # reads the header
        if version > SCHEMA_VERSION:
            raise self._refuse(
                f"it was written by a newer greenchat (schema v{version}, "
                f"this one knows v{SCHEMA_VERSION})"
            )
        problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
            raise self._refuse(f"the file is damaged (quick_check: {_one_line(shown)})")
        if not self.memory:
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            self._migrate(db, number)
        # A write now, not at the first registration: a file that may only be read
        # (SQLite then opens it read-only without a word) or that another process
        # keeps locked is refused at start. Rolled back: nothing changes.
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    def _migrate(self, db: sqlite3.Connection, number: int) -> None:
        """Step ``number`` in one transaction, unless another process did it meanwhile."""
        db.execute("BEGIN IMMEDIATE")
        try:
            current = db.execute("PRAGMA user_version").fetchone()[0]
            if current < number:
                MIGRATIONS[number - 1](db)
                db.execute(f"PRAGMA user_version = {number:d}")
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, Exception) and not isinstance(exc, sqlite3.Error):
                # e.g. a row the step cannot read (bad JSON): the file stays as it was
                why = _one_line(f"{type(exc).__name__}: {exc}")
                raise self._refuse(f"upgrading it to schema v{number} failed ({why})") from exc
            raise

    # -- transactions ----------------------------------------------------------------

    @contextmanager
    def _transaction(self, write: bool, statements: int = 2) -> Iterator[sqlite3.Connection]:
        """One call's transaction: committed whole, or rolled back whole. sqlite3's
        operational and database errors become StoreUnavailable; AccountExists and
        the like pass through (after the rollback). A call of one statement says so
        (``statements=1``): that statement is a transaction by itself, and two steps
        fewer (BEGIN, COMMIT) wait for the GIL (see append_history)."""
        db = self._db
        if db is None:
            raise StoreUnavailable("the store is closed")
        try:
            if statements > 1:
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield db
            if db.in_transaction:
                db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            # The disk, the file or a lock (OperationalError: I/O, full, read-only,
            # busy), or a page found damaged (DatabaseError itself). Not its other
            # subclasses: a constraint the method did not expect or a wrong statement
            # is a bug, not the disk.
            if isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:
                raise StoreUnavailable(_runtime_cause(exc)) from exc
            raise

    # -- accounts --------------------------------------------------------------------

    def create_account(self, account: Account) -> None:
        key = casefold(account.name)
        with self._transaction(write=True) as db:
            creds = account.credentials
            try:
                db.execute(
                    "INSERT INTO accounts (key, name, password_hash, scram_salt,"
                    " scram_stored_key, scram_server_key, scram_iterations, registered_at,"
                    " email, verified, verify_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        account.name,
                        creds.password_hash,
                        creds.scram_salt,
                        creds.scram_stored_key,
                        creds.scram_server_key,
                        creds.scram_iterations,
                        account.registered_at,
                        account.email,
                        int(account.verified),
                        account.verify_code,
                    ),
                )
            except sqlite3.IntegrityError:
                raise AccountExists(account.name) from None
            db.executemany(
                "INSERT INTO certfps (certfp, account) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(certfp, key) for certfp in account.certfps],
            )
            db.executemany(
                "INSERT INTO account_settings (account, name, value) VALUES (?, ?, ?)",
                [(key, name, value) for name, value in account.settings.items() if value],
            )

    def get_account(self, name: str) -> Account | None:
        with self._transaction(write=False) as db:
            return self._account(db, casefold(name))

    def account_names(self) -> list[str]:
        with self._transaction(write=False) as db:
            return [row[0] for row in db.execute("SELECT name FROM accounts ORDER BY key")]

    def find_by_certfp(self, certfp: str) -> Account | None:
        with self._transaction(write=False) as db:
            row = db.execute("SELECT account FROM certfps WHERE certfp = ?", (certfp,)).fetchone()
            return None if row is None else self._account(db, row[0])

    def set_credentials(self, name: str, credentials: Credentials) -> bool:
        with self._transaction(write=True) as db:
            cursor = db.execute(
                "UPDATE accounts SET password_hash = ?, scram_salt = ?, scram_stored_key = ?,"
                " scram_server_key = ?, scram_iterations = ? WHERE key = ?",
                (
                    credentials.password_hash,
                    credentials.scram_salt,
                    credentials.scram_stored_key,
                    credentials.scram_server_key,
                    credentials.scram_iterations,
                    casefold(name),
                ),
            )
            return cursor.rowcount > 0

    def set_verified(self, name: str) -> bool:
        with self._transaction(write=True) as db:
            cursor = db.execute(
                "UPDATE accounts SET verified = 1, verify_code = '' WHERE key = ?",
                (casefold(name),),
            )
            return cursor.rowcount > 0

    def add_certfp(self, name: str, certfp: str) -> bool:
        key = casefold(name)
        with self._transaction(write=True) as db:
            if not _has_account(db, key):
                return False
            cursor = db.execute(
                "INSERT INTO certfps (certfp, account) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (certfp, key),
            )
            return cursor.rowcount > 0

    def remove_certfp(self, name: str, certfp: str) -> bool:
        with self._transaction(write=True) as db:
            cursor = db.execute(
                "DELETE FROM certfps WHERE certfp = ? AND account = ?", (certfp, casefold(name))
            )
            return cursor.rowcount > 0

    def set_setting(self, name: str, key: str, value: str) -> bool:
        account = casefold(name)
        with self._transaction(write=True) as db:
            if not _has_account(db, account):
                return False
            if value:
                db.execute(
                    "INSERT INTO account_settings (account, name, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (account, name) DO UPDATE SET value = excluded.value",
                    (account, key, value),
                )
            else:
                db.execute(
                    "DELETE FROM account_settings WHERE account = ? AND name = ?", (account, key)
                )
            return True

    def account_metadata(self, name: str) -> dict[str, str]:
        with self._transaction(write=False) as db:
            rows = db.execute(
                "SELECT name, value FROM account_metadata WHERE account = ? ORDER BY rowid",
                (casefold(name),),
            ).fetchall()
        return dict(rows)

    def set_account_metadata(self, name: str, changes: Sequence[tuple[str, str | None]]) -> bool:
        account = casefold(name)
        with self._transaction(write=True) as db:
            if not _has_account(db, account):
                return False
            for key, value in changes:
                if value is None:
                    db.execute(
                        "DELETE FROM account_metadata WHERE account = ? AND name = ?",
                        (account, key),
                    )
                else:
                    db.execute(
                        "INSERT INTO account_metadata (account, name, value) VALUES (?, ?, ?)"
                        " ON CONFLICT (account, name) DO UPDATE SET value = excluded.value",
                        (account, key, value),
                    )
            return True

    def drop_account(self, name: str) -> bool:
        key = casefold(name)
        with self._transaction(write=True) as db:
            if not _has_account(db, key):
                return False
            db.execute("DELETE FROM channels WHERE founder_key = ?", (key,))  # access cascades
            db.execute("DELETE FROM channel_access WHERE account_key = ?", (key,))
            db.execute("DELETE FROM read_markers WHERE account = ?", (key,))
            db.execute("DELETE FROM accounts WHERE key = ?", (key,))  # certfps, settings cascade
            return True

    def _account(self, db: sqlite3.Connection, key: str) -> Account | None:
        row = db.execute("SELECT * FROM accounts WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        certfps = db.execute(
            "SELECT certfp FROM certfps WHERE account = ? ORDER BY rowid", (key,)
        ).fetchall()
        settings = db.execute(
            "SELECT name, value FROM account_settings WHERE account = ? ORDER BY rowid", (key,)
        ).fetchall()
        return Account(
            name=row["name"],
            credentials=Credentials(
                password_hash=row["password_hash"],
                scram_salt=bytes(row["scram_salt"]),
                scram_stored_key=bytes(row["scram_stored_key"]),
                scram_server_key=bytes(row["scram_server_key"]),
                scram_iterations=row["scram_iterations"],
            ),
            registered_at=row["registered_at"],
            email=row["email"],
            verified=bool(row["verified"]),
            verify_code=row["verify_code"],
            certfps=tuple(certfp for (certfp,) in certfps),
            settings=dict(settings),
        )

    # -- channels --------------------------------------------------------------------

    def register_channel(self, channel: RegisteredChannel) -> None:
        key = casefold(channel.name)
        with self._transaction(write=True) as db:
            try:
                db.execute(
                    "INSERT INTO channels (key, name, founder, founder_key, registered_at,"
                    " topic, topic_setter, topic_time, modes, channel_key, user_limit, bans,"
                    " exceptions, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, channel.name, *_channel_fields(channel)),
                )
            except sqlite3.IntegrityError:
                raise ChannelExists(channel.name) from None
            _insert_access(db, key, channel.access)

    def get_channel(self, name: str) -> RegisteredChannel | None:
        with self._transaction(write=False) as db:
            row = db.execute("SELECT * FROM channels WHERE key = ?", (casefold(name),)).fetchone()
            if row is None:
                return None
            return _channel(row, self._access(db, row["key"]))

    def channels(self) -> list[RegisteredChannel]:
        with self._transaction(write=False) as db:
            access: dict[str, dict[str, str]] = {}
            for row in db.execute(
                "SELECT channel, account, modes FROM channel_access ORDER BY rowid"
            ):
                access.setdefault(row["channel"], {})[row["account"]] = row["modes"]
            rows = db.execute("SELECT * FROM channels ORDER BY rowid").fetchall()
            return [_channel(row, access.get(row["key"], {})) for row in rows]

    def update_channel(self, channel: RegisteredChannel) -> bool:
        key = casefold(channel.name)
        with self._transaction(write=True) as db:
            cursor = db.execute(
                "UPDATE channels SET founder = ?, founder_key = ?, registered_at = ?, topic = ?,"
                " topic_setter = ?, topic_time = ?, modes = ?, channel_key = ?, user_limit = ?,"
                " bans = ?, exceptions = ?, metadata = ? WHERE key = ?",
                (*_channel_fields(channel), key),
            )
            if cursor.rowcount == 0:
                return False
            db.execute("DELETE FROM channel_access WHERE channel = ?", (key,))
            _insert_access(db, key, channel.access)
            return True

    def drop_channel(self, name: str) -> bool:
        with self._transaction(write=True) as db:
            cursor = db.execute("DELETE FROM channels WHERE key = ?", (casefold(name),))
            return cursor.rowcount > 0

    def _access(self, db: sqlite3.Connection, channel_key: str) -> dict[str, str]:
        rows = db.execute(
            "SELECT account, modes FROM channel_access WHERE channel = ? ORDER BY rowid",
            (channel_key,),
        ).fetchall()
        return dict(rows)

    # -- history -----------------------------------------------------------------------

    # A batch goes in, and a page comes out, as one JSON text and one SQL statement: the
    # sqlite3 module lets go of the GIL around each step of a statement (each row of an
    # executemany, each row fetched) and must take it back after, which on a server whose
    # event loop keeps the GIL busy costs up to a switch interval (5 ms) a step: 1,400
    # rows/s instead of 77,000. One step a statement leaves SQLite's work to the other
    # core (33,000 rows/s with the GIL held busy meanwhile).

    def append_history(self, items: Sequence[HistoryItem]) -> None:
        seqs = _batch_seqs(items)
        rows = json.dumps([
            (s, i.target, i.msgid, i.time, i.command, i.source, i.account, i.params, i.tags)
            for s, i in zip(seqs, items, strict=True)
        ], ensure_ascii=False)  # fmt: skip
        parties = sorted(
            {
                (party, item.target)
                for item in items
                if item.target.startswith(PRIVATE_PREFIX)
                for party in item.target[len(PRIVATE_PREFIX) :].split(" ")
            }
        )
        with self._transaction(write=True, statements=2 if parties else 1) as db:
            stored = db.execute(
                "INSERT INTO history (seq, target, msgid, time, command, source, account,"
                " params, tags) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3,"
                " value ->> 4, value ->> 5, value ->> 6, value -> 7, value ->> 8"
                " FROM json_each(?) WHERE true ON CONFLICT (seq) DO NOTHING",
                (rows,),
            ).rowcount
            if stored < len(items):  # another process stored a line of that microsecond
                self._store_bumped(db, items, seqs)
            if parties:
                db.execute(
                    "INSERT OR IGNORE INTO private_parties (party, target)"
                    " SELECT value ->> 0, value ->> 1 FROM json_each(?)",
                    (json.dumps(parties, ensure_ascii=False),),
                )

    def _store_bumped(
        self, db: sqlite3.Connection, items: Sequence[HistoryItem], seqs: list[int]
    ) -> None:
        """Another process had some of the batch's seqs (its lines of the same
        microseconds): store the batch again, in order, each line at the first free
        seq from its own (rare, so a statement a line)."""
        if not db.in_transaction:  # the batch's INSERT was a statement on its own
            db.execute("BEGIN IMMEDIATE")
        for seq, item in zip(seqs, items, strict=True):
            db.execute(
                "DELETE FROM history WHERE seq = ? AND target = ? AND msgid = ?",
                (seq, item.target, item.msgid),
            )
        prev = -1
        for seq, item in zip(seqs, items, strict=True):
            seq = max(seq, prev + 1)
            row = (item.target, item.msgid, item.time, item.command, item.source,
                   item.account, json.dumps(item.params, ensure_ascii=False, separators=(",", ":")),
                   item.tags)  # fmt: skip
            while not db.execute(
                "INSERT INTO history (seq, target, msgid, time, command, source, account,"
                " params, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING",
                (seq, *row),
            ).rowcount:
                seq += 1
            prev = seq

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
        where, args = ["target = ?"], [target]
        if messages_only:
            where.append(f"command IN {_MESSAGE_COMMANDS}")
        if not_before:
            where.append("time >= ?")
            args.append(not_before)
        for bound, op in ((after, ">"), (before, "<")):
            if bound is None:
                continue
            if bound.msgid:  # a msgid the target lacks: NULL, and nothing compares true
                where.append(f"seq {op} (SELECT seq FROM history WHERE target = ? AND msgid = ?)")
                args += [target, bound.msgid]
            else:
                where.append(f"time {op} ?")
                args.append(bound.time)
        order = "DESC" if latest else "ASC"
        page = f"SELECT * FROM history WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?"
        with self._transaction(write=False, statements=1) as db:
            (found,) = db.execute(
                f"SELECT json_group_array(json_array({_HISTORY_COLUMNS})) FROM ({page})",
                (*args, limit),
            ).fetchone()
        # In seq order whatever order the aggregate kept: ascending, as the caller wants.
        return sorted(map(_history_row, json.loads(found)), key=_seq_of)

    def history_item(self, target: str, msgid: str) -> HistoryItem | None:
        with self._transaction(write=False, statements=1) as db:
            row = db.execute(
                f"SELECT json_array({_HISTORY_COLUMNS}) FROM history"
                " WHERE target = ? AND msgid = ?",
                (target, msgid),
            ).fetchone()
        return None if row is None else _history_row(json.loads(row[0]))

    def delete_history(self, target: str, msgid: str) -> bool:
        with self._transaction(write=True) as db:
            gone = db.execute(
                "DELETE FROM history WHERE target = ? AND msgid = ?", (target, msgid)
            ).rowcount
        return gone > 0

    def read_markers(self, account: str) -> dict[str, float]:
        with self._transaction(write=False) as db:
            rows = db.execute(
                "SELECT target, time FROM read_markers WHERE account = ?", (casefold(account),)
            ).fetchall()
        return dict(rows)

    def set_read_marker(self, account: str, target: str, when: float) -> float:
        key = casefold(account)
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT INTO read_markers (account, target, time) VALUES (?, ?, ?)"
                " ON CONFLICT (account, target) DO UPDATE SET time = excluded.time"
                " WHERE excluded.time > time",
                (key, target, when),
            )
            row = db.execute(
                "SELECT time FROM read_markers WHERE account = ? AND target = ?", (key, target)
            ).fetchone()
        return row[0]

    def history_targets(
        self, targets: Sequence[str], since: float, until: float, limit: int
    ) -> list[tuple[str, float]]:
        latest = (
            "SELECT target, MAX(time) AS latest FROM history"
            " WHERE target IN (SELECT value FROM json_each(?)) AND time >= ? AND time <= ?"
            " GROUP BY target"
        )
        with self._transaction(write=False, statements=1) as db:
            (found,) = db.execute(
                f"SELECT json_group_array(json_array(target, latest)) FROM ({latest})",
                (json.dumps(list(targets), ensure_ascii=False), since, until),
            ).fetchone()
        pairs = [(target, when) for target, when in json.loads(found)]
        pairs.sort(key=lambda pair: pair[1])
        return pairs[:limit]

    def conversations_of(self, party: str) -> list[str]:
        with self._transaction(write=False) as db:
            rows = db.execute(
                "SELECT target FROM private_parties WHERE party = ?", (party,)
            ).fetchall()
        return [row[0] for row in rows]

    def expire_history(self, older_than: float, keep_per_target: int, batch: int) -> int:
        with self._transaction(write=True) as db:
            gone = 0
            oldest = db.execute("SELECT time FROM history ORDER BY seq LIMIT 1").fetchone()
            if oldest is not None and oldest[0] < older_than:
                # The oldest rows by seq (times rise with seq: it is the time in µs).
                gone = db.execute(
                    "DELETE FROM history WHERE seq IN (SELECT seq FROM history ORDER BY seq"
                    " LIMIT ?) AND time < ?",
                    (batch, older_than),
                ).rowcount
            if keep_per_target and gone < batch:
                gone += self._trim_targets(db, keep_per_target, batch - gone)
        return gone

    def _trim_targets(self, db: sqlite3.Connection, keep: int, batch: int) -> int:
        """Delete, up to ``batch``, the items beyond the newest ``keep`` of each target."""
        gone = 0
        over = db.execute(
            "SELECT target, COUNT(*) FROM history GROUP BY target HAVING COUNT(*) > ?", (keep,)
        ).fetchall()
        for target, count in over:
            if gone >= batch:
                break
            gone += db.execute(
                "DELETE FROM history WHERE seq IN (SELECT seq FROM history WHERE target = ?"
                " ORDER BY seq LIMIT ?)",
                (target, min(count - keep, batch - gone)),
            ).rowcount
        return gone

    # -- checkpoints -----------------------------------------------------------------

    def defer_checkpoints(self) -> None:
        """Leave the WAL's checkpoints to :meth:`checkpoint`, called from another thread.

        SQLite otherwise runs one in the commit that takes the WAL past 1,000 pages:
        at 50,000 history lines a second that is every quarter second, and the write
        waiting for it is late (half the p99 of the writer's interval, measured).
        """
        # Settings of the connection: no transaction around them (statements=1).
        with self._transaction(write=False, statements=1) as db:
            if not self.memory:
                db.execute("PRAGMA wal_autocheckpoint = 0")
                # When the WAL starts over it is cut back to this: a burst's WAL (up to
                # CHECKPOINT_EVERY seconds of writes) does not stay on the disk.
                db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT:d}")

    def checkpoint(self) -> bool:
        """Copy what the WAL holds back into the file, on a connection of its own, and
        let the WAL start over; True when it could. Call it from one thread at a time,
        not the one of the other calls; StoreUnavailable if it fails.

        First a PASSIVE checkpoint: the bulk of the copying, while writes go on. Then a
        RESTART one, which waits for the write under way, copies the little that came
        meanwhile and holds the next write back until then (a millisecond or so): with
        writes never pausing, a passive checkpoint alone would find new frames each time
        and the WAL would grow without end.
        """
        if self.memory or self._db is None:
            return True
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                    check_same_thread=False,  # closed by close(), on the storage thread
                )  # fmt: skip
            for mode in ("PASSIVE", "RESTART"):
                # fetchall: the statement run to its end and reset; one left open keeps a
                # read lock, and the WAL could not start over.
                ((busy, _, _),) = self._checkpointer.execute(
                    f"PRAGMA wal_checkpoint({mode})"
                ).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(_runtime_cause(exc)) from exc
        return not busy

    # -- life ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (a file's WAL is checkpointed into it); calls after
        this raise StoreUnavailable. Closing twice is fine."""
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:  # first: the last connection to close ends the WAL
            with suppress(sqlite3.Error):
                checkpointer.close()
        db, self._db = self._db, None
        if db is None:
            return
        with suppress(sqlite3.Error):
            db.execute("PRAGMA optimize")
        db.close()


def _batch_seqs(items: Sequence[HistoryItem]) -> list[int]:
    """The seqs a batch asks for: each line's proposal (base.proposed_seq), raised where
    needed so that the batch's lines keep their order."""
    seqs: list[int] = []
    prev = -1
    for item in items:
        prev = max(proposed_seq(item), prev + 1)
        seqs.append(prev)
    return seqs


def _history_row(row: list) -> HistoryItem:
    """A row of history() (_HISTORY_COLUMNS, decoded from JSON) as a record."""
    seq, target, msgid, when, command, source, account, params, tags = row
    return HistoryItem(target, msgid, when, command, source, account, tuple(params), tags, seq)


def _seq_of(item: HistoryItem) -> int:
    return item.seq


def _has_account(db: sqlite3.Connection, key: str) -> bool:
    return db.execute("SELECT 1 FROM accounts WHERE key = ?", (key,)).fetchone() is not None


def _channel_fields(channel: RegisteredChannel) -> tuple:
    """The columns after ``key, name`` in the order INSERT and UPDATE name them."""
    return (
        channel.founder,
        casefold(channel.founder),
        channel.registered_at,
        channel.topic,
        channel.topic_setter,
        channel.topic_time,
        channel.modes,
        channel.key,
        channel.limit,
        json.dumps([list(ban) for ban in channel.bans]),
        json.dumps([list(entry) for entry in channel.exceptions]),
        json.dumps(channel.metadata, ensure_ascii=False),
    )


def _channel(row: sqlite3.Row, access: dict[str, str]) -> RegisteredChannel:
    return RegisteredChannel(
        name=row["name"],
        founder=row["founder"],
        registered_at=row["registered_at"],
        topic=row["topic"],
        topic_setter=row["topic_setter"],
        topic_time=row["topic_time"],
        modes=row["modes"],
        key=row["channel_key"],
        limit=row["user_limit"],
        bans=tuple((mask, by, float(when)) for mask, by, when in json.loads(row["bans"])),
        exceptions=tuple(
            (char, mask, by, float(when)) for char, mask, by, when in json.loads(row["exceptions"])
        ),
        metadata=json.loads(row["metadata"]),
        access=access,
    )
