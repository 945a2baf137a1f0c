"""benchmarks/crossnode.py still runs end to end, on a single Redis and with --paired
(tiny rooms and bursts; the real figures live in benchmarks/README.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import redis_server
from process_guard import run_bounded

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not redis_server.available(), reason=redis_server.SKIP_REASON),
]

CROSSNODE = Path(__file__).parents[2] / "benchmarks" / "crossnode.py"


def _crossnode(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "crossnode.json"
    cmd = [sys.executable, str(CROSSNODE), "--rooms", "1,3", "--lines", "30", "--repeat", "2",
           *args, "--out", str(out)]  # fmt: skip
    result = run_bounded(cmd, timeout=100)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


def test_crossnode_measures_each_node_and_the_single_server(tmp_path: Path) -> None:
    data = _crossnode(tmp_path)
    for members in ("1", "3"):
        case = data["cases"][members]
        assert len(case["runs"]["network"]) == len(case["runs"]["single"]) == 2
        assert case["network"]["a_us"] > 0 and case["network"]["b_us"] > 0
        assert case["single"]["single_us"] > 0
    assert set(data["summary"]["rows"]) == {"1", "3"}
    assert data["summary"]["target_us"] == 30.0


def test_crossnode_paired_takes_a_burst_of_each_in_turn(tmp_path: Path) -> None:
    data = _crossnode(tmp_path, "--paired")
    assert data["benchmark"] == "crossnode-paired"
    for members in ("1", "3"):
        case = data["cases"][members]
        assert set(case["runs"]) == {"redis", "cluster", "single"}
        assert all(len(runs) == 2 for runs in case["runs"].values())
        assert case["medians"]["cluster"]["b_us"] > 0 and case["b_cluster_vs_redis"] > 0
