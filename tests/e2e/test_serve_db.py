"""``greenchat-serve --db``: where the accounts are kept, and a database it cannot use."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serve_process import SERVE
from transcript import IrcClient, ServerThread

from greenchat.server.config import ServerConfig
from greenchat.store.sqlite import OPEN_BUSY_TIMEOUT, SCHEMA_VERSION

pytestmark = pytest.mark.e2e


def refused(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the server expecting it not to start; in ``tmp_path``, so nothing lands in
    the checkout if it does."""
    return subprocess.run(
        [str(SERVE), "--port", "0", "--no-web", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )


def test_a_corrupt_database_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(os.urandom(4096))
    out = refused(tmp_path, "--db", str(path))
    assert out.returncode == 2
    assert out.stderr == (
        f"greenchat-serve: cannot open the database {path}: it is not a SQLite database, "
        "or it is damaged (file is not a database)\n"
    )
    assert out.stdout == ""


def test_the_default_file_is_named_as_given(tmp_path):
    (tmp_path / "greenchat.db").mkdir()  # the default name, but a directory
    out = refused(tmp_path)
    assert out.returncode == 2
    assert (
        out.stderr == "greenchat-serve: cannot open the database greenchat.db: it is a directory\n"
    )


def test_a_newer_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "newer.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    before = path.read_bytes()
    out = refused(tmp_path, "--db", str(path))
    assert out.returncode == 2
    assert out.stderr == (
        f"greenchat-serve: cannot open the database {path}: it was written by a newer greenchat "
        f"(schema v{SCHEMA_VERSION + 1}, this one knows v{SCHEMA_VERSION})\n"
    )
    assert path.read_bytes() == before


def test_a_database_another_process_keeps_locked_is_refused_in_seconds(tmp_path):
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("CREATE TABLE other (x)")
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        out = refused(tmp_path, "--db", str(path))
        took = time.monotonic() - started
    finally:
        holder.close()
    assert out.returncode == 2
    assert out.stderr == (
        f"greenchat-serve: cannot open the database {path}: another process has held a lock "
        f"on it for more than {OPEN_BUSY_TIMEOUT:g} s (another greenchat-serve on the same file?)\n"
    )
    assert took < OPEN_BUSY_TIMEOUT + 10


def test_a_file_is_created_in_wal_mode_and_named_in_the_log(serve, tmp_path):
    path = tmp_path / "state" / "accounts.db"
    path.parent.mkdir()
    server = serve("--db", str(path))
    line = server.wait_log(r"started greenchat\.local \(pid \d+\): IRC on ")
    assert line.endswith(f", accounts in {path}")
    assert path.is_file()
    with contextlib.closing(sqlite3.connect(path)) as db:  # the last one closing drops the WAL
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    IrcClient(server.port).register("alice").close()  # it serves as usual
    assert server.stop() == 0
    assert not Path(f"{path}-wal").exists()  # closed cleanly: the WAL folded back in


def test_the_config_file_names_the_database(serve, tmp_path):
    conf = tmp_path / "greenchat.toml"
    conf.write_text(f'db = "{tmp_path / "from-file.db"}"\n')
    server = serve("--config", str(conf))
    server.wait_log(rf", accounts in {tmp_path / 'from-file.db'}$")
    assert (tmp_path / "from-file.db").is_file()


def test_tests_default_to_memory(serve):
    server = serve()
    server.wait_log(r", accounts in memory \(:memory:: nothing is kept after a stop\)$")


def test_in_process_servers_keep_accounts_in_memory_unless_told(tmp_path):
    server = ServerThread().start()
    try:
        assert server.server.storage.store.memory
    finally:
        server.stop()
    path = tmp_path / "chosen.db"
    server = ServerThread(ServerConfig(db=str(path))).start()
    try:
        assert server.server.storage.store.path == str(path) and path.is_file()
    finally:
        server.stop()
    assert server.server.storage.closed  # closed by stop()


def test_the_installed_server_sends_verification_codes_with_its_command(
    serve, tmp_path, monkeypatch
):
    """greenchat-serve monkey-patches, so its --verify-command runs on gevent's
    subprocess: REGISTER, the code in the command's environment, VERIFY."""
    outbox = tmp_path / "code"
    monkeypatch.setenv("OUTBOX", str(outbox))
    script = "import os; open(os.environ['OUTBOX'], 'w').write(os.environ['GREENCHAT_CODE'])"
    server = serve("--verify-command", f'{sys.executable} -c "{script}"')
    client = IrcClient(server.port)
    try:
        client.send("CAP LS 302", "CAP REQ :draft/account-registration", "NICK mailed")
        client.send("USER mailed 0 * :mailed")
        client.expect(r" ACK :?draft/account-registration")
        client.send("REGISTER * mailed@example.org sturdy-pass")
        client.expect(r" REGISTER VERIFICATION_REQUIRED mailed ")
        client.send(f"VERIFY mailed {outbox.read_text()}")
        client.expect(r" VERIFY SUCCESS mailed ")
        client.expect(r" 900 mailed ")
    finally:
        client.close()
