"""bench.py runs every workload end to end against greenchat, its variant and the baseline.

Tiny sizes (``--quick``); the real numbers live in benchmarks/results/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from process_guard import PID_LOG_ENV, end_processes, run_bounded, terminate_once_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

ROOT = Path(__file__).parents[2]
WORKLOADS = ("fanout", "bigroom", "latency", "idle", "slow", "joinstorm")
SERVERS = ("greenchat", "greenchat-nodelay", "threaded")
# Workloads that run the greenchat-nodelay variant; the others leave it out.
WITH_VARIANT = ("fanout", "latency")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "bench.py"),
        "--quick", "--servers", ",".join(SERVERS), "--out", str(out),
    ]  # fmt: skip
    # 60 s + run_bounded's 10 s grace stay within the 90 s test timeout.
    done = run_bounded(cmd, timeout=60)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def load(out: Path, workload: str) -> dict:
    return json.loads((out / f"{workload}.json").read_text())


@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_case_has_a_result(results: Path, workload: str) -> None:
    data = load(results, workload)
    expected = set(SERVERS) if workload in WITH_VARIANT else set(SERVERS) - {"greenchat-nodelay"}
    assert set(data["servers"]) == expected
    for name, server in data["servers"].items():
        for label, entry in server["cases"].items():
            assert "result" in entry, f"{workload}/{name}/{label}: {entry}"
    assert data["machine"]["cores"] >= 1
    assert set(data["ratios"]) == expected - {"greenchat"}


def test_deliveries_complete_and_measured(results: Path) -> None:
    for workload in ("fanout", "bigroom"):
        for server in load(results, workload)["servers"].values():
            for entry in server["cases"].values():
                result = entry["result"]
                assert result["complete"] and result["dropped"] == 0
                assert result["delivered"] == result["expected"] > 0
                assert result["server_us_per_delivery"] > 0
                assert result["generator_cpu_s"] > 0


def test_workload_specific_numbers(results: Path) -> None:
    latency = load(results, "latency")["servers"]["greenchat"]["cases"]
    lat = next(iter(latency.values()))["result"]
    assert lat["complete"] and lat["samples"] > 0 and 0 < lat["p50_ms"] <= lat["max_ms"]
    idle = next(iter(load(results, "idle")["servers"]["greenchat"]["cases"].values()))
    assert idle["result"]["rss_after_kb"] > 0
    slow = load(results, "slow")["servers"]["greenchat"]["cases"]
    assert slow["10% slow"]["result"]["vs_control"] > 0
    storm = next(iter(load(results, "joinstorm")["servers"]["greenchat"]["cases"].values()))
    assert storm["result"]["wall_s"] > 0 and storm["result"]["server_cpu_total_s"] > 0


def test_fanout_scrapes_metrics_of_greenchat_only(results: Path) -> None:
    """greenchat's fanout runs once more with /metrics scraped during the burst;
    the deliveries counter agrees with the clients' count, and summary.md says so."""
    data = load(results, "fanout")
    for name, server in data["servers"].items():
        scraped = [label for label in server["cases"] if label.endswith(" scraped")]
        assert scraped == (["N=20 scraped"] if name == "greenchat" else []), name
    entry = data["servers"]["greenchat"]["cases"]["N=20 scraped"]
    assert entry["params"]["metrics"] is True
    result = entry["result"]
    assert result["complete"] and result["scrapes"] >= 1 and result["scrape_errors"] == 0
    assert 0 < result["scrape_ms_median"] <= result["scrape_ms_max"]
    assert result["deliveries_counter"] == result["delivered"] == result["expected"] > 0
    assert result["counter_agrees"] is True
    summary = (results / "summary.md").read_text()
    assert "| metrics scrape during 20-member fan-out: max < 50 ms |" in summary
    assert "| fanout: deliveries counter = delivered | yes |" in summary


def test_websocket_fanout_of_greenchat_only(results: Path) -> None:
    """websocket: greenchat measures its fan-out over WebSocket and TCP in one run (every
    delivery counted over both); the others skip it; summary.md has the ws/tcp target."""
    data = load(results, "websocket")
    assert set(data["servers"]) == set(SERVERS) - {"greenchat-nodelay"}
    assert "WebSocket" in data["servers"]["threaded"]["cases"]["N=20"]["skipped"]
    entry = data["servers"]["greenchat"]["cases"]["N=20"]
    assert entry["params"]["web"] is True and entry["params"]["transports"] == "tcp,ws"
    result = entry["result"]
    assert result["complete"] and result["dropped"] == 0
    assert result["delivered"] == result["expected"] == 2 * 2 * 20 * 19
    assert [r["transport"] for r in result["runs"]] == ["tcp", "ws"]
    assert result["ws_vs_tcp"] == pytest.approx(
        result["ws_us_per_delivery"] / result["tcp_us_per_delivery"]
    )
    assert result["met"] == (result["ws_vs_tcp"] <= 1.5)
    summary = (results / "summary.md").read_text()
    assert "| websocket fan-out CPU per delivery <= 1.5x TCP | " in summary
    assert "WS/TCP" in summary


def test_account_workloads_of_greenchat_only(results: Path) -> None:
    """logins and accounttag: greenchat measures them (no failure, every tag where it
    belongs), the threaded baseline says why not, and summary.md has both targets."""
    for workload in ("logins", "accounttag"):
        data = load(results, workload)
        assert set(data["servers"]) == {"greenchat", "threaded"}
        assert data["servers"]["threaded"]["cases"]["N=20"]["skipped"]
    logins = load(results, "logins")["servers"]["greenchat"]["cases"]["N=20"]["result"]
    assert logins["failures"] == 0 and logins["logins_counted"] == 2 * 20  # 2 storms
    assert logins["login_p99_ms"] > 0 and logins["ping_storm_p99_ms"] > 0
    tagged = load(results, "accounttag")["servers"]["greenchat"]["cases"]["N=20"]["result"]
    assert tagged["complete"] and tagged["dropped"] == 0 and tagged["tags_ok"]
    assert tagged["tagged_with"] == tagged["delivered"] // 2 and tagged["tagged_without"] == 0
    summary = (results / "summary.md").read_text()
    assert "| 20 SCRAM logins at once: event-loop lag p99 <= 10 ms |" in summary
    assert "| fan-out CPU per delivery with account-tag within 10% of without (20 members) |" in (
        summary
    )


def test_summary_and_plots(results: Path) -> None:
    summary = (results / "summary.md").read_text()
    assert "## Targets (greenchat)" in summary
    for workload in WORKLOADS:
        assert f"{workload}.json" not in summary  # tables, not file names
    assert summary.count("| threaded |") >= len(WORKLOADS)
    pytest.importorskip("matplotlib")  # the optional "bench" extra draws the plots
    for png in ("rooms.png", "latency_cdf.png"):
        assert (results / png).read_bytes()[:4] == b"\x89PNG"


def test_several_generator_processes_and_source_addresses(tmp_path: Path) -> None:
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "bench.py"),
        "--quick", "--servers", "greenchat", "--workloads", "fanout,latency,slow",
        "--procs", "2", "--sources", "3", "--no-plots", "--out", str(tmp_path),
    ]  # fmt: skip
    done = run_bounded(cmd, timeout=60)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    fanout = next(iter(load(tmp_path, "fanout")["servers"]["greenchat"]["cases"].values()))
    run = fanout["result"]["runs"][0]
    assert run["complete"] and len(run["generator_cpu_s_per_proc"]) == 2
    latency = next(iter(load(tmp_path, "latency")["servers"]["greenchat"]["cases"].values()))
    assert latency["result"]["complete"]
    slow = load(tmp_path, "slow")["servers"]["greenchat"]["cases"]["10% slow"]["result"]
    assert slow["complete"] and slow["stalled"] > 0
    assert load(tmp_path, "fanout")["generator"] == {
        "procs": 2, "sources": 3, "concurrency": 100,
        "concurrency_per_server": {"ngircd": 10, "inspircd": 2000},
    }  # fmt: skip


def test_sigterm_stops_the_servers_it_started(tmp_path: Path) -> None:
    """bench.py stops its servers (in their own session) itself when it is terminated."""
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "bench.py"),
        "--quick", "--servers", "greenchat", "--workloads", "fanout", "--no-plots",
        "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    status, pids, survivors = terminate_once_serving(cmd, tmp_path / "pids", tmp_path / "log")
    assert status == 128 + signal.SIGTERM, (tmp_path / "log").read_text()
    assert pids and survivors == []


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def test_baseline_revision_measured_in_the_same_run(tmp_path: Path) -> None:
    """--baseline <HEAD's hash>: greenchat@<short> runs next to greenchat, with
    current/baseline ratios; no worktree, exported tree or process is left afterwards."""
    worktrees = git("worktree", "list", "--porcelain")
    head = git("rev-parse", "HEAD")  # resolved first: others may commit meanwhile
    temp, out, pid_log = tmp_path / "tmp", tmp_path / "out", tmp_path / "pids"
    temp.mkdir()
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "bench.py"),
        "--quick", "--servers", "greenchat", "--workloads", "fanout", "--baseline", head,
        "--no-plots", "--out", str(out),
    ]  # fmt: skip
    env = os.environ | {"TMPDIR": str(temp), PID_LOG_ENV: str(pid_log)}
    try:
        done = run_bounded(cmd, timeout=40, env=env)
        pids = _logged(pid_log)
        survivors = [p for pid in pids if (p := _ours(pid, pid_log))]
    finally:  # this test's own PID log, which the session's guard does not read
        end_processes(p for pid in _logged(pid_log) if (p := _ours(pid, pid_log)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    name = f"greenchat@{git('rev-parse', '--short', head)}"
    data = load(out, "fanout")
    assert list(data["servers"]) == ["greenchat", name]
    (label, entry), *_ = data["servers"][name]["cases"].items()
    result = entry["result"]
    assert result["complete"] and result["delivered"] == result["expected"] > 0
    # The server's CPU comes from its nanosecond clock; where that cannot be read, from
    # 10 ms ticks, which the quick run's 2-3 ms may not reach (a 0, with no ratio).
    ticks_only = result["server_cpu_s"] == result["server_user_s"] + result["server_sys_s"]
    measured = result["server_us_per_delivery"] > 0
    assert measured or ticks_only, result
    info = data["servers"][name]["server"]
    assert info["commit"] == info["revision"] == head
    assert "flags_left_out" not in info  # HEAD knows every flag the harness passes
    against = data["vs_baseline"]
    assert against["baseline"] == name and against["target"]["max_ratio"] == 1.1
    if measured:
        assert against["cases"][label]["server_us_per_delivery"] > 0
        assert data["ratios"][name][label]["server_us_per_delivery"] > 0
    summary = (out / "summary.md").read_text()
    assert f"| fanout: CPU/delivery within 10% of {name} |" in summary
    assert f"## Current vs baseline: greenchat / {name}" in summary
    assert f"| fanout | {label} | server µs/delivery |" in summary
    # greenchat, greenchat again for the scraped case, and the baseline server
    assert len(pids) == 3 and survivors == []
    assert git("worktree", "list", "--porcelain") == worktrees
    assert list(temp.iterdir()) == []  # the run's temporary folder, exported tree and all


def test_sigterm_removes_the_baseline_tree(tmp_path: Path, monkeypatch) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # terminate_once_serving passes os.environ on
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "bench.py"),
        "--quick", "--servers", "greenchat", "--workloads", "fanout", "--baseline", "HEAD",
        "--no-plots", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    status, pids, survivors = terminate_once_serving(cmd, tmp_path / "pids", tmp_path / "log")
    assert status == 128 + signal.SIGTERM, (tmp_path / "log").read_text()
    assert pids and survivors == []
    assert list(temp.iterdir()) == []


def _logged(path: Path) -> list[int]:
    try:
        return [int(word) for word in path.read_text().split() if word.isdigit()]
    except OSError:
        return []


def _ours(pid: int, log: Path) -> psutil.Process | None:
    """The process ``pid`` if it still runs (not a zombie) with ``log`` as its PID log."""
    try:
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(PID_LOG_ENV) == str(log):
            return proc
    except psutil.Error:
        pass
    return None
