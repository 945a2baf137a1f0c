"""The fan-out benchmark still runs end to end (tiny sizes; real numbers live in benchmarks/)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from process_guard import run_bounded, terminate_once_serving

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]


def run_fanout(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """benchmarks/fanout.py with 20 clients and 2 senders plus ``args``; its JSON."""
    out = tmp_path / "fanout.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--clients", "20",
           "--senders", "2", *args, "--json", str(out)]  # fmt: skip
    result = run_bounded(cmd, timeout=40)  # + 10 s grace: within the 60 s test timeout
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(out.read_text())


def test_fanout_benchmark_smoke(tmp_path: Path) -> None:
    _, data = run_fanout(tmp_path, "--messages", "20", "--repeat", "1")
    run = data["runs"][0]
    assert run["complete"] and run["delivered"] == run["expected"] == 2 * 20 * 19
    assert run["server_us_per_delivery"] > 0


def test_fanout_benchmark_scrapes_metrics(tmp_path: Path) -> None:
    """--metrics: /metrics is scraped during each burst, and greenchat_deliveries_total
    rises by exactly the deliveries the clients counted."""
    result, data = run_fanout(tmp_path, "--messages", "100", "--repeat", "2", "--metrics")
    assert data["server"]["metrics_url"].startswith("http://127.0.0.1:")
    assert "--metrics-port 0" in data["server"]["command"]
    for run in data["runs"]:
        assert run["complete"] and run["delivered"] == run["expected"] == 2 * 100 * 19
        found = run["metrics"]
        assert found["scrapes"] >= 1 and len(found["scrape_ms"]) == found["scrapes"]
        assert 0 < found["scrape_ms_median"] <= found["scrape_ms_max"]
        assert "scrape_errors" not in found
        # The JOIN fan-out was counted before the burst; the burst's deliveries after.
        assert found["deliveries_before"] > 0
        assert found["deliveries_counter"] == run["delivered"] and found["counter_agrees"]
    summary = data["metrics"]
    assert summary["counter_agrees"] is True and summary["scrape_errors"] == 0
    assert summary["deliveries_counter"] == summary["delivered"] == 2 * 2 * 100 * 19
    assert summary["scrapes"] == sum(r["metrics"]["scrapes"] for r in data["runs"])
    assert "greenchat_deliveries_total +7,600 = 7,600 delivered" in result.stdout


def test_sigterm_stops_the_server_it_started(tmp_path: Path) -> None:
    """fanout.py stops its server (in its own session) itself when it is terminated."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--clients", "20",
           "--senders", "2", "--messages", "20", "--repeat", "1000"]  # fmt: skip
    status, pids, survivors = terminate_once_serving(cmd, tmp_path / "pids", tmp_path / "log")
    assert status == 128 + signal.SIGTERM, (tmp_path / "log").read_text()
    assert pids and survivors == []


def test_fanout_benchmark_against_a_baseline_revision(tmp_path: Path) -> None:
    """--baseline HEAD: the old tree's server is measured, and the tree is gone afterwards."""
    out, temp = tmp_path / "fanout.json", tmp_path / "tmp"
    temp.mkdir()
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--clients", "20",
           "--senders", "2", "--messages", "20", "--repeat", "1", "--baseline", "HEAD",
           "--json", str(out)]  # fmt: skip
    result = run_bounded(cmd, timeout=40, env=os.environ | {"TMPDIR": str(temp)})
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    assert data["runs"][0]["complete"] and data["runs"][0]["server_us_per_delivery"] > 0
    base = data["server"]["baseline"]
    assert base["revision"] == "HEAD" and base["name"].startswith("greenchat@")
    assert str(temp) in data["server"]["command"]  # it ran from the exported tree
    assert list(temp.iterdir()) == []
