"""The fan-out benchmark still runs end to end (tiny sizes; real numbers live in benchmarks/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]


def test_fanout_benchmark_smoke(tmp_path):
    out = tmp_path / "fanout.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "fanout.py"),
            "--clients", "20",
            "--senders", "2",
            "--messages", "20",
            "--repeat", "1",
            "--json", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    run = data["runs"][0]
    assert run["complete"] and run["delivered"] == run["expected"] == 2 * 20 * 19
    assert run["server_us_per_delivery"] > 0
