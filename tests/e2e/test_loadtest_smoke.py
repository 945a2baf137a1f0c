"""The locust kit runs headless against a real greenchat-serve and records clean stats."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from serve_process import ServeProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
LOCUST = Path(sys.executable).parent / "locust"


def test_locust_smoke(tmp_path):
    server = ServeProcess("--log-level", "WARNING")
    try:
        result = run_locust(
            tmp_path, f"irc://127.0.0.1:{server.port}",
            "LobbyUser", "RoomsUser", "DmUser", "ChurnUser",
        )  # fmt: skip
    finally:
        assert server.stop() == 0
    assert_clean_stats(tmp_path, result)


def test_locust_smoke_over_websocket(tmp_path):
    """With a ws:// --host every user speaks IRC over the web port's WebSocket."""
    server = ServeProcess("--log-level", "WARNING")
    try:
        assert server.web_port is not None
        result = run_locust(
            tmp_path, f"ws://127.0.0.1:{server.web_port}/", "WebSocketUser", "LobbyUser",
            users=20,
        )  # fmt: skip
    finally:
        assert server.stop() == 0
    assert_clean_stats(tmp_path, result)


def test_locust_smoke_with_sasl_logins(tmp_path):
    """--sasl: the first run finds no accounts, so each user makes its own with NickServ
    and logs in; the second run against the same server only logs in.

    Three users: the server lets an address fail three logins before it makes the next
    wait (all users come from 127.0.0.1), so the first run's logins need no waiting.
    """
    server = ServeProcess("--log-level", "WARNING")
    host = f"irc://127.0.0.1:{server.port}"
    first, second = tmp_path / "first", tmp_path / "second"
    try:
        for where in (first, second):
            where.mkdir()
            result = run_locust(where, host, "LobbyUser", users=3, options=["--sasl"])
            rows = assert_clean_stats(where, result)
            assert int(rows["login"]["Request Count"]) > 0
            if where is first:
                assert int(rows["create-account"]["Request Count"]) > 0
    finally:
        assert server.stop() == 0
    assert "create-account" not in rows  # all there from the first run
    assert int(rows["login"]["Request Count"]) == 3  # one each, at once


def run_locust(
    tmp_path: Path, host: str, *user_classes: str, users: int = 50, options: Sequence[str] = ()
):
    """locust headless for 5 s against ``host``, CSV stats in ``tmp_path``."""
    return subprocess.run(
        [
            str(LOCUST), "-f", str(ROOT / "loadtest" / "locustfile.py"),
            "--headless", "-u", str(users), "-r", str(users), "-t", "5s",
            "--host", host,
            "--csv", str(tmp_path / "smoke"), "--only-summary",
            "--msg-interval", "0.5", "--sample-every", "1",
            *options, *user_classes,
        ],
        capture_output=True, text=True, timeout=90, cwd=tmp_path,
    )  # fmt: skip


def assert_clean_stats(tmp_path: Path, result: subprocess.CompletedProcess) -> dict[str, dict]:
    """connect, register, join and deliver were timed, and nothing failed; the stats rows."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / "smoke_stats.csv", newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    for name in ("connect", "register", "join", "deliver"):
        assert int(rows[name]["Request Count"]) > 0, name
    assert int(rows["Aggregated"]["Failure Count"]) == 0, (
        tmp_path / "smoke_failures.csv"
    ).read_text()
    assert "greenchat load test (this process): delivered" in result.stdout + result.stderr
    return rows
