"""benchmarks/history.py (issue 15) still runs end to end: each part in --quick mode
(tiny sizes, a second or two of load), checked for the keys its report is made of.
No timing is asserted: the real numbers live in benchmarks/results/issue15/."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from process_guard import run_bounded

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "benchmarks" / "history.py"


def run_part(tmp_path: Path, part: str, *args: str, timeout: float = 25) -> dict:
    """``history.py --quick --part PART``; its JSON (and the summary it rebuilt)."""
    out = tmp_path / "out"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--part", part, "--out", str(out), *args]
    done = run_bounded(cmd, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((out / f"{part}.json").read_text())
    assert data["part"] == part and data["quick"] is True
    assert {"machine", "loadavg_before", "greenchat_digest_before", "command"} <= set(data)
    assert "## Targets" in (out / "summary.md").read_text()
    return data


def test_store_part(tmp_path: Path) -> None:
    """A real server fed by sender processes with a PING probe, and the storing path
    alone in-process; every accepted message is stored, and the batches are seen."""
    data = run_part(tmp_path, "store")
    (e2e,) = data["e2e"]
    assert e2e["accepted"] > 0 and e2e["all_answered"]
    assert e2e["stored_total"] == e2e["accepted"] and e2e["lost"] == 0 and e2e["dropped"] == 0
    assert e2e["ping"]["ponged"] == e2e["ping"]["pinged"] > 0
    for key in ("accepted_per_s", "stored_per_s", "ping_p50_ms", "ping_p99_ms",
                "server_lag_buckets", "server_core_util", "pending_max"):  # fmt: skip
        assert key in e2e, key
    (inproc,) = data["inproc"]
    assert inproc["offered"] > 0 and inproc["stored_total"] >= inproc["offered"]
    assert inproc["batches"] > 0 and inproc["p50_items"] >= 1 and inproc["dropped"] == 0
    for key in ("stored_per_s", "p50_ms", "p99_ms", "max_ms", "p99_interval_ms", "p99_write_ms",
                "pending_at_end", "sustained"):  # fmt: skip
        assert key in inproc, key
    assert {"best_inproc_rate", "best_e2e_rate", "inproc_met", "e2e_met"} <= set(data["verdict"])


def test_query_part(tmp_path: Path) -> None:
    """A history file built with append_history, the store called directly, CHATHISTORY
    through a real server (a batch of 100 lines each time), and the msgid index used."""
    data = run_part(tmp_path, "query", "--rows", "5000", "--queries", "20")
    assert data["rows"] == 5000 and data["append_rows_per_s"] > 0
    assert data["plan"]["msgid_index_used"] is True and data["plan"]["full_scans"] == []
    for name in ("latest_messages", "before_messages", "latest_events", "before_events"):
        found = data["server"][name]
        assert found["queries"] == 20 and found["lines"] == [100], name
        assert 0 < found["p50_ms"] <= found["p99_ms"] <= found["max_ms"], name
        assert data["store"][name]["lines"] == [100], name
    assert {"worst_round_trip_p99_ms", "worst_store_call_p99_ms", "met"} <= set(data["verdict"])


def test_fanout_part(tmp_path: Path) -> None:
    """Two servers, history on and off, repetitions alternating; every delivery arrives
    and every message of the on server is stored; the on/off ratios are there."""
    data = run_part(tmp_path, "fanout")
    assert [r["series"] for r in data["runs"]] == ["on", "off", "on", "off"]
    for row in data["runs"]:
        assert row["complete"] and row["delivered"] == row["expected"] == 2 * 20 * 19
        assert row["server_us_per_delivery"] > 0 and not row["extra_deliveries"]
    assert data["every_message_stored"] is True
    assert "--no-history" in data["servers"]["off"] and "--no-history" not in data["servers"]["on"]
    assert len(data["on_vs_off"]["paired"]) == 2 and data["on_vs_off"]["target_max"] == 1.15
    assert data["on_vs_off_with_store"]["ratio"] > 0


def test_kill9_part(tmp_path: Path) -> None:
    """SIGKILL in the middle of a steady stream, a restart on the same file, and the
    echoed lines counted in it; beside the write batch sizes at that rate."""
    data = run_part(tmp_path, "kill9")
    (kill,) = data["kills"]
    assert kill["echoed"] > 0 and kill["stored"] > 0
    assert kill["lost"] == kill["echoed"] - (kill["stored"] - kill["stored_not_echoed"])
    summary = data["summary"]
    assert summary["kills"] == 1 and summary["lost_max"] == kill["lost"]
    assert summary["batch_at_rate"]["p50_items"] >= 1
