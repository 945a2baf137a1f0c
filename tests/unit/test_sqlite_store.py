"""SqliteStore's own business: the file settings, migrations, refusing a bad file at
open, and failures underneath at run time (tests/contract has the AccountStore calls)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from greenchat.store.base import Account, RegisteredChannel, StoreError, StoreUnavailable
from greenchat.store.credentials import make_credentials
from greenchat.store.sqlite import (
    BUSY_TIMEOUT,
    MEMORY,
    MIGRATIONS,
    OPEN_BUSY_TIMEOUT,
    SCHEMA_VERSION,
    SqliteStore,
)

CREDS = make_credentials("pw")


def pragma(store: SqliteStore, name: str):
    return store._db.execute(f"PRAGMA {name}").fetchone()[0]


def refused(path: Path) -> str:
    """The StoreError text for opening ``path``: one line, naming the file."""
    with pytest.raises(StoreError) as caught:
        SqliteStore(path)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"cannot open the database {path}: ")
    return text.removeprefix(f"cannot open the database {path}: ")


# -- settings of the file --------------------------------------------------------------


def test_a_new_file_is_wal_normal_sync_with_foreign_keys_at_the_latest_schema(tmp_path):
    path = tmp_path / "new.db"
    store = SqliteStore(path)
    try:
        assert path.is_file()
        assert pragma(store, "journal_mode") == "wal"
        assert pragma(store, "synchronous") == 1  # NORMAL
        assert pragma(store, "foreign_keys") == 1
        assert pragma(store, "user_version") == SCHEMA_VERSION >= 2
    finally:
        store.close()
    assert not Path(f"{path}-wal").exists()  # checkpointed into the file at close


def test_memory_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = SqliteStore(MEMORY)
    store.create_account(Account("alice", CREDS, 1.0))
    assert pragma(store, "journal_mode") == "memory"
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_an_empty_file_becomes_a_database(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    SqliteStore(path).close()
    assert path.stat().st_size > 0


# -- migrations ------------------------------------------------------------------------


def v1_file(path: Path) -> None:
    """A database as the first version of the schema left it, with rows in it."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO accounts (key, name, password_hash, scram_salt, scram_stored_key,"
        " scram_server_key, scram_iterations, registered_at, email, verified, verify_code,"
        " settings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            "alice{x}",
            "Alice[x]",
            CREDS.password_hash,
            CREDS.scram_salt,
            CREDS.scram_stored_key,
            CREDS.scram_server_key,
            CREDS.scram_iterations,
            10.0,
            "a@example.org",
            0,
            "777",
            json.dumps({"greet": "hi", "hidemail": "on"}),
        ),
    )
    db.execute("INSERT INTO certfps (certfp, account) VALUES ('ff00', 'alice{x}')")
    db.execute(
        "INSERT INTO channels (key, name, founder, founder_key, registered_at, topic, modes,"
        " bans, access) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            "#lobby",
            "#Lobby",
            "Alice[x]",
            "alice{x}",
            20.0,
            "old topic",
            "nt",
            json.dumps([["*!*@bad", "Alice[x]", 30.0]]),
            json.dumps({"Bob": "o", "Carol": "v"}),
        ),
    )
    db.execute("COMMIT")
    db.close()


def test_a_v1_file_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v1.db"
    v1_file(path)
    store = SqliteStore(path)
    try:
        assert pragma(store, "user_version") == SCHEMA_VERSION
        alice = store.get_account("ALICE[X]")
        assert alice == Account(
            name="Alice[x]",
            credentials=CREDS,
            registered_at=10.0,
            email="a@example.org",
            verified=False,
            verify_code="777",
            certfps=("ff00",),
            settings={"greet": "hi", "hidemail": "on"},
        )
        assert store.get_channel("#LOBBY") == RegisteredChannel(
            name="#Lobby",
            founder="Alice[x]",
            registered_at=20.0,
            topic="old topic",
            modes="nt",
            bans=(("*!*@bad", "Alice[x]", 30.0),),
            access={"Bob": "o", "Carol": "v"},
        )
        # The JSON columns went to tables of their own (v2).
        columns = {row[1] for row in store._db.execute("PRAGMA table_info(channels)")}
        assert "access" not in columns and "bans" in columns
        assert store.set_setting("alice{x}", "greet", "") is True
        assert store.get_account("alice{x}").settings == {"hidemail": "on"}
    finally:
        store.close()
    reopened = SqliteStore(path)  # at the latest version: nothing more to do
    try:
        assert reopened.get_channel("#lobby").access == {"Bob": "o", "Carol": "v"}
    finally:
        reopened.close()


def test_a_newer_schema_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "newer.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    db.close()
    before = path.read_bytes()
    assert refused(path) == (
        f"it was written by a newer greenchat (schema v{SCHEMA_VERSION + 5}, "
        f"this one knows v{SCHEMA_VERSION})"
    )
    assert path.read_bytes() == before


# -- refused at open -------------------------------------------------------------------


def test_random_bytes_are_not_a_database(tmp_path):
    path = tmp_path / "noise.db"
    path.write_bytes(os.urandom(8192))
    assert refused(path) == "it is not a SQLite database, or it is damaged (file is not a database)"


def test_a_damaged_database_is_refused(tmp_path):
    path = tmp_path / "damaged.db"
    store = SqliteStore(path)
    for i in range(200):
        store.create_account(Account(f"user{i}", CREDS, 1.0, certfps=(f"{i:064x}",)))
    store.close()
    page = 4096
    assert path.stat().st_size > 6 * page
    with open(path, "r+b") as f:  # pages 4 and 5: b-tree pages, not the header
        f.seek(3 * page)
        f.write(os.urandom(2 * page))
    assert refused(path).startswith("the file is damaged (")


def test_a_directory_is_refused(tmp_path):
    assert refused(tmp_path) == "it is a directory"


def test_a_missing_directory_is_named(tmp_path):
    assert (
        refused(tmp_path / "absent" / "greenchat.db") == f"there is no directory {tmp_path}/absent"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes any file")
def test_a_file_without_write_permission_is_refused(tmp_path):
    path = tmp_path / "readonly.db"
    SqliteStore(path).close()
    path.chmod(0o400)  # SQLite opens it read-only without a word: the write at open finds out
    assert refused(path) == (
        "it cannot be written: no permission to write it or its directory "
        "(attempt to write a readonly database)"
    )
    path.chmod(0)
    assert refused(path) == "permission denied"


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_file_another_process_keeps_locked_is_refused_within_seconds(tmp_path, journal):
    path = tmp_path / "locked.db"
    if journal == "wal":
        SqliteStore(path).close()  # a greenchat file: WAL, where readers are never blocked
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("CREATE TABLE IF NOT EXISTS other (x)")
        assert holder.execute("PRAGMA journal_mode").fetchone()[0] == journal
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        why = refused(path)
        took = time.monotonic() - started
    finally:
        holder.close()
    assert why == (
        f"another process has held a lock on it for more than {OPEN_BUSY_TIMEOUT:g} s "
        "(another greenchat-serve on the same file?)"
    )
    assert OPEN_BUSY_TIMEOUT * 0.9 < took < OPEN_BUSY_TIMEOUT + 3
    SqliteStore(path).close()  # once the lock is gone it opens


# -- failures at run time --------------------------------------------------------------


def big_account(name: str) -> Account:
    """An account whose rows span several pages: its fingerprints and settings come
    after the account row in the same transaction."""
    return Account(
        name,
        CREDS,
        1.0,
        certfps=tuple(f"{name}-{i:060x}" for i in range(200)),
        settings={f"key{i}": "v" * 200 for i in range(100)},
    )


def test_a_full_disk_is_unavailable_and_leaves_nothing_half_written(tmp_path):
    """SQLITE_FULL, as on a full disk, from the page limit SQLite enforces on the file
    (works as root, unlike chmod, and needs no tmpfs to fill)."""
    store = SqliteStore(tmp_path / "full.db")
    try:
        store.create_account(Account("alice", CREDS, 1.0))
        pages = pragma(store, "page_count")
        store._db.execute(f"PRAGMA max_page_count = {pages}")
        store.create_account(Account("small", CREDS, 1.0))  # an account row still fits...
        with pytest.raises(StoreUnavailable, match=r"database or disk is full \(SQLITE_FULL\)"):
            store.create_account(big_account("big"))  # ...but not its 300 other rows
        assert not store._db.in_transaction
        assert store.get_account("big") is None  # rolled back whole: no row of it
        assert store.find_by_certfp(f"big-{0:060x}") is None
        count = store._db.execute("SELECT count(*) FROM account_settings").fetchone()[0]
        assert count == 0
        with pytest.raises(StoreUnavailable):
            store.add_certfp("alice", "x" * 100_000)  # fails again, changes nothing
        assert store.get_account("alice").certfps == ()
        # Room again (an operator freed the disk): the same call succeeds.
        store._db.execute("PRAGMA max_page_count = 1000000")
        store.create_account(big_account("big"))
        assert len(store.get_account("big").certfps) == 200
    finally:
        store.close()


def test_a_read_only_database_is_unavailable_for_writes_and_still_read(tmp_path):
    """SQLITE_READONLY (a file or mount turned read-only under a running server),
    from query_only, which SQLite enforces for root as for anyone."""
    store = SqliteStore(tmp_path / "ro.db")
    try:
        store.create_account(Account("alice", CREDS, 1.0))
        store.register_channel(RegisteredChannel("#lobby", "alice", 2.0))
        store._db.execute("PRAGMA query_only = ON")
        with pytest.raises(StoreUnavailable, match="readonly"):
            store.set_verified("alice")
        with pytest.raises(StoreUnavailable, match="readonly"):
            store.drop_account("alice")
        assert not store._db.in_transaction
        assert store.get_account("alice") is not None  # reads still work
        assert store.get_channel("#lobby") is not None  # and the drop took nothing
        store._db.execute("PRAGMA query_only = OFF")
        assert store.drop_account("alice") is True
        assert store.get_channel("#lobby") is None
    finally:
        store.close()


def test_another_process_holding_the_write_lock_is_unavailable_not_a_hang(tmp_path):
    path = tmp_path / "busy.db"
    store = SqliteStore(path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            store.create_account(Account("alice", CREDS, 1.0))
        assert time.monotonic() - started < BUSY_TIMEOUT + 3
        assert store.get_account("alice") is None  # WAL: reading goes on meanwhile
        holder.execute("ROLLBACK")
        store.create_account(Account("alice", CREDS, 1.0))
    finally:
        holder.close()
        store.close()


def test_a_step_that_fails_leaves_the_file_at_its_version(tmp_path):
    path = tmp_path / "bad-v1.db"
    v1_file(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE accounts SET settings = 'not json'")
    db.commit()
    db.close()
    assert refused(path).startswith("upgrading it to schema v2 failed (JSONDecodeError: ")
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert db.execute("SELECT settings FROM accounts").fetchone()[0] == "not json"
    finally:
        db.close()


def _lines(start: int, count: int) -> list:
    from greenchat.store.base import HistoryItem

    return [
        HistoryItem("#c", f"m{n}", 1000.0 + n, "PRIVMSG", "a!b@c", "", ("#c", "x" * 200))
        for n in range(start, start + count)
    ]


def test_deferred_checkpoints_run_from_another_thread_and_the_wal_starts_over(tmp_path):
    """With defer_checkpoints no write copies the WAL back (it only grows); checkpoint(),
    on another thread and its own connection, copies it all, and the next write starts
    the WAL over, so it stops growing. Nothing is lost either way."""
    import threading

    path = tmp_path / "wal.db"
    wal = Path(f"{path}-wal")
    store = SqliteStore(path)
    store.defer_checkpoints()
    for chunk in range(40):  # about 8 MiB of WAL: past SQLite's own 1,000-page checkpoint
        store.append_history(_lines(chunk * 500, 500))
    grown, file_before = wal.stat().st_size, path.stat().st_size
    assert grown > 4 * 2**20  # no automatic checkpoint cut it short
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(store.checkpoint()))
    worker.start()
    worker.join(30)
    assert done == [True]
    assert path.stat().st_size > file_before + 2**20  # the lines are in the file now
    for chunk in range(40, 44):
        store.append_history(_lines(chunk * 500, 500))
    assert wal.stat().st_size <= grown  # written from the start again, not appended
    store.close()
    again = SqliteStore(path)
    assert len(again.history("#c", None, None, 100, True)) == 100
    assert again.history("#c", None, None, 1, True)[0].msgid == "m21999"
    again.close()


def test_checkpoint_of_a_memory_store_is_nothing():
    store = SqliteStore(MEMORY)
    store.defer_checkpoints()
    assert store.checkpoint() is True
    store.close()
