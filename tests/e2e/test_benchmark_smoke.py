"""The fan-out benchmark still runs end to end (tiny sizes; real numbers live in benchmarks/)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from process_guard import run_bounded, terminate_once_serving

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]


def test_fanout_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    result = run_bounded(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "fanout.py"),
            "--clients", "20",
            "--senders", "2",
            "--messages", "20",
            "--repeat", "1",
            "--json", str(out),
        ],
        timeout=40,  # + 10 s grace: within the 60 s test timeout
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    run = data["runs"][0]
    assert run["complete"] and run["delivered"] == run["expected"] == 2 * 20 * 19
    assert run["server_us_per_delivery"] > 0


def test_sigterm_stops_the_server_it_started(tmp_path: Path) -> None:
    """fanout.py stops its server (in its own session) itself when it is terminated."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--clients", "20",
           "--senders", "2", "--messages", "20", "--repeat", "1000"]  # fmt: skip
    status, pids, survivors = terminate_once_serving(cmd, tmp_path / "pids", tmp_path / "log")
    assert status == 128 + signal.SIGTERM, (tmp_path / "log").read_text()
    assert pids and survivors == []
